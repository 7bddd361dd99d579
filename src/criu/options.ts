import { statSync } from 'node:fs';
import { z } from 'zod';
import { parseOrThrow } from '../common/validation.js';
import type { CriuCgMode, CriuOpts } from './rpc-messages.js';

const int32 = z.number().int('must be an integer').min(-(2 ** 31)).max(2 ** 31 - 1);
const uint32 = z.number().int('must be an integer').min(0).max(2 ** 32 - 1);
/** A file descriptor of the calling process: CRIU opens it as /proc/<caller>/fd/<n>. */
const fd = z.number().int('must be an integer').min(0, 'must be a file descriptor (>= 0)');
const strings = z.array(z.string());

const bareFileName = z
  .string()
  .min(1, 'must not be empty')
  .refine((v) => !v.includes('/') && !v.includes('\0') && v !== '.' && v !== '..', {
    message: 'must be a bare file name (no "/"); CRIU writes it in the work dir (the images dir)',
  });

/**
 * Every criu_opts field, camelCase (CRIU's field name in the comment when it differs by more than case).
 * Not here because the client owns them: images_dir_fd / images_dir (imagesDir, imagesDirByPath),
 * pid (DumpOptions), notify_scripts (always on, so stages are reported).
 */
const criuOptionsShape = {
  /** Keep the tasks running after the dump (default: CRIU kills them once dumped). */
  leaveRunning: z.boolean().optional(),
  /** Allow external unix sockets (connected to a peer outside the tree). */
  extUnixSk: z.boolean().optional(),
  /** Dump / restore established TCP connections (needs a network lock, see networkLock). */
  tcpEstablished: z.boolean().optional(),
  /** Allow device files that are not where they were. */
  evasiveDevices: z.boolean().optional(),
  /** The tree is a shell job (has a controlling tty / is not a session leader). */
  shellJob: z.boolean().optional(),
  /** Dump / restore file locks. */
  fileLocks: z.boolean().optional(),
  /** 0-4; CRIU's default 2. 4 makes failures explain themselves, but costs time on big dumps. */
  logLevel: z.number().int('must be an integer').min(0, 'must be 0-4').max(4, 'must be 0-4').optional(),
  /** Log file name, written in the work dir (the images dir). */
  logFile: bareFileName.optional(),
  /** Page server to send pages to (ps). */
  ps: z
    .strictObject({ address: z.string().optional(), port: int32.optional(), pid: int32.optional(), fd: int32.optional() })
    .optional(),
  /** Root of the restored tree's mount namespace. */
  root: z.string().optional(),
  /** Parent images dir, relative to the images dir (for incremental dumps). */
  parentImg: z.string().optional(),
  /** Track memory changes (needs CONFIG_MEM_SOFT_DIRTY; see featureCheck().memTrack). */
  trackMem: z.boolean().optional(),
  autoDedup: z.boolean().optional(),
  /** An fd of the caller's for CRIU's work dir (log and stats files); default: the images dir. */
  workDirFd: fd.optional(),
  /** Allow link-remap files for unlinked-but-open files. */
  linkRemap: z.boolean().optional(),
  /** Deprecated by CRIU: use external. */
  veths: z.array(z.strictObject({ ifIn: z.string(), ifOut: z.string() })).optional(),
  cpuCap: uint32.optional(),
  /** Resolve inotify watches by scanning (slower). */
  forceIrmap: z.boolean().optional(),
  execCmd: strings.optional(),
  /** Deprecated by CRIU: use external. */
  extMnt: z.array(z.strictObject({ key: z.string(), val: z.string() })).optional(),
  manageCgroups: z.boolean().optional(),
  cgRoot: z.array(z.strictObject({ ctrl: z.string().optional(), path: z.string() })).optional(),
  /** swrk only. */
  rstSibling: z.boolean().optional(),
  /** swrk only. */
  inheritFd: z.array(z.strictObject({ key: z.string(), fd: int32 })).optional(),
  autoExtMnt: z.boolean().optional(),
  extSharing: z.boolean().optional(),
  extMasters: z.boolean().optional(),
  skipMnt: strings.optional(),
  enableFs: strings.optional(),
  /** Deprecated by CRIU: use external. */
  unixSkIno: z.array(z.strictObject({ inode: uint32 })).optional(),
  manageCgroupsMode: z.enum(['ignore', 'none', 'props', 'soft', 'full', 'strict', 'default']).optional(),
  /** Largest size of a deleted-but-open file CRIU copies into the images. */
  ghostLimit: uint32.optional(),
  irmapScanPaths: strings.optional(),
  /** External resources, CRIU's --external syntax (e.g. "unix[ino]", "mnt[path]:name"). */
  external: strings.optional(),
  /** CLONE_NEW* flags of namespaces to restore empty. */
  emptyNs: uint32.optional(),
  joinNs: z.array(z.strictObject({ ns: z.string(), nsFile: z.string(), extraOpt: z.string().optional() })).optional(),
  cgroupProps: z.string().optional(),
  cgroupPropsFile: z.string().optional(),
  cgroupDumpController: strings.optional(),
  freezeCgroup: z.string().optional(),
  /** CRIU's own time limit for collecting and freezing the tree, in seconds. */
  timeout: uint32.optional(),
  /** Skip TCP connections that are still being set up. */
  tcpSkipInFlight: z.boolean().optional(),
  /** Ignore sysctls that cannot be restored. */
  weakSysctls: z.boolean().optional(),
  lazyPages: z.boolean().optional(),
  statusFd: fd.optional(),
  orphanPtsMaster: z.boolean().optional(),
  configFile: z.string().optional(),
  /** Restore TCP sockets closed (their peers are gone). */
  tcpClose: z.boolean().optional(),
  lsmProfile: z.string().optional(),
  tlsCacert: z.string().optional(),
  tlsCacrl: z.string().optional(),
  tlsCert: z.string().optional(),
  tlsKey: z.string().optional(),
  tls: z.boolean().optional(),
  tlsNoCnVerify: z.boolean().optional(),
  cgroupYard: z.string().optional(),
  preDumpMode: z.enum(['splice', 'vmRead']).optional(),
  pidfdStoreSk: fd.optional(),
  lsmMountContext: z.string().optional(),
  /**
   * How CRIU locks the network during tcpEstablished dumps and restores. CRIU's default 'iptables' runs the iptables
   * program; 'nftables' works in-process through libnftables.
   */
  networkLock: z.enum(['iptables', 'nftables', 'skip']).optional(),
  mntnsCompatMode: z.boolean().optional(),
  skipFileRwxCheck: z.boolean().optional(),
  unprivileged: z.boolean().optional(),
  /** Leave the tasks stopped after a dump or restore. */
  leaveStopped: z.boolean().optional(),
  displayStats: z.boolean().optional(),
  logToStderr: z.boolean().optional(),
};

