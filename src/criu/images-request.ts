import { constants } from 'node:fs';
import { open } from 'node:fs/promises';
import path from 'node:path';
import type { CriuConnection, RequestControl } from './connection.js';
import { CriuConnectionError, CriuError } from './errors.js';
import { readLogTail } from './log-tail.js';
import { toCriuOpts, type ImagesRequestOptions } from './options.js';
import type { CriuReqType, CriuReq, CriuResp } from './rpc-messages.js';

/**
 * Runs one request that works on an images folder (DUMP, PRE_DUMP, RESTORE, CHECK) on `conn`, with validated options:
 * opens the folder and passes its fd (kept open until the final reply: CRIU opens /proc/<caller>/fd/<n>), or sends
 * its path with images_dir_fd = -1 when imagesDirByPath. Always asks for notify_scripts, so stages are reported.
 * Returns the successful reply; throws CriuError (with the log's tail when a log file was asked for) otherwise.
 */
export async function runImagesRequest(
  conn: CriuConnection,
  type: CriuReqType,
  options: ImagesRequestOptions & { pid?: number },
  ctl: RequestControl,
): Promise<CriuResp> {
  const imagesDir = path.resolve(options.imagesDir);
  const opts = { ...toCriuOpts(options), notify_scripts: true, ...(options.pid ? { pid: options.pid } : {}) };
  let req: CriuReq;
  let resp: CriuResp;
  if (options.imagesDirByPath) {
    req = { type, opts: { ...opts, images_dir_fd: -1, images_dir: imagesDir } };
    resp = await conn.exchange(req, ctl);
  } else {
    const dir = await open(imagesDir, constants.O_DIRECTORY | constants.O_RDONLY);
    try {
      req = { type, opts: { ...opts, images_dir_fd: dir.fd } };
      resp = await conn.exchange(req, ctl);
    } finally {
      await dir.close();
    }
  }
  const logFile = options.logFile && logPath(imagesDir, options.logFile, options.workDirFd);
  return successfulReply(req, resp, conn.socketPath, logFile);
}

/** Where CRIU writes the log: in the work dir, which is the images dir unless workDirFd says otherwise. */
function logPath(imagesDir: string, logFile: string, workDirFd?: number): string {
  return workDirFd === undefined ? path.join(imagesDir, logFile) : `/proc/${process.pid}/fd/${workDirFd}/${logFile}`;
}

/**
 * The reply when it is the successful answer to `req`; else a CriuError (an unknown request type is answered
 * {type: EMPTY, success: false}), or ECRIU_DECODE for a successful reply of the wrong type.
 */
export async function successfulReply(
  req: CriuReq,
  resp: CriuResp,
  socketPath: string,
  logFile?: string,
): Promise<CriuResp> {
  if (resp.success && resp.type === req.type) return resp;
  if (resp.success) {
    throw new CriuConnectionError(
      'ECRIU_DECODE',
      `the CRIU service answered ${req.type} with a ${resp.type} reply`,
      socketPath,
      req.type,
    );
  }
  const unknown = resp.type === 'EMPTY' && req.type !== 'EMPTY';
  throw new CriuError({
    requestType: req.type,
    errno: resp.cr_errno,
    criuMessage: resp.cr_errmsg?.trim() ?? (unknown ? 'the service did not accept the request type (it answered EMPTY)' : undefined),
    logTail: logFile ? await readLogTail(logFile) : [],
    logFile,
  });
}

/** A success's cr_errmsg is a warning (e.g. rlimit: Can't setup RLIMIT_NOFILE for self). */
export function withWarning<T extends object>(result: T, resp: CriuResp): T & { warning?: string } {
  const warning = resp.cr_errmsg?.trim();
  return warning ? { ...result, warning } : result;
}
