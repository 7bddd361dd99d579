import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { ValidationError } from '../common/validation.js';
import { CriuConnection, type RequestControl } from './connection.js';
import { CriuConnectionError, CriuUnsupportedError } from './errors.js';
import { runImagesRequest, successfulReply, withWarning } from './images-request.js';
import {
  parseDumpOptions,
  parsePreDumpSessionOptions,
  parseRestoreOptions,
  type DumpOptions,
  type PreDumpSessionOptions,
  type RestoreOptions,
} from './options.js';
import { PreDumpSession } from './pre-dump-session.js';
import type { CriuReq, CriuResp } from './rpc-messages.js';

export interface CriuClientOptions {
  /** The `criu service --address` socket. */
  socketPath: string;
  /** Default limit per request, from sending it to the final reply (0 = none). Default 600000 (10 min). */
  timeoutMs?: number;
  /** Limit for connecting. Default 1000 ms. */
  connectTimeoutMs?: number;
}

export interface CriuVersion {
  major: number;
  minor: number;
  sublevel?: number;
  extra?: number;
  gitid?: string;
  name?: string;
  /** e.g. "4.2.1", plus the name and git id when CRIU sends them. */
  text: string;
}

export interface CriuFeatures {
  /** Memory change tracking (needs CONFIG_MEM_SOFT_DIRTY): required by pre-dumps and trackMem. */
  memTrack: boolean;
  lazyPages: boolean;
  pidfdStore: boolean;
}

export interface CheckResult {
  warning?: string;
}

export interface DumpResult {
  /** True only in a process that dumped itself and was then restored from that dump. */
  restored: boolean;
  /** CRIU's cr_errmsg on a successful dump. */
  warning?: string;
}

export interface RestoreResult {
  /** The restored tree's root pid (the dumped pid). */
  pid: number;
  warning?: string;
}

/**
 * Client of `criu service` (CRIU's RPC over a SOCK_SEQPACKET socket). Every call opens its own connection, so one
 * client serves concurrent requests; CRIU forks a worker per connection. Options are validated before anything is
 * sent (ValidationError naming the field). Failures: CriuError (CRIU said no), CriuConnectionError (no usable reply).
 */
export class CriuClient {
  readonly socketPath: string;
  private readonly timeoutMs: number;
  private readonly connectTimeoutMs: number;

  constructor(options: CriuClientOptions) {
    this.socketPath = options.socketPath;
    this.timeoutMs = options.timeoutMs ?? 600_000;
    this.connectTimeoutMs = options.connectTimeoutMs ?? 1000;
  }

  async version(ctl: RequestControl = {}): Promise<CriuVersion> {
    const resp = await this.checked({ type: 'VERSION' }, ctl);
    const v = resp.version;
    if (!v) throw new CriuConnectionError('ECRIU_DECODE', 'VERSION reply without a version', this.socketPath, 'VERSION');
    const text =
      [v.major_number, v.minor_number, v.sublevel].filter((n) => n !== undefined).join('.') +
      (v.name ? ` "${v.name}"` : '') +
      (v.gitid ? ` (${v.gitid})` : '');
    return {
      major: v.major_number,
      minor: v.minor_number,
      ...(v.sublevel !== undefined && { sublevel: v.sublevel }),
      ...(v.extra !== undefined && { extra: v.extra }),
      ...(v.gitid !== undefined && { gitid: v.gitid }),
      ...(v.name !== undefined && { name: v.name }),
      text,
    };
  }

