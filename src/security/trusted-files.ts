import { chmodSync, lstatSync, mkdirSync, type Stats } from 'node:fs';

/**
 * Checks on what a root process trusts from disk: a file or folder someone else can write (or own) lets that someone
 * steer ckpt (a config names the criu binary; a runtime folder holds the socket that grants root; the storage root
 * holds process memory). The trusted owners are root and the user ckpt runs as.
 */
export class UntrustedPathError extends Error {
  readonly code = 'EUNTRUSTED_PATH';
  constructor(
    readonly path: string,
    readonly reason: string,
  ) {
    super(`refusing ${path}: ${reason}`);
    this.name = 'UntrustedPathError';
  }
}

/** Root, and the user this process runs as. */
function trustedOwner(uid: number): boolean {
  return uid === 0 || uid === process.geteuid?.();
}

function ownerProblem(st: Stats): string | undefined {
  if (trustedOwner(st.uid)) return undefined;
  const self = process.geteuid?.();
  return `owned by uid ${st.uid}, not by root${self ? ` or uid ${self} (which ckpt runs as)` : ''}`;
}

/**
 * A file ckpt reads and acts on (a config file): a regular file (not a symlink), owned by root or ckpt's user, not
 * writable by group or others. `secret`: not readable by them either (mode 0600 or stricter). Throws UntrustedPathError.
 */
export function assertTrustedFile(file: string, options: { secret?: boolean } = {}): void {
  const st = lstatSync(file);
  if (!st.isFile()) throw new UntrustedPathError(file, st.isSymbolicLink() ? 'it is a symbolic link' : 'it is not a regular file');
  const owner = ownerProblem(st);
  if (owner) throw new UntrustedPathError(file, owner);
  const mode = st.mode & 0o777;
  if (options.secret && mode & 0o077) {
    throw new UntrustedPathError(file, `mode ${octal(mode)}: a secret must be readable by its owner only (chmod 600)`);
  }
  if (mode & 0o022) throw new UntrustedPathError(file, `mode ${octal(mode)}: writable by group or others (chmod go-w)`);
}

/**
 * A folder only ckpt may use (storage root, runtime folder): made 0700 when missing; an existing one must be a real
 * folder (not a symlink) owned by root or ckpt's user, else UntrustedPathError. A looser mode is fixed to 0700 and
 * reported through `onFixed` (what was wrong), so the operator learns of it.
 */
export function ensurePrivateDir(dir: string, onFixed?: (message: string) => void): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const st = lstatSync(dir);
  if (!st.isDirectory()) throw new UntrustedPathError(dir, st.isSymbolicLink() ? 'it is a symbolic link' : 'it is not a folder');
  const owner = ownerProblem(st);
  if (owner) throw new UntrustedPathError(dir, owner);
  const mode = st.mode & 0o777;
  if (mode !== 0o700) {
    chmodSync(dir, 0o700);
    onFixed?.(`${dir} had mode ${octal(mode)}; set to 0700 (it must be private to ckpt)`);
  }
}

function octal(mode: number): string {
  return '0' + mode.toString(8).padStart(3, '0');
}
