import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Option, type Command } from 'commander';
import { ValidationError } from '../../common/validation.js';
import {
  CriuClient,
  CriuError,
  CriuService,
  locateCriu,
  readDumpStats,
  readRestoreStats,
  type CriuOptions,
  type RequestControl,
  type StageEvent,
} from '../../criu/index.js';

const PAGE_SIZE = 4096;

interface CommonFlags {
  socket?: string;
  json?: boolean;
}

interface CriuFlags extends CommonFlags {
  dir: string;
  tcpEstablished?: boolean;
  shellJob?: boolean;
  fileLocks?: boolean;
  extUnixSk?: boolean;
  logLevel: string;
  networkLock: 'iptables' | 'nftables' | 'skip';
}

interface DumpFlags extends CriuFlags {
  pid: string;
  leaveRunning?: boolean;
}

/** What one command reports: printed as lines, or as one JSON object with --json. */
interface Outcome {
  lines: string[];
  json: Record<string, unknown>;
}

/**
 * `ckpt criu version|check|dump|restore`: CRIU over its RPC socket, without queue or API. With --socket it talks to
 * that `criu service`; without, it runs a private one (in a fresh 0700 folder) for the command's duration.
 */
export function registerCriuCommands(program: Command): void {
  const criu = program
    .command('criu')
    .description('talk to CRIU directly over its RPC socket (no queue, no API server)');

  common(criu.command('version').description("CRIU's version, as the service reports it")).action(
    async function (this: Command) {
      await run(this, async (client, ctl) => {
        const v = await client.version(ctl);
        return { lines: [`CRIU ${v.text}`], json: { version: v } };
      });
    },
  );

  common(criu.command('check').description('whether CRIU works with this kernel (criu check)')).action(
    async function (this: Command) {
      await run(this, async (client, ctl) => {
        const [result, features] = [await client.check(ctl), await client.featureCheck(ctl)];
        const yesNo = (b: boolean) => (b ? 'yes' : 'no');
        return {
          lines: [
            'CRIU check: looks good',
            `features: memory tracking (pre-dumps) ${yesNo(features.memTrack)}, lazy pages ${yesNo(features.lazyPages)}, ` +
              `pidfd store ${yesNo(features.pidfdStore)}`,
            ...warningLines(result.warning),
          ],
          json: { ...result, features },
        };
      });
    },
  );

  criuFlags(
    common(
      criu
        .command('dump')
        .description('checkpoint the process tree rooted at --pid into --dir (created 0700 if missing); the tree is killed unless --leave-running')
        .requiredOption('--pid <pid>', 'root of the process tree')
        .option('--leave-running', 'keep the tree running after the dump'),
    ),
  ).action(async function (this: Command) {
    const flags = this.opts<DumpFlags>();
    await run(this, async (client, ctl, stages) => {
      const pid = Number(flags.pid);
      if (!Number.isInteger(pid) || pid <= 0) {
        throw new ValidationError([{ field: '--pid', reason: `must be a positive integer, got "${flags.pid}"` }], 'flags');
      }
      const imagesDir = path.resolve(flags.dir);
      await mkdir(imagesDir, { recursive: true, mode: 0o700 });
      const result = await client.dump(
        { pid, imagesDir, leaveRunning: !!flags.leaveRunning, logFile: 'dump.log', ...criuOptions(flags) },
        ctl,
      );
      const stats = await readDumpStats(imagesDir);
      const bytes = stats.pagesWritten * PAGE_SIZE;
      return {
        lines: [
          `dumped pid ${flags.pid} into ${imagesDir}${flags.leaveRunning ? ' (left running)' : ''}`,
          `frozen ${ms(stats.frozenTimeUs)}, pages written ${stats.pagesWritten} (${bytes} bytes, ${mib(bytes)})`,
          ...warningLines(result.warning),
        ],
        json: { ...result, imagesDir, stages, stats: { ...stats, bytesWritten: bytes } },
      };
    });
  });

  criuFlags(
    common(
      criu.command('restore').description('restore the process tree dumped in --dir (with its original pids)'),
    ),
  ).action(async function (this: Command) {
    const flags = this.opts<CriuFlags>();
    await run(this, async (client, ctl, stages) => {
      const imagesDir = path.resolve(flags.dir);
      const result = await client.restore({ imagesDir, logFile: 'restore.log', ...criuOptions(flags) }, ctl);
      const stats = await readRestoreStats(imagesDir);
      const restoredPages = stats.pagesRestored ?? 0;
      return {
        lines: [
          `restored pid ${result.pid} from ${imagesDir}`,
          `restore time ${ms(stats.restoreTimeUs)}, pages restored ${restoredPages} (${restoredPages * PAGE_SIZE} bytes)`,
          ...warningLines(result.warning),
        ],
        json: { ...result, imagesDir, stages, stats: { ...stats, bytesRestored: restoredPages * PAGE_SIZE } },
      };
    });
  });
}

