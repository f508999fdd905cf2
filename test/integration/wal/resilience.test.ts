/*
 * The receiver through what production throws at it (one PostgreSQL version): the server
 * restarted under it, a standby promoted to a new timeline while streaming from it, and WAL the
 * server removed while nothing received it (a real gap: reported, then streaming continues from
 * the oldest segment the server still has, or, when pg_wal cannot be listed, from its current
 * position).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createStandby, generateLoad, startBackgroundLoad, useCluster, versionsUnderTest, type Cluster } from '../../harness/index.js';
import { Writable } from 'node:stream';
import { createLogger, type Logger } from '../../../packages/barmants/src/log/index.js';
import { WalReceiver, readWal } from '../../../packages/barmants/src/wal/index.js';
import { writeAndSwitch, compareWithServer, waitFor, walEnv, type WalEnv } from './helpers.js';

const version = versionsUnderTest().includes(15) ? 15 : versionsUnderTest()[0]!;

function startReceiver(env: WalEnv, o: { server?: WalEnv['server']; logger?: Logger } = {}) {
  const ac = new AbortController();
  const receiver = new WalReceiver({
    server: o.server ?? env.server, layout: env.layout, catalog: env.catalog, logger: o.logger ?? env.logger, backoffBaseMs: 100, backoffCapMs: 1000,
  });
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

/** The segment after `name` on the same timeline (1 MB segments: 4096 per xlogid). */
function nextSegment(name: string, by = 1): string {
  const segno = BigInt(`0x${name.slice(8, 16)}`) * 4096n + BigInt(`0x${name.slice(16)}`) + BigInt(by);
  return name.slice(0, 8) + (segno / 4096n).toString(16).toUpperCase().padStart(8, '0') + (segno % 4096n).toString(16).toUpperCase().padStart(8, '0');
}

/** Timeline-1 segments in the server's pg_wal after `after`, up to the one being written, oldest first. */
async function serverSegmentsAfter(c: Cluster, after: string): Promise<string[]> {
  const rows = await c.sql<{ name: string }>(
    "SELECT name FROM pg_ls_waldir() WHERE name ~ '^00000001[0-9A-F]{16}$' AND name > $1 AND name <= pg_walfile_name(pg_current_wal_lsn()) ORDER BY name",
    [after],
  );
  return rows.map((r) => r.name);
}

