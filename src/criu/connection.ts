import { accessSync, constants, statSync } from 'node:fs';
import { SeqpacketSocket } from 'node-unix-socket';
import { decodeResponse, encodeRequest } from './codec.js';
import { CriuConnectionError } from './errors.js';
import type { CriuReqType, CriuReq, CriuResp } from './rpc-messages.js';

/** The notify-script names CRIU reports (criu_notify.script). */
export type NotifyScript =
  | 'pre-dump'
  | 'post-dump'
  | 'pre-restore'
  | 'post-restore'
  | 'network-lock'
  | 'network-unlock'
  | 'setup-namespaces'
  | 'post-setup-namespaces'
  | 'pre-resume'
  | 'post-resume'
  | 'orphan-pts-master'
  | 'status-ready'
  | 'query-ext-files';

export interface StageEvent {
  stage: NotifyScript;
  /** Set by CRIU for some stages (setup-namespaces, post-restore: the restored root pid). */
  pid?: number;
  /** When the stage was reported (Date.now()). */
  at: number;
}

export interface Notify {
  /**
   * Called for each stage while CRIU waits; CRIU goes on once it returns (or its promise settles).
   * If it throws, CRIU is told the stage failed, abandons the operation, and the request rejects with that error.
   */
  onStage?(event: StageEvent): void | Promise<void>;
}

export interface RequestControl {
  /** Aborting closes the connection: CRIU's worker then gives up and releases the target. */
  signal?: AbortSignal;
  /** Limit for this request, from sending it to the final reply. Default: the client's timeoutMs; 0 = none. */
  timeoutMs?: number;
  notify?: Notify;
}

/**
 * One connection to `criu service` (SOCK_SEQPACKET: one protobuf message per packet) and the request loop on it:
 * send a criu_req, answer every NOTIFY reply, return the final reply. CRIU serves one request per connection,
 * except the PRE_DUMP ... DUMP sequence and keep_open requests.
 */
export class CriuConnection {
  private readonly inbox: Buffer[] = [];
  private wake?: () => void;
  private failure?: CriuConnectionError;
  private rejectFailed!: (err: CriuConnectionError) => void;
  /** Rejects once the connection fails: raced against everything the loop waits for. */
  private readonly failed = new Promise<never>((_, reject) => (this.rejectFailed = reject));
  private closed = false;
  private requestType?: CriuReqType;

  private constructor(
    private readonly socket: SeqpacketSocket,
    readonly socketPath: string,
  ) {
    this.failed.catch(() => undefined);
    socket.on('data', (buf: Buffer) => {
      // Only queue here: destroying the socket inside its own 'data' handler aborts the process (native panic).
      this.inbox.push(buf);
      this.wake?.();
    });
    socket.on('end', () => this.fail('ECRIU_DIED', 'the CRIU service closed the connection before the final reply'));
    socket.on('error', (err: Error) =>
      this.fail('ECRIU_DIED', `the connection to the CRIU service failed: ${err.message}`, err),
    );
  }

