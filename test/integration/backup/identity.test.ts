// The catalog must not mix clusters either. identity.json guards a server directory; when an
// operator removes that directory by hand and points the server at another cluster (re-initialised,
// upgraded, moved), the catalog still lists the old cluster's backups and WAL. A backup of the new
// cluster must then be refused before anything is written, and `rebuild-catalog` must give the
// operator a way out (it used to fail on the empty directory).
import { describe, test, after } from 'node:test';
import assert from 'node:assert/strict';
import { access, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { useCluster, versionsUnderTest } from '../../harness/index.js';
import { barmants, writeTestConfig, type TestConfig } from '../../helpers/config.js';

const version = versionsUnderTest()[0]!;

describe(`a server re-pointed at another cluster after its directory was removed (PostgreSQL ${version})`, () => {
  const first = useCluster({ version, name: `ident-a${version}` });
  const second = useCluster({ version, name: `ident-b${version}` });
  let cfg: TestConfig;
  after(async () => {
    await cfg?.cleanup();
  });

  test('the backup is refused, rebuild-catalog forgets the old files, then backups work', async () => {
    cfg = await writeTestConfig(first());
    let r = await barmants(cfg, ['backup', 'pg', '--wal']);
    assert.equal(r.code, 0, r.stderr);
    const oldId = JSON.parse((await barmants(cfg, ['-f', 'json', 'show-backup', 'pg', 'latest'])).stdout).systemid;

    await rm(join(cfg.home, 'pg'), { recursive: true, force: true });
    cfg = await writeTestConfig(second(), { home: cfg.home });
    r = await barmants(cfg, ['backup', 'pg', '--wal']);
    assert.notEqual(r.code, 0, 'a backup of another system into the old catalog must fail');
    assert.match(r.stderr, new RegExp(`lists 1 backup\\(s\\) and \\d+ WAL segment\\(s\\) of system ${oldId}`));
    assert.match(r.stderr, /rebuild-catalog pg/);
    await assert.rejects(access(join(cfg.home, 'pg', 'identity.json')), 'nothing recorded for the refused cluster');
    const listed = JSON.parse((await barmants(cfg, ['-f', 'json', 'list-backups', 'pg'])).stdout);
    assert.equal(listed.pg.length, 1, 'the refused run added no backup');

    r = await barmants(cfg, ['rebuild-catalog', 'pg']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /forgets the 1 backup\(s\)/);

    r = await barmants(cfg, ['backup', 'pg', '--wal']);
    assert.equal(r.code, 0, r.stderr);
    const show = JSON.parse((await barmants(cfg, ['-f', 'json', 'show-backup', 'pg', 'latest'])).stdout);
    assert.equal(show.status, 'DONE');
    assert.notEqual(show.systemid, oldId);
  });
});
