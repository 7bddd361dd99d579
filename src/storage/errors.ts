export type StorageErrorCode =
  /** The bucket's credentials file is missing, unreadable, untrusted (not 0600 / not root's) or malformed. */
  | 'ECREDENTIALS'
  /** The encryption key file is missing, untrusted or not 32 bytes in hex. */
  | 'EKEY'
  /** An object that does not decode: damaged, cut short, encrypted with another key, or not encrypted though a key is set. */
  | 'EDAMAGED'
  /** The compressor (zstd / lz4 program) failed or is missing. */
  | 'ECOMPRESSOR'
  /** A checkpoint that the bucket does not hold (no manifest object). */
  | 'ECHECKPOINT_NOT_FOUND';

/** Errors of the remote store (src/storage); the message names the object or file concerned. */
export class StorageError extends Error {
  constructor(
    readonly code: StorageErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'StorageError';
  }
}