  /** Connects, or fails with ECRIU_NO_SOCKET / ECRIU_ACCESS at once, ECRIU_TIMEOUT after connectTimeoutMs. */
  static open(
    socketPath: string,
    options: { connectTimeoutMs: number; signal?: AbortSignal; requestType?: CriuReqType },
  ): Promise<CriuConnection> {
    const { connectTimeoutMs, signal, requestType } = options;
    return new Promise((resolve, reject) => {
      if (signal?.aborted) {
        reject(abortedError(socketPath, requestType, signal));
        return;
      }
      const socket = new SeqpacketSocket();
      let settled = false;
      const finish = (err?: CriuConnectionError) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        socket.off('error', onError);
        if (err) {
          socket.on('error', () => undefined); // late errors of a socket being thrown away
          setImmediate(() => socket.destroy());
          reject(err);
        } else {
          resolve(new CriuConnection(socket, socketPath));
        }
      };
      const onError = (err: Error) => finish(diagnoseConnectFailure(socketPath, requestType, err));
      const onAbort = () => finish(abortedError(socketPath, requestType, signal!));
      const timer = setTimeout(
        () =>
          finish(
            new CriuConnectionError(
              'ECRIU_TIMEOUT',
              `no connection to the CRIU service at ${socketPath} within ${connectTimeoutMs} ms`,
              socketPath,
              requestType,
            ),
          ),
        connectTimeoutMs,
      );
      socket.on('error', onError);
      signal?.addEventListener('abort', onAbort, { once: true });
      try {
        socket.connect(socketPath, () => finish());
      } catch (err) {
        // node-unix-socket throws "Unknown errno" here whatever the cause: find the cause ourselves.
        finish(diagnoseConnectFailure(socketPath, requestType, err));
      }
    });
  }

  /**
   * Sends `req` and runs the loop until the final reply: every NOTIFY is passed to ctl.notify.onStage and answered
   * with notify_success. Rejects with ECRIU_DIED / ECRIU_DECODE / ECRIU_TIMEOUT / ECRIU_ABORTED (closing the
   * connection), or with the error an onStage handler threw.
   */
  async exchange(req: CriuReq, ctl: RequestControl): Promise<CriuResp> {
    this.requestType = req.type;
    const stopWatching = this.watch(req.type, ctl);
    let stageError: { error: unknown } | undefined;
    try {
      this.send(req);
      for (;;) {
        const resp = await this.receive();
        if (resp.type !== 'NOTIFY') {
          if (stageError) throw stageError.error;
          return resp;
        }
        const event: StageEvent = { stage: (resp.notify?.script ?? '') as NotifyScript, at: Date.now() };
        if (resp.notify?.pid) event.pid = resp.notify.pid;
        let ok = true;
        try {
          await Promise.race([ctl.notify?.onStage?.(event), this.failed]);
        } catch (error) {
          if (error === this.failure) throw error;
          stageError ??= { error };
          ok = false;
        }
        this.send({ type: 'NOTIFY', notify_success: ok });
      }
    } finally {
      stopWatching();
    }
  }

  /** Closes the connection (on a later tick: see the 'data' handler). Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    setImmediate(() => this.socket.destroy());
  }

  private send(req: CriuReq): void {
    if (this.failure) throw this.failure;
    try {
      this.socket.write(encodeRequest(req));
    } catch (err) {
      throw this.fail('ECRIU_DIED', `cannot send to the CRIU service: ${(err as Error).message}`, err);
    }
  }

  private async receive(): Promise<CriuResp> {
    while (this.inbox.length === 0) {
      if (this.failure) throw this.failure;
      // A failure wakes the loop too; a reply that arrived just before it (data, then 'end') is still returned.
      await Promise.race([new Promise<void>((resolve) => (this.wake = resolve)), this.failed]).catch(() => undefined);
    }
    const bytes = this.inbox.shift()!;
    try {
      return decodeResponse(bytes);
    } catch (err) {
      throw this.fail(
        'ECRIU_DECODE',
        `undecodable reply from the CRIU service (${bytes.length} bytes): ${(err as Error).message}`,
        err,
      );
    }
  }

  private watch(type: CriuReqType, ctl: RequestControl): () => void {
    const { signal, timeoutMs = 0 } = ctl;
    const onAbort = () => {
      const err = abortedError(this.socketPath, type, signal!);
      this.fail(err.code, err.message);
    };
    if (signal?.aborted) onAbort();
    else signal?.addEventListener('abort', onAbort, { once: true });
    const timer =
      timeoutMs > 0
        ? setTimeout(() => this.fail('ECRIU_TIMEOUT', `CRIU ${type} took longer than ${timeoutMs} ms`), timeoutMs)
        : undefined;
    return () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
    };
  }

  /** Records the first failure, wakes the loop with it and closes the connection. */
  private fail(code: CriuConnectionError['code'], message: string, cause?: unknown): CriuConnectionError {
    if (!this.failure) {
      this.failure = new CriuConnectionError(code, message, this.socketPath, this.requestType, { cause });
      this.rejectFailed(this.failure);
    }
    this.close();
    return this.failure;
  }
}

function abortedError(socketPath: string, type: CriuReqType | undefined, signal: AbortSignal): CriuConnectionError {
  const reason = signal.reason instanceof Error ? signal.reason.message : String(signal.reason ?? 'aborted');
  return new CriuConnectionError('ECRIU_ABORTED', `CRIU ${type ?? 'request'} aborted: ${reason}`, socketPath, type);
}

/** Why a connect failed, from the socket file itself. */
function diagnoseConnectFailure(socketPath: string, type: CriuReqType | undefined, cause: unknown): CriuConnectionError {
  const error = (code: CriuConnectionError['code'], message: string) =>
    new CriuConnectionError(code, message, socketPath, type, { cause });
  try {
    if (!statSync(socketPath).isSocket()) return error('ECRIU_NO_SOCKET', `${socketPath} is not a socket`);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EACCES') return error('ECRIU_ACCESS', `permission denied reaching the CRIU service socket ${socketPath}`);
    return error('ECRIU_NO_SOCKET', `no CRIU service socket at ${socketPath} (${code})`);
  }
  try {
    accessSync(socketPath, constants.W_OK);
  } catch {
    return error('ECRIU_ACCESS', `permission denied on the CRIU service socket ${socketPath} (it is meant for root)`);
  }
  return error('ECRIU_NO_SOCKET', `no CRIU service is listening on ${socketPath}`);
}
