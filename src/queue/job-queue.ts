import { randomUUID } from 'node:crypto';
import { FlowProducer, type FlowJob, type Job, type JobsOptions } from 'bullmq';
import type { Redis } from 'ioredis';
import { newCheckpointId } from '../common/checkpoint-id.js';
import { parseOrThrow, ValidationError } from '../common/validation.js';
import type { Config } from '../config/schema.js';
import type { EventLog } from '../events/event-log.js';
import type { EventInput } from '../events/types.js';
import type { Signer } from '../security/signer.js';
import { BACKOFF_TYPE } from './backoff.js';
import { JobStateError, MigrationRefusedError, NodeUnservedError, UnknownCheckpointError } from './errors.js';
import { JOB_TYPES, type JobCount, type JobState, type JobType } from '../common/job-kinds.js';
import { targetKeyOf, toJobState, toJobView, type JobView } from './job-view.js';
import { waitingEventOf, waitingOnce } from './job-waiting.js';
import { queueKeys, queueNameFor } from './keys.js';
import { signJobData } from './job-signature.js';
import { createRedis, type RedisConnection } from './redis.js';
import { RedisScript } from '../common/redis-script.js';
import { NodeQueues } from './node-queues.js';
import { liveNodes } from './worker-presence.js';
import {
  jobIdSchema,
  parseBatchRestoreJob,
  parseDumpJob,
  parseJobData,
  parseMigration,
  parseRestoreJob,
  parseVerifyJob,
  type BatchRestoreJobData,
  type DumpJobData,
  type JobData,
  type MigrateJobData,
  type Migration,
  type RestoreJobData,
  type VerifyJobData,
} from './schemas.js';

/**
 * What JobQueue needs from the catalog: where a checkpoint was made, and of which target; and marking it in use by a
 * restore from the moment the restore is enqueued, so retention never removes a checkpoint a waiting restore needs.
 */
export interface CheckpointLookup {
  get(checkpointId: string): Promise<{ node: string; target: { key: string; workload?: unknown } } | null>;
  acquireRef(checkpointId: string, jobId: string): Promise<unknown>;
}

/** What JobQueue needs from the workload registry: the node a workload runs on (a migration starts there). */
export interface WorkloadLookup {
  get(name: string): Promise<{ node: string } | null>;
}

export interface JobQueueOptions {
  /** config.redis (or a bare URL). Its commands fail fast (redis.commandTimeoutMs) while Redis does not answer. */
  connection: RedisConnection;
  /** config.redis.prefix: BullMQ keys and ckpt's own job keys live under it. */
  prefix: string;
  /** This process's node: the default node of dumps, and where batch parents run. */
  node: string;
  eventLog: EventLog;
  /** config.worker: attempts and how many finished jobs are kept. */
  defaults: Pick<Config['worker'], 'attempts' | 'keepCompleted' | 'keepFailed'>;
  /** The catalog; needed for restores (node and target of a checkpoint). */
  checkpoints?: CheckpointLookup;
  /** The workload registry; a migration of a workload without fromNode starts on the workload's node. Default: none (this node). */
  workloads?: WorkloadLookup;
  /** Signs every job's data (the deployment's key, security.jobKeyFile): workers refuse jobs that do not verify. */
  signer: Signer;
  /** BullMQ log rows kept per job (each row is one batch of CRIU log lines). Default 2000. */
  keepLogRows?: number;
  /**
   * Refuse (NodeUnservedError) a job for a node that no live worker serves (WorkerPresence), instead of letting it
   * wait in that node's queue for a worker that may never come. Default false (tools and tests that run no worker).
   */
  requireLiveNode?: boolean;
  /** config.storage.shared: every node mounts the same storage root, so any live node restores any checkpoint. Default false. */
  sharedStorage?: boolean;
  /** config.storage.remote is set: checkpoints go to the bucket, from which any node restores them. Default false. */
  remoteStorage?: boolean;
}

/** The ids to follow a migration by: the migration (its `migrate` job on toNode) and its dump on fromNode. */
export interface MigrationEnqueued {
  migrationId: string;
  dumpJobId: string;
  checkpointId: string;
  fromNode: string;
  toNode: string;
}

/** Job counts for people: per state over all nodes (finished ones: those Redis still keeps), and each node's workers. */
export interface JobOverview {
  counts: { waiting: number; active: number; delayed: number; completed: number; failed: number; failedLastHour: number; waitingChildren: number };
  nodes: { node: string; workers: number }[];
}

/** What a cancel did: a waiting or delayed job is removed; an active one is being aborted by its worker. */
export interface CancelResult {
  id: string;
  outcome: 'removed' | 'aborting';
}

