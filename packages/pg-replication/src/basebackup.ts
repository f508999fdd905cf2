/*
 * BASE_BACKUP over a physical walsender, for PostgreSQL 14 (one CopyOut per tablespace, then
 * the manifest) and 15+ (one CopyOut of typed messages 'n', 'd', 'p', 'm'). Archive bytes are
 * copied once into fresh 1 MiB slabs (pg reuses its receive buffer, PROTOCOL.md pitfall 1), fed to
 * a tar parser, and handed to the caller entry by entry. The socket is paused whenever the caller
 * is slower than the server, so memory stays bounded whatever the cluster size.
 */
import tar from 'tar-stream';
import type { ChecksumAlgorithm } from './checksum.js';
import type { ReplicationClient } from './client.js';
import { quoteLiteral } from './client.js';
import type { PgConnection, ResultSet } from './command.js';
import { ReplicationError } from './errors.js';
import { parseLsn, type Lsn } from './lsn.js';
import { CopyDataCode } from './messages.js';

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

export interface BaseBackupHandlers {
  /** before any archive data; the socket waits while the returned promise runs */
  onStart?(info: BackupStartInfo): void | Promise<void>;
  /**
   * One archive member. For files `content` is the member's bytes: consume it (for await) before
   * the promise resolves. Entries arrive strictly one after another.
   */
  onEntry(entry: BackupEntry, content: AsyncIterable<Buffer> | null): Promise<void>;
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

const SLAB = 1 << 20;

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
}

/** One tar archive (one tablespace): slabs in, entries out to the handler, in order. */
class ArchiveSink {
  private readonly extract = tar.extract();
  private slab: Buffer | null = null;
  private used = 0;
  readonly finished: Promise<void>;
  private waitingDrain = false;

  constructor(
    readonly tablespace: TablespaceInfo,
    previous: Promise<void>,
    handlers: BaseBackupHandlers,
    private readonly gate: SocketGate,
    fail: (err: unknown) => void,
  ) {
    this.extract.on('entry', (header, stream, next) => {
      const entry = toEntry(tablespace, header);
      const run = async () => {
        await previous;
        await handlers.onEntry(entry, entry.type === 'file' ? (stream as unknown as AsyncIterable<Buffer>) : null);
        // Whatever the handler left unread (directories, or a handler that skipped) is drained.
        stream.resume();
      };
      run().then(
        () => next(),
        (err) => {
          fail(err);
          next(err as Error);
        },
      );
    });
    this.finished = new Promise<void>((resolve, reject) => {
      this.extract.on('finish', () => resolve());
      this.extract.on('error', (err: unknown) => {
        reject(err);
        fail(new ReplicationError('protocol', `malformed tar archive for ${describe(tablespace)}: ${(err as Error).message}`, { cause: err }));
      });
    });
    this.finished.catch(() => undefined);
  }

  push(chunk: Buffer): void {
    let off = 0;
    while (off < chunk.length) {
      if (!this.slab) {
        this.slab = Buffer.allocUnsafe(SLAB);
        this.used = 0;
      }
      const n = Math.min(chunk.length - off, SLAB - this.used);
      chunk.copy(this.slab, this.used, off, off + n);
      this.used += n;
      off += n;
      if (this.used === SLAB) this.flush();
    }
  }

  private flush(): void {
    if (!this.slab || this.used === 0) return;
    const data = this.slab.subarray(0, this.used);
    this.slab = null;
    this.used = 0;
    if (!this.extract.write(data) && !this.waitingDrain) {
      this.waitingDrain = true;
      this.gate.hold();
      this.extract.once('drain', () => {
        this.waitingDrain = false;
        this.gate.release();
      });
    }
  }

  end(): void {
    this.flush();
    (this.extract as unknown as { end(): void }).end();
  }

  destroy(err: unknown): void {
    this.extract.destroy(err as Error);
  }
}

function describe(t: TablespaceInfo): string {
  return t.oid === null ? 'the main data directory' : `tablespace ${t.oid} (${t.location})`;
}

