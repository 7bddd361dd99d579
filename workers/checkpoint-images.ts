import { stat } from 'node:fs/promises';
import type { Checkpoint } from '../src/catalog/catalog.js';
import { FinalJobError } from './failure.js';
import type { WorkerContext } from './worker-context.js';

/**
 * A checkpoint whose images a job on this node may hand to CRIU: its folder is here and its files are what was
 * committed (a damaged checkpoint would restore a corrupt process, or half of one). Else a FinalJobError.
 */
export async function checkpointImages(ctx: WorkerContext, checkpointId: string): Promise<{ checkpoint: Checkpoint; imagesDir: string }> {
  const checkpoint = await ctx.catalog.get(checkpointId);
  const imagesDir = ctx.store.pathOf(checkpoint);
  if (!(await stat(imagesDir).catch(() => null))?.isDirectory()) {
    throw new FinalJobError(
      `checkpoint ${checkpoint.id}'s images are not on this node (${ctx.node}); it was made on node ${checkpoint.node}`,
      'EIMAGES_MISSING',
    );
  }
  const damage = await ctx.store.verify(checkpoint);
  if (damage.length) {
    throw new FinalJobError(`checkpoint ${checkpoint.id} is damaged, not restoring it: ${damage.join('; ')}`, 'ECHECKPOINT_DAMAGED');
  }
  return { checkpoint, imagesDir };
}