/** How long a cancel mark waits for a worker to take the job (a stalled job may come back much later). */
const CANCEL_MARK_TTL_S = 24 * 60 * 60;

export interface EnqueueOptions {
  /** A deterministic id (the scheduler's exactly-once ticks). If a job with this id exists, it is returned, not added again. */
  jobId?: string;
  /**
   * The caller alone may enqueue `jobId` now and found no sign that its job was ever added: the scheduler taking over
   * a tick whose scheduler died, maybe after claiming the id and before adding the job. Such an id, claimed for this
   * node and with no job in the queue, gets its job now instead of being returned as existing. Default false.
   */
  takeOver?: boolean;
}

export interface EnqueueResult {
  jobId: string;
  node: string;
  /** True when `jobId` named a job that existed already (nothing was enqueued). */
  existing?: boolean;
}

export interface ListJobsFilter {
  state?: JobState | 'prioritized';
  type?: JobType;
  scheduleId?: string;
  /** Default 100. */
  limit?: number;
}

type BullState = 'waiting' | 'prioritized' | 'delayed' | 'active' | 'completed' | 'failed' | 'waiting-children';
const BULL_STATES: BullState[] = ['active', 'waiting', 'prioritized', 'delayed', 'waiting-children', 'completed', 'failed'];
const COUNTED_STATES = ['waiting', 'delayed', 'active', 'completed', 'failed', 'waiting-children'] as const;
/** Index entries looked at per round trip by pruneIndex. */
const PRUNE_PAGE = 500;

// One command, not a MULTI: ioredis copies every script defined on a connection (BullMQ defines dozens on this one)
// into each pipeline or transaction it makes, which cost more CPU than the rest of an enqueue.
// KEYS: jobNodes, nodes, jobClaims. ARGV: now, then a job id and its node per job. Returns, per job, 1 when claimed
// now (else 0) and the id's node.
const CLAIM_JOB_IDS = new RedisScript(
  'ckptClaimJobIds',
  `local out = {}
for i = 2, #ARGV, 2 do
  local id, node = ARGV[i], ARGV[i + 1]
  local claimed = redis.call('HSETNX', KEYS[1], id, node)
  redis.call('SADD', KEYS[2], node)
  redis.call('ZADD', KEYS[3], 'NX', ARGV[1], id)
  out[#out + 1] = claimed
  out[#out + 1] = redis.call('HGET', KEYS[1], id)
end
return out`,
);

// KEYS: jobNodes, jobClaims. ARGV: a job id and its key in its queue, per job (named, as BullMQ's scripts name job
// keys, so that it reads the queue and writes only ckpt's keys). One script, so that a job whose add lands meanwhile
// is never left without its claim.
const RELEASE_CLAIMS_OF_ABSENT_JOBS = new RedisScript(
  'ckptReleaseClaimsOfAbsentJobs',
  `for i = 1, #ARGV, 2 do
  if redis.call('EXISTS', ARGV[i + 1]) == 0 then
    redis.call('HDEL', KEYS[1], ARGV[i])
    redis.call('ZREM', KEYS[2], ARGV[i])
  end
end
return 0`,
);

/** A job just added, for its job.waiting. */
interface AddedJob {
  type: JobType;
  jobId: string;
  data: JobData;
}

/** One dump of enqueueDumps: the job as asked, and its id (else a new one). */
export interface DumpRequest extends EnqueueOptions {
  input: unknown;
}

/**
 * The producer side of ckpt's jobs: validates and enqueues dumps, restores and batch restores on the queue of the node
 * that must run them (one BullMQ queue per node), and reads jobs back from any node's queue.
 * Job ids are unique across nodes; an index (job id -> node) lets any process find any job.
 */
export class JobQueue {
  readonly node: string;
  private readonly redis: Redis;
  private readonly keys: ReturnType<typeof queueKeys>;
  private readonly queues: NodeQueues;
  private flow?: FlowProducer;

  constructor(private readonly options: JobQueueOptions) {
    this.node = options.node;
    this.redis = createRedis(options.connection);
    CLAIM_JOB_IDS.defineOn(this.redis);
    RELEASE_CLAIMS_OF_ABSENT_JOBS.defineOn(this.redis);
    this.keys = queueKeys(options.prefix);
    this.queues = new NodeQueues(this.redis, options.prefix);
  }

  async enqueueDump(input: unknown, options: EnqueueOptions = {}): Promise<EnqueueResult> {
    const [outcome] = await this.enqueueDumps([{ input, ...options }]);
    if (outcome!.status === 'rejected') throw outcome!.reason;
    return outcome!.value;
  }

