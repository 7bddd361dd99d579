import { open, rm } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import type { EventLog } from '../events/event-log.js';
import { PolicyError } from '../targets/errors.js';
import type { TargetPolicy } from '../targets/policy.js';
import { isSameProcess } from '../common/proc.js';
import type { WorkloadLookup } from '../targets/resolve.js';
import { workloadNameSchema } from '../targets/spec.js';
import { launchWorkload, readWorkloadEnd, stopWorkloadProcess, type LaunchedProcess } from './launcher.js';
import { WorkloadError, WorkloadRegistry, type WorkloadRecord } from './registry.js';

/** A `ckpt run` request (POST /api/v1/workloads). */
export const runWorkloadSchema = z.strictObject({
  /** Default: the command's base name and a short random suffix. */
  name: workloadNameSchema.optional(),
  command: z.array(z.string().min(1).max(4096).refine((a) => !a.includes('\0'), 'must not contain NUL')).min(1).max(256),
  /** Absolute; default: the workload's own folder. */
  cwd: z.string().max(4096).refine((p) => path.isAbsolute(p) && !p.includes('\0'), 'must be an absolute path').optional(),
  env: z
    .record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]{0,127}$/, 'not an environment variable name'), z.string().max(32768))
    .optional(),
  /** Must be this node: a workload starts where the request is served. */
  node: z.string().min(1).max(64).optional(),
});

export type RunWorkloadInput = z.input<typeof runWorkloadSchema>;

/** Which output file a log request reads. */
export type WorkloadStream = 'stdout' | 'stderr';

/** A workload as the API shows it: its record and whether its process runs. */
export type WorkloadView = WorkloadRecord & { state: 'running' | 'exited' | 'unknown' };

export interface WorkloadsOptions {
  registry: WorkloadRegistry;
  eventLog: EventLog;
  /** This process's node (config.node): workloads start and stop here. */
  node: string;
  /** config.workloads.root */
  root: string;
  /** config.workloads.stopGraceMs */
  stopGraceMs: number;
  /** The target policy: a workload's command line must pass policy.allowCommands like any target's. */
  policy?: Pick<TargetPolicy, 'commandAllowed'>;
}

/**
 * Workloads: processes started by ckpt as the init of their own pid namespace, so that their checkpoints restore
 * anywhere, any number of times. Starts, lists, stops them and reads their output; resolves `{workload}` targets.
 */
export class Workloads implements WorkloadLookup {
  readonly registry: WorkloadRegistry;

  constructor(private readonly options: WorkloadsOptions) {
    this.registry = options.registry;
  }

  /** `<root>/<name>`: names are checked, so this stays inside the root. */
  dirOf(name: string): string {
    return path.join(path.resolve(this.options.root), workloadNameSchema.parse(name));
  }

  async run(input: RunWorkloadInput): Promise<WorkloadView> {
    const spec = runWorkloadSchema.parse(input);
    if (spec.node && spec.node !== this.options.node) {
      throw new WorkloadError('EWORKLOAD_NODE', `this service runs node ${this.options.node}; start the workload through node ${spec.node}'s API`);
    }
    const cmdline = spec.command.join(' ');
    if (this.options.policy && !this.options.policy.commandAllowed(cmdline)) {
      throw new PolicyError(0, `command line "${cmdline}" matches none of policy.allowCommands`);
    }
    const name = spec.name ?? defaultName(spec.command[0]!);
    if (!(await this.registry.reserve(name))) throw new WorkloadError('EWORKLOAD_EXISTS', `workload ${name} exists already`);
    const dir = this.dirOf(name);
    let proc: LaunchedProcess;
    try {
      proc = await launchWorkload({ command: spec.command, dir, cwd: spec.cwd ?? dir, env: spec.env ?? {} });
    } catch (err) {
      await this.registry.release(name);
      throw err;
    }
    const record: WorkloadRecord = {
      name,
      node: this.options.node,
      command: spec.command,
      cwd: spec.cwd ?? dir,
      envNames: Object.keys(spec.env ?? {}),
      dir,
      ...proc,
      startedAt: new Date().toISOString(),
      origin: { kind: 'run' },
    };
    await this.registry.put(record);
    await this.options.eventLog.publish({
      event: 'workload.started',
      target: `workload.${name}`,
      data: { name, node: record.node, hostPid: record.hostPid, command: record.command },
    });
    return { ...record, state: 'running' };
  }

