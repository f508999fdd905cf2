/*
 * The WAL receiver against real clusters (every version under test): under insert load with
 * several pg_switch_wal() calls, archived segments are byte-identical to the server's pg_wal,
 * the catalog has no gap, feedback reaches pg_stat_replication, and a clean stop exits.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { parseWalFileName } from 'pg-replication';
import { startBackgroundLoad, useCluster, versionsUnderTest, type PgMajor } from '../../harness/index.js';
import { WalReceiver } from '../../../packages/barmants/src/wal/index.js';
import { writeAndSwitch, compareWithServer, waitFor, walEnv, type WalEnv } from './helpers.js';

const CODECS = ['gzip', 'lz4', 'zstd', 'none'] as const;

versionsUnderTest().forEach((version: PgMajor, i) => {
  const codec = CODECS[i % CODECS.length]!;
  // 16 MB segments on one version, 1 MB elsewhere: names and sizes must never assume 16 MB.
  const segMB = version === 15 ? 16 : 1;
  describe(`WAL receiver on PostgreSQL ${version} (${segMB} MB segments, ${codec})`, () => {
    const cluster = useCluster({ version, walSegmentSizeMB: segMB, conf: ['wal_keep_size = 1024'] });
    let env: WalEnv;
    before(async () => {
      env = await walEnv(cluster(), { compression: codec });
    });
    after(async () => {
      await env?.cleanup();
    });

    test('archives byte-identical segments without a gap under load', async () => {
      const c = cluster();
      const archived: string[] = [];
      const ac = new AbortController();
      const receiver = new WalReceiver({
        server: env.server, layout: env.layout, catalog: env.catalog, logger: env.logger,
        onSegmentArchived: (n) => void archived.push(n),
      });
      const running = receiver.run(ac.signal);
      let failed: unknown = null;
      running.catch((e) => (failed = e));
      const started = Date.now();
      const load = startBackgroundLoad(c, { rowsPerTx: 50, switchEveryMs: 400 });
      try {
        await waitFor('6 archived segments', () => {
          if (failed) throw failed;
          return env.catalog.countWalSegments(env.server.name) >= 6;
        }, 80_000);
      } finally {
        await load.stop();
      }
      const last = await writeAndSwitch(c);
      await waitFor(`${last} archived`, () => {
        if (failed) throw failed;
        return env.catalog.getWalSegment(env.server.name, last) !== null;
      }, 60_000);
      // Feedback: the server sees our flush position advance, with our application_name.
      const rows = await c.sql<{ flush_lsn: string | null; application_name: string }>(
        "SELECT flush_lsn::text AS flush_lsn, application_name FROM pg_stat_replication WHERE application_name = 'barmants_receive_wal'",
      );
      assert.equal(rows.length, 1);
      assert.ok(rows[0]!.flush_lsn);
      const hb = env.catalog.getHeartbeat(env.server.name);
      assert.equal(hb?.state, 'streaming');
      assert.equal(hb?.pid, process.pid);
      ac.abort();
      await running;
      const seconds = (Date.now() - started) / 1000;

      const segs = env.catalog.listWalSegments(env.server.name);
      const segSize = segMB << 20;
      const first = segs[0]!;
      const lastRec = segs[segs.length - 1]!;
      assert.deepEqual(env.catalog.missingSegments(env.server.name, 1, first.segno, lastRec.segno), []);
      assert.equal(parseWalFileName(lastRec.name, segSize).segno >= parseWalFileName(last, segSize).segno, true);
      for (const r of segs) assert.equal(r.compression, codec === 'none' ? null : codec);
      const cmp = await compareWithServer(env, c);
      assert.ok(cmp.compared >= 6, `compared ${cmp.compared} segments (${cmp.missingOnServer} no longer on the server)`);
      assert.ok(archived.includes(last));
      assert.equal(env.catalog.getHeartbeat(env.server.name)?.state, 'stopped');
      console.log(
        `# PG${version}: ${segs.length} segments (${codec}) in ${seconds.toFixed(1)} s, ${cmp.compared} byte-compared, ` +
          `fsyncs ${receiver.stats.fsyncs}, max flush lag ${receiver.stats.maxFlushLag} B`,
      );
    });

    test('resumes after a clean stop without duplicating or skipping', async () => {
      const c = cluster();
      const before = env.catalog.countWalSegments(env.server.name);
      const ac = new AbortController();
      const running = new WalReceiver({ server: env.server, layout: env.layout, catalog: env.catalog, logger: env.logger }).run(ac.signal);
      let failed: unknown = null;
      running.catch((e) => (failed = e));
      await c.sql('CREATE TABLE IF NOT EXISTS t_resume (x int)');
      await c.sql('INSERT INTO t_resume SELECT generate_series(1, 1000)');
      const last = await writeAndSwitch(c);
      await waitFor(`${last} archived`, () => {
        if (failed) throw failed;
        return env.catalog.getWalSegment(env.server.name, last) !== null;
      });
      ac.abort();
      await running;
      const segs = env.catalog.listWalSegments(env.server.name);
      assert.ok(segs.length > before);
      assert.deepEqual(env.catalog.missingSegments(env.server.name, 1, segs[0]!.segno, segs[segs.length - 1]!.segno), []);
      await compareWithServer(env, c);
    });
  });
});