  /**
   * Several dumps at once (a scheduler's ticks of one moment): their ids claimed in one Redis call, the jobs added in
   * one call per node, their job.waiting events published in one call. Each request's outcome, in order: a request
   * refused (its schema, its id, its node unserved) fails alone.
   */
  async enqueueDumps(requests: DumpRequest[]): Promise<PromiseSettledResult<EnqueueResult>[]> {
    const outcomes: PromiseSettledResult<EnqueueResult>[] = [];
    const accepted: { at: number; jobId: string; node: string; spec: ReturnType<typeof parseDumpJob> }[] = [];
    const live = await this.liveNodesIfRequired();
    requests.forEach(({ input, jobId: askedId }, at) => {
      try {
        const spec = parseDumpJob(input);
        const jobId = askedId === undefined ? randomUUID() : parseOrThrow(jobIdSchema, askedId, 'job id');
        const node = spec.node ?? this.node;
        assertLive(live, node);
        accepted.push({ at, jobId, node, spec });
      } catch (err) {
        outcomes[at] = { status: 'rejected', reason: err };
      }
    });
    if (!accepted.length) return outcomes;
    const claims = await this.claimJobIds(accepted);
    const claimedNeverAdded = await Promise.all(
      accepted.map(({ at, jobId, node }, i) =>
        !claims[i]!.claimed && requests[at]!.takeOver && claims[i]!.owner === node ? this.notInQueue(jobId, node) : false,
      ),
    );
    const added: { at: number; jobId: string; node: string; data: DumpJobData }[] = [];
    accepted.forEach(({ at, jobId, node, spec }, i) => {
      const claim = claims[i]!;
      if (!claim.claimed && !claimedNeverAdded[i]) {
        outcomes[at] = { status: 'fulfilled', value: { jobId, node: claim.owner, existing: true } };
        return;
      }
      // The checkpoint id is fixed now, so every attempt (also a retry after a worker died) makes the same checkpoint.
      added.push({ at, jobId, node, data: this.sealed<DumpJobData>('dump', jobId, node, { ...spec, node, checkpointId: newCheckpointId() }) });
    });
    /** The nodes whose add failed, with why: their requests fail, the others go on. */
    const failed = new Map<string, unknown>();
    await Promise.all(
      [...new Set(added.map((a) => a.node))].map(async (node) => {
        const group = added.filter((a) => a.node === node);
        const jobs = group.map((a) => ({ name: 'dump', data: a.data, opts: this.jobOptions(a.jobId) }));
        try {
          // A lone job goes by add: addBulk is a MULTI, which costs more CPU here (see CLAIM_JOB_IDS).
          await (jobs.length === 1 ? this.queues.of(node).add('dump', jobs[0]!.data, jobs[0]!.opts) : this.queues.of(node).addBulk(jobs));
        } catch (err) {
          failed.set(node, err);
          // So that the same request again adds them instead of finding their ids taken (best effort: Redis may be gone).
          await this.releaseClaimsOfAbsentJobs(group).catch(() => undefined);
        }
      }),
    );
    const queued = added.filter((a) => !failed.has(a.node));
    await this.announceWaiting(queued.map(({ jobId, data }) => ({ type: 'dump', jobId, data })));
    for (const { at, jobId, node } of added) {
      outcomes[at] = failed.has(node) ? { status: 'rejected', reason: failed.get(node) } : { status: 'fulfilled', value: { jobId, node } };
    }
    return outcomes;
  }

  async enqueueRestore(input: unknown): Promise<EnqueueResult> {
    const spec = parseRestoreJob(input);
    const checkpoint = await this.lookupCheckpoint(spec.checkpointId);
    if ((spec.replicas ?? 1) > 1) assertCopyable(checkpoint, spec.checkpointId, 'replicas');
    const node = await this.placeRestore(spec.checkpointId, checkpoint, spec.node);
    const jobId = randomUUID();
    await this.claimJobIds([{ jobId, node }]);
    await this.options.checkpoints!.acquireRef(spec.checkpointId, jobId);
    const data = this.sealed<RestoreJobData>('restore', jobId, node, { ...spec, node, target: checkpoint.target.key });
    await this.queues.of(node).add('restore', data, this.jobOptions(jobId));
    await this.announceWaiting([{ type: 'restore', jobId, data }]);
    return { jobId, node };
  }

  /** A restore drill of a checkpoint, on the checkpoint's node; holds the checkpoint in use like a restore. */
  async enqueueVerify(input: unknown): Promise<EnqueueResult> {
    const spec = parseVerifyJob(input);
    const checkpoint = await this.lookupCheckpoint(spec.checkpointId);
    const node = await this.placeRestore(spec.checkpointId, checkpoint);
    const jobId = randomUUID();
    await this.claimJobIds([{ jobId, node }]);
    await this.options.checkpoints!.acquireRef(spec.checkpointId, jobId);
    const data = this.sealed<VerifyJobData>('verify', jobId, node, { ...spec, node, target: checkpoint.target.key });
    // One attempt: a drill that failed is the finding, not a hiccup to retry.
    await this.queues.of(node).add('verify', data, { ...this.jobOptions(jobId), attempts: 1 });
    await this.announceWaiting([{ type: 'verify', jobId, data }]);
    return { jobId, node };
  }

