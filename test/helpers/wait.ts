// Condition-based waits for tests: poll until something is true, or fail after a deadline saying what did not happen.
import { setTimeout as sleep } from 'node:timers/promises';

/** Polls `fn` until it returns a truthy value (returned), failing after `timeoutMs` with "timed out ... waiting for <what>". */
export async function waitUntil<T>(
  what: string,
  fn: () => T | undefined | null | false | Promise<T | undefined | null | false>,
  { timeoutMs = 15_000, pollMs = 20 }: { timeoutMs?: number; pollMs?: number } = {},
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(pollMs);
  }
}

/** Waits until a counting target has counted past `from` (it runs, and from where it was). */
export async function countsOn(target: { pid: number; read(): number }, from = target.read(), timeoutMs = 15_000): Promise<number> {
  return waitUntil(`pid ${target.pid} to count on past ${from}`, () => {
    const n = target.read();
    return n > from && n;
  }, { timeoutMs });
}
