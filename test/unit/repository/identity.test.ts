// identity.json: recorded once, a different cluster refused, a version upgrade accepted.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ServerLayout, checkIdentity } from '../../../packages/barmants/src/repository/index.js';
import { isBarmantsError } from '../../../packages/barmants/src/errors/index.js';

let dir: string;
before(async () => { dir = await mkdtemp(join(tmpdir(), 'barmants-identity-')); });
after(async () => { await rm(dir, { recursive: true, force: true }); });

test('identity is recorded, checked and upgraded', async () => {
  const layout = new ServerLayout(dir, 'pg');
  const id = { systemId: '7301234567890123456', pgVersion: 160004, walSegmentSize: 16 << 20 };
  const first = await checkIdentity(layout, id);
  assert.equal(first.created, true);
  assert.equal((await stat(layout.identityFile)).mode & 0o777, 0o600);
  assert.equal(JSON.parse(await readFile(layout.identityFile, 'utf8')).systemId, id.systemId);
  assert.equal((await checkIdentity(layout, id)).created, false);

  await assert.rejects(checkIdentity(layout, { ...id, systemId: '7309999999999999999' }), (e: unknown) => {
    assert.ok(isBarmantsError(e, 'integrity'));
    assert.match((e as Error).message, /7309999999999999999.*7301234567890123456/);
    assert.match((e as { hint: string }).hint, /re-initialised|new server section/);
    return true;
  });
  await assert.rejects(checkIdentity(layout, { ...id, walSegmentSize: 64 << 20 }), (e) => isBarmantsError(e, 'integrity'));

  const logs: string[] = [];
  const up = await checkIdentity(layout, { ...id, pgVersion: 170002 }, { log: (m) => logs.push(m) });
  assert.equal(up.upgradedFrom, 160004);
  assert.match(logs.join(), /upgraded from PostgreSQL 160004 to 170002/);
  assert.equal(JSON.parse(await readFile(layout.identityFile, 'utf8')).pgVersion, 170002);
});
