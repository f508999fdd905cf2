// Unit tests of the SQLite catalog (packages/barmants/src/catalog): schema, every method,
// conflict handling, gap detection, LSN range, file mode, WAL-mode concurrency, and a
// 1,000,000-segment scale run whose timings are printed (never asserted).

import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import {
  Catalog,
  CatalogError,
  HistoryFileConflictError,
  LATEST_SCHEMA_VERSION,
  WalSegmentConflictError,
  type BackupRecord,
  type WalSegmentRecord,
} from '../../../packages/barmants/src/catalog/index.js';

const SEGS_PER_LOG = 0x100n; // 16 MiB segments: 256 per xlogid

function segName(tli: number, segno: bigint): string {
  const hex = (n: bigint | number): string => n.toString(16).toUpperCase().padStart(8, '0');
  return hex(tli) + hex(segno / SEGS_PER_LOG) + hex(segno % SEGS_PER_LOG);
}

function seg(server: string, tli: number, segno: bigint, checksum = `sum-${tli}-${segno}`): WalSegmentRecord {
  return {
    server,
    timeline: tli,
    segno,
    name: segName(tli, segno),
    size: 16 * 1024 * 1024,
    storedSize: 1000,
    compression: 'gzip',
    checksum,
    archivedAt: '2026-11-24T20:04:31.291+00:00',
  };
}

