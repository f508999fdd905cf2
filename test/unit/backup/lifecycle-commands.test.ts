// delete / keep / rebuild-catalog / progress on a synthetic repository (no PostgreSQL): the
// crash-safe delete order, keep and minimum_redundancy refusals, and a catalog rebuilt from files.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Catalog, type BackupRecord } from '../../../packages/barmants/src/catalog/index.js';
import { loadConfig } from '../../../packages/barmants/src/config/index.js';
import { nullLogger } from '../../../packages/barmants/src/log/index.js';
import { ServerLayout, catalogPath, compressWhole, decompressWhole } from '../../../packages/barmants/src/repository/index.js';
import { buildRepository } from '../../integration/recovery/fixture.js';
import {
  checkDeletable, deleteBackup, finishInterruptedDeletes, rebuildCatalog, setKeep, writeBackupInfo,
  ProgressTracker, describeProgress, verifyBackup,
} from '../../../packages/barmants/src/backup/index.js';
import { isBarmantsError } from '../../../packages/barmants/src/errors/index.js';

const SEG = 16 << 20;

async function setup(minimumRedundancy = 1) {
  const home = await mkdtemp(join(tmpdir(), 'barmants-unit-'));
  const conf = join(home, 'b.conf');
  await writeFile(conf, `[barmants]\nbarmants_home = ${home}\n[pg]\nconninfo = host=127.0.0.1\nminimum_redundancy = ${minimumRedundancy}\n`);
  const server = loadConfig({ path: conf, env: {} }).servers.get('pg')!;
  const layout = new ServerLayout(home, 'pg');
  await layout.ensure();
  const catalog = Catalog.open(catalogPath(home));
  catalog.upsertServer({ name: 'pg', systemId: '7311831194433320669', pgVersion: 160004, walSegmentSize: SEG });
  await writeFile(layout.identityFile, JSON.stringify({ systemId: '7311831194433320669', pgVersion: 160004, walSegmentSize: SEG, createdAt: 'x', updatedAt: 'x' }));
  const add = async (id: string, seg: number, status: BackupRecord['status'] = 'DONE') => {
    await mkdir(layout.backupDataDir(id), { recursive: true });
    await writeFile(join(layout.backupDataDir(id), 'PG_VERSION'), '16\n');
    await writeFile(join(layout.backupDir(id), 'files.jsonl'), '');
    const hex = seg.toString(16).toUpperCase().padStart(8, '0');
    const rec = catalog.insertBackup({
      server: 'pg', backupId: id, status, beginWal: `00000001000000000000${hex.slice(-4)}`.padEnd(24, '0').slice(0, 24),
      endWal: null, timeline: 1, walSegmentSize: SEG, compression: 'none', beginTime: '2026-11-27T10:15:00.000+00:00',
    });
    await writeBackupInfo(layout, rec);
    return rec;
  };
  return { home, server, layout, catalog, add, cleanup: async () => { catalog.close(); await rm(home, { recursive: true, force: true }); } };
}

test('delete: kept and minimum_redundancy refusals, then a removal in the crash-safe order', async () => {
  const s = await setup(1);
  try {
    const a = await s.add('20261127T101500', 5);
    const b = await s.add('20261128T101500', 7);
    const kept = await setKeep(s.catalog, s.layout, a, 'full');
    assert.equal(kept.keep, 'full');
    assert.throws(() => checkDeletable(s.server, s.catalog, kept), (e) => isBarmantsError(e, 'unsafe') && /keep annotation/.test(e.message));
    await assert.rejects(setKeep(s.catalog, s.layout, (await s.add('20261129T101500', 9, 'FAILED')), 'full'), /only DONE backups/);
    const released = await setKeep(s.catalog, s.layout, kept, null);
    const r = await deleteBackup({ server: s.server, layout: s.layout, catalog: s.catalog, logger: nullLogger() }, released);
    assert.equal(r.backupId, a.backupId);
    await assert.rejects(stat(s.layout.backupDir(a.backupId)));
    assert.equal(s.catalog.getBackup('pg', a.backupId), null);
    // Now one DONE backup is left: minimum_redundancy = 1 forbids deleting it.
    await assert.rejects(
      deleteBackup({ server: s.server, layout: s.layout, catalog: s.catalog, logger: nullLogger() }, s.catalog.getBackup('pg', b.backupId)!),
      /minimum redundancy = 1, current redundancy = 1/,
    );
    // A FAILED backup can always go.
    await deleteBackup({ server: s.server, layout: s.layout, catalog: s.catalog, logger: nullLogger() }, s.catalog.resolveBackupId('pg', 'last-failed')!);
  } finally {
    await s.cleanup();
  }
});

test('a delete interrupted after marking DELETING is finished by the next run', async () => {
  const s = await setup(0);
  try {
    const a = await s.add('20261127T101500', 5);
    s.catalog.updateBackup('pg', a.backupId, { status: 'DELETING' });
    assert.deepEqual(await finishInterruptedDeletes(s.catalog, s.layout, nullLogger()), [a.backupId]);
    assert.equal(s.catalog.getBackup('pg', a.backupId), null);
    await assert.rejects(stat(s.layout.backupDir(a.backupId)));
  } finally {
    await s.cleanup();
  }
});

