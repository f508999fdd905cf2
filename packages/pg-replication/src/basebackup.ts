/*
 * BASE_BACKUP over a physical walsender, for PostgreSQL 14 (one CopyOut per tablespace, then
 * the manifest) and 15+ (one CopyOut of typed messages 'n', 'd', 'p', 'm'). The tar archives are
 * parsed where the bytes arrive (tar.ts) and each member's data is handed to the caller's sink as
 * views of pg's receive buffer: no copy at all on the way, the caller copies or consumes what it
 * needs during the call. When the caller returns a promise the socket is paused and the few bytes
 * already received are kept (copied) until it settles, so memory stays bounded whatever the size.
 */
import type { ChecksumAlgorithm } from './checksum.js';
import type { ReplicationClient } from './client.js';
import { quoteLiteral } from './client.js';
import type { PgConnection, ResultSet } from './command.js';
import { ReplicationError } from './errors.js';
import { parseLsn, type Lsn } from './lsn.js';
import { CopyDataCode } from './messages.js';
import { TarFormatError, TarParser, type TarHeader } from './tar.js';

export interface BaseBackupOptions {
  label: string;
  /** ask the server for sizes (needed for a progress total); default true */
  progress?: boolean;
  /** CHECKPOINT 'fast' instead of a spread checkpoint */
  fastCheckpoint?: boolean;
  /** include pg_wal contents in base.tar (pg_basebackup -X fetch); default false */
  wal?: boolean;
  /** wait for the end WAL to be archived; default false: a streaming tool waits for its own WAL */
  wait?: boolean;
  /** kB/s, 32..1048576 */
  maxRateKbps?: number;
  /** default true */
  tablespaceMap?: boolean;
  /** default true */
  manifest?: boolean;
  /** default 'CRC32C' */
  manifestChecksums?: ChecksumAlgorithm;
  /** verify data page checksums on the server; default true */
  verifyChecksums?: boolean;
  /**
   * While the server sends the archive, a connection that delivers nothing for this long is
   * presumed dead (half-open: packets dropped, no reset) and the backup fails with a connection
   * error. Time a handler holds the stream (a returned promise) does not count, nor the server's
   * checkpoint before the copy or its work after it. 0 or absent: no limit.
   */
  receiveTimeoutMs?: number;
}

export interface TablespaceInfo {
  /** null for the main data directory */
  readonly oid: number | null;
  readonly location: string | null;
  /** bytes, when PROGRESS was requested */
  readonly size: number | null;
}

export type EntryType = 'file' | 'directory' | 'symlink' | 'other';

export interface BackupEntry {
  readonly tablespace: TablespaceInfo;
  /** path inside the archive, e.g. `base/5/1259` (no leading slash, no trailing slash for dirs) */
  readonly path: string;
  readonly type: EntryType;
  readonly size: number;
  readonly mode: number;
  readonly mtime: Date | null;
  readonly linkname: string | null;
}

export interface BackupStartInfo {
  readonly startLsn: Lsn;
  readonly timeline: number;
  readonly tablespaces: TablespaceInfo[];
}

/** Receives one file member's bytes. */
export interface MemberSink {
  /**
   * A piece of the member: a view of the receive buffer, valid only during the call (copy it or
   * consume it now). A returned promise pauses the stream until it settles.
   */
  data(chunk: Buffer): void | Promise<void>;
  /** After the last byte. The next member waits for a returned promise. */
  end(): void | Promise<void>;
}

/**
 * What a base backup hands its archive to. An error a handler throws (or a promise it returns
 * rejects with) ends the backup: the connection is dropped and baseBackup() rejects with that same
 * error, not a ReplicationError, since the server and the connection did nothing wrong.
 */
export interface BaseBackupHandlers {
  /** before any archive data; the stream waits while the returned promise runs */
  onStart?(info: BackupStartInfo): void | Promise<void>;
  /**
   * One archive member, in archive order. For a file, return the sink for its bytes (null skips
   * them). A returned promise pauses the stream until it settles.
   */
  onMember(entry: BackupEntry): MemberSink | null | void | Promise<MemberSink | null | void>;
  onProgress?(p: { bytesDone: number; bytesTotal: number | null }): void;
}

