/*
 * The WAL receiver: one per server, streams WAL through the replication slot into
 * `streaming/<segment>.partial`, fsyncs and acknowledges only what is on disk, archives each
 * completed segment into `wals/`, follows timeline switches, and works out where to resume after
 * a restart, a failover or an outage by itself. Replaces what Barman delegates to pg_receivewal.
 */
import { createHash, type Hash } from 'node:crypto';
import { constants as fsc, writeSync } from 'node:fs';
import { open, rename, stat, type FileHandle } from 'node:fs/promises';
import { setTimeout as delay } from 'node:timers/promises';
import {
  type Lsn, type ReplicationClient, type WalStream, type SystemIdentification, ReplicationError, SqlState,
  formatLsn, isPartialWalName, isWalSegmentName, parseLsn, parseTimelineHistory, parseWalFileName,
  segmentOf, segmentOffset, segmentStart, timelineForLsn, walFileName, historyFileName,
} from 'pg-replication';
import type { Catalog } from '../catalog/index.js';
import type { ServerConfig } from '../config/index.js';
import { BarmantsError, isBarmantsError } from '../errors/index.js';
import type { Logger } from '../log/index.js';
import { SqlSession, connectReplication, connectionFailure } from '../postgres/index.js';
import {
  type Codec, type Lock, type ServerLayout, acquireLock, checkCatalogIdentity, checkIdentity, ensureDir, fsyncDir, removeDurable,
} from '../repository/index.js';
import { archiveHistoryFile, archivePartialSegment, archiveSegment, setAside } from './archive.js';
import { listStreamingDir } from './getwal.js';
import { ancestryFromCatalog, backoffDelay, divergencePoint, firstSegmentStillOnServer, isSynchronousStandby } from './resume.js';

export interface WalReceiverOptions {
  server: ServerConfig;
  layout: ServerLayout;
  catalog: Catalog;
  logger: Logger;
  /** called after each segment is archived and recorded (the backup module completes WAITING_FOR_WALS backups) */
  onSegmentArchived?: (name: string) => void | Promise<void>;
  /** stop once every segment up to the one holding this LSN is archived (`backup --wal`) */
  stopAt?: Lsn;
  /**
   * the timeline of stopAt: only its segments count as "already archived" (after a PITR fork the
   * archive may hold later segments of another timeline)
   */
  stopAtTimeline?: number;
  /** overrides slot_name; null streams without a slot */
  slot?: string | null;
  /** 'auto' (default): synchronous when streaming_archiver_name is in synchronous_standby_names */
  synchronous?: 'auto' | boolean;
  /** take the per-server receive-wal lock (default true) */
  lock?: boolean;
  /** reconnect backoff, ms */
  backoffBaseMs?: number;
  backoffCapMs?: number;
}

export type ReceiverState = 'starting' | 'streaming' | 'retrying' | 'stopped' | 'failed';

interface OpenSegment {
  segno: bigint;
  name: string;
  path: string;
  fh: FileHandle;
  /**
   * sha256 of the bytes written so far, when they were all written by this process in order
   * from the segment's first byte (each session rewrites its first segment whole): the archive
   * then needs neither to read the segment back nor a worker thread to hash it.
   */
  hash: Hash | null;
  hashed: number;
}

interface StartPoint {
  lsn: Lsn;
  tli: number;
  why: string;
}

const HEARTBEAT_MS = 2000;
const MAX_ARCHIVE_BACKLOG = 4;
const MAX_START_CORRECTIONS = 4;
/**
 * Asynchronous mode: fsync as soon as this much is written and not fsynced, and otherwise
 * wal_flush_interval after the first byte written since the last fsync began. The byte trigger
 * bounds flush lag at high WAL rates (measured at 20 MB/s: median 1.07 MB with 2 MiB, under
 * 1 MB with 1 MiB); at a few MB/s the age trigger alone fires, about 5 fsyncs a second.
 */
const FLUSH_EVERY_BYTES = 1n << 20n;
/** Asynchronous mode: the longest the stream leaves the socket unread to gather commits (ms). */
const READ_COALESCE_MS = 20;
/** Queued WAL before the socket is paused: a few fsyncs' worth, the rest waits in the kernel. */
const STREAM_HIGH_WATER_MARK = 2 << 20;

export class WalReceiver {
  private readonly server: ServerConfig;
  private readonly layout: ServerLayout;
  private readonly catalog: Catalog;
  private readonly log: Logger;
  private readonly slotName: string | null;
  private readonly codec: Codec;
  private readonly level: number | undefined;
  private lock: Lock | null = null;

  private stream: WalStream | null = null;
  private segSize = 0;
  private tli = 0;
  private seg: OpenSegment | null = null;
  /** next byte expected from the server = end of what is written */
  private pos: Lsn = 0n;
  /** end of what is fsynced (monotonic within a run) */
  private flushed: Lsn = 0n;
  private synchronous = false;
  private stopRequested = false;
  private stopAtReached = false;
  private failure: unknown = null;
  private startOverride: StartPoint | null = null;
  private gapMessage: string | null = null;
  private state: ReceiverState = 'starting';
  /**
   * run() is retrying after a session broke, and no session has streamed since: a busy slot is
   * then most likely held by the server's walsender of the broken connection (it lets go after
   * its wal_sender_timeout), not by another receiver.
   */
  private interrupted = false;

