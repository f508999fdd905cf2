/*
 * `barmants daemon` as systemd runs it (built CLI, child process, one PostgreSQL version): the
 * supervised receiver archives WAL, a per-second backup_schedule takes backups that become DONE,
 * retention runs in the maintenance loop, SIGHUP with an invalid file keeps the daemon running,
 * SIGTERM exits 0 within shutdown_grace_period, and the WAL received before SIGTERM is durable:
 * after a restart there is no gap and the segments match the server's byte for byte.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { generateLoad, switchWal, useCluster, versionsUnderTest } from '../../harness/index.js';
import { waitFor, type TestConfig } from '../../helpers/config.js';
import { compareWithServer, startCli, type WalEnv } from '../wal/helpers.js';
import { openCatalog, writeDaemonConfig } from './helpers.js';
import { Catalog } from '../../../packages/barmants/src/catalog/index.js';
import { loadConfig } from '../../../packages/barmants/src/config/index.js';
import { parseWalFileName } from 'pg-replication';
import { ServerLayout } from '../../../packages/barmants/src/repository/index.js';

const version = versionsUnderTest().includes(16) ? 16 : versionsUnderTest()[0]!;
const GRACE_SEC = 20;

describe(`barmants daemon on PostgreSQL ${version}`, () => {
  const cluster = useCluster({ version, walSegmentSizeMB: 1, conf: ['wal_keep_size = 1024'] });
  let cfg: TestConfig;
  let catalog: Catalog;
  let layout: ServerLayout;
  let env: WalEnv;

  before(async () => {
    cfg = await writeDaemonConfig(cluster(), {
      schedule: '*/5 * * * * *',
      graceSec: GRACE_SEC,
      options: { compression: 'gzip', retention_policy: 'REDUNDANCY 2' },
    });
    const config = loadConfig({ path: cfg.path });
    layout = new ServerLayout(cfg.home, 'pg', config.servers.get('pg')!.backupDirectory);
    env = { server: config.servers.get('pg')!, layout, get catalog() { return catalog; } } as unknown as WalEnv;
  });
  after(async () => {
    catalog?.close();
    await cfg?.cleanup();
  });

  test('streams, backs up on schedule, survives a bad reload, stops cleanly and loses nothing', async () => {
    const c = cluster();
    const daemon = startCli(['-c', cfg.path, 'daemon']);
    try {
      await waitFor(() => /barmants daemon started/.test(daemon.stderr()), 'daemon start-up', 30_000);
      catalog = await openCatalog(cfg.home);
      await generateLoad(c, { rows: 5000, batches: 4, switches: 3 });
      await waitFor(() => catalog.countWalSegments('pg') >= 3, 'WAL archived by the daemon', 60_000);
      assert.equal(catalog.getWalSegment('pg', catalog.lastWalSegment('pg')!.name)!.compression, 'gzip');

      // Scheduled backups: several DONE, and REDUNDANCY 2 applied by the maintenance loop.
      await waitFor(() => catalog.listBackups('pg', { status: ['DONE'] }).length >= 2, 'two scheduled backups DONE', 90_000);
      await waitFor(() => /enforcing retention policy: removing backup/.test(daemon.stderr()), 'retention in the maintenance loop', 90_000);
      assert.ok(catalog.listBackups('pg', { status: ['DONE'] }).length <= 3, 'retention keeps the count near REDUNDANCY 2');
      assert.match(daemon.stderr(), /starting a scheduled backup/);

      // SIGHUP with an invalid file: logged, old configuration kept, still streaming.
      const good = await readFile(cfg.path, 'utf8');
      await writeFile(cfg.path, good + '\nretention_policy = FOREVER\n');
      daemon.child.kill('SIGHUP');
      await waitFor(() => /configuration reload failed, the previous configuration stays in force/.test(daemon.stderr()), 'reload refusal logged', 30_000);
      await writeFile(cfg.path, good);
      await generateLoad(c, { rows: 100 });
      const closed = await switchWal(c);
      await waitFor(() => catalog.getWalSegment('pg', closed) !== null, `${closed} archived after the bad reload`, 60_000);
      assert.equal(daemon.child.exitCode, null, 'daemon still running');

      // WAL in flight at SIGTERM: load without a switch, so the newest bytes sit in the .partial.
      await generateLoad(c, { rows: 3000, batches: 3 });
      const sent = (await c.sql<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn'))[0]!.lsn;
      await waitFor(() => {
        const hb = catalog.getHeartbeat('pg');
        return hb !== null && hb.flushedLsn !== null && hb.flushedLsn >= lsnOf(sent);
      }, `receiver flushed up to ${sent}`, 30_000);
      daemon.child.kill('SIGTERM');
      const code = await Promise.race([daemon.exited, new Promise<string>((r) => setTimeout(() => r('timeout'), (GRACE_SEC + 15) * 1000))]);
      assert.equal(code, 0, `daemon exit status after SIGTERM\n${daemon.stderr().slice(-3000)}`);
      assert.match(daemon.stderr(), /daemon stopped/);
      assert.equal(catalog.listBackups('pg', { status: ['STARTED'] }).length, 0, 'no backup left STARTED');
    } finally {
      if (daemon.child.exitCode === null) daemon.child.kill('SIGKILL');
    }

    // Restart: the in-flight segment completes, no gap, identical to the server's segments.
    const again = startCli(['-c', cfg.path, 'daemon']);
    try {
      // Wait for the handlers: a SIGTERM during module loading kills node by default. And write
      // WAL before switching: the last daemon may have ended on a backup's own switch, when
      // pg_switch_wal() is a no-op naming a segment that is already archived.
      await waitFor(() => /barmants daemon started/.test(again.stderr()), 'daemon restart', 30_000);
      await generateLoad(c, { rows: 100 });
      const closed = await switchWal(c);
      await waitFor(() => catalog.getWalSegment('pg', closed) !== null, `${closed} archived after the restart`, 60_000);
      const first = catalog.firstWalSegment('pg')!;
      const last = catalog.lastWalSegment('pg')!;
      const seg = 1 << 20;
      const a = parseWalFileName(first.name, seg);
      const b = parseWalFileName(last.name, seg);
      assert.deepEqual(catalog.missingSegments('pg', a.tli, a.segno, b.segno), [], 'no gap across the restart');
      const cmp = await compareWithServer(env, c);
      assert.ok(cmp.compared >= 1, 'segments compared with the server');
      again.child.kill('SIGTERM');
      assert.equal(await again.exited, 0, again.stderr().slice(-3000));
    } finally {
      if (again.child.exitCode === null) again.child.kill('SIGKILL');
    }
  });
});

function lsnOf(text: string): bigint {
  const [hi, lo] = text.split('/');
  return (BigInt(`0x${hi}`) << 32n) | BigInt(`0x${lo}`);
}