export interface BaseBackupResult {
  readonly startLsn: Lsn;
  readonly startTimeline: number;
  readonly endLsn: Lsn;
  readonly endTimeline: number;
  readonly tablespaces: TablespaceInfo[];
  /** the backup_manifest as sent, or null when not requested */
  readonly manifest: Buffer | null;
  /** archive (tar) bytes received */
  readonly bytes: number;
}

/** Builds the BASE_BACKUP command in the syntax the server speaks. */
export function buildBaseBackupCommand(serverVersionNum: number, o: BaseBackupOptions): string {
  const progress = o.progress ?? true;
  const tablespaceMap = o.tablespaceMap ?? true;
  const manifest = o.manifest ?? true;
  const checksums = o.manifestChecksums ?? 'CRC32C';
  const verify = o.verifyChecksums ?? true;
  if (o.maxRateKbps !== undefined && (o.maxRateKbps < 32 || o.maxRateKbps > 1048576 || !Number.isInteger(o.maxRateKbps))) {
    throw new TypeError(`invalid maximum transfer rate ${o.maxRateKbps} kB/s: expected an integer between 32 and 1048576`);
  }
  if (serverVersionNum < 150000) {
    const parts = ['BASE_BACKUP', 'LABEL', quoteLiteral(o.label)];
    if (progress) parts.push('PROGRESS');
    if (o.fastCheckpoint) parts.push('FAST');
    if (o.wal) parts.push('WAL');
    if (!(o.wait ?? false)) parts.push('NOWAIT');
    if (o.maxRateKbps !== undefined) parts.push('MAX_RATE', String(o.maxRateKbps));
    if (tablespaceMap) parts.push('TABLESPACE_MAP');
    if (!verify) parts.push('NOVERIFY_CHECKSUMS');
    if (manifest) parts.push('MANIFEST', quoteLiteral('yes'), 'MANIFEST_CHECKSUMS', quoteLiteral(checksums));
    return parts.join(' ');
  }
  const opts = [`LABEL ${quoteLiteral(o.label)}`];
  if (progress) opts.push('PROGRESS');
  opts.push(`CHECKPOINT ${quoteLiteral(o.fastCheckpoint ? 'fast' : 'spread')}`);
  opts.push(`WAIT ${o.wait ? 'true' : 'false'}`);
  if (o.wal) opts.push('WAL');
  if (o.maxRateKbps !== undefined) opts.push(`MAX_RATE ${o.maxRateKbps}`);
  if (tablespaceMap) opts.push('TABLESPACE_MAP');
  if (!verify) opts.push('VERIFY_CHECKSUMS false');
  if (manifest) opts.push(`MANIFEST ${quoteLiteral('yes')}`, `MANIFEST_CHECKSUMS ${quoteLiteral(checksums)}`);
  return `BASE_BACKUP (${opts.join(', ')})`;
}

const PROGRESS_STEP = 1 << 20;

/** Counts reasons to keep the socket paused; resumes when none is left. */
class SocketGate {
  private reasons = 0;
  constructor(private readonly conn: () => PgConnection | null) {}
  hold(): void {
    if (this.reasons++ === 0) this.conn()?.stream.pause();
  }
  release(): void {
    if (this.reasons > 0 && --this.reasons === 0) this.conn()?.stream.resume();
  }
  /** Whether the consumer holds the socket paused. */
  get held(): boolean {
    return this.reasons > 0;
  }
}

type Pending = { kind: 'open'; tablespace: TablespaceInfo } | { kind: 'data'; buf: Buffer } | { kind: 'close' };

/**
 * Where bytes that arrive while the reader waits are kept until it resumes: copies into blocks
 * that are reused once the queue is empty, not fresh buffers. They are views of the receive
 * buffer, which the next socket read overwrites; a fresh allocation per piece cost a compressed
 * backup ~0.25 s of its receiving thread for ~40 MB (pgbench scale 50, lz4), mostly page faults.
 */
class CopyArena {
  static readonly BLOCK = 1 << 20;
  private readonly blocks: Buffer[] = [];
  private block = 0;
  private used = 0;

  copy(src: Buffer): Buffer {
    if (src.length > CopyArena.BLOCK) return Buffer.from(src);
    if (this.used + src.length > CopyArena.BLOCK) {
      this.block++;
      this.used = 0;
    }
    let b = this.blocks[this.block];
    if (!b) this.blocks.push((b = Buffer.allocUnsafeSlow(CopyArena.BLOCK)));
    const view = b.subarray(this.used, this.used + src.length);
    src.copy(view);
    this.used += src.length;
    return view;
  }