  private ioTail: Promise<unknown> = Promise.resolve();
  private flushRun: Promise<void> | null = null;
  private flushAgain = false;
  /** fires wal_flush_interval after the first byte written since the last fsync began */
  private flushTimer: NodeJS.Timeout | null = null;
  private archiveTail: Promise<void> = Promise.resolve();
  private archivePending = 0;
  private archiveFailure: unknown = null;

  /** counters for reports and tests */
  readonly stats = { bytes: 0n, segments: 0, fsyncs: 0, maxFlushLag: 0n, reconnects: 0 };

  constructor(private readonly opts: WalReceiverOptions) {
    this.server = opts.server;
    this.layout = opts.layout;
    this.catalog = opts.catalog;
    this.log = opts.logger.child({ server: opts.server.name, component: 'receive-wal' });
    this.slotName = opts.slot !== undefined ? opts.slot : opts.server.slotName;
    this.codec = opts.server.walCompression.codec as Codec;
    this.level = opts.server.walCompression.level;
  }

  /** The positions of the current session. */
  get positions(): { timeline: number; received: Lsn; flushed: Lsn; synchronous: boolean } {
    return { timeline: this.tli, received: this.pos, flushed: this.flushed, synchronous: this.synchronous };
  }

  /** Streams until `signal` aborts (or stopAt is reached), reconnecting with capped backoff. */
  async run(signal: AbortSignal): Promise<void> {
    await this.takeLock();
    let attempt = 0;
    try {
      while (!signal.aborted && !this.stopAtReached) {
        const startedAt = this.pos;
        try {
          const streamed = await this.session(signal);
          if (streamed > 0n) attempt = 0;
          if (signal.aborted || this.stopAtReached) break;
          this.log.info('streaming ended; reconnecting');
        } catch (err) {
          if (signal.aborted) break;
          if (isFatal(err)) {
            this.heartbeat('failed', (err as Error).message);
            throw err;
          }
          // A session that received WAL before it broke was a working connection: the next
          // outage starts its backoff from the base again, not where the last one left it.
          if (this.pos > startedAt) attempt = 0;
          const msg = err instanceof Error ? err.message : String(err);
          this.interrupted = true;
          this.log.warn(`streaming interrupted: ${msg}`);
          this.heartbeat('retrying', msg);
        }
        const wait = backoffDelay(attempt++, this.opts.backoffBaseMs ?? 500, this.opts.backoffCapMs ?? 30_000);
        this.stats.reconnects++;
        this.log.debug(`reconnecting in ${wait} ms`);
        await delay(wait, undefined, { signal }).catch(() => undefined);
      }
      this.heartbeat('stopped', this.gapMessage);
    } finally {
      await this.releaseLock();
    }
  }

  /** One connection's worth of streaming (no retry); resolves when stopped or stopAt is reached. */
  async runOnce(signal: AbortSignal = new AbortController().signal): Promise<void> {
    await this.takeLock();
    try {
      await this.session(signal);
      this.heartbeat('stopped', this.gapMessage);
    } finally {
      await this.releaseLock();
    }
  }

  private async takeLock(): Promise<void> {
    if (this.opts.lock === false || this.lock) return;
    this.lock = await acquireLock(this.layout.lockFile('receive-wal'), { purpose: 'receive-wal', log: (m) => this.log.warn(m) });
  }

  private async releaseLock(): Promise<void> {
    const l = this.lock;
    this.lock = null;
    await l?.release().catch(() => undefined);
  }

  // ------------------------------------------------------------------ one session

