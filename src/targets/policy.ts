import { isValidRegex, parseOrThrow } from '../common/validation.js';
import { z } from 'zod';
import { PolicyError } from './errors.js';
import { ancestorsOf, ancestryOf, readProcStat } from '../common/proc.js';
import type { ProcessSnapshot } from './process-snapshot.js';

export interface TargetPolicyOptions {
  /** Only processes of these real uids may be targets. Default [] = any uid (config `policy.allowUids`). */
  allowUids?: number[];
  /** Regex sources; a target's command line must match at least one. Default [] = any (config `policy.allowCommands`). */
  allowCommands?: string[];
  /**
   * ckpt's own processes besides the current one: API, workers, Redis, the CRIU service (their pids, asked at each
   * check because they change when a service restarts). Default: none.
   */
  protectedPids?: () => number[];
}

const optionsSchema = z.object({
  allowUids: z.array(z.number().int().nonnegative()).default([]),
  allowCommands: z
    .array(
      z.string().refine(isValidRegex, 'not a valid regular expression'),
    )
    .default([]),
});

/**
 * Decides whether a resolved process may be dumped. Refuses, with PolicyError (code EPOLICY) and a reason:
 * pid 1; kernel threads; the current process, every protected pid, and every ancestor of those
 * (CRIU dumps a whole tree, so dumping an ancestor would dump ckpt itself); uids outside allowUids;
 * command lines matching none of allowCommands.
 */
export class TargetPolicy {
  private readonly allowUids: ReadonlySet<number>;
  private readonly allowCommands: readonly RegExp[];
  private readonly protectedPids: () => number[];
  /**
   * ckpt's own ancestors (pid -> start time), read once: while ckpt lives the set can only shrink (an orphan is
   * adopted by one of its ancestors), and a start time tells a dead ancestor's reused pid from the ancestor.
   */
  private ownAncestry?: Promise<Map<number, number>>;

  /** Throws ValidationError (fields `policy.allowUids.N`, `policy.allowCommands.N`) for bad allow-lists. */
  constructor(options: TargetPolicyOptions = {}) {
    const {
      policy: { allowUids, allowCommands },
    } = parseOrThrow(
      z.object({ policy: optionsSchema }),
      { policy: { allowUids: options.allowUids, allowCommands: options.allowCommands } },
      'target policy',
    );
    this.allowUids = new Set(allowUids);
    this.allowCommands = allowCommands.map((s) => new RegExp(s));
    this.protectedPids = options.protectedPids ?? (() => []);
  }

  /** Resolves when `info` may be a target; throws PolicyError otherwise. */
  async check(info: ProcessSnapshot): Promise<void> {
    const refuse = (reason: string) => {
      throw new PolicyError(info.pid, reason);
    };
    if (info.pid === 1) refuse('pid 1 (init) is never a target');
    if (info.kernelThread || (info.cmdline === '' && info.exe === '')) refuse('kernel threads cannot be checkpointed');
    const why = await this.whyOwn(info);
    if (why) refuse(why);
    if (this.allowUids.size && !this.allowUids.has(info.uid)) {
      refuse(`uid ${info.uid} is not in policy.allowUids (${[...this.allowUids].join(', ')})`);
    }
    if (!this.commandAllowed(info.cmdline)) refuse(`command line "${info.cmdline}" matches none of policy.allowCommands`);
  }

  /** ckpt's own processes besides the current one (API, workers, Redis, the CRIU service): never a `{match}`. */
  ownPids(): number[] {
    return this.protectedPids();
  }

  /** Whether a command line may run as a workload or be a target (policy.allowCommands; empty = any). */
  commandAllowed(cmdline: string): boolean {
    return !this.allowCommands.length || this.allowCommands.some((r) => r.test(cmdline));
  }

  /** Why `info` is one of ckpt's own processes or an ancestor of one; undefined when it is neither. */
  private async whyOwn(info: ProcessSnapshot): Promise<string | undefined> {
    const ancestorOf = (pid: number) => `it is an ancestor of ckpt's own process ${pid} (dumping it would dump ckpt)`;
    if (info.pid === process.pid) return "it is ckpt's own process";
    const protectedPids = this.protectedPids().filter((pid) => pid !== process.pid);
    if (protectedPids.includes(info.pid)) return "it is one of ckpt's own processes";
    this.ownAncestry ??= ancestryOf(process.pid).then(
      (chain) => new Map(chain.map((a) => [a.pid, a.startTime])),
      (err: unknown) => {
        this.ownAncestry = undefined;
        throw err;
      },
    );
    const [own, parents] = await Promise.all([this.ownAncestry, Promise.all(protectedPids.map((pid) => readProcStat(pid)))]);
    if (own.get(info.pid) === info.startTime) return ancestorOf(process.pid);
    for (const [i, pid] of protectedPids.entries()) {
      const ppid = parents[i]?.ppid ?? 0;
      // ckpt's children (its Redis, its CRIU service) have ckpt's ancestors, checked above.
      if (ppid <= 0 || ppid === process.pid) continue;
      if (ppid === info.pid || (await ancestorsOf(ppid)).includes(info.pid)) return ancestorOf(pid);
    }
    return undefined;
  }
}