  /**
   * `criu check`: whether CRIU works with this kernel. Runs in a private temporary images folder (CRIU 4.1 needs one)
   * with a check.log, whose error lines a failure carries.
   */
  async check(ctl: RequestControl = {}): Promise<CheckResult> {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'ckpt-criu-check-'));
    try {
      return await this.withConnection('CHECK', ctl, async (conn, control) => {
        const resp = await runImagesRequest(conn, 'CHECK', { imagesDir: dir, logFile: 'check.log' }, control);
        return withWarning({}, resp);
      });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }

  /** Which optional features this CRIU and kernel offer. */
  async featureCheck(ctl: RequestControl = {}): Promise<CriuFeatures> {
    // Always send a features message: CRIU 4.1 dereferences it without a check.
    const resp = await this.checked(
      { type: 'FEATURE_CHECK', features: { mem_track: true, lazy_pages: true, pidfd_store: true } },
      ctl,
    );
    const f = resp.features ?? {};
    return { memTrack: !!f.mem_track, lazyPages: !!f.lazy_pages, pidfdStore: !!f.pidfd_store };
  }

  /** Dumps the tree rooted at opts.pid into opts.imagesDir. Without leaveRunning, CRIU kills the tree once dumped. */
  async dump(opts: DumpOptions, ctl: RequestControl = {}): Promise<DumpResult> {
    const options = parseDumpOptions(opts);
    return this.withConnection('DUMP', ctl, async (conn, control) => {
      const resp = await runImagesRequest(conn, 'DUMP', options, control);
      return withWarning({ restored: resp.dump?.restored ?? false }, resp);
    });
  }

  /**
   * Restores the tree dumped in opts.imagesDir, with its original pids (EEXIST while one is taken, e.g. by the
   * zombie of the just-dumped task). The restored tasks end up children of pid 1, not of the caller.
   */
  async restore(opts: RestoreOptions, ctl: RequestControl = {}): Promise<RestoreResult> {
    const options = parseRestoreOptions(opts);
    return this.withConnection('RESTORE', ctl, async (conn, control) => {
      const resp = await runImagesRequest(conn, 'RESTORE', options, control);
      return withWarning({ pid: resp.restore?.pid ?? 0 }, resp);
    });
  }

  /**
   * Starts an incremental dump: PRE_DUMPs and then the final DUMP on one connection (see PreDumpSession).
   * Pre-dumps need memory tracking: when FEATURE_CHECK says it is unavailable (kernel without CONFIG_MEM_SOFT_DIRTY)
   * this throws CriuUnsupportedError (code ECRIU_UNSUPPORTED) before anything is dumped; a plain dump() still works.
   */
  async preDumpSession(opts: PreDumpSessionOptions, ctl: RequestControl = {}): Promise<PreDumpSession> {
    const options = parsePreDumpSessionOptions(opts);
    const features = await this.featureCheck(ctl);
    if (!features.memTrack) {
      throw new CriuUnsupportedError(
        'memTrack',
        'pre-dumps need memory tracking, which this kernel or CRIU does not offer ' +
          '(FEATURE_CHECK: mem_track unavailable; the kernel needs CONFIG_MEM_SOFT_DIRTY); take a full dump instead',
      );
    }
    const conn = await this.connect('PRE_DUMP', ctl);
    return new PreDumpSession(conn, options, this.timeoutMs);
  }

  /**
   * Sends one raw request on its own connection and returns CRIU's final reply as it is, successful or not
   * (NOTIFYs are answered on the way). For request types without a method here (CPUINFO_*, WAIT_PID, PAGE_SERVER,
   * ...). An unknown request type comes back as {type: 'EMPTY', success: false}. A DUMP or PRE_DUMP must carry a pid.
   */
  async request(req: CriuReq, ctl: RequestControl = {}): Promise<CriuResp> {
    if ((req.type === 'DUMP' || req.type === 'PRE_DUMP') && !(Number.isInteger(req.opts?.pid) && req.opts!.pid! > 0)) {
      throw new ValidationError(
        [{ field: 'opts.pid', reason: 'is required (an unset pid makes CRIU dump the caller itself)' }],
        'CRIU request',
      );
    }
    return this.withConnection(req.type, ctl, (conn, control) => conn.exchange(req, control));
  }

  /** A request without an images folder; its successful reply, else CriuError. */
  private checked(req: CriuReq, ctl: RequestControl): Promise<CriuResp> {
    return this.withConnection(req.type, ctl, async (conn, control) =>
      successfulReply(req, await conn.exchange(req, control), this.socketPath),
    );
  }

  private async withConnection<T>(
    type: CriuReq['type'],
    ctl: RequestControl,
    fn: (conn: CriuConnection, control: RequestControl) => Promise<T>,
  ): Promise<T> {
    const conn = await this.connect(type, ctl);
    try {
      return await fn(conn, { ...ctl, timeoutMs: ctl.timeoutMs ?? this.timeoutMs });
    } finally {
      conn.close();
    }
  }

  private connect(type: CriuReq['type'], ctl: RequestControl): Promise<CriuConnection> {
    return CriuConnection.open(this.socketPath, {
      connectTimeoutMs: this.connectTimeoutMs,
      signal: ctl.signal,
      requestType: type,
    });
  }
}
