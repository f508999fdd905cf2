// Orphan detection: directories and rows that disagree, stale temporary files, leftover WAL
// copies. Reported always; moved to errors/ only when provably unused.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { findOrphans } from '../../../packages/barmants/src/maintenance/index.js';
import { nullLogger } from '../../../packages/barmants/src/log/index.js';
import { makeRepo, wal, type Repo } from './fixture.js';

describe('findOrphans', () => {
  const repos: Repo[] = [];
  after(async () => { for (const r of repos) await r.cleanup(); });

  test('reports each kind, moves only what is safe', async () => {
    const repo = await makeRepo();
    repos.push(repo);
    const old = new Date(Date.now() - 2 * 3600_000);
    // A backup directory nobody knows (old) and one just created (maybe a backup starting).
    await mkdir(repo.layout.backupDir('20261101T000000'), { recursive: true });
    await utimes(repo.layout.backupDir('20261101T000000'), old, old);
    await mkdir(repo.layout.backupDir('20261102T000000'), { recursive: true });
    // A row whose directory vanished.
    repo.catalog.insertBackup({ server: 'pg', backupId: '20261103T000000', status: 'DONE' });
    // Temporary files: a stale one and a fresh one.
    await repo.addBackup({ backupId: '20261104T000000', status: 'DONE' });
    const staleTmp = join(repo.layout.backupDir('20261104T000000'), 'data.tmp');
    await writeFile(staleTmp, 'x');
    await utimes(staleTmp, old, old);
    await writeFile(join(repo.layout.streamingDir, 'fresh.tmp'), 'x');
    // WAL: a file without row, and a leftover uncompressed copy of a gzip-recorded segment.
    await repo.addSegment(1);
    await mkdir(repo.layout.walDirFor(wal(2)), { recursive: true });
    await writeFile(repo.layout.walFilePath(wal(2), 'none'), 'unknown');
    const row = repo.catalog.getWalSegment('pg', wal(1))!;
    await copyFile(repo.layout.walFilePath(wal(1), 'none'), repo.layout.walFilePath(wal(1), 'gzip'));
    repo.catalog.transaction(() => {
      repo.catalog.deleteWalSegments('pg', [wal(1)]);
      repo.catalog.addWalSegment({ ...row, compression: 'gzip' });
    });

    const found = await findOrphans({ layout: repo.layout, catalog: repo.catalog, logger: nullLogger(), now: new Date() });
    const kinds = found.map((o) => `${o.kind}:${o.what}:${o.movedTo ? 'moved' : 'kept'}`).sort();
    assert.deepEqual(kinds, [
      'backup-without-row:base/20261101T000000:moved',
      'backup-without-row:base/20261102T000000:kept',
      'row-without-backup:20261103T000000:kept',
      'stale-tmp:base/20261104T000000/data.tmp:moved',
      `wal-superseded:wals/${wal(1).slice(0, 16)}/${wal(1)}:moved`,
      `wal-without-row:wals/${wal(2).slice(0, 16)}/${wal(2)}:kept`,
    ]);
    assert.equal(existsSync(repo.layout.backupDir('20261101T000000')), false);
    assert.equal(existsSync(repo.layout.walFilePath(wal(1), 'gzip')), true, 'the recorded copy stays');
    for (const o of found) if (o.movedTo) assert.match(o.movedTo, /^errors\//);
  });
});
