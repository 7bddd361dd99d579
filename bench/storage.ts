// Benchmark: what storage.remote costs and saves, per compression, on real process memory.
//
//   npm run bench -- storage [--mib 256] [--rounds 2] [--quick]
//
// A Python process holds --mib MiB of realistic data (a third numbers, a third text, a third zero pages, all touched);
// the criu CLI dumps it once (left running). Then, in the same run and on the same files: RemoteStore upload and
// download against a real s3rver process on loopback for none / lz4 / zstd (level 1, 3, 9), `zstd -3` on the command
// line (files in, files out, no network) and a plain copy of the files (the floor). Prints bytes stored, MB/s (of the
// checkpoint's bytes) of upload and download, medians over --rounds, and the load average.
import { execFile, spawn } from 'node:child_process';
import { cp, mkdir, mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs, promisify } from 'node:util';
import { CheckpointStore } from '../src/catalog/checkpoint-store.js';
import { newCheckpointId } from '../src/common/checkpoint-id.js';
import { remoteStorageSchema } from '../src/config/schema.js';
import { locateCriu } from '../src/criu/locate.js';
import { loadSigner } from '../src/security/key-file.js';
import { RemoteStore } from '../src/storage/remote-store.js';
import { TestS3 } from '../test/helpers/s3.js';
import { median, msSince } from './lib/figures.js';
import { record } from './lib/report.js';

const { values } = parseArgs({
  options: { mib: { type: 'string' }, rounds: { type: 'string' }, quick: { type: 'boolean', default: false } },
});
const mib = Number(values.mib ?? (values.quick ? 32 : 256));
const rounds = Number(values.rounds ?? (values.quick ? 1 : 2));
if (!(mib >= 3 && rounds >= 1)) throw new Error('usage: storage.ts [--mib MiB >= 3] [--rounds N] [--quick]');
const exec = promisify(execFile);
const work = await mkdtemp(path.join(os.tmpdir(), 'ckpt-bench-storage-'));

const HOLDER = `
import os, random, sys, time
mib = int(sys.argv[1]); third = mib * 1024 * 1024 // 3
nums = bytearray()
r = random.Random(7)
while len(nums) < third: nums += b'%d,%.6f;' % (r.randrange(10**9), r.random() * 1000)
words = [b'checkpoint', b'restore', b'process', b'memory', b'the', b'of', b'a', b'node', b'queue', b'worker', b'epoch', b'loss']
text = bytearray()
while len(text) < third: text += b' '.join(r.choice(words) for _ in range(12)) + b'.\\n'
zeros = bytearray(third)
for i in range(0, len(zeros), 4096): zeros[i] = 0
open(sys.argv[2], 'w').write('ready')
while True: time.sleep(1)
`;

