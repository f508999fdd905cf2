// check / check --nagios / status / diagnose against a real cluster (the last version under test),
// next to an unreachable server (connection refused) and a hung one (accepts TCP, never answers),
// through the CLI's main() in-process.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { Catalog } from '../../../packages/barmants/src/catalog/index.js';
import { main } from '../../../packages/barmants/src/cli/index.js';
import { useCluster, versionsUnderTest } from '../../harness/index.js';

const version = versionsUnderTest().at(-1)!;
const BIN = new URL('../../../packages/barmants/bin/barmants.js', import.meta.url).pathname;
const BUILT = existsSync(new URL('../../../packages/barmants/dist/cli/index.js', import.meta.url));

/** The installed CLI as Nagios runs it: a separate process, stdout and exit status. */
function spawnCli(args: string[]): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'ignore'] });
    let out = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.on('error', reject);
    p.on('close', (code) => resolve({ code, out }));
  });
}

function sink(): { stream: Writable; text: () => string } {
  const chunks: Buffer[] = [];
  return {
    stream: new Writable({ write(c, _e, cb) { chunks.push(Buffer.from(c)); cb(); } }),
    text: () => Buffer.concat(chunks).toString('utf8'),
  };
}

async function run(args: string[]): Promise<{ code: number; out: string; err: string }> {
  const out = sink();
  const err = sink();
  const code = await main(args, { stdout: out.stream, stderr: err.stream });
  return { code, out: out.text(), err: err.text() };
}

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((res) => s.listen(0, '127.0.0.1', res));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((res) => s.close(() => res()));
  return port;
}

/** Parses `\tname: STATUS (detail)` lines of one server's block. */
function checkLines(out: string, server: string): Map<string, string> {
  const lines = out.split('\n');
  const start = lines.indexOf(`Server ${server}:`);
  assert.ok(start >= 0, `no block for ${server} in:\n${out}`);
  const m = new Map<string, string>();
  for (const l of lines.slice(start + 1)) {
    if (!l.startsWith('\t')) break;
    const i = l.indexOf(': ');
    m.set(l.slice(1, i), l.slice(i + 2));
  }
  return m;
}