let dir: string;
before(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'barmants-catalog-'));
});
after(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

let counter = 0;
function fresh(): { cat: Catalog; file: string } {
  const file = path.join(dir, `catalog-${++counter}.db`);
  const cat = Catalog.open(file);
  cat.upsertServer({ name: 'pg', systemId: '7711831194433097840', pgVersion: 150018, walSegmentSize: 16777216 });
  return { cat, file };
}

function isKind(kind: string) {
  return (err: unknown): boolean => err instanceof CatalogError && err.kind === kind;
}

describe('open and migrations', () => {
  test('creates the schema once; reopening is a no-op', () => {
    const file = path.join(dir, 'migrate.db');
    const a = Catalog.open(file);
    assert.equal(a.schemaVersion(), LATEST_SCHEMA_VERSION);
    a.upsertServer({ name: 'pg', systemId: null, pgVersion: null, walSegmentSize: null });
    a.close();
    const b = Catalog.open(file);
    assert.equal(b.schemaVersion(), LATEST_SCHEMA_VERSION);
    assert.equal(b.getServer('pg')?.name, 'pg');
    b.close();
    const raw = new Database(file, { readonly: true });
    const rows = raw.prepare('SELECT version FROM schema_migrations').all();
    assert.equal(rows.length, LATEST_SCHEMA_VERSION);
    assert.equal(raw.pragma('journal_mode', { simple: true }), 'wal');
    raw.close();
  });

  test('a catalog newer than the code is refused', () => {
    const file = path.join(dir, 'newer.db');
    Catalog.open(file).close();
    const raw = new Database(file);
    raw.prepare('INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)').run(LATEST_SCHEMA_VERSION + 1, 'x');
    raw.close();
    assert.throws(() => Catalog.open(file), isKind('catalog-too-new'));
    assert.throws(() => Catalog.open(file, { readonly: true }), isKind('catalog-too-new'));
  });

  test('read-only open reads, cannot write, and does not migrate', () => {
    const file = path.join(dir, 'ro.db');
    const rw = Catalog.open(file);
    rw.upsertServer({ name: 'pg', systemId: '1', pgVersion: 150000, walSegmentSize: 16777216 });
    const ro = Catalog.open(file, { readonly: true });
    assert.equal(ro.getServer('pg')?.systemId, '1');
    assert.throws(() => ro.upsertServer({ name: 'x', systemId: null, pgVersion: null, walSegmentSize: null }));
    ro.close();
    rw.close();
    const empty = path.join(dir, 'ro-empty.db');
    fs.writeFileSync(empty, '');
    assert.throws(() => Catalog.open(empty, { readonly: true }), isKind('catalog-outdated'));
    assert.throws(() => Catalog.open(path.join(dir, 'absent.db'), { readonly: true }), isKind('catalog-open'));
  });

  test('file mode is 0600, the WAL file too', () => {
    const old = process.umask(0o022);
    try {
      const { cat, file } = fresh();
      cat.addWalSegment(seg('pg', 1, 1n));
      assert.equal(fs.statSync(file).mode & 0o777, 0o600);
      assert.equal(fs.statSync(`${file}-wal`).mode & 0o777, 0o600);
      cat.close();
    } finally {
      process.umask(old);
    }
  });

  test('two instances on one file see each other (WAL mode)', () => {
    const { cat: a, file } = fresh();
    const b = Catalog.open(file);
    a.insertBackup({ server: 'pg', backupId: '20260101T000000', status: 'STARTED' });
    assert.equal(b.getBackup('pg', '20260101T000000')?.status, 'STARTED');
    // A reader keeps its snapshot while the other instance writes.
    b.transaction(() => {
      const before = b.countWalSegments('pg');
      a.addWalSegment(seg('pg', 1, 7n));
      assert.equal(b.countWalSegments('pg'), before);
    });
    assert.equal(b.countWalSegments('pg'), 1);
    b.updateBackup('pg', '20260101T000000', { status: 'DONE' });
    assert.equal(a.getBackup('pg', '20260101T000000')?.status, 'DONE');
    a.close();
    b.close();
  });
});

describe('servers', () => {
  test('upsert, get, list, forget, clear', () => {
    const { cat } = fresh();
    const s = cat.getServer('pg')!;
    assert.equal(s.pgVersion, 150018);
    assert.equal(s.walSegmentSize, 16777216);
    cat.upsertServer({ name: 'pg', systemId: '7711831194433097840', pgVersion: 160000, walSegmentSize: 16777216 });
    assert.equal(cat.getServer('pg')!.pgVersion, 160000);
    assert.equal(cat.getServer('pg')!.createdAt, s.createdAt);
    assert.equal(cat.getServer('nope'), null);
    cat.upsertServer({ name: 'other', systemId: null, pgVersion: null, walSegmentSize: null });
    assert.deepEqual(
      cat.listServers().map((x) => x.name),
      ['other', 'pg'],
    );

    cat.insertBackup({ server: 'pg', backupId: '20260101T000000', status: 'DONE' });
    cat.addWalSegment(seg('pg', 1, 1n));
    cat.addHistoryFile({ server: 'pg', tli: 2, name: '00000002.history', parentTli: 1, switchLsn: 0x3000000n, checksum: 'h', archivedAt: 'now' });
    cat.setHeartbeat({ server: 'pg', pid: 1, state: 'streaming', receivedLsn: 1n, flushedLsn: 1n, timeline: 1, message: null, updatedAt: 'now' });
    cat.clearServer('pg');
    assert.notEqual(cat.getServer('pg'), null);
    assert.equal(cat.listBackups('pg').length, 0);
    assert.equal(cat.countWalSegments('pg'), 0);
    assert.equal(cat.listHistoryFiles('pg').length, 0);
    assert.equal(cat.getHeartbeat('pg'), null);

    cat.insertBackup({ server: 'pg', backupId: '20260101T000000', status: 'DONE' });
    cat.addWalSegment(seg('pg', 1, 1n));
    assert.equal(cat.forgetServer('pg'), true);
    assert.equal(cat.getServer('pg'), null);
    assert.equal(cat.getBackup('pg', '20260101T000000'), null);
    assert.equal(cat.countWalSegments('pg'), 0);
    assert.equal(cat.forgetServer('pg'), false);
    cat.close();
  });

  test('rows for an unregistered server are refused', () => {
    const { cat } = fresh();
    assert.throws(() => cat.insertBackup({ server: 'ghost', backupId: 'x', status: 'STARTED' }), isKind('unknown-server'));
    assert.throws(() => cat.addWalSegment(seg('ghost', 1, 1n)), isKind('unknown-server'));
    cat.close();
  });
});

describe('backups', () => {
  const full: BackupRecord = {
    server: 'pg',
    backupId: '20261124T200427',
    name: 'nightly-a',
    status: 'DONE',
    beginTime: '2026-11-24T20:04:27.154578+00:00',
    endTime: '2026-11-24T20:04:31.291056+00:00',
    beginLsn: 0x5000028n,
    endLsn: 0x6000000n,
    beginWal: '000000010000000000000005',
    endWal: '000000010000000000000005',
    timeline: 1,
    pgVersion: 150018,
    systemId: '7711831194433097840',
    walSegmentSize: 16777216,
    size: 23228185,
    deduplicatedSize: 23228185,
    clusterSize: 23236297,
    compression: null,
    keep: 'standalone',
    error: null,
    serverTimezone: 'UTC',
    tablespaces: [{ name: 'ts1', oid: 16384, location: '/path/ts1' }],
    pid: null,
    info: { data_checksums: 'off', copy_stats: { copy_time: 4.128158 } },
  };

  test('insert / get round-trip of every field, defaults for the rest', () => {
    const { cat } = fresh();
    assert.deepEqual(cat.insertBackup(full), full);
    assert.deepEqual(cat.getBackup('pg', full.backupId), full);
    const minimal = cat.insertBackup({ server: 'pg', backupId: '20261125T000000', status: 'STARTED', pid: 4242 });
    assert.equal(minimal.name, null);
    assert.equal(minimal.size, 0);
    assert.equal(minimal.pid, 4242);
    assert.deepEqual(minimal.tablespaces, []);
    assert.deepEqual(minimal.info, {});
    assert.equal(cat.getBackup('pg', 'nope'), null);
    cat.close();
  });

  test('duplicates, names, bad values', () => {
    const { cat } = fresh();
    cat.insertBackup(full);
    assert.throws(() => cat.insertBackup(full), isKind('backup-exists'));
    assert.throws(
      () => cat.insertBackup({ server: 'pg', backupId: '20261125T000000', status: 'DONE', name: 'nightly-a' }),
      isKind('backup-name-taken'),
    );
    // Null names do not collide.
    cat.insertBackup({ server: 'pg', backupId: '20261126T000000', status: 'DONE' });
    cat.insertBackup({ server: 'pg', backupId: '20261127T000000', status: 'DONE' });
    assert.throws(
      () => cat.insertBackup({ server: 'pg', backupId: 'x', status: 'BOGUS' as 'DONE' }),
      isKind('invalid-value'),
    );
    assert.throws(
      () => cat.updateBackup('pg', '20261126T000000', { name: 'nightly-a' }),
      isKind('backup-name-taken'),
    );
    cat.close();
  });

  test('update, list with status filter, delete', () => {
    const { cat } = fresh();
    cat.insertBackup({ server: 'pg', backupId: '20260103T000000', status: 'STARTED', pid: 99 });
    cat.insertBackup({ server: 'pg', backupId: '20260101T000000', status: 'DONE' });
    cat.insertBackup({ server: 'pg', backupId: '20260102T000000', status: 'FAILED', error: 'boom' });
    const up = cat.updateBackup('pg', '20260103T000000', {
      status: 'DONE',
      pid: null,
      endLsn: 0xffffffffffffffn,
      keep: 'full',
      info: { a: 1 },
      tablespaces: [{ name: 't', oid: 1, location: '/t' }],
    });
    assert.equal(up.status, 'DONE');
    assert.equal(up.pid, null);
    assert.equal(up.endLsn, 0xffffffffffffffn);
    assert.equal(up.keep, 'full');
    assert.deepEqual(up.info, { a: 1 });
    assert.equal(cat.updateBackup('pg', '20260103T000000', {}).status, 'DONE');
    assert.throws(() => cat.updateBackup('pg', 'nope', { status: 'DONE' }), isKind('backup-not-found'));
    assert.throws(() => cat.updateBackup('pg', '20260103T000000', { backupId: 'other' }), isKind('invalid-value'));
    assert.throws(
      () => cat.updateBackup('pg', '20260103T000000', { bogus: 1 } as unknown as Partial<BackupRecord>),
      isKind('invalid-value'),
    );

    assert.deepEqual(
      cat.listBackups('pg').map((b) => b.backupId),
      ['20260101T000000', '20260102T000000', '20260103T000000'],
    );
    assert.deepEqual(
      cat.listBackups('pg', { status: ['DONE'] }).map((b) => b.backupId),
      ['20260101T000000', '20260103T000000'],
    );
    assert.deepEqual(
      cat.listBackups('pg', { status: ['FAILED', 'STARTED'] }).map((b) => b.backupId),
      ['20260102T000000'],
    );
    assert.deepEqual(cat.listBackups('pg', { status: [] }), []);
    assert.equal(cat.deleteBackup('pg', '20260102T000000'), true);
    assert.equal(cat.deleteBackup('pg', '20260102T000000'), false);
    assert.equal(cat.listBackups('pg').length, 2);
    cat.close();
  });

  test('resolveBackupId: id, name, latest/last, oldest/first, last-failed', () => {
    const { cat } = fresh();
    assert.equal(cat.resolveBackupId('pg', 'latest'), null);
    cat.insertBackup({ server: 'pg', backupId: '20260101T000000', status: 'FAILED' });
    cat.insertBackup({ server: 'pg', backupId: '20260102T000000', status: 'DONE', name: 'first-good' });
    cat.insertBackup({ server: 'pg', backupId: '20260103T000000', status: 'FAILED' });
    cat.insertBackup({ server: 'pg', backupId: '20260104T000000', status: 'DONE', name: 'monday' });
    cat.insertBackup({ server: 'pg', backupId: '20260105T000000', status: 'STARTED' });
    const id = (ref: string): string | undefined => cat.resolveBackupId('pg', ref)?.backupId;
    assert.equal(id('latest'), '20260104T000000');
    assert.equal(id('last'), '20260104T000000');
    assert.equal(id('oldest'), '20260102T000000');
    assert.equal(id('first'), '20260102T000000');
    assert.equal(id('last-failed'), '20260103T000000');
    assert.equal(id('20260105T000000'), '20260105T000000');
    assert.equal(id('monday'), '20260104T000000');
    assert.equal(id('first-good'), '20260102T000000');
    assert.equal(id('nope'), undefined);
    assert.equal(cat.resolveBackupId('other', 'latest'), null);
    cat.close();
  });
});

describe('WAL segments', () => {
  test('add, duplicate with same checksum, conflict with a different one', () => {
    const { cat } = fresh();
    const s = seg('pg', 1, 5n);
    assert.equal(cat.addWalSegment(s), 'added');
    assert.equal(cat.addWalSegment({ ...s, compression: null, storedSize: 1 }), 'exists');
    assert.throws(
      () => cat.addWalSegment({ ...s, checksum: 'other' }),
      (err: unknown) =>
        err instanceof WalSegmentConflictError &&
        err.kind === 'wal-segment-conflict' &&
        err.existing.checksum === s.checksum &&
        err.incoming.checksum === 'other',
    );
    // Same name recorded at another position is a conflict too.
    assert.throws(() => cat.addWalSegment({ ...s, segno: 6n }), WalSegmentConflictError);
    assert.deepEqual(cat.getWalSegment('pg', s.name), s);
    assert.equal(cat.getWalSegment('pg', 'nope'), null);
    cat.close();
  });

  test('addWalSegments is one transaction; a conflict rolls the batch back', () => {
    const { cat } = fresh();
    assert.equal(cat.addWalSegments([seg('pg', 1, 1n), seg('pg', 1, 2n), seg('pg', 1, 1n)]), 2);
    assert.throws(() => cat.addWalSegments([seg('pg', 1, 3n), seg('pg', 1, 2n, 'different')]), WalSegmentConflictError);
    assert.equal(cat.countWalSegments('pg'), 2);
    assert.equal(cat.getWalSegment('pg', segName(1, 3n)), null);
    cat.close();
  });

  test('first, last, list, count, size, delete, timelines', () => {
    const { cat } = fresh();
    assert.equal(cat.lastWalSegment('pg'), null);
    assert.equal(cat.firstWalSegment('pg'), null);
    assert.equal(cat.walSize('pg'), 0);
    cat.addWalSegments([
      seg('pg', 1, 3n),
      seg('pg', 1, 4n),
      seg('pg', 1, 300n),
      seg('pg', 2, 300n),
      seg('pg', 2, 301n),
      seg('pg', 3, 2n),
    ]);
    assert.equal(cat.lastWalSegment('pg')!.name, segName(3, 2n));
    assert.equal(cat.firstWalSegment('pg')!.name, segName(1, 3n));
    assert.equal(typeof cat.lastWalSegment('pg')!.segno, 'bigint');
    assert.equal(cat.countWalSegments('pg'), 6);
    assert.equal(cat.walSize('pg'), 6000);
    const names = (recs: WalSegmentRecord[]): string[] => recs.map((r) => r.name);
    assert.deepEqual(names(cat.listWalSegments('pg', { timeline: 1 })), [segName(1, 3n), segName(1, 4n), segName(1, 300n)]);
    assert.deepEqual(names(cat.listWalSegments('pg', { fromSegno: 300n })), [segName(1, 300n), segName(2, 300n), segName(2, 301n)]);
    assert.deepEqual(names(cat.listWalSegments('pg', { timeline: 2, toSegno: 300n })), [segName(2, 300n)]);
    assert.deepEqual(names(cat.listWalSegments('pg', { limit: 2 })), [segName(1, 3n), segName(1, 4n)]);
    assert.equal(cat.listWalSegments('pg').length, 6);

    cat.addHistoryFile({ server: 'pg', tli: 5, name: '00000005.history', parentTli: 3, switchLsn: 1n, checksum: 'h', archivedAt: 'now' });
    assert.deepEqual(cat.listTimelines('pg'), [1, 2, 3, 5]);
    assert.deepEqual(cat.listTimelines('other'), []);

    assert.equal(cat.deleteWalSegments('pg', [segName(1, 3n), segName(1, 4n), 'nope']), 2);
    assert.equal(cat.countWalSegments('pg'), 4);
    assert.equal(cat.firstWalSegment('pg')!.name, segName(1, 300n));
    cat.close();
  });

  test('walRanges and missingSegments: none, start, middle, end, several', () => {
    const { cat } = fresh();
    const add = (tli: number, from: bigint, to: bigint): void => {
      const recs: WalSegmentRecord[] = [];
      for (let s = from; s <= to; s++) recs.push(seg('pg', tli, s));
      cat.addWalSegments(recs);
    };
    add(1, 10n, 20n);
    add(1, 25n, 30n);
    add(1, 32n, 32n);
    add(2, 10n, 20n);
    assert.deepEqual(cat.walRanges('pg', 1).ranges, [
      { from: 10n, to: 20n },
      { from: 25n, to: 30n },
      { from: 32n, to: 32n },
    ]);
    assert.deepEqual(cat.walRanges('pg', 1, 15n, 27n).ranges, [
      { from: 15n, to: 20n },
      { from: 25n, to: 27n },
    ]);
    assert.deepEqual(cat.walRanges('pg', 2).ranges, [{ from: 10n, to: 20n }]);
    assert.deepEqual(cat.walRanges('pg', 2, 12n, 14n).ranges, [{ from: 12n, to: 14n }]);
    assert.deepEqual(cat.walRanges('pg', 9).ranges, []);
    assert.deepEqual(cat.walRanges('pg', 1, 21n, 24n).ranges, []);
    assert.deepEqual(cat.walRanges('pg', 1, 30n, 10n).ranges, []);

    // none
    assert.deepEqual(cat.missingSegments('pg', 1, 10n, 20n), []);
    assert.deepEqual(cat.missingSegments('pg', 2, 12n, 18n), []);
    // at the start
    assert.deepEqual(cat.missingSegments('pg', 1, 7n, 20n), [{ from: 7n, to: 9n }]);
    // in the middle
    assert.deepEqual(cat.missingSegments('pg', 1, 18n, 27n), [{ from: 21n, to: 24n }]);
    // at the end
    assert.deepEqual(cat.missingSegments('pg', 2, 15n, 22n), [{ from: 21n, to: 22n }]);
    // several, and all of them
    assert.deepEqual(cat.missingSegments('pg', 1, 8n, 34n), [
      { from: 8n, to: 9n },
      { from: 21n, to: 24n },
      { from: 31n, to: 31n },
      { from: 33n, to: 34n },
    ]);
    assert.deepEqual(cat.missingSegments('pg', 3, 1n, 4n), [{ from: 1n, to: 4n }]);
    cat.close();
  });
  test('gap search over big and sparse ranges agrees with a plain walk', () => {
    const { cat } = fresh();
    // Deterministic pseudo-random holes, some on part boundaries, in 200,000 positions.
    const N = 200_000n;
    const holes = new Set<bigint>([0n, 1n, 12_500n, 12_501n, 99_999n, 100_000n, 150_000n, N - 1n]);
    let x = 12345;
    for (let i = 0; i < 40; i++) {
      x = (x * 1103515245 + 12345) % 2147483648;
      holes.add(BigInt(x % Number(N)));
    }
    function* recs(): Generator<WalSegmentRecord> {
      for (let s = 0n; s < N; s++) if (!holes.has(s)) yield seg('pg', 1, s);
      yield seg('pg', 1, 1_000_000_000_000n); // far away: a sparse tail
    }
    cat.addWalSegments(recs());
    const expected: { from: bigint; to: bigint }[] = [];
    for (let s = 0n; s < N; s++) {
      if (holes.has(s)) continue;
      const last = expected[expected.length - 1];
      if (last !== undefined && last.to + 1n === s) last.to = s;
      else expected.push({ from: s, to: s });
    }
    expected.push({ from: 1_000_000_000_000n, to: 1_000_000_000_000n });
    assert.deepEqual(cat.walRanges('pg', 1).ranges, expected);
    const gaps = cat.missingSegments('pg', 1, 0n, N - 1n);
    const expectedGaps: { from: bigint; to: bigint }[] = [];
    for (const h of [...holes].sort((a, b) => (a < b ? -1 : 1))) {
      const last = expectedGaps[expectedGaps.length - 1];
      if (last !== undefined && last.to + 1n === h) last.to = h;
      else expectedGaps.push({ from: h, to: h });
    }
    assert.deepEqual(gaps, expectedGaps);
    assert.deepEqual(cat.missingSegments('pg', 1, N - 1n, 1_000_000_000_000n), [{ from: N - 1n, to: 999_999_999_999n }]);
    cat.close();
  });
});

describe('history files and heartbeat', () => {
  test('history: add, same twice, conflict, get, list', () => {
    const { cat } = fresh();
    const h = { server: 'pg', tli: 2, name: '00000002.history', parentTli: 1, switchLsn: 0x1_0300_0000n, checksum: 'abc', archivedAt: 'now' };
    assert.equal(cat.addHistoryFile(h), 'added');
    assert.equal(cat.addHistoryFile(h), 'exists');
    assert.throws(() => cat.addHistoryFile({ ...h, checksum: 'def' }), HistoryFileConflictError);
    cat.addHistoryFile({ ...h, tli: 3, name: '00000003.history', parentTli: 2 });
    assert.deepEqual(cat.getHistoryFile('pg', 2), h);
    assert.equal(cat.getHistoryFile('pg', 9), null);
    assert.deepEqual(
      cat.listHistoryFiles('pg').map((x) => x.tli),
      [2, 3],
    );
    cat.close();
  });

  test('heartbeat: set, replace, get', () => {
    const { cat } = fresh();
    assert.equal(cat.getHeartbeat('pg'), null);
    const hb = { server: 'pg', pid: 123, state: 'streaming', receivedLsn: 0x5000028n, flushedLsn: null, timeline: 1, message: null, updatedAt: '2026-01-01T00:00:00Z' };
    cat.setHeartbeat(hb);
    assert.deepEqual(cat.getHeartbeat('pg'), hb);
    const hb2 = { ...hb, state: 'stopped', flushedLsn: 0x6000000n, message: 'bye' };
    cat.setHeartbeat(hb2);
    assert.deepEqual(cat.getHeartbeat('pg'), hb2);
    cat.close();
  });
});

describe('LSN range', () => {
  test('bigint LSNs round-trip; 2^63 and negatives are refused', () => {
    const { cat } = fresh();
    const big = 0xffffffff_ffffffn;
    const max = (1n << 63n) - 1n;
    cat.insertBackup({ server: 'pg', backupId: 'a', status: 'DONE', beginLsn: big, endLsn: max });
    const b = cat.getBackup('pg', 'a')!;
    assert.equal(b.beginLsn, big);
    assert.equal(b.endLsn, max);
    assert.equal(typeof b.beginLsn, 'bigint');
    assert.throws(
      () => cat.insertBackup({ server: 'pg', backupId: 'b', status: 'DONE', endLsn: 1n << 63n }),
      isKind('invalid-value'),
    );
    assert.throws(() => cat.updateBackup('pg', 'a', { beginLsn: 0xffffffff_ffffffffn }), isKind('invalid-value'));
    assert.throws(() => cat.updateBackup('pg', 'a', { beginLsn: -1n }), isKind('invalid-value'));
    assert.throws(
      () => cat.setHeartbeat({ server: 'pg', pid: 1, state: 's', receivedLsn: 1n << 63n, flushedLsn: null, timeline: null, message: null, updatedAt: 'x' }),
      isKind('invalid-value'),
    );
    assert.throws(() => cat.addWalSegment(seg('pg', 1, 1n << 63n)), isKind('invalid-value'));
    cat.close();
  });
});

describe('scale', () => {
  test('1,000,000 segments and 1,000 backups', () => {
    const { cat } = fresh();
    const N = 1_000_000n;
    const GAP_FROM = 500_000n;
    const GAP_TO = 500_009n;
    const ms = (t0: bigint): string => `${(Number(process.hrtime.bigint() - t0) / 1e6).toFixed(1)} ms`;
    const timings: string[] = [];
    const checksum = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';

    function* segments(): Generator<WalSegmentRecord> {
      for (let s = 0n; s < N; s++) {
        if (s >= GAP_FROM && s <= GAP_TO) continue;
        yield { ...seg('pg', 1, s, checksum) };
      }
    }
    let t0 = process.hrtime.bigint();
    const added = cat.addWalSegments(segments());
    timings.push(`insert ${added} segments (one transaction): ${ms(t0)}`);
    assert.equal(added, Number(N - (GAP_TO - GAP_FROM + 1n)));
    // Fill the gap on a second timeline copy to have a gap-free range too.
    t0 = process.hrtime.bigint();
    assert.deepEqual(cat.missingSegments('pg', 1, 0n, N - 1n), [{ from: GAP_FROM, to: GAP_TO }]);
    timings.push(`missingSegments over 1,000,000 positions (one gap): ${ms(t0)}`);

    t0 = process.hrtime.bigint();
    assert.deepEqual(cat.missingSegments('pg', 1, 0n, GAP_FROM - 1n), []);
    timings.push(`missingSegments over 500,000 positions (complete, count fast-path): ${ms(t0)}`);

    t0 = process.hrtime.bigint();
    assert.deepEqual(cat.walRanges('pg', 1).ranges, [
      { from: 0n, to: GAP_FROM - 1n },
      { from: GAP_TO + 1n, to: N - 1n },
    ]);
    timings.push(`walRanges whole timeline (gap in the middle): ${ms(t0)}`);

    t0 = process.hrtime.bigint();
    assert.equal(cat.lastWalSegment('pg')!.segno, N - 1n);
    timings.push(`lastWalSegment: ${ms(t0)}`);

    t0 = process.hrtime.bigint();
    assert.equal(cat.countWalSegments('pg'), Number(N) - 10);
    timings.push(`countWalSegments: ${ms(t0)}`);

    t0 = process.hrtime.bigint();
    assert.equal(cat.getWalSegment('pg', segName(1, 765_432n))!.segno, 765_432n);
    timings.push(`getWalSegment by name: ${ms(t0)}`);

    t0 = process.hrtime.bigint();
    assert.deepEqual(cat.listTimelines('pg'), [1]);
    timings.push(`listTimelines: ${ms(t0)}`);

    cat.transaction(() => {
      for (let i = 0; i < 1000; i++) {
        const d = new Date(Date.UTC(2020, 0, 1) + i * 86_400_000);
        const id = d.toISOString().replace(/[-:]/g, '').slice(0, 15);
        cat.insertBackup({ server: 'pg', backupId: id, status: i % 10 === 9 ? 'FAILED' : 'DONE', beginLsn: BigInt(i) << 24n, tablespaces: [], info: { i } });
      }
    });
    t0 = process.hrtime.bigint();
    const backups = cat.listBackups('pg');
    timings.push(`listBackups with 1,000 backups: ${ms(t0)}`);
    assert.equal(backups.length, 1000);
    assert.ok(backups.every((b, i) => i === 0 || backups[i - 1]!.backupId < b.backupId));

    t0 = process.hrtime.bigint();
    assert.equal(cat.resolveBackupId('pg', 'latest')!.backupId, backups[998]!.backupId);
    timings.push(`resolveBackupId latest: ${ms(t0)}`);

    console.log(`catalog scale timings:\n  ${timings.join('\n  ')}`);
    cat.close();
  });
});
