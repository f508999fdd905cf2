/*
 * START_REPLICATION as an async iterable of positioned WAL chunks and keepalives. XLogData
 * payloads are copied out of pg's reused receive buffer into 1 MiB slabs, each run of contiguous
 * WAL growing one queued chunk, so the consumer sees one chunk (one write) per socket read rather
 * than one per commit; optionally the socket is left unread for a few ms after a small read, so
 * that one read brings several commits. A bounded queue pauses the socket when the consumer is
 * slow, while a timer keeps sending status updates so that the server never times us out
 * (PROTOCOL.md §4, pitfalls 1-3). Flush positions are only ever what the caller reported.
 * Optionally (receiveTimeoutMs) a silent server is pinged, then the connection presumed dead, as
 * PostgreSQL's own walreceiver does with wal_receiver_timeout: a half-open TCP connection (packets
 * dropped, no RST, no FIN) otherwise leaves the stream waiting forever.
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
  /** bytes queued before the socket is paused; default 2 MiB */
  highWaterMark?: number;
  /**
   * After the reads of an event-loop turn, when the server has sent all the WAL it had, leave the
   * socket unread this long (ms), so that the WAL of many small commits arrives in one read and
   * one chunk: under a commit-heavy load a wake-up and a write per commit cost the receiver more
   * CPU than the bytes. Never while the server has a backlog (its end of WAL beyond what it sent):
   * catch-up runs at full speed. Default 0: read as soon as data arrives, which a synchronous
   * standby must do.
   */
  readCoalesceMs?: number;
  /**
   * Recycle the slabs the chunks are cut from: a chunk's `data` is then valid only until the
   * next call to next() (the next turn of a for-await loop). For consumers that write each chunk
   * before asking for the next: memory stays at a slab or two instead of every byte received
   * waiting for the garbage collector. Default false: `data` is the caller's to keep.
   */
  reuseBuffers?: boolean;
  /**
   * Silence timeout (ms), PostgreSQL's `wal_receiver_timeout`: the longest the stream waits for
   * any message from the server. Default 0: no timeout, the stream waits as long as TCP lets it,
   * which on a half-open connection (a peer or a network that silently drops packets) is forever.
   *
   * The clock starts when the stream is created and restarts at every message received (WAL or
   * keepalive). After half the timeout of silence one status update asking for a reply is sent
   * (a walsender answers it with a keepalive at once, so a healthy but idle server is never taken
   * for dead); after the whole timeout the socket is destroyed and the stream ends with a
   * ReplicationError of kind 'connection' (from next(), the iterator and `ended`); whatever was
   * queued before is still delivered first. Time the stream itself leaves the socket unread
   * because the consumer is slow (the queue at highWaterMark) is not silence: the clock restarts
   * when reading resumes. Reads held back by readCoalesceMs (a few ms) do count; keep it far
   * below the timeout. It also bounds stop() on a dead connection (the server's answer to our
   * CopyDone never comes). The timer does not keep the process alive and stops with the stream.
   */
  receiveTimeoutMs?: number;
}

export interface WalChunk {
  readonly type: 'xlogdata';
  /** LSN of data[0] */
  readonly walStart: Lsn;
  /** the server's end of WAL when it sent this */
  readonly walEnd: Lsn;
  readonly sendTime: bigint;
  /** a private copy (a view of a slab this stream never writes again), unless `reuseBuffers` */
  readonly data: Buffer;
}

export type WalMessage = WalChunk | KeepaliveMessage;

/** A buffer WAL is copied into, with the number of chunks cut from it still queued or lent. */
interface Slab {
  readonly buf: Buffer;
  refs: number;
}

/** Contiguous WAL received into one slab, not yet handed out: later bytes still extend it. */
interface PendingChunk {
  readonly type: 'pending';
  readonly walStart: Lsn;
  end: Lsn;
  walEnd: Lsn;
  sendTime: bigint;
  readonly slab: Slab;
  readonly offset: number;
  length: number;
}

const SLAB_SIZE = 1 << 20;
/** A read burst at least this big means a backlog, whatever the server says: do not delay the next read. */
const BURST_NO_DELAY = SLAB_SIZE;

