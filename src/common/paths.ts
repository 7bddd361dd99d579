import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The checkout's root: the nearest folder above this file whose package.json is ckpt's (works from src/ and dist/). */
export function repoRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pkg = path.join(dir, 'package.json');
    if (existsSync(pkg) && JSON.parse(readFileSync(pkg, 'utf8')).name === 'ckpt') return dir;
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error('cannot find the ckpt checkout above ' + fileURLToPath(import.meta.url));
    dir = parent;
  }
}

/** Where scripts/setup.sh puts private installs (CKPT_DATA_DIR, default <repo>/.data). */
export function dataDir(env = process.env): string {
  return env.CKPT_DATA_DIR || path.join(repoRoot(), '.data');
}

/** ckpt's version, from package.json. */
export function packageVersion(): string {
  return (JSON.parse(readFileSync(path.join(repoRoot(), 'package.json'), 'utf8')) as { version: string }).version;
}
