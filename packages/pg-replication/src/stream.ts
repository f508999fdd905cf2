/*
 * START_REPLICATION as an async iterable of positioned WAL chunks and keepalives. Chunks are
 * copied out of pg's reused receive buffer. A bounded queue pauses the socket when the consumer
 * is slow, while a timer keeps sending status updates so that the server never times us out
 * (PROTOCOL.md §4, pitfalls 1-3). Flush positions are only ever what the caller reported.
 */
import type { ReplicationClient } from './client.js';
import { quoteIdent } from './client.js';
import type { PgConnection, ResultSet } from './command.js';
import { ReplicationCommand } from './command.js';
import { ReplicationError } from './errors.js';
import { formatLsn, parseLsn, type Lsn } from './lsn.js';
import { CopyDataCode, parseKeepalive, parseXLogDataHeader, serializeStatusUpdate, XLOGDATA_HEADER_SIZE, type KeepaliveMessage } from './messages.js';

export interface StartReplicationOptions {
  slot?: string;
  /** where to start; round down to a segment boundary so the first file is whole */
  start: Lsn;
  timeline?: number;
  /** how often a status update is sent even when nothing changed; default 10 s */
  statusIntervalMs?: number;
  /** bytes queued before the socket is paused; default 16 MiB */
  highWaterMark?: number;
}

export interface WalChunk {
  readonly type: 'xlogdata';
  /** LSN of data[0] */
  readonly walStart: Lsn;
  /** the server's end of WAL when it sent this */
  readonly walEnd: Lsn;
  readonly sendTime: bigint;
  /** a private copy */
  readonly data: Buffer;
}

export type WalMessage = WalChunk | KeepaliveMessage;

const COALESCE_LIMIT = 1 << 20;

export type StreamEnd = { readonly reason: 'timeline-end'; readonly nextTimeline: number; readonly nextStart: Lsn } | { readonly reason: 'stopped' };

export class WalStream implements AsyncIterable<WalMessage> {
  /** resolves when streaming ends: end of timeline (switch) or our stop() */
  readonly ended: Promise<StreamEnd>;
  private readonly queue: WalMessage[] = [];
  private queuedBytes = 0;
  private paused = false;
  private conn: PgConnection | null = null;
  private waiter: (() => void) | null = null;
  private error: ReplicationError | null = null;
  private finished = false;
  private stopping = false;
  private copyOpen = false;
  private write: Lsn = 0n;
  private flush: Lsn = 0n;
  private apply: Lsn = 0n;
  private timer: NodeJS.Timeout | null = null;
  private readonly hwm: number;
  private readonly cmd: ReplicationCommand;
  private endInfo: StreamEnd | null = null;

  constructor(
    private readonly rc: ReplicationClient,
    opts: StartReplicationOptions,
  ) {
    this.hwm = opts.highWaterMark ?? 16 << 20;
    if (opts.timeline !== undefined && (!Number.isInteger(opts.timeline) || opts.timeline < 1)) throw new TypeError(`invalid timeline ${opts.timeline}`);
    const text =
      `START_REPLICATION${opts.slot ? ` SLOT ${quoteIdent(opts.slot)}` : ''} PHYSICAL ${formatLsn(opts.start)}` +
      (opts.timeline !== undefined ? ` TIMELINE ${opts.timeline}` : '');
    this.write = opts.start;
    this.cmd = rc.run(text, {
      onCopyStart: (_mode, c) => {
        this.conn = c;
        this.copyOpen = true;
        if (this.stopping) {
          this.copyOpen = false;
          c.endCopyFrom();
          return;
        }
        const every = opts.statusIntervalMs ?? 10_000;
        this.timer = setInterval(() => this.sendCurrent(false), every);
        this.timer.unref();
      },
      onCopyData: (chunk) => this.onData(chunk),
      onCopyDone: () => this.onServerCopyDone(),
      onResultSet: (rs) => this.onResultSet(rs),
    });
    this.ended = this.cmd.done.then(
      () => {
        this.finish(null);
        return this.endInfo ?? { reason: 'stopped' as const };
      },
      (err) => {
        this.finish(err as ReplicationError);
        throw err;
      },
    );
    this.ended.catch(() => undefined);
  }

  private onData(chunk: Buffer): void {
    const code = chunk[0];
    if (code === CopyDataCode.XLogData) {
      if (this.stopping) return;
      const h = parseXLogDataHeader(chunk);
      const data = Buffer.from(chunk.subarray(XLOGDATA_HEADER_SIZE));
      const end = h.walStart + BigInt(data.length);
      if (end > this.write) this.write = end;
      this.push({ type: 'xlogdata', walStart: h.walStart, walEnd: h.walEnd, sendTime: h.sendTime, data }, data.length);
    } else if (code === CopyDataCode.Keepalive) {
      const k = parseKeepalive(chunk);
      // Answer at once with what the caller has declared durable; the caller sees it too and
      // may fsync and report again.
      if (k.replyRequested) this.sendCurrent(false);
      this.push(k, 0);
    } else {
      throw new ReplicationError('protocol', `unexpected replication message type 0x${code?.toString(16)}`);
    }
  }

