import { copyFile, link, mkdir, open, readdir, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import type { Manifest } from '../src/catalog/manifest.js';
import { rewriteFilePaths } from '../src/criu/image-file.js';
import { jobCriuOptions } from '../src/criu/options.js';
import { readRestoreStats, type RestoreStats } from '../src/criu/stats.js';
import type { RestoreJobData } from '../src/queue/schemas.js';
import { isSameProcess, readProcStat } from '../src/common/proc.js';
import { type WorkloadRef } from '../src/targets/process-snapshot.js';
import { prepareWorkloadDir } from '../src/workloads/launcher.js';
import type { WorkloadRecord } from '../src/workloads/registry.js';
import { settleAfterRestore } from './checkpoint-images.js';
import { CriuLogTailer } from './criu-log-tailer.js';
import { networkLockFor } from './network-lock.js';
import type { JobRun, WorkerContext } from './worker-context.js';

/** What a workload restore is asked: by which job, and the restore's data. */
export interface RestoreOrder {
  jobId: string;
  data: RestoreJobData;
}

/** Where one copy goes: its workload name and folder; `inPlace` when it is the checkpoint's own workload coming back. */
interface Place {
  name: string;
  dir: string;
  inPlace: boolean;
}

/** One restored copy. */
export interface RestoredWorkload {
  name: string;
  hostPid: number;
}

/** Folder (inside a copy's own folder) holding the images with the copy's paths, while CRIU restores from it. */
const COPY_IMAGES = '.restore-images';

/**
 * Restores a workload's checkpoint: the tree is the init of its own pid namespace, so CRIU gives it a fresh one and
 * nothing on the host can collide with it. `replicas` copies start at once. The checkpoint's own workload comes back
 * under its name when it is not running (and the job does not ask for a copy); every other restore starts a copy
 * `<name>-<n>`, whose output files CRIU reopens in the copy's own folder (files.img rewritten in a linked copy of the
 * images), so copies never write into each other's files.
 */
export async function restoreWorkload(
  order: RestoreOrder,
  run: JobRun,
  ctx: WorkerContext,
  checkpoint: Manifest,
  imagesDir: string,
): Promise<{ restored: RestoredWorkload[]; stats: RestoreStats | undefined }> {
  const origin = checkpoint.target.workload!;
  const replicas = order.data.replicas ?? 1;
  const places: Place[] = [];
  try {
    if (replicas === 1 && !order.data.copy) places.push(await placeInPlaceOrCopy(origin, order.jobId, ctx));
    while (places.length < replicas) places.push(await copyPlace(origin, ctx));
  } catch (err) {
    await releasePlaces(places, order.jobId, ctx);
    throw err;
  }
  run.reporter.progress({ stage: 'restoring', percent: 5 });
  const outcomes = await Promise.allSettled(places.map((place, i) => restoreOne(order, run, ctx, checkpoint, imagesDir, origin, place, i)));
  await releasePlaces(places, order.jobId, ctx, outcomes.map((o) => o.status === 'fulfilled'));
  const failed = outcomes.find((o): o is PromiseRejectedResult => o.status === 'rejected');
  const restored = outcomes.flatMap((o) => (o.status === 'fulfilled' ? [o.value.workload] : []));
  if (failed) {
    if (restored.length) {
      await run.reporter.note(`${restored.length} of ${replicas} copies restored (${restored.map((r) => r.name).join(', ')}); the others failed`);
    }
    throw failed.reason;
  }
  const first = outcomes[0] as PromiseFulfilledResult<{ stats?: RestoreStats }>;
  return { restored, stats: first.value.stats };
}

/** The workload's own name when it is not running and no other restore is bringing it back; else a copy. */
async function placeInPlaceOrCopy(origin: WorkloadRef, jobId: string, ctx: WorkerContext): Promise<Place> {
  const { registry } = ctx.workloads;
  const current = await registry.get(origin.name);
  const running = current && (await isSameProcess({ pid: current.hostPid, startTime: current.startTime }));
  if (!running) {
    const claimed = current
      ? await registry.claimRestore(origin.name, jobId, ctx.config.criu.timeoutMs)
      : await registry.reserve(origin.name);
    // The folder from the checked name and the configured root (the manifest's `dir` is only what to rewrite from).
    if (claimed) return { name: origin.name, dir: ctx.workloads.dirOf(origin.name), inPlace: true };
  }
  return copyPlace(origin, ctx);
}

async function copyPlace(origin: WorkloadRef, ctx: WorkerContext): Promise<Place> {
  const name = await ctx.workloads.registry.reserveCopyName(origin.name);
  return { name, dir: ctx.workloads.dirOf(name), inPlace: false };
}

/** Gives back the names of places whose restore did not happen (reservations, in-place claims). */
async function releasePlaces(places: Place[], jobId: string, ctx: WorkerContext, done: boolean[] = []): Promise<void> {
  const { registry } = ctx.workloads;
  await Promise.all(
    places.map(async (place, i) => {
      if (place.inPlace) await registry.releaseRestore(place.name, jobId);
      if (!done[i]) await registry.release(place.name);
    }),
  );
}

async function restoreOne(
  order: RestoreOrder,
  run: JobRun,
  ctx: WorkerContext,
  checkpoint: Manifest,
  imagesDir: string,
  origin: WorkloadRef,
  place: Place,
  index: number,
): Promise<{ workload: RestoredWorkload; stats?: RestoreStats }> {
  await prepareWorkloadDir(place.dir);
  // The copy's own images: links to the checkpoint's files, and a files.img naming the copy's folder.
  const copyImages = place.dir === origin.dir ? undefined : await linkImages(imagesDir, path.join(place.dir, COPY_IMAGES));
  try {
    if (copyImages) await giveOwnFiles(imagesDir, copyImages, origin.dir, place.dir);
    const workDir = copyImages ?? imagesDir;
    const logFile = `restore-${order.jobId}${place.inPlace ? '' : `-${index}`}.log`;
    const prefix = (order.data.replicas ?? 1) > 1 ? `[${place.name}] ` : '';
    const tailer = new CriuLogTailer({
      file: path.join(workDir, logFile),
      onLines: (lines) => run.reporter.logLines(lines, prefix),
    });
    tailer.start();
    let res: { pid: number; warning?: string };
    try {
      res = await ctx.criu.restore(
        {
          imagesDir: workDir,
          ...jobCriuOptions('restore', order.data.criu),
          logLevel: order.data.criu?.logLevel ?? ctx.config.criu.logLevel,
          networkLock: networkLockFor(order.data.criu, ctx.config),
          logFile,
        },
        { signal: run.signal, timeoutMs: ctx.config.criu.timeoutMs, notify: { onStage: (e) => run.reporter.progress({ stage: e.stage }) } },
      );
    } catch (err) {
      await settleAfterRestore(ctx, tailer, copyImages ? undefined : imagesDir);
      throw err;
    }
    const { pid } = res;
    // Awaited before workload.restored (the log before the result); meanwhile the restored copy is recorded.
    const settled = Promise.all([
      settleAfterRestore(ctx, tailer, copyImages ? undefined : imagesDir),
      res.warning && run.reporter.note(`CRIU warning: ${res.warning}`),
    ]);
    settled.catch(() => undefined);
    const [procStat, stats, previous] = await Promise.all([
      readProcStat(pid),
      readRestoreStats(workDir).catch(() => undefined),
      ctx.workloads.registry.get(origin.name).catch(() => null),
    ]);
    const record: WorkloadRecord = {
      name: place.name,
      node: ctx.node,
      command: previous?.command ?? checkpoint.target.cmdline.split(' '),
      cwd: previous?.cwd ?? place.dir,
      envNames: previous?.envNames ?? [],
      dir: place.dir,
      hostPid: pid,
      // Gone already (it exited at once): recorded with start time 0, and the watcher reports the exit.
      startTime: procStat?.startTime ?? 0,
      startedAt: new Date().toISOString(),
      origin: { kind: 'restore', checkpointId: checkpoint.id, jobId: order.jobId, of: origin.name },
    };
    await Promise.all([ctx.workloads.registry.put(record), settled]);
    await run.reporter.publish('workload.restored', {
      name: place.name,
      of: origin.name,
      checkpointId: checkpoint.id,
      hostPid: pid,
      node: ctx.node,
      copy: !place.inPlace,
    });
    return { workload: { name: place.name, hostPid: pid }, stats };
  } finally {
    if (copyImages) await rm(copyImages, { recursive: true, force: true });
  }
}

/** A folder of hard links to the checkpoint's files (copies where linking is not possible), 0700. */
async function linkImages(imagesDir: string, into: string): Promise<string> {
  await rm(into, { recursive: true, force: true });
  await mkdir(into, { mode: 0o700 });
  for (const entry of await readdir(imagesDir, { withFileTypes: true })) {
    if (!entry.isFile() || entry.name === 'files.img' || !entry.name.endsWith('.img')) continue;
    const from = path.join(imagesDir, entry.name);
    const to = path.join(into, entry.name);
    await link(from, to).catch(async (e: NodeJS.ErrnoException) => {
      if (e.code !== 'EXDEV') throw e;
      await copyFile(from, to);
    });
  }
  return into;
}

/**
 * Rewrites the images' paths under the original workload's folder to the copy's folder, and makes those files there:
 * empty for files the tree appended to (its output), else a copy of the original's file (CRIU insists on its size).
 */
async function giveOwnFiles(imagesDir: string, copyImages: string, fromDir: string, toDir: string): Promise<void> {
  const prefix = fromDir.endsWith('/') ? fromDir : `${fromDir}/`;
  const changed = await rewriteFilePaths(imagesDir, copyImages, (p) => (p.startsWith(prefix) ? path.join(toDir, p.slice(prefix.length)) : undefined));
  for (const file of changed) {
    if (await stat(file.to).catch(() => null)) continue;
    await mkdir(path.dirname(file.to), { recursive: true, mode: 0o700 });
    if (!file.append && (await stat(file.from).catch(() => null))) await copyFile(file.from, file.to);
    else await (await open(file.to, 'a', 0o600)).close();
  }
}
