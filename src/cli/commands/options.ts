import { InvalidArgumentError, Option, type Command } from 'commander';
import type { CriuOptions, TargetSpec } from '../api-client.js';
import { parseByteSize } from '../../common/byte-size.js';
import { CliError, EXIT } from '../errors.js';

/** Flags shared by the commands that name a process (dump, schedules add) or pass CRIU options (dump, restore). */

/** commander argument parser for whole numbers >= min. */
export function intArg(min = 0): (value: string) => number {
  return (value: string) => {
    if (!/^-?\d+$/.test(value.trim())) throw new InvalidArgumentError(`expected a whole number, got "${value}"`);
    const n = Number(value);
    if (n < min) throw new InvalidArgumentError(`must be at least ${min}`);
    return n;
  };
}

/** commander argument parser for a size in bytes: a whole number, or with a unit K, M, G, T (powers of 1024; `2G`, `512MiB`, `1.5G`). */
export function byteSizeArg(value: string): number {
  const bytes = parseByteSize(value);
  if (bytes === null || bytes < 1) {
    throw new InvalidArgumentError(`expected a size like 500M, 2G or a number of bytes, got "${value}"`);
  }
  return bytes;
}

export interface TargetFlags {
  pid?: number;
  pidFile?: string;
  match?: string;
  workload?: string;
}

export function addTargetOptions(cmd: Command): Command {
  return cmd
    .option('--pid <pid>', 'the process id', intArg(Number.MIN_SAFE_INTEGER))
    .option('--pid-file <file>', 'a file holding the process id')
    .option('--match <regex>', 'a regex on the command line that must match exactly one process')
    .option('--workload <name>', 'a workload started with ckpt run, by name');
}

/** The target the flags name; exactly one of --pid, --pid-file, --match. Range checks are the server's. */
export function targetFrom(flags: TargetFlags): TargetSpec {
  const given: TargetSpec[] = [];
  if (flags.pid !== undefined) given.push({ pid: flags.pid });
  if (flags.pidFile !== undefined) given.push({ pidFile: flags.pidFile });
  if (flags.match !== undefined) given.push({ match: flags.match });
  if (flags.workload !== undefined) given.push({ workload: flags.workload });
  if (given.length !== 1) throw new CliError('give exactly one of --pid, --pid-file, --match, --workload', EXIT.usage);
  return given[0]!;
}

export interface CriuFlags {
  tcpEstablished?: boolean;
  shellJob?: boolean;
  fileLocks?: boolean;
  extUnixSk?: boolean;
  networkLock?: 'iptables' | 'nftables' | 'skip';
}

export function addCriuOptions(cmd: Command): Command {
  return cmd
    .option('--tcp-established', 'checkpoint / restore established TCP connections')
    .option('--shell-job', 'the process was started from a shell (has a controlling terminal)')
    .option('--file-locks', 'the process holds file locks')
    .option('--ext-unix-sk', 'allow Unix sockets connected to processes outside the tree')
    .addOption(new Option('--network-lock <method>', 'how CRIU locks the network with --tcp-established').choices(['iptables', 'nftables', 'skip']));
}

/** The CRIU options the flags ask for, or undefined when none was given (the server's defaults apply). */
export function criuFrom(flags: CriuFlags): CriuOptions | undefined {
  const criu: CriuOptions = {};
  if (flags.tcpEstablished) criu.tcpEstablished = true;
  if (flags.shellJob) criu.shellJob = true;
  if (flags.fileLocks) criu.fileLocks = true;
  if (flags.extUnixSk) criu.extUnixSk = true;
  if (flags.networkLock) criu.networkLock = flags.networkLock;
  return Object.keys(criu).length ? criu : undefined;
}
