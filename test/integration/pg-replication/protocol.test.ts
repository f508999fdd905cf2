/*
 * pg-replication against real servers, every major in BARMANTS_TEST_PG_VERSIONS: identify system,
 * SHOW, slots, history, and the typed errors of bad input (auth, permissions, unknown slot, a
 * connection killed mid-stream); a consumer's own error ends a base backup as itself. No process
 * may be left hanging.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import pg from 'pg';
import { ReplicationClient, ReplicationError, parseConninfo, maskConninfo, buildBaseBackupCommand } from '../../../packages/pg-replication/src/index.js';
import { useCluster, versionsUnderTest } from '../../harness/index.js';

describe('pg-replication protocol', { concurrency: true }, () => {
  for (const version of versionsUnderTest()) {
    describe(`PostgreSQL ${version}`, () => {
      // wal_keep_size: the tests run concurrently on this cluster, and the base backup's checkpoint
      // must not remove the segment another test streams from.
      const cluster = useCluster({ version, name: `proto${version}`, conf: ['wal_keep_size = 256'] });
      const repl = () => ({ host: cluster().host, port: cluster().port, user: cluster().replUser, password: cluster().replPassword });

      test('identify system, server version, SHOW', async () => {
        const rc = await ReplicationClient.connect(repl());
        try {
          assert.equal(rc.majorVersion, version);
          const id = await rc.identifySystem();
          assert.equal(id.systemId, await cluster().systemIdentifier());
          assert.equal(id.timeline, 1);
          assert.ok(id.xlogPos > 0n);
          assert.equal(await rc.walSegmentSize(), 16 * 1024 * 1024);
          assert.equal(await rc.show('wal_level'), 'replica');
        } finally {
          await rc.close();
        }
      });

      test('physical slot create, read, drop', async () => {
        const rc = await ReplicationClient.connect(repl());
        try {
          const slot = `t_slot_${version}`;
          const created = await rc.createPhysicalSlot(slot, { reserveWal: true });
          assert.equal(created.slotName, slot);
          const rows = await cluster().sql<{ restart_lsn: string | null }>('SELECT restart_lsn::text FROM pg_replication_slots WHERE slot_name = $1', [slot]);
          assert.equal(rows.length, 1);
          assert.ok(rows[0]!.restart_lsn, 'RESERVE_WAL sets restart_lsn');
          if (version >= 15) {
            const info = await rc.readSlot(slot);
            assert.equal(info?.slotType, 'physical');
            assert.ok(info?.restartLsn);
            assert.equal(await rc.readSlot('no_such_slot'), null);
          } else {
            await assert.rejects(rc.readSlot(slot), (e: ReplicationError) => e.kind === 'server' && /PostgreSQL 15/.test(e.message));
          }
          await assert.rejects(rc.createPhysicalSlot(slot), (e: ReplicationError) => e.kind === 'server' && e.code === '42710');
          await rc.dropSlot(slot);
          await assert.rejects(rc.dropSlot(slot), (e: ReplicationError) => e.kind === 'server' && e.code === '42704');
          await assert.rejects(rc.createPhysicalSlot('Bad-Name'), TypeError);
        } finally {
          await rc.close();
        }
      });

      test('timeline history of timeline 1 does not exist', async () => {
        const rc = await ReplicationClient.connect(repl());
        try {
          await assert.rejects(rc.timelineHistory(1), (e: ReplicationError) => e.kind === 'server' && e.code === '58P01');
          // The connection stays usable after a refused command.
          assert.equal((await rc.identifySystem()).timeline, 1);
        } finally {
          await rc.close();
        }
      });

      test('wrong password is a typed server error', async () => {
        await assert.rejects(ReplicationClient.connect({ ...repl(), password: 'wrong' }), (e: ReplicationError) => e.kind === 'server' && e.code === '28P01');
      });

      test('a role without REPLICATION is refused', async () => {
        await cluster().sql(`DO $$ BEGIN CREATE ROLE norepl LOGIN PASSWORD 'norepl'; EXCEPTION WHEN duplicate_object THEN NULL; END $$`);
        await assert.rejects(
          ReplicationClient.connect({ host: cluster().host, port: cluster().port, user: 'norepl', password: 'norepl' }),
          (e: ReplicationError) => e.kind === 'server' && (e.code === '42501' || e.code === '28000'),
        );
      });

      test('START_REPLICATION on an unknown slot, and ahead of the server', async () => {
        const rc = await ReplicationClient.connect(repl());
        try {
          const id = await rc.identifySystem();
          const s = rc.startReplication({ slot: 'missing_slot', start: 0n, timeline: 1 });
          await assert.rejects(s.next(), (e: ReplicationError) => e.kind === 'server' && e.code === '42704');
          const ahead = rc.startReplication({ start: id.xlogPos + (1n << 32n), timeline: 1 });
          await assert.rejects(ahead.next(), (e: ReplicationError) => e.kind === 'server');
        } finally {
          await rc.close();
        }
      });

      test('connection killed mid-stream ends the iterator with a connection error', async () => {
        const rc = await ReplicationClient.connect({ ...repl(), applicationName: 'kill_me' });
        try {
          const id = await rc.identifySystem();
          const s = rc.startReplication({ start: id.xlogPos - (id.xlogPos % (16n << 20n)), timeline: id.timeline });
          const first = await s.next();
          assert.ok(first);
          await cluster().sql(`SELECT pg_terminate_backend(pid) FROM pg_stat_replication WHERE application_name = 'kill_me'`);
          await assert.rejects(
            (async () => {
              for (;;) if ((await s.next()) === null) throw new Error('ended without error');
            })(),
            (e: ReplicationError) => e instanceof ReplicationError && e.kind === 'connection',
          );
        } finally {
          await rc.close();
        }
      });

      test('a handler that throws ends the base backup with its own error, and the server lets go', async () => {
        const rc = await ReplicationClient.connect({ ...repl(), applicationName: 'handler_fails' });
        const disk = Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
        let chunks = 0;
        try {
          await assert.rejects(
            rc.baseBackup({ label: 'handler fails', fastCheckpoint: true }, {
              onMember: (e) => (e.type === 'file' && e.size > 0 ? { data: () => { chunks++; throw disk; }, end: () => undefined } : null),
            }),
            (e: unknown) => e === disk,
          );
          assert.equal(chunks, 1, 'no data after the handler failed');
        } finally {
          await rc.close();
        }
        // The walsender of the abandoned backup goes away (no backup left "in progress" on the server).
        for (let i = 0; i < 100; i++) {
          const n = await cluster().sql<{ n: string }>(`SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = 'handler_fails'`);
          if (Number(n[0]!.n) === 0) return;
          await new Promise((r) => setTimeout(r, 100));
        }
        assert.fail('the walsender of the failed backup is still there after 10 s');
      });
    });
  }
});

describe('connection strings and commands (no server)', () => {
  test('conninfo parsing and masking', () => {
    assert.deepEqual(parseConninfo("host=db1 port=5433 user=bob password='s e\\'cret' dbname=x"), {
      host: 'db1',
      port: '5433',
      user: 'bob',
      password: "s e'cret",
      dbname: 'x',
    });
    assert.deepEqual(parseConninfo('postgresql://bob:p%40ss@db1:5433/app?sslmode=require'), {
      host: 'db1',
      port: '5433',
      user: 'bob',
      password: 'p@ss',
      dbname: 'app',
      sslmode: 'require',
    });
    assert.equal(maskConninfo('host=a password=secret'), 'host=a password=********');
    assert.throws(() => parseConninfo('host'), /missing "=" after "host"/);
  });

  test('BASE_BACKUP syntax per version, labels quoted', () => {
    assert.equal(
      buildBaseBackupCommand(140010, { label: "it's", fastCheckpoint: true, maxRateKbps: 1024 }),
      "BASE_BACKUP LABEL 'it''s' PROGRESS FAST NOWAIT MAX_RATE 1024 TABLESPACE_MAP MANIFEST 'yes' MANIFEST_CHECKSUMS 'CRC32C'",
    );
    assert.equal(
      buildBaseBackupCommand(150000, { label: 'x' }),
      "BASE_BACKUP (LABEL 'x', PROGRESS, CHECKPOINT 'spread', WAIT false, TABLESPACE_MAP, MANIFEST 'yes', MANIFEST_CHECKSUMS 'CRC32C')",
    );
    assert.throws(() => buildBaseBackupCommand(150000, { label: 'x', maxRateKbps: 1 }), /between 32 and 1048576/);
  });

  test('a port where nothing listens is a connection error', async () => {
    const srv = await import('node:net').then((n) => n.createServer());
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    const port = (srv.address() as { port: number }).port;
    await new Promise((r) => srv.close(r));
    await assert.rejects(ReplicationClient.connect({ host: '127.0.0.1', port, user: 'x', password: 'x' }), (e: ReplicationError) => e.kind === 'connection');
    void pg;
  });
});
