import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ConfigInput } from '../../src/config/schema.js';
import type { EventLog } from '../../src/events/event-log.js';
import type { FeedEvent } from '../../src/events/types.js';
import { waitUntil } from '../helpers/wait.js';

/** A fixture script next to this file, as .ts under tsx or .js once compiled to dist/. */
export function fixturePath(name: string): string {
  const here = fileURLToPath(import.meta.url);
  return path.join(path.dirname(here), 'fixtures', `${name}${path.extname(here)}`);
}

function nodeArgs(script: string): string[] {
  return script.endsWith('.ts') ? ['--import', 'tsx', script] : [script];
}

export interface SchedulerProcess {
  pid: number;
  instanceId: string;
  /** SIGTERM and wait for a clean exit; resolves to the exit code. */
  stop(): Promise<number | null>;
  /** SIGKILL and wait. */
  kill(): Promise<void>;
  stderr(): string;
}

const running = new Set<ChildProcess>();

/** Starts test/scheduler/fixtures/scheduler-process in its own process and waits until its scheduler runs. */
export async function startSchedulerProcess(config: ConfigInput, env: Record<string, string> = {}): Promise<SchedulerProcess> {
  const child = spawn(process.execPath, nodeArgs(fixturePath('scheduler-process')), {
    env: { ...process.env, ...env, CKPT_TEST_CONFIG: JSON.stringify(config) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  running.add(child);
  let out = '';
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code) => {
      running.delete(child);
      resolve(code);
    }),
  );
  const instanceId = await new Promise<string>((resolve, reject) => {
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /^ready (\S+)$/m.exec(out);
      if (m) resolve(m[1]!);
    });
    void exited.then((code) => reject(new Error(`scheduler process exited (${code}) before ready:\n${err}`)));
  });
  return {
    pid: child.pid!,
    instanceId,
    async stop() {
      if (child.exitCode === null) child.kill('SIGTERM');
      return exited;
    },
    async kill() {
      if (child.exitCode === null) child.kill('SIGKILL');
      await exited;
    },
    stderr: () => err,
  };
}

/**
 * Runs the fixture in a crash mode: it claims `tick` of `scheduleId` ('next': the schedule's first tick at least 1 s
 * after it started) and, for crash-after-enqueue, enqueues its job, then SIGKILLs itself (crash-before-add: while
 * enqueueing, after the job's id is claimed and before the job is added).
 * Resolves with the tick it claimed (null if it could not) and the signal it died of.
 */
export async function runCrashingScheduler(
  config: ConfigInput,
  mode: 'crash-after-claim' | 'crash-after-enqueue' | 'crash-before-add',
  scheduleId: string,
  tick: number | 'next',
): Promise<{ claimedTick: number | null; signal: NodeJS.Signals | null }> {
  const child = spawn(process.execPath, nodeArgs(fixturePath('scheduler-process')), {
    env: {
      ...process.env,
      CKPT_TEST_CONFIG: JSON.stringify(config),
      CKPT_TEST_MODE: mode,
      CKPT_TEST_SCHEDULE: scheduleId,
      CKPT_TEST_TICK: String(tick),
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  running.add(child);
  let stdout = '';
  child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  const signal = await new Promise<NodeJS.Signals | null>((resolve) => child.once('exit', (_code, sig) => resolve(sig)));
  running.delete(child);
  const m = /^claimed (\d+)$/m.exec(stdout);
  return { claimedTick: m ? Number(m[1]) : null, signal };
}

/** Kills every fixture process still running (for after hooks). */
export async function killAllSchedulerProcesses(): Promise<void> {
  await Promise.all(
    [...running].map(
      (c) =>
        new Promise<void>((resolve) => {
          if (c.exitCode !== null || c.signalCode !== null) return resolve();
          c.once('exit', () => resolve());
          c.kill('SIGKILL');
        }),
    ),
  );
}

/** Every event in the log (oldest first), optionally only one name and schedule. */
export async function allEvents(eventLog: EventLog, name?: string, scheduleId?: string): Promise<FeedEvent[]> {
  const out: FeedEvent[] = [];
  let after = '0';
  for (;;) {
    const batch = await eventLog.readAfter(after, 1000);
    out.push(...batch);
    if (batch.length < 1000) break;
    after = batch[batch.length - 1]!.id;
  }
  return out.filter((e) => (!name || e.event === name) && (!scheduleId || e.scheduleId === scheduleId));
}

export function waitFor<T>(what: string, fn: () => Promise<T | undefined | null | false>, timeoutMs = 15_000, pollMs = 50): Promise<T> {
  return waitUntil(what, fn, { timeoutMs, pollMs });
}
