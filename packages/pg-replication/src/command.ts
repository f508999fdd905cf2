/*
 * One replication command in flight, as a pg "Submittable". pg routes row, error and CopyData
 * messages of the active query to it; CopyOut/CopyBoth/CopyDone are only emitted on the
 * Connection, so the command listens there itself while it runs (PROTOCOL.md §5).
 */
import type { ReplicationError } from './errors.js';
import { toReplicationError } from './errors.js';

export interface ResultSet {
  readonly columns: string[];
  readonly rows: (string | null)[][];
  readonly tag: string;
}

/** The parts of pg's Connection a command uses. */
export interface PgConnection {
  query(text: string): void;
  sendCopyFromChunk(chunk: Buffer): void;
  endCopyFrom(): void;
  on(event: string, fn: (...args: any[]) => void): unknown;
  removeListener(event: string, fn: (...args: any[]) => void): unknown;
  stream: { pause(): void; resume(): void; isPaused?(): boolean };
}

export interface CommandHooks {
  /** a result set finished (RowDescription … CommandComplete) */
  onResultSet?(rs: ResultSet): void;
  /** CopyOutResponse (BASE_BACKUP) or CopyBothResponse (START_REPLICATION) */
  onCopyStart?(mode: 'out' | 'both', connection: PgConnection): void;
  /** CopyData payload: a view into pg's reused buffer, valid only during this call */
  onCopyData?(chunk: Buffer): void;
  onCopyDone?(): void;
  /** the command failed: called once, before the promise rejects */
  onError?(err: ReplicationError): void;
}

export class ReplicationCommand {
  readonly text: string;
  readonly resultSets: ResultSet[] = [];
  readonly done: Promise<ResultSet[]>;
  private resolve!: (r: ResultSet[]) => void;
  private reject!: (e: unknown) => void;
  private columns: string[] | null = null;
  private rows: (string | null)[][] = [];
  private connection: PgConnection | null = null;
  private readonly hooks: CommandHooks;
  private finished = false;
  private readonly listeners: [string, (...a: any[]) => void][];

  constructor(text: string, hooks: CommandHooks = {}) {
    this.text = text;
    this.hooks = hooks;
    this.done = new Promise((res, rej) => {
      this.resolve = res;
      this.reject = rej;
    });
    // Avoid an unhandled rejection when the caller only awaits another promise of ours.
    this.done.catch(() => undefined);
    this.listeners = [
      ['copyOutResponse', () => this.hooks.onCopyStart?.('out', this.connection!)],
      ['replicationStart', () => this.hooks.onCopyStart?.('both', this.connection!)],
      ['copyDone', () => this.hooks.onCopyDone?.()],
    ];
  }

  /** Called by pg.Client when this command reaches the head of its queue. */
  submit(connection: PgConnection): void {
    this.connection = connection;
    for (const [ev, fn] of this.listeners) connection.on(ev, fn);
    connection.query(this.text);
  }

  private detach(): void {
    if (!this.connection) return;
    for (const [ev, fn] of this.listeners) this.connection.removeListener(ev, fn);
  }

  handleRowDescription(msg: { fields: { name: string }[] }): void {
    this.columns = msg.fields.map((f) => f.name);
    this.rows = [];
  }

  handleDataRow(msg: { fields: (string | null)[] }): void {
    this.rows.push(msg.fields);
  }

  handleCommandComplete(msg: { text: string }): void {
    const rs: ResultSet = { columns: this.columns ?? [], rows: this.rows, tag: msg.text };
    this.columns = null;
    this.rows = [];
    this.resultSets.push(rs);
    try {
      this.hooks.onResultSet?.(rs);
    } catch (err) {
      this.fail(err);
    }
  }

  handleCopyData(msg: { chunk: Buffer }): void {
    if (this.finished) return;
    try {
      this.hooks.onCopyData?.(msg.chunk);
    } catch (err) {
      this.fail(err);
    }
  }

  handleCopyInResponse(): void {
    this.fail(new Error('unexpected CopyInResponse'));
  }

  handleEmptyQuery(): void {}
  handlePortalSuspended(): void {}

  handleError(err: unknown): void {
    this.fail(err);
  }

  handleReadyForQuery(): void {
    this.detach();
    if (this.finished) return;
    this.finished = true;
    this.resolve(this.resultSets);
  }

  /** Fails the command from our side (a hook threw, or the consumer gave up). */
  fail(err: unknown): void {
    if (this.finished) return;
    this.finished = true;
    this.detach();
    const e = toReplicationError(err, this.text.split(/[ (]/)[0]);
    try {
      this.hooks.onError?.(e);
    } finally {
      this.reject(e);
    }
  }
}
