import { createHash } from 'node:crypto';
import type { FileHandle } from 'node:fs/promises';
import { Worker } from 'node:worker_threads';

/** Bytes per read in the hash thread: few reads for a GiB, and a buffer allocated once. */
const CHUNK = 1 << 20;
/** Files larger than this are hashed in the hash thread; smaller ones here, where a thread's round trip would cost more. */
const THREAD_FILE = 256 * 1024;

/**
 * SHA-256 (hex) of an open file, read once from its start to its end; the file's bytes are counted as they are read.
 * `size` (from the caller's fstat) says where: a file over THREAD_FILE in the hash thread, so that hashing (~2 ms a
 * MiB here) leaves the event loop free for what runs meanwhile (the commit's flushes, CRIU's last log lines, another
 * job's CRIU); a smaller one here, in one read. A file larger than `size` says is still read whole. Keep `handle`
 * open until this settles: the thread reads by its descriptor.
 */
export async function sha256Of(handle: FileHandle, size = CHUNK): Promise<{ sha256: string; bytes: number }> {
  if (size > THREAD_FILE) return hashThread.digest(handle.fd);
  // One byte more than the file, so a file read whole comes back short (a regular file's read returns less than
  // asked only at its end).
  const buffer = Buffer.allocUnsafe(size + 1);
  const { bytesRead } = await handle.read(buffer, 0, buffer.length, 0);
  if (bytesRead === buffer.length) return hashThread.digest(handle.fd);
  return { sha256: createHash('sha256').update(buffer.subarray(0, bytesRead)).digest('hex'), bytes: bytesRead };
}

// Runs in the hash thread: reads the file by its descriptor (the caller keeps it open until the answer) from its start
// until a read returns nothing, hashing as it goes.
const HASHER = `
const { parentPort } = require('node:worker_threads');
const { readSync } = require('node:fs');
const { createHash } = require('node:crypto');
const chunk = Buffer.allocUnsafeSlow(${CHUNK});
parentPort.on('message', ({ id, fd }) => {
  try {
    const hash = createHash('sha256');
    let bytes = 0;
    for (let n; (n = readSync(fd, chunk, 0, chunk.length, bytes)) > 0; bytes += n) hash.update(chunk.subarray(0, n));
    parentPort.postMessage({ id, sha256: hash.digest('hex'), bytes });
  } catch (err) {
    parentPort.postMessage({ id, error: String(err && err.message), code: err && err.code });
  }
});
`;

type Digest = { sha256: string; bytes: number };

/**
 * The one thread big files are hashed in, started at the first and kept; it holds the process open only while it
 * has work. Files are hashed one at a time, in the order asked. If it dies, what it had is failed and the next file
 * gets a new thread.
 */
class HashThread {
  private worker?: Worker;
  private lastId = 0;
  private readonly pending = new Map<number, { resolve: (d: Digest) => void; reject: (err: Error) => void }>();

  digest(fd: number): Promise<Digest> {
    const worker = (this.worker ??= this.start());
    const id = ++this.lastId;
    if (this.pending.size === 0) worker.ref();
    return new Promise<Digest>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      worker.postMessage({ id, fd });
    });
  }

  private start(): Worker {
    const worker = new Worker(HASHER, { eval: true });
    worker.on('message', (m: { id: number; error?: string; code?: string } & Partial<Digest>) => {
      const waiter = this.pending.get(m.id);
      if (!waiter) return;
      this.settled(m.id, worker);
      if (m.error === undefined) waiter.resolve({ sha256: m.sha256!, bytes: m.bytes! });
      else waiter.reject(Object.assign(new Error(m.error), m.code ? { code: m.code } : {}));
    });
    const fail = (err: Error) => {
      if (this.worker === worker) this.worker = undefined;
      const waiters = [...this.pending.values()];
      this.pending.clear();
      for (const w of waiters) w.reject(err);
    };
    worker.on('error', fail);
    worker.on('exit', (code) => fail(new Error(`the hash thread exited (code ${code})`)));
    return worker;
  }

  private settled(id: number, worker: Worker): void {
    this.pending.delete(id);
    if (this.pending.size === 0) worker.unref();
  }
}

const hashThread = new HashThread();
