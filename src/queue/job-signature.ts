import { ValidationError } from '../common/validation.js';
import type { Signer } from '../security/signer.js';
import { parseJobData, type JobData } from './schemas.js';

/** Where a job's data carries its signature. */
export const SIGNATURE_FIELD = 'signature';

/**
 * What a job's signature covers besides its data: the job's type, id and the node whose queue holds it. So a
 * signature verifies only on the data it was made for, as that job, on that node: copied onto other data, another
 * job or another node's queue, it does not.
 */
export interface JobIdentity {
  type: string;
  jobId: string;
  node: string;
}

/** Why a worker refuses a job it took: not signed with the deployment's key, or not valid job data. */
export class JobRefusedError extends Error {
  constructor(
    readonly code: 'EJOB_UNSIGNED' | 'EJOB_SIGNATURE' | 'EJOB_INVALID',
    message: string,
    /** The fields that failed validation (EJOB_INVALID). */
    readonly fields: string[] = [],
  ) {
    super(message);
    this.name = 'JobRefusedError';
  }
}

/** `data` with its signature for `identity` (an earlier signature is replaced). */
export function signJobData<T extends object>(signer: Signer, identity: JobIdentity, data: T): T & { signature: string } {
  const { [SIGNATURE_FIELD]: _, ...payload } = data as T & { signature?: unknown };
  return { ...(payload as T), signature: signer.sign('job', { ...identity, data: payload }) };
}

/**
 * The data of a job a worker took, once its signature verifies for `identity` and it passes its type's schema;
 * else JobRefusedError, naming the signature or each bad field.
 */
export function openJobData(signer: Signer, identity: JobIdentity, data: unknown): JobData {
  const { [SIGNATURE_FIELD]: signature, ...payload } = (data ?? {}) as Record<string, unknown>;
  const what = `${identity.type} job ${identity.jobId}`;
  if (signature === undefined) {
    throw new JobRefusedError('EJOB_UNSIGNED', `${what} refused: its data has no signature (not enqueued by ckpt's API or scheduler)`);
  }
  if (!signer.verify('job', { ...identity, data: payload }, signature)) {
    throw new JobRefusedError(
      'EJOB_SIGNATURE',
      `${what} refused: its signature does not verify for this job on node ${identity.node} (data altered, or signed with another key)`,
    );
  }
  try {
    return parseJobData(identity.type, payload);
  } catch (err) {
    if (!(err instanceof ValidationError)) throw err;
    throw new JobRefusedError('EJOB_INVALID', `${what} refused: ${err.message}`, err.issues.map((i) => i.field));
  }
}
