/*
 * The network between barmants and PostgreSQL fails: a TCP proxy in this process sits between
 * them (streaming_conninfo points at it) and resets the connections on demand, or refuses new
 * ones for a while (the server unreachable). The real `receive-wal` CLI must reconnect with
 * growing backoff and end with an archive that has no gap and is byte-identical to the server's
 * pg_wal; a backup whose connection is cut must end FAILED, cleanly, and the retry be DONE.
 * Last, the proxy stalls (stops forwarding without closing: a half-open connection): the receiver
 * must notice the silence (wal_receiver_timeout), reconnect, wait out the server's hold on the
 * slot, and stream again without a gap.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { generateLoad, useCluster } from '../harness/index.js';
import { barmants, waitFor, writeTestConfig, type TestConfig } from '../helpers/config.js';
import { Catalog } from '../../packages/barmants/src/catalog/index.js';
import { loadConfig } from '../../packages/barmants/src/config/index.js';
import { createLogger } from '../../packages/barmants/src/log/index.js';
import { catalogPath, ServerLayout } from '../../packages/barmants/src/repository/index.js';
import { compareWithServer, writeAndSwitch, type WalEnv } from '../integration/wal/helpers.js';
import { faultVersion, repositoryState, startCliChild, TcpProxy, withCatalog, type CliChild } from './helpers.js';

const version = faultVersion(14);
const CUTS = 2;
/** Bytes the server sends through the proxy between two cuts: each cut falls mid-stream. */
const BYTES_BETWEEN_CUTS = 1_500_000;
const REFUSED_ATTEMPTS = 2;
/** The receiver's wal_receiver_timeout here, and the server's wal_sender_timeout in the stall test. */
const RECEIVER_TIMEOUT_S = 3;
const SENDER_TIMEOUT_S = 10;

/** Read-only view of the repository for compareWithServer. */
function walEnvOf(cfg: TestConfig): WalEnv {
  const server = loadConfig({ path: cfg.path }).servers.get(cfg.server)!;
  const catalog = Catalog.open(catalogPath(cfg.home), { readonly: true });
  const logger = createLogger({ level: 'ERROR' });
  return {
    home: cfg.home, configPath: cfg.path, server, layout: new ServerLayout(cfg.home, cfg.server), catalog, logger,
    async cleanup() {
      catalog.close();
      await logger.close();
    },
  };
}

/** Throws with the end of its log when the receive-wal child has exited. */
function assertAlive(rx: CliChild): void {
  if (rx.child.exitCode !== null || rx.child.signalCode !== null) throw new Error(`receive-wal exited:\n${rx.stderr().slice(-3000)}`);
}

/** Writes WAL, switches, waits until that segment is archived, then stops the receiver cleanly; returns the segment. */
async function archiveAnotherAndStop(c: ReturnType<ReturnType<typeof useCluster>>, cfg: TestConfig, rx: CliChild): Promise<string> {
  await generateLoad(c, { rows: 2000 });
  const last = await writeAndSwitch(c);
  await waitFor(() => (assertAlive(rx), withCatalog(cfg, (cat) => cat.getWalSegment('pg', last) !== null)), `${last} archived`, 60_000);
  const stopped = await rx.stop();
  assert.equal(stopped.code, 0, rx.stderr().slice(-3000));
  return last;
}

/** `reconnecting in N ms` lines of the receiver's debug log, in order. */
function reconnectDelays(stderr: string): number[] {
  return [...stderr.matchAll(/reconnecting in (\d+) ms/g)].map((m) => Number(m[1]));
}

