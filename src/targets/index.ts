export { PolicyError, TargetError, type TargetErrorCode, type TargetMatch } from './errors.js';
export { isSafeTargetKey, targetKey } from './key.js';
export { TargetPolicy, type TargetPolicyOptions } from './policy.js';
export { readProcessSnapshot, type ProcessSnapshot } from './process-snapshot.js';
export { readPidFile, resolveTarget, type ResolveOptions } from './resolve.js';
export { MAX_MATCH_LENGTH, targetSpecSchema, type TargetSpec } from './spec.js';
