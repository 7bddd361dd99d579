import { constants } from 'node:fs';
import { chmod, lstat, mkdir, open, readdir, readFile, rename, rm, rmdir, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { parseOrThrow } from '../common/validation.js';
import { isSafeTargetKey } from '../targets/key.js';
import { readProcStat } from '../targets/process-info.js';
import { CatalogError } from './errors.js';
import { isCheckpointId, manifestSchema, type Manifest } from './manifest.js';

export interface CheckpointStoreOptions {
  /** Storage root (config `storage.root`); created 0700 when missing. Checkpoints: `<root>/<targetKey>/<checkpointId>/`. */
  root: string;
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

/**
 * Checkpoint folders on this node's disk. A dump works in a temporary attempt folder; commit() secures its files
 * (folders 0700, files 0600), writes manifest.json and renames it into place, so a checkpoint folder is either
 * complete or absent. Every target key and id is checked before it becomes part of a path.
 */
export class CheckpointStore {
  readonly root: string;

  constructor(options: CheckpointStoreOptions) {
    this.root = path.resolve(options.root);
  }

  /**
   * Creates the attempt folder `<root>/<targetKey>/.tmp-<checkpointId>` (0700) owned by the current process.
   * Throws CatalogError EBADNAME for an unsafe key or id, EATTEMPT_EXISTS when it exists already
   * (a retry should findAttempt() and then adopt or discard it).
   */
  async beginAttempt(targetKey: string, checkpointId: string, options: { jobId?: string } = {}): Promise<Attempt> {
    const attempt = this.attemptOf(targetKey, checkpointId);
    await this.ensureDir(this.root);
    // remove() may rmdir an empty target folder between our two mkdirs: then make it again.
    for (let tries = 0; ; tries++) {
      await this.ensureDir(path.dirname(attempt.dir));
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
    await chmod(attempt.dir, DIR_MODE);
    await this.writeOwner(attempt.dir, options.jobId);
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
    if (!(await isRealDir(attempt.dir))) return null;
    const previousOwner = await readOwner(attempt.dir);
    await this.writeOwner(attempt.dir, options.jobId);
    return { ...attempt, previousOwner };
  }

  /**
   * Makes an attempt a checkpoint: secures its files (0700 / 0600), writes manifest.json (0600, fsynced),
   * renames the folder to `<root>/<targetKey>/<id>` and fsyncs the target folder. Returns the final folder.
   * The manifest must be valid (else ValidationError) and name this attempt's target key and id (else EBADNAME).
   * Throws ECOMMITTED when that folder exists.
   */
  async commit(attemptDir: string, manifest: Manifest): Promise<string> {
    const attempt = this.parseAttemptDir(attemptDir);
    const valid = parseOrThrow(manifestSchema, manifest, 'checkpoint manifest');
    if (valid.id !== attempt.checkpointId || valid.target.key !== attempt.targetKey) {
      throw new CatalogError(
        'EBADNAME',
        `manifest ${valid.target.key}/${valid.id} does not belong in attempt folder ${attempt.dir}`,
        valid.id,
      );
    }
    const finalDir = this.pathOf(valid);
    if (await exists(finalDir)) {
      throw new CatalogError('ECOMMITTED', `checkpoint folder ${finalDir} exists already`, valid.id);
    }
    await rm(path.join(attempt.dir, OWNER_FILE), { force: true });
    await this.secure(attempt.dir);
    await writeDurably(path.join(attempt.dir, MANIFEST_FILE), JSON.stringify(valid, null, 2) + '\n');
    await rename(attempt.dir, finalDir);
    await fsyncDir(path.dirname(finalDir));
    return finalDir;
  }

  /** Removes an attempt folder (a failed or abandoned attempt). Missing is fine. */
  async discard(attemptDir: string): Promise<void> {
    const attempt = this.parseAttemptDir(attemptDir);
    await rm(attempt.dir, { recursive: true, force: true });
  }

  /** The committed manifest of `<targetKey>/<checkpointId>`, or null when there is no such checkpoint folder. */
  async readManifest(targetKey: string, checkpointId: string): Promise<Manifest | null> {
    const dir = path.join(this.targetDir(targetKey), this.checkedId(checkpointId));
    let text: string;
    try {
      text = await readFile(path.join(dir, MANIFEST_FILE), 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw e;
    }
    return parseOrThrow(manifestSchema, JSON.parse(text), path.join(dir, MANIFEST_FILE));
  }

  /** Removes a checkpoint's folder (missing is fine), and its target folder when that is left empty. */
  async remove(manifest: Pick<Manifest, 'id' | 'target'>): Promise<void> {
    const dir = this.pathOf(manifest);
    await rm(dir, { recursive: true, force: true });
    await rmdir(path.dirname(dir)).catch(() => undefined);
  }

  /** `<root>/<targetKey>/<id>` of a checkpoint (key and id checked: EBADNAME). */
  pathOf(manifest: Pick<Manifest, 'id' | 'target'>): string {
    return path.join(this.targetDir(manifest.target.key), this.checkedId(manifest.id));
  }

  /** Total size in bytes of the regular files under `dir` (symlinks not followed). */
  async sizeOf(dir: string): Promise<number> {
    // One folder's entries at once: a dump has a few dozen files, and one at a time costs a thread-pool trip each.
    const sizes = await Promise.all(
      (await readdir(dir, { withFileTypes: true })).map(async (entry) => {
        const full = path.join(dir, entry.name);
        if (entry.isDirectory()) return this.sizeOf(full);
        return entry.isFile() ? (await lstat(full)).size : 0;
      }),
    );
    return sizes.reduce((a, b) => a + b, 0);
  }

  /** Folders 0700, regular files 0600, recursively (CRIU creates its images 0644). Symlinks are left alone. */
  async secure(dir: string): Promise<void> {
    await chmod(dir, DIR_MODE);
    // All entries at once (see sizeOf); every chmod is still awaited before this returns.
    await Promise.all(
      (await readdir(dir, { withFileTypes: true })).map(async (entry) => {
        const full = path.join(dir, entry.name);
        if (entry.isDirectory()) await this.secure(full);
        else if (entry.isFile()) await chmod(full, FILE_MODE);
      }),
    );
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
    if (!(await isRealDir(dir))) throw new CatalogError('EBADNAME', `${dir} is not a folder`);
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

async function isRealDir(dir: string): Promise<boolean> {
  const st = await lstat(dir).catch(() => null);
  return !!st && st.isDirectory();
}

async function exists(p: string): Promise<boolean> {
  return (await lstat(p).catch(() => null)) !== null;
}

async function writeDurably(file: string, text: string): Promise<void> {
  const handle = await open(file, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_NOFOLLOW, FILE_MODE);
  try {
    await handle.chmod(FILE_MODE);
    await handle.writeFile(text);
    await handle.sync();
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
