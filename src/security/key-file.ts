import { randomBytes } from 'node:crypto';
import { linkSync, lstatSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Config } from '../config/schema.js';
import { MIN_KEY_BYTES, Signer } from './signer.js';
import { assertTrustedFile, UntrustedPathError } from './trusted-files.js';

/** config `security.jobKeyFile`, or its default: `job.key` next to the storage root (`/var/lib/ckpt/job.key`). */
export function jobKeyFileOf(config: Pick<Config, 'security' | 'storage'>): string {
  return config.security.jobKeyFile || path.join(path.dirname(path.resolve(config.storage.root)), 'job.key');
}

/**
 * The signer of jobs and manifests, from the key file: 32 random bytes as 64 hex digits, made (0600) when missing,
 * so the first start of a deployment makes it and the other nodes get a copy of it. The file must be a regular file
 * owned by root (or ckpt's user) that nobody else can read or write; else UntrustedPathError, naming the file.
 */
export function loadSigner(file: string): Signer {
  if (!lstatSync(file, { throwIfNoEntry: false })) createKeyFile(file);
  assertTrustedFile(file, { secret: true });
  const text = readFileSync(file, 'utf8').trim();
  if (!/^([0-9a-f]{2}){32,}$/i.test(text)) {
    throw new UntrustedPathError(file, `not a key: expected at least ${MIN_KEY_BYTES * 2} hex digits`);
  }
  return new Signer(Buffer.from(text, 'hex'));
}

/** Written aside and linked into place: processes starting at once each try, one key wins, nobody reads half a file. */
function createKeyFile(file: string): void {
  mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  const draft = `${file}.${process.pid}.tmp`;
  rmSync(draft, { force: true });
  writeFileSync(draft, randomBytes(MIN_KEY_BYTES).toString('hex') + '\n', { flag: 'wx', mode: 0o600 });
  try {
    linkSync(draft, file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  } finally {
    rmSync(draft, { force: true });
  }
}
