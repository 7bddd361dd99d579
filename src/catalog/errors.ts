export type CatalogErrorCode =
  /** No checkpoint with that id (or it is being deleted). */
  | 'ECHECKPOINT_NOT_FOUND'
  /** Delete of a pinned checkpoint without force. */
  | 'EPINNED'
  /** Delete of a checkpoint a waiting or active restore refers to. */
  | 'EINUSE'
  /** A target key or checkpoint id that is not safe as a path component. */
  | 'EBADNAME'
  /** beginAttempt for an attempt folder that already exists (findAttempt / discard it first). */
  | 'EATTEMPT_EXISTS'
  /** commit onto a checkpoint folder that already exists. */
  | 'ECOMMITTED'
  /** A path of the store that leads out of the storage root (a symbolic link, or not a folder): refused, never followed. */
  | 'EUNSAFE_PATH'
  /** A checkpoint folder whose manifest is unsigned, does not verify, or names another folder: never restored. */
  | 'EMANIFEST_UNTRUSTED'
  /** A copy of a checkpoint (downloaded) whose files do not match its manifest: never listed or restored. */
  | 'EDAMAGED'
  /** A checkpoint's files asked of a node that does not have them (another node's, or only in the bucket). */
  | 'ECHECKPOINT_ELSEWHERE'
  /** A checkpoint folder without the file asked for (its CRIU log removed by hand). */
  | 'EFILE_MISSING';

/** Errors of the checkpoint store and the catalog, with a code callers map to HTTP statuses (ECHECKPOINT_NOT_FOUND -> 404, ...). */
export class CatalogError extends Error {
  constructor(
    readonly code: CatalogErrorCode,
    message: string,
    /** The checkpoint concerned, when there is one. */
    readonly checkpointId?: string,
  ) {
    super(message);
    this.name = 'CatalogError';
  }
}