  async get(name: string): Promise<WorkloadView | null> {
    const record = await this.registry.get(name);
    return record && this.view(record);
  }

  async list(): Promise<WorkloadView[]> {
    const { items } = await this.registry.list();
    return Promise.all(items.map((r) => this.view(r)));
  }

  /** Stops the workload's process (SIGTERM, SIGKILL after stopGraceMs) and forgets it; its folder is removed. */
  async stop(name: string): Promise<{ name: string; outcome: string } | null> {
    const record = await this.registry.get(name);
    if (!record) return null;
    if (record.node !== this.options.node) {
      throw new WorkloadError('EWORKLOAD_NODE', `workload ${name} runs on node ${record.node}; stop it through that node's API`);
    }
    const outcome = await stopWorkloadProcess(record, this.options.stopGraceMs);
    await this.registry.remove(name);
    // The folder from the checked name and the configured root, never the record's own `dir` (Redis is not trusted).
    await rm(this.dirOf(name), { recursive: true, force: true });
    await this.options.eventLog.publish({ event: 'workload.removed', target: `workload.${name}`, data: { name, outcome } });
    return { name, outcome };
  }

  /** Output of a workload from byte `offset` on (at most `maxBytes`), and the offset to ask for next. */
  async readOutput(name: string, stream: WorkloadStream, offset: number, maxBytes: number): Promise<{ text: string; next: number } | null> {
    const record = await this.registry.get(name);
    if (!record) return null;
    if (record.node !== this.options.node) {
      throw new WorkloadError('EWORKLOAD_NODE', `workload ${name}'s output is on node ${record.node}; read it through that node's API`);
    }
    const file = path.join(this.dirOf(name), `${stream}.log`);
    const handle = await open(file, 'r').catch(() => null);
    if (!handle) return { text: '', next: offset };
    try {
      const size = (await handle.stat()).size;
      const from = offset > size ? 0 : offset; // the file was recreated: start again
      const buf = Buffer.alloc(Math.min(maxBytes, size - from));
      const { bytesRead } = await handle.read(buf, 0, buf.length, from);
      return { text: buf.subarray(0, bytesRead).toString('utf8'), next: from + bytesRead };
    } finally {
      await handle.close();
    }
  }

  /** WorkloadLookup: the running process of a workload, for `{workload}` targets. */
  async processOf(name: string): Promise<{ pid: number; startTime: number; dir: string } | { reason: string }> {
    const record = await this.registry.get(name);
    if (!record) return { reason: 'not found' };
    if (record.node !== this.options.node) return { reason: `runs on node ${record.node}, not ${this.options.node}` };
    if (!(await isSameProcess({ pid: record.hostPid, startTime: record.startTime }))) {
      return { reason: record.ended ? `is not running (ended ${record.ended.at})` : 'is not running' };
    }
    return { pid: record.hostPid, startTime: record.startTime, dir: record.dir };
  }

  /** The state of a local workload is read from /proc; another node's from its record (its worker keeps `ended`). */
  private async view(record: WorkloadRecord): Promise<WorkloadView> {
    if (record.node !== this.options.node) return { ...record, state: record.ended ? 'exited' : 'unknown' };
    const running = await isSameProcess({ pid: record.hostPid, startTime: record.startTime });
    if (running) return { ...record, state: 'running' };
    return { ...record, ended: record.ended ?? (await readWorkloadEnd(record.dir)), state: 'exited' };
  }
}

/** `sleep` -> `sleep-3fa2`: the command's base name, made a valid workload name, and 4 random hex digits. */
function defaultName(command: string): string {
  const base = path.basename(command).toLowerCase().replace(/[^a-z0-9_-]/g, '-').replace(/^[^a-z0-9]+/, '').slice(0, 40) || 'workload';
  return `${base}-${Math.floor(Math.random() * 0x10000).toString(16).padStart(4, '0')}`;
}

