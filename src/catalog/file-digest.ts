import { createHash } from 'node:crypto';
import type { FileHandle } from 'node:fs/promises';

/** Bytes per read: big enough that a GiB takes few thread-pool trips, small enough that hashing one stays brief. */
const CHUNK = 1 << 20;
/** Files up to this size are read into a buffer of their own size (most of a dump's ~30 files are a few hundred bytes). */
const SMALL_FILE = 64 * 1024;
/**
 * CHUNK buffers kept for the next file. A fresh 1 MiB buffer per read is memory outside the heap that the garbage
 * collector must account for and free: hashing a small dump's 3.5 MiB took 10-13 ms with fresh buffers against ~3 ms
 * with these, measured in one process on this machine.
 */
const spareChunks: Buffer[] = [];
const SPARE_CHUNKS_MAX = 8;

/**
 * SHA-256 (hex) of an open file, read once from its start to its end. The next chunk is read (in the thread pool)
 * while the current one is hashed, so reading and hashing overlap; the file's bytes are counted as they are read.
 * `size` (from the caller's fstat) sizes the reads. A short read is the file's end (a regular file's read returns
 * less than asked only there), so a small file takes one read; a file that grew meanwhile is still read whole.
 */
export async function sha256Of(handle: FileHandle, size = CHUNK): Promise<{ sha256: string; bytes: number }> {
  const hash = createHash('sha256');
  // One byte more than the file, so a file read whole comes back short.
  const chunk = Math.min(CHUNK, size + 1);
  const pooled = chunk > SMALL_FILE;
  const take = () => (pooled ? (spareChunks.pop() ?? Buffer.allocUnsafeSlow(CHUNK)) : Buffer.allocUnsafe(chunk));
  const buffers = [take()];
  let bytes = 0;
  let which = 0;
  try {
    let reading = handle.read(buffers[which]!, 0, chunk, 0);
    for (;;) {
      const { bytesRead } = await reading;
      const current = buffers[which]!;
      bytes += bytesRead;
      const more = bytesRead === chunk;
      if (more) {
        which ^= 1;
        reading = handle.read((buffers[which] ??= take()), 0, chunk, bytes);
      }
      hash.update(current.subarray(0, bytesRead));
      if (!more) break;
    }
  } finally {
    // No read is in flight here: each one is awaited before the next is started.
    if (pooled) for (const b of buffers) if (spareChunks.length < SPARE_CHUNKS_MAX) spareChunks.push(b);
  }
  return { sha256: hash.digest('hex'), bytes };
}