function toEntry(tablespace: TablespaceInfo, h: tar.Header): BackupEntry {
  const type: EntryType = h.type === 'file' || h.type === 'contiguous-file' ? 'file' : h.type === 'directory' ? 'directory' : h.type === 'symlink' ? 'symlink' : 'other';
  return {
    tablespace,
    path: h.name.replace(/^\.?\/+/, '').replace(/\/+$/, ''),
    type,
    size: h.size ?? 0,
    mode: h.mode ?? (type === 'directory' ? 0o700 : 0o600),
    mtime: h.mtime ?? null,
    linkname: h.linkname ?? null,
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
  let sink: ArchiveSink | null = null;
  let chain: Promise<void> = Promise.resolve();
  const manifestParts: Buffer[] = [];
  let inManifest = false;
  let bytes = 0;
  let lastProgress = 0;
  let failure: unknown = null;
  const sinks: ArchiveSink[] = [];
  let started: Promise<void> = Promise.resolve();

  const total = () => (tablespaces.every((t) => t.size !== null) && tablespaces.length ? tablespaces.reduce((a, t) => a + (t.size ?? 0), 0) : null);
  const fail = (err: unknown) => {
    if (failure) return;
    failure = err;
    cmd.fail(err);
    for (const s of sinks) s.destroy(err);
    // The server keeps sending until it is told otherwise; this connection is done.
    rc.destroy();
  };
  const endSink = () => {
    if (!sink) return;
    sink.end();
    chain = sink.finished;
    sink = null;
  };
  const openSink = (t: TablespaceInfo) => {
    endSink();
    sink = new ArchiveSink(t, chain.then(() => started), handlers, gate, fail);
    sinks.push(sink);
  };
  const report = (force: boolean) => {
    if (!handlers.onProgress) return;
    if (force || bytes - lastProgress >= SLAB) {
      lastProgress = bytes;
      handlers.onProgress({ bytesDone: bytes, bytesTotal: total() });
    }
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
    if (copyCount++ === 0) {
      if (!start) throw new ReplicationError('protocol', 'BASE_BACKUP sent data before its start position');
      const info: BackupStartInfo = { startLsn: start.lsn, timeline: start.tli, tablespaces };
      const r = handlers.onStart?.(info);
      if (r && typeof (r as Promise<void>).then === 'function') {
        gate.hold();
        started = (r as Promise<void>).then(() => gate.release());
        started.catch(fail);
      }
    }
    if (legacy) {
      const idx = copyCount - 1;
      if (idx < tablespaces.length) openSink(tablespaces[idx]!);
      else {
        endSink();
        inManifest = true;
      }
    }
  };

  const onCopyData = (chunk: Buffer) => {
    if (legacy) {
      if (inManifest) manifestParts.push(Buffer.from(chunk));
      else if (sink) {
        sink.push(chunk);
        bytes += chunk.length;
        report(false);
      } else throw new ReplicationError('protocol', 'archive data outside of an archive');
      return;
    }
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
        openSink(t);
        break;
      }
      case CopyDataCode.ArchiveData: {
        const data = chunk.subarray(1);
        if (inManifest) manifestParts.push(Buffer.from(data));
        else if (sink) {
          sink.push(data);
          bytes += data.length;
          report(false);
        } else throw new ReplicationError('protocol', 'archive data before any archive');
        break;
      }
      case CopyDataCode.Progress:
        report(true);
        break;
      case CopyDataCode.Manifest:
        endSink();
        inManifest = true;
        break;
      default:
        throw new ReplicationError('protocol', `unexpected BASE_BACKUP message type 0x${chunk[0]?.toString(16)}`);
    }
  };

  const onCopyDone = () => {
    if (legacy && inManifest) return;
    endSink();
  };

  const cmd = rc.run(text, { onResultSet, onCopyStart, onCopyData, onCopyDone });
  try {
    await cmd.done;
    await started;
    await chain;
    for (const s of sinks) await s.finished;
  } catch (err) {
    fail(err);
    throw failure instanceof ReplicationError ? failure : err instanceof ReplicationError ? err : new ReplicationError('connection', (err as Error).message, { cause: err });
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