  /**
   * A parent job (on this node's queue) with one restore child per checkpoint (each on its checkpoint's node).
   * A failed child does not stop the others (ignoreDependencyOnFailure); the parent runs when all have finished
   * and lists each child's outcome. At most `concurrency` children run at once (a lease semaphore in the worker).
   */
  async enqueueBatchRestore(input: unknown): Promise<{ batchId: string; jobIds: string[] }> {
    const spec = parseBatchRestoreJob(input);
    const byId = new Map(
      await Promise.all(spec.checkpointIds.map(async (id) => [id, await this.lookupCheckpoint(id)] as const)),
    );
    for (const [id, n] of Object.entries(spec.replicas ?? {})) if (n > 1) assertCopyable(byId.get(id)!, id, `replicas.${id}`);
    // One child per restore: a checkpoint with replicas n has n children, each starting one copy.
    const childCheckpointIds = spec.checkpointIds.flatMap((id) => Array<string>(spec.replicas?.[id] ?? 1).fill(id));
    const checkpoints = childCheckpointIds.map((id) => byId.get(id)!);
    const placed = new Map(await Promise.all(spec.checkpointIds.map(async (id) => [id, await this.placeRestore(id, byId.get(id)!)] as const)));
    const childNodes = childCheckpointIds.map((id) => placed.get(id)!);
    // The parent only collects its children's outcomes: any live node's worker can do that, this one's first.
    const live = await this.liveNodesIfRequired();
    const parentNode = !live || live.includes(this.node) ? this.node : live[0]!;
    const batchId = randomUUID();
    const jobIds = childCheckpointIds.map(() => randomUUID());
    const parent = this.sealed<BatchRestoreJobData>('restore-batch', batchId, parentNode, { ...spec, node: parentNode, jobIds, childCheckpointIds });
    const children = childCheckpointIds.map((checkpointId, i) => {
      const node = childNodes[i]!;
      const data = this.sealed<RestoreJobData>('restore', jobIds[i]!, node, {
        checkpointId,
        node,
        target: checkpoints[i]!.target.key,
        batch: { id: batchId, concurrency: spec.concurrency },
        ...((spec.replicas?.[checkpointId] ?? 1) > 1 && { copy: true }),
      });
      return {
        name: 'restore',
        queueName: queueNameFor(data.node),
        prefix: this.options.prefix,
        data,
        opts: { ...this.jobOptions(jobIds[i]!), ignoreDependencyOnFailure: true },
      };
    });
    const index = this.redis.multi();
    const now = Date.now();
    for (const [id, node] of [[batchId, parentNode], ...children.map((c, i) => [jobIds[i]!, c.data.node])] as const) {
      index.hset(this.keys.jobNodes, id, node).zadd(this.keys.jobClaims, 'NX', now, id).sadd(this.keys.nodes, node);
    }
    await index.exec();
    for (const [i, id] of childCheckpointIds.entries()) await this.options.checkpoints!.acquireRef(id, jobIds[i]!);
    await this.addFlow(
      {
        name: 'restore-batch',
        queueName: queueNameFor(parentNode),
        prefix: this.options.prefix,
        data: parent,
        opts: this.jobOptions(batchId),
        children,
      },
      [{ type: 'restore-batch', jobId: batchId, data: parent }, ...children.map((child, i) => ({ type: 'restore' as const, jobId: jobIds[i]!, data: child.data }))],
    );
    return { batchId, jobIds };
  }

