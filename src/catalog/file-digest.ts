import { createHash } from 'node:crypto';
import type { FileHandle } from 'node:fs/promises';

/** Bytes per read: big enough that a GiB takes few thread-pool trips, small enough that hashing one stays brief. */
const CHUNK = 1 << 20;

/**
 * SHA-256 (hex) of an open file, read once from its start to its end. The next chunk is read (in the thread pool)
 * while the current one is hashed, so reading and hashing overlap; the file's bytes are counted as they are read.
 */
export async function sha256Of(handle: FileHandle): Promise<{ sha256: string; bytes: number }> {
  const hash = createHash('sha256');
  const buffers = [Buffer.allocUnsafe(CHUNK), Buffer.allocUnsafe(CHUNK)];
  let bytes = 0;
  let which = 0;
  let reading = handle.read(buffers[which]!, 0, CHUNK, 0);
  for (;;) {
    const { bytesRead } = await reading;
    if (bytesRead === 0) break;
    const current = buffers[which]!;
    bytes += bytesRead;
    which ^= 1;
    reading = handle.read(buffers[which]!, 0, CHUNK, bytes);
    hash.update(current.subarray(0, bytesRead));
  }
  return { sha256: hash.digest('hex'), bytes };
}