describe(`network cuts between barmants and PostgreSQL ${version}`, () => {
  const cluster = useCluster({ version, name: `faults-net${version}`, walSegmentSizeMB: 1, conf: ['wal_keep_size = 1024'] });
  let proxy: TcpProxy;
  let cfg: TestConfig;
  let receiver: CliChild | undefined;
  /** the delay the receiver logged after each mid-stream cut */
  const cutDelays: number[] = [];

  before(async () => {
    const c = cluster();
    proxy = await TcpProxy.start({ host: c.host, port: c.port });
    const viaProxy = c.conninfo({ user: c.replUser, password: c.replPassword }).replace(`port=${c.port}`, `port=${proxy.port}`);
    assert.ok(viaProxy.includes(`port=${proxy.port}`));
    cfg = await writeTestConfig(c, {
      options: {
        streaming_conninfo: viaProxy, streaming_archiver: 'on', slot_name: 'barmants_net', create_slot: 'auto', compression: 'gzip', wal_flush_interval: '100 ms',
        wal_receiver_timeout: `${RECEIVER_TIMEOUT_S} s`,
      },
    });
  });
  after(async () => {
    await receiver?.stop();
    await proxy?.close();
    await cfg?.cleanup();
  });

  test('the receiver resumes after each cut and after an outage: no gap, byte-identical segments', async () => {
    const c = cluster();
    // -d: the debug log names each reconnection delay.
    receiver = startCliChild(cfg, ['-d', 'receive-wal', 'pg']);
    const rx = receiver;
    const alive = (): void => assertAlive(rx);
    const streaming = async (): Promise<boolean> => {
      alive();
      const rows = await c.sql<{ state: string }>("SELECT state FROM pg_stat_replication WHERE application_name = 'barmants_receive_wal'");
      return rows[0]?.state === 'streaming' && proxy.open >= 1;
    };
    await waitFor(streaming, 'the receiver to stream through the proxy', 30_000);
    const first = await writeAndSwitch(c);
    await waitFor(() => (alive(), withCatalog(cfg, (cat) => cat.getWalSegment('pg', first) !== null)), `${first} archived`, 30_000);

    // An outage: the connection is reset and every new one too, until the receiver has tried a few times.
    const delaysBefore = reconnectDelays(rx.stderr()).length;
    proxy.refuse = true;
    const acceptedAtOutage = proxy.accepted;
    assert.ok(proxy.cut() >= 1, 'a live connection was cut');
    await waitFor(() => (alive(), proxy.accepted - acceptedAtOutage >= REFUSED_ATTEMPTS), `${REFUSED_ATTEMPTS} refused reconnection attempts`, 60_000);
    proxy.refuse = false;
    await waitFor(streaming, 'the receiver back after the outage', 60_000);
    // Capped exponential backoff with jitter in [0.5, 1]: the k-th consecutive retry waits at least base·2^k/2.
    const outage = reconnectDelays(rx.stderr()).slice(delaysBefore);
    assert.ok(outage.length >= REFUSED_ATTEMPTS + 1, `backoff delays logged: ${outage.join(', ')}`);
    for (let k = 1; k < outage.length; k++) assert.ok(outage[k]! >= 250 * 2 ** k, `retry ${k} waits longer: ${outage.join(', ')} ms`);

    // Cuts in the middle of the stream: each while a batch of load is being received.
    for (let i = 0; i < CUTS; i++) {
      const from = proxy.downstreamBytes;
      const load = generateLoad(c, { rows: 25_000, batches: 25, payloadBytes: 200 });
      await waitFor(() => (alive(), proxy.downstreamBytes - from >= BYTES_BETWEEN_CUTS), `WAL flowing before cut ${i + 1}`, 30_000, 10);
      const accepted = proxy.accepted;
      const delays = reconnectDelays(rx.stderr()).length;
      assert.ok(proxy.cut() >= 1, 'a live connection was cut');
      await load;
      await waitFor(async () => proxy.accepted > accepted && (await streaming()), `the receiver back after cut ${i + 1}`, 60_000);
      cutDelays.push(reconnectDelays(rx.stderr())[delays]!);
    }
    console.log(
      `network cuts, PostgreSQL ${version}: an outage of ${REFUSED_ATTEMPTS} refused attempts (backoff ${outage.join(', ')} ms), ` +
        `then ${CUTS} cuts mid-stream (reconnected after ${cutDelays.join(', ')} ms)`,
    );
    await archiveAnotherAndStop(c, cfg, rx);
    receiver = undefined;
    assert.ok((rx.stderr().match(/streaming interrupted/g) ?? []).length >= CUTS, 'each cut was seen as an interruption');

    const env = walEnvOf(cfg);
    try {
      const segs = env.catalog.listWalSegments('pg');
      assert.ok(segs.length >= 4, `${segs.length} segments archived`);
      assert.deepEqual(env.catalog.missingSegments('pg', segs[0]!.timeline, segs[0]!.segno, segs.at(-1)!.segno), [], 'no gap in the archive');
      const cmp = await compareWithServer(env, c);
      console.log(`network cuts: ${segs.length} segments archived (${segs[0]!.name} .. ${segs.at(-1)!.name}), ${cmp.compared} compared byte for byte with pg_wal, ${cmp.missingOnServer} already recycled by the server`);
      assert.ok(cmp.compared >= segs.length - 1, `compared ${cmp.compared} of ${segs.length}`);
    } finally {
      await env.cleanup();
    }
    const state = await repositoryState(cfg);
    assert.deepEqual(state.rowsWithoutFile, []);
    assert.deepEqual(state.filesWithoutRow, []);
    assert.deepEqual(await readdir(join(cfg.home, 'pg', 'errors')).catch(() => []), [], 'nothing set aside');
  });

  test('the reconnection backoff starts from its base again after a session that streamed', () => {
    // backoff(0) is at most the 500 ms base: a healthy stream cut once must not wait as after an outage.
    assert.equal(cutDelays.length, CUTS);
    for (const d of cutDelays) assert.ok(d <= 500, `reconnected after ${cutDelays.join(', ')} ms`);
  });

  test('a backup whose connection is cut ends FAILED, and the retry is DONE and verifies', async () => {
    const from = proxy.downstreamBytes;
    let finished: Awaited<ReturnType<typeof barmants>> | null = null;
    const backup = barmants(cfg, ['-f', 'json', 'backup', 'pg'], { timeoutMs: 120_000 }).then((r) => (finished = r));
    // The receiver is stopped: whatever flows through the proxy now is the base backup.
    await waitFor(() => {
      if (finished) throw new Error(`the backup ended before the cut (${finished.code}):\n${finished.stdout}${finished.stderr}`);
      return proxy.downstreamBytes - from >= 4_000_000;
    }, 'the backup copy under way', 60_000, 5);
    assert.ok(proxy.cut() >= 1);
    const r = await backup;
    assert.notEqual(r.code, 0, `the cut backup must fail:\n${r.stdout}`);
    const failed = withCatalog(cfg, (cat) => cat.listBackups('pg'));
    assert.equal(failed.length, 1);
    assert.equal(failed[0]!.status, 'FAILED', r.stderr);
    const retry = await barmants(cfg, ['-f', 'json', 'backup', 'pg', '--wal'], { timeoutMs: 120_000 });
    assert.equal(retry.code, 0, retry.stderr);
    const done = JSON.parse(retry.stdout).pg as { backup_id: string; status: string };
    assert.equal(done.status, 'DONE');
    const v = await barmants(cfg, ['verify-backup', 'pg', done.backup_id]);
    assert.equal(v.code, 0, v.stdout + v.stderr);
    const state = await repositoryState(cfg);
    assert.deepEqual(state.tmpFiles, [], 'no temporary file left by the cut backup');
    assert.deepEqual(state.dirsWithoutRow, []);
  });

  test('a stalled connection (packets silently dropped) is noticed and replaced', async () => {
    const c = cluster();
    // The walsender holds on for longer than the receiver waits: the receiver notices the silence
    // first (RECEIVER_TIMEOUT_S) and reconnects while the server still holds the slot for the dead
    // connection; it must retry until the walsender times out, not give up.
    await c.sql(`ALTER SYSTEM SET wal_sender_timeout = '${SENDER_TIMEOUT_S}s'`);
    await c.sql('SELECT pg_reload_conf()');
    const archivedBefore = withCatalog(cfg, (cat) => cat.listWalSegments('pg')).at(-1);
    assert.ok(archivedBefore, 'the earlier tests archived WAL');
    const rx = startCliChild(cfg, ['receive-wal', 'pg']);
    receiver = rx;
    const alive = (): void => assertAlive(rx);
    const walsender = async (): Promise<number | null> => {
      alive();
      const rows = await c.sql<{ pid: number }>("SELECT pid FROM pg_stat_replication WHERE application_name = 'barmants_receive_wal' AND state = 'streaming'");
      return rows.length === 1 && proxy.open >= 1 ? rows[0]!.pid : null;
    };
    const heartbeat = () => withCatalog(cfg, (cat) => cat.getHeartbeat('pg'));
    try {
      const stalledPid = await waitFor(walsender, 'the receiver to stream', 30_000);
      await waitFor(() => heartbeat()?.state === 'streaming', 'the heartbeat to say streaming', 10_000);
      const accepted = proxy.accepted;
      assert.ok(proxy.stall() >= 1);
      const stalledAt = Date.now();
      await waitFor(() => (alive(), proxy.accepted > accepted), 'the receiver to notice the stall and reconnect', 20_000, 100);
      const noticedAfter = Date.now() - stalledAt;
      await waitFor(
        () => (alive(), new RegExp(`WARNING.*streaming interrupted: .*no message from the server for ${RECEIVER_TIMEOUT_S} s \\(wal_receiver_timeout\\): connection presumed dead`).test(rx.stderr())),
        'the stall logged as an interruption', 10_000, 100,
      );
      // Until the server lets go of the slot (SENDER_TIMEOUT_S after the stall at the earliest),
      // the receiver retries, and its heartbeat says so.
      const hb = await waitFor(() => {
        alive();
        const h = heartbeat();
        return h?.state === 'retrying' && /replication slot 'barmants_net' is still in use/.test(h.message ?? '') ? h : null;
      }, 'the heartbeat to say retrying: the slot is still held for the dead connection', 20_000, 100);
      // Replaced: a new walsender streams to the receiver, the stalled one is gone.
      const pid = await waitFor(async () => {
        const p = await walsender();
        return p !== null && p !== stalledPid ? p : null;
      }, 'the receiver streaming again on a new connection', 60_000, 200);
      await waitFor(() => (alive(), heartbeat()?.state === 'streaming'), 'the heartbeat to say streaming again', 10_000);
      assert.match(rx.stderr(), /WARNING.*streaming interrupted: .*replication slot 'barmants_net' is still in use/);
      console.log(
        `stalled connection: noticed and a new connection tried after ${noticedAfter} ms (wal_receiver_timeout ${RECEIVER_TIMEOUT_S} s); ` +
          `heartbeat meanwhile: ${hb?.state} (${hb?.message}); streaming again on walsender ${pid} (was ${stalledPid}) after ${Date.now() - stalledAt} ms`,
      );
      // The archive goes on where it was, without a gap.
      const last = await archiveAnotherAndStop(c, cfg, rx);
      receiver = undefined;
      const env = walEnvOf(cfg);
      try {
        const upTo = env.catalog.getWalSegment('pg', last)!;
        assert.deepEqual(env.catalog.missingSegments('pg', upTo.timeline, archivedBefore.segno, upTo.segno), [], 'no gap in the archive across the stall');
        const cmp = await compareWithServer(env, c);
        assert.ok(cmp.names.includes(last), `${last} compared byte for byte with pg_wal`);
      } finally {
        await env.cleanup();
      }
      const state = await repositoryState(cfg);
      assert.deepEqual(state.rowsWithoutFile, []);
      assert.deepEqual(state.filesWithoutRow, []);
    } finally {
      await c.sql('ALTER SYSTEM RESET wal_sender_timeout');
      await c.sql('SELECT pg_reload_conf()');
      if (receiver) {
        proxy.cut();
        await rx.stop();
        receiver = undefined;
      }
    }
  });
});