const imagesShape = {
  /** The images folder: must exist. The client opens it and passes the fd (images_dir_fd). */
  imagesDir: z
    .string({ error: 'is required: the images folder' })
    .min(1, 'must not be empty')
    .superRefine((dir, ctx) => {
      const problem = directoryProblem(dir);
      if (problem) ctx.addIssue({ code: 'custom', message: problem });
    }),
  /**
   * Send the folder as a path (images_dir, CRIU >= 3.19) instead of an fd: for a CRIU in another pid namespace,
   * which cannot open /proc/<caller>/fd/<n>. Default false.
   */
  imagesDirByPath: z.boolean().optional(),
};

const pidShape = {
  /** The root of the process tree to dump. Required: a DUMP without a pid dumps the caller itself. */
  pid: z
    .number({
      error: (issue) =>
        issue.input === undefined ? 'is required (an unset pid makes CRIU dump the caller itself)' : 'must be a number',
    })
    .int('must be a positive integer')
    .positive('must be a positive integer')
    .max(2 ** 31 - 1, 'must be a valid pid'),
};

export const criuOptionsSchema = z.strictObject(criuOptionsShape);

/**
 * The CRIU options a job may set (API requests, schedules, job data in Redis): behaviour switches only. Never one that
 * names a file, a folder, a command or a descriptor (images or work dir, log file, root, exec_cmd, external,
 * inherit_fd, config file, cgroup roots, page server, TLS files, ...): ckpt chooses those. This is the one allow-list:
 * the queue's job schemas are made from it, and workers hand CRIU nothing else from a job (jobCriuOptions), whatever
 * a schema of the day lets through.
 */
const JOB_COMMON_OPTIONS = [
  'logLevel',
  'shellJob',
  'extUnixSk',
  'tcpEstablished',
  'fileLocks',
  'networkLock',
  'linkRemap',
  'evasiveDevices',
  'ghostLimit',
] as const satisfies readonly (keyof typeof criuOptionsShape)[];
export const JOB_CRIU_OPTIONS = {
  dump: [...JOB_COMMON_OPTIONS, 'tcpSkipInFlight', 'forceIrmap'],
  restore: [...JOB_COMMON_OPTIONS, 'tcpClose', 'weakSysctls'],
} as const satisfies Record<string, readonly (keyof typeof criuOptionsShape)[]>;
type JobOptionKey<K extends keyof typeof JOB_CRIU_OPTIONS> = (typeof JOB_CRIU_OPTIONS)[K][number];

