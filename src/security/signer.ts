import { createHmac, timingSafeEqual } from 'node:crypto';

/**
 * What a signature is for; part of what is signed, so a signature made for one purpose (a job) is never valid for
 * another (a manifest).
 */
export type SignaturePurpose = 'job' | 'manifest';

/** Shortest key accepted: 32 bytes, as long as HMAC-SHA256's output. */
export const MIN_KEY_BYTES = 32;

/**
 * HMAC-SHA256 signatures over a canonical serialisation of JSON-like values (keys sorted, undefined left out, as
 * JSON.stringify would store them), so a value read back from Redis or disk verifies whatever order its keys came in.
 * Signatures are 64 lowercase hex digits.
 */
export class Signer {
  private readonly key: Buffer;

  constructor(key: Buffer) {
    if (key.length < MIN_KEY_BYTES) throw new Error(`signing key too short: ${key.length} bytes, need ${MIN_KEY_BYTES}`);
    this.key = Buffer.from(key);
  }

  sign(purpose: SignaturePurpose, value: unknown): string {
    return createHmac('sha256', this.key).update(`ckpt-${purpose}-v1\n`).update(canonicalJson(value)).digest('hex');
  }

  /** True only when `signature` is this key's signature of `value` for `purpose` (compared in constant time). */
  verify(purpose: SignaturePurpose, value: unknown, signature: unknown): boolean {
    if (typeof signature !== 'string' || !/^[0-9a-f]{64}$/.test(signature)) return false;
    return timingSafeEqual(Buffer.from(this.sign(purpose, value), 'hex'), Buffer.from(signature, 'hex'));
  }
}

/** JSON with every object's keys sorted: the same text for the same data, however it was built or stored. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v !== null && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(Object.keys(v).sort().map((k) => [k, (v as Record<string, unknown>)[k]]))
      : v,
  );
}
