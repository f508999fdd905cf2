// Shared by the backup suites: `barmants backup --wal` end to end on a real cluster with data in
// the default and a user tablespace, verify-backup, and optionally a restore of the backup
// (extracted + WAL, started, rows counted).
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { useCluster, generateLoad, startClusterFromDataDir, type Cluster, type PgMajor } from '../../harness/index.js';
import { barmants, writeTestConfig, type TestConfig } from '../../helpers/config.js';
import { extractBackup } from '../../helpers/extract.js';

export const CODECS = ['none', 'gzip', 'lz4', 'zstd'] as const;

async function seed(c: Cluster): Promise<{ main: number; ts: number }> {
  const loc = await c.makeTablespaceDir('ts1');
  await c.sql(`CREATE TABLESPACE ts1 LOCATION '${loc}'`);
  const main = await generateLoad(c, { rows: 20_000, batches: 2 });
  await c.sql(`CREATE TABLE in_ts TABLESPACE ts1 AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 30000) g`);
  return { main, ts: 30_000 };
}

/** One describe per version: a backup with each codec of `codecs`, verified; `restore` also restores the zstd or first one. */
export function backupSuite(version: PgMajor, codecs: readonly (typeof CODECS)[number][], restore: boolean): void {
  describe(`backup on PostgreSQL ${version} (${codecs.join(', ')})`, () => {
    const cluster = useCluster({ version, name: `backup${version}` });
    let rows: { main: number; ts: number };
    const configs: TestConfig[] = [];
    before(async () => {
      rows = await seed(cluster());
    });
    after(async () => {
      for (const c of configs) await c.cleanup();
    });

    for (const codec of codecs) {
      const restoreThis = restore && codec === codecs[0];
      test(`backup --wal with ${codec}, verify-backup${restoreThis ? ', restore' : ''}`, async () => {
        const cfg = await writeTestConfig(cluster(), { options: { backup_compression: codec } });
        configs.push(cfg);
        const t0 = Date.now();
        const r = await barmants(cfg, ['-f', 'json', 'backup', 'pg', '--wal', '--wait-timeout', '60']);
        const seconds = (Date.now() - t0) / 1000;
        assert.equal(r.code, 0, r.stderr);
        const b = JSON.parse(r.stdout).pg;
        assert.equal(b.status, 'DONE', r.stderr);
        assert.equal(b.compression, codec);
        // The slot that held the backup's WAL on the server is gone once the WAL is fetched.
        const slots = await cluster().sql(`SELECT slot_name FROM pg_replication_slots WHERE slot_name LIKE 'barmants_backup_%'`);
        assert.deepEqual(slots, []);
        assert.equal(b.tablespaces.length, 1);
        assert.equal(b.tablespaces[0].name, 'ts1');
        assert.ok(b.cluster_size > 5 << 20);
        if (codec !== 'none') assert.ok(b.size < b.cluster_size, `${codec} should store less than the cluster size`);
        console.log(`# PG${version} ${codec}: ${(b.cluster_size / 1048576).toFixed(1)} MiB -> ${(b.size / 1048576).toFixed(1)} MiB stored, CLI wall ${seconds.toFixed(2)} s, copy ${b.copy_seconds} s = ${(b.cluster_size / 1048576 / b.copy_seconds).toFixed(0)} MiB/s`);

        const v = await barmants(cfg, ['-f', 'json', 'verify-backup', 'pg', 'latest']);
        assert.equal(v.code, 0, v.stdout + v.stderr);
        const vr = JSON.parse(v.stdout);
        assert.equal(vr.ok, true);
        assert.ok(vr.files_checked > 500);

        if (restoreThis) {
          // The backup restores: extract it with its WAL, start it, count the rows.
          const dir = await mkdtemp(join(tmpdir(), 'barmants-extract-'));
          let restored: Cluster | null = null;
          try {
            await extractBackup(join(cfg.home, 'pg', 'base', b.backup_id), join(cfg.home, 'pg', 'wals'), join(dir, 'data'), join(dir, 'ts'));
            restored = await startClusterFromDataDir(join(dir, 'data'), version, { name: `restored${version}` });
            const [m] = await restored.sql<{ n: string }>('SELECT count(*) AS n FROM barmants_load');
            const [t] = await restored.sql<{ n: string }>('SELECT count(*) AS n FROM in_ts');
            assert.equal(Number(m!.n), rows.main);
            assert.equal(Number(t!.n), rows.ts);
          } finally {
            await restored?.destroy();
            await rm(dir, { recursive: true, force: true });
          }
        }
      });
    }
  });
}
