/*
 * The receiver through what production throws at it (one PostgreSQL version): the server
 * restarted under it, a standby promoted to a new timeline while streaming from it, and WAL the
 * server removed while nothing received it (a real gap: reported, then streaming continues).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createStandby, generateLoad, startBackgroundLoad, useCluster, versionsUnderTest, type Cluster } from '../../harness/index.js';
import { WalReceiver, readWal } from '../../../packages/barmants/src/wal/index.js';
import { writeAndSwitch, compareWithServer, waitFor, walEnv, type WalEnv } from './helpers.js';

const version = versionsUnderTest().includes(15) ? 15 : versionsUnderTest()[0]!;

function startReceiver(env: WalEnv) {
  const ac = new AbortController();
  const receiver = new WalReceiver({ server: env.server, layout: env.layout, catalog: env.catalog, logger: env.logger, backoffBaseMs: 100, backoffCapMs: 1000 });
  let failed: unknown = null;
  const running = receiver.run(ac.signal).catch((e) => {
    failed = e;
  });
  return {
    receiver,
    check: () => {
      if (failed) throw failed;
    },
    async stop() {
      ac.abort();
      await running;
      if (failed) throw failed;
    },
  };
}

describe(`WAL receiver resilience on PostgreSQL ${version}`, () => {
  describe('server restart', () => {
    const cluster = useCluster({ version, walSegmentSizeMB: 1, conf: ['wal_keep_size = 1024'] });
    let env: WalEnv;
    before(async () => {
      env = await walEnv(cluster(), { compression: 'gzip' });
    });
    after(async () => {
      await env?.cleanup();
    });

    test('reconnects after the server restarts and continues without a gap', async () => {
      const c = cluster();
      const rx = startReceiver(env);
      try {
        await generateLoad(c, { rows: 10_000, batches: 2, switches: 2 });
        const before = await writeAndSwitch(c);
        await waitFor(`${before} archived`, () => (rx.check(), env.catalog.getWalSegment('pg', before) !== null));
        await c.restart();
        await generateLoad(c, { rows: 10_000, batches: 2, switches: 2 });
        const afterRestart = await writeAndSwitch(c);
        await waitFor(`${afterRestart} archived`, () => (rx.check(), env.catalog.getWalSegment('pg', afterRestart) !== null));
        assert.ok(rx.receiver.stats.reconnects >= 1);
      } finally {
        await rx.stop();
      }
      const segs = env.catalog.listWalSegments('pg');
      assert.deepEqual(env.catalog.missingSegments('pg', 1, segs[0]!.segno, segs[segs.length - 1]!.segno), []);
      await compareWithServer(env, c);
    });
  });

  describe('promotion of the standby being streamed', () => {
    const primary = useCluster({ version, walSegmentSizeMB: 1, conf: ['wal_keep_size = 1024', 'hot_standby = on'] });
    let standby: Cluster | undefined;
    let env: WalEnv;
    before(async () => {
      standby = await createStandby(primary());
      env = await walEnv(standby, { compression: 'zstd' });
    });
    after(async () => {
      await env?.cleanup();
      await standby?.destroy();
    });

    test('stores the history file and continues on timeline 2', async () => {
      const p = primary();
      const s = standby!;
      const rx = startReceiver(env);
      try {
        const load = startBackgroundLoad(p, { rowsPerTx: 50, switchEveryMs: 300 });
        try {
          await waitFor('3 segments from the standby', () => (rx.check(), env.catalog.countWalSegments('pg') >= 3));
        } finally {
          await load.stop();
        }
        // Promote mid-segment (not right after a switch), so the old timeline leaves a .partial.
        await p.sql('CREATE TABLE IF NOT EXISTS t_promote (x int)');
        await p.sql('INSERT INTO t_promote VALUES (1)');
        const target = (await p.sql('SELECT pg_current_wal_lsn()::text AS l'))[0].l as string;
        await waitFor('the standby to replay the last write', async () =>
          (await s.sql('SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn AS ok', [target]))[0].ok);
        await s.promote();
        await waitFor('the standby out of recovery', async () => (await s.sql('SELECT NOT pg_is_in_recovery() AS p'))[0].p);
        await generateLoad(s, { rows: 5_000, batches: 2, switches: 1 });
        const onTwo = await writeAndSwitch(s);
        assert.ok(onTwo.startsWith('00000002'));
        await waitFor(`${onTwo} archived`, () => (rx.check(), env.catalog.getWalSegment('pg', onTwo) !== null));
      } finally {
        await rx.stop();
      }
      const hist = env.catalog.getHistoryFile('pg', 2);
      assert.ok(hist);
      assert.equal(hist.parentTli, 1);
      const ours = await readWal(env.layout, env.catalog, '00000002.history');
      assert.ok(ours?.equals(await readFile(join(s.dataDir, 'pg_wal', '00000002.history'))));
      // The old timeline's last segment is kept as <name>.partial, as PostgreSQL's archiver does.
      const switchSeg = await readdir(join(env.layout.walsDir, '0000000100000000'));
      assert.ok(switchSeg.some((n) => /^[0-9A-F]{24}\.partial\.zst$/.test(n)), switchSeg.join(' '));
      const two = env.catalog.listWalSegments('pg', { timeline: 2 });
      assert.ok(two.length >= 1);
      assert.deepEqual(env.catalog.missingSegments('pg', 2, two[0]!.segno, two[two.length - 1]!.segno), []);
      const cmp = await compareWithServer(env, s);
      assert.ok(cmp.names.some((n) => n.startsWith('00000002')), cmp.names.join(' '));
    });
  });

  describe('WAL removed while nothing received it', () => {
    const cluster = useCluster({ version, walSegmentSizeMB: 1, conf: ['wal_keep_size = 0', 'min_wal_size = 2MB', 'max_wal_size = 4MB'] });
    let env: WalEnv;
    before(async () => {
      env = await walEnv(cluster(), { compression: 'none' });
    });
    after(async () => {
      await env?.cleanup();
    });

    test('reports the gap and continues from what the server has', async () => {
      const c = cluster();
      let rx = startReceiver(env);
      const first = await writeAndSwitch(c);
      await waitFor(`${first} archived`, () => (rx.check(), env.catalog.getWalSegment('pg', first) !== null));
      await rx.stop();
      // Without the slot, the server recycles what we have not received.
      await c.sql("SELECT pg_drop_replication_slot('barmants')");
      await generateLoad(c, { rows: 30_000, batches: 6, switches: 6 });
      await c.sql('CHECKPOINT');
      await generateLoad(c, { rows: 5_000, batches: 2, switches: 2 });
      await c.sql('CHECKPOINT');
      const next = first.slice(0, 16) + (Number.parseInt(first.slice(16), 16) + 1).toString(16).toUpperCase().padStart(8, '0');
      assert.equal(existsSync(join(c.dataDir, 'pg_wal', next)), false, `${next} should be gone from the server`);
      rx = startReceiver(env);
      try {
        await waitFor('the gap reported', () => (rx.check(), /^gap: /.test(env.catalog.getHeartbeat('pg')?.message ?? '')));
        const after = await writeAndSwitch(c);
        await waitFor(`${after} archived after the gap`, () => (rx.check(), env.catalog.getWalSegment('pg', after) !== null));
      } finally {
        await rx.stop();
      }
      const hb = env.catalog.getHeartbeat('pg');
      assert.match(hb?.message ?? '', /^gap: WAL /);
      const segs = env.catalog.listWalSegments('pg');
      const gaps = env.catalog.missingSegments('pg', 1, segs[0]!.segno, segs[segs.length - 1]!.segno);
      assert.equal(gaps.length, 1, 'one gap, recorded as missing segments');
      await compareWithServer(env, c);
    });
  });
});
