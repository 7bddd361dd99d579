import { createHash } from 'node:crypto';
import type { FileHandle } from 'node:fs/promises';

/** Bytes per read: big enough that a GiB takes few thread-pool trips, small enough that hashing one stays brief. */
const CHUNK = 1 << 20;

/**
 * SHA-256 (hex) of an open file, read once from its start to its end. The next chunk is read (in the thread pool)
 * while the current one is hashed, so reading and hashing overlap; the file's bytes are counted as they are read.
 * `size` (from the caller's fstat) sizes the buffers: most of a dump's ~30 files are a few hundred bytes, and two
 * 1 MiB buffers for each were ~60 MiB of garbage per small checkpoint. A short read is the file's end (a regular
 * file's read returns less than asked only there), so a small file takes one read; a file that grew meanwhile is
 * still read whole.
 */
export async function sha256Of(handle: FileHandle, size = CHUNK): Promise<{ sha256: string; bytes: number }> {
  const hash = createHash('sha256');
  // One byte more than the file, so a file read whole comes back short.
  const chunk = Math.min(CHUNK, size + 1);
  const buffers = [Buffer.allocUnsafe(chunk), Buffer.allocUnsafe(chunk)];
  let bytes = 0;
  let which = 0;
  let reading = handle.read(buffers[which]!, 0, chunk, 0);
  for (;;) {
    const { bytesRead } = await reading;
    const current = buffers[which]!;
    bytes += bytesRead;
    const more = bytesRead === chunk;
    if (more) {
      which ^= 1;
      reading = handle.read(buffers[which]!, 0, chunk, bytes);
    }
    hash.update(current.subarray(0, bytesRead));
    if (!more) break;
  }
  return { sha256: hash.digest('hex'), bytes };
}
