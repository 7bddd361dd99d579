import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Transform, type TransformCallback } from 'node:stream';
import { assertTrustedFile, UntrustedPathError } from '../security/trusted-files.js';
import { StorageError } from './errors.js';

const MAGIC = Buffer.from('CKPTGCM1');
const NONCE_PREFIX_BYTES = 8;
const HEADER_BYTES = MAGIC.length + NONCE_PREFIX_BYTES;
/** Plaintext per chunk: each chunk is authenticated on its own, so a reader never holds more than this unverified. */
export const CHUNK_BYTES = 64 * 1024;
const TAG_BYTES = 16;
/** Per record: u32 plaintext length, u8 final flag. */
const RECORD_HEAD_BYTES = 5;

/**
 * AES-256-GCM over a stream, in chunks: `CKPTGCM1`, an 8-byte random nonce prefix, then records of
 * (u32 length, u8 final, ciphertext, 16-byte tag). Each chunk's nonce is the prefix and its index; the header, the
 * index, the length and the final flag are authenticated with it, so a reordered, altered, dropped or cut-off chunk
 * is refused (a stream must end with its final chunk). A fresh nonce prefix per stream: one key serves any number of objects.
 */
export class ChunkCipher {
  private constructor(private readonly key: Buffer) {}

  /** The key from a file: 64 hex digits, owned by root (or ckpt's user), mode 0600; else StorageError EKEY naming the file. */
  static fromKeyFile(file: string): ChunkCipher {
    try {
      assertTrustedFile(file, { secret: true });
    } catch (err) {
      const reason = err instanceof UntrustedPathError ? err.reason : (err as Error).message;
      throw new StorageError('EKEY', `storage.remote.encryptionKeyFile ${file}: ${reason}`);
    }
    const text = readFileSync(file, 'utf8').trim();
    if (!/^[0-9a-f]{64}$/i.test(text)) {
      throw new StorageError('EKEY', `storage.remote.encryptionKeyFile ${file}: not a key (expected 64 hex digits, 32 bytes)`);
    }
    return new ChunkCipher(Buffer.from(text, 'hex'));
  }

  /** Plaintext in, sealed records out. */
  encryptor(): Transform {
    const header = Buffer.concat([MAGIC, randomBytes(NONCE_PREFIX_BYTES)]);
    let pending: Buffer = Buffer.alloc(0);
    let index = 0;
    const seal = (plain: Buffer, final: boolean): Buffer => {
      const head = Buffer.alloc(RECORD_HEAD_BYTES);
      head.writeUInt32BE(plain.length, 0);
      head.writeUInt8(final ? 1 : 0, 4);
      const cipher = createCipheriv('aes-256-gcm', this.key, nonceOf(header, index));
      cipher.setAAD(aadOf(header, index, head));
      index++;
      const body = Buffer.concat([cipher.update(plain), cipher.final()]);
      return Buffer.concat([head, body, cipher.getAuthTag()]);
    };
    return new Transform({
      construct(callback) {
        this.push(header);
        callback();
      },
      transform(chunk: Buffer, _encoding, callback: TransformCallback) {
        pending = pending.length ? Buffer.concat([pending, chunk]) : chunk;
        // Keep the last (possibly full) chunk back: only flush knows which one is final.
        while (pending.length > CHUNK_BYTES) {
          this.push(seal(pending.subarray(0, CHUNK_BYTES), false));
          pending = pending.subarray(CHUNK_BYTES);
        }
        callback();
      },
      flush(callback: TransformCallback) {
        this.push(seal(pending, true));
        callback();
      },
    });
  }

  /** Sealed records in, plaintext out; a chunk that fails authentication (or a missing end) errors the stream: EDAMAGED. */
  decryptor(what: string): Transform {
    let header: Buffer | undefined;
    let pending: Buffer = Buffer.alloc(0);
    let index = 0;
    let ended = false;
    const damaged = (why: string) => new StorageError('EDAMAGED', `${what}: ${why}`);
    const key = this.key;
    return new Transform({
      transform(chunk: Buffer, _encoding, callback: TransformCallback) {
        pending = pending.length ? Buffer.concat([pending, chunk]) : chunk;
        try {
          if (!header) {
            if (pending.length < HEADER_BYTES) return callback();
            header = Buffer.from(pending.subarray(0, HEADER_BYTES));
            if (!header.subarray(0, MAGIC.length).equals(MAGIC)) throw damaged('not an encrypted object (wrong header)');
            pending = pending.subarray(HEADER_BYTES);
          }
          while (pending.length >= RECORD_HEAD_BYTES) {
            if (ended) throw damaged('data after the final chunk');
            const length = pending.readUInt32BE(0);
            if (length > CHUNK_BYTES) throw damaged(`chunk ${index} claims ${length} bytes`);
            const total = RECORD_HEAD_BYTES + length + TAG_BYTES;
            if (pending.length < total) break;
            const head = pending.subarray(0, RECORD_HEAD_BYTES);
            const decipher = createDecipheriv('aes-256-gcm', key, nonceOf(header, index));
            decipher.setAAD(aadOf(header, index, head));
            decipher.setAuthTag(pending.subarray(total - TAG_BYTES, total));
            let plain: Buffer;
            try {
              plain = Buffer.concat([decipher.update(pending.subarray(RECORD_HEAD_BYTES, total - TAG_BYTES)), decipher.final()]);
            } catch {
              throw damaged(`chunk ${index} fails authentication (altered, or encrypted with another key)`);
            }
            ended = head.readUInt8(4) === 1;
            index++;
            pending = pending.subarray(total);
            this.push(plain);
          }
          callback();
        } catch (err) {
          callback(err as Error);
        }
      },
      flush(callback: TransformCallback) {
        callback(ended && pending.length === 0 ? null : damaged('cut short (no final chunk)'));
      },
    });
  }
}

function nonceOf(header: Buffer, index: number): Buffer {
  const nonce = Buffer.alloc(12);
  header.copy(nonce, 0, MAGIC.length, HEADER_BYTES);
  nonce.writeUInt32BE(index, NONCE_PREFIX_BYTES);
  return nonce;
}

function aadOf(header: Buffer, index: number, recordHead: Buffer): Buffer {
  const counter = Buffer.alloc(4);
  counter.writeUInt32BE(index, 0);
  return Buffer.concat([header, counter, recordHead]);
}