  private async session(signal: AbortSignal): Promise<bigint> {
    this.stopRequested = false;
    this.failure = null;
    this.state = 'starting';
    const before = this.stats.bytes;
    await this.layout.ensure();
    const rc = await connectReplication(this.server, 'receive-wal');
    const timer = setInterval(() => this.heartbeat(this.state, this.gapMessage), HEARTBEAT_MS);
    const onAbort = (): void => void this.requestStop('stop requested');
    signal.addEventListener('abort', onAbort);
    try {
      let ident = await rc.identifySystem();
      this.segSize = await rc.walSegmentSize();
      checkCatalogIdentity(this.catalog, this.server.name, ident.systemId, this.layout.dir);
      await checkIdentity(this.layout, { systemId: ident.systemId, pgVersion: rc.serverVersionNum, walSegmentSize: this.segSize }, {
        log: (m) => this.log.info(m),
      });
      this.catalog.upsertServer({ name: this.server.name, systemId: ident.systemId, pgVersion: rc.serverVersionNum, walSegmentSize: this.segSize });
      this.synchronous = await this.resolveSynchronous();
      const slot = await this.ensureSlot(rc);
      await this.recoverStreamingDir();
      if (this.stopAtAlreadyArchived()) {
        this.stopAtReached = true;
        return 0n;
      }
      if (ident.timeline > 1) await this.fetchHistory(rc, ident.timeline);
      let start = this.startOverride ?? (await this.determineStart(ident, slot));
      this.startOverride = null;
      let corrections = 0;
      while (!signal.aborted && !this.stopRequested) {
        this.tli = start.tli;
        this.pos = segmentStart(segmentOf(start.lsn, this.segSize), this.segSize);
        if (this.flushed < this.pos) this.flushed = this.pos;
        this.log.info(`starting to stream at ${formatLsn(this.pos)} on timeline ${this.tli} (${start.why})${this.synchronous ? ', synchronous' : ''}`);
        let end;
        try {
          end = await this.streamFrom(rc, slot.name);
        } catch (err) {
          const next = await this.correctStart(rc, err, start);
          if (!next || ++corrections > MAX_START_CORRECTIONS) throw this.describe(err);
          start = next;
          continue;
        }
        if (end.reason !== 'timeline-end') break;
        start = await this.switchTimeline(rc, end.nextTimeline, end.nextStart);
        corrections = 0;
      }
      return this.stats.bytes - before;
    } finally {
      signal.removeEventListener('abort', onAbort);
      clearInterval(timer);
      this.cancelFlushTimer();
      await this.closeSegment().catch((e) => this.log.warn(`cannot close the partial segment: ${(e as Error).message}`));
      await this.drainArchive();
      this.stream = null;
      await rc.close();
      this.state = 'stopped';
      if (this.archiveFailure) {
        const f = this.archiveFailure;
        this.archiveFailure = null;
        throw f;
      }
    }
  }

  /** Streams one START_REPLICATION until it ends (timeline end, or our stop). */
  private async streamFrom(rc: ReplicationClient, slot: string | null): Promise<{ reason: 'stopped' } | { reason: 'timeline-end'; nextTimeline: number; nextStart: Lsn }> {
    const stream = rc.startReplication({
      ...(slot ? { slot } : {}),
      start: this.pos,
      timeline: this.tli,
      statusIntervalMs: 5000,
      highWaterMark: STREAM_HIGH_WATER_MARK,
      // Each chunk is written (and hashed) before the loop asks for the next one.
      reuseBuffers: true,
      // A synchronous standby reads at once: a commit waits for our fsync. Otherwise gather a few
      // commits per read (a small fraction of the flush interval, so the lag barely moves).
      readCoalesceMs: this.synchronous ? 0 : Math.min(READ_COALESCE_MS, Math.floor(this.server.walFlushIntervalMs / 10)),
      // A half-open connection (packets dropped, no reset) sends nothing, ever: after
      // wal_receiver_timeout of silence the stream ends with a connection error, and run()
      // reconnects with backoff.
      receiveTimeoutMs: this.server.walReceiverTimeoutMs,
    });
    this.stream = stream;
    // Monotonic feedback: after a timeline switch we restart below what was already reported.
    stream.sendStatus({ flush: this.flushed });
    if (this.stopRequested) void stream.stop();
    for await (const m of stream) {
      if (this.state !== 'streaming') {
        this.state = 'streaming';
        this.interrupted = false;
        this.heartbeat('streaming', this.gapMessage);
      }
      if (m.type === 'xlogdata') {
        await this.writeChunk(m.walStart, m.data);
        const lag = m.walEnd - this.flushed;
        if (lag > this.stats.maxFlushLag) this.stats.maxFlushLag = lag;
      } else if (m.replyRequested) {
        await this.flush();
      }
      if (this.failure) throw this.failure;
      if (this.archiveFailure) throw this.archiveFailure;
      if (this.archivePending >= MAX_ARCHIVE_BACKLOG) await this.archiveTail;
    }
    const end = await stream.ended;
    this.stream = null;
    return end;
  }

  /** Asks the current stream to end after a last fsync and status update. */
  private async requestStop(why: string): Promise<void> {
    if (this.stopRequested) return;
    this.stopRequested = true;
    this.log.info(`${why}: flushing and stopping`);
    try {
      await this.flush();
    } catch (err) {
      this.failure ??= err;
    }
    await this.stream?.stop().catch(() => undefined);
  }

  // ------------------------------------------------------------------ writing

