// The WAL compression pass: uncompressed segments become compressed files with the same
// checksum of their content, the catalog follows, the originals go only afterwards.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { gunzipSync } from 'node:zlib';
import { compressWal, runMaintenance } from '../../../packages/barmants/src/maintenance/index.js';
import { nullLogger } from '../../../packages/barmants/src/log/index.js';
import { hashStoredFile, StoreWorkerPool } from '../../../packages/barmants/src/repository/index.js';
import { makeRepo, wal, type Repo } from './fixture.js';

describe('WAL compression pass', () => {
  const repos: Repo[] = [];
  const pool = new StoreWorkerPool(2);
  after(async () => {
    await pool.close();
    for (const r of repos) await r.cleanup();
  });

  test('gzip: files replaced, checksums preserved, catalog updated, a mismatching segment left alone', async () => {
    const repo = await makeRepo({ compression: 'gzip' });
    repos.push(repo);
    const contents = new Map<string, Buffer>();
    for (const n of [1, 2, 3, 4, 5]) contents.set(wal(n), await repo.addSegment(n));
    await repo.addSegment(6, { checksum: 'f'.repeat(64) }); // the catalog disagrees with the file
    const out = await compressWal({ server: repo.server, layout: repo.layout, catalog: repo.catalog, logger: nullLogger(), pool });
    assert.deepEqual(out.compressed.sort(), [1, 2, 3, 4, 5].map((n) => wal(n)));
    assert.equal(out.failed.length, 1);
    assert.equal(out.failed[0]!.name, wal(6));
    assert.ok(out.bytesAfter < out.bytesBefore);
    for (const [name, content] of contents) {
      const row = repo.catalog.getWalSegment('pg', name)!;
      assert.equal(row.compression, 'gzip');
      assert.equal(row.size, content.length);
      const gz = repo.layout.walFilePath(name, 'gzip');
      assert.equal(existsSync(repo.layout.walFilePath(name, 'none')), false, 'original removed');
      assert.equal(row.storedSize, (await readFile(gz)).length);
      assert.deepEqual(gunzipSync(await readFile(gz)), content);
      assert.equal(row.checksum, createHash('sha256').update(content).digest('hex'));
    }
    const bad = repo.catalog.getWalSegment('pg', wal(6))!;
    assert.equal(bad.compression, null);
    assert.equal(existsSync(repo.layout.walFilePath(wal(6), 'none')), true);
    assert.equal(existsSync(repo.layout.walFilePath(wal(6), 'gzip')), false, 'no half-done compressed copy left');
    // Idempotent: the next pass has nothing left but the bad one.
    const again = await compressWal({ server: repo.server, layout: repo.layout, catalog: repo.catalog, logger: nullLogger(), pool });
    assert.deepEqual(again.compressed, []);
  });

  test('zstd through a whole maintenance pass (under the cron lock)', async () => {
    const repo = await makeRepo({ compression: 'zstd' });
    repos.push(repo);
    const content = await repo.addSegment(7, { bytes: 1 << 20 });
    const [report] = await runMaintenance({ config: repo.config, catalog: repo.catalog, logger: nullLogger(), pool });
    assert.deepEqual(report!.compression!.compressed, [wal(7)]);
    assert.deepEqual(report!.errors, []);
    const digest = await hashStoredFile(repo.layout.walFilePath(wal(7), 'zstd'), 'zstd', 'sha256');
    assert.equal(digest.checksum, createHash('sha256').update(content).digest('hex'));
    assert.equal(repo.catalog.getWalSegment('pg', wal(7))!.compression, 'zstd');
  });

  test('compression = none: nothing to do', async () => {
    const repo = await makeRepo();
    repos.push(repo);
    await repo.addSegment(1);
    const out = await compressWal({ server: repo.server, layout: repo.layout, catalog: repo.catalog, logger: nullLogger(), pool });
    assert.deepEqual(out.compressed, []);
    assert.equal(repo.catalog.getWalSegment('pg', wal(1))!.compression, null);
  });
});
