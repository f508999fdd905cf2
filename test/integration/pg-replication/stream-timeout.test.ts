/*
 * WalStream's silence timeout (receiveTimeoutMs, PostgreSQL's wal_receiver_timeout), with
 * pg-replication alone: an idle but healthy server is pinged and answers, so it is never taken for
 * dead; a half-open connection (a proxy that stops forwarding without closing anything) ends the
 * stream with a connection error; a consumer slow enough to hold the socket paused for longer than
 * the timeout is not mistaken for a silent server. The same for simple commands (commandTimeoutMs):
 * IDENTIFY_SYSTEM on a stalled connection fails instead of waiting forever; and for a base backup
 * (BaseBackupOptions.receiveTimeoutMs): a copy stalled mid-way fails, a handler holding a member
 * longer than the timeout does not.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { ReplicationClient, ReplicationError, parseLsn, segmentOf, segmentStart, type Lsn, type WalMessage, type WalStream } from '../../../packages/pg-replication/src/index.js';
import { generateLoad, useCluster, versionsUnderTest, type Cluster, type PgMajor } from '../../harness/index.js';
import { TcpProxy } from '../../faults/helpers.js';

const SEG = 1 << 20;
const TIMEOUT_MS = 2000;

function repl(c: Cluster, port = c.port) {
  return { host: c.host, port, user: c.replUser, password: c.replPassword };
}

async function sentLsn(c: Cluster, app: string): Promise<Lsn | null> {
  const rows = await c.sql<{ l: string | null }>('SELECT sent_lsn::text AS l FROM pg_stat_replication WHERE application_name = $1', [app]);
  return rows[0]?.l ? parseLsn(rows[0].l) : null;
}

/** Consumes `s` in the background: every message is counted; the end (or the error) is kept. */
function drain(s: WalStream): { messages: WalMessage[]; done: Promise<{ error: unknown } | { end: true }> } {
  const messages: WalMessage[] = [];
  const done = (async () => {
    try {
      for await (const m of s) messages.push(m);
      return { end: true as const };
    } catch (error) {
      return { error };
    }
  })();
  return { messages, done };
}