export type StreamEnd = { readonly reason: 'timeline-end'; readonly nextTimeline: number; readonly nextStart: Lsn } | { readonly reason: 'stopped' };

export class WalStream implements AsyncIterable<WalMessage> {
  /** resolves when streaming ends: end of timeline (switch) or our stop() */
  readonly ended: Promise<StreamEnd>;
  private readonly queue: (PendingChunk | KeepaliveMessage)[] = [];
  private queuedBytes = 0;
  /** the last queued chunk, while later contiguous bytes may still be appended to it */
  private tail: PendingChunk | null = null;
  private slab: Slab | null = null;
  private slabUsed = 0;
  private readonly reuse: boolean;
  /** slabs no chunk refers to any more (reuseBuffers) */
  private readonly freeSlabs: Slab[] = [];
  /** the slab of the chunk last handed out, released at the next call (reuseBuffers) */
  private lent: Slab | null = null;
  /** the socket is paused for backpressure (queue full) */
  private paused = false;
  /** the socket is left unread to let a few more commits' WAL gather in it (readCoalesceMs) */
  private coalescing = false;
  private burstBytes = 0;
  /** the last XLogData said the server had more WAL than it carried: a backlog is on its way */
  private serverAhead = false;
  private burstCheck: NodeJS.Immediate | null = null;
  private coalesceTimer: NodeJS.Timeout | null = null;
  private readonly coalesceMs: number;
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
  /** receiveTimeoutMs; 0 = none */
  private readonly receiveTimeoutMs: number;
  /** when the last message from the server arrived, or reading last resumed (performance.now()) */
  private lastReceived = 0;
  /** a status update asking for a reply was sent since lastReceived */
  private pinged = false;
  /** the one timer of the silence check (receiveTimeoutMs) */
  private silenceTimer: NodeJS.Timeout | null = null;
  private silenceCheck: NodeJS.Immediate | null = null;

  constructor(
    private readonly rc: ReplicationClient,
    opts: StartReplicationOptions,
  ) {
    this.hwm = opts.highWaterMark ?? 2 << 20;
    this.coalesceMs = opts.readCoalesceMs ?? 0;
    this.reuse = opts.reuseBuffers ?? false;
    this.receiveTimeoutMs = opts.receiveTimeoutMs ?? 0;
    if (!Number.isFinite(this.receiveTimeoutMs) || this.receiveTimeoutMs < 0) throw new TypeError(`invalid receiveTimeoutMs ${opts.receiveTimeoutMs}`);
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
      onCopyDataPart: (piece, offset, total) => this.onPart(piece, offset, total),
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
    if (this.receiveTimeoutMs > 0 && !this.finished) {
      // From now: an answer to START_REPLICATION that never comes is silence too.
      this.lastReceived = performance.now();
      this.armSilenceTimer(this.receiveTimeoutMs / 2);
    }
  }

  /** the CopyData message being received: its type, and its header (or a whole keepalive) so far */
  private msgType = 0;
  private readonly msgHead = Buffer.alloc(XLOGDATA_HEADER_SIZE);
  private msgHeadUsed = 0;
  /** LSN of the next WAL byte of the current XLogData message, and its header's fields */
  private msgLsn: Lsn = 0n;
  private msgWalEnd: Lsn = 0n;
  private msgSendTime = 0n;