  /** Every copy handed out so far is dead: start again at the first block. */
  reset(): void {
    this.block = 0;
    this.used = 0;
  }
}

/**
 * The archives of one backup, one after another, into the caller's handlers. Bytes are parsed in
 * place while nothing waits; while a handler's promise is pending they are copied into a queue
 * (a socket buffer's worth, as the socket is paused) and replayed in order once it settles.
 */
class ArchiveReader {
  private readonly arena = new CopyArena();
  private parser: TarParser | null = null;
  private tablespace: TablespaceInfo | null = null;
  private sink: MemberSink | null = null;
  private entry: BackupEntry | null = null;
  private waiting = false;
  private readonly queue: Pending[] = [];
  private idleWaiters: Array<() => void> = [];
  private failed = false;

  constructor(
    private readonly handlers: BaseBackupHandlers,
    private readonly gate: SocketGate,
    private readonly fail: (err: unknown) => void,
  ) {}

  open(tablespace: TablespaceInfo): void {
    this.submit({ kind: 'open', tablespace });
  }

  data(buf: Buffer): void {
    if (this.waiting || this.queue.length) return void this.queue.push({ kind: 'data', buf: this.arena.copy(buf) });
    // Nothing queued: no copy is alive (sinks may not keep the views they are given).
    this.arena.reset();
    this.feed(buf, false);
  }

  close(): void {
    this.submit({ kind: 'close' });
  }

  /** Holds everything until `p` settles (the caller's onStart). */
  wait(p: Promise<void>): void {
    this.block(p);
  }

  /** Resolves once every byte received so far went through the handlers. */
  idle(): Promise<void> {
    if (!this.waiting && !this.queue.length) return Promise.resolve();
    return new Promise((r) => this.idleWaiters.push(r));
  }

  private submit(item: Pending): void {
    if (this.waiting || this.queue.length) this.queue.push(item);
    else this.run(item);
  }

  private run(item: Pending): void {
    try {
      if (item.kind === 'data') return this.feed(item.buf, true);
      if (item.kind === 'open') {
        this.finishArchive();
        this.tablespace = item.tablespace;
        this.parser = new TarParser(
          {
            header: (h) => this.onHeader(h),
            data: (chunk) => {
              const r = this.sink?.data(chunk);
              if (r) this.block(r);
            },
            end: () => this.onEnd(),
          },
          () => this.waiting || this.failed,
        );
        return;
      }
      this.finishArchive();
    } catch (err) {
      this.abort(err);
    }
  }

  private feed(buf: Buffer, owned: boolean): void {
    if (!this.parser) return this.abort(new ReplicationError('protocol', 'archive data outside of an archive'));
    let n: number;
    try {
      n = this.parser.push(buf);
    } catch (err) {
      return this.abort(err);
    }
    // Blocked part-way: keep the rest (copied, unless it is already ours) at the head of the queue.
    if (n < buf.length && !this.failed) this.queue.unshift({ kind: 'data', buf: owned ? buf.subarray(n) : this.arena.copy(buf.subarray(n)) });
  }

  private onHeader(h: TarHeader): void {
    const entry = toEntry(this.tablespace!, h);
    this.entry = entry;
    this.sink = null;
    const r = this.handlers.onMember(entry);
    if (r && typeof (r as Promise<unknown>).then === 'function') {
      this.block(
        (r as Promise<MemberSink | null | void>).then((sink) => {
          if (this.entry === entry) this.sink = sink ?? null;
        }),
      );
    } else this.sink = (r as MemberSink | null | void) ?? null;
  }

  private onEnd(): void {
    const sink = this.sink;
    this.sink = null;
    this.entry = null;
    const r = sink?.end();
    if (r) this.block(r);
  }

  private finishArchive(): void {
    if (this.parser && !this.parser.finished && !this.parser.atBoundary) {
      throw new ReplicationError('protocol', `the tar archive of ${describe(this.tablespace!)} ended in the middle of a member`);
    }
    this.parser = null;
  }

  private block(p: Promise<void>): void {
    if (this.waiting) {
      // Only one thing waits at a time: events stop as soon as one blocks.
      this.abort(new Error('internal: two concurrent waits in the archive reader'));
      return;
    }
    this.waiting = true;
    this.gate.hold();
    p.then(
      () => {
        this.waiting = false;
        this.gate.release();
        this.drain();
      },
      (err) => {
        this.waiting = false;
        this.gate.release();
        this.abort(err);
      },
    );
  }

