import { readFileSync } from 'node:fs';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { TestContext } from 'node:test';
import { locateCriu, type LocatedCriu } from '../../src/criu/locate.js';
import { CriuService } from '../../src/criu/criu-service.js';
import { readProcStat } from '../../src/common/proc.js';
import { waitUntil } from './wait.js';

let located: Promise<LocatedCriu | Error> | undefined;

/**
 * The working CRIU for tests. Outside CI a machine without one skips the test (with the reason);
 * in CI (CI=true) a missing CRIU fails it: the CRIU tests must run there.
 */
export async function requireCriu(t: TestContext): Promise<LocatedCriu | undefined> {
  located ??= locateCriu().catch((e: Error) => e);
  const r = await located;
  if (!(r instanceof Error)) return r;
  if (process.env.CI) throw new Error(`CRIU is required in CI: ${r.message}`);
  t.skip(`no working CRIU: ${r.message}`);
  return undefined;
}

/**
 * Skips a test that needs a kernel feature this machine lacks, in a form scripts/run-tests.js recognises: it names
 * such skips in its summary, and in CI accepts only features on its printed list (any other skip fails the run).
 */
export function skipForKernelFeature(t: TestContext, feature: string, why: string): void {
  t.skip(`missing kernel feature: ${feature} (${why})`);
}

/** A private `criu service` in a fresh 0700 folder; stop() removes it. */
export async function startTestCriuService(criu: LocatedCriu): Promise<CriuService & { cleanup(): Promise<void> }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'ckpt-criu-'));
  const svc = new CriuService({ bin: criu.bin, runtimeDir: dir });
  await svc.start();
  return Object.assign(svc, {
    async cleanup() {
      await svc.stop();
      await rm(dir, { recursive: true, force: true });
    },
  });
}

/** The workers a `criu service` forked, one per open connection. */
export function criuWorkersOf(servicePid: number): number[] {
  const children = readFileSync(`/proc/${servicePid}/task/${servicePid}/children`, 'utf8').trim();
  return children ? children.split(/\s+/).map(Number) : [];
}

/** Waits until every one of `pids` (CRIU workers) has exited: the request each served is over, however it ended. */
export async function waitEnded(pids: number[], what: string, timeoutMs = 30_000): Promise<void> {
  await waitUntil(`${what} (pids ${pids.join(', ')}) to end`, async () => (await Promise.all(pids.map(readProcStat))).every((st) => !st || st.state === 'Z'), {
    timeoutMs,
  });
}

/**
 * Stops processes with SIGSTOP and waits until they are stopped; the returned function lets them go on (idempotent;
 * call it in cleanups too). A CRIU service or worker held this way keeps its connections but does and answers
 * nothing: a request to it is provably still in flight for as long as the test needs, however fast the machine.
 */
export async function holdProcesses(pids: number[]): Promise<() => void> {
  const signal = (pid: number, sig: NodeJS.Signals) => {
    try {
      process.kill(pid, sig);
    } catch {
      // already gone
    }
  };
  for (const pid of pids) signal(pid, 'SIGSTOP');
  for (const pid of pids) {
    await waitUntil(`pid ${pid} to stop`, async () => ['T', 'Z', undefined].includes((await readProcStat(pid))?.state), { pollMs: 1 });
  }
  let released = false;
  return () => {
    if (released) return;
    released = true;
    for (const pid of pids) signal(pid, 'SIGCONT');
  };
}

/**
 * Lets a CRIU service's workers run in short steps (go on, ~1 ms, stop) until `ready` is true of what they have done,
 * and keeps them stopped there; returns their release. A point in the middle of a request is reached this way on any
 * machine, not only when the request happens to be slower than the test's polling.
 */
export async function holdCriuWorkersWhen(servicePid: number, what: string, ready: () => Promise<boolean>, timeoutMs = 60_000): Promise<() => void> {
  return waitUntil(
    what,
    async () => {
      const workers = criuWorkersOf(servicePid);
      if (!workers.length) return undefined;
      const release = await holdProcesses(workers);
      if (await ready()) return release;
      release();
      return undefined;
    },
    { timeoutMs, pollMs: 1 },
  );
}

/** A folder (removed after the test) with an executable `criu` running `body` (sh). */
export async function criuScript(t: TestContext, body: string): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'ckpt-criu-bin-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const bin = path.join(dir, 'criu');
  await writeFile(bin, `#!/bin/sh\n${body}\n`);
  await chmod(bin, 0o700);
  return bin;
}

/**
 * A `criu` that logs each run (the environment's CRIU_TEST_MARK, as criu.env would set it, and the arguments), then
 * runs the real one: which binary ckpt ran, with which environment. calls() reads the log.
 */
export async function loggingCriu(t: TestContext, realBin: string): Promise<{ bin: string; calls(): Promise<string[]> }> {
  const bin = await criuScript(t, `echo "$CRIU_TEST_MARK $*" >> "$(dirname "$0")/calls.log"\nexec "${realBin}" "$@"`);
  const log = path.join(path.dirname(bin), 'calls.log');
  return { bin, calls: async () => (await readFile(log, 'utf8').catch(() => '')).split('\n').filter(Boolean) };
}
