#!/usr/bin/env node
// Runs the test suite with node's built-in runner (TypeScript through tsx).
//   node scripts/run-tests.mjs [unit|integration|e2e|faults|<path>...]
// BARMANTS_TEST_PG_VERSIONS=14,15 limits the PostgreSQL majors the integration tests use.
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const suites = ['unit', 'integration', 'e2e', 'faults'];

function collect(dir) {
  let out = [];
  let entries;
  try { entries = readdirSync(dir); } catch { return out; }
  for (const e of entries.sort()) {
    const p = join(dir, e);
    if (statSync(p).isDirectory()) out = out.concat(collect(p));
    else if (e.endsWith('.test.ts')) out.push(relative(root, p));
  }
  return out;
}

let files = [];
const picked = args.length ? args : suites;
for (const a of picked) {
  if (suites.includes(a) || a === 'faults') files = files.concat(collect(join(root, 'test', a)));
  else files.push(a);
}
if (files.length === 0) {
  console.error('run-tests: no test files found');
  process.exit(1);
}
const concurrency = process.env.BARMANTS_TEST_CONCURRENCY ?? '2';
const r = spawnSync(process.execPath, ['--import', 'tsx', '--test', `--test-concurrency=${concurrency}`, ...files], {
  cwd: root,
  stdio: 'inherit',
  env: { ...process.env },
});
process.exit(r.status ?? 1);
