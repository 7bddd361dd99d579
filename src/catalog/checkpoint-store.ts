import { constants } from 'node:fs';
import { chmod, lstat, mkdir, open, readdir, readFile, readlink, rename, rm, rmdir, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { parseOrThrow } from '../common/validation.js';
import type { Signer } from '../security/signer.js';
import { isSafeTargetKey } from '../targets/key.js';
import { readProcStat } from '../common/proc.js';
import { CatalogError } from './errors.js';
import { sha256Of } from './file-digest.js';
import { isCheckpointId } from '../common/checkpoint-id.js';
import { manifestSchema, type Manifest } from './manifest.js';

export interface CheckpointStoreOptions {
  /** Storage root (config `storage.root`); created 0700 when missing. Checkpoints: `<root>/<targetKey>/<checkpointId>/`. */
  root: string;
  /**
   * Flush every file of a checkpoint to disk before its manifest is written (config `storage.sync`), so a checkpoint
   * that is listed survives a crash or power loss whole. Default true.
   */
  sync?: boolean;
  /** Signs each manifest at commit, and checks it before a restore trusts the folder (readSigned). */
  signer: Signer;
}

/** A manifest before commit(): the store adds what it measures on disk (`bytes`, `files`, `sha256`) and the signature. */
export type ManifestDraft = Omit<Manifest, 'bytes' | 'files' | 'sha256' | 'signature'>;

/** What commit() records of one file. */
interface FileFacts {
  size: number;
  /** Only when the walk hashes (commit). */
  sha256?: string;
}

/** Who works in an attempt folder: the process that began (or took over) it. Dead owner = stale folder. */
export interface AttemptOwner {
  pid: number;
  /** /proc start time of the owner, so a reused pid does not count as the owner. */
  startTime: number;
  jobId?: string;
  /** ISO time the attempt was begun or taken over. */
  since: string;
}

/** An unfinished attempt folder, `<root>/<targetKey>/.tmp-<checkpointId>`. */
export interface Attempt {
  dir: string;
  targetKey: string;
  checkpointId: string;
}

/** A previous attempt found by findAttempt, with whoever owned it before it was taken over (null: unknown). */
export interface FoundAttempt extends Attempt {
  previousOwner: AttemptOwner | null;
}

const TMP_PREFIX = '.tmp-';
const OWNER_FILE = '.owner.json';
export const MANIFEST_FILE = 'manifest.json';
const DIR_MODE = 0o700;
const FILE_MODE = 0o600;

/** What names a checkpoint's folder: its id and its target's key. */
export type CheckpointPlace = { id: string; target: Pick<Manifest['target'], 'key'> };

/**
 * Checkpoint folders on this node's disk. A dump works in a temporary attempt folder; commit() secures its files
 * (folders 0700, files 0600), writes manifest.json and renames it into place, so a checkpoint folder is either
 * complete or absent. Every target key and id is checked before it becomes part of a path.
 */
export class CheckpointStore {
  readonly root: string;
  private readonly sync: boolean;
  private readonly signer: Signer;

  constructor(options: CheckpointStoreOptions) {
    this.root = path.resolve(options.root);
    this.sync = options.sync ?? true;
    this.signer = options.signer;
  }

  /**
   * Creates the attempt folder `<root>/<targetKey>/.tmp-<checkpointId>` (0700) owned by the current process.
   * Throws CatalogError EBADNAME for an unsafe key or id, EATTEMPT_EXISTS when it exists already
   * (a retry should findAttempt() and then adopt or discard it).
   */
  async beginAttempt(targetKey: string, checkpointId: string, options: { jobId?: string } = {}): Promise<Attempt> {
    const attempt = this.attemptOf(targetKey, checkpointId);
    const targetDir = path.dirname(attempt.dir);
    // remove() may rmdir an empty target folder between our mkdirs: then make it again.
    for (let tries = 0; ; tries++) {
      // Mostly the target folder exists already: one look that it is a real folder (not a planted symlink) then.
      if (!(await isRealDir(targetDir))) {
        await this.ensureDir(this.root);
        await this.ensureDir(targetDir);
      }
      try {
        await mkdir(attempt.dir, { mode: DIR_MODE });
        break;
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code === 'EEXIST') {
          throw new CatalogError('EATTEMPT_EXISTS', `attempt folder ${attempt.dir} exists already`, checkpointId);
        }
        if (code !== 'ENOENT' || tries >= 3) throw e;
      }
    }
    await Promise.all([chmod(attempt.dir, DIR_MODE), this.writeOwner(attempt.dir, options.jobId)]);
    return attempt;
  }

  /**
   * A previous attempt's folder for a retried job, or null. When found it is taken over by the current process
   * (so sweepStale elsewhere leaves it alone); the caller then commits it (CRIU finished) or discards it.
   */
  async findAttempt(
    targetKey: string,
    checkpointId: string,
    options: { jobId?: string } = {},
  ): Promise<FoundAttempt | null> {
    const attempt = this.attemptOf(targetKey, checkpointId);
    await this.assertContained(targetKey, path.basename(attempt.dir));
    if (!(await isRealDir(attempt.dir))) return null;
    const previousOwner = await readOwner(attempt.dir);
    await this.writeOwner(attempt.dir, options.jobId);
    return { ...attempt, previousOwner };
  }

  /**
   * Makes an attempt a checkpoint: secures its files (0700 / 0600), flushes them to disk (option `sync`), measures
   * them into the manifest (`bytes`; `files` and `sha256`: each file's size and SHA-256, checked by verify() before a
   * restore), writes manifest.json (0600, flushed), and once all of it is on disk renames the folder to
   * `<root>/<targetKey>/<id>` and flushes the target folder. Each file is read once, while it is flushed: a big
   * checkpoint costs about one flush of its bytes.
   * Returns the manifest as written. The draft must be valid (else ValidationError) and name this attempt's target
   * key and id (else EBADNAME). Throws ECOMMITTED when that folder exists. The draft may still be in the making (a
   * dump's statistics being read): the files are sealed meanwhile.
   */
  async commit(attemptDir: string, draft: ManifestDraft | Promise<ManifestDraft>): Promise<Manifest> {
    const drafted = Promise.resolve(draft);
    // Settled below, or not needed: a refused folder must not leave the draft's failure unhandled.
    drafted.catch(() => undefined);
    const attempt = this.parseAttemptDir(attemptDir);
    await this.assertContained(attempt.targetKey, path.basename(attempt.dir));
    // The files' flushes go on while the manifest is made and written: files, manifest and folder reach the disk in
    // one round of flushes (one journal commit, shared with whatever else flushes meanwhile), all before the rename.
    const flushes: Promise<void>[] = [];
    const [sealed, placed] = await Promise.allSettled([
      this.walkFiles(attempt.dir, { sync: this.sync, hash: true, flushes }),
      drafted.then((d) => this.placeDraft(d, attempt)),
    ]);
    if (placed.status === 'rejected') throw placed.reason;
    const { checked, finalDir } = placed.value;
    // The owner file goes either way: the folder is committed now, or (ECOMMITTED) left to whoever adopts or sweeps it.
    const [committedAlready] = await Promise.all([exists(finalDir), rm(path.join(attempt.dir, OWNER_FILE), { force: true })]);
    if (committedAlready) {
      throw new CatalogError('ECOMMITTED', `checkpoint folder ${finalDir} exists already`, checked.id);
    }
    if (sealed.status === 'rejected') throw sealed.reason;
    const facts = Object.entries(sealed.value);
    const unsigned: Manifest = {
      ...checked,
      bytes: facts.reduce((total, [, f]) => total + f.size, 0),
      files: Object.fromEntries(facts.map(([name, f]) => [name, f.size])),
      sha256: Object.fromEntries(facts.map(([name, f]) => [name, f.sha256!])),
    };
    // The signature covers the file list and every file's hash: a signed manifest vouches for the images' contents.
    const manifest: Manifest = { ...unsigned, signature: this.signer.sign('manifest', unsigned) };
    await Promise.all([writeManifestDurably(attempt.dir, manifest), ...flushes]);
    await rename(attempt.dir, finalDir);
    await fsyncDir(path.dirname(finalDir));
    return manifest;
  }

  /** The draft checked (schema; it must name `attempt`'s target key and id) and the folder it is to be committed to. */
  private async placeDraft(draft: ManifestDraft, attempt: Attempt): Promise<{ checked: Omit<Manifest, 'signature'>; finalDir: string }> {
    const { signature: _, ...checked } = parseOrThrow(manifestSchema, { ...draft, bytes: 0, files: {} }, 'checkpoint manifest');
    if (checked.id !== attempt.checkpointId || checked.target.key !== attempt.targetKey) {
      throw new CatalogError(
        'EBADNAME',
        `manifest ${checked.target.key}/${checked.id} does not belong in attempt folder ${attempt.dir}`,
        checked.id,
      );
    }
    return { checked, finalDir: await this.containedPathOf(checked) };
  }

  /**
   * What is wrong with a committed checkpoint's files against its manifest: each missing file, one whose size
   * changed, or one whose content no longer has the SHA-256 of the manifest (a crash before the files reached the
   * disk, a full disk, a failing disk, someone's hands). Reads every hashed file once. Empty when intact.
   */
  async verify(manifest: Manifest): Promise<string[]> {
    return this.verifyFolder(await this.containedPathOf(manifest), manifest);
  }

  /**
   * Makes an attempt folder that holds a copy of a checkpoint made elsewhere (downloaded from the bucket) a checkpoint
   * folder: its manifest must be signed with the deployment's key and name this attempt's target key and id (else
   * EMANIFEST_UNTRUSTED), and every file must have the manifest's size and SHA-256 (else EDAMAGED naming each file;
   * the attempt is removed either way). Secured (0700 / 0600), manifest written, renamed into place like commit().
   */
  async adoptCopy(attemptDir: string, manifest: Manifest): Promise<Manifest> {
    const attempt = this.parseAttemptDir(attemptDir);
    await this.assertContained(attempt.targetKey, path.basename(attempt.dir));
    try {
      const problem = this.untrustedBecause(manifest, attempt.targetKey, attempt.checkpointId);
      if (problem) throw new CatalogError('EMANIFEST_UNTRUSTED', `not trusting the copy of ${attempt.targetKey}/${attempt.checkpointId}: ${problem}`, manifest.id);
      await rm(path.join(attempt.dir, OWNER_FILE), { force: true });
      await this.walkFilesSettled(attempt.dir, { sync: this.sync, hash: false });
      const damage = await this.verifyFolder(attempt.dir, manifest);
      if (damage.length) throw new CatalogError('EDAMAGED', `checkpoint ${manifest.id} is damaged: ${damage.join('; ')}`, manifest.id);
      await writeManifestDurably(attempt.dir, manifest);
      await rename(attempt.dir, await this.containedPathOf(manifest));
      await fsyncDir(path.dirname(attempt.dir));
      return manifest;
    } catch (err) {
      await rm(attempt.dir, { recursive: true, force: true });
      throw err;
    }
  }

  private async verifyFolder(dir: string, manifest: Manifest): Promise<string[]> {
    const problems = await Promise.all(
      Object.entries(manifest.files).map(async ([name, size]) => {
        const expected = manifest.sha256?.[name];
        // O_NONBLOCK: a FIFO planted in a file's place is opened (and found not to be a file) instead of hanging.
        const flags = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK;
        const handle = await open(path.join(dir, name), flags).catch(() => null);
        if (!handle) return `${name} is missing`;
        try {
          const st = await handle.stat();
          if (!st.isFile()) return `${name} is missing`;
          if (st.size !== size) return `${name} is ${st.size} bytes, the manifest says ${size}`;
          if (expected === undefined) return null;
          return (await sha256Of(handle, st.size)).sha256 === expected ? null : `${name} does not match its SHA-256 in the manifest`;
        } finally {
          await handle.close();
        }
      }),
    );
    return problems.filter((p): p is string => p !== null);
  }

  /** Removes an attempt folder (a failed or abandoned attempt). Missing is fine. */
  async discard(attemptDir: string): Promise<void> {
    const attempt = this.parseAttemptDir(attemptDir);
    await this.assertContained(attempt.targetKey, path.basename(attempt.dir));
    await rm(attempt.dir, { recursive: true, force: true });
    await this.removeTargetDirIfEmpty(attempt.targetKey);
  }

  /** The committed manifest of `<targetKey>/<checkpointId>`, or null when there is no such checkpoint folder. */
  async readManifest(targetKey: string, checkpointId: string): Promise<Manifest | null> {
    const dir = path.join(this.targetDir(targetKey), this.checkedId(checkpointId));
    await this.assertContained(targetKey, checkpointId);
    let text: string;
    try {
      text = await readFile(path.join(dir, MANIFEST_FILE), { encoding: 'utf8', flag: constants.O_RDONLY | constants.O_NOFOLLOW });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
      if ((e as NodeJS.ErrnoException).code === 'ELOOP') throw unsafe(path.join(dir, MANIFEST_FILE), 'is a symbolic link');
      throw e;
    }
    return parseOrThrow(manifestSchema, JSON.parse(text), path.join(dir, MANIFEST_FILE));
  }

  /**
   * The manifest of `<targetKey>/<checkpointId>` a restore may trust: signed with the deployment's key and naming
   * this very folder (a signed manifest copied into another folder is refused). Null when there is no such folder;
   * CatalogError EMANIFEST_UNTRUSTED when its manifest is unsigned, altered or someone else's.
   */
  async readSigned(targetKey: string, checkpointId: string): Promise<Manifest | null> {
    const manifest = await this.readManifest(targetKey, checkpointId);
    if (!manifest) return null;
    const where = path.join(this.targetDir(targetKey), checkpointId);
    const problem = this.untrustedBecause(manifest, targetKey, checkpointId);
    if (problem) throw new CatalogError('EMANIFEST_UNTRUSTED', `not trusting checkpoint folder ${where}: ${problem}`, checkpointId);
    return manifest;
  }

  /**
   * The bytes of file `name` of a committed checkpoint's folder, or null when it is missing. `name` is one of ckpt's
   * (dump.log), never a request's; the folder is reached through containedPathOf and the file opened O_NOFOLLOW
   * (a symbolic link in its place: EUNSAFE_PATH) and O_NONBLOCK (a FIFO planted there is found not to be a file).
   */
  async readCheckpointFile(place: CheckpointPlace, name: string): Promise<Buffer | null> {
    const file = path.join(await this.containedPathOf(place), name);
    const handle = await open(file, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK).catch((e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT') return null;
      if (e.code === 'ELOOP') throw unsafe(file, 'is a symbolic link');
      throw e;
    });
    if (!handle) return null;
    try {
      if (!(await handle.stat()).isFile()) throw unsafe(file, 'is not a file');
      return await handle.readFile();
    } finally {
      await handle.close();
    }
  }

  /** Why a manifest cannot vouch for the checkpoint `<targetKey>/<checkpointId>`, or undefined when it can. */
  private untrustedBecause(manifest: Manifest, targetKey: string, checkpointId: string): string | undefined {
    const { signature, ...signed } = manifest;
    if (signature === undefined) return 'it is not signed';
    if (!this.signer.verify('manifest', signed, signature)) return 'its signature does not verify (altered, or signed with another key)';
    if (manifest.id !== checkpointId || manifest.target.key !== targetKey) return `it is the manifest of ${manifest.target.key}/${manifest.id}`;
    return undefined;
  }

  /**
   * Removes a checkpoint's folder (missing is fine), and its target folder when that is left empty. EUNSAFE_PATH,
   * removing nothing, when the way there leaves the root (see assertContained).
   */
  async remove(manifest: CheckpointPlace): Promise<void> {
    const dir = await this.containedPathOf(manifest);
    await rm(dir, { recursive: true, force: true });
    await this.removeTargetDirIfEmpty(manifest.target.key);
  }

  /** `<root>/<targetKey>/<id>` of a checkpoint (key and id checked: EBADNAME). Nothing on disk is looked at: see containedPathOf. */
  pathOf(manifest: CheckpointPlace): string {
    return path.join(this.targetDir(manifest.target.key), this.checkedId(manifest.id));
  }

  /** pathOf, once assertContained has found that the folder (if it exists) is a real folder inside the root. */
  async containedPathOf(manifest: CheckpointPlace): Promise<string> {
    const dir = this.pathOf(manifest);
    await this.assertContained(manifest.target.key, manifest.id);
    return dir;
  }

  /**
   * Refuses (CatalogError EUNSAFE_PATH) a way from the root to `<root>/<targetKey>[/<name>]` that leaves the root:
   * each part that exists must be a real folder, looked at with lstat (a symbolic link is refused, never followed).
   * The root itself is checked at start (src/security). Parts that do not exist are fine: there is nothing to follow.
   */
  async assertContained(targetKey: string, name?: string): Promise<void> {
    const targetDir = this.targetDir(targetKey);
    for (const part of name === undefined ? [targetDir] : [targetDir, path.join(targetDir, name)]) {
      const st = await lstat(part).catch((e: NodeJS.ErrnoException) => {
        if (e.code === 'ENOENT') return null;
        throw e;
      });
      if (!st) return;
      if (st.isSymbolicLink()) throw unsafe(part, `is a symbolic link (to ${await readlink(part).catch(() => '?')})`);
      if (!st.isDirectory()) throw unsafe(part, 'is not a folder');
    }
  }

  /** rmdir of a target folder left empty (a real folder only: rmdir never follows a symlink). */
  private async removeTargetDirIfEmpty(targetKey: string): Promise<void> {
    await rmdir(this.targetDir(targetKey)).catch(() => undefined);
  }

  /** Folders 0700, regular files 0600, recursively (CRIU creates its images 0644 unless its umask says otherwise). */
  async secure(dir: string): Promise<void> {
    await this.walkFilesSettled(dir, { sync: false, hash: false });
  }

  /** walkFiles, returning once every flush (and file closing) it started has settled too. */
  private async walkFilesSettled(dir: string, work: Omit<FileWork, 'flushes'>): Promise<void> {
    const flushes: Promise<void>[] = [];
    await this.walkFiles(dir, { ...work, flushes });
    await Promise.all(flushes);
  }

  /**
   * secure(), with `work` done to each file; returns each regular file's size (and SHA-256 when hashed) by relative
   * path once every file is secured and hashed. Flushes still under way are in `work.flushes`, for the caller to await.
   */
  private async walkFiles(dir: string, options: FileWork, prefix = ''): Promise<Record<string, FileFacts>> {
    await chmod(dir, DIR_MODE);
    const files: Record<string, FileFacts> = {};
    // All entries at once: a dump has a few dozen files, and one at a time costs a thread-pool trip each.
    await Promise.all(
      (await readdir(dir, { withFileTypes: true })).map(async (entry) => {
        const full = path.join(dir, entry.name);
        const name = prefix + entry.name;
        // Not part of the checkpoint: commit() removes it once the folder is sealed.
        if (name === OWNER_FILE) return;
        if (entry.isDirectory()) Object.assign(files, await this.walkFiles(full, options, `${name}/`));
        else if (entry.isFile()) files[name] = await secureFile(full, options);
        // Symlinks and the like are left alone (and not counted).
      }),
    );
    // The entries of sub-folders; the attempt folder itself is flushed with the manifest.
    if (options.sync && prefix) options.flushes.push(handled(fsyncDir(dir)));
    return files;
  }

  /**
   * Removes attempt folders nobody owns any more (owner process gone, or pid reused) and older than `olderThanMs`.
   * Called at worker start; folders of live owners are never touched. Returns the folders removed.
   */
  async sweepStale(olderThanMs: number): Promise<string[]> {
    const removed: string[] = [];
    const targets = await readdir(this.root, { withFileTypes: true }).catch((e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT') return [];
      throw e;
    });
    for (const target of targets) {
      if (!target.isDirectory() || !isSafeTargetKey(target.name)) continue;
      const targetDir = path.join(this.root, target.name);
      for (const entry of await readdir(targetDir, { withFileTypes: true }).catch(() => [])) {
        if (!entry.isDirectory() || !entry.name.startsWith(TMP_PREFIX)) continue;
        if (!isCheckpointId(entry.name.slice(TMP_PREFIX.length))) continue;
        const dir = path.join(targetDir, entry.name);
        const owner = await readOwner(dir);
        if (owner && (await isOwnerAlive(owner))) continue;
        const since = owner ? Date.parse(owner.since) : (await stat(dir).catch(() => null))?.mtimeMs;
        if (since === undefined || Date.now() - since < olderThanMs) continue;
        await rm(dir, { recursive: true, force: true });
        removed.push(dir);
      }
    }
    return removed;
  }

  /**
   * Every committed checkpoint under the root whose manifest is complete and whose files match it: what the catalog
   * can be rebuilt from. Attempt folders (`.tmp-*`) never count; a folder with a missing, unreadable or invalid
   * manifest, one that names another folder, or damaged files is reported in `skipped` with the reason.
   */
  async listCommitted(): Promise<{ manifests: Manifest[]; skipped: { dir: string; reason: string }[] }> {
    const manifests: Manifest[] = [];
    const skipped: { dir: string; reason: string }[] = [];
    const entries = async (dir: string) =>
      readdir(dir, { withFileTypes: true }).catch((e: NodeJS.ErrnoException) => {
        if (e.code === 'ENOENT') return [];
        throw e;
      });
    for (const target of await entries(this.root)) {
      if (!target.isDirectory() || !isSafeTargetKey(target.name)) continue;
      for (const entry of await entries(path.join(this.root, target.name))) {
        if (!entry.isDirectory() || !isCheckpointId(entry.name)) continue;
        const dir = path.join(this.root, target.name, entry.name);
        try {
          // Only what ckpt signed is listed again (a restore would refuse anything else).
          const manifest = await this.readSigned(target.name, entry.name);
          if (!manifest) throw new Error(`no ${MANIFEST_FILE}`);
          const problems = await this.verify(manifest);
          if (problems.length) throw new Error(`damaged: ${problems.join('; ')}`);
          manifests.push(manifest);
        } catch (err) {
          skipped.push({ dir, reason: (err as Error).message });
        }
      }
    }
    return { manifests, skipped };
  }

  private attemptOf(targetKey: string, checkpointId: string): Attempt {
    const dir = path.join(this.targetDir(targetKey), TMP_PREFIX + this.checkedId(checkpointId));
    return { dir, targetKey, checkpointId };
  }

  /** Accepts only `<root>/<safe key>/.tmp-<id>` (after resolving), so a caller's path cannot point elsewhere. */
  private parseAttemptDir(attemptDir: string): Attempt {
    const dir = path.resolve(attemptDir);
    const name = path.basename(dir);
    const targetKey = path.basename(path.dirname(dir));
    const checkpointId = name.slice(TMP_PREFIX.length);
    if (
      path.dirname(path.dirname(dir)) !== this.root ||
      !name.startsWith(TMP_PREFIX) ||
      !isSafeTargetKey(targetKey) ||
      !isCheckpointId(checkpointId)
    ) {
      throw new CatalogError('EBADNAME', `${attemptDir} is not an attempt folder of ${this.root}`);
    }
    return { dir, targetKey, checkpointId };
  }

  private targetDir(targetKey: string): string {
    if (!isSafeTargetKey(targetKey)) throw new CatalogError('EBADNAME', `not a safe target key: ${JSON.stringify(targetKey)}`);
    return path.join(this.root, targetKey);
  }

  private checkedId(checkpointId: string): string {
    if (!isCheckpointId(checkpointId)) {
      throw new CatalogError('EBADNAME', `not a checkpoint id: ${JSON.stringify(checkpointId)}`);
    }
    return checkpointId;
  }

  /** mkdir (0700 when created here) and refuse a symlink or non-folder in its place. */
  private async ensureDir(dir: string): Promise<void> {
    const made = await mkdir(dir, { recursive: true, mode: DIR_MODE });
    if (made !== undefined) await chmod(dir, DIR_MODE);
    const st = await lstat(dir);
    if (st.isSymbolicLink()) throw unsafe(dir, 'is a symbolic link');
    if (!st.isDirectory()) throw unsafe(dir, 'is not a folder');
  }

  private async writeOwner(dir: string, jobId: string | undefined): Promise<void> {
    const owner: AttemptOwner = { pid: process.pid, startTime: await ownStartTime(), since: new Date().toISOString() };
    if (jobId !== undefined) owner.jobId = jobId;
    await writeFile(path.join(dir, OWNER_FILE), JSON.stringify(owner), { mode: FILE_MODE });
  }
}

