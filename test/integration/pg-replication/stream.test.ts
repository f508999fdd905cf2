/*
 * WalStream's own guarantees, with pg-replication alone: a consumer that stops asking holds the
 * stream to its high-water mark (the socket stops being read, the backlog waits in the kernel and
 * on the server); gathered reads (readCoalesceMs) with recycled buffers (reuseBuffers) deliver the
 * same bytes as the server's pg_wal, in fewer and larger chunks than there are commits.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { ReplicationClient, parseLsn, segmentOf, segmentOffset, segmentStart, walFileName, type Lsn } from '../../../packages/pg-replication/src/index.js';
import { generateLoad, useCluster, versionsUnderTest, type Cluster, type PgMajor } from '../../harness/index.js';

const SEG = 1 << 20;

function repl(c: Cluster) {
  return { host: c.host, port: c.port, user: c.replUser, password: c.replPassword };
}

async function sentLsn(c: Cluster, app: string): Promise<Lsn | null> {
  const rows = await c.sql<{ l: string | null }>('SELECT sent_lsn::text AS l FROM pg_stat_replication WHERE application_name = $1', [app]);
  return rows[0]?.l ? parseLsn(rows[0].l) : null;
}

describe('WalStream', { concurrency: true }, () => {
  versionsUnderTest().forEach((version: PgMajor) => {
    const cluster = useCluster({ version, walSegmentSizeMB: 1, conf: ['wal_keep_size = 1024'] });

    test(`PG${version}: a stalled consumer holds the stream to its high-water mark`, async () => {
      const c = cluster();
      const rc = await ReplicationClient.connect({ ...repl(c), applicationName: 'stall_me' });
      try {
        const id = await rc.identifySystem();
        const start = segmentStart(segmentOf(id.xlogPos, SEG), SEG);
        // A backlog far larger than the queue may hold.
        await generateLoad(c, { rows: 150_000, batches: 3, payloadBytes: 200 });
        const hwm = 1 << 20;
        const s = rc.startReplication({ start, timeline: id.timeline, highWaterMark: hwm, statusIntervalMs: 500 });
        const first = await s.next();
        assert.ok(first && first.type === 'xlogdata');
        // Stop consuming. The server goes on sending until the socket buffers are full: wait for
        // its sent position to settle, then see what the stream took in meanwhile.
        let last: Lsn | null = null;
        for (;;) {
          await delay(300);
          const now = await sentLsn(c, 'stall_me');
          if (now !== null && now === last) break;
          last = now;
        }
        const received = s.reported.write - start;
        // The queue (hwm), one socket read parsed after the pause and the socket's own 16 KiB buffer.
        assert.ok(received <= BigInt(hwm + (512 << 10)), `received ${received} bytes with a ${hwm}-byte high-water mark`);
        assert.ok(last! - start > 4n * BigInt(hwm), 'the server had much more to send');
        // Consuming again resumes the flow: the stream catches up with what the server sent.
        let pos = first.walStart + BigInt(first.data.length);
        for await (const m of s) {
          if (m.type !== 'xlogdata') continue;
          assert.equal(m.walStart, pos);
          pos += BigInt(m.data.length);
          if (pos >= last!) break;
        }
        await s.stop();
      } finally {
        await rc.close();
      }
    });

    test(`PG${version}: gathered reads with recycled buffers deliver the server's bytes`, async () => {
      const c = cluster();
      const rc = await ReplicationClient.connect({ ...repl(c), applicationName: 'gather' });
      try {
        const id = await rc.identifySystem();
        const start = segmentStart(segmentOf(id.xlogPos, SEG), SEG);
        const s = rc.startReplication({ start, timeline: id.timeline, readCoalesceMs: 20, reuseBuffers: true, highWaterMark: 256 << 10 });
        // Many small commits while streaming, then a switch: one complete segment at least.
        const writer = (async () => {
          await c.sql('CREATE TABLE IF NOT EXISTS t_gather (x int)');
          for (let i = 0; i < 300; i++) await c.sql('INSERT INTO t_gather VALUES ($1)', [i]);
          await c.sql('SELECT pg_switch_wal()');
        })();
        let pos = start;
        let seg = Buffer.alloc(SEG);
        let chunks = 0;
        const done: string[] = [];
        for await (const m of s) {
          if (m.type !== 'xlogdata') continue;
          chunks++;
          assert.equal(m.walStart, pos, 'contiguous');
          // The chunk's bytes are valid until the next turn: copy them now.
          let d = m.data;
          while (d.length > 0) {
            const off = segmentOffset(pos, SEG);
            const n = Math.min(d.length, SEG - off);
            d.copy(seg, off, 0, n);
            d = d.subarray(n);
            pos += BigInt(n);
            if (segmentOffset(pos, SEG) === 0) {
              const name = walFileName(id.timeline, segmentOf(pos - 1n, SEG), SEG);
              const theirs = await readFile(join(c.dataDir, 'pg_wal', name));
              assert.ok(seg.equals(theirs), `${name} differs from the server's`);
              done.push(name);
              seg = Buffer.alloc(SEG);
              s.sendStatus({ flush: pos });
            }
          }
          if (done.length >= 1) break;
        }
        await writer;
        await s.stop();
        assert.ok(chunks < 300, `${chunks} chunks for 300 commits and a switch: reads were gathered`);
      } finally {
        await rc.close();
      }
    });
  });
});
