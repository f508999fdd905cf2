/*
 * ReplicationClient: one physical walsender connection (`replication=true`) with typed wrappers
 * over the replication commands. A walsender runs one command at a time; pg's Client queues
 * further calls until ReadyForQuery.
 */
import { createRequire } from 'node:module';
import type pg from 'pg';
import { createReusedBufferSocket } from './socket.js';

let pgModule: typeof pg | undefined;

/**
 * node-postgres, loaded when the first connection is made, not at import: commands that never
 * connect start faster and smaller without it. pg decides while it loads whether it runs in
 * Cloudflare Workers, and on a Node without `navigator` (20) it does so by constructing a fetch
 * Response, which loads undici: ~30 of the ~70 ms that loading pg took. A `navigator` naming
 * Node.js stands in while pg loads, and is removed again.
 */
export function loadPg(): typeof pg {
  if (pgModule) return pgModule;
  const g = globalThis as { navigator?: unknown };
  const shim = g.navigator === undefined;
  if (shim) Object.defineProperty(globalThis, 'navigator', { value: { userAgent: `Node.js/${process.versions.node}` }, configurable: true, writable: true });
  try {
    pgModule = createRequire(import.meta.url)('pg') as typeof pg;
  } finally {
    if (shim) delete g.navigator;
  }
  return pgModule;
}
import { ReplicationCommand, type CommandHooks, type ResultSet } from './command.js';
import { toClientConfig, type ConnectOptions } from './conninfo.js';
import { ReplicationError, SqlState, toReplicationError } from './errors.js';
import { formatLsn, parseLsn, type Lsn } from './lsn.js';
import { parseWalSegmentSize } from './walfile.js';
import { runBaseBackup, type BaseBackupHandlers, type BaseBackupOptions, type BaseBackupResult } from './basebackup.js';
import { formatSeconds, WalStream, type StartReplicationOptions } from './stream.js';

export interface SystemIdentification {
  /** 64-bit system identifier, as text (exact) */
  readonly systemId: string;
  readonly timeline: number;
  /** current WAL flush position on the server */
  readonly xlogPos: Lsn;
  readonly dbName: string | null;
}

export interface SlotInfo {
  readonly slotType: string;
  readonly restartLsn: Lsn | null;
  readonly restartTli: number | null;
}

export interface TimelineHistoryFile {
  readonly filename: string;
  readonly content: Buffer;
}

/** Quotes an identifier for a replication command. */
export function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/** Quotes a string literal for a replication command. */
export function quoteLiteral(value: string): string {
  if (value.includes('\0')) throw new TypeError('a NUL byte cannot be sent in a literal');
  return `'${value.replace(/'/g, "''")}'`;
}

const SLOT_NAME = /^[a-z0-9_]{1,63}$/;

function checkSlotName(name: string): void {
  if (!SLOT_NAME.test(name)) {
    throw new TypeError(`invalid replication slot name "${name}": use 1 to 63 lower-case letters, digits and underscores`);
  }
}

/** "15.18 (Debian 15.18-0+deb12u1)" → 150018; "18.4" → 180004; "9.6.24" → 90624 */
export function parseServerVersion(text: string): number {
  const m = /^(\d+)(?:\.(\d+))?(?:\.(\d+))?/.exec(text.trim());
  if (!m) throw new ReplicationError('protocol', `cannot parse server version "${text}"`);
  const major = Number(m[1]);
  if (major >= 10) return major * 10000 + Number(m[2] ?? 0);
  return major * 10000 + Number(m[2] ?? 0) * 100 + Number(m[3] ?? 0);
}

export class ReplicationClient {
  readonly client: pg.Client;
  /** server_version_num, e.g. 150018 */
  serverVersionNum = 0;
  serverVersion = '';
  private readonly params = new Map<string, string>();
  private lostError: ReplicationError | null = null;
  private closed = false;
  /** see ConnectOptions.commandTimeoutMs */
  private commandTimeoutMs = 0;

  private constructor(client: pg.Client) {
    this.client = client;
  }

  /** Opens a physical replication connection. */
  static async connect(opts: ConnectOptions | string): Promise<ReplicationClient> {
    const config = toClientConfig(opts, true);
    // Plain connections read into one reused buffer (socket.ts); TLS reads through its own socket.
    if (!config.ssl && !config.stream) config.stream = () => createReusedBufferSocket();
    const client = new (loadPg().Client)(config);
    const rc = new ReplicationClient(client);
    if (typeof opts === 'object' && opts.commandTimeoutMs) rc.commandTimeoutMs = opts.commandTimeoutMs;
    const conn = (client as unknown as { connection: { on(ev: string, fn: (m: any) => void): void } }).connection;
    conn.on('parameterStatus', (m: { parameterName: string; parameterValue: string }) => rc.params.set(m.parameterName, m.parameterValue));
    // A socket error outside a command would otherwise crash the process (PROTOCOL.md §5).
    client.on('error', (err) => {
      rc.lostError = toReplicationError(err);
    });
    try {
      await client.connect();
    } catch (err) {
      await client.end().catch(() => undefined);
      throw toReplicationError(err, 'connect');
    }
    const v = rc.params.get('server_version');
    if (v) {
      rc.serverVersion = v;
      rc.serverVersionNum = parseServerVersion(v);
    } else {
      rc.serverVersionNum = Number(await rc.show('server_version_num'));
      rc.serverVersion = await rc.show('server_version');
    }
    return rc;
  }

  /** The startup parameters the server reported (server_version, TimeZone, ...). */
  parameter(name: string): string | undefined {
    return this.params.get(name);
  }

  get majorVersion(): number {
    return Math.floor(this.serverVersionNum / 10000);
  }