  private push(m: WalMessage, size: number): void {
    this.queue.push(m);
    this.queuedBytes += size;
    if (!this.paused && this.queuedBytes >= this.hwm && this.conn) {
      this.paused = true;
      this.conn.stream.pause();
    }
    this.wake();
  }

  private onServerCopyDone(): void {
    // The server ended the copy: end of timeline, or the answer to our CopyDone.
    if (this.copyOpen && !this.stopping) {
      this.copyOpen = false;
      this.conn?.endCopyFrom();
    }
    this.copyOpen = false;
    this.stopTimer();
  }

  private onResultSet(rs: ResultSet): void {
    if (rs.columns.length >= 2 && rs.rows[0]) {
      this.endInfo = { reason: 'timeline-end', nextTimeline: Number(rs.rows[0][0]), nextStart: parseLsn(rs.rows[0][1]!) };
    }
  }

  private finish(err: ReplicationError | null): void {
    this.finished = true;
    this.error = err ?? this.rc.connectionError;
    if (err) this.error = err;
    this.stopTimer();
    if (this.paused && this.conn) {
      this.paused = false;
      this.conn.stream.resume();
    }
    this.wake();
  }

  private stopTimer(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  private wake(): void {
    const w = this.waiter;
    this.waiter = null;
    w?.();
  }

  /** Next message, or null when streaming has ended. Rejects on error. */
  async next(): Promise<WalMessage | null> {
    for (;;) {
      let m = this.queue.shift();
      if (m) {
        if (m.type === 'xlogdata') {
          this.queuedBytes -= m.data.length;
          m = this.coalesce(m);
        }
        if (this.paused && this.queuedBytes < this.hwm / 2 && this.conn) {
          this.paused = false;
          this.conn.stream.resume();
        }
        return m;
      }
      if (this.finished) {
        if (this.error && !(this.stopping && this.error.kind !== 'server')) throw this.error;
        return null;
      }
      await new Promise<void>((r) => (this.waiter = r));
    }
  }

  /**
   * Merges the contiguous XLogData already queued behind `first` (up to 1 MiB): when the consumer
   * falls behind a burst of small messages, it gets one chunk to write instead of hundreds.
   */
  private coalesce(first: WalChunk): WalChunk {
    let next = this.queue[0];
    if (!next || next.type !== 'xlogdata') return first;
    const parts = [first.data];
    let end = first.walStart + BigInt(first.data.length);
    let total = first.data.length;
    let last: WalChunk = first;
    while (next && next.type === 'xlogdata' && next.walStart === end && total + next.data.length <= COALESCE_LIMIT) {
      this.queue.shift();
      this.queuedBytes -= next.data.length;
      parts.push(next.data);
      total += next.data.length;
      end += BigInt(next.data.length);
      last = next;
      next = this.queue[0];
    }
    if (parts.length === 1) return first;
    return { type: 'xlogdata', walStart: first.walStart, walEnd: last.walEnd, sendTime: last.sendTime, data: Buffer.concat(parts, total) };
  }

  async *[Symbol.asyncIterator](): AsyncIterator<WalMessage> {
    for (;;) {
      const m = await this.next();
      if (!m) return;
      yield m;
    }
  }

  /**
   * Reports positions to the server. `flush` must only cover bytes already fsynced; it never
   * goes backwards (after a timeline switch the caller restarts below what it reported).
   */
  sendStatus(s: { write?: Lsn; flush: Lsn; apply?: Lsn; replyRequested?: boolean }): void {
    if (s.write !== undefined && s.write > this.write) this.write = s.write;
    if (s.flush > this.flush) this.flush = s.flush;
    if (s.apply !== undefined && s.apply > this.apply) this.apply = s.apply;
    this.sendCurrent(s.replyRequested ?? false);
  }

  /** The positions last reported. */
  get reported(): { write: Lsn; flush: Lsn; apply: Lsn } {
    return { write: this.write, flush: this.flush, apply: this.apply };
  }

  private sendCurrent(replyRequested: boolean): void {
    if (!this.copyOpen || !this.conn || this.finished) return;
    const write = this.write > this.flush ? this.write : this.flush;
    try {
      this.conn.sendCopyFromChunk(serializeStatusUpdate({ write, flush: this.flush, apply: this.apply, replyRequested }));
    } catch (err) {
      this.cmd.fail(err);
    }
  }

  /** Ends streaming from our side (CopyDone); resolves when the server has acknowledged it. */
  async stop(): Promise<StreamEnd> {
    if (!this.finished && !this.stopping) {
      this.stopping = true;
      // Drop what is queued: the caller asked to stop. The bytes are not acknowledged.
      this.queue.length = 0;
      this.queuedBytes = 0;
      if (this.paused && this.conn) {
        this.paused = false;
        this.conn.stream.resume();
      }
      if (this.copyOpen && this.conn) {
        this.sendCurrent(false);
        this.copyOpen = false;
        this.conn.endCopyFrom();
      }
    }
    return this.ended;
  }
}