  /**
   * A migration as one BullMQ flow: the parent, a `migrate` job on toNode's queue, runs once its child, a dump that
   * stops the process on fromNode (and uploads the checkpoint), has finished; when the dump failed for good
   * (ignoreDependencyOnFailure), the parent fails saying why and where the process is. Refused at once when toNode (or fromNode) has no live worker, when toNode is
   * fromNode, or when nothing can carry the checkpoint across (neither storage.remote nor storage.shared).
   */
  async enqueueMigration(input: unknown): Promise<MigrationEnqueued> {
    const spec = parseMigration(input);
    const target = spec.target ?? { workload: spec.workload! };
    const fromNode = await this.migrationSource(spec);
    const { toNode } = spec;
    if (toNode === fromNode) throw new MigrationRefusedError(`toNode ${toNode} is the node the process runs on (fromNode): nothing to migrate`, 'toNode');
    await this.assertServed(toNode, 'toNode');
    await this.assertServed(fromNode, 'fromNode');
    if (!this.options.remoteStorage && !this.options.sharedStorage) {
      throw new MigrationRefusedError(
        'nothing can carry the checkpoint to another node: configure storage.remote (a bucket) or storage.shared (a root every node mounts)',
        'toNode',
      );
    }
    const migrationId = randomUUID();
    const dumpJobId = randomUUID();
    const checkpointId = newCheckpointId();
    await this.claimJobIds([
      { jobId: migrationId, node: toNode },
      { jobId: dumpJobId, node: fromNode },
    ]);
    const dump = this.sealed<DumpJobData>('dump', dumpJobId, fromNode, {
      target,
      leaveRunning: false,
      ifBusy: 'wait',
      node: fromNode,
      checkpointId,
      migration: { id: migrationId, toNode },
      ...(spec.criu && { criu: spec.criu }),
    });
    const migrate = this.sealed<MigrateJobData>('migrate', migrationId, toNode, { node: toNode, fromNode, checkpointId, dumpJobId, target });
    const migration = { migrationId, dumpJobId, checkpointId, fromNode, toNode };
    await this.addFlow(
      {
        name: 'migrate',
        queueName: queueNameFor(toNode),
        prefix: this.options.prefix,
        data: migrate,
        opts: this.jobOptions(migrationId),
        children: [{ name: 'dump', queueName: queueNameFor(fromNode), prefix: this.options.prefix, data: dump, opts: { ...this.jobOptions(dumpJobId), ignoreDependencyOnFailure: true } }],
      },
      [
        { type: 'migrate', jobId: migrationId, data: migrate },
        { type: 'dump', jobId: dumpJobId, data: dump },
      ],
    );
    return migration;
  }

  /** Any job of any node, or null. */
  async getJob(id: string): Promise<JobView | null> {
    const node = await this.queues.nodeOf(id);
    if (!node) return null;
    const queue = this.queues.of(node);
    // The job's hash and its state are two reads: read the state on both sides so they belong together.
    for (let tries = 0; ; tries++) {
      const before = await queue.getJobState(id);
      const job = await queue.getJob(id);
      // Removed by retention (keepCompleted / keepFailed), or claimed and not added yet; pruneIndex tells them apart.
      if (!job) return null;
      const after = await queue.getJobState(id);
      if (before === after || tries >= 5) return toJobView(job, after, node);
    }
  }

  /**
   * Cancels a job: one that is waiting or delayed is removed (job.cancelled tells the feed; the job is gone from the
   * queue); an active one is marked and its worker told to abort it (the worker ends CRIU, which thaws the target,
   * removes the attempt folder and fails the job with code ECANCELLED). Null when there is no such job;
   * JobStateError for a finished job or a batch waiting for its restores.
   */
  async cancelJob(id: string): Promise<CancelResult | null> {
    const found = await this.findJob(id);
    if (!found) return null;
    const { job, node, state } = found;
    if (state === 'completed' || state === 'failed' || state === 'waiting-children') {
      throw new JobStateError(
        state === 'waiting-children' ? `job ${id} waits for its restores: cancel those` : `job ${id} has ${state} already`,
        id,
        state,
      );
    }
    const event = { jobId: id, jobType: job.name as JobType, scheduleId: job.data?.scheduleId, target: targetKeyOf(job) };
    if (state !== 'active') {
      try {
        // Refused while a worker holds the job's lock: it was taken between the two reads, so abort it instead.
        await job.remove();
        await this.publish({ ...event, event: 'job.cancelled', data: { node, state } });
        return { id, outcome: 'removed' };
      } catch (err) {
        if ((await job.getState()) !== 'active') throw err;
      }
    }
    // The mark first: a worker that registers the job after the message was sent still finds it.
    await this.redis.multi().set(this.keys.cancelMark(id), '1', 'EX', CANCEL_MARK_TTL_S).publish(this.keys.cancelChannel, id).exec();
    return { id, outcome: 'aborting' };
  }

  /**
   * Runs a failed job again from its first attempt (a cancelled one too). A restore takes its checkpoint again (404
   * when it is gone). Null when there is no such job; JobStateError when it has not failed.
   */
  async retryJob(id: string): Promise<EnqueueResult | null> {
    const found = await this.findJob(id);
    if (!found) return null;
    const { job, node, state } = found;
    if (state !== 'failed') throw new JobStateError(`job ${id} is ${state}: only a failed job can be retried`, id, state);
    await this.assertServed(node);
    if (job.name === 'restore') await this.options.checkpoints!.acquireRef((job.data as RestoreJobData).checkpointId, id);
    await this.redis.del(this.keys.cancelMark(id));
    // Announced before the job can run again, in its first run's place: the worker starting it finds it published.
    await this.options.eventLog.forgetOnce(waitingOnce(id, 'enqueuer').key);
    await this.options.eventLog.publishAll(
      [{ event: 'job.waiting', jobId: id, jobType: job.name as JobType, scheduleId: job.data?.scheduleId, target: targetKeyOf(job), data: { node, retried: true } }],
      [waitingOnce(id, 'enqueuer')],
    );
    await job.retry('failed', { resetAttemptsMade: true, resetAttemptsStarted: true });
    return { jobId: id, node };
  }

