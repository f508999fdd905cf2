/*
 * The WAL commands as an operator runs them (built CLI, one PostgreSQL version): receive-wal
 * killed with SIGKILL mid-segment and restarted loses and duplicates nothing; --stop;
 * switch-wal --force --archive; get-wal as a restore_command; check-wal-archive;
 * replication-status; synchronous mode holds commits while the receiver is paused.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import pg from 'pg';
import { generateLoad, startBackgroundLoad, useCluster, versionsUnderTest } from '../../harness/index.js';
import { Catalog } from '../../../packages/barmants/src/catalog/index.js';
import { archiveSegment } from '../../../packages/barmants/src/wal/index.js';
import { catalogPath } from '../../../packages/barmants/src/repository/index.js';
import { writeAndSwitch, compareWithServer, runCli, startCli, waitFor, walEnv, type WalEnv } from './helpers.js';

const version = versionsUnderTest().includes(15) ? 15 : versionsUnderTest()[0]!;

describe(`WAL commands on PostgreSQL ${version}`, () => {
  const cluster = useCluster({ version, walSegmentSizeMB: 1, conf: ['wal_keep_size = 1024'] });
  let env: WalEnv;
  before(async () => {
    env = await walEnv(cluster(), { compression: 'zstd' });
  });
  after(async () => {
    await env?.cleanup();
  });

  test('check-wal-archive passes on an empty archive', async () => {
    const r = await runCli(['-c', env.configPath, 'check-wal-archive', 'pg']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout.toString(), /passed/);
  });

  test('receive-wal killed with SIGKILL mid-segment resumes without loss or duplicate', async () => {
    const c = cluster();
    const first = startCli(['-c', env.configPath, 'receive-wal', 'pg']);
    const load = startBackgroundLoad(c, { rowsPerTx: 50, switchEveryMs: 700 });
    try {
      await waitFor('3 archived segments', () => env.catalog.countWalSegments('pg') >= 3, 60_000);
      // Kill while a partial holds some data: mid-segment.
      await waitFor('a partial segment in progress', async () => {
        const hb = env.catalog.getHeartbeat('pg');
        const partials = (await readdir(env.layout.streamingDir)).filter((n) => n.endsWith('.partial'));
        return partials.length > 0 && hb !== null && hb.receivedLsn !== null && hb.receivedLsn % (1n << 20n) > 0n;
      });
      first.child.kill('SIGKILL');
      await first.exited;
      const atKill = env.catalog.countWalSegments('pg');
      // Load continues while nothing receives.
      await generateLoad(c, { rows: 20_000, batches: 4, switches: 2 });
      const second = startCli(['-c', env.configPath, 'receive-wal', 'pg']);
      const last = await writeAndSwitch(c);
      await waitFor(`${last} archived after restart`, () => env.catalog.getWalSegment('pg', last) !== null, 60_000);
      assert.ok(env.catalog.countWalSegments('pg') > atKill);
      const stop = await runCli(['-c', env.configPath, 'receive-wal', '--stop', 'pg']);
      assert.equal(stop.code, 0, stop.stderr);
      assert.equal(await second.exited, 0, second.stderr());
    } finally {
      await load.stop().catch(() => undefined);
      first.child.kill('SIGKILL');
    }
    const segs = env.catalog.listWalSegments('pg');
    assert.deepEqual(env.catalog.missingSegments('pg', 1, segs[0]!.segno, segs[segs.length - 1]!.segno), []);
    const cmp = await compareWithServer(env, c);
    assert.ok(cmp.compared >= 5);
    assert.deepEqual(await readdir(env.layout.errorsDir), [], 'nothing set aside as duplicate');
  });

  test('check-wal-archive fails once the archive holds WAL', async () => {
    const r = await runCli(['-c', env.configPath, 'check-wal-archive', 'pg']);
    assert.equal(r.code, 1);
    assert.match(r.stdout.toString(), /failed/);
  });

  test('switch-wal --force --archive returns once the segment is archived (receiver running)', async () => {
    const c = cluster();
    const rx = startCli(['-c', env.configPath, 'receive-wal', 'pg']);
    try {
      await c.sql('CREATE TABLE IF NOT EXISTS t_switch (x int)');
      await c.sql('INSERT INTO t_switch SELECT generate_series(1, 100)');
      const r = await runCli(['-c', env.configPath, '-f', 'json', 'switch-wal', '--force', '--archive', 'pg']);
      assert.equal(r.code, 0, r.stderr);
      const out = JSON.parse(r.stdout.toString()) as { walfile: string; archived: boolean; switched: boolean };
      assert.equal(out.archived, true);
      assert.equal(out.switched, true);
      // Archived at the moment the command returned: read through a fresh catalog handle.
      const cat = Catalog.open(catalogPath(env.home), { readonly: true });
      try {
        assert.ok(cat.getWalSegment('pg', out.walfile));
      } finally {
        cat.close();
      }
    } finally {
      rx.child.kill('SIGTERM');
      assert.equal(await rx.exited, 0, rx.stderr());
    }
  });

  test('switch-wal --archive without a running receiver fetches the segment itself', async () => {
    const c = cluster();
    await c.sql('INSERT INTO t_switch SELECT generate_series(1, 100)');
    const r = await runCli(['-c', env.configPath, '-f', 'json', 'switch-wal', '--archive', '--archive-timeout', '60', 'pg']);
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout.toString()) as { walfile: string; archived: boolean };
    assert.equal(out.archived, true);
    assert.ok(env.catalog.getWalSegment('pg', out.walfile));
  });

  test('get-wal writes the decompressed segment to stdout and to a directory; exit 1 when absent', async () => {
    const c = cluster();
    const rec = env.catalog.lastWalSegment('pg')!;
    const theirs = await readFile(join(c.dataDir, 'pg_wal', rec.name));
    const r = await runCli(['-c', env.configPath, 'get-wal', 'pg', rec.name]);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(r.stdout.equals(theirs));
    const dir = join(env.home, 'restore-out');
    const r2 = await runCli(['-c', env.configPath, 'get-wal', '-o', dir, 'pg', rec.name]);
    assert.equal(r2.code, 0, r2.stderr);
    assert.ok((await readFile(join(dir, rec.name))).equals(theirs));
    const missing = await runCli(['-c', env.configPath, 'get-wal', 'pg', 'FFFFFFFF0000000000000001']);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /not found/);
    // The partial (segment being received) is only served with -P.
    const rx = startCli(['-c', env.configPath, 'receive-wal', 'pg']);
    try {
      await c.sql('INSERT INTO t_switch SELECT generate_series(1, 100)');
      const partial = await waitFor('a partial', async () => (await readdir(env.layout.streamingDir)).find((n) => n.endsWith('.partial')));
      const seg = partial!.slice(0, 24);
      assert.equal((await runCli(['-c', env.configPath, 'get-wal', 'pg', seg])).code, 1);
      const p = await runCli(['-c', env.configPath, 'get-wal', '-P', 'pg', seg]);
      assert.equal(p.code, 0, p.stderr);
      assert.equal(p.stdout.length, 1 << 20);
    } finally {
      rx.child.kill('SIGTERM');
      assert.equal(await rx.exited, 0, rx.stderr());
    }
  });

  test('get-wal round-trips every compression', async () => {
    const c = cluster();
    const rec = env.catalog.lastWalSegment('pg')!;
    const serverCopy = join(c.dataDir, 'pg_wal', rec.name);
    const theirs = await readFile(serverCopy);
    for (const codec of ['none', 'gzip', 'lz4', 'zstd'] as const) {
      const other = await walEnv(c, { compression: codec });
      try {
        other.catalog.upsertServer({ name: 'pg', systemId: null, pgVersion: null, walSegmentSize: 1 << 20 });
        const a = await archiveSegment({ layout: other.layout, catalog: other.catalog, name: rec.name, segSize: 1 << 20, sourcePath: serverCopy, codec });
        assert.equal(a.outcome, 'added');
        assert.equal((await archiveSegment({ layout: other.layout, catalog: other.catalog, name: rec.name, segSize: 1 << 20, sourcePath: serverCopy, codec })).outcome, 'exists');
        const r = await runCli(['-c', other.configPath, 'get-wal', 'pg', rec.name]);
        assert.equal(r.code, 0, r.stderr);
        assert.ok(r.stdout.equals(theirs), `${codec} round trip`);
      } finally {
        await other.cleanup();
      }
    }
  });

  test('replication-status lists the receiver with its lag', async () => {
    const rx = startCli(['-c', env.configPath, 'receive-wal', 'pg']);
    try {
      await waitFor('receiver connected', async () => {
        const rows = await cluster().sql("SELECT 1 FROM pg_stat_replication WHERE application_name = 'barmants_receive_wal' AND state = 'streaming'");
        return rows.length === 1;
      });
      const r = await runCli(['-c', env.configPath, '-f', 'json', 'replication-status', 'pg']);
      assert.equal(r.code, 0, r.stderr);
      const out = JSON.parse(r.stdout.toString()) as { currentLsn: string; clients: { applicationName: string; flushLagBytes: number | null }[] };
      assert.match(out.currentLsn, /^[0-9A-F]+\/[0-9A-F]+$/);
      const me = out.clients.find((x) => x.applicationName === 'barmants_receive_wal');
      assert.ok(me);
      assert.equal(typeof me.flushLagBytes, 'number');
      const text = await runCli(['-c', env.configPath, 'replication-status', 'pg']);
      assert.match(text.stdout.toString(), /barmants_receive_wal/);
    } finally {
      rx.child.kill('SIGTERM');
      assert.equal(await rx.exited, 0, rx.stderr());
    }
  });

  test('synchronous mode: a commit waits while the receiver is paused, completes after', async () => {
    const c = cluster();
    await c.sql("ALTER SYSTEM SET synchronous_standby_names = 'barmants_receive_wal'");
    await c.sql('SELECT pg_reload_conf()');
    const rx = startCli(['-c', env.configPath, 'receive-wal', 'pg']);
    const client = new pg.Client(c.sqlConfig());
    client.on('error', () => undefined);
    try {
      await waitFor('receiver is the synchronous standby', async () => {
        const rows = await c.sql("SELECT sync_state FROM pg_stat_replication WHERE application_name = 'barmants_receive_wal'");
        return rows[0]?.sync_state === 'sync';
      });
      await c.sql('CREATE TABLE IF NOT EXISTS t_sync (x int)'); // commits: the receiver acknowledges
      await client.connect();
      const pid = (await client.query('SELECT pg_backend_pid() AS p')).rows[0].p as number;
      rx.child.kill('SIGSTOP');
      let committed = false;
      const insert = client.query('INSERT INTO t_sync VALUES (1)').then(() => (committed = true));
      await waitFor('the commit waiting for the synchronous standby', async () => {
        const rows = await c.sql('SELECT wait_event FROM pg_stat_activity WHERE pid = $1', [pid]);
        return rows[0]?.wait_event === 'SyncRep';
      });
      assert.equal(committed, false);
      rx.child.kill('SIGCONT');
      await insert;
      assert.equal(committed, true);
    } finally {
      rx.child.kill('SIGCONT');
      await c.sql('ALTER SYSTEM RESET synchronous_standby_names');
      await c.sql('SELECT pg_reload_conf()');
      await client.end().catch(() => undefined);
      rx.child.kill('SIGTERM');
      assert.equal(await rx.exited, 0, rx.stderr());
    }
  });

  test('receive-wal --drop-slot and --create-slot', async () => {
    const drop = await runCli(['-c', env.configPath, 'receive-wal', '--drop-slot', 'pg']);
    assert.equal(drop.code, 0, drop.stderr);
    assert.equal((await cluster().sql("SELECT 1 FROM pg_replication_slots WHERE slot_name = 'barmants'")).length, 0);
    const create = await runCli(['-c', env.configPath, 'receive-wal', '--create-slot', 'pg']);
    assert.equal(create.code, 0, create.stderr);
    const again = await runCli(['-c', env.configPath, 'receive-wal', '--create-slot', 'pg']);
    assert.notEqual(again.code, 0);
    const ifNot = await runCli(['-c', env.configPath, 'receive-wal', '--create-slot', '--if-not-exists', 'pg']);
    assert.equal(ifNot.code, 0, ifNot.stderr);
  });
});