/** This process's /proc start time: it never changes, so it is read once (0 when unreadable, as before: tried again next time). */
let ownStart: Promise<number> | undefined;
function ownStartTime(): Promise<number> {
  ownStart ??= readProcStat(process.pid).then((self) => {
    if (!self) ownStart = undefined;
    return self?.startTime ?? 0;
  });
  return ownStart;
}

async function readOwner(dir: string): Promise<AttemptOwner | null> {
  try {
    const owner = JSON.parse(await readFile(path.join(dir, OWNER_FILE), 'utf8')) as AttemptOwner;
    return Number.isInteger(owner.pid) && Number.isInteger(owner.startTime) ? owner : null;
  } catch {
    return null;
  }
}

async function isOwnerAlive(owner: AttemptOwner): Promise<boolean> {
  const stat = await readProcStat(owner.pid);
  return !!stat && stat.state !== 'Z' && stat.startTime === owner.startTime;
}

function unsafe(where: string, why: string): CatalogError {
  return new CatalogError('EUNSAFE_PATH', `refusing ${where}: it ${why}; nothing outside the storage root is followed`);
}

async function isRealDir(dir: string): Promise<boolean> {
  const st = await lstat(dir).catch(() => null);
  return !!st && st.isDirectory();
}

async function exists(p: string): Promise<boolean> {
  return (await lstat(p).catch(() => null)) !== null;
}

