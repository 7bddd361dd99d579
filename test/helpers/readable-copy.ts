import { chmodSync, cpSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { repoRoot } from '../../src/common/paths.js';

/**
 * A copy, in `into` (a folder anyone may enter), of what a test script needs to run as an unprivileged user: the
 * checkout may sit in a 0700 folder such as /root, which that user cannot enter. Copied: package.json and proto/ (ckpt
 * finds its root and CRIU's message definitions from them), the script, ckpt's sources next to it (`dist/src` for a
 * compiled script, else `src`) and the node_modules `packages` the script imports, with their dependencies (tsx too
 * when the script is TypeScript). Returns the copy's path of `script` (a path inside the checkout).
 */
export function readableCopy(into: string, script: string, packages: string[]): string {
  const root = repoRoot();
  const relative = path.relative(root, script);
  const compiled = relative.startsWith(`dist${path.sep}`);
  for (const entry of ['package.json', 'proto', compiled ? path.join('dist', 'src') : 'src', relative]) {
    cpSync(path.join(root, entry), path.join(into, entry), { recursive: true, filter: (p) => !p.endsWith('.map') });
  }
  mkdirSync(path.join(into, 'node_modules'), { recursive: true });
  for (const pkg of dependencyClosure(root, compiled ? packages : [...packages, 'tsx'])) {
    cpSync(path.join(root, 'node_modules', pkg), path.join(into, 'node_modules', pkg), { recursive: true, dereference: true });
  }
  makeReadable(into);
  return path.join(into, relative);
}

/** The packages `names` need, dependencies and installed optional dependencies included (node_modules is flat). */
function dependencyClosure(root: string, names: string[]): Set<string> {
  const seen = new Set<string>();
  const queue = [...names];
  while (queue.length) {
    const name = queue.pop()!;
    const manifest = path.join(root, 'node_modules', name, 'package.json');
    if (seen.has(name) || !existsSync(manifest)) continue;
    seen.add(name);
    const pkg = JSON.parse(readFileSync(manifest, 'utf8')) as Record<string, Record<string, string> | undefined>;
    queue.push(...Object.keys(pkg.dependencies ?? {}), ...Object.keys(pkg.optionalDependencies ?? {}));
  }
  return seen;
}

/** Folders 0755 and files readable by all (other bits kept), so another user can enter and read everything copied. */
function makeReadable(dir: string): void {
  chmodSync(dir, 0o755);
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    if (entry.isDirectory()) makeReadable(p);
    else chmodSync(p, statSync(p).mode | 0o444);
  }
}
