/*
 * One replication command in flight, as a pg "Submittable". pg routes row, error and CopyData
 * messages of the active query to it; CopyOut/CopyBoth/CopyDone are only emitted on the
 * Connection, so the command listens there itself while it runs (PROTOCOL.md §5).
 */
import type { ReplicationError } from './errors.js';
import { toReplicationError } from './errors.js';
import { setRawReader } from './socket.js';

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
  stream: {
    pause(): void;
    resume(): void;
    isPaused?(): boolean;
    listeners?(event: string): Function[];
    on?(event: string, fn: (b: Buffer) => void): unknown;
    removeListener?(event: string, fn: (...args: any[]) => void): unknown;
  };
}

export interface CommandHooks {
  /** a result set finished (RowDescription … CommandComplete) */
  onResultSet?(rs: ResultSet): void;
  /** CopyOutResponse (BASE_BACKUP) or CopyBothResponse (START_REPLICATION) */
  onCopyStart?(mode: 'out' | 'both', connection: PgConnection): void;
  /** CopyData payload: a view into pg's reused buffer, valid only during this call */
  onCopyData?(chunk: Buffer): void;
  /**
   * CopyData payloads in pieces as they come off the socket, with no copy: `offset` is where the
   * piece starts in its message's payload of `total` bytes. A view valid only during the call.
   * When given, the command frames the server's messages itself for the duration (pg-protocol
   * would first copy every large message whole into its own buffer) and hands pg every other
   * message whole, so pg's parser stays at a message boundary.
   */
  onCopyDataPart?(piece: Buffer, offset: number, total: number): void;
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
    // The connection is idle, so pg's parser holds no partial message: the framing can change hands.
    if (this.hooks.onCopyDataPart) this.framer = RawFramer.install(connection.stream, (piece, offset, total) => this.copyPart(piece, offset, total));
    connection.query(this.text);
  }

  private framer: RawFramer | null = null;

  private copyPart(piece: Buffer, offset: number, total: number): void {
    if (this.finished) return;
    try {
      this.hooks.onCopyDataPart!(piece, offset, total);
    } catch (err) {
      this.fail(err);
    }
  }

  private detach(): void {
    if (!this.connection) return;
    for (const [ev, fn] of this.listeners) this.connection.removeListener(ev, fn);
  }

  /** Stops framing here: pg parses whatever comes next (the socket is being destroyed anyway). */
  private releaseFramer(): void {
    this.framer?.uninstall();
    this.framer = null;
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
      if (this.hooks.onCopyDataPart) this.hooks.onCopyDataPart(msg.chunk, 0, msg.chunk.length);
      else this.hooks.onCopyData?.(msg.chunk);
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
    this.framer = null; // it gave the stream back to pg before handing over ReadyForQuery
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
    this.releaseFramer();
    const e = toReplicationError(err, this.text.split(/[ (]/)[0]);
    try {
      this.hooks.onError?.(e);
    } finally {
      this.reject(e);
    }
  }
}

type DataListener = (b: Buffer) => void;
type SocketLike = NonNullable<PgConnection['stream']>;

const HEADER = 5;
const COPY_DATA = 0x64; // 'd'
const READY_FOR_QUERY = 0x5a; // 'Z'

/**
 * Frames the server's messages on the socket in place of pg-protocol while one command runs.
 * CopyData payloads go to `onPart` piece by piece as views of the socket's chunks; every other
 * message is gathered whole and fed to pg's own listener, which parses and routes it as usual.
 * At ReadyForQuery the socket goes back to pg, ReadyForQuery and all that follows included.
 * On a socket with a reused read buffer (socket.ts) the framer is its raw reader, and what it
 * passes on to pg is copied first; on any other socket it takes the place of pg's 'data' listener.
 */
