/*
 * PostgreSQL SIGKILLed under load while barmants streams as its synchronous standby: every commit
 * the server acknowledged to a client must come back from the archive. Several clients commit
 * numbered rows and record each acknowledged one; the postmaster dies mid-load; the receiver
 * (the real `receive-wal` CLI) is stopped; `barmants recover` restores the backup plus the whole
 * archive (the `.partial` included) into a throwaway directory, which is started and counted.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { parseLsn, parseWalFileName, segmentStart } from '../../packages/pg-replication/src/index.js';
import { chownForCluster, startClusterFromDataDir, useCluster, type Cluster } from '../harness/index.js';
import { barmants, waitFor, writeTestConfig, type TestConfig } from '../helpers/config.js';
import { faultVersion, startCliChild, withCatalog, type CliChild } from './helpers.js';

const version = faultVersion(16);
const ARCHIVER = 'barmants_sync_faults';
const CLIENTS = 4;
const SEGMENT_MB = 1;
/** Acknowledged commits before the kill: enough to fill a few 1 MB segments. */
const ACKED_BEFORE_KILL = 1500;

interface Writer {
  acked: number[];
  /** pg_current_wal_insert_lsn() at each acknowledged INSERT: just before its commit record */
  lsns: bigint[];
  /** resolves with the error that ended the loop (undefined when stopped) */
  done: Promise<unknown>;
  finished: boolean;
}

/** One connection committing rows (id = client * 1e6 + seq) until it fails; acked = what COMMIT returned for. */
function startWriter(c: Cluster, client: number, stop: { now: boolean }): Writer {
  const acked: number[] = [];
  const lsns: bigint[] = [];
  const done = (async () => {
    const conn = new pg.Client({ ...c.sqlConfig(), connectionTimeoutMillis: 10_000 });
    conn.on('error', () => undefined); // the crash surfaces through the pending query
    await conn.connect();
    try {
      for (let seq = 1; !stop.now; seq++) {
        const id = client * 1_000_000 + seq;
        // Autocommit: the INSERT's completion is the COMMIT's acknowledgement.
        const r = await conn.query<{ lsn: string }>(
          'INSERT INTO acked (id, client, payload) VALUES ($1::bigint, $2::int, repeat(md5($1::text), 32)) RETURNING pg_current_wal_insert_lsn()::text AS lsn',
          [id, client],
        );
        acked.push(id);
        lsns.push(parseLsn(r.rows[0]!.lsn));
      }
    } finally {
      await conn.end().catch(() => undefined);
    }
  })();
  const w: Writer = { acked, lsns, finished: false, done: Promise.resolve() };
  w.done = done.then(
    () => undefined,
    (e: unknown) => e,
  ).finally(() => (w.finished = true));
  return w;
}

