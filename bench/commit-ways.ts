// Benchmark: ways of making a freshly written checkpoint durable and hashed, as CheckpointStore.commit must.
//
//   node --import tsx bench/commit-ways.ts [--size MiB] [--small N] [--rounds N] [--quick]
//
// Each round writes a folder like a dump's (one --size MiB pages image, --small small images) into the page cache, then
// times one way of flushing and/or hashing it; the ways rotate each round. Baseline: `dd` writing --size MiB with
// fdatasync into the same file system. Prints every time and the median per way (CPU time of this process too).
import { execFile } from 'node:child_process';
import { mkdtemp, open, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs, promisify } from 'node:util';
import { sha256Of } from '../src/catalog/file-digest.js';
import { median } from './lib/figures.js';
import { record } from './lib/report.js';

const { values } = parseArgs({
  options: {
    size: { type: 'string' },
    small: { type: 'string', default: '30' },
    rounds: { type: 'string' },
    quick: { type: 'boolean', default: false },
  },
});
const sizeMiB = Number(values.size ?? (values.quick ? 256 : 1024));
const smallFiles = Number(values.small);
const rounds = Number(values.rounds ?? (values.quick ? 1 : 3));
if (!(sizeMiB >= 1 && smallFiles >= 0 && rounds >= 1)) throw new Error('usage: commit-ways.ts [--size MiB] [--small N] [--rounds N]');

const exec = promisify(execFile);
const work = await mkdtemp(path.join(os.tmpdir(), 'ckpt-bench-commit-'));
const page = Buffer.alloc(1 << 20);
for (let i = 0; i < page.length; i += 4096) page[i] = 1;

async function writeCheckpointLike(): Promise<string[]> {
  const dir = await mkdtemp(path.join(work, 'c-'));
  const pages = await open(path.join(dir, 'pages-1.img'), 'w');
  for (let i = 0; i < sizeMiB; i++) await pages.write(page);
  await pages.close();
  for (let i = 0; i < smallFiles; i++) await writeFile(path.join(dir, `small-${i}.img`), Buffer.alloc(2000 + i * 100, 3));
  return (await readdir(dir)).map((name) => path.join(dir, name));
}

/** Opens each file and runs `work` on all of them at once. */
const eachFile = (work: (handle: Awaited<ReturnType<typeof open>>) => Promise<unknown>) => (files: string[]) =>
  Promise.all(
    files.map(async (file) => {
      const handle = await open(file, 'r');
      try {
        await work(handle);
      } finally {
        await handle.close();
      }
    }),
  );

const ways: Record<string, (files: string[]) => Promise<unknown>> = {
  'fdatasync each': eachFile((h) => h.datasync()),
  'SHA-256 each': eachFile((h) => sha256Of(h)),
  'both at once': eachFile((h) => Promise.all([sha256Of(h), h.datasync()])),
  'hash, then flush': eachFile(async (h) => {
    await sha256Of(h);
    await h.datasync();
  }),
  'sync -f (syncfs)': (files) => exec('sync', ['-f', path.dirname(files[0]!)]),
  'dd + fdatasync': async (files) => {
    const dir = path.dirname(files[0]!);
    await exec('dd', ['if=/dev/zero', `of=${path.join(dir, 'dd.out')}`, 'bs=1M', `count=${sizeMiB}`, 'conv=fdatasync', 'status=none']);
  },
};

const names = Object.keys(ways);
const wall: Record<string, number[]> = {};
const cpu: Record<string, number[]> = {};
try {
  for (let r = 0; r < rounds; r++) {
    for (let k = 0; k < names.length; k++) {
      const name = names[(r + k) % names.length]!;
      // dd writes its own bytes: its folder holds only an empty file, so nothing else is flushed with it.
      const files = name === 'dd + fdatasync' ? [path.join(await mkdtemp(path.join(work, 'd-')), 'x')] : await writeCheckpointLike();
      const started = process.hrtime.bigint();
      const cpuBefore = process.cpuUsage();
      await ways[name]!(files);
      const used = process.cpuUsage(cpuBefore);
      (wall[name] ??= []).push(Number(process.hrtime.bigint() - started) / 1e6);
      (cpu[name] ??= []).push((used.user + used.system) / 1000);
      await rm(path.dirname(files[0]!), { recursive: true, force: true });
    }
  }
} finally {
  await rm(work, { recursive: true, force: true });
}
console.log(`commit-ways: ${sizeMiB} MiB + ${smallFiles} small files, freshly written, ${rounds} rounds (order rotating); ms`);
console.log(`${'way'.padEnd(20)}${'median'.padStart(8)}${'cpu'.padStart(8)}  each round`);
for (const name of names) {
  console.log(`${name.padEnd(20)}${median(wall[name]!).toFixed(0).padStart(8)}${median(cpu[name]!).toFixed(0).padStart(8)}  ${wall[name]!.map((x) => x.toFixed(0)).join(' ')}`);
  if (name !== 'dd + fdatasync') {
    const baseline = { name: 'dd + fdatasync', value: median(wall['dd + fdatasync']!) };
    record('commit-ways', { name: `${name}, ${sizeMiB} MiB + ${smallFiles} files`, value: median(wall[name]!), unit: 'ms', baseline });
  }
}