  /** The BullMQ job, its node and its state, or null when there is no such job. */
  private async findJob(id: string): Promise<{ job: Job; node: string; state: JobState } | null> {
    const node = await this.queues.nodeOf(id);
    if (!node) return null;
    const job = await this.queues.of(node).getJob(id);
    if (!job) return null;
    return { job, node, state: toJobState(await job.getState()) };
  }

  /** Jobs of every node, newest first. */
  async listJobs(filter: ListJobsFilter = {}): Promise<JobView[]> {
    const limit = filter.limit ?? 100;
    const states: BullState[] =
      filter.state === undefined
        ? BULL_STATES
        : filter.state === 'waiting'
          ? ['waiting', 'prioritized']
          : BULL_STATES.filter((s) => s === filter.state);
    const views: JobView[] = [];
    for (const node of await this.nodes()) {
      for (const state of states) views.push(...(await this.scan(node, state, filter, limit)));
    }
    return views.sort((a, b) => b.createdAt - a.createdAt).slice(0, limit);
  }

  /**
   * Forgets index entries of jobs that no longer exist (BullMQ removed them past keepCompleted / keepFailed), claimed
   * more than `olderThanMs` ago, so a young claim whose job is being added is left alone. Returns how many were
   * forgotten. Safe to run from several processes at once.
   */
  async pruneIndex(olderThanMs = 10 * 60 * 1000): Promise<number> {
    let forgotten = 0;
    const cutoff = Date.now() - olderThanMs;
    // Pages of old claims; ids still alive stay in the set (and are looked at again next time).
    for (let offset = 0; ; ) {
      const ids = await this.redis.zrangebyscore(this.keys.jobClaims, '-inf', cutoff, 'LIMIT', offset, PRUNE_PAGE);
      if (!ids.length) return forgotten;
      const nodes = await this.redis.hmget(this.keys.jobNodes, ...ids);
      const exists = this.redis.pipeline();
      ids.forEach((id, i) => (nodes[i] ? exists.exists(this.queues.of(nodes[i]).toKey(id)) : exists.echo('0')));
      const found = (await exists.exec())!.map(([, n]) => Number(n) > 0);
      const gone = ids.filter((_, i) => !found[i]);
      if (gone.length) {
        await this.redis.multi().hdel(this.keys.jobNodes, ...gone).zrem(this.keys.jobClaims, ...gone).exec();
        forgotten += gone.length;
      }
      offset += ids.length - gone.length;
    }
  }

  /** The job's CRIU log lines (every attempt, with a header line per attempt), or null when there is no such job. */
  async getJobLog(id: string): Promise<string | null> {
    const node = await this.queues.nodeOf(id);
    if (!node) return null;
    const queue = this.queues.of(node);
    if (!(await queue.getJob(id))) return null;
    const { logs } = await queue.getJobLogs(id, 0, -1, true);
    return logs.length ? logs.join('\n') + '\n' : '';
  }

  /**
   * Number of jobs per type and state over all nodes (finished ones: those still kept), one row per pair, zeros
   * included so gauges drop back. For metrics (ckpt_jobs{type,state}).
   */
  async countsByTypeAndState(): Promise<JobCount[]> {
    const counts = new Map<string, number>();
    const keyOf = (type: string, state: string) => `${type}\0${state}`;
    for (const type of JOB_TYPES) for (const state of COUNTED_STATES) counts.set(keyOf(type, state), 0);
    for (const node of await this.nodes()) {
      const queue = this.queues.of(node);
      for (const state of BULL_STATES) {
        const ids = await queue.getRanges([state], 0, -1, true);
        if (!ids.length) continue;
        const pipeline = this.redis.pipeline();
        for (const id of ids) pipeline.hget(queue.toKey(id), 'name');
        const counted = state === 'prioritized' ? 'waiting' : state;
        for (const [, name] of (await pipeline.exec()) ?? []) {
          const key = keyOf(String(name), counted);
          const n = counts.get(key);
          if (n !== undefined) counts.set(key, n + 1);
        }
      }
    }
    return [...counts].map(([key, count]) => {
      const [type, state] = key.split('\0') as [string, string];
      return { type, state, count };
    });
  }

