#!/usr/bin/env node
// Makes `npm test` / `npm run demo` work on a fresh clone: installs the npm dependencies when
// they are missing or older than package-lock.json, and checks that the native modules load
// (npm 11 may skip install scripts it was not told to allow).
import { execFileSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const marker = join(root, 'node_modules', '.package-lock.json');
const lock = join(root, 'package-lock.json');

function run(cmd, args) {
  console.error(`ensure-deps: ${cmd} ${args.join(' ')}`);
  execFileSync(cmd, args, { cwd: root, stdio: 'inherit' });
}

const stale = !existsSync(marker) || (existsSync(lock) && statSync(lock).mtimeMs > statSync(marker).mtimeMs + 1000);
if (stale) run('npm', [existsSync(lock) ? 'ci' : 'install', '--no-audit', '--no-fund']);

const require = createRequire(join(root, 'packages', 'barmants', 'package.json'));
for (const mod of ['better-sqlite3', 'lz4-napi', 'zstd-napi']) {
  try {
    const m = require(mod);
    if (mod === 'better-sqlite3') new m(':memory:').close();
  } catch (err) {
    console.error(`ensure-deps: ${mod} does not load (${err.message}); rebuilding it`);
    run('npm', ['rebuild', mod]);
  }
}