describe(`PostgreSQL ${version} SIGKILLed while barmants streams synchronously`, () => {
  const cluster = useCluster({ version, name: `faults-sync${version}`, walSegmentSizeMB: SEGMENT_MB, conf: ['wal_keep_size = 1024'] });
  let cfg: TestConfig;
  let receiver: CliChild | undefined;
  let restored: Cluster | undefined;
  let dest: string | undefined;

  before(async () => {
    cfg = await writeTestConfig(cluster(), {
      options: {
        streaming_archiver: 'on',
        streaming_archiver_name: ARCHIVER,
        slot_name: 'barmants_sync',
        create_slot: 'auto',
        wal_flush_interval: '100 ms',
      },
    });
  });
  after(async () => {
    await receiver?.stop();
    await restored?.destroy();
    if (dest) await rm(dest, { recursive: true, force: true });
    await cfg?.cleanup();
  });

  test('every acknowledged commit is in the cluster recovered from the archive', async () => {
    const c = cluster();
    await c.sql('CREATE TABLE acked (id bigint PRIMARY KEY, client int NOT NULL, payload text NOT NULL)');
    // Not in startCluster's conf: with no standby yet, the harness's own role setup would wait forever.
    await c.sql(`ALTER SYSTEM SET synchronous_standby_names = '${ARCHIVER}'`);
    await c.sql('SELECT pg_reload_conf()');

    receiver = startCliChild(cfg, ['receive-wal', 'pg']);
    const rx = receiver;
    await waitFor(async () => {
      if (rx.child.exitCode !== null) throw new Error(`receive-wal exited: ${rx.stderr()}`);
      const rows = await c.sql<{ sync_state: string }>('SELECT sync_state FROM pg_stat_replication WHERE application_name = $1', [ARCHIVER]);
      return rows[0]?.sync_state === 'sync';
    }, `${ARCHIVER} to stream as the synchronous standby`, 30_000);
    assert.match(rx.stderr(), /synchronous/, 'the receiver says it streams in synchronous mode');

    // The receiver archives the backup's WAL: --wait until it is DONE.
    const b = await barmants(cfg, ['-f', 'json', 'backup', 'pg', '--wait', '--wait-timeout', '60']);
    assert.equal(b.code, 0, b.stderr);
    const backup = JSON.parse(b.stdout).pg as { backup_id: string; status: string };
    assert.equal(backup.status, 'DONE');

    const stop = { now: false };
    const writers = Array.from({ length: CLIENTS }, (_, i) => startWriter(c, i + 1, stop));
    const ackedCount = (): number => writers.reduce((n, w) => n + w.acked.length, 0);
    await waitFor(async () => {
      const ended = writers.find((w) => w.finished);
      if (ended) throw new Error(`a client stopped before the kill: ${String(await ended.done)}`);
      return ackedCount() >= ACKED_BEFORE_KILL;
    }, `${ACKED_BEFORE_KILL} acknowledged commits`, 60_000, 20);
    const archivedBeforeKill = withCatalog(cfg, (cat) => cat.countWalSegments('pg'));

    // Mid-load: every client has a commit in flight.
    await c.kill();
    const errors = await Promise.all(writers.map((w) => w.done));
    stop.now = true;
    for (const e of errors) assert.ok(e instanceof Error, 'each client saw the crash');
    const acked = writers.flatMap((w) => w.acked);

    // The receiver retries the dead server; SIGTERM: it stops cleanly, the tail stays in streaming/.
    const stopped = await rx.stop();
    assert.equal(stopped.code, 0, rx.stderr());
    receiver = undefined;
    // The tail of the acknowledged WAL is only in the segment that was being received.
    const partials = (await readdir(join(cfg.home, 'pg', 'streaming'))).filter((n) => n.endsWith('.partial'));
    assert.equal(partials.length, 1, `one segment being received: ${partials.join(' ')}`);
    const segSize = SEGMENT_MB << 20;
    const partialStart = segmentStart(parseWalFileName(partials[0]!.slice(0, 24), segSize).segno, segSize);
    const inPartial = writers.flatMap((w) => w.lsns).filter((l) => l >= partialStart).length;

    dest = await mkdtemp(join(tmpdir(), 'barmants-faults-sync-restore-'));
    const r = await barmants(cfg, ['recover', 'pg', 'latest', dest, '--no-get-wal'], { timeoutMs: 120_000 });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout + r.stderr, /partial/, 'the segment being received when the server died is part of the recovery');
    await chownForCluster(dest);
    restored = await startClusterFromDataDir(dest, version, { waitRecoveryEnd: true, recoveryTimeoutMs: 60_000, name: `faults-sync${version}-restored` });
    const rows = await restored.sql<{ id: string }>('SELECT id::text AS id FROM acked');
    const present = new Set(rows.map((x) => Number(x.id)));
    const lost = acked.filter((id) => !present.has(id));
    console.log(
      `synchronous mode, PostgreSQL ${version}: ${acked.length} commits acknowledged by ${CLIENTS} clients before SIGKILL, ` +
        `${acked.length - lost.length} present after recover (${rows.length} rows recovered, ` +
        `${rows.length - (acked.length - lost.length)} committed but never acknowledged); ` +
        `${inPartial} of the acknowledged commits only in ${partials[0]}, ${archivedBeforeKill} segment(s) archived before the kill`,
    );
    assert.deepEqual(lost.slice(0, 20), [], `${lost.length} acknowledged commit(s) lost`);
    assert.ok(acked.length >= ACKED_BEFORE_KILL);
  });
});