  private async writeChunk(walStart: Lsn, data: Buffer): Promise<void> {
    let lsn = walStart;
    if (lsn < this.pos) {
      const skip = this.pos - lsn;
      if (skip >= BigInt(data.length)) return;
      data = data.subarray(Number(skip));
      lsn = this.pos;
    } else if (lsn > this.pos) {
      throw new ReplicationError('protocol', `the server sent WAL at ${formatLsn(lsn)} but ${formatLsn(this.pos)} was expected`);
    }
    while (data.length > 0) {
      const segno = segmentOf(lsn, this.segSize);
      if (!this.seg || this.seg.segno !== segno) await this.openSegment(segno);
      const seg = this.seg!;
      const off = segmentOffset(lsn, this.segSize);
      const n = Math.min(data.length, this.segSize - off);
      // One pwrite per chunk (the stream hands over the contiguous WAL of a whole socket read),
      // straight from this thread: a thread-pool round trip per write cost more than the write.
      // Durability comes from the fsyncs below, not from these writes.
      let done = 0;
      try {
        while (done < n) done += writeSync(seg.fh.fd, data, done, n - done, off + done);
      } catch (err) {
        throw this.writeFailure(err, seg);
      }
      if (seg.hash) {
        if (seg.hashed === off) {
          seg.hash.update(data.subarray(0, n));
          seg.hashed += n;
        } else {
          seg.hash = null;
        }
      }
      const end = lsn + BigInt(n);
      data = data.subarray(n);
      lsn = end;
      this.stats.bytes += BigInt(n);
      if (segmentOffset(end, this.segSize) === 0) await this.completeSegment(end);
      else this.pos = end;
    }
    if (this.synchronous || this.pos - this.flushed >= FLUSH_EVERY_BYTES) void this.flush().catch((e) => (this.failure ??= e));
    else if (this.pos > this.flushed && !this.flushTimer) {
      this.flushTimer = setTimeout(() => {
        this.flushTimer = null;
        void this.flush().catch((e) => (this.failure ??= e));
      }, this.server.walFlushIntervalMs);
    }
  }

