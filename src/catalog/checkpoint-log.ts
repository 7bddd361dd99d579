import type { Catalog } from './catalog.js';
import type { CheckpointStore } from './checkpoint-store.js';
import { CatalogError } from './errors.js';

/** CRIU's log of a dump, in the checkpoint's folder (listed and hashed in its manifest like its images). */
export const DUMP_LOG_FILE = 'dump.log';

export interface CheckpointLogSource {
  catalog: Pick<Catalog, 'get'>;
  store: Pick<CheckpointStore, 'readCheckpointFile'>;
  /** This node's name (config `node`). */
  node: string;
}

/**
 * CRIU's whole dump log of checkpoint `id`, as its folder on this node holds it (a node's own checkpoints, a copy
 * downloaded for a restore, or any with storage.shared). ECHECKPOINT_NOT_FOUND for an unknown id; ECHECKPOINT_ELSEWHERE
 * naming where its files are when this node has none; EFILE_MISSING when its folder here lacks the log.
 */
export async function readDumpLog(source: CheckpointLogSource, id: string): Promise<Buffer> {
  const checkpoint = await source.catalog.get(id);
  const log = await source.store.readCheckpointFile(checkpoint, DUMP_LOG_FILE);
  if (log) return log;
  if (checkpoint.location === 'remote') {
    throw new CatalogError('ECHECKPOINT_ELSEWHERE', `checkpoint ${id}'s files are only in the bucket (storage.remote): its CRIU log is in no node's folder`, id);
  }
  if (checkpoint.node !== source.node) {
    throw new CatalogError('ECHECKPOINT_ELSEWHERE', `checkpoint ${id}'s files are on node ${checkpoint.node}, not on this node (${source.node}): ask node ${checkpoint.node}'s API`, id);
  }
  throw new CatalogError('EFILE_MISSING', `checkpoint ${id} has no ${DUMP_LOG_FILE} in its folder on node ${source.node}`, id);
}
