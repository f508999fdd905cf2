// The backup commands on one real cluster, through the CLI: reuse_backup = link (deduplicated
// size, shared inodes), list-backups / show-backup (console and JSON), keep, delete with
// minimum_redundancy, rebuild-catalog after losing catalog.db, verify-backup on damaged files,
// and a typo'd configuration value reported with file:line.
import { describe, test, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, rm, stat, truncate, writeFile, open } from 'node:fs/promises';
import { join } from 'node:path';
import { useCluster, versionsUnderTest, generateLoad } from '../../harness/index.js';
import { barmants, writeTestConfig, type TestConfig } from '../../helpers/config.js';
import { walFileName } from '../../../packages/pg-replication/src/walfile.js';
import { Catalog } from '../../../packages/barmants/src/catalog/index.js';
import { catalogPath } from '../../../packages/barmants/src/repository/index.js';

const version = versionsUnderTest()[0]!;

describe(`backup commands on PostgreSQL ${version}`, () => {
  const cluster = useCluster({ version, name: `backupcmd${version}` });
  let cfg: TestConfig;
  let b1: any;
  let b2: any;
  after(async () => {
    await cfg?.cleanup();
  });
  const base = () => join(cfg.home, 'pg', 'base');

  test('reuse_backup = link: an unchanged second backup takes a small fraction of the space', async () => {
    const loc = await cluster().makeTablespaceDir('ts1');
    await cluster().sql(`CREATE TABLESPACE ts1 LOCATION '${loc}'`);
    await generateLoad(cluster(), { rows: 40_000 });
    await cluster().sql(`CREATE TABLE in_ts TABLESPACE ts1 AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 20000) g`);
    await cluster().sql('CHECKPOINT');
    cfg = await writeTestConfig(cluster(), { options: { reuse_backup: 'link', minimum_redundancy: 1, backup_compression: 'lz4' } });
    let r = await barmants(cfg, ['-f', 'json', 'backup', 'pg', '--wal', '--name', 'nightly']);
    assert.equal(r.code, 0, r.stderr);
    b1 = JSON.parse(r.stdout).pg;
    r = await barmants(cfg, ['-f', 'json', 'backup', 'pg', '--wal']);
    assert.equal(r.code, 0, r.stderr);
    b2 = JSON.parse(r.stdout).pg;
    assert.equal(b1.status, 'DONE');
    assert.equal(b2.status, 'DONE');
    const ratio = b2.deduplicated_size / b1.deduplicated_size;
    console.log(`# dedup: first ${b1.deduplicated_size} B on disk, second ${b2.deduplicated_size} B new of ${b2.size} B (${(100 * ratio).toFixed(1)}%)`);
    assert.ok(ratio < 0.25, `second backup stored ${b2.deduplicated_size} new bytes vs ${b1.deduplicated_size}`);
    // The big table's files are the same inode in both backups.
    const [rel] = await cluster().sql<{ p: string }>(`SELECT pg_relation_filepath('barmants_load') AS p`);
    const s1 = await stat(join(base(), b1.backup_id, 'data', rel!.p + '.lz4'));
    const s2 = await stat(join(base(), b2.backup_id, 'data', rel!.p + '.lz4'));
    assert.equal(s1.ino, s2.ino);
    assert.ok(s1.nlink >= 2);
  });

  test('list-backups and show-backup, console and JSON', async () => {
    let r = await barmants(cfg, ['list-backups', 'pg']);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trim().split('\n');
    assert.equal(lines.length, 2);
    const re = /^pg (\d{8}T\d{6})( '[^']+')? - F - \w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4} - Size: [\d.]+ (B|KiB|MiB) - WAL Size: [\d.]+ (B|KiB|MiB) \(tablespaces: ts1:\/\S+\)$/;
    assert.match(lines[0]!, re);
    assert.ok(lines[0]!.startsWith(`pg ${b2.backup_id} - F`), 'newest first');
    assert.ok(lines[1]!.startsWith(`pg ${b1.backup_id} 'nightly' - F`));
    r = await barmants(cfg, ['-f', 'json', 'list-backups', 'all']);
    const j = JSON.parse(r.stdout);
    assert.deepEqual(j.pg.map((b: any) => b.backup_id), [b2.backup_id, b1.backup_id]);
    for (const k of ['backup_id', 'backup_type', 'end_time', 'end_time_timestamp', 'retention_status', 'size', 'size_bytes', 'status', 'wal_size', 'wal_size_bytes']) {
      assert.ok(k in j.pg[0], `list-backups JSON has ${k}`);
    }
    assert.ok(j.pg[0].size_bytes >= b2.size);

    r = await barmants(cfg, ['show-backup', 'pg', 'nightly']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`^Backup ${b1.backup_id}:\n  Backup Name            : nightly\n  Server Name            : pg\n`));
    for (const l of ['  Status                 : DONE', '    Backup Method        : postgres', '    Begin WAL            : ', '    ts1                  : /', '  Catalog information:',
      `    Next Backup          : ${b2.backup_id}`, '    Previous Backup      : - (this is the oldest base backup)', '  WAL information:', '    Begin LSN            : ']) {
      assert.ok(r.stdout.includes(l), `show-backup shows ${JSON.stringify(l)}\n${r.stdout}`);
    }
    r = await barmants(cfg, ['-f', 'json', 'show-backup', 'pg', 'latest']);
    const s = JSON.parse(r.stdout);
    assert.equal(s.backup_id, b2.backup_id);
    assert.equal(s.previous_backup_id, b1.backup_id);
    assert.equal(s.next_backup_id, null);
    assert.ok(s.wal_num_required >= 1);

    r = await barmants(cfg, ['list-files', 'pg', 'latest', '--target', 'standalone']);
    assert.equal(r.code, 0, r.stderr);
    const files = r.stdout.trim().split('\n');
    assert.ok(files.some((f) => f.endsWith('/backup_label.lz4')));
    assert.ok(files.some((f) => /\/wals\/[0-9A-F]{16}\/[0-9A-F]{24}$/.test(f)), 'standalone lists the WAL');
    r = await barmants(cfg, ['show-backup', 'pg', 'nope']);
    assert.equal(r.code, 5);
  });

  test('keep: --target, --status, delete refused, --release', async () => {
    let r = await barmants(cfg, ['keep', 'pg', 'nightly', '--target', 'full']);
    assert.equal(r.code, 0, r.stderr);
    r = await barmants(cfg, ['keep', 'pg', b1.backup_id, '--status']);
    assert.equal(r.stdout.trim(), 'Keep: full');
    assert.match((await barmants(cfg, ['list-backups', 'pg'])).stdout, /'nightly' - F - .* - KEEP:FULL$/m);
    assert.equal(JSON.parse(await readFile(join(base(), b1.backup_id, 'backup.info'), 'utf8')).keep, 'full');
    r = await barmants(cfg, ['delete', 'pg', 'nightly']);
    assert.equal(r.code, 8, r.stderr);
    assert.match(r.stderr, /keep annotation/);
    r = await barmants(cfg, ['-f', 'json', 'keep', 'pg', 'oldest', '--release']);
    assert.equal(JSON.parse(r.stdout).keep, 'nokeep');
    r = await barmants(cfg, ['keep', 'pg', 'nightly']);
    assert.equal(r.code, 2);
  });

  test('rebuild-catalog after deleting catalog.db lists the same backups', async () => {
    const before = await barmants(cfg, ['-f', 'json', 'list-backups', 'pg']);
    const show = JSON.parse((await barmants(cfg, ['-f', 'json', 'show-backup', 'pg', 'latest'])).stdout);
    for (const f of ['catalog.db', 'catalog.db-wal', 'catalog.db-shm']) await rm(join(cfg.home, f), { force: true });
    const r = await barmants(cfg, ['-f', 'json', 'rebuild-catalog', 'all']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(JSON.parse(r.stdout).pg.backups, 2);
    assert.ok(JSON.parse(r.stdout).pg.wal_segments >= 2);
    const afterList = await barmants(cfg, ['-f', 'json', 'list-backups', 'pg']);
    assert.deepEqual(JSON.parse(afterList.stdout), JSON.parse(before.stdout));
    const show2 = JSON.parse((await barmants(cfg, ['-f', 'json', 'show-backup', 'pg', 'latest'])).stdout);
    assert.equal(show2.status, 'DONE');
    assert.equal(show2.begin_lsn, show.begin_lsn);
    assert.equal(show2.wal_num_required, show.wal_num_required);
  });

  test('delete honours minimum_redundancy and keeps the hard-linked files of the survivor', async () => {
    let r = await barmants(cfg, ['delete', 'pg', 'nightly']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^Deleting backup \d{8}T\d{6} for server pg/);
    await assert.rejects(stat(join(base(), b1.backup_id)));
    r = await barmants(cfg, ['delete', 'pg', 'latest']);
    assert.equal(r.code, 8);
    assert.match(r.stderr, /minimum redundancy requirements \(minimum redundancy = 1, current redundancy = 1\)/);
    // The second backup's hard-linked files survived the first one's removal.
    r = await barmants(cfg, ['verify-backup', 'pg', 'latest']);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const list = JSON.parse((await barmants(cfg, ['-f', 'json', 'list-backups', 'pg'])).stdout);
    assert.deepEqual(list.pg.map((b: any) => b.backup_id), [b2.backup_id]);
  });

  test('verify-backup names every flipped, truncated and missing file', async () => {
    const dir = join(base(), b2.backup_id);
    const lines = (await readFile(join(dir, 'files.jsonl'), 'utf8')).split('\n').filter(Boolean).map((l) => JSON.parse(l));
    const big = lines.filter((e) => e.type === 'file' && e.ts === null && e.size >= 8192 && e.path.startsWith('base/'));
    const [flip, trunc, gone] = [big[0].path, big[1].path, big[2].path].map((p: string) => `data/${p}.lz4`);
    // Files are hard-linked with the deleted backup's: break the link before damaging a copy.
    for (const f of [flip!, trunc!]) {
      const buf = await readFile(join(dir, f));
      await rm(join(dir, f));
      await writeFile(join(dir, f), buf);
    }
    const fh = await open(join(dir, flip!), 'r+');
    const st = await fh.stat();
    const pos = Math.floor(st.size / 2);
    const one = Buffer.alloc(1);
    await fh.read(one, 0, 1, pos);
    one[0] = one[0]! ^ 0xff;
    await fh.write(one, 0, 1, pos);
    await fh.close();
    await truncate(join(dir, trunc!), Math.floor((await stat(join(dir, trunc!))).size / 2));
    await rm(join(dir, gone!));
    const manifest = await readFile(join(dir, 'backup_manifest'), 'utf8');
    await writeFile(join(dir, 'backup_manifest'), manifest.replace('"Files"', '"FILES"'));
    const r = await barmants(cfg, ['verify-backup', 'pg', 'latest']);
    assert.equal(r.code, 7, r.stdout + r.stderr);
    for (const f of [flip!, trunc!, gone!, 'backup_manifest']) assert.ok(r.stdout.includes(f), `verify names ${f}:\n${r.stdout}`);
    const j = JSON.parse((await barmants(cfg, ['-f', 'json', 'verify-backup', 'pg', 'latest'])).stdout);
    assert.equal(j.ok, false);
    assert.deepEqual(new Set(j.problems.map((p: any) => p.file)), new Set([flip, trunc, gone, 'backup_manifest']));
    assert.equal(j.problems.find((p: any) => p.file === gone).problem, 'missing');
  });

  test('a typo in an option value fails with file:line and exit 2', async () => {
    const path = join(cfg.home, 'typo.conf');
    const text = (await readFile(cfg.path, 'utf8')).replace(/backup_compression = lz4/, 'backup_compression = lz5');
    await writeFile(path, text);
    const line = text.split('\n').findIndex((l) => l.startsWith('backup_compression')) + 1;
    const r = await barmants(path, ['list-backups', 'pg']);
    assert.equal(r.code, 2, r.stderr);
    assert.ok(r.stderr.includes(`${path}:${line}`), r.stderr);
  });

  test('reuse against a previous backup missing a file, and a forked archive: the file is stored again, --wal still fetches its WAL', async () => {
    // The verify test above damaged the latest backup: the next one must not link its damaged
    // files (same checksum in the file list, different bytes on disk) but store them again.
    let r = await barmants(cfg, ['-f', 'json', 'backup', 'pg', '--wal']);
    assert.equal(r.code, 0, r.stderr);
    const good = JSON.parse(r.stdout).pg;
    assert.match(r.stderr, /differs from what was just stored .*such files are stored again/);
    assert.equal((await barmants(cfg, ['verify-backup', 'pg', good.backup_id])).code, 0);
    // Then one of its files is lost.
    const [rel] = await cluster().sql<{ p: string }>(`SELECT pg_relation_filepath('barmants_load') AS p`);
    await rm(join(base(), good.backup_id, 'data', rel!.p + '.lz4'));
    // After a PITR fork the archive keeps the old timeline's later segments: they are not the next
    // backup's WAL. (Recorded straight in the catalog: only their rows matter here.)
    const catalog = Catalog.open(catalogPath(cfg.home));
    try {
      const segno = 0xffffn;
      catalog.addWalSegment({
        server: 'pg', timeline: 7, segno, name: walFileName(7, segno, 16 << 20), size: 16 << 20, storedSize: 16 << 20,
        compression: null, checksum: '0'.repeat(64), archivedAt: new Date().toISOString(),
      });
    } finally {
      catalog.close();
    }
    r = await barmants(cfg, ['-f', 'json', 'backup', 'pg', '--wal', '--wait-timeout', '60']);
    assert.equal(r.code, 0, r.stderr);
    const b = JSON.parse(r.stdout).pg;
    assert.equal(b.status, 'DONE', r.stderr);
    assert.match(r.stderr, new RegExp(`${rel!.p}\\.lz4 is missing; such files are stored again`));
    const v = await barmants(cfg, ['verify-backup', 'pg', b.backup_id]);
    assert.equal(v.code, 0, v.stdout + v.stderr);
  });
});
