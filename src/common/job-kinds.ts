// The kinds of job and the states a job is in: one vocabulary for the queue, its events, the API, the CLI and the feed.

export const JOB_TYPES = ['dump', 'restore', 'restore-batch', 'verify', 'migrate'] as const;
export type JobType = (typeof JOB_TYPES)[number];

/** A job's state as ckpt reports it: BullMQ's, with 'prioritized' folded into 'waiting' (toJobState). */
export const JOB_STATES = ['waiting', 'delayed', 'active', 'completed', 'failed', 'waiting-children', 'unknown'] as const;
export type JobState = (typeof JOB_STATES)[number];

/** How many jobs of a type are in a state (ckpt_jobs{type,state}); the type is the BullMQ job's name as stored. */
export interface JobCount {
  type: string;
  state: string;
  count: number;
}
