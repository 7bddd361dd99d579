import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { ValidationError } from '../../src/common/validation.js';
import { loadConfig } from '../../src/config/load.js';
import { repoRoot } from '../../src/common/paths.js';
import { parseDuration } from '../../src/retention/schema.js';
import { loadSchedulesFromConfig, scheduleSchema } from '../../src/scheduler/schema.js';

test('defaults: UTC, dst cron, leaveRunning, enabled, overlap skip, missed runOnce; durations become ms', () => {
  const s = scheduleSchema.parse({ id: 'a', cron: '*/5 * * * *', target: { pid: 42 }, retention: { keepLast: 3, maxAge: '7d' } });
  assert.equal(s.timezone, 'UTC');
  assert.equal(s.dst, 'cron');
  assert.equal(s.leaveRunning, true);
  assert.equal(s.enabled, true);
  assert.equal(s.overlap, 'skip');
  assert.equal(s.missed, 'runOnce');
  assert.deepEqual(s.retention, { keepLast: 3, maxAge: 7 * 86_400_000 });
  assert.equal(parseDuration('12h'), 12 * 3_600_000);
  assert.equal(parseDuration('1d12h'), 36 * 3_600_000);
  assert.equal(parseDuration('500ms'), 500);
  assert.equal(parseDuration('7 days'), null);
});

test('config load: every bad field is named with the file and the schedule', () => {
  const items = [
    { id: 'good', cron: '0 * * * *', target: { match: 'python3 train.py' } },
    { id: 'nightly', cron: '0 25 * * *', target: { pid: 1 }, timezone: 'Mars/Olympus' },
    { id: 'BAD ID', cron: '* * * * *', target: {} },
    { id: 'good', cron: '0 * * * *', target: { pid: 7 }, overlap: 'sometimes', retention: { maxAge: 'soon' } },
    { id: 'typo', cron: '0 * * * *', target: { pid: 7 }, keeplast: 3 },
    { id: 'summer', cron: '30 2 * * *', target: { pid: 7 }, dst: 'shift' },
    { id: 'stopper', cron: '0 * * * *', target: { pid: 7 }, leaveRunning: false },
    { id: 'stops-by-name', cron: '0 * * * *', target: { match: 'train.py' }, leaveRunning: false },
  ];
  let err: unknown;
  try {
    loadSchedulesFromConfig(items, 'config/site.yaml');
  } catch (e) {
    err = e;
  }
  assert.ok(err instanceof ValidationError);
  const fields = Object.fromEntries(err.issues.map((i) => [i.field, i.reason]));
  assert.match(err.message, /^invalid config config\/site\.yaml: /);
  assert.match(fields['schedules.1 (nightly).cron']!, /hour field "25" is not valid \(allowed: 0-23/);
  assert.match(fields['schedules.1 (nightly).timezone']!, /unknown time zone "Mars\/Olympus"/);
  assert.match(fields['schedules.2 (BAD ID).id']!, /lower-case letters/);
  assert.match(fields['schedules.2 (BAD ID).target']!, /exactly one of pid, pidFile, match/);
  assert.match(fields['schedules.3 (good).overlap']!, /skip|queue/);
  assert.match(fields['schedules.3 (good).retention.maxAge']!, /not a duration: "soon"/);
  assert.ok(Object.keys(fields).some((f) => f.startsWith('schedules.4 (typo)')), 'an unknown key is refused');
  assert.match(fields['schedules.5 (summer).dst']!, /"cron"\|"skip"/);
  assert.match(
    fields['schedules.6 (stopper).leaveRunning']!,
    /false with a \{pid\} target: the first tick stops pid 7, and a later one would dump and stop whichever process has that pid by then/,
  );
  assert.ok(!Object.keys(fields).some((f) => f.startsWith('schedules.7')), 'a schedule may stop a process it names by match');
  // The duplicate id is only noticed among valid items; check it on its own.
  assert.throws(
    () => loadSchedulesFromConfig([items[0], { ...items[0], target: { pid: 3 } }], 'x.yaml'),
    (e: unknown) => e instanceof ValidationError && /schedules\.1 \(good\)\.id: duplicate id, also used by schedules\.0/.test(e.message),
  );
});

test('the example schedules file loads through the config loader and the schedule schema', async () => {
  const file = path.join(repoRoot(), 'config/examples/schedules.yaml');
  const config = loadConfig(file, {}, {});
  const schedules = loadSchedulesFromConfig(config.schedules, file);
  assert.ok(schedules.length >= 3);
  for (const s of schedules) assert.ok(scheduleSchema.safeParse(s).success, s.id);
});

test('an invalid cron in a config file fails loading with the file, the schedule and the field', async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'ckpt-sched-cfg-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'ckpt.yaml');
  await writeFile(file, 'schedules:\n  - id: trainer\n    cron: "*/15 * * *"\n    target: { match: "train.py" }\n');
  const config = loadConfig(file, {}, {});
  assert.throws(
    () => loadSchedulesFromConfig(config.schedules, file),
    (e: unknown) =>
      e instanceof ValidationError &&
      e.message.includes(file) &&
      /schedules\.0 \(trainer\)\.cron: expected 5 fields .* got 4/.test(e.message),
  );
});
