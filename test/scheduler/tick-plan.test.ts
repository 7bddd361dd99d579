import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { ScheduleRecord, ScheduleState } from '../../src/scheduler/schedule-store.js';
import { scheduleSchema, type ScheduleInput } from '../../src/scheduler/schema.js';
import { planTick, type TickDecision, type TickFacts } from '../../src/scheduler/tick-plan.js';

const TICK = Date.parse('2026-06-10T12:00:00Z');
const HOUR = 3_600_000;

function record(input: Partial<ScheduleInput> = {}): ScheduleRecord {
  const schedule = scheduleSchema.parse({ id: 's', cron: '0 * * * *', target: { pid: 4242 }, ...input });
  return { schedule, origin: 'api', createdAt: 0, updatedAt: 0 };
}

const active: ScheduleState = { paused: false, consecutiveFailures: 0, unhealthy: false };

function facts(over: Partial<TickFacts>): TickFacts {
  return {
    source: 'cron',
    tickMs: TICK,
    now: TICK + 5,
    node: 'here',
    followsOtherNodes: false,
    missedTickToleranceMs: HOUR,
    record: record(),
    state: active,
    jobId: `sched-s-${TICK}`,
    ...over,
  };
}

const enqueue = (jitterMs = 0, input: Partial<ScheduleInput> = {}): TickDecision => ({ action: 'enqueue', schedule: record(input).schedule, jitterMs });
const skip = (reason: string): TickDecision => ({ action: 'skip', reason });
const missedTooOld = `missed: no scheduler handled it when it was due, and it is older than missedTickToleranceMs (${HOUR} ms)`;
const busy = { overlap: 'skip' as const };
const withPrevious = { ...active, lastJobId: 'sched-s-1' };

const table: [string, Partial<TickFacts>, TickDecision][] = [
  ['a tick on time enqueues', {}, enqueue()],
  ['deleted meanwhile', { record: null }, skip('schedule deleted')],
  ['paused', { state: { ...active, paused: true } }, skip('schedule paused')],
  ['disabled', { record: record({ enabled: false }) }, skip('schedule disabled')],
  ['another node\'s schedule', { record: record({ node: 'there' }) }, skip('schedule runs on node there')],
  ['another node\'s schedule, followed here (a node no live worker serves fails its tick here)', { record: record({ node: 'there' }), followsOtherNodes: true }, enqueue(0, { node: 'there' })],
  ['this node\'s schedule', { record: record({ node: 'here' }) }, enqueue(0, { node: 'here' })],
  ['inactive wins over the missed policy', { source: 'missed', state: { ...active, paused: true }, record: record({ missed: 'skip' }) }, skip('schedule paused')],
  ['missed, runOnce, within the tolerance', { source: 'missed', now: TICK + HOUR }, enqueue()],
  ['missed, runOnce, older than the tolerance', { source: 'missed', now: TICK + HOUR + 1 }, skip(missedTooOld)],
  ['missed, policy skip', { source: 'missed', record: record({ missed: 'skip' }) }, skip('missed: no scheduler handled it when it was due (policy skip)')],
  ['recovery, its job was enqueued before the owner died', { source: 'recovery', enqueuedBefore: true }, { action: 'done' }],
  ['recovery, no job yet: enqueue, no jitter', { source: 'recovery', enqueuedBefore: false, record: record({ jitterMs: 5000 }) }, enqueue(0, { jitterMs: 5000 })],
  ['a tick on time keeps its jitter', { record: record({ jitterMs: 5000 }) }, enqueue(5000, { jitterMs: 5000 })],
  ['overlap skip, previous job still waiting', { record: record(busy), state: withPrevious, previousJobState: 'waiting' }, skip('previous run still active')],
  ['overlap skip, previous job active', { record: record(busy), state: withPrevious, previousJobState: 'active' }, skip('previous run still active')],
  ['overlap skip, previous job delayed (a retry)', { record: record(busy), state: withPrevious, previousJobState: 'delayed' }, skip('previous run still active')],
  ['overlap skip, previous job finished', { record: record(busy), state: withPrevious, previousJobState: 'completed' }, enqueue(0, busy)],
  ['overlap skip, previous job removed', { record: record(busy), state: withPrevious, previousJobState: null }, enqueue(0, busy)],
  ['overlap skip, the previous job is this tick\'s own (a retried tick)', { record: record(busy), state: { ...active, lastJobId: `sched-s-${TICK}` }, previousJobState: 'waiting' }, enqueue(0, busy)],
  ['overlap queue ignores a running previous job', { record: record({ overlap: 'queue' }), state: withPrevious, previousJobState: 'active' }, enqueue(0, { overlap: 'queue' })],
  ['a missed tick within the tolerance still honours overlap skip', { source: 'missed', record: record(busy), state: withPrevious, previousJobState: 'active' }, skip('previous run still active')],
];

for (const [name, over, expected] of table) {
  test(`planTick: ${name}`, () => {
    assert.deepEqual(planTick(facts(over)), expected);
  });
}