  /**
   * A piece of a CopyData message, as a view of the socket's read buffer valid during the call
   * (ReplicationCommand's raw framing): WAL goes straight from the read into the slabs, with no
   * copy of each read for pg-protocol and no garbage per message. Headers and keepalives split
   * across reads are gathered in msgHead.
   */
  private onPart(piece: Buffer, offset: number, total: number): void {
    this.lastReceived = performance.now();
    this.pinged = false;
    if (offset === 0) {
      this.msgType = total > 0 ? piece[0]! : -1;
      this.msgHeadUsed = 0;
      if (this.msgType !== CopyDataCode.XLogData && this.msgType !== CopyDataCode.Keepalive) {
        throw new ReplicationError('protocol', `unexpected replication message type 0x${this.msgType.toString(16)}`);
      }
    }
    const headSize = this.msgType === CopyDataCode.XLogData ? XLOGDATA_HEADER_SIZE : Math.min(total, XLOGDATA_HEADER_SIZE);
    let rest = piece;
    if (this.msgHeadUsed < headSize) {
      const n = Math.min(headSize - this.msgHeadUsed, rest.length);
      rest.copy(this.msgHead, this.msgHeadUsed, 0, n);
      this.msgHeadUsed += n;
      rest = rest.subarray(n);
      if (this.msgHeadUsed < headSize) {
        if (offset + piece.length === total) throw new ReplicationError('protocol', `truncated replication message (${total} bytes)`);
        return;
      }
      if (this.msgType === CopyDataCode.XLogData) {
        const h = parseXLogDataHeader(this.msgHead);
        this.msgLsn = h.walStart;
        this.msgWalEnd = h.walEnd;
        this.msgSendTime = h.sendTime;
      } else {
        this.onKeepalive(parseKeepalive(this.msgHead.subarray(0, headSize)));
        return;
      }
    }
    if (this.msgType !== CopyDataCode.XLogData || rest.length === 0 || this.stopping) return;
    const end = this.append(rest, 0, this.msgLsn, this.msgWalEnd, this.msgSendTime);
    this.msgLsn = end;
    if (end > this.write) this.write = end;
  }

  private onKeepalive(k: KeepaliveMessage): void {
    // Answer at once with what the caller has declared durable; the caller sees it too and
    // may fsync and report again.
    if (k.replyRequested) this.sendCurrent(false);
    this.tail = null;
    this.queue.push(k);
    this.wake();
  }

  /**
   * Copies WAL bytes `chunk[from..]` (a view of the socket's read buffer) into the current slab, growing the
   * queued chunk they continue, or queueing a new one. Returns the LSN after the last byte.
   */
  private append(chunk: Buffer, from: number, lsn: Lsn, walEnd: Lsn, sendTime: bigint): Lsn {
    const total = chunk.length - from;
    while (from < chunk.length) {
      if (this.slab && this.reuse && this.slab.refs === 0) {
        // Everything cut from it so far was written and given back: start over at its head.
        this.slabUsed = 0;
      } else if (!this.slab || this.slabUsed === this.slab.buf.length) {
        this.retire(this.slab);
        this.slab = this.freeSlabs.pop() ?? { buf: Buffer.allocUnsafeSlow(SLAB_SIZE), refs: 0 };
        this.slabUsed = 0;
      }
      const n = Math.min(chunk.length - from, this.slab.buf.length - this.slabUsed);
      chunk.copy(this.slab.buf, this.slabUsed, from, from + n);
      const t = this.tail;
      if (t && t.slab === this.slab && t.offset + t.length === this.slabUsed && t.end === lsn) {
        t.length += n;
        t.end += BigInt(n);
        t.walEnd = walEnd;
        t.sendTime = sendTime;
      } else {
        const p: PendingChunk = { type: 'pending', walStart: lsn, end: lsn + BigInt(n), walEnd, sendTime, slab: this.slab, offset: this.slabUsed, length: n };
        this.slab.refs++;
        this.queue.push(p);
        this.tail = p;
      }
      this.slabUsed += n;
      from += n;
      lsn += BigInt(n);
    }
    this.queuedBytes += total;
    this.burstBytes += total;
    this.serverAhead = walEnd > lsn;
    if (!this.paused && this.queuedBytes >= this.hwm) this.setPaused(true);
    if (this.coalescing) {
      // Something restarted reading behind our back (Node's stream machinery may): stop again.
      if (this.conn) setHandleReading(this.conn.stream, false);
    } else if (this.coalesceMs > 0 && !this.burstCheck) {
      this.burstCheck = setImmediate(() => this.endOfBurst());
    }
    this.wake();
    return lsn;
  }

  /** A slab no longer written into: back to the free list once no chunk refers to it. */
  private retire(slab: Slab | null): void {
    if (slab && this.reuse && slab.refs === 0 && this.freeSlabs.length < 2) this.freeSlabs.push(slab);
  }

  /** A chunk cut from `slab` is no longer queued or lent. */
  private unref(slab: Slab): void {
    slab.refs--;
    if (slab.refs === 0 && slab !== this.slab) this.retire(slab);
  }

