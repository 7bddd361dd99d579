import type { Checkpoint } from '../src/catalog/catalog.js';
import { CatalogError } from '../src/catalog/errors.js';
import type { Manifest } from '../src/catalog/manifest.js';
import { StorageError } from '../src/storage/errors.js';
import type { CriuLogTailer } from './criu-log-tailer.js';
import { FinalJobError } from './failure.js';
import { downloadStage } from './remote-copy.js';
import type { JobRun, WorkerContext } from './worker-context.js';

/**
 * A checkpoint whose images a job on this node may hand to CRIU (a restore, a drill). The folder comes from the signed
 * job (checkpoint id and target key) and what is used from that folder's signed manifest; the catalog entry (Redis)
 * must still list the checkpoint and agree, but is trusted for nothing. Its files must be what was committed (a damaged
 * checkpoint would restore a corrupt process, or half of one). Else a FinalJobError.
 */
export async function checkpointImages(
  ctx: WorkerContext,
  job: { checkpointId: string; target: string },
  run: JobRun,
  jobId: string,
): Promise<{ checkpoint: Manifest; imagesDir: string }> {
  const { checkpointId, target } = job;
  const listed = await ctx.catalog.get(checkpointId);
  const untrusted = () =>
    new FinalJobError(
      `checkpoint ${checkpointId}: its catalog entry (${listed.target.key}/${listed.id}) does not match its signed manifest ` +
        `(${target}/${checkpointId}); not using it`,
      'EMANIFEST_UNTRUSTED',
    );
  if (listed.id !== checkpointId || listed.target.key !== target) throw untrusted();
  // Not on this node (made elsewhere, or its local copy dropped): the bucket's copy, downloaded and checked.
  const inBucket = ctx.remote && listed.location !== 'local' && listed.location !== 'uploading';
  const checkpoint = (await ctx.store.readSigned(target, checkpointId)) ?? (inBucket ? await fetchCopy(ctx, listed, run, jobId) : null);
  if (!checkpoint) {
    throw new FinalJobError(
      `checkpoint ${checkpointId}'s images are not on this node (${ctx.node}); it was made on node ${listed.node}` +
        (ctx.remote ? ' and is not in the bucket' : ' (no storage.remote to fetch it from)'),
      'EIMAGES_MISSING',
    );
  }
  if (listed.signature !== checkpoint.signature) throw untrusted();
  const damage = await ctx.store.verify(checkpoint);
  if (damage.length) {
    throw new FinalJobError(`checkpoint ${checkpoint.id} is damaged, not using it: ${damage.join('; ')}`, 'ECHECKPOINT_DAMAGED');
  }
  return { checkpoint, imagesDir: ctx.store.pathOf(checkpoint) };
}

/** downloadStage, with a damaged or untrusted copy made final (another attempt would download the same bytes). */
async function fetchCopy(ctx: WorkerContext, listed: Checkpoint, run: JobRun, jobId: string): Promise<Manifest> {
  try {
    return await downloadStage(listed, run, jobId, ctx);
  } catch (err) {
    if ((err instanceof StorageError || err instanceof CatalogError) && err.code !== 'ECHECKPOINT_NOT_FOUND') {
      throw new FinalJobError(`checkpoint ${listed.id} from bucket ${ctx.remote!.where} is refused: ${err.message}`, err.code);
    }
    throw err;
  }
}

/**
 * After CRIU has restored from a checkpoint's folder (or failed to): its last log lines go out, and what it added to
 * the folder (restore-<job>.log, stats-restore: 0644) is made 0600 like the rest, both at once. `imagesDir` undefined:
 * CRIU worked in a copy's folder, which goes anyway.
 */
export async function settleAfterRestore(ctx: WorkerContext, tailer: CriuLogTailer, imagesDir: string | undefined): Promise<void> {
  await Promise.all([tailer.stop(), imagesDir && ctx.store.secure(imagesDir).catch(() => undefined)]);
}
