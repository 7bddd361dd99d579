import { Worker } from 'node:worker_threads';
import { TargetError } from './errors.js';

/** How long a `{match}` regex may take over the whole process list before it is given up. */
export const MATCH_TIMEOUT_MS = 2000;

// Runs in a worker thread: a regex that backtracks without end (say /(a+)+$/ against "aaaa…b") can then be stopped,
// where on the main thread it would hang the API or the worker with it.
const MATCHER = `
const { parentPort, workerData } = require('node:worker_threads');
const regex = new RegExp(workerData.source);
parentPort.postMessage(workerData.candidates.filter(([, cmdline]) => regex.test(cmdline)).map(([pid]) => pid));
`;

/** The pids of `candidates` ([pid, command line]) whose command line `source` matches; ETARGET_MATCH_TIMEOUT past `timeoutMs`. */
export function matchingPids(source: string, candidates: Array<[number, string]>, timeoutMs = MATCH_TIMEOUT_MS): Promise<number[]> {
  const worker = new Worker(MATCHER, { eval: true, workerData: { source, candidates } });
  return new Promise<number[]>((resolve, reject) => {
    const timer = setTimeout(() => {
      reject(
        new TargetError(
          'ETARGET_MATCH_TIMEOUT',
          `/${source}/ took longer than ${timeoutMs} ms over the ${candidates.length} command lines: it backtracks too much; simplify it`,
        ),
      );
      void worker.terminate();
    }, timeoutMs);
    worker.once('message', (pids: number[]) => {
      clearTimeout(timer);
      resolve(pids);
      void worker.terminate();
    });
    worker.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}
