/**
 * An event's id: the Redis stream id "<ms>-<seq>" that orders every event across processes. Parsed once into numbers,
 * so the per-client "already delivered?" check of the feed is two number comparisons.
 */
export class EventId {
  /** Before every event ("0-0"). */
  static readonly ZERO = new EventId(0, 0, '0-0');

  private constructor(
    readonly ms: number,
    /** The sequence as a number; exact up to 2^53, beyond that `text` breaks the tie (see `compareTo`). */
    readonly seq: number,
    readonly text: string,
  ) {}

  /** Parses "<ms>-<seq>" or "<ms>" (seq 0). Throws on anything else (ids from clients are validated before this). */
  static parse(text: string): EventId {
    const dash = text.indexOf('-');
    const ms = dash < 0 ? text : text.slice(0, dash);
    const seq = dash < 0 ? '0' : text.slice(dash + 1);
    if (!/^\d+$/.test(ms) || !/^\d+$/.test(seq)) throw new TypeError(`not an event id: '${text}'`);
    return new EventId(Number(ms), Number(seq), `${ms}-${seq}`);
  }

  /** Orders two id strings (an Array#sort comparator): negative when a is older than b. */
  static compare(a: string, b: string): number {
    return EventId.parse(a).compareTo(EventId.parse(b));
  }

  /** Negative when this is older than `other`, 0 when equal, positive when newer. */
  compareTo(other: EventId): number {
    if (this.ms !== other.ms) return this.ms < other.ms ? -1 : 1;
    if (this.seq !== other.seq) return this.seq < other.seq ? -1 : 1;
    if (this.text === other.text) return 0;
    // Sequences too large for a double to tell apart (only the `predecessor` of a seq-0 id comes near).
    const a = BigInt(this.text.slice(this.text.indexOf('-') + 1));
    const b = BigInt(other.text.slice(other.text.indexOf('-') + 1));
    return a === b ? 0 : a < b ? -1 : 1;
  }

  isAfter(other: EventId): boolean {
    if (this.ms !== other.ms) return this.ms > other.ms;
    if (this.seq !== other.seq) return this.seq > other.seq;
    return this.text !== other.text && this.compareTo(other) > 0;
  }

  /** The greatest id below this one: nothing can sit between the two. */
  predecessor(): EventId {
    const seq = BigInt(this.text.slice(this.text.indexOf('-') + 1));
    return EventId.parse(seq > 0n ? `${this.ms}-${seq - 1n}` : `${BigInt(this.ms) - 1n}-18446744073709551615`);
  }

  toString(): string {
    return this.text;
  }
}