  /** A failed write into the partial: say which file and why, in words an operator acts on. */
  private writeFailure(err: unknown, seg: OpenSegment): unknown {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOSPC' || code === 'EDQUOT') {
      return new BarmantsError('io', `no space left on the device holding ${seg.path} (${code}): WAL after ${formatLsn(this.pos)} is not stored`, {
        cause: err,
        hint: `free space in ${this.layout.streamingDir}; the receiver retries and resumes from the last byte on disk`,
      });
    }
    if (code) return new BarmantsError('io', `cannot write ${seg.path}: ${(err as Error).message}`, { cause: err });
    return err;
  }

  private cancelFlushTimer(): void {
    if (this.flushTimer) clearTimeout(this.flushTimer);
    this.flushTimer = null;
  }

  private async openSegment(segno: bigint): Promise<void> {
    await this.closeSegment();
    const name = walFileName(this.tli, segno, this.segSize);
    const path = this.layout.partialPath(name);
    await ensureDir(this.layout.streamingDir);
    const fh = await open(path, fsc.O_RDWR | fsc.O_CREAT, 0o600);
    try {
      const st = await fh.stat();
      if (st.size !== this.segSize) {
        // New (sparse, full size, as pg_receivewal's), or an empty marker left by --reset.
        await fh.truncate(this.segSize);
        await fh.sync();
        await fsyncDir(this.layout.streamingDir);
      }
    } catch (err) {
      await fh.close();
      throw err;
    }
    // Hash as we write only when the archive will not (it compresses, and hashes, in a worker).
    this.seg = { segno, name, path, fh, hash: this.codec === 'none' ? createHash('sha256') : null, hashed: 0 };
  }

  /** Runs fsync/rename work one at a time, so feedback never gets ahead of a rename. */
  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.ioTail.then(fn);
    this.ioTail = run.catch(() => undefined);
    return run;
  }

  /** fsyncs what is written and reports it; concurrent calls coalesce. */
  flush(): Promise<void> {
    if (this.flushRun) {
      this.flushAgain = true;
      return this.flushRun;
    }
    this.flushRun = (async () => {
      try {
        do {
          this.flushAgain = false;
          await this.exclusive(() => this.flushOnce());
        } while (this.flushAgain);
      } finally {
        this.flushRun = null;
      }
    })();
    return this.flushRun;
  }

  private async flushOnce(): Promise<void> {
    // Whatever is written from now on waits for the next fsync, at most wal_flush_interval.
    this.cancelFlushTimer();
    const target = this.pos;
    if (this.seg && target > this.flushed) {
      await this.seg.fh.datasync();
      this.stats.fsyncs++;
    }
    if (target > this.flushed) this.flushed = target;
    this.report();
  }

  private report(): void {
    this.stream?.sendStatus({ write: this.pos, flush: this.flushed });
  }

  /** The segment's last byte is written: make it a complete file, report it, archive it in the background. */
  private async completeSegment(end: Lsn): Promise<void> {
    await this.exclusive(async () => {
      const seg = this.seg!;
      this.seg = null;
      await seg.fh.sync();
      await seg.fh.close();
      this.stats.fsyncs++;
      // Rename before reporting: once the server hears "flushed", it may recycle this segment.
      const complete = `${this.layout.streamingDir}/${seg.name}`;
      await rename(seg.path, complete);
      await fsyncDir(this.layout.streamingDir);
      this.pos = end;
      if (end > this.flushed) this.flushed = end;
      this.report();
      const checksum = seg.hash && seg.hashed === this.segSize ? seg.hash.digest('hex') : undefined;
      this.enqueueArchive(seg.name, complete, checksum);
    });
  }

  /** fsyncs and closes the open partial (stop, error, timeline end); it stays in streaming/. */
  private async closeSegment(): Promise<void> {
    await this.exclusive(async () => {
      const seg = this.seg;
      if (!seg) return;
      this.seg = null;
      try {
        await seg.fh.sync();
      } finally {
        await seg.fh.close();
      }
      if (this.pos > this.flushed) this.flushed = this.pos;
    });
  }

  // ------------------------------------------------------------------ archiving

  private enqueueArchive(name: string, path: string, checksum?: string): void {
    this.archivePending++;
    this.archiveTail = this.archiveTail
      .then(() => this.archiveComplete(name, path, checksum))
      .catch((err) => {
        this.archiveFailure ??= err;
        this.log.error(`cannot archive ${name}: ${(err as Error).message}`);
      })
      .finally(() => {
        this.archivePending--;
      });
  }

  private async drainArchive(): Promise<void> {
    await this.archiveTail;
  }

  private async archiveComplete(name: string, path: string, checksum?: string): Promise<void> {
    const r = await archiveSegment({
      layout: this.layout, catalog: this.catalog, name, segSize: this.segSize, sourcePath: path, codec: this.codec,
      ...(this.level !== undefined ? { level: this.level } : {}),
      ...(checksum !== undefined ? { checksum } : {}),
    });
    if (r.outcome === 'duplicate') {
      this.log.error(`segment ${name} is already archived with different content: the new copy was set aside as ${r.path}`);
      return;
    }
    await removeDurable(path);
    this.stats.segments++;
    this.log.debug(`archived ${name} (${r.outcome})`);
    if (this.opts.onSegmentArchived) {
      try {
        await this.opts.onSegmentArchived(name);
      } catch (err) {
        this.log.warn(`onSegmentArchived(${name}) failed: ${(err as Error).message}`);
      }
    }
    if (this.opts.stopAt !== undefined) {
      const { segno } = parseWalFileName(name, this.segSize);
      if (segno >= segmentOf(this.opts.stopAt, this.segSize)) {
        this.stopAtReached = true;
        void this.requestStop(`segment ${name} holds ${formatLsn(this.opts.stopAt)}`);
      }
    }
  }

  private stopAtAlreadyArchived(): boolean {
    if (this.opts.stopAt === undefined) return false;
    const segno = segmentOf(this.opts.stopAt, this.segSize);
    const timeline = this.opts.stopAtTimeline;
    return this.catalog
      .listWalSegments(this.server.name, { fromSegno: segno, limit: 1, ...(timeline !== undefined ? { timeline } : {}) })
      .some((r) => r.segno >= segno);
  }

  /**
   * What a crash may have left in streaming/: complete segments (renamed, not yet archived) are
   * archived now; of several partials, all but the newest are a finished timeline's last segment.
   */
  private async recoverStreamingDir(): Promise<void> {
    const names = await listStreamingDir(this.layout);
    for (const n of names.filter(isWalSegmentName)) {
      this.log.info(`archiving ${n}, received before the last stop`);
      await this.archiveComplete(n, `${this.layout.streamingDir}/${n}`);
    }
    const partials = names.filter(isPartialWalName);
    for (const p of partials.slice(0, -1)) {
      const name = p.slice(0, 24);
      const path = `${this.layout.streamingDir}/${p}`;
      const r = await archivePartialSegment({ layout: this.layout, catalog: this.catalog, name, segSize: this.segSize, sourcePath: path, codec: this.codec });
      await removeDurable(path);
      this.log.info(`archived the last segment of a finished timeline as ${r.path}`);
    }
  }

  // ------------------------------------------------------------------ where to start

  private async determineStart(ident: SystemIdentification, slot: { name: string | null; restartLsn: Lsn | null; restartTli: number | null }): Promise<StartPoint> {
    const partial = (await listStreamingDir(this.layout)).filter(isPartialWalName).pop();
    if (partial) {
      const name = partial.slice(0, 24);
      const { tli, segno } = parseWalFileName(name, this.segSize);
      if (this.catalog.getWalSegment(this.server.name, name)) {
        await removeDurable(`${this.layout.streamingDir}/${partial}`);
        return { lsn: segmentStart(segno + 1n, this.segSize), tli, why: `after ${name}, already archived` };
      }
      // Its tail may not have been fsynced: rewrite the whole segment (the slot kept it on the server).
      return { lsn: segmentStart(segno, this.segSize), tli, why: `resuming ${partial}` };
    }
    const last = this.catalog.lastWalSegment(this.server.name);
    if (last) return { lsn: segmentStart(last.segno + 1n, this.segSize), tli: last.timeline, why: `after the last archived segment ${last.name}` };
    if (slot.restartLsn !== null) {
      return { lsn: slot.restartLsn, tli: slot.restartTli ?? ident.timeline, why: `restart_lsn of slot ${slot.name}` };
    }
    return { lsn: ident.xlogPos, tli: ident.timeline, why: "the server's current position (empty archive)" };
  }

  /**
   * START_REPLICATION refused our start: work out the right one (failover, PITR, outage) or
   * return null when the error is not about the start point.
   */
  private async correctStart(rc: ReplicationClient, err: unknown, start: StartPoint): Promise<StartPoint | null> {
    // Only a refusal of the start point itself (nothing streamed yet) is about where to start.
    if (!(err instanceof ReplicationError) || err.kind !== 'server') return null;
    if (this.pos !== segmentStart(segmentOf(start.lsn, this.segSize), this.segSize)) return null;
    const from = this.pos;
    if (/not in this server's history/.test(err.message)) {
      const ident = await rc.identifySystem();
      let serverHistory: ReturnType<typeof parseTimelineHistory> = [];
      if (ident.timeline > 1) {
        const h = await rc.timelineHistory(ident.timeline);
        await archiveHistoryFile(this.layout, this.catalog, ident.timeline, h.content);
        serverHistory = parseTimelineHistory(h.content.toString('utf8'));
      }
      const ours = ancestryFromCatalog(this.catalog.listHistoryFiles(this.server.name), this.tli);
      const d = divergencePoint({ tli: this.tli, history: ours }, { tli: ident.timeline, history: serverHistory }, from);
      const next = segmentStart(segmentOf(d.lsn, this.segSize), this.segSize);
      if (d.tli === this.tli && next === from) return null;
      await this.setAsidePartials('diverged');
      this.log.warn(
        `the server (timeline ${ident.timeline}) does not have timeline ${this.tli} at ${formatLsn(from)}: its history parts ` +
          `from the archive's at ${formatLsn(d.lsn)}; resuming on timeline ${d.tli} at ${formatLsn(next)} ` +
          `(WAL archived beyond that point on timeline ${this.tli} stays in the archive)`,
      );
      return { lsn: next, tli: d.tli, why: `failover: following timeline ${d.tli}` };
    }
    if (err.code === SqlState.UndefinedFile && /already been removed/.test(err.message)) {
      const next = await this.afterRemovedWal(rc, from);
      if (!next || next.lsn <= from) return null;
      const firstMissing = walFileName(this.tli, segmentOf(from, this.segSize), this.segSize);
      const lastMissing = walFileName(next.tli, segmentOf(next.lsn, this.segSize) - 1n, this.segSize);
      this.gapMessage = `gap: WAL ${firstMissing} to ${lastMissing} (${formatLsn(from)} to ${formatLsn(next.lsn)}) is no longer on the server and is missing from the archive`;
      this.log.critical(`${this.gapMessage}; continuing from ${formatLsn(next.lsn)} on timeline ${next.tli} (${next.why}). Take a new backup: recovery cannot cross this gap`);
      this.heartbeat('streaming', this.gapMessage);
      await this.setAsidePartials('gap');
      return next;
    }
    return null;
  }

  /**
   * Where to resume when the server no longer has WAL at `from`: the oldest segment still in its
   * pg_wal (so that the gap is only what is really gone), else the slot's restart point, else
   * the server's current position.
   */
  private async afterRemovedWal(rc: ReplicationClient, from: Lsn): Promise<StartPoint | null> {
    const ident = await rc.identifySystem();
    let serverHistory: ReturnType<typeof parseTimelineHistory> = [];
    if (ident.timeline > 1) serverHistory = parseTimelineHistory((await rc.timelineHistory(ident.timeline)).content.toString('utf8'));
    const walFiles = await this.serverWalFiles();
    if (walFiles) {
      const first = firstSegmentStillOnServer({
        walFiles, segSize: this.segSize, fromSegno: segmentOf(from, this.segSize), currentLsn: ident.xlogPos, serverTli: ident.timeline, serverHistory,
      });
      if (first) return { lsn: segmentStart(first.segno, this.segSize), tli: first.tli, why: `the oldest segment still in the server's pg_wal` };
    }
    if (this.slotName) {
      const s = await readSlotInfo(this.server, rc, this.slotName).catch(() => null);
      if (s?.restartLsn && s.restartLsn > from) {
        return { lsn: segmentStart(segmentOf(s.restartLsn, this.segSize), this.segSize), tli: s.restartTli ?? timelineForLsn(serverHistory, ident.timeline, s.restartLsn), why: `restart_lsn of slot ${this.slotName}` };
      }
    }
    return { lsn: segmentStart(segmentOf(ident.xlogPos, this.segSize), this.segSize), tli: ident.timeline, why: "the server's current position" };
  }

  /**
   * The file names in the server's pg_wal, through the SQL conninfo: pg_ls_waldir() needs a
   * superuser or a member of pg_monitor. Null (and a log line saying so) when it cannot be read.
   */
  private async serverWalFiles(): Promise<string[] | null> {
    const fallback = 'the gap is reported from the slot or the current position, and may include WAL the server still has';
    if (!this.server.conninfo) {
      this.log.warn(`cannot list the server's pg_wal without conninfo: ${fallback}`);
      return null;
    }
    try {
      const session = await SqlSession.connect(this.server, 'check');
      try {
        return (await session.query<{ name: string }>('SELECT name FROM pg_ls_waldir()')).map((r) => r.name);
      } finally {
        await session.close();
      }
    } catch (err) {
      this.log.warn(`cannot list the server's pg_wal (${(err as Error).message}; pg_ls_waldir() needs a superuser or the pg_monitor role): ${fallback}`);
      return null;
    }
  }

  private async setAsidePartials(reason: string): Promise<void> {
    await this.closeSegment();
    for (const p of (await listStreamingDir(this.layout)).filter(isPartialWalName)) {
      const dest = await setAside(this.layout, `${this.layout.streamingDir}/${p}`, reason);
      this.log.warn(`moved ${p} to ${dest}`);
    }
  }

  /** End of timeline: store the new history, archive the old timeline's last segment as .partial. */
  private async switchTimeline(rc: ReplicationClient, next: number, nextStart: Lsn): Promise<StartPoint> {
    const old = this.tli;
    const seg = this.seg;
    await this.closeSegment();
    await this.fetchHistory(rc, next);
    await this.drainArchive();
    if (seg) {
      const r = await archivePartialSegment({
        layout: this.layout, catalog: this.catalog, name: seg.name, segSize: this.segSize, sourcePath: seg.path, codec: this.codec,
      });
      await removeDurable(seg.path);
      this.log.info(`timeline ${old} ended at ${formatLsn(nextStart)}; its last segment is archived as ${r.path}`);
    }
    if (nextStart > this.flushed) this.flushed = nextStart;
    return { lsn: nextStart, tli: next, why: `timeline ${next} begins at ${formatLsn(nextStart)}` };
  }

  private async fetchHistory(rc: ReplicationClient, tli: number): Promise<void> {
    const known = this.catalog.getHistoryFile(this.server.name, tli);
    if (known) {
      try {
        await stat(this.layout.walFilePath(historyFileName(tli), 'none'));
        return;
      } catch {
        /* the file is gone: fetch it again */
      }
    }
    const h = await rc.timelineHistory(tli);
    const r = await archiveHistoryFile(this.layout, this.catalog, tli, h.content);
    if (r.outcome === 'duplicate') this.log.error(`history file ${h.filename} differs from the archived one: set aside as ${r.path}`);
    else if (r.outcome === 'added') this.log.info(`archived timeline history ${h.filename}`);
  }

  // ------------------------------------------------------------------ slot, synchronous mode

  private async ensureSlot(rc: ReplicationClient): Promise<{ name: string | null; restartLsn: Lsn | null; restartTli: number | null }> {
    const name = this.slotName;
    if (!name) {
      this.log.warn('streaming without a replication slot: the server may remove WAL before it is received');
      return { name: null, restartLsn: null, restartTli: null };
    }
    if (this.server.createSlot === 'auto') {
      try {
        await rc.createPhysicalSlot(name, { reserveWal: true });
        this.log.info(`created replication slot '${name}'`);
      } catch (err) {
        if (!(err instanceof ReplicationError && err.code === SqlState.DuplicateObject)) throw connectionFailure(this.server, `cannot create replication slot '${name}'`, err);
      }
    }
    const info = await readSlotInfo(this.server, rc, name);
    if (info === null && rc.serverVersionNum >= 150000) throw missingSlot(this.server, name);
    return { name, restartLsn: info?.restartLsn ?? null, restartTli: info?.restartTli ?? null };
  }

  private async resolveSynchronous(): Promise<boolean> {
    const s = this.opts.synchronous ?? 'auto';
    if (s !== 'auto') return s;
    if (!this.server.conninfo) return false;
    try {
      const session = await SqlSession.connect(this.server, 'check');
      try {
        const value = await session.setting('synchronous_standby_names');
        return isSynchronousStandby(value, this.server.streamingArchiverName);
      } finally {
        await session.close();
      }
    } catch (err) {
      this.log.warn(`cannot read synchronous_standby_names (${(err as Error).message}): streaming asynchronously`);
      return false;
    }
  }

  private describe(err: unknown): unknown {
    if (err instanceof ReplicationError && err.code === SqlState.UndefinedObject && this.slotName) return missingSlot(this.server, this.slotName);
    if (err instanceof ReplicationError && err.code === SqlState.ObjectInUse && this.interrupted) {
      // Reconnected before the server noticed that the old connection is dead (a half-open one
      // found by wal_receiver_timeout, say): its walsender still holds the slot. Retry.
      return new BarmantsError('server', `replication slot '${this.slotName}' is still in use on server '${this.server.name}', most likely by the walsender of the broken connection until the server times it out (wal_sender_timeout): ${err.message}`, {
        cause: err,
        hint: 'the receiver retries with backoff; if this lasts, another WAL receiver (barmants on another host, or pg_receivewal) streams from this slot',
      });
    }
    if (err instanceof ReplicationError && err.code === SqlState.ObjectInUse) {
      return new BarmantsError('lock', `replication slot '${this.slotName}' is already in use on server '${this.server.name}'`, {
        hint: 'another WAL receiver (barmants on another host, or pg_receivewal) streams from this slot: stop it, or configure another slot_name',
      });
    }
    if (err instanceof ReplicationError) return connectionFailure(this.server, 'streaming failed', err);
    return err;
  }

  private heartbeat(state: ReceiverState, message: string | null): void {
    this.state = state;
    try {
      this.catalog.setHeartbeat({
        server: this.server.name, pid: process.pid, state, receivedLsn: this.pos || null, flushedLsn: this.flushed || null,
        timeline: this.tli || null, message, updatedAt: new Date().toISOString(),
      });
    } catch (err) {
      this.log.debug(`cannot record heartbeat: ${(err as Error).message}`);
    }
  }
}