describe('WalStream receiveTimeoutMs', () => {
  versionsUnderTest().forEach((version: PgMajor) => {
    const cluster = useCluster({ version, walSegmentSizeMB: 1, conf: ['wal_keep_size = 1024'] });

    test(`PG${version}: an idle server is pinged and kept; a stalled connection ends the stream with a connection error`, async () => {
      const c = cluster();
      const proxy = await TcpProxy.start({ host: c.host, port: c.port });
      const rc = await ReplicationClient.connect({ ...repl(c, proxy.port), applicationName: 'silence' });
      try {
        const id = await rc.identifySystem();
        const start = segmentStart(segmentOf(id.xlogPos, SEG), SEG);
        // The default status interval (10 s) is far longer than the test: any keepalive seen while
        // idle answers one of the stream's own pings.
        const s = rc.startReplication({ start, timeline: id.timeline, receiveTimeoutMs: TIMEOUT_MS });
        const d = drain(s);
        let outcome: Awaited<typeof d.done> | null = null;
        void d.done.then((o) => (outcome = o));
        // Idle for well over the timeout: the pings at half of it are answered, nothing ends.
        await delay(3 * TIMEOUT_MS);
        assert.equal(outcome, null, `the stream ended on a healthy connection: ${String((outcome as { error?: unknown } | null)?.error)}`);
        const keepalives = d.messages.filter((m) => m.type === 'keepalive').length;
        assert.ok(keepalives >= 2, `${keepalives} keepalives in ${3 * TIMEOUT_MS} ms of idle streaming: the pings were answered`);

        assert.ok(proxy.stall() >= 1, 'the connection stalled');
        const stalledAt = Date.now();
        // Generous bound: the timeout is 2 s; only "it ends, and not never" is asserted.
        const r = await Promise.race([d.done, delay(30_000).then(() => null)]);
        assert.ok(r !== null, 'the stream noticed the stalled connection within 30 s');
        assert.ok('error' in r, 'the stream ended with an error, not cleanly');
        const err = r.error;
        assert.ok(err instanceof ReplicationError, String(err));
        assert.equal(err.kind, 'connection');
        assert.match(err.message, /no message from the server for 2 s \(wal_receiver_timeout\): connection presumed dead/);
        await assert.rejects(s.ended, (e: unknown) => e === err);
        // The connection is gone for good: no command may wait on it.
        await assert.rejects(rc.identifySystem(), (e: unknown) => e instanceof ReplicationError && e.kind === 'connection');
        console.log(`PG${version}: stalled connection noticed after ${Date.now() - stalledAt} ms (receiveTimeoutMs ${TIMEOUT_MS})`);
      } finally {
        rc.destroy();
        await proxy.close();
      }
    });

    test(`PG${version}: commandTimeoutMs: a command on a stalled connection fails, and so does every later one`, async () => {
      const c = cluster();
      const proxy = await TcpProxy.start({ host: c.host, port: c.port });
      const rc = await ReplicationClient.connect({ ...repl(c, proxy.port), applicationName: 'cmd_silence', commandTimeoutMs: 1500 });
      try {
        assert.equal((await rc.identifySystem()).systemId.length > 0, true, 'a healthy connection answers');
        assert.ok(proxy.stall() >= 1, 'the connection stalled');
        const t0 = Date.now();
        const outcome = await Promise.race([rc.identifySystem().then(() => 'answered', (e: unknown) => e), delay(30_000).then(() => 'waited')]);
        assert.ok(outcome instanceof ReplicationError, `IDENTIFY_SYSTEM on a stalled connection: ${String(outcome)}`);
        assert.equal(outcome.kind, 'connection');
        assert.match(outcome.message, /no answer to IDENTIFY_SYSTEM for 1\.5 s: connection presumed dead/);
        await assert.rejects(rc.show('wal_segment_size'), (e: unknown) => e === outcome);
        console.log(`PG${version}: stalled command failed after ${Date.now() - t0} ms (commandTimeoutMs 1500)`);
      } finally {
        rc.destroy();
        await proxy.close();
      }
    });

    test(`PG${version}: a consumer that holds backpressure longer than the timeout is not timed out`, async () => {
      const c = cluster();
      const rc = await ReplicationClient.connect({ ...repl(c), applicationName: 'slow_consumer' });
      try {
        const id = await rc.identifySystem();
        const start = segmentStart(segmentOf(id.xlogPos, SEG), SEG);
        // A backlog far larger than the queue: the server has more to send the whole time.
        await generateLoad(c, { rows: 150_000, batches: 3, payloadBytes: 200 });
        const hwm = 256 << 10;
        const s = rc.startReplication({ start, timeline: id.timeline, highWaterMark: hwm, statusIntervalMs: 500, receiveTimeoutMs: TIMEOUT_MS });
        const first = await s.next();
        assert.ok(first && first.type === 'xlogdata');
        // The consumer sits on one chunk for 1.5 timeouts and more: the queue fills, the socket is
        // paused, nothing is read. The bytes taken in must stop growing (the pause), and the
        // stream must not call that silence.
        await delay(500);
        const early = s.reported.write;
        await delay(1.5 * TIMEOUT_MS + 500);
        assert.equal(s.reported.write, early, 'nothing was read while the consumer held the chunk (the socket was paused)');
        const behind = await sentLsn(c, 'slow_consumer');
        // Consuming again: the stream goes on, contiguous, well past what the server had sent
        // while we were paused.
        let pos = first.walStart + BigInt(first.data.length);
        const target = start + 8n * BigInt(hwm);
        for (;;) {
          const m = await s.next();
          assert.ok(m, 'the stream ended early');
          if (m.type !== 'xlogdata') continue;
          assert.equal(m.walStart, pos);
          pos += BigInt(m.data.length);
          if (pos >= target && behind !== null && pos > behind) break;
        }
        const end = await s.stop();
        assert.equal(end.reason, 'stopped');
      } finally {
        await rc.close();
      }
    });

    test(`PG${version}: base backup: a stall mid-copy fails it; a handler holding a member longer than the timeout does not`, async () => {
      const c = cluster();
      // A handler that sits on one member for 1.5 timeouts: the socket is paused, not silent.
      const rc1 = await ReplicationClient.connect({ ...repl(c), applicationName: 'bb_slow' });
      try {
        let held = false;
        const r = await rc1.baseBackup({ label: 'slow handler', fastCheckpoint: true, receiveTimeoutMs: TIMEOUT_MS }, {
          onMember: (e) => {
            if (held || e.type !== 'file' || e.size === 0) return null;
            held = true;
            return delay(1.5 * TIMEOUT_MS).then(() => null);
          },
        });
        assert.ok(held && r.bytes > 0, 'the backup completed after the long hold');
      } finally {
        await rc1.close();
      }

      const proxy = await TcpProxy.start({ host: c.host, port: c.port });
      const rc = await ReplicationClient.connect({ ...repl(c, proxy.port), applicationName: 'bb_stall' });
      try {
        let stalled = false;
        const t0 = Date.now();
        const outcome = await Promise.race([
          rc.baseBackup({ label: 'stalled', fastCheckpoint: true, receiveTimeoutMs: TIMEOUT_MS }, {
            onMember: (e) => {
              if (!stalled && e.type === 'file') {
                stalled = true;
                assert.ok(proxy.stall() >= 1);
              }
              return null;
            },
          }).then(() => 'completed', (e: unknown) => e),
          delay(30_000).then(() => 'waited'),
        ]);
        assert.ok(stalled, 'the proxy was stalled mid-copy');
        assert.ok(outcome instanceof ReplicationError, `a stalled base backup: ${String(outcome)}`);
        assert.equal(outcome.kind, 'connection');
        assert.match(outcome.message, /no data from the server for 2 s during the base backup copy: connection presumed dead/);
        console.log(`PG${version}: stalled base backup failed after ${Date.now() - t0} ms (receiveTimeoutMs ${TIMEOUT_MS})`);
      } finally {
        rc.destroy();
        await proxy.close();
      }
    });
  });
});