describe('WAL removed while nothing received it, streaming without a slot', () => {
  // wal_keep_size keeps a few segments behind the current one after each checkpoint: WAL the
  // server still has, beyond what it removed.
  const cluster = useCluster({ version, walSegmentSizeMB: 1, conf: ['wal_keep_size = 6MB', 'min_wal_size = 2MB', 'max_wal_size = 64MB'] });
  let env: WalEnv;
  before(async () => {
    env = await walEnv(cluster(), { compression: 'none', slot: null });
  });
  after(async () => {
    await env?.cleanup();
  });

  /** Stops the receiver, then writes enough WAL and checkpoints for the server to remove the next segments. */
  async function removeWalAfter(c: Cluster, last: string): Promise<void> {
    await generateLoad(c, { rows: 20_000, batches: 10, switches: 14 });
    await c.sql('CHECKPOINT');
    await writeAndSwitch(c);
    await c.sql('CHECKPOINT');
    assert.equal(existsSync(join(c.dataDir, 'pg_wal', nextSegment(last))), false, `${nextSegment(last)} should be gone from the server`);
  }

  /** Streams until one more segment is archived; returns its name. */
  async function archiveOne(c: Cluster): Promise<string> {
    const rx = startReceiver(env);
    try {
      const name = await writeAndSwitch(c);
      await waitFor(`${name} archived`, () => (rx.check(), env.catalog.getWalSegment('pg', name) !== null));
      return name;
    } finally {
      await rx.stop();
    }
  }

  test('resumes at the oldest segment still in pg_wal: the gap is only what was removed', async () => {
    const c = cluster();
    const first = await archiveOne(c);
    await removeWalAfter(c, first);
    // No checkpoint comes between this listing and the receiver's own (no load, max_wal_size far).
    const kept = await serverSegmentsAfter(c, first);
    assert.ok(kept.length >= 3, `the server keeps segments behind the current one: ${kept.join(' ')}`);
    const oldest = kept[0]!;
    const rx = startReceiver(env);
    try {
      await waitFor('the gap reported', () => (rx.check(), (env.catalog.getHeartbeat('pg')?.message ?? '').includes(`gap: WAL ${nextSegment(first)} `)));
      // The oldest segment the server kept is complete: it arrives without any new WAL.
      await waitFor(`${oldest} archived`, () => (rx.check(), env.catalog.getWalSegment('pg', oldest) !== null));
      const after = await writeAndSwitch(c);
      await waitFor(`${after} archived after the gap`, () => (rx.check(), env.catalog.getWalSegment('pg', after) !== null));
    } finally {
      await rx.stop();
    }
    assert.match(env.catalog.getHeartbeat('pg')?.message ?? '', new RegExp(`^gap: WAL ${nextSegment(first)} to ${nextSegment(oldest, -1)} `));
    const segs = env.catalog.listWalSegments('pg');
    const firstSegno = segs.find((r) => r.name === first)!.segno;
    const oldestSegno = segs.find((r) => r.name === oldest)!.segno;
    assert.deepEqual(
      env.catalog.missingSegments('pg', 1, segs[0]!.segno, segs[segs.length - 1]!.segno),
      [{ from: firstSegno + 1n, to: oldestSegno - 1n }],
      'exactly the removed segments are missing',
    );
    const cmp = await compareWithServer(env, c);
    assert.ok(cmp.names.includes(oldest) && cmp.names.includes(kept[1]!), `compared ${cmp.names.join(' ')}`);
  });

  test("without the right to list pg_wal: resumes at the server's current position and says why", async () => {
    const c = cluster();
    const last = await archiveOne(c);
    await removeWalAfter(c, last);
    // A conninfo role that may connect but is neither superuser nor in pg_monitor.
    await c.sql("DO $$ BEGIN CREATE ROLE barmants_nomonitor LOGIN PASSWORD 'nomonitor'; EXCEPTION WHEN duplicate_object THEN NULL; END $$");
    const server = { ...env.server, conninfo: c.conninfo({ user: 'barmants_nomonitor', password: 'nomonitor' }) };
    const kept = await serverSegmentsAfter(c, last);
    const current = kept[kept.length - 1]!;
    assert.ok(kept.length >= 3);
    let logged = '';
    const logger = createLogger({ level: 'WARNING', console: false, stream: new Writable({ write: (b, _e, cb) => ((logged += String(b)), cb()) }) });
    const rx = startReceiver(env, { server, logger });
    try {
      await waitFor('the new gap reported', () => (rx.check(), (env.catalog.getHeartbeat('pg')?.message ?? '').includes(`gap: WAL ${nextSegment(last)} `)));
      const after = await writeAndSwitch(c);
      await waitFor(`${after} archived after the gap`, () => (rx.check(), env.catalog.getWalSegment('pg', after) !== null));
    } finally {
      await rx.stop();
    }
    await logger.close();
    assert.match(logged, /cannot list the server's pg_wal \(.*permission denied.*pg_monitor/);
    // The fallback cannot know what pg_wal still holds: the gap runs to the current segment.
    assert.match(env.catalog.getHeartbeat('pg')?.message ?? '', new RegExp(`^gap: WAL ${nextSegment(last)} to ${nextSegment(current, -1)} `));
    assert.equal(env.catalog.getWalSegment('pg', kept[0]!), null, `${kept[0]} was on the server but could not be found`);
    await compareWithServer(env, c);
  });
});