describe(`monitoring commands on PostgreSQL ${version}`, () => {
  const cluster = useCluster({ version, name: 'checks' });
  let dir: string;
  let conf: string;
  let hung: Server;
  const sockets: Socket[] = [];

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'barmants-checks-'));
    hung = createServer((s) => sockets.push(s));
    await new Promise<void>((res) => hung.listen(0, '127.0.0.1', res));
    const hungPort = (hung.address() as { port: number }).port;
    const c = cluster();
    conf = join(dir, 'barmants.conf');
    await writeFile(conf, [
      '[barmants]',
      `barmants_home = ${join(dir, 'home')}`,
      'log_level = WARNING',
      '',
      '[pg]',
      'description = the real one',
      `conninfo = ${c.conninfo()}`,
      'streaming_archiver = on',
      'slot_name = barmants',
      'last_backup_maximum_age = 1 day',
      'minimum_redundancy = 1',
      'retention_policy = REDUNDANCY 2',
      "backup_schedule = 0 2 * * *",
      '',
      '[faulty]',
      `conninfo = ${c.conninfo()}`,
      'last_backup_maximum_age = 1 day',
      '',
      '[down]',
      `conninfo = host=127.0.0.1 port=${await freePort()} user=postgres password=down-secret-4711 dbname=postgres`,
      'check_timeout = 5',
      '',
      '[hung]',
      `conninfo = host=127.0.0.1 port=${hungPort} user=postgres dbname=postgres`,
      'check_timeout = 2',
      '',
    ].join('\n'));
  });

  after(async () => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((res) => hung.close(() => res()));
    await rm(dir, { recursive: true, force: true });
  });

  test('check on a fresh server: what can pass passes, backup-related checks fail as in Barman', async () => {
    const r = await run(['-c', conf, 'check', 'pg']);
    assert.equal(r.code, 1, r.out + r.err);
    const m = checkLines(r.out, 'pg');
    for (const name of ['PostgreSQL', 'superuser or standard user with backup privileges', 'PostgreSQL streaming', 'wal_level', 'directories',
      'retention policy settings', 'backup minimum size', 'compression settings', 'failed backups', 'archiver errors', 'WAL continuity', 'free disk space']) {
      assert.match(m.get(name) ?? 'missing', /^OK/, `${name}: ${m.get(name)}`);
    }
    assert.match(m.get('PostgreSQL version supported')!, new RegExp(`^OK \\(${version}\\.\\d+\\)$`));
    assert.equal(m.get('systemid coherence'), 'OK (no system Id stored on disk)');
    assert.equal(m.get('backup maximum age'), 'FAILED (interval provided: 1 day, latest backup age: No available backups)');
    assert.equal(m.get('minimum redundancy requirements'), 'FAILED (have 0 non-incremental backups, expected at least 1)');
    assert.equal(m.get('replication slot'), "FAILED (replication slot 'barmants' doesn't exist. Please execute 'barmants receive-wal --create-slot pg')");
    assert.match(m.get('receive-wal running')!, /^FAILED \(no receive-wal process/);
    assert.equal(m.get('wal maximum age'), 'OK (no last_wal_maximum_age provided)');
  });

  test('check all: unreachable and hung servers fail within their check_timeout, the real one is unaffected', async () => {
    const t0 = Date.now();
    const r = await run(['-c', conf, '-f', 'json', 'check', 'all']);
    const elapsed = (Date.now() - t0) / 1000;
    assert.equal(r.code, 1);
    // the hung server has check_timeout = 2; the margin is for cluster queries and slow CI machines
    assert.ok(elapsed < 2 + 20, `check all took ${elapsed}s`);
    const j = JSON.parse(r.out);
    assert.equal(j.pg.postgresql.status, 'OK');
    assert.equal(j.pg.postgresql_streaming.status, 'OK');
    assert.equal(j.down.postgresql.status, 'FAILED');
    assert.match(j.down.postgresql.hint, /ECONNREFUSED|connect/i);
    assert.equal(j.hung.postgresql.status, 'FAILED');
    assert.equal(j.hung.postgresql.hint, 'barmants check command timed out after 2 seconds');
    assert.equal(j.hung.postgresql_streaming.status, 'FAILED');
  });

  test('--check-timeout overrides check_timeout', async () => {
    const r = await run(['-c', conf, '-f', 'json', 'check', 'hung', '--check-timeout', '1']);
    assert.equal(JSON.parse(r.out).hung.postgresql.hint, 'barmants check command timed out after 1 seconds');
  });

  test('--nagios: CRITICAL line naming the servers and checks, perfdata, exit 2', async () => {
    const r = await run(['-c', conf, 'check', 'pg', 'down', '--nagios']);
    assert.equal(r.code, 2, r.out + r.err);
    const first = r.out.split('\n')[0]!;
    assert.match(first, /^BARMANTS CRITICAL - 2 servers have problems: pg \(replication slot, backup maximum age, minimum redundancy requirements, receive-wal running\), down \(PostgreSQL, PostgreSQL streaming/);
    assert.match(first, /\|.*pg_last_backup_size=0B/);
    assert.match(r.out, /\npg\.backup maximum age: FAILED \(interval provided: 1 day, latest backup age: No available backups\)\n/);
  });

  test('--nagios through the built CLI: exit status and first line', { skip: !BUILT && 'run `npm run build` first' }, async () => {
    const crit = await spawnCli(['-c', conf, 'check', 'pg', 'down', '--nagios']);
    assert.equal(crit.code, 2);
    assert.match(crit.out, /^BARMANTS CRITICAL - 2 servers have problems: pg \(/);
    const unknown = await spawnCli(['-c', join(dir, 'nope.conf'), 'check', 'all', '--nagios']);
    assert.equal(unknown.code, 3);
    assert.match(unknown.out, /^BARMANTS UNKNOWN - /);
  });

  test('--nagios with a broken configuration: UNKNOWN, exit 3', async () => {
    const bad = join(dir, 'bad.conf');
    await writeFile(bad, '[barmants]\nbarmants_home = /tmp/x\n[pg]\nconninfo = host=127.0.0.1 password=very-secret-bad\nminimum_redundancy = lots\n');
    const r = await run(['-c', bad, 'check', 'all', '--nagios']);
    assert.equal(r.code, 3);
    assert.match(r.out, /^BARMANTS UNKNOWN - .*minimum_redundancy/);
    assert.ok(!r.out.includes('very-secret-bad'));
    const missing = await run(['-c', join(dir, 'nope.conf'), 'check', 'all', '--nagios']);
    assert.equal(missing.code, 3);
    assert.match(missing.out, /^BARMANTS UNKNOWN - /);
    const unknownServer = await run(['-c', conf, 'check', 'nosuch', '--nagios']);
    assert.equal(unknownServer.code, 3);
    assert.match(unknownServer.out, /^BARMANTS UNKNOWN - unknown server 'nosuch'/);
  });

  test('provoked faults: old backup, failed backup, WAL gap, systemid mismatch', async () => {
    const home = join(dir, 'home');
    await run(['-c', conf, 'check', 'faulty']); // creates the home, the catalog and the directories
    const seg = 16 * 1024 * 1024;
    const cat = Catalog.open(join(home, 'catalog.db'));
    try {
      cat.upsertServer({ name: 'faulty', systemId: '1234', pgVersion: version * 10000, walSegmentSize: seg });
      const old = (h: number) => new Date(Date.now() - h * 3_600_000).toISOString();
      cat.insertBackup({ server: 'faulty', backupId: '20200101T000000', status: 'DONE', beginTime: old(49), endTime: old(48), beginWal: '000000010000000000000001', timeline: 1, systemId: '1234', walSegmentSize: seg, size: 1000 });
      cat.insertBackup({ server: 'faulty', backupId: '20200102T000000', status: 'FAILED', beginTime: old(47), systemId: '1234' });
      for (const n of [1n, 2n, 4n]) {
        cat.addWalSegment({ server: 'faulty', timeline: 1, segno: n, name: `00000001000000000000000${n}`, size: seg, storedSize: seg, compression: null, checksum: 'x'.repeat(64), archivedAt: old(47) });
      }
    } finally {
      cat.close();
    }
    await writeFile(join(home, 'faulty', 'identity.json'), JSON.stringify({ systemId: '1234', pgVersion: version * 10000, walSegmentSize: seg, createdAt: 'x', updatedAt: 'x' }));
    const r = await run(['-c', conf, 'check', 'faulty']);
    assert.equal(r.code, 1);
    const m = checkLines(r.out, 'faulty');
    assert.equal(m.get('backup maximum age'), 'FAILED (interval provided: 1 day, latest backup age: 2 days)');
    assert.equal(m.get('failed backups'), 'FAILED (there are 1 failed backups)');
    assert.equal(m.get('WAL continuity'), 'FAILED (1 WAL segment missing since 000000010000000000000001, first gap 000000010000000000000003)');
    assert.equal(m.get('systemid coherence'), `FAILED (the system Id of the connected PostgreSQL server changed, stored in "${join(home, 'faulty', 'identity.json')}")`);
    assert.equal(m.get('minimum redundancy requirements'), 'OK (have 1 non-incremental backups, expected at least 0)');
    const n = await run(['-c', conf, 'check', 'faulty', '--nagios']);
    assert.equal(n.code, 2);
    assert.match(n.out, /^BARMANTS CRITICAL - 1 server has problems: faulty \(backup maximum age, failed backups, systemid coherence, WAL continuity\)\|.*faulty_last_backup_age=\d+s;69120;86400;0/);
  });

  test('status shows the version and the current LSN', async () => {
    const c = cluster();
    const [{ v }] = await c.sql<{ v: string }>("SELECT current_setting('server_version') AS v");
    const r = await run(['-c', conf, 'status', 'pg']);
    assert.equal(r.code, 0, r.err);
    const m = checkLines(r.out, 'pg');
    assert.equal(m.get('PostgreSQL version'), v.split(' ')[0]);
    assert.equal(m.get('Cluster state'), 'in production');
    assert.match(m.get('Current LSN')!, /^[0-9A-F]+\/[0-9A-F]+$/);
    assert.match(m.get('Current WAL segment')!, /^[0-9A-F]{24}$/);
    assert.equal(m.get('No. of available backups'), '0');
    assert.equal(m.get('Minimum redundancy requirements'), 'FAILED (0/1)');
    assert.equal(m.get('WAL receiver'), 'not running');
    assert.equal(m.get('Replication slot'), 'barmants: missing');
    assert.match(m.get('Next scheduled backup')!, /T02:00:00[+-]\d\d:\d\d$/);
    const j = JSON.parse((await run(['-c', conf, '-f', 'json', 'status', 'pg'])).out);
    assert.equal(j.pg.pg_version_num >= version * 10000, true);
    assert.equal(typeof j.pg.current_data_size_bytes, 'number');
  });

  test('diagnose is one JSON document with no password in it', async () => {
    const r = await run(['-c', conf, 'diagnose']);
    assert.equal(r.code, 0, r.err);
    const doc = JSON.parse(r.out);
    assert.equal(typeof doc.barmants.version, 'string');
    assert.equal(doc.node.version, process.version);
    assert.deepEqual(Object.keys(doc.servers).sort(), ['down', 'faulty', 'hung', 'pg']);
    assert.equal(doc.servers.pg.status.pg_version_num >= version * 10000, true);
    assert.ok(Array.isArray(doc.servers.pg.checks));
    assert.equal(typeof doc.catalog.schema_version, 'number');
    assert.equal(doc.servers.pg.catalog.backups, 0);
    assert.ok(!r.out.includes(cluster().superPassword), 'superuser password leaked');
    assert.ok(!r.out.includes('down-secret-4711'), 'password leaked');
  });
});