  /**
   * Runs once the reads of this event-loop turn are done. When the server sends as it commits
   * (its end of WAL is where its last message ends), wait readCoalesceMs before reading again, so
   * that the next read brings several commits at once. When it has a backlog (its end of WAL is
   * beyond what it sent, or the burst was big), keep reading: the socket buffers, not the
   * server, set the size of a read then.
   */
  private endOfBurst(): void {
    this.burstCheck = null;
    const backlog = this.serverAhead || this.burstBytes >= BURST_NO_DELAY;
    this.burstBytes = 0;
    if (backlog || this.coalescing || this.paused || this.finished || this.stopping || !this.copyOpen || !this.conn) return;
    // Stopped here, once this turn's reads and Node's own follow-up reads are over, the socket
    // stays unread until the timer: no wake-up per commit meanwhile.
    if (!setHandleReading(this.conn.stream, false)) return;
    this.coalescing = true;
    // One timer re-armed for every pause: no allocation per read.
    if (this.coalesceTimer) this.coalesceTimer.refresh();
    else this.coalesceTimer = setTimeout(() => this.endOfCoalescing(), this.coalesceMs);
  }

  private endOfCoalescing(): void {
    if (!this.coalescing) return;
    this.coalescing = false;
    if (this.conn) setHandleReading(this.conn.stream, true);
  }

  /**
   * Backpressure: a paused socket goes on reading until its own 16 KiB buffer is full, then
   * stops; resume() delivers what it holds and reads on.
   */
  private setPaused(on: boolean): void {
    if (on === this.paused || !this.conn) return;
    this.paused = on;
    if (on) {
      // The queue is full: gathering is moot, and the socket's own machinery stops reading now.
      if (this.coalesceTimer) clearTimeout(this.coalesceTimer);
      this.coalesceTimer = null;
      this.coalescing = false;
      this.conn.stream.pause();
    } else {
      this.conn.stream.resume();
      // resume() may not restart a handle we stopped ourselves (the Readable thinks a read is
      // pending): restart it.
      setHandleReading(this.conn.stream, true);
    }
    this.silencePaused(on);
  }

  // ------------------------------------------------------------------ silence (receiveTimeoutMs)

  /** (Re)schedules the one silence timer `ms` from now. */
  private armSilenceTimer(ms: number): void {
    if (this.silenceTimer) clearTimeout(this.silenceTimer);
    this.silenceTimer = setTimeout(() => this.onSilenceTimer(), Math.max(1, Math.ceil(ms)));
    this.silenceTimer.unref();
  }

  private stopSilenceTimer(): void {
    if (this.silenceTimer) clearTimeout(this.silenceTimer);
    this.silenceTimer = null;
    if (this.silenceCheck) clearImmediate(this.silenceCheck);
    this.silenceCheck = null;
  }

  /**
   * Backpressure pauses the silence clock: while we leave the socket unread nothing can arrive,
   * and that is our consumer's doing, not the server's. Reading again starts a new silence.
   */
  private silencePaused(paused: boolean): void {
    if (this.receiveTimeoutMs <= 0 || this.finished) return;
    if (paused) {
      this.stopSilenceTimer();
    } else {
      this.lastReceived = performance.now();
      this.pinged = false;
      this.armSilenceTimer(this.receiveTimeoutMs / 2);
    }
  }

  private onSilenceTimer(): void {
    this.silenceTimer = null;
    if (this.finished || this.paused) return;
    const silent = performance.now() - this.lastReceived;
    if (silent < this.receiveTimeoutMs / 2) {
      this.armSilenceTimer(this.receiveTimeoutMs / 2 - silent);
      return;
    }
    if (!this.pinged) {
      // Half the timeout without a word: ask for one. The walsender answers a status update
      // with replyRequested by a keepalive at once (walsender.c, ProcessStandbyReplyMessage).
      this.pinged = true;
      this.sendCurrent(true);
    }
    if (silent < this.receiveTimeoutMs) {
      this.armSilenceTimer(this.receiveTimeoutMs - silent);
      return;
    }
    // Timers run before the poll phase: when the event loop was blocked, what the server sent
    // meanwhile may be waiting in the socket. Decide after one more poll phase has read it.
    this.silenceCheck = setImmediate(() => {
      this.silenceCheck = null;
      if (this.finished || this.paused) return;
      const s = performance.now() - this.lastReceived;
      if (s < this.receiveTimeoutMs) this.armSilenceTimer(this.receiveTimeoutMs - s);
      else this.presumeDead();
    });
    // Not unref'd: an unref'd immediate waits for the poll phase to return, i.e. for some other event.
  }

