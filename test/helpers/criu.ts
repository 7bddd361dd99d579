import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { TestContext } from 'node:test';
import { locateCriu, type LocatedCriu } from '../../src/criu/locate.js';
import { CriuService } from '../../src/criu/criu-service.js';

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
