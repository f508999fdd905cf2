/*
 * The receiver with its repository on a small tmpfs that fills up: it reports a clear error,
 * never acknowledges to the server more than is on disk (the partial's bytes up to the flush it
 * reported are the server's), keeps retrying, and once space is freed (the tmpfs grown) resumes
 * with no gap and every segment byte-identical to the server's. Needs root to mount the tmpfs;
 * skipped, saying so, where mounting is not permitted.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { open, readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { parseLsn, segmentOf, segmentOffset, segmentStart, walFileName } from 'pg-replication';
import { useCluster, versionsUnderTest, type Cluster } from '../../harness/index.js';
import { WalReceiver } from '../../../packages/barmants/src/wal/index.js';
import { mountTmpfs, resizeTmpfs, unmountTmpfs, type Tmpfs } from '../../helpers/tmpfs.js';
import { compareWithServer, waitFor, walEnv, writeAndSwitch, type WalEnv } from './helpers.js';

const version = versionsUnderTest().includes(15) ? 15 : versionsUnderTest()[0]!;
const SEG = 1 << 20;

/** What the server was last told is flushed: a physical slot's restart_lsn follows our flush feedback. */
async function reportedFlush(c: Cluster): Promise<bigint> {
  const rows = await c.sql<{ l: string | null }>("SELECT restart_lsn::text AS l FROM pg_replication_slots WHERE slot_name = 'barmants'");
  return rows[0]?.l ? parseLsn(rows[0].l) : 0n;
}

/**
 * The acknowledged WAL is on our disk: every segment before the flushed position is archived or
 * complete in streaming/, and the partial holding it has the server's bytes up to that position.
 */
async function assertFlushOnDisk(env: WalEnv, c: Cluster, flushed: bigint): Promise<void> {
  const segno = segmentOf(flushed, SEG);
  const upTo = Number(flushed - segmentStart(segno, SEG));
  const prev = walFileName(1, segno - 1n, SEG);
  assert.ok(env.catalog.getWalSegment('pg', prev) || existsSync(join(env.layout.streamingDir, prev)), `${prev} (before the flushed position) is stored`);
  if (upTo === 0) return;
  const name = walFileName(1, segno, SEG);
  const fh = await open(env.layout.partialPath(name), 'r');
  try {
    const ours = Buffer.alloc(upTo);
    const { bytesRead } = await fh.read(ours, 0, upTo, 0);
    assert.equal(bytesRead, upTo);
    const theirs = (await readFile(join(c.dataDir, 'pg_wal', name))).subarray(0, upTo);
    assert.ok(ours.equals(theirs), `${name}.partial holds the server's first ${upTo} bytes, which were acknowledged`);
  } finally {
    await fh.close();
  }
}

describe(`WAL receiver on a full disk (PostgreSQL ${version})`, () => {
  const cluster = useCluster({ version, walSegmentSizeMB: 1, conf: ['wal_keep_size = 1024'] });
  let mnt: Tmpfs | undefined;
  let env: WalEnv | undefined;
  before(async () => {
    // 4 MB: three archived 1 MB segments, then the fourth partial cannot be written whole.
    mnt = await mountTmpfs(4);
    if (mnt && 'dir' in mnt) env = await walEnv(cluster(), { compression: 'none', extra: [`backup_directory = ${join(mnt.dir, 'pg')}`] });
  });
  after(async () => {
    await env?.cleanup();
    await unmountTmpfs(mnt);
  });

  test('reports the error, acknowledges only what is on disk, retries, and resumes without a gap once space is freed', async (t) => {
    if (!mnt || 'skip' in mnt) return t.skip(mnt?.skip);
    const e = env!;
    const c = cluster();
    const ac = new AbortController();
    const receiver = new WalReceiver({ server: e.server, layout: e.layout, catalog: e.catalog, logger: e.logger, backoffBaseMs: 100, backoffCapMs: 500 });
    let failed: unknown = null;
    const running = receiver.run(ac.signal).catch((err) => (failed = err));
    const check = () => {
      if (failed) throw failed;
    };
    try {
      // Close segments until the repository is full and the receiver says so.
      const full = /^no space left on the device holding .*\.partial \(ENOSPC\): WAL after \S+ is not stored$/;
      await waitFor('the receiver to report the full disk', async () => {
        check();
        const hb = e.catalog.getHeartbeat('pg');
        if (hb?.state === 'retrying' && full.test(hb.message ?? '')) return true;
        await writeAndSwitch(c);
        return false;
      }, 120_000);
      // It keeps retrying, and each retry fails the same way: nothing beyond the disk is acknowledged.
      const reconnects = receiver.stats.reconnects;
      await waitFor('two more attempts', () => (check(), receiver.stats.reconnects >= reconnects + 2));
      const hb = e.catalog.getHeartbeat('pg')!;
      assert.equal(hb.state, 'retrying');
      assert.match(hb.message ?? '', full);
      // Acknowledged to the server <= fsynced by the receiver, and both are on disk: the partial
      // keeps the server's bytes up to there.
      const acknowledged = await reportedFlush(c);
      const fsynced = hb.flushedLsn;
      assert.ok(acknowledged > 0n && fsynced !== null);
      assert.ok(fsynced >= acknowledged, `fsynced ${fsynced} >= acknowledged ${acknowledged}`);
      assert.notEqual(segmentOffset(fsynced, SEG), 0, 'the disk filled mid-segment');
      await assertFlushOnDisk(e, c, acknowledged);
      await assertFlushOnDisk(e, c, fsynced);
      const partials = (await readdir(e.layout.streamingDir)).filter((n) => n.endsWith('.partial'));
      assert.equal(partials.length, 1, `the partial is kept: ${partials.join(' ')}`);

      // Free space: grow the tmpfs. The receiver finishes the partial and goes on.
      await resizeTmpfs((mnt as { dir: string }).dir, 64);
      const next = await writeAndSwitch(c);
      await waitFor(`${next} archived once space is back`, () => (check(), e.catalog.getWalSegment('pg', next) !== null), 120_000);
      assert.equal(e.catalog.getHeartbeat('pg')?.state, 'streaming');
    } finally {
      ac.abort();
      await running;
    }
    check();
    const segs = e.catalog.listWalSegments('pg');
    assert.ok(segs.length >= 5, `${segs.length} segments archived`);
    assert.deepEqual(e.catalog.missingSegments('pg', 1, segs[0]!.segno, segs[segs.length - 1]!.segno), []);
    const cmp = await compareWithServer(e, c);
    assert.equal(cmp.compared, segs.length, 'every archived segment is byte-identical to the server');
    assert.deepEqual(await readdir(e.layout.errorsDir).catch(() => []), [], 'nothing set aside');
  });
});
