// Integration test of the test harness itself: every PostgreSQL major under test starts, takes SQL and
// replication connections, takes load, survives a crash; one version also gets 1 MB WAL segments,
// a hot standby, and a restart from a copied data directory.

import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import {
  ALL_MAJORS,
  createStandby,
  generateLoad,
  startBackgroundLoad,
  startCluster,
  startClusterFromDataDir,
  switchWal,
  useCluster,
  versionsUnderTest,
  type Cluster,
  type PgMajor,
} from '../../harness/index.js';

const versions = versionsUnderTest();
const smallSegments = versions[0]!; // also: copied-data-dir restart
const withStandby = versions[versions.length - 1]!;

async function waitFor<T>(what: string, fn: () => Promise<T | undefined | false>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

async function count(c: Cluster, table: string): Promise<number> {
  const [row] = await c.sql<{ n: string }>(`SELECT count(*) AS n FROM ${table}`);
  return Number(row!.n);
}

describe('versionsUnderTest', () => {
  const saved = process.env.BARMANTS_TEST_PG_VERSIONS;
  after(() => {
    if (saved === undefined) delete process.env.BARMANTS_TEST_PG_VERSIONS;
    else process.env.BARMANTS_TEST_PG_VERSIONS = saved;
  });
  test('parses the list, defaults to all, rejects junk', () => {
    process.env.BARMANTS_TEST_PG_VERSIONS = ' 18, 14 ,18';
    assert.deepEqual(versionsUnderTest(), [18, 14]);
    delete process.env.BARMANTS_TEST_PG_VERSIONS;
    assert.deepEqual(versionsUnderTest(), ALL_MAJORS);
    for (const bad of ['13', '14,x', '15.1', ',']) {
      process.env.BARMANTS_TEST_PG_VERSIONS = bad;
      assert.throws(() => versionsUnderTest(), /BARMANTS_TEST_PG_VERSIONS/);
    }
  });
});

describe('cluster harness', { concurrency: true }, () => {
  for (const version of versions) {
    test(`PostgreSQL ${version}`, { timeout: 180_000 }, async (t) => {
      const t0 = Date.now();
      const segMB = version === smallSegments ? 1 : undefined;
      const c = await startCluster({ version, name: `harness-${version}`, walSegmentSizeMB: segMB });
      t.after(() => c.destroy());
      t.diagnostic(`PG ${version}: startCluster ${Date.now() - t0} ms`);

      // The right server, configured as promised.
      const [v] = await c.sql<{ server_version_num: string }>('SHOW server_version_num');
      assert.equal(Math.floor(Number(v!.server_version_num) / 10000), version);
      const [wl] = await c.sql<{ wal_level: string }>('SHOW wal_level');
      assert.equal(wl!.wal_level, 'replica');
      assert.equal(await c.walSegmentSize(), (segMB ?? 16) * 1024 * 1024);
      const [la] = await c.sql<{ listen_addresses: string }>('SHOW listen_addresses');
      assert.equal(la!.listen_addresses, '127.0.0.1');
      const [ck] = await c.sql<{ data_checksums: string }>('SHOW data_checksums');
      assert.equal(ck!.data_checksums, 'on');
      assert.match(c.conninfo({ user: c.replUser }), new RegExp(`^host=127\\.0\\.0\\.1 port=${c.port} user=barmants_repl password=\\S+ dbname=postgres$`));

      // The replication role: a physical walsender connection, and the SQL functions a backup tool calls.
      const sysid = await c.systemIdentifier();
      const repl = new pg.Client({ ...c.sqlConfig({ user: c.replUser, password: c.replPassword, database: 'replication' }), replication: true } as any);
      await repl.connect();
      try {
        const r = await repl.query('IDENTIFY_SYSTEM');
        assert.equal(String(r.rows[0].systemid), sysid);
      } finally {
        await repl.end();
      }
      const asRepl = new pg.Client(c.sqlConfig({ user: c.replUser }));
      await asRepl.connect();
      try {
        await asRepl.query('SELECT pg_switch_wal()');
        await asRepl.query(`SELECT pg_create_restore_point('harness')`);
        const [s] = (await asRepl.query(`SELECT current_setting('data_directory') AS d`)).rows; // pg_read_all_settings
        assert.equal(s.d, c.dataDir);
      } finally {
        await asRepl.end();
      }
      await assert.rejects(
        new pg.Client(c.sqlConfig({ user: c.replUser, password: 'wrong' })).connect(),
        (e: any) => e.code === '28P01',
      );

      // Load, WAL switches.
      assert.equal(await generateLoad(c, { rows: 2000, batches: 4, switches: 3, payloadBytes: 200 }), 2000);
      assert.equal(await count(c, 'barmants_load'), 2000);
      assert.match(await switchWal(c), /^[0-9A-F]{24}$/);

      // Background load: commits until stopped; what stop() reports is what the table holds.
      const bg = startBackgroundLoad(c, { table: 'bg_load', rowsPerTx: 10, switchEveryMs: 200 });
      await waitFor('background rows', async () => (await count(c, 'bg_load').catch(() => 0)) >= 50);
      const committed = await bg.stop();
      assert.ok(committed >= 50);
      assert.equal(await count(c, 'bg_load'), committed);

      // Crash and recover: committed rows survive.
      await c.sql(`CREATE TABLE marker (v text); INSERT INTO marker VALUES ('before crash')`);
      const tk = Date.now();
      await c.kill();
      await assert.rejects(c.sql('SELECT 1'));
      await c.start();
      t.diagnostic(`PG ${version}: kill + crash-recovery start ${Date.now() - tk} ms`);
      assert.deepEqual(await c.sql('SELECT v FROM marker'), [{ v: 'before crash' }]);
      assert.equal(await c.systemIdentifier(), sysid);

      if (version === withStandby) {
        const ts = Date.now();
        const s = await createStandby(c);
        t.after(() => s.destroy());
        t.diagnostic(`PG ${version}: createStandby ${Date.now() - ts} ms`);
        assert.notEqual(s.port, c.port);
        assert.equal(await s.systemIdentifier(), sysid);
        assert.deepEqual(await s.sql('SELECT pg_is_in_recovery() AS r'), [{ r: true }]);
        await c.sql(`INSERT INTO marker VALUES ('after standby')`);
        await waitFor('row replicated to the standby', async () =>
          (await s.sql(`SELECT 1 FROM marker WHERE v = 'after standby'`)).length === 1,
        );
        const [st] = await c.sql<{ state: string }>(`SELECT state FROM pg_stat_replication`);
        assert.equal(st!.state, 'streaming');
        await s.promote();
        assert.deepEqual(await s.sql('SELECT pg_is_in_recovery() AS r'), [{ r: false }]);
      }

      if (version === smallSegments) {
        // A copied data dir (as a restore would leave it) starts next to its still-running original.
        const dir = await mkdtemp(join(tmpdir(), 'barmants-harness-copy-'));
        t.after(() => rm(dir, { recursive: true, force: true }));
        await c.stop();
        await promisify(execFile)('cp', ['-a', c.dataDir, join(dir, 'data')]);
        await c.start();
        const r = await startClusterFromDataDir(join(dir, 'data'), version as PgMajor, {
          conf: [`application_name = 'copied cluster'  # a comment`],
          waitRecoveryEnd: true,
        });
        try {
          assert.notEqual(r.port, c.port);
          assert.equal(await r.systemIdentifier(), sysid);
          assert.equal(await count(r, 'barmants_load'), 2000);
          const [an] = await r.sql<{ application_name: string }>('SHOW application_name');
          assert.equal(an!.application_name, 'copied cluster');
        } finally {
          await r.destroy();
        }
        assert.equal(existsSync(join(dir, 'data')), false, 'destroy() removes the data dir unless keepDataDir');
      }

      await c.restart();
      assert.equal(await count(c, 'barmants_load'), 2000);
    });
  }
});

describe('useCluster', () => {
  const cluster = useCluster({ version: versions[0]!, name: 'use-cluster', conf: ['work_mem = 8MB'] });
  test('gives a running cluster with the extra settings', async () => {
    const [r] = await cluster().sql<{ work_mem: string }>('SHOW work_mem');
    assert.equal(r!.work_mem, '8MB');
  });
});
