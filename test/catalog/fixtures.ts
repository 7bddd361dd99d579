import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { CheckpointStore, type Manifest } from '../../src/catalog/index.js';
import { newCheckpointId } from '../../src/common/checkpoint-id.js';

export interface ManifestFields {
  key?: string;
  created?: Date;
  node?: string;
  scheduleId?: string;
}

/** A valid manifest for a made-up dump of `key`; commit() measures `bytes` and `files`. */
export function manifestFor(id: string, fields: ManifestFields = {}): Manifest {
  const key = fields.key ?? 'python3-4242';
  const manifest: Manifest = {
    id,
    created: (fields.created ?? new Date()).toISOString(),
    node: fields.node ?? 'node-a',
    target: { key, pid: Number(key.split('-').at(-1)), cmdline: 'python3 server.py', exe: '/usr/bin/python3', uid: 0, startTime: 1234 },
    criuVersion: '4.2.1',
    options: { leaveRunning: true, logLevel: 4 },
    leaveRunning: true,
    stats: { frozenTimeUs: 1000, pagesWritten: 3 },
    bytes: 0,
    files: {},
    durationMs: 80,
    jobId: `job-${id}`,
  };
  if (fields.scheduleId !== undefined) manifest.scheduleId = fields.scheduleId;
  return manifest;
}

/** Makes a committed checkpoint folder the way a worker does (attempt, files written 0644 like CRIU, commit). */
export async function makeCheckpoint(store: CheckpointStore, fields: ManifestFields = {}): Promise<Manifest> {
  const created = fields.created ?? new Date();
  const id = newCheckpointId(created);
  const manifest = manifestFor(id, { ...fields, created });
  const attempt = await store.beginAttempt(manifest.target.key, id);
  await writeFile(path.join(attempt.dir, 'pages-1.img'), Buffer.alloc(8192, 1), { mode: 0o644 });
  await writeFile(path.join(attempt.dir, 'dump.log'), 'Dumping finished successfully\n', { mode: 0o644 });
  return store.commit(attempt.dir, manifest);
}