function isFatal(err: unknown): boolean {
  return isBarmantsError(err) && (err.kind === 'config' || err.kind === 'integrity' || err.kind === 'usage' || err.kind === 'lock');
}

function missingSlot(server: ServerConfig, slot: string): BarmantsError {
  return new BarmantsError('config', `replication slot '${slot}' does not exist on server '${server.name}'`, {
    hint: `run \`barmants receive-wal --create-slot ${server.name}\`, or set create_slot = auto`,
  });
}

/** A slot's restart point: READ_REPLICATION_SLOT on 15+, pg_replication_slots (conninfo) on 14. */
export async function readSlotInfo(
  server: ServerConfig,
  rc: ReplicationClient,
  slot: string,
): Promise<{ restartLsn: Lsn | null; restartTli: number | null } | null> {
  if (rc.serverVersionNum >= 150000) {
    const s = await rc.readSlot(slot);
    return s ? { restartLsn: s.restartLsn, restartTli: s.restartTli } : null;
  }
  if (!server.conninfo) return { restartLsn: null, restartTli: null };
  try {
    const session = await SqlSession.connect(server, 'check');
    try {
      const rows = await session.query<{ restart_lsn: string | null }>(
        'SELECT restart_lsn::text AS restart_lsn FROM pg_replication_slots WHERE slot_name = $1', [slot],
      );
      if (!rows[0]) return null;
      return { restartLsn: rows[0].restart_lsn ? parseLsn(rows[0].restart_lsn) : null, restartTli: null };
    } finally {
      await session.close();
    }
  } catch {
    return { restartLsn: null, restartTli: null };
  }
}

