import { isValidRegex, parseOrThrow } from '../common/validation.js';
import { z } from 'zod';
import { PolicyError } from './errors.js';
import { ancestorsOf, type ProcessInfo } from './process-info.js';

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
  async check(info: ProcessInfo): Promise<void> {
    const refuse = (reason: string) => {
      throw new PolicyError(info.pid, reason);
    };
    if (info.pid === 1) refuse('pid 1 (init) is never a target');
    if (info.kernelThread || (info.cmdline === '' && info.exe === '')) refuse('kernel threads cannot be checkpointed');
    const own = await this.ownPids();
    const why = own.get(info.pid);
    if (why) refuse(why);
    if (this.allowUids.size && !this.allowUids.has(info.uid)) {
      refuse(`uid ${info.uid} is not in policy.allowUids (${[...this.allowUids].join(', ')})`);
    }
    if (this.allowCommands.length && !this.allowCommands.some((r) => r.test(info.cmdline))) {
      refuse(`command line "${info.cmdline}" matches none of policy.allowCommands`);
    }
  }

  /** Every pid ckpt must not dump, with the reason: own processes, then their ancestors. */
  private async ownPids(): Promise<Map<number, string>> {
    const own = new Map<number, string>();
    const roots = [process.pid, ...this.protectedPids()];
    for (const pid of roots) {
      own.set(pid, pid === process.pid ? "it is ckpt's own process" : "it is one of ckpt's own processes");
    }
    for (const pid of roots) {
      for (const ancestor of await ancestorsOf(pid)) {
        if (!own.has(ancestor)) own.set(ancestor, `it is an ancestor of ckpt's own process ${pid} (dumping it would dump ckpt)`);
      }
    }
    return own;
  }
}
