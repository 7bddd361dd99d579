// Shared by the CRIU test files: one private `criu service` per test file, temporary folders, polling.
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, type TestContext } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { CriuClient, type LocatedCriu } from '../../src/criu/index.js';
import { startTestCriuService } from '../helpers/criu.js';
import { startCounter, type Counter } from '../helpers/targets.js';

/**
 * Returns a function giving a client of this file's CRIU service, started on first use and stopped after the file's
 * tests. Call it at the top level of a test file.
 */
export function useCriuService(): (criu: LocatedCriu) => Promise<{ client: CriuClient; socketPath: string }> {
  let service: Promise<Awaited<ReturnType<typeof startTestCriuService>>> | undefined;
  after(async () => {
    await (await service)?.cleanup();
  });
  return async (criu) => {
    service ??= startTestCriuService(criu);
    const { socketPath } = await service;
    return { client: new CriuClient({ socketPath }), socketPath };
  };
}

/** A fresh folder (0700), removed after the test. */
export async function tempDir(t: TestContext, prefix = 'ckpt-criu-img-'): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), prefix));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** Polls until `cond` is true; fails naming `what` after timeoutMs. */
export async function waitUntil(cond: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting until ${what}`);
    await sleep(20);
  }
}

/** A counter target (test/helpers/targets.ts) killed and whose folder is removed after the test. */
export async function counterFor(t: TestContext, ballastMiB = 0): Promise<Counter> {
  const counter = await startCounter(ballastMiB);
  t.after(async () => {
    await counter.kill();
    await rm(counter.dir, { recursive: true, force: true });
  });
  return counter;
}