const criu = await locateCriu('', {});
const ready = path.join(work, 'ready');
const holder = spawn('python3', ['-c', HOLDER, String(mib), ready], { detached: true, stdio: 'ignore' });
holder.unref();
try {
  while (!(await stat(ready).catch(() => null))) await new Promise((r) => setTimeout(r, 100));
  const signer = loadSigner(path.join(work, 'job.key'));
  const store = new CheckpointStore({ root: path.join(work, 'store'), signer, sync: false });
  const id = newCheckpointId();
  const attempt = await store.beginAttempt('python3-1', id);
  await exec(criu.bin, ['dump', '-t', String(holder.pid), '-D', attempt.dir, '--leave-running', '-o', 'dump.log']);
  const manifest = await store.commit(attempt.dir, {
    id,
    created: new Date().toISOString(),
    node: 'bench',
    target: { key: 'python3-1', pid: holder.pid!, cmdline: 'python3', exe: '/usr/bin/python3', uid: 0, startTime: 1 },
    criuVersion: criu.version,
    options: {},
    leaveRunning: true,
    stats: {},
    durationMs: 0,
    jobId: 'bench',
  });
  const dir = store.pathOf(manifest);
  const mb = manifest.bytes / 1e6;
  console.log(`checkpoint of a ${mib} MiB process: ${manifest.bytes} bytes in ${Object.keys(manifest.files).length} files; load average ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`);

  const s3 = await TestS3.start('ckpt-bench');
  const rows: { way: string; stored: number; up: number; down: number }[] = [];
  try {
    // The floor: copying the files (page cache to page cache), and zstd on the command line without any network.
    const copyMs: number[] = [];
    const cliMs: number[] = [];
    const unCliMs: number[] = [];
    let cliBytes = 0;
    for (let r = 0; r < rounds; r++) {
      const to = path.join(work, `copy-${r}`);
      let t = process.hrtime.bigint();
      await cp(dir, to, { recursive: true });
      copyMs.push(msSince(t));
      const zdir = path.join(work, `zstd-${r}`);
      await mkdir(zdir);
      const names = (await readdir(dir)).filter((n) => n.endsWith('.img'));
      t = process.hrtime.bigint();
      await Promise.all(names.map((n) => exec('zstd', ['-q', '-3', '-T1', path.join(dir, n), '-o', path.join(zdir, `${n}.zst`)])));
      cliMs.push(msSince(t));
      cliBytes = 0;
      for (const n of await readdir(zdir)) cliBytes += (await stat(path.join(zdir, n))).size;
      t = process.hrtime.bigint();
      await Promise.all(names.map((n) => exec('zstd', ['-q', '-d', path.join(zdir, `${n}.zst`), '-o', path.join(zdir, n)])));
      unCliMs.push(msSince(t));
      await rm(to, { recursive: true });
      await rm(zdir, { recursive: true });
    }
    rows.push({ way: 'plain copy (cp -r)', stored: manifest.bytes, up: mb / (median(copyMs) / 1000), down: mb / (median(copyMs) / 1000) });
    rows.push({ way: 'zstd -3 CLI (no network)', stored: cliBytes, up: mb / (median(cliMs) / 1000), down: mb / (median(unCliMs) / 1000) });

    const ways = [
      ['none', 3],
      ['lz4', 3],
      ['zstd', 1],
      ['zstd', 3],
      ['zstd', 9],
    ] as const;
    for (const [compression, level] of ways) {
      const upMs: number[] = [];
      const downMs: number[] = [];
      let stored = 0;
      for (let r = 0; r < rounds; r++) {
        const prefix = `b-${compression}-${level}-${r}`;
        const remote = new RemoteStore({
          config: remoteStorageSchema.parse({ ...(await s3.remoteConfig()), prefix, compression, zstdLevel: level }),
          signer,
        });
        let t = process.hrtime.bigint();
        await remote.upload(manifest, dir);
        upMs.push(msSince(t));
        stored = 0;
        for (const key of await s3.keys(`${prefix}/`)) if (key.includes('/files/')) stored += (await s3.get(key)).bytes.length;
        const into = path.join(work, `down-${prefix}`);
        await mkdir(into);
        t = process.hrtime.bigint();
        await remote.download(manifest, into);
        downMs.push(msSince(t));
        await rm(into, { recursive: true });
        remote.close();
      }
      console.log(`... ${compression} ${level}: up ${median(upMs).toFixed(0)} ms, down ${median(downMs).toFixed(0)} ms, stored ${stored}`);
      rows.push({ way: `RemoteStore ${compression}${compression === 'zstd' ? ` -${level}` : ''} -> s3rver`, stored, up: mb / (median(upMs) / 1000), down: mb / (median(downMs) / 1000) });
    }
  } finally {
    await s3.stop();
  }
  console.log(`\n${'way'.padEnd(30)} ${'stored MB'.padStart(10)} ${'ratio'.padStart(6)} ${'up MB/s'.padStart(9)} ${'down MB/s'.padStart(10)}`);
  for (const row of rows) {
    console.log(
      `${row.way.padEnd(30)} ${(row.stored / 1e6).toFixed(1).padStart(10)} ${(row.stored / manifest.bytes).toFixed(3).padStart(6)} ${row.up.toFixed(0).padStart(9)} ${row.down.toFixed(0).padStart(10)}`,
    );
  }
  const copy = rows[0]!;
  for (const row of rows.slice(1)) {
    record('storage', { name: `${row.way}: bytes stored`, value: row.stored, unit: 'B', baseline: { name: 'checkpoint bytes', value: manifest.bytes } });
    record('storage', { name: `${row.way}: upload`, value: row.up, unit: 'MB/s', baseline: { name: 'plain copy', value: copy.up } });
    record('storage', { name: `${row.way}: download`, value: row.down, unit: 'MB/s', baseline: { name: 'plain copy', value: copy.down } });
  }
  console.log(`load average after: ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`);
} finally {
  try {
    process.kill(holder.pid!, 'SIGKILL');
  } catch {
    // gone
  }
  await rm(work, { recursive: true, force: true });
}