  /** Nothing for receiveTimeoutMs: drop the connection (no goodbye can get through) and end with an error. */
  private presumeDead(): void {
    const err = new ReplicationError('connection', `no message from the server for ${formatSeconds(this.receiveTimeoutMs)} s (wal_receiver_timeout): connection presumed dead`);
    this.cmd.fail(err);
    this.rc.destroy();
  }

  private onServerCopyDone(): void {
    // The server ended the copy: end of timeline, or the answer to our CopyDone.
    if (this.copyOpen && !this.stopping) {
      this.copyOpen = false;
      this.conn?.endCopyFrom();
    }
    this.copyOpen = false;
    this.stopTimer();
    this.stopCoalescing();
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
    this.setPaused(false);
    this.stopCoalescing();
    this.stopSilenceTimer();
    this.wake();
  }

  private stopTimer(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** Reads at once from now on (stop, end of copy): nothing may wait behind a timer. */
  private stopCoalescing(): void {
    if (this.burstCheck) clearImmediate(this.burstCheck);
    this.burstCheck = null;
    if (this.coalesceTimer) clearTimeout(this.coalesceTimer);
    this.coalesceTimer = null;
    this.endOfCoalescing();
  }

  private wake(): void {
    const w = this.waiter;
    this.waiter = null;
    w?.();
  }

  /** Next message, or null when streaming has ended. Rejects on error. */
  async next(): Promise<WalMessage | null> {
    if (this.lent) {
      // The caller is done with the chunk it was given last (reuseBuffers).
      const l = this.lent;
      this.lent = null;
      this.unref(l);
    }
    for (;;) {
      const m = this.queue.shift();
      if (m) {
        if (m.type !== 'pending') return m;
        // Handed out: later bytes start a new chunk.
        if (this.tail === m) this.tail = null;
        this.queuedBytes -= m.length;
        if (this.reuse) this.lent = m.slab;
        if (this.paused && this.queuedBytes < this.hwm / 2) this.setPaused(false);
        return { type: 'xlogdata', walStart: m.walStart, walEnd: m.walEnd, sendTime: m.sendTime, data: m.slab.buf.subarray(m.offset, m.offset + m.length) };
      }
      if (this.finished) {
        if (this.error && !(this.stopping && this.error.kind !== 'server')) throw this.error;
        return null;
      }
      await new Promise<void>((r) => (this.waiter = r));
    }
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
      for (const m of this.queue) if (m.type === 'pending') this.unref(m.slab);
      this.queue.length = 0;
      this.queuedBytes = 0;
      this.tail = null;
      this.setPaused(false);
      this.stopCoalescing();
      if (this.copyOpen && this.conn) {
        this.sendCurrent(false);
        this.copyOpen = false;
        this.conn.endCopyFrom();
      }
    }
    return this.ended;
  }
}

/** 60000 → "60", 2500 → "2.5" */
export function formatSeconds(ms: number): string {
  return String(Math.round(ms / 100) / 10);
}

type SocketHandle = { reading?: boolean; readStop?: () => number; readStart?: () => number };

/**
 * Stops or restarts reading at the socket's handle, as net.Socket does itself for sockets made
 * with an `onread` buffer: the bytes wait in the kernel meanwhile. The Readable stays as it is,
 * so the next read is delivered as usual. Returns false when the socket has no such handle (no
 * gathering then; a TLS socket's handle has them too).
 */
function setHandleReading(socket: PgConnection['stream'], on: boolean): boolean {
  const h = (socket as { _handle?: SocketHandle | null })._handle;
  if (!h || typeof h.readStop !== 'function' || typeof h.readStart !== 'function') return false;
  if (!on && h.reading) {
    h.reading = false;
    h.readStop();
  } else if (on && !h.reading && !(socket as { destroyed?: boolean }).destroyed) {
    h.reading = true;
    h.readStart();
  }
  return true;
}
