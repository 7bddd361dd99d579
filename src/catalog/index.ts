export {
  Catalog,
  type CatalogOptions,
  type Checkpoint,
  type CheckpointFilter,
  type CheckpointLocation,
  type DeleteResult,
  type ListOptions,
  type PendingDeletesResult,
  type RebuildResult,
} from './catalog.js';
export {
  CheckpointStore,
  MANIFEST_FILE,
  type Attempt,
  type AttemptOwner,
  type CheckpointStoreOptions,
  type FoundAttempt,
  type ManifestDraft,
} from './checkpoint-store.js';
export { CatalogError, type CatalogErrorCode } from './errors.js';
export { manifestSchema, type Manifest } from './manifest.js';