/**
 * `receive-wal --reset`: forget the partial segment and restart from the slot's restart point
 * (or the server's current position). Complete segments still in streaming/ are archived first;
 * partials are set aside in errors/, never deleted. Refused while a receiver runs.
 */
export async function resetReceiver(o: { server: ServerConfig; layout: ServerLayout; catalog: Catalog; logger: Logger }): Promise<{ restartAt: Lsn; marker: string }> {
  const log = o.logger.child({ server: o.server.name, component: 'receive-wal' });
  const lock = await acquireLock(o.layout.lockFile('receive-wal'), { purpose: 'receive-wal --reset' });
  try {
    await o.layout.ensure();
    const rc = await connectReplication(o.server, 'receive-wal');
    try {
      const ident = await rc.identifySystem();
      const segSize = await rc.walSegmentSize();
      checkCatalogIdentity(o.catalog, o.server.name, ident.systemId, o.layout.dir);
      const codec = o.server.walCompression.codec as Codec;
      for (const n of await listStreamingDir(o.layout)) {
        const path = `${o.layout.streamingDir}/${n}`;
        if (isWalSegmentName(n)) {
          o.catalog.upsertServer({ name: o.server.name, systemId: ident.systemId, pgVersion: rc.serverVersionNum, walSegmentSize: segSize });
          const r = await archiveSegment({ layout: o.layout, catalog: o.catalog, name: n, segSize, sourcePath: path, codec });
          if (r.outcome !== 'duplicate') await removeDurable(path);
        } else if (isPartialWalName(n)) {
          const dest = await setAside(o.layout, path, 'reset');
          log.warn(`reset: moved ${n} to ${dest}`);
        }
      }
      let at = ident.xlogPos;
      let tli = ident.timeline;
      if (o.server.slotName) {
        const s = await readSlotInfo(o.server, rc, o.server.slotName).catch(() => null);
        if (s?.restartLsn) {
          at = s.restartLsn;
          tli = s.restartTli ?? tli;
        }
      }
      const marker = `${walFileName(tli, segmentOf(at, segSize), segSize)}.partial`;
      const fh = await open(`${o.layout.streamingDir}/${marker}`, 'w', 0o600);
      await fh.sync();
      await fh.close();
      await fsyncDir(o.layout.streamingDir);
      log.warn(`reset: the receiver will restart at ${formatLsn(segmentStart(segmentOf(at, segSize), segSize))} on timeline ${tli} (${marker})`);
      return { restartAt: segmentStart(segmentOf(at, segSize), segSize), marker };
    } finally {
      await rc.close();
    }
  } finally {
    await lock.release();
  }
}