function common(cmd: Command): Command {
  return cmd
    .option('--socket <path>', 'a running `criu service` socket (default: $CKPT_CRIU_SOCKET, else a private service)')
    .option('--json', 'print one JSON object instead of lines');
}

function criuFlags(cmd: Command): Command {
  return cmd
    .requiredOption('--dir <dir>', 'the images folder')
    .option('--tcp-established', 'checkpoint / restore established TCP connections')
    .option('--shell-job', 'the tree was started from a shell (has a controlling terminal)')
    .option('--file-locks', 'the tree holds file locks')
    .option('--ext-unix-sk', 'allow Unix sockets connected to processes outside the tree')
    .option('--log-level <n>', "CRIU's log level, 0-4 (log: dump.log / restore.log in --dir)", '4')
    .addOption(
      new Option('--network-lock <method>', 'how CRIU locks the network with --tcp-established (nftables needs no iptables program)')
        .choices(['iptables', 'nftables', 'skip'])
        .default('nftables'),
    );
}

function criuOptions(flags: CriuFlags): CriuOptions {
  return {
    tcpEstablished: !!flags.tcpEstablished,
    shellJob: !!flags.shellJob,
    fileLocks: !!flags.fileLocks,
    extUnixSk: !!flags.extUnixSk,
    // Not a whole number: the client's validation names the field.
    logLevel: /^\d+$/.test(flags.logLevel) ? Number(flags.logLevel) : NaN,
    networkLock: flags.networkLock,
  };
}

/**
 * Runs one command: connects (or starts a private service), prints stages as they come, then the outcome; on failure
 * one line on stderr and exit code 1 (130 when interrupted: Ctrl-C aborts the request and CRIU releases the tree).
 */
async function run(
  cmd: Command,
  body: (client: CriuClient, ctl: RequestControl, stages: { stage: string; pid?: number; elapsedMs: number }[]) => Promise<Outcome>,
): Promise<void> {
  const flags = cmd.optsWithGlobals<CommonFlags>();
  const json = !!flags.json;
  let started = Date.now();
  const stages: { stage: string; pid?: number; elapsedMs: number }[] = [];
  const abort = new AbortController();
  const onSigint = () => abort.abort(new Error('interrupted'));
  process.once('SIGINT', onSigint);
  const onStage = (e: StageEvent) => {
    const elapsedMs = e.at - started;
    stages.push({ stage: e.stage, ...(e.pid && { pid: e.pid }), elapsedMs });
    if (!json) console.log(`  ${e.stage.padEnd(22)} +${elapsedMs} ms${e.pid ? `  (pid ${e.pid})` : ''}`);
  };
  let service: { stop(): Promise<void> } | undefined;
  try {
    let socketPath = flags.socket || process.env.CKPT_CRIU_SOCKET;
    if (!socketPath) {
      const privateService = await startPrivateService();
      service = privateService;
      socketPath = privateService.socketPath;
    }
    const client = new CriuClient({ socketPath });
    started = Date.now(); // elapsed times count from the request, not from starting a private service
    const outcome = await body(client, { signal: abort.signal, notify: { onStage } }, stages);
    const elapsedMs = Date.now() - started;
    if (json) console.log(JSON.stringify({ ok: true, ...outcome.json, elapsedMs }));
    else for (const line of [...outcome.lines, `done in ${elapsedMs} ms`]) console.log(line);
  } catch (err) {
    const e = err as Error & { code?: string };
    const reason = e instanceof ValidationError ? e.message : (e.message ?? String(err)).split('\n')[0];
    console.error(`ckpt criu ${cmd.name()}: ${reason}`);
    if (json) {
      const criu = e instanceof CriuError ? { errno: e.errno, errnoName: e.errnoName, logTail: e.logTail } : {};
      console.log(JSON.stringify({ ok: false, error: { code: e.code ?? 'internal', message: e.message, ...criu }, stages }));
    }
    process.exitCode = abort.signal.aborted ? 130 : 1;
  } finally {
    process.off('SIGINT', onSigint);
    await service?.stop();
  }
}

/** A `criu service` for this command only, in a fresh 0700 folder removed afterwards. */
async function startPrivateService(): Promise<{ socketPath: string; stop(): Promise<void> }> {
  const criu = await locateCriu();
  const runtimeDir = await mkdtemp(path.join(os.tmpdir(), 'ckpt-criu-cli-'));
  const service = new CriuService({ bin: criu.bin, runtimeDir });
  try {
    await service.start();
  } catch (err) {
    await rm(runtimeDir, { recursive: true, force: true });
    throw err;
  }
  return {
    socketPath: service.socketPath,
    async stop() {
      await service.stop();
      await rm(runtimeDir, { recursive: true, force: true });
    },
  };
}

function warningLines(warning: string | undefined): string[] {
  return warning ? [`CRIU warning: ${warning}`] : [];
}

function ms(us: number): string {
  return `${(us / 1000).toFixed(1)} ms`;
}

function mib(bytes: number): string {
  return `${(bytes / (1024 * 1024)).toFixed(1)} MiB`;
}