  private drain(): void {
    while (!this.waiting && !this.failed && this.queue.length) this.run(this.queue.shift()!);
    if (!this.waiting && (this.failed || !this.queue.length)) for (const w of this.idleWaiters.splice(0)) w();
  }

  private abort(err: unknown): void {
    if (this.failed) return;
    this.failed = true;
    this.queue.length = 0;
    this.fail(err instanceof TarFormatError ? new ReplicationError('protocol', `malformed tar archive for ${describe(this.tablespace!)}: ${err.message}`, { cause: err }) : err);
    for (const w of this.idleWaiters.splice(0)) w();
  }
}

function describe(t: TablespaceInfo): string {
  return t.oid === null ? 'the main data directory' : `tablespace ${t.oid} (${t.location})`;
}

function toEntry(tablespace: TablespaceInfo, h: TarHeader): BackupEntry {
  return {
    tablespace,
    path: h.name.replace(/^\.?\/+/, '').replace(/\/+$/, ''),
    type: h.type,
    size: h.size,
    mode: h.mode || (h.type === 'directory' ? 0o700 : 0o600),
    mtime: h.mtime,
    linkname: h.linkname,
  };
}

export async function runBaseBackup(rc: ReplicationClient, opts: BaseBackupOptions, handlers: BaseBackupHandlers): Promise<BaseBackupResult> {
  const legacy = rc.serverVersionNum < 150000;
  const text = buildBaseBackupCommand(rc.serverVersionNum, opts);
  let conn: PgConnection | null = null;
  const gate = new SocketGate(() => conn);
  let rsIndex = 0;
  let start: { lsn: Lsn; tli: number } | null = null;
  let end: { lsn: Lsn; tli: number } | null = null;
  let tablespaces: TablespaceInfo[] = [];
  let copyCount = 0;
  let inArchive = false;
  const manifestParts: Buffer[] = [];
  let inManifest = false;
  let bytes = 0;
  let lastProgress = 0;
  let failure: unknown = null;

  const total = () => (tablespaces.every((t) => t.size !== null) && tablespaces.length ? tablespaces.reduce((a, t) => a + (t.size ?? 0), 0) : null);
  const fail = (err: unknown) => {
    if (failure) return;
    failure = err;
    cmd.fail(err);
    // The server keeps sending until it is told otherwise; this connection is done.
    rc.destroy();
  };
  const reader = new ArchiveReader(handlers, gate, fail);

  // Silence watch (opts.receiveTimeoutMs): only while a copy is open and nothing holds the stream.
  const silenceMs = opts.receiveTimeoutMs ?? 0;
  let copying = false;
  let lastHeard = Date.now();
  let watch: NodeJS.Timeout | null = null;
  const heard = () => {
    lastHeard = Date.now();
  };
  const checkSilence = () => {
    if (!copying || gate.held || failure) return heard();
    if (Date.now() - lastHeard < silenceMs) return;
    const s = String(Math.round(silenceMs / 100) / 10);
    fail(new ReplicationError('connection', `no data from the server for ${s} s during the base backup copy: connection presumed dead`));
  };
  const openArchive = (t: TablespaceInfo) => {
    reader.open(t);
    inArchive = true;
  };
  const closeArchive = () => {
    if (!inArchive) return;
    reader.close();
    inArchive = false;
  };
  const report = (force: boolean) => {
    if (!handlers.onProgress) return;
    if (force || bytes - lastProgress >= PROGRESS_STEP) {
      lastProgress = bytes;
      handlers.onProgress({ bytesDone: bytes, bytesTotal: total() });
    }
  };
  const archiveData = (data: Buffer) => {
    if (inManifest) manifestParts.push(Buffer.from(data));
    else if (inArchive) {
      bytes += data.length;
      reader.data(data);
      report(false);
    } else throw new ReplicationError('protocol', 'archive data before any archive');
  };

  const onResultSet = (rs: ResultSet) => {
    if (rs.columns.length === 0) return;
    const i = rsIndex++;
    if (i === 0) {
      start = { lsn: parseLsn(rs.rows[0]![0]!), tli: Number(rs.rows[0]![1]) };
    } else if (i === 1) {
      tablespaces = rs.rows.map((r) => ({
        oid: r[0] === null ? null : Number(r[0]),
        location: r[1] ?? null,
        size: r[2] === null || r[2] === undefined ? null : Number(r[2]) * 1024,
      }));
    } else {
      end = { lsn: parseLsn(rs.rows[0]![0]!), tli: Number(rs.rows[0]![1]) };
    }
  };

  const onCopyStart = (_mode: 'out' | 'both', c: PgConnection) => {
    conn = c;
    copying = true;
    heard();
    if (silenceMs > 0 && !watch) watch = setInterval(checkSilence, Math.max(50, Math.min(1000, silenceMs / 4)));
    if (copyCount++ === 0) {
      if (!start) throw new ReplicationError('protocol', 'BASE_BACKUP sent data before its start position');
      const info: BackupStartInfo = { startLsn: start.lsn, timeline: start.tli, tablespaces };
      const r = handlers.onStart?.(info);
      if (r && typeof (r as Promise<void>).then === 'function') reader.wait(r as Promise<void>);
    }
    if (legacy) {
      const idx = copyCount - 1;
      if (idx < tablespaces.length) openArchive(tablespaces[idx]!);
      else {
        closeArchive();
        inManifest = true;
      }
    }
  };

  // 15+: the first payload byte says what a CopyData message is. Archive data is passed on
  // piece by piece as it comes off the socket; the other kinds are small and gathered whole.
  let kind = 0;
  let gathered: Buffer[] = [];
  const onCopyDataPart = (piece: Buffer, offset: number, totalLength: number) => {
    if (failure) return;
    lastHeard = Date.now();
    if (legacy) return archiveData(piece);
    let p = piece;
    if (offset === 0) {
      kind = piece[0]!;
      gathered = [];
    }
    if (kind === CopyDataCode.ArchiveData) {
      if (offset === 0) p = piece.subarray(1);
      if (p.length) archiveData(p);
      return;
    }
    gathered.push(Buffer.from(p));
    if (offset + piece.length === totalLength) onMessage(gathered.length === 1 ? gathered[0]! : Buffer.concat(gathered));
  };

  const onMessage = (chunk: Buffer) => {
    switch (chunk[0]) {
      case CopyDataCode.NewArchive: {
        const z1 = chunk.indexOf(0, 1);
        const z2 = chunk.indexOf(0, z1 + 1);
        if (z1 < 0 || z2 < 0) throw new ReplicationError('protocol', 'malformed new-archive message');
        const name = chunk.toString('utf8', 1, z1);
        const path = chunk.toString('utf8', z1 + 1, z2);
        const t = path === '' ? tablespaces.find((x) => x.oid === null) : tablespaces.find((x) => x.location === path);
        if (!t) throw new ReplicationError('protocol', `archive ${name} for unknown tablespace path "${path}"`);
        if (!/\.tar$/.test(name)) throw new ReplicationError('protocol', `archive ${name} is compressed; barmants asks for plain tar`);
        closeArchive();
        openArchive(t);
        break;
      }
      case CopyDataCode.Progress:
        report(true);
        break;
      case CopyDataCode.Manifest:
        closeArchive();
        inManifest = true;
        break;
      default:
        throw new ReplicationError('protocol', `unexpected BASE_BACKUP message type 0x${chunk[0]?.toString(16)}`);
    }
  };

  const onCopyDone = () => {
    copying = false;
    if (legacy && inManifest) return;
    closeArchive();
  };

  const cmd = rc.run(text, { onResultSet, onCopyStart, onCopyDataPart, onCopyDone });
  try {
    await cmd.done;
    await reader.idle();
  } catch (err) {
    fail(err instanceof ReplicationError ? err : new ReplicationError('connection', (err as Error).message, { cause: err }));
    // The first failure is the cause: a handler's own error as it threw it, else the typed error.
    throw failure;
  } finally {
    if (watch) clearInterval(watch);
  }
  if (failure) throw failure;
  if (!start || !end) throw new ReplicationError('protocol', 'BASE_BACKUP ended without its start or end position');
  report(true);
  const s = start as { lsn: Lsn; tli: number };
  const e = end as { lsn: Lsn; tli: number };
  return {
    startLsn: s.lsn,
    startTimeline: s.tli,
    endLsn: e.lsn,
    endTimeline: e.tli,
    tablespaces,
    manifest: manifestParts.length ? Buffer.concat(manifestParts) : opts.manifest === false ? null : Buffer.alloc(0),
    bytes,
  };
}
