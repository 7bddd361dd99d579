import type { Checkpoint, CheckpointLocation } from '../src/catalog/catalog.js';
import { CatalogError } from '../src/catalog/errors.js';
import type { Manifest } from '../src/catalog/manifest.js';
import { LeaseSemaphore } from '../src/queue/lease-semaphore.js';
import { RetryableJobError } from './failure.js';
import type { JobReporter } from './job-reporter.js';
import type { JobRun, WorkerContext } from './worker-context.js';

/**
 * The upload stage of a dump (after its local commit): sends the checkpoint to the bucket, with progress, and records
 * where it is (`uploading`, then `local+remote`, or `remote` when `keepLocal` is false and the local copy went).
 * A failed upload leaves the checkpoint listed as `local` and fails the attempt: the job's retry adopts the committed
 * checkpoint and uploads again. Nothing to do without storage.remote, or when an earlier attempt uploaded it.
 */
export async function uploadStage(manifest: Manifest, run: JobRun, ctx: WorkerContext, { keepLocal }: { keepLocal: boolean }): Promise<CheckpointLocation> {
  const { remote, catalog } = ctx;
  if (!remote) return 'local';
  const listed = await catalog.get(manifest.id);
  if (listed.location === 'remote' || listed.location === 'local+remote') return listed.location;
  await catalog.setLocation(manifest.id, 'uploading');
  run.reporter.progress({ stage: 'uploading', percent: 0, bytesWritten: 0, bytesExpected: manifest.bytes });
  try {
    await remote.upload(manifest, ctx.store.pathOf(manifest), { signal: run.signal, onProgress: progressTo(run.reporter) });
  } catch (err) {
    // Still whole on this disk.
    await catalog.setLocation(manifest.id, 'local').catch(() => undefined);
    throw new Error(`upload of checkpoint ${manifest.id} to bucket ${remote.where} failed: ${(err as Error).message}`);
  }
  let location: CheckpointLocation = 'local+remote';
  try {
    await catalog.setLocation(manifest.id, location);
    if (!keepLocal && !(await catalog.isInUse(manifest.id))) {
      location = 'remote';
      await catalog.setLocation(manifest.id, location);
      await ctx.store.remove(manifest);
    }
  } catch (err) {
    // Deleted while it was uploaded: what was uploaded goes too.
    if (err instanceof CatalogError && err.code === 'ECHECKPOINT_NOT_FOUND') await remote.remove(manifest);
    throw err;
  }
  await run.reporter.publish('checkpoint.uploaded', {
    checkpointId: manifest.id,
    node: manifest.node,
    location,
    bucket: remote.where,
    bytes: manifest.bytes,
  });
  await trimLocalCache(ctx);
  return location;
}

/**
 * The download stage of a restore on a node without a local copy: takes the checkpoint from the bucket into an attempt
 * folder (progress in bytes), which CheckpointStore.adoptCopy checks (signed manifest, SHA-256 of every file) and
 * renames into place. One download per checkpoint and node at a time; a job that finds another's finished copy uses it.
 * Returns the manifest of the local copy.
 */
export async function downloadStage(listed: Checkpoint, run: JobRun, jobId: string, ctx: WorkerContext): Promise<Manifest> {
  const remote = ctx.remote!;
  const { key } = listed.target;
  const lock = new LeaseSemaphore(ctx.redis, { key: ctx.keys.downloadLock(ctx.node, listed.id), leaseMs: ctx.config.worker.targetLeaseMs });
  run.reporter.progress({ stage: 'waiting-download' });
  const got = await lock.acquire(jobId, { waitMs: ctx.config.worker.busyWaitMs, signal: run.signal });
  if (!got.lease) {
    throw new RetryableJobError('ETARGET_BUSY', `checkpoint ${listed.id} is being downloaded by job ${got.holders.join(', ')} on this node`);
  }
  try {
    const there = await ctx.store.readSigned(key, listed.id);
    if (there) return there;
    // Left by a download whose worker died: a half copy, never used.
    const leftover = await ctx.store.findAttempt(key, listed.id, { jobId });
    if (leftover) await ctx.store.discard(leftover.dir);
    run.reporter.progress({ stage: 'downloading', percent: 0, bytesWritten: 0, bytesExpected: listed.bytes });
    const manifest = await remote.readManifest(key, listed.id);
    const attempt = await ctx.store.beginAttempt(key, listed.id, { jobId });
    try {
      await remote.download(manifest, attempt.dir, { signal: run.signal, onProgress: progressTo(run.reporter) });
    } catch (err) {
      await ctx.store.discard(attempt.dir);
      throw err;
    }
    run.reporter.progress({ stage: 'verifying' });
    const copy = await ctx.store.adoptCopy(attempt.dir, manifest);
    await ctx.catalog.noteCopy(copy.id);
    await trimLocalCache(ctx);
    return copy;
  } finally {
    await got.lease.release();
  }
}

/**
 * With storage.localCacheBytes: drops local copies of checkpoints the bucket holds, oldest first, while together they
 * exceed it; never one a restore holds. This node's own checkpoints are then listed as `remote`.
 */
export async function trimLocalCache(ctx: WorkerContext): Promise<void> {
  const limit = ctx.config.storage.localCacheBytes;
  if (!ctx.remote || limit === 0) return;
  const copies: Checkpoint[] = [];
  for (const c of await ctx.catalog.list({ limit: Infinity })) {
    if ((c.location === 'local+remote' || c.location === 'remote') && (await ctx.store.readManifest(c.target.key, c.id))) copies.push(c);
  }
  let total = copies.reduce((sum, c) => sum + c.bytes, 0);
  for (const c of copies.sort((a, b) => a.created.localeCompare(b.created))) {
    if (total <= limit) break;
    if (await ctx.catalog.isInUse(c.id)) continue;
    if (c.node === ctx.node) await ctx.catalog.setLocation(c.id, 'remote');
    await ctx.store.remove(c);
    total -= c.bytes;
  }
}

function progressTo(reporter: JobReporter) {
  return (done: number, total: number) =>
    reporter.progress({ bytesWritten: done, bytesExpected: total, percent: total > 0 ? Math.min(99, Math.floor((done * 100) / total)) : 0 });
}
