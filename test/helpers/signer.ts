import { randomBytes } from 'node:crypto';
import { Signer } from '../../src/security/signer.js';

/** A signer with a fresh random key, for tests whose jobs and manifests no worker of another key has to verify. */
export function throwawaySigner(): Signer {
  return new Signer(randomBytes(32));
}