  /**
   * Jobs per state over all nodes, failed ones of the last hour apart, and the workers connected to each node's queue
   * (the dashboard's header).
   */
  async overview(now = Date.now()): Promise<JobOverview> {
    const counts = { waiting: 0, active: 0, delayed: 0, completed: 0, failed: 0, failedLastHour: 0, waitingChildren: 0 };
    const nodes: { node: string; workers: number }[] = [];
    for (const node of await this.nodes()) {
      const queue = this.queues.of(node);
      const [c, failedLastHour, workers] = await Promise.all([
        queue.getJobCounts('waiting', 'prioritized', 'active', 'delayed', 'completed', 'failed', 'waiting-children'),
        // BullMQ's failed set is scored by the time each job failed.
        this.redis.zcount(queue.toKey('failed'), now - 60 * 60 * 1000, '+inf'),
        queue.getWorkersCount(),
      ]);
      counts.waiting += (c.waiting ?? 0) + (c.prioritized ?? 0);
      counts.active += c.active ?? 0;
      counts.delayed += c.delayed ?? 0;
      counts.completed += c.completed ?? 0;
      counts.failed += c.failed ?? 0;
      counts.waitingChildren += c['waiting-children'] ?? 0;
      counts.failedLastHour += failedLastHour;
      nodes.push({ node, workers });
    }
    return { counts, nodes };
  }

  /** The nodes at least one live worker serves now (WorkerPresence), sorted. */
  async liveNodes(): Promise<string[]> {
    return liveNodes(this.redis, this.keys.workers);
  }

  /** Every node that has had a job or a worker. */
  async nodes(): Promise<string[]> {
    return (await this.redis.smembers(this.keys.nodes)).sort();
  }

  async close(): Promise<void> {
    await this.queues.close();
    await this.flow?.close();
    this.redis.disconnect();
  }

  /** A job's data as stored: checked against its type's schema, then signed as this job on `node`'s queue. */
  private sealed<T extends JobData>(type: JobType, jobId: string, node: string, data: T): T & { signature: string } {
    return signJobData(this.options.signer, { type, jobId, node }, parseJobData(type, data) as T);
  }

  private jobOptions(jobId: string): JobsOptions {
    const { attempts, keepCompleted, keepFailed } = this.options.defaults;
    return {
      jobId,
      attempts,
      backoff: { type: BACKOFF_TYPE },
      removeOnComplete: { count: keepCompleted },
      removeOnFail: { count: keepFailed },
      keepLogs: this.options.keepLogRows ?? 2000,
    };
  }

  /**
   * Records jobId -> node for each job unless its id is taken; `owner` is the node the id belongs to.
   * Only the claimer adds the job and announces it, so two scheduler replicas passing the same id enqueue it once.
   */
  private async claimJobIds(jobs: { jobId: string; node: string }[]): Promise<{ claimed: boolean; owner: string }[]> {
    const { jobNodes, nodes, jobClaims } = this.keys;
    const flat = (await CLAIM_JOB_IDS.run(this.redis, [jobNodes, nodes, jobClaims], [Date.now(), ...jobs.flatMap((j) => [j.jobId, j.node])])) as (number | string)[];
    return jobs.map((_, i) => ({ claimed: flat[2 * i] === 1, owner: String(flat[2 * i + 1]) }));
  }

  /** Frees the ids of jobs whose add failed, each unless its job is there after all (the add ran, its reply was lost). */
  private async releaseClaimsOfAbsentJobs(jobs: { jobId: string; node: string }[]): Promise<void> {
    const { jobNodes, jobClaims } = this.keys;
    const args = jobs.flatMap(({ jobId, node }) => [jobId, this.queues.of(node).toKey(jobId)]);
    await RELEASE_CLAIMS_OF_ABSENT_JOBS.run(this.redis, [jobNodes, jobClaims], args);
  }

  private async notInQueue(jobId: string, node: string): Promise<boolean> {
    return (await this.redis.exists(this.queues.of(node).toKey(jobId))) === 0;
  }

  /** The nodes live workers serve now, or null when jobs are not checked against them (requireLiveNode off). */
  private async liveNodesIfRequired(): Promise<string[] | null> {
    return this.options.requireLiveNode ? this.liveNodes() : null;
  }

  /**
   * The node a migration starts from: fromNode when given, else a workload's own node (the registry knows it; a name
   * it does not know is refused, MigrationRefusedError), else this node, as for a dump.
   */
  async migrationSource(spec: Migration): Promise<string> {
    const { workloads } = this.options;
    const workload = spec.workload ?? (spec.target && 'workload' in spec.target ? spec.target.workload : undefined);
    if (spec.fromNode !== undefined || workload === undefined || !workloads) return spec.fromNode ?? this.node;
    const record = await workloads.get(workload);
    if (!record) throw new MigrationRefusedError(`workload ${workload} is unknown: no node runs a workload of that name`, spec.workload !== undefined ? 'workload' : 'target.workload');
    return record.node;
  }

