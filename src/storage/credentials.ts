import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { assertTrustedFile, UntrustedPathError } from '../security/trusted-files.js';
import { StorageError } from './errors.js';

export interface BucketCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}

const credentialsFileSchema = z.strictObject({
  accessKeyId: z.string().min(1),
  secretAccessKey: z.string().min(1),
  sessionToken: z.string().min(1).optional(),
});

/**
 * The bucket's credentials: from `file` (JSON, owned by root or ckpt's user, mode 0600: checked, else refused) or,
 * when `file` is empty, from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN. StorageError ECREDENTIALS
 * otherwise; messages name the file or variable, never a secret.
 */
export function loadBucketCredentials(file: string, env: NodeJS.ProcessEnv = process.env): BucketCredentials {
  if (!file) {
    const accessKeyId = env.AWS_ACCESS_KEY_ID;
    const secretAccessKey = env.AWS_SECRET_ACCESS_KEY;
    if (!accessKeyId || !secretAccessKey) {
      throw new StorageError(
        'ECREDENTIALS',
        'storage.remote: no credentials: set storage.remote.credentialsFile, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY',
      );
    }
    return { accessKeyId, secretAccessKey, ...(env.AWS_SESSION_TOKEN && { sessionToken: env.AWS_SESSION_TOKEN }) };
  }
  const where = `storage.remote.credentialsFile ${file}`;
  let parsed: unknown;
  try {
    assertTrustedFile(file, { secret: true });
    parsed = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    const reason = err instanceof UntrustedPathError ? err.reason : err instanceof SyntaxError ? 'not JSON' : (err as Error).message;
    throw new StorageError('ECREDENTIALS', `${where}: ${reason}`);
  }
  const result = credentialsFileSchema.safeParse(parsed);
  if (!result.success) {
    const issue = result.error.issues[0]!;
    throw new StorageError('ECREDENTIALS', `${where}: ${issue.path.join('.') || '(file)'}: ${issue.message}`);
  }
  return result.data;
}