function maskOf<K extends string>(keys: readonly K[]): { [P in K]: true } {
  return Object.fromEntries(keys.map((key) => [key, true])) as { [P in K]: true };
}

/** The CRIU options a dump job may carry (strict: any other key is refused by name). */
export const jobDumpCriuOptionsSchema = criuOptionsSchema.pick(maskOf(JOB_CRIU_OPTIONS.dump));
/** The CRIU options a restore job may carry (strict: any other key is refused by name). */
export const jobRestoreCriuOptionsSchema = criuOptionsSchema.pick(maskOf(JOB_CRIU_OPTIONS.restore));

/** Only the allow-listed options of a job's `criu` (everything else is dropped, whatever validated it). */
export function jobCriuOptions<K extends keyof typeof JOB_CRIU_OPTIONS>(
  kind: K,
  options: Partial<Record<string, unknown>> | undefined,
): Pick<CriuOptions, JobOptionKey<K>> {
  const allowed: readonly string[] = JOB_CRIU_OPTIONS[kind];
  return Object.fromEntries(Object.entries(options ?? {}).filter(([key]) => allowed.includes(key))) as Pick<CriuOptions, JobOptionKey<K>>;
}
/** A request about an images folder, as the CRIU client takes it: where the images are, and CRIU's switches. */
export const imagesRequestOptionsSchema = z.strictObject({ ...imagesShape, ...criuOptionsShape });
/** A dump request to the CRIU client: the process and an images request. */
export const dumpOptionsSchema = imagesRequestOptionsSchema.extend(pidShape);
/** A restore request to the CRIU client: an images request (the process comes from the images). */
export const restoreOptionsSchema = imagesRequestOptionsSchema;
export const preDumpSessionOptionsSchema = z.strictObject({ ...pidShape, ...criuOptionsShape });

export type CriuOptions = z.input<typeof criuOptionsSchema>;
export type DumpOptions = z.input<typeof dumpOptionsSchema>;
export type RestoreOptions = z.input<typeof restoreOptionsSchema>;
export type ImagesRequestOptions = z.input<typeof imagesRequestOptionsSchema>;
/** Options shared by every step of a pre-dump session; each step adds its imagesDir (and e.g. parentImg). */
export type PreDumpSessionOptions = z.input<typeof preDumpSessionOptionsSchema>;
/** One step (PRE_DUMP or the final DUMP) of a pre-dump session. */
export type PreDumpStepOptions = ImagesRequestOptions;

export function parseDumpOptions(input: unknown): DumpOptions {
  return parseOrThrow(dumpOptionsSchema, input, 'CRIU dump options');
}

export function parseRestoreOptions(input: unknown): RestoreOptions {
  return parseOrThrow(restoreOptionsSchema, input, 'CRIU restore options');
}

export function parsePreDumpSessionOptions(input: unknown): PreDumpSessionOptions {
  return parseOrThrow(preDumpSessionOptionsSchema, input, 'CRIU pre-dump session options');
}

function directoryProblem(dir: string): string | undefined {
  try {
    return statSync(dir).isDirectory() ? undefined : `is not a directory: ${dir}`;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return code === 'ENOENT' ? `does not exist: ${dir}` : `cannot be used (${code}): ${dir}`;
  }
}

const CG_MODES: Record<string, CriuCgMode> = { none: 'CG_NONE' };
const PRE_DUMP_MODES = { splice: 'SPLICE', vmRead: 'VM_READ' } as const;

function snakeCase(key: string): string {
  return key.replace(/[A-Z]/g, (c) => '_' + c.toLowerCase());
}

/** Nested messages (ps, veths, joinNs, ...) have camelCase keys in the API and snake_case on the wire. */
function snakeKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(snakeKeys);
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [snakeCase(k), snakeKeys(v)]));
  }
  return value;
}

/** The criu_opts fields for already validated CriuOptions: camelCase to snake_case, enums to CRIU's names. */
export function toCriuOpts(options: CriuOptions): Omit<CriuOpts, 'images_dir_fd'> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(options)) {
    if (value === undefined || !(key in criuOptionsShape)) continue;
    switch (key) {
      case 'networkLock':
        out.network_lock = (value as string).toUpperCase();
        break;
      case 'manageCgroupsMode':
        out.manage_cgroups_mode = CG_MODES[value as string] ?? (value as string).toUpperCase();
        break;
      case 'preDumpMode':
        out.pre_dump_mode = PRE_DUMP_MODES[value as keyof typeof PRE_DUMP_MODES];
        break;
      default:
        out[snakeCase(key)] = snakeKeys(value);
    }
  }
  return out as Omit<CriuOpts, 'images_dir_fd'>;
}