/** What the walk of a folder does to each file besides securing it. */
interface FileWork {
  /** Flush each file and sub-folder to disk. */
  sync: boolean;
  /** SHA-256 of each file. */
  hash: boolean;
  /** Where each flush still under way goes; the walk's caller awaits them all. */
  flushes: Promise<void>[];
}

/**
 * Makes `file` 0600 (through its descriptor: a file swapped for a symlink is refused), flushes it when `sync` and
 * hashes it when `hash`, at the same time: the file is read from the page cache while its pages go to the disk.
 * Returns once hashed; the flush (and the file's closing, after both) goes into `work.flushes`.
 */
async function secureFile(file: string, work: FileWork): Promise<FileFacts> {
  const handle = await open(file, constants.O_RDONLY | constants.O_NOFOLLOW);
  let st;
  try {
    st = await handle.stat();
    if ((st.mode & 0o777) !== FILE_MODE) await handle.chmod(FILE_MODE);
  } catch (err) {
    await handle.close();
    throw err;
  }
  const flushed = work.sync ? handle.datasync() : Promise.resolve();
  const hashed = work.hash ? sha256Of(handle, st.size) : Promise.resolve(undefined);
  // Closed once both have settled: the hash thread reads by descriptor, and a number closed early could be another
  // file's or socket's by then.
  const closed = Promise.allSettled([hashed, flushed]).then(() => handle.close());
  work.flushes.push(handled(Promise.all([flushed, closed]).then(() => undefined)));
  const digest = await hashed;
  if (digest && digest.bytes !== st.size) {
    throw new Error(`${file} changed while it was committed (${st.size} bytes, then ${digest.bytes})`);
  }
  return digest ? { size: st.size, sha256: digest.sha256 } : { size: st.size };
}

/** `promise`, marked handled: it is awaited later, or not at all when the work fails before (its failure then adds nothing). */
function handled<T>(promise: Promise<T>): Promise<T> {
  promise.catch(() => undefined);
  return promise;
}

/**
 * Writes the manifest into `dir`, then flushes its data and the folder's entries (the manifest's included: it exists
 * by then) at once: two flushes in the time of one, both done before the caller renames the folder into place.
 */
async function writeManifestDurably(dir: string, manifest: Manifest): Promise<void> {
  const file = path.join(dir, MANIFEST_FILE);
  const handle = await open(file, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_NOFOLLOW, FILE_MODE);
  try {
    await handle.chmod(FILE_MODE);
    await handle.writeFile(JSON.stringify(manifest, null, 2) + '\n');
    await Promise.all([handle.sync(), fsyncDir(dir)]);
  } finally {
    await handle.close();
  }
}

async function fsyncDir(dir: string): Promise<void> {
  const handle = await open(dir, constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