  /** Runs one replication command; copy traffic goes to `hooks`. */
  run(text: string, hooks?: CommandHooks): ReplicationCommand {
    if (this.lostError) throw this.lostError;
    if (this.closed) throw new ReplicationError('connection', 'the replication connection is closed');
    const cmd = new ReplicationCommand(text, hooks);
    void this.client.query(cmd as unknown as pg.QueryConfig);
    return cmd;
  }

  /** Runs a command that answers with rows (within commandTimeoutMs, when set). */
  async runRows(text: string): Promise<ResultSet[]> {
    const cmd = this.run(text);
    const ms = this.commandTimeoutMs;
    if (!ms) return cmd.done;
    let timer: NodeJS.Timeout | undefined;
    const silent = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        const verb = text.split(' ', 1)[0];
        const err = new ReplicationError('connection', `no answer to ${verb} for ${formatSeconds(ms)} s: connection presumed dead`);
        // Every later command fails the same way: the connection cannot be trusted any more.
        this.lostError = err;
        cmd.fail(err);
        this.destroy();
        reject(err);
      }, ms);
    });
    try {
      return await Promise.race([cmd.done, silent]);
    } finally {
      clearTimeout(timer);
    }
  }

  async identifySystem(): Promise<SystemIdentification> {
    const [rs] = await this.runRows('IDENTIFY_SYSTEM');
    const row = rs?.rows[0];
    if (!row) throw new ReplicationError('protocol', 'IDENTIFY_SYSTEM returned no row');
    return { systemId: row[0]!, timeline: Number(row[1]), xlogPos: parseLsn(row[2]!), dbName: row[3] ?? null };
  }

  /** `SHOW name` on the walsender; the value as the server prints it (with units). */
  async show(name: string): Promise<string> {
    if (!/^[A-Za-z_][A-Za-z0-9_.]*$/.test(name)) throw new TypeError(`invalid setting name "${name}"`);
    const [rs] = await this.runRows(`SHOW ${name}`);
    const v = rs?.rows[0]?.[0];
    if (v === undefined || v === null) throw new ReplicationError('protocol', `SHOW ${name} returned no value`);
    return v;
  }

  async walSegmentSize(): Promise<number> {
    return parseWalSegmentSize(await this.show('wal_segment_size'));
  }

  async timelineHistory(tli: number): Promise<TimelineHistoryFile> {
    if (!Number.isInteger(tli) || tli < 1) throw new TypeError(`invalid timeline ${tli}`);
    const [rs] = await this.runRows(`TIMELINE_HISTORY ${tli}`);
    const row = rs?.rows[0];
    if (!row) throw new ReplicationError('protocol', 'TIMELINE_HISTORY returned no row');
    return { filename: row[0]!, content: Buffer.from(row[1] ?? '', 'utf8') };
  }

  async createPhysicalSlot(name: string, opts: { reserveWal?: boolean; temporary?: boolean } = {}): Promise<{ slotName: string; consistentPoint: Lsn | null }> {
    checkSlotName(name);
    // The old option syntax is accepted by 14 through 18 alike.
    const text = `CREATE_REPLICATION_SLOT ${quoteIdent(name)}${opts.temporary ? ' TEMPORARY' : ''} PHYSICAL${opts.reserveWal ? ' RESERVE_WAL' : ''}`;
    const [rs] = await this.runRows(text);
    const row = rs?.rows[0];
    const cp = row?.[1];
    return { slotName: row?.[0] ?? name, consistentPoint: cp && cp !== '0/0' ? parseLsn(cp) : null };
  }

  /** READ_REPLICATION_SLOT (PostgreSQL 15+); null when the slot does not exist. */
  async readSlot(name: string): Promise<SlotInfo | null> {
    checkSlotName(name);
    if (this.serverVersionNum && this.serverVersionNum < 150000) {
      throw new ReplicationError('server', `READ_REPLICATION_SLOT needs PostgreSQL 15 or later (server is ${this.serverVersion}): read pg_replication_slots over a normal SQL connection instead`, {
        code: SqlState.FeatureNotSupported,
      });
    }
    const [rs] = await this.runRows(`READ_REPLICATION_SLOT ${quoteIdent(name)}`);
    const row = rs?.rows[0];
    if (!row || row[0] === null) return null;
    return { slotType: row[0]!, restartLsn: row[1] ? parseLsn(row[1]) : null, restartTli: row[2] ? Number(row[2]) : null };
  }

  async dropSlot(name: string, opts: { wait?: boolean } = {}): Promise<void> {
    checkSlotName(name);
    const text = `DROP_REPLICATION_SLOT ${quoteIdent(name)}${opts.wait ? ' WAIT' : ''}`;
    // WAIT lasts as long as another walsender holds the slot: no command timeout for it.
    await (opts.wait ? this.run(text).done : this.runRows(text));
  }

  /** Takes a base backup; entries are handed to `handlers` in order, with backpressure. */
  baseBackup(opts: BaseBackupOptions, handlers: BaseBackupHandlers): Promise<BaseBackupResult> {
    return runBaseBackup(this, opts, handlers);
  }

  /** Starts streaming WAL; iterate the result for XLogData and keepalives. */
  startReplication(opts: StartReplicationOptions): WalStream {
    return new WalStream(this, opts);
  }

  /** The socket error that ended this connection, if any. */
  get connectionError(): ReplicationError | null {
    return this.lostError;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.client.end().catch(() => undefined);
  }

  /** Destroys the socket at once (for a stuck peer). */
  destroy(): void {
    this.closed = true;
    const conn = (this.client as unknown as { connection?: { stream?: { destroy(): void } } }).connection;
    conn?.stream?.destroy();
  }
}

export { formatLsn };