test('rebuild-catalog recreates backups (with keep) and WAL segments from the files', async () => {
  const s = await setup(0);
  try {
    const a = await s.add('20261127T101500', 5);
    await setKeep(s.catalog, s.layout, a, 'standalone');
    await s.add('20261128T101500', 7, 'FAILED');
    const seg = '000000010000000000000005';
    await mkdir(s.layout.walDirFor(seg), { recursive: true });
    await writeFile(s.layout.walFilePath(seg, 'none'), Buffer.alloc(SEG, 1));
    await writeFile(s.layout.walFilePath('00000002.history', 'none'), '1\t0/5000000\tno recovery target specified\n');
    s.catalog.clearServer('pg');
    const r = await rebuildCatalog(s.catalog, s.layout, nullLogger());
    assert.equal(r.backups, 2);
    assert.equal(r.walSegments, 1);
    assert.equal(r.historyFiles, 1);
    assert.equal(s.catalog.getBackup('pg', a.backupId)!.keep, 'standalone');
    assert.equal(s.catalog.getBackup('pg', '20261128T101500')!.status, 'FAILED');
    const w = s.catalog.getWalSegment('pg', seg)!;
    assert.equal(w.size, SEG);
    assert.equal(w.checksum.length, 64);
    assert.equal(s.catalog.getHistoryFile('pg', 2)!.parentTli, 1);
  } finally {
    await s.cleanup();
  }
});

test('verify-backup reports a missing manifest and passes an empty file list otherwise', async () => {
  const s = await setup(0);
  try {
    const a = await s.add('20261127T101500', 5);
    const r = await verifyBackup(s.layout, a);
    assert.deepEqual(r.problems.map((p) => [p.file, p.problem]), [['backup_manifest', 'missing']]);
  } finally {
    await s.cleanup();
  }
});

// Backups taken before BLAKE3 (files.jsonl with sha256) are verified with SHA-256, new ones with BLAKE3.
for (const checksum of ['blake3', 'sha256'] as const) {
  test(`verify-backup checks each file with its entry's algorithm (${checksum}): a flipped byte is named`, async () => {
    const home = await mkdtemp(join(tmpdir(), 'barmants-verify-'));
    const { catalog, layout } = await buildRepository(home, {}, { checksum });
    try {
      const rec = catalog.getBackup('pg', '20261127T101500')!;
      const files = (r: Awaited<ReturnType<typeof verifyBackup>>) => r.problems.filter((p) => p.file !== 'backup_manifest');
      const clean = await verifyBackup(layout, rec);
      assert.deepEqual(files(clean), []);
      assert.ok(clean.filesChecked > 5);
      const stored = join(layout.backupDir(rec.backupId), 'data', 'base/5/16384.zst');
      const content = decompressWhole('zstd', await readFile(stored));
      content[4242] ^= 0x10;
      await writeFile(stored, compressWhole('zstd', content));
      const bad = await verifyBackup(layout, rec);
      assert.deepEqual(files(bad).map((p) => [p.file, p.problem]), [['data/base/5/16384.zst', 'checksum']]);
      assert.match(files(bad)[0]!.detail, new RegExp(`^${checksum} [0-9a-f]{16}…, files\\.jsonl says [0-9a-f]{16}…$`));
    } finally {
      catalog.close();
      await rm(home, { recursive: true, force: true });
    }
  });
}

test('progress: rate, fraction and ETA', () => {
  let now = 0;
  const t = new ProgressTracker(() => now);
  now = 1000;
  t.update({ bytesDone: 10 << 20, bytesTotal: 100 << 20 });
  now = 2000;
  const v = t.update({ bytesDone: 20 << 20, bytesTotal: 100 << 20 });
  assert.equal(v.fraction, 0.2);
  assert.ok(Math.abs(v.rate - (10 << 20)) < 1);
  assert.ok(Math.abs(v.etaSeconds! - 8) < 0.01);
  assert.equal(describeProgress(v), 'copied 20.0 MiB of ~100.0 MiB (20%), 10.0 MiB/s, ETA 00:08');
  assert.equal(t.update({ bytesDone: 5, bytesTotal: null }).etaSeconds, null);
});

test('naming a backup that leads nowhere says what the server has instead', async () => {
  const { resolveBackupRef } = await import('../../../packages/barmants/src/backup/resolve.js');
  const s = await setup(1);
  const fails = (ref: string, message: RegExp, hint: RegExp) =>
    assert.throws(() => resolveBackupRef(s.catalog, 'pg', ref), (e: unknown) => isBarmantsError(e, 'notFound') && message.test(e.message) && hint.test(e.hint));
  try {
    fails('latest', /^server 'pg' has no backup yet$/, /barmants backup pg/);
    await s.add('20261127T101500', 5, 'FAILED');
    const waiting = await s.add('20261128T101500', 7, 'WAITING_FOR_WALS');
    fails('latest', /no DONE backup for 'latest': the newest, 20261128T101500, is WAITING_FOR_WALS \(and 1 other\(s\), none DONE\)/, /receive-wal pg.*--wal/);
    fails('oldest', /the newest, 20261128T101500, is WAITING_FOR_WALS/, /show-backup pg 20261128T101500/);
    fails('nightly', /^unknown backup 'nightly' for server 'pg'$/, /list-backups pg/);
    assert.equal(resolveBackupRef(s.catalog, 'pg', 'last-failed').backupId, '20261127T101500');
    assert.equal(resolveBackupRef(s.catalog, 'pg', waiting.backupId).status, 'WAITING_FOR_WALS', 'an id names any backup');
    await s.add('20261129T101500', 9, 'DONE');
    assert.equal(resolveBackupRef(s.catalog, 'pg', 'latest').backupId, '20261129T101500');
  } finally {
    await s.cleanup();
  }
});
