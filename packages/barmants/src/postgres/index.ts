/*
 * Connections to a configured PostgreSQL server: SQL (conninfo) for checks, switch-wal and
 * restore points, and replication (streaming_conninfo) through pg-replication. Both honour the
 * server's passfile option and set application_name, and turn failures into BarmantsErrors that
 * say what to check.
 */
import type pg from 'pg';

// pg itself is loaded on first use, through pg-replication's loadPg (see there).
import { loadPg, ReplicationClient, ReplicationError, toClientConfig, type Lsn, parseLsn } from 'pg-replication';
import type { ServerConfig } from '../config/index.js';
import { BarmantsError } from '../errors/index.js';

export type ApplicationRole = 'backup' | 'receive-wal' | 'check';

function appName(server: ServerConfig, role: ApplicationRole): string {
  if (role === 'receive-wal') return server.streamingArchiverName;
  if (role === 'backup') return server.streamingBackupName;
  return 'barmants_check';
}

/** A ReplicationError or pg error as a BarmantsError naming the server and what to do. */
export function connectionFailure(server: ServerConfig, what: string, err: unknown): BarmantsError {
  if (err instanceof BarmantsError) return err;
  const e = err as { message?: string; code?: string } | undefined;
  const msg = e?.message ?? String(err);
  const refused = err instanceof ReplicationError ? err.kind === 'server' : typeof e?.code === 'string' && /^[0-9A-Z]{5}$/.test(e.code);
  return new BarmantsError(refused ? 'server' : 'connection', `server '${server.name}': ${what}: ${msg}${e?.code ? ` (SQLSTATE ${e.code})` : ''}`, {
    cause: err,
  });
}

/** Opens a physical replication connection with streaming_conninfo. */
export async function connectReplication(server: ServerConfig, role: ApplicationRole): Promise<ReplicationClient> {
  try {
    return await ReplicationClient.connect({
      connectionString: server.streamingConninfo ?? server.conninfo ?? '',
      passfile: server.passfile ?? undefined,
      applicationName: appName(server, role),
      // A half-open connection must not hold IDENTIFY_SYSTEM, SHOW or a slot command forever.
      commandTimeoutMs: server.walReceiverTimeoutMs,
    });
  } catch (err) {
    throw connectionFailure(server, 'cannot open a replication connection', err);
  }
}

/** A normal SQL session (conninfo). */
export class SqlSession {
  private constructor(
    readonly server: ServerConfig,
    private readonly client: pg.Client,
  ) {}

  static async connect(server: ServerConfig, role: ApplicationRole = 'check'): Promise<SqlSession> {
    const cfg = toClientConfig({ connectionString: server.conninfo ?? '', passfile: server.passfile ?? undefined, applicationName: appName(server, role) }, false);
    // PGREPLICATION must not turn this into a walsender (PROTOCOL.md pitfall 8).
    delete (cfg as { replication?: unknown }).replication;
    const client = new (loadPg().Client)(cfg);
    client.on('error', () => undefined);
    try {
      await client.connect();
    } catch (err) {
      await client.end().catch(() => undefined);
      throw connectionFailure(server, 'cannot connect with conninfo', err);
    }
    return new SqlSession(server, client);
  }

  async query<T extends Record<string, unknown> = Record<string, any>>(text: string, params: unknown[] = []): Promise<T[]> {
    try {
      const r = await this.client.query(text, params);
      return r.rows as T[];
    } catch (err) {
      throw connectionFailure(this.server, `query failed (${text.split(/\s+/).slice(0, 3).join(' ')}…)`, err);
    }
  }

  async one<T extends Record<string, unknown> = Record<string, any>>(text: string, params: unknown[] = []): Promise<T> {
    const rows = await this.query<T>(text, params);
    if (!rows[0]) throw new BarmantsError('server', `server '${this.server.name}': no row from ${text}`);
    return rows[0];
  }

  async setting(name: string): Promise<string | null> {
    const rows = await this.query<{ setting: string | null }>('SELECT current_setting($1, true) AS setting', [name]);
    return rows[0]?.setting ?? null;
  }

  async isInRecovery(): Promise<boolean> {
    return (await this.one<{ r: boolean }>('SELECT pg_is_in_recovery() AS r')).r;
  }

  async serverVersionNum(): Promise<number> {
    return Number(await this.setting('server_version_num'));
  }

  /** Forces a WAL segment switch; returns the LSN of the switch and the file it closed. */
  async switchWal(): Promise<{ lsn: Lsn; walfile: string }> {
    const r = await this.one<{ lsn: string; walfile: string }>('SELECT lsn::text AS lsn, pg_walfile_name(lsn) AS walfile FROM pg_switch_wal() AS lsn');
    return { lsn: parseLsn(r.lsn), walfile: r.walfile };
  }

  async currentWalLsn(): Promise<Lsn> {
    return parseLsn((await this.one<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn')).lsn);
  }

  async createRestorePoint(name: string): Promise<Lsn> {
    return parseLsn((await this.one<{ lsn: string }>('SELECT pg_create_restore_point($1)::text AS lsn', [name])).lsn);
  }

  async close(): Promise<void> {
    await this.client.end().catch(() => undefined);
  }
}

/** Runs `fn` with a SQL session and always closes it. */
export async function withSql<T>(server: ServerConfig, role: ApplicationRole, fn: (s: SqlSession) => Promise<T>): Promise<T> {
  const s = await SqlSession.connect(server, role);
  try {
    return await fn(s);
  } finally {
    await s.close();
  }
}