class RawFramer {
  private readonly header = Buffer.alloc(HEADER);
  private headerUsed = 0;
  private type = 0;
  private remaining = 0;
  private total = 0;
  private whole: Buffer | null = null;
  private wholeUsed = 0;
  private readonly listener: DataListener = (b) => this.onData(b);
  private installed = true;

  private constructor(
    private readonly stream: SocketLike,
    private readonly pg: DataListener,
    /** reads are views of a reused buffer: pg must be given copies */
    private readonly raw: boolean,
    private readonly onPart: (piece: Buffer, offset: number, total: number) => void,
  ) {}

  /** Takes over the socket, or returns null (pg keeps it) when its listener is not recognisable. */
  static install(stream: SocketLike, onPart: (piece: Buffer, offset: number, total: number) => void): RawFramer | null {
    const listeners = stream.listeners?.('data') ?? [];
    if (listeners.length !== 1 || !stream.on || !stream.removeListener) return null;
    const pg = listeners[0] as DataListener;
    const raw = new RawFramer(stream, pg, true, onPart);
    if (setRawReader(stream, raw.listener)) return raw;
    const f = new RawFramer(stream, pg, false, onPart);
    stream.removeListener('data', pg);
    stream.on('data', f.listener);
    return f;
  }

  /** Gives the socket back to pg (at a message boundary as far as pg is concerned). */
  uninstall(): void {
    if (!this.installed) return;
    this.installed = false;
    if (this.raw) {
      setRawReader(this.stream, null);
      return;
    }
    this.stream.removeListener!('data', this.listener);
    this.stream.on!('data', this.pg);
  }

  /** Hands bytes of the current read to pg, copied when the read buffer is reused. */
  private toPg(view: Buffer): void {
    this.pg(this.raw ? Buffer.from(view) : view);
  }

  private onData(buf: Buffer): void {
    let off = 0;
    while (off < buf.length && this.installed) {
      if (this.remaining === 0 && this.whole === null) {
        // A message header, possibly split across chunks.
        if (this.headerUsed === 0 && buf[off] === READY_FOR_QUERY) {
          // The command is over: pg takes the rest, ReadyForQuery included.
          this.uninstall();
          this.toPg(buf.subarray(off));
          return;
        }
        const n = Math.min(HEADER - this.headerUsed, buf.length - off);
        buf.copy(this.header, this.headerUsed, off, off + n);
        this.headerUsed += n;
        off += n;
        if (this.headerUsed < HEADER) return;
        this.headerUsed = 0;
        this.type = this.header[0]!;
        const len = this.header.readUInt32BE(1) - 4;
        if (this.type === COPY_DATA) {
          this.total = len;
          this.remaining = len;
          if (len === 0) this.onPart(Buffer.alloc(0), 0, 0);
        } else {
          this.whole = Buffer.allocUnsafe(HEADER + len);
          this.header.copy(this.whole, 0);
          this.wholeUsed = HEADER;
          if (len === 0) this.flushWhole();
        }
        continue;
      }
      const n = Math.min(this.whole ? this.whole.length - this.wholeUsed : this.remaining, buf.length - off);
      if (this.whole) {
        buf.copy(this.whole, this.wholeUsed, off, off + n);
        this.wholeUsed += n;
        off += n;
        if (this.wholeUsed === this.whole.length) this.flushWhole();
      } else {
        const offset = this.total - this.remaining;
        this.remaining -= n;
        const piece = buf.subarray(off, off + n);
        off += n;
        this.onPart(piece, offset, this.total);
      }
    }
    // Given back mid-chunk (the command failed on a message pg routed, e.g. an ErrorResponse):
    // at a message boundary pg can take the rest, ReadyForQuery included.
    if (!this.installed && off < buf.length && this.remaining === 0 && this.whole === null && this.headerUsed === 0) this.toPg(buf.subarray(off));
  }

  private flushWhole(): void {
    const m = this.whole!;
    this.whole = null;
    this.wholeUsed = 0;
    this.pg(m);
  }
}