  private async assertServed(node: string, field = 'node'): Promise<void> {
    assertLive(await this.liveNodesIfRequired(), node, field);
  }

  /**
   * The node a restore or drill of `checkpoint` runs on: the one asked for, else the checkpoint's own node; with
   * shared storage, when that node is gone, a live one (this one first). Refused when that node has no live worker,
   * or when the checkpoint's only copy is on a node that is gone (storage not shared), naming that node.
   */
  private async placeRestore(checkpointId: string, checkpoint: { node: string; location?: string }, requested?: string): Promise<string> {
    const live = await this.liveNodesIfRequired();
    if (!live) return requested ?? checkpoint.node;
    // A checkpoint in the bucket (storage.remote) is downloaded by whichever node restores it.
    const inBucket = checkpoint.location === 'remote' || checkpoint.location === 'local+remote';
    const shared = (this.options.sharedStorage ?? false) || inBucket;
    const home = checkpoint.node;
    if (!shared && !live.includes(home)) {
      throw new NodeUnservedError(
        `checkpoint ${checkpointId} lives only on node ${home}, which no live worker serves (storage is not shared); live nodes: ${listOf(live)}`,
        home,
        live,
        'checkpointId',
      );
    }
    if (requested !== undefined) {
      await this.assertServed(requested);
      return requested;
    }
    if (live.includes(home)) return home;
    if (live.includes(this.node)) return this.node;
    if (live[0] !== undefined) return live[0];
    throw new NodeUnservedError(`checkpoint ${checkpointId}: no live worker serves any node`, home, live, 'checkpointId');
  }

  private async lookupCheckpoint(checkpointId: string): Promise<{ node: string; target: { key: string; workload?: unknown } }> {
    if (!this.options.checkpoints) throw new Error('JobQueue: restores need options.checkpoints (the catalog)');
    const checkpoint = await this.options.checkpoints.get(checkpointId);
    if (!checkpoint) throw new UnknownCheckpointError(checkpointId);
    return checkpoint;
  }

  private async scan(node: string, state: BullState, filter: ListJobsFilter, limit: number): Promise<JobView[]> {
    const queue = this.queues.of(node);
    const out: JobView[] = [];
    const page = Math.max(limit, 100);
    for (let start = 0; out.length < limit; start += page) {
      const jobs = await queue.getJobs([state], start, start + page - 1, false);
      for (const job of jobs) {
        if (!job) continue;
        if (filter.type && job.name !== filter.type) continue;
        if (filter.scheduleId && job.data?.scheduleId !== filter.scheduleId) continue;
        out.push(toJobView(job, state, node));
      }
      if (jobs.length < page) break;
    }
    return out;
  }

  /** Adds a parent job and its children, then announces them all in one call. */
  private async addFlow(flow: FlowJob, waiting: AddedJob[]): Promise<void> {
    this.flow ??= new FlowProducer({ connection: this.redis, prefix: this.options.prefix });
    await this.flow.add(flow);
    await this.announceWaiting(waiting);
  }

  /** job.waiting of jobs just added; a worker that started one first has published it already (job-waiting.ts). */
  private async announceWaiting(jobs: AddedJob[]): Promise<void> {
    await this.options.eventLog.publishAll(
      jobs.map(({ type, jobId, data }) => waitingEventOf(type, jobId, data)),
      jobs.map(({ jobId }) => waitingOnce(jobId, 'enqueuer')),
    );
  }

  private async publish(input: EventInput): Promise<void> {
    await this.options.eventLog.publish(input);
  }
}

/** Refuses a job for `node` when live workers are checked (`live` not null) and none serves it. */
function assertLive(live: string[] | null, node: string, field = 'node'): void {
  if (live && !live.includes(node)) {
    throw new NodeUnservedError(`no live worker serves node ${node}; live nodes: ${listOf(live)}`, node, live, field);
  }
}

function listOf(nodes: string[]): string {
  return nodes.length ? nodes.join(', ') : '(none)';
}

/** Several copies of one checkpoint at once need a workload's checkpoint (its own pid namespace); refused otherwise. */
function assertCopyable(checkpoint: { target: { workload?: unknown } }, checkpointId: string, field: string): void {
  if (checkpoint.target.workload) return;
  throw new ValidationError(
    [{ field, reason: `checkpoint ${checkpointId} is of a plain process, whose pids exist once: only a workload's checkpoint (ckpt run) restores as several copies` }],
    'restore request',
  );
}
