import { Worker } from 'node:worker_threads';
import { TargetError } from './errors.js';

/** How long a `{match}` regex may take over the whole process list before it is given up. */
export const MATCH_TIMEOUT_MS = 2000;

// Runs in a worker thread: a regex that backtracks without end (say /(a+)+$/ against "aaaa…b") can then be stopped,
// where on the main thread it would hang the API or the worker with it.
const MATCHER = `
const { parentPort } = require('node:worker_threads');
parentPort.on('message', ({ id, source, candidates }) => {
  try {
    const regex = new RegExp(source);
    parentPort.postMessage({ id, pids: candidates.filter(([, cmdline]) => regex.test(cmdline)).map(([pid]) => pid) });
  } catch (err) {
    parentPort.postMessage({ id, error: String(err && err.message) });
  }
});
`;

/**
 * The one thread every match runs in, started at the first and kept (unref'd: it never keeps the process alive).
 * Starting a thread took ~50 ms, most of a `{match}` resolve's ~75 ms over 89 processes. Matches run one at a time;
 * one past its time gets the thread terminated (that is what stops its regex) and the next one a new thread.
 */
class MatchThread {
  private worker?: Worker;
  private lastId = 0;
  private queue: Promise<unknown> = Promise.resolve();

  match(source: string, candidates: Array<[number, string]>, timeoutMs: number): Promise<number[]> {
    const run = this.queue.then(() => this.runAlone(source, candidates, timeoutMs));
    this.queue = run.catch(() => undefined);
    return run;
  }

  private runAlone(source: string, candidates: Array<[number, string]>, timeoutMs: number): Promise<number[]> {
    const worker = (this.worker ??= this.start());
    const id = ++this.lastId;
    return new Promise<number[]>((resolve, reject) => {
      const settle = (replace: boolean) => {
        clearTimeout(timer);
        worker.off('message', onMessage);
        worker.off('error', onError);
        if (!replace) return;
        if (this.worker === worker) this.worker = undefined;
        void worker.terminate();
      };
      const onMessage = (m: { id: number; pids?: number[]; error?: string }) => {
        if (m.id !== id) return;
        settle(false);
        if (m.error !== undefined) reject(new SyntaxError(m.error));
        else resolve(m.pids!);
      };
      const onError = (err: Error) => {
        settle(true);
        reject(err);
      };
      const timer = setTimeout(() => {
        settle(true);
        reject(
          new TargetError(
            'ETARGET_MATCH_TIMEOUT',
            `/${source}/ took longer than ${timeoutMs} ms over the ${candidates.length} command lines: it backtracks too much; simplify it`,
          ),
        );
      }, timeoutMs);
      worker.on('message', onMessage);
      worker.once('error', onError);
      worker.postMessage({ id, source, candidates });
    });
  }

  private start(): Worker {
    const worker = new Worker(MATCHER, { eval: true });
    worker.unref();
    return worker;
  }
}

const matchThread = new MatchThread();

/** The pids of `candidates` ([pid, command line]) whose command line `source` matches; ETARGET_MATCH_TIMEOUT past `timeoutMs`. */
export function matchingPids(source: string, candidates: Array<[number, string]>, timeoutMs = MATCH_TIMEOUT_MS): Promise<number[]> {
  return matchThread.match(source, candidates, timeoutMs);
}
