export { CriuClient } from './client.js';
export type { CheckResult, CriuClientOptions, CriuFeatures, CriuVersion, DumpResult, RestoreResult } from './client.js';
export { PreDumpSession } from './pre-dump-session.js';
export type { Notify, NotifyScript, RequestControl, StageEvent } from './connection.js';
export {
  CriuConnectionError,
  CriuError,
  CriuUnsupportedError,
  errnoName,
  isRetryableCriuError,
  type CriuConnectionErrorCode,
} from './errors.js';
export {
  criuOptionsSchema,
  dumpOptionsSchema,
  restoreOptionsSchema,
  preDumpSessionOptionsSchema,
  toCriuOpts,
  type CriuOptions,
  type DumpOptions,
  type PreDumpSessionOptions,
  type PreDumpStepOptions,
  type RestoreOptions,
} from './options.js';
export { CriuStatsError, missingFromDump, readDumpStats, readRestoreStats, type DumpStats, type RestoreStats } from './stats.js';
export { readLogTail, type LogTailOptions } from './log-tail.js';
export { decodeRequest, decodeResponse, encodeRequest, encodeResponse } from './codec.js';
export * from './rpc-messages.js';
export { locateCriu, CriuNotFoundError, MIN_CRIU, type LocatedCriu } from './locate.js';
export { CriuService, type CriuServiceOptions } from './criu-service.js';
