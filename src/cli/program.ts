import { Command, InvalidArgumentError, Option } from 'commander';
import { packageVersion } from '../common/paths.js';
import { registerCheckpointCommands } from './commands/checkpoints.js';
import { registerHealthCommand } from './commands/health.js';
import { registerJobCommands } from './commands/jobs.js';
import { registerScheduleCommands } from './commands/schedules.js';
import { registerWatchCommand } from './commands/watch.js';
import { registerWorkloadCommands } from './commands/workloads.js';
import { EXIT, reportError } from './errors.js';

export const DEFAULT_URL = 'http://127.0.0.1:7070';

/**
 * The `ckpt` program with its global options and the client commands (those that talk to the API).
 * Commander's own errors (unknown option, missing argument) are thrown, not printed, so that every failure goes
 * through reportError and reads the same: `ckpt: <reason>`.
 */
export function createProgram(): Command {
  const program = new Command('ckpt')
    .description('CRIU checkpoint / restore of Linux processes as an observable job queue')
    .version(packageVersion(), '-V, --version')
    .addOption(new Option('--url <url>', 'API server').env('CKPT_URL').default(DEFAULT_URL).argParser(httpUrl))
    .addOption(new Option('--token <token>', 'API token').env('CKPT_TOKEN'))
    .option('--json', 'machine-readable output (JSON), no progress bars')
    .showHelpAfterError(false)
    .exitOverride()
    .configureOutput({ outputError: () => undefined });
  registerJobCommands(program);
  registerCheckpointCommands(program);
  registerScheduleCommands(program);
  registerWorkloadCommands(program);
  registerWatchCommand(program);
  registerHealthCommand(program);
  return program;
}

/** Parses and runs; prints failures and sets the exit code. */
export async function runProgram(program: Command, argv: string[]): Promise<void> {
  // `ckpt watch | head`: the reader went away; that ends the command, it is not an error.
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code !== 'EPIPE') throw err;
    process.exit(EXIT.ok);
  });
  try {
    await program.parseAsync(argv);
  } catch (err) {
    // --help, --version and a bare `ckpt` (help on stderr, exit 2) end this way too, their output already printed.
    const code = (err as { code?: string }).code;
    if (code === 'commander.helpDisplayed' || code === 'commander.version') return;
    if (code === 'commander.help') {
      process.exitCode = EXIT.usage;
      return;
    }
    const report = reportError(err);
    if (argv.includes('--json')) process.stdout.write(JSON.stringify(report.json) + '\n');
    process.stderr.write(report.lines.join('\n') + '\n');
    process.exitCode = report.exitCode;
  }
  if (process.exitCode === undefined) process.exitCode = EXIT.ok;
}

function httpUrl(value: string): string {
  let url: URL | undefined;
  try {
    url = new URL(value);
  } catch {
    // reported below
  }
  if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:')) {
    throw new InvalidArgumentError(`expected an http(s) URL like ${DEFAULT_URL}`);
  }
  return value;
}
