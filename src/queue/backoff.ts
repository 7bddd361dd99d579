/** Retry delays: exponential, with jitter so that jobs failing together do not retry together. */
export interface BackoffSettings {
  /** Delay before the first retry. */
  baseDelayMs: number;
  /** No delay is longer than this. */
  maxDelayMs: number;
  /** 0..1: each delay is moved by up to this fraction of itself, up or down, at random. */
  jitter: number;
}

/**
 * The delay before the next attempt after `attemptsMade` failed ones (>= 1):
 * baseDelayMs * 2^(attemptsMade - 1), scaled by a random factor in [1 - jitter, 1 + jitter], capped at maxDelayMs.
 */
export function backoffDelay(attemptsMade: number, settings: BackoffSettings, random: () => number = Math.random): number {
  const exponent = Math.max(0, attemptsMade - 1);
  // Capped before jitter too, so a large attempt count cannot overflow into Infinity.
  const nominal = Math.min(settings.baseDelayMs * 2 ** Math.min(exponent, 52), settings.maxDelayMs);
  const factor = 1 + settings.jitter * (2 * random() - 1);
  return Math.max(0, Math.min(Math.round(nominal * factor), settings.maxDelayMs));
}

/** Name of ckpt's strategy in BullMQ job options (`backoff: {type}`); workers register the function for it. */
export const BACKOFF_TYPE = 'ckpt-exponential-jitter';
