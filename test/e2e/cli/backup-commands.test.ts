// The backup commands' CLI surface without PostgreSQL (built CLI; `npm run build` first): usage
// errors, unknown servers and backups, empty listings in console and JSON.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli } from '../../helpers/config.js';

const home = await mkdtemp(join(tmpdir(), 'barmants-e2e-'));
const conf = join(home, 'barmants.conf');
await writeFile(conf, `[barmants]\nbarmants_home = ${home}\n[pg]\nconninfo = host=127.0.0.1 port=1\n`);
after(() => rm(home, { recursive: true, force: true }));

test('empty repository: list-backups prints nothing, JSON an empty list', async () => {
  const c = await runCli(['-c', conf, 'list-backups', 'all']);
  assert.equal(c.code, 0, c.stderr);
  assert.equal(c.stdout, '');
  const j = await runCli(['-c', conf, '-f', 'json', 'list-backups', 'pg']);
  assert.deepEqual(JSON.parse(j.stdout), { pg: [] });
});

test('unknown server and unknown backup: exit 5 with a hint', async () => {
  let r = await runCli(['-c', conf, 'list-backups', 'nope']);
  assert.equal(r.code, 5);
  assert.match(r.stderr, /^barmants: error: unknown server 'nope'\nHINT: /);
  r = await runCli(['-c', conf, 'show-backup', 'pg', 'latest']);
  assert.equal(r.code, 5);
  r = await runCli(['-c', conf, 'verify-backup', 'pg', '20261127T101500']);
  assert.equal(r.code, 5);
});

test('keep needs exactly one action; list-files checks its target', async () => {
  let r = await runCli(['-c', conf, 'keep', 'pg', 'latest']);
  assert.equal(r.code, 2);
  r = await runCli(['-c', conf, 'keep', 'pg', 'latest', '--release', '--status']);
  assert.equal(r.code, 2);
  r = await runCli(['-c', conf, 'list-files', 'pg', 'latest', '--target', 'bogus']);
  assert.equal(r.code, 2);
});

test('backup of an unreachable server fails with the connection exit status', async () => {
  const r = await runCli(['-c', conf, 'backup', 'pg'], { timeoutMs: 60_000 });
  assert.equal(r.code, 3, r.stderr);
  const j = await runCli(['-c', conf, '-f', 'json', 'list-backups', 'pg']);
  assert.deepEqual(JSON.parse(j.stdout), { pg: [] }, 'nothing is recorded for a backup that never started');
});
