/*
 * Shared pieces of the fault-injection files: the PostgreSQL version a file runs on, the real
 * `receive-wal` CLI as a child process, read-only catalog access, a TCP proxy that can cut the
 * connections going through it, and the repository consistency check every scenario ends with.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { versionsUnderTest, type PgMajor } from '../harness/index.js';
import { CLI, type TestConfig } from '../helpers/config.js';
import { Catalog } from '../../packages/barmants/src/catalog/index.js';
import { catalogPath, codecFromFileName, isCodec, ServerLayout, stripCodecSuffix, type Codec } from '../../packages/barmants/src/repository/index.js';
import type { FailpointName } from '../../packages/barmants/src/failpoint/index.js';

/**
 * One version per file, spread over the matrix: `preferred` when BARMANTS_TEST_PG_VERSIONS allows
 * it, otherwise the newest version allowed.
 */
export function faultVersion(preferred: PgMajor): PgMajor {
  const allowed = versionsUnderTest();
  return allowed.includes(preferred) ? preferred : allowed.at(-1)!;
}

export function withCatalog<T>(cfg: TestConfig, fn: (c: Catalog) => T): T {
  const cat = Catalog.open(catalogPath(cfg.home), { readonly: true });
  try {
    return fn(cat);
  } finally {
    cat.close();
  }
}

export interface CliChild {
  child: ChildProcess;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stderr(): string;
  /** SIGTERM (the receiver's graceful stop), then the exit status */
  stop(): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** A long-running CLI command (`receive-wal SRV`) as a child process, with its stderr kept. */
export function startCliChild(cfg: TestConfig, args: string[], failpoint?: FailpointName): CliChild {
  const env = { ...process.env };
  if (failpoint) env.BARMANTS_FAILPOINT = failpoint;
  else delete env.BARMANTS_FAILPOINT;
  const child = spawn(process.execPath, [CLI, '-c', cfg.path, ...args], { env, stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr!.on('data', (d) => (err += d));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => child.on('exit', (code, signal) => r({ code, signal })));
  return {
    child,
    exited,
    stderr: () => err,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 60_000);
      try {
        return await exited;
      } finally {
        clearTimeout(t);
      }
    },
  };
}

/**
 * A TCP proxy on 127.0.0.1 in front of `target`: every accepted connection is piped to a new
 * upstream connection. cut() resets every open connection on both sides (a network failure, not
 * a clean close); new connections keep being accepted unless refuse is set.
 */
export class TcpProxy {
  private readonly server: Server;
  private readonly pairs = new Set<[Socket, Socket]>();
  /** connections accepted so far */
  accepted = 0;
  /** bytes forwarded server → client, all connections */
  downstreamBytes = 0;
  /** while true, new connections are reset at once (the server is unreachable) */
  refuse = false;

  private constructor(private readonly target: { host: string; port: number }) {
    this.server = createServer((client) => this.accept(client));
  }

  static async start(target: { host: string; port: number }): Promise<TcpProxy> {
    const p = new TcpProxy(target);
    await new Promise<void>((resolve, reject) => {
      p.server.once('error', reject);
      p.server.listen(0, '127.0.0.1', () => resolve());
    });
    return p;
  }

  get port(): number {
    const a = this.server.address();
    if (a === null || typeof a === 'string') throw new Error('proxy not listening');
    return a.port;
  }

  get open(): number {
    return this.pairs.size;
  }

  private accept(client: Socket): void {
    this.accepted++;
    if (this.refuse) {
      client.resetAndDestroy();
      return;
    }
    const upstream = createConnection(this.target);
    const pair: [Socket, Socket] = [client, upstream];
    this.pairs.add(pair);
    const drop = (): void => {
      this.pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
    upstream.on('data', (d: Buffer) => (this.downstreamBytes += d.length));
    client.pipe(upstream);
    upstream.pipe(client);
  }

  /**
   * Stops forwarding on every open connection, both ways, and keeps the sockets open: a network
   * that silently drops packets (a half-open connection as the peers see it).
   */
  stall(): number {
    for (const [client, upstream] of this.pairs) {
      client.unpipe(upstream);
      upstream.unpipe(client);
      client.pause();
      upstream.pause();
    }
    return this.pairs.size;
  }

  /** Resets every open connection (RST both ways); returns how many were cut. */
  cut(): number {
    const n = this.pairs.size;
    for (const pair of [...this.pairs]) {
      this.pairs.delete(pair);
      for (const s of pair) if (!s.destroyed) s.resetAndDestroy();
    }
    return n;
  }

  async close(): Promise<void> {
    this.refuse = true;
    this.cut();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}

export interface RepositoryState {
  /** catalog WAL rows whose file is missing */
  rowsWithoutFile: string[];
  /** WAL files in wals/ the catalog does not list (under that compression) */
  filesWithoutRow: string[];
  /** catalog backup rows without a directory, or left DELETING */
  backupRowsWithoutDir: string[];
  deleting: string[];
  /** directories in base/ without a catalog row */
  dirsWithoutRow: string[];
  /** `.tmp` files anywhere in the server directory */
  tmpFiles: string[];
  walRows: number;
  backups: { backupId: string; status: string }[];
}

/** Compares the catalog with the files on disk, read-only. */
export async function repositoryState(cfg: TestConfig, server = cfg.server): Promise<RepositoryState> {
  const layout = new ServerLayout(cfg.home, server);
  const { segments, backups } = withCatalog(cfg, (c) => ({ segments: c.listWalSegments(server), backups: c.listBackups(server) }));
  const rowsWithoutFile = segments
    .filter((s) => !existsSync(layout.walFilePath(s.name, (s.compression && isCodec(s.compression) ? s.compression : 'none') as Codec)))
    .map((s) => s.name);
  const known = new Set(segments.map((s) => `${s.name}:${s.compression ?? 'none'}`));
  const filesWithoutRow: string[] = [];
  for (const dir of await readdir(layout.walsDir).catch(() => [] as string[])) {
    for (const f of await readdir(join(layout.walsDir, dir)).catch(() => [] as string[])) {
      if (f.endsWith('.tmp')) continue;
      if (!known.has(`${stripCodecSuffix(f)}:${codecFromFileName(f)}`)) filesWithoutRow.push(`${dir}/${f}`);
    }
  }
  const dirs = new Set(await readdir(layout.baseDir).catch(() => [] as string[]));
  const all = (await readdir(layout.dir, { recursive: true }).catch(() => [] as string[])).map(String);
  return {
    rowsWithoutFile,
    filesWithoutRow,
    backupRowsWithoutDir: backups.filter((b) => !dirs.has(b.backupId)).map((b) => b.backupId),
    deleting: backups.filter((b) => b.status === 'DELETING').map((b) => b.backupId),
    dirsWithoutRow: [...dirs].filter((d) => !backups.some((b) => b.backupId === d)),
    tmpFiles: all.filter((f) => f.endsWith('.tmp')),
    walRows: segments.length,
    backups: backups.map((b) => ({ backupId: b.backupId, status: b.status })),
  };
}
