/*
 * backup.info and files.jsonl (docs/REPOSITORY.md): the files that make a backup self-describing,
 * so that the catalog can be rebuilt from them alone. backup.info mirrors the catalog row; the file
 * list holds each member's checksum for verify-backup, recovery and reuse between backups.
 */
import { createReadStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join, posix } from 'node:path';
import { createInterface } from 'node:readline';
import { formatLsn, parseLsn } from 'pg-replication/wal';
import type { BackupRecord, BackupStatus, KeepTarget, NewBackupRecord } from '../catalog/index.js';
import { BarmantsError } from '../errors/index.js';
import { codecSuffix, type Codec } from '../repository/codec.js';
import { DurableWriter, writeFileDurable } from '../repository/durable.js';
import type { ContentAlgorithm } from '../repository/checksum.js';
import type { ServerLayout } from '../repository/layout.js';

export const FILE_LIST = 'files.jsonl';

/** Fields of backup.info that the catalog row has as columns; everything else lives in `info`. */
export function toInfoJson(rec: BackupRecord): Record<string, unknown> {
  return {
    format: 1,
    server: rec.server,
    backup_id: rec.backupId,
    backup_name: rec.name,
    status: rec.status,
    error: rec.error,
    pid: rec.pid,
    begin_time: rec.beginTime,
    end_time: rec.endTime,
    begin_lsn: rec.beginLsn === null ? null : formatLsn(rec.beginLsn),
    end_lsn: rec.endLsn === null ? null : formatLsn(rec.endLsn),
    begin_wal: rec.beginWal,
    end_wal: rec.endWal,
    timeline: rec.timeline,
    systemid: rec.systemId,
    version: rec.pgVersion,
    wal_segment_size: rec.walSegmentSize,
    server_timezone: rec.serverTimezone,
    tablespaces: rec.tablespaces,
    compression: rec.compression,
    size: rec.size,
    deduplicated_size: rec.deduplicatedSize,
    cluster_size: rec.clusterSize,
    keep: rec.keep,
    ...rec.info,
  };
}

const COLUMNS = new Set([
  'format', 'server', 'backup_id', 'backup_name', 'status', 'error', 'pid', 'begin_time', 'end_time', 'begin_lsn', 'end_lsn',
  'begin_wal', 'end_wal', 'timeline', 'systemid', 'version', 'wal_segment_size', 'server_timezone', 'tablespaces', 'compression',
  'size', 'deduplicated_size', 'cluster_size', 'keep',
]);

export function fromInfoJson(j: Record<string, any>): NewBackupRecord {
  const info: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(j)) if (!COLUMNS.has(k)) info[k] = v;
  return {
    server: String(j.server),
    backupId: String(j.backup_id),
    name: j.backup_name ?? null,
    status: j.status as BackupStatus,
    error: j.error ?? null,
    pid: j.pid ?? null,
    beginTime: j.begin_time ?? null,
    endTime: j.end_time ?? null,
    beginLsn: j.begin_lsn ? parseLsn(j.begin_lsn) : null,
    endLsn: j.end_lsn ? parseLsn(j.end_lsn) : null,
    beginWal: j.begin_wal ?? null,
    endWal: j.end_wal ?? null,
    timeline: j.timeline ?? null,
    systemId: j.systemid ?? null,
    pgVersion: j.version ?? null,
    walSegmentSize: j.wal_segment_size ?? null,
    serverTimezone: j.server_timezone ?? null,
    tablespaces: j.tablespaces ?? [],
    compression: j.compression ?? null,
    size: j.size ?? 0,
    deduplicatedSize: j.deduplicated_size ?? 0,
    clusterSize: j.cluster_size ?? null,
    keep: (j.keep ?? null) as KeepTarget | null,
    info,
  };
}

export async function writeBackupInfo(layout: ServerLayout, rec: BackupRecord): Promise<void> {
  await writeFileDurable(layout.backupInfoFile(rec.backupId), JSON.stringify(toInfoJson(rec), null, 2) + '\n');
}

export async function readBackupInfo(layout: ServerLayout, backupId: string): Promise<NewBackupRecord> {
  const path = layout.backupInfoFile(backupId);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new BarmantsError('notFound', `backup ${backupId} of server '${layout.server}' has no backup.info (${path})`, { cause: err });
  }
  try {
    return fromInfoJson(JSON.parse(text));
  } catch (err) {
    throw new BarmantsError('integrity', `${path} is not a valid backup.info: ${(err as Error).message}`, { cause: err });
  }
}

export type MemberType = 'file' | 'dir' | 'symlink';

export interface FileEntry {
  /** tablespace OID, null for the main data directory */
  ts: number | null;
  path: string;
  type: MemberType;
  size: number;
  mode: number;
  mtime: number | null;
  /**
   * Checksum of a file's uncompressed content, under its algorithm's name: `blake3` in backups taken
   * since BLAKE3 replaced SHA-256, `sha256` before. A file has exactly one; see fileChecksum.
   */
  blake3?: string | null;
  sha256?: string | null;
  stored: number;
  link: string | null;
  reused: boolean;
}

/** A file entry's content checksum and its algorithm (null for directories and symlinks). */
export function fileChecksum(e: FileEntry): { alg: ContentAlgorithm; hex: string } | null {
  if (typeof e.blake3 === 'string') return { alg: 'blake3', hex: e.blake3 };
  if (typeof e.sha256 === 'string') return { alg: 'sha256', hex: e.sha256 };
  return null;
}

/** Where a member is stored inside the backup directory. */
export function storedPath(layout: ServerLayout, backupId: string, e: Pick<FileEntry, 'ts' | 'path'>, codec: Codec): string {
  const root = e.ts === null ? layout.backupDataDir(backupId) : layout.backupTablespaceDir(backupId, e.ts);
  return join(root, e.path) + codecSuffix(codec);
}

/** Member paths come from the server's tar: refuse anything that could leave its root. */
export function checkMemberPath(path: string): string {
  if (
    typeof path !== 'string' ||
    path === '' ||
    path.startsWith('/') ||
    path.includes('\0') ||
    path.split('/').some((c) => c === '..' || c === '' || c === '.') ||
    posix.normalize(path) !== path
  ) {
    throw new BarmantsError('integrity', `refusing unsafe member path "${String(path)}"`, {
      hint: 'the archive or file list is damaged or was not written by barmants: run `barmants verify-backup` and use another backup',
    });
  }
  return path;
}

export class FileListWriter {
  private readonly lines: string[] = [];
  private chain: Promise<void> = Promise.resolve();
  private constructor(private readonly w: DurableWriter) {}

  static async open(layout: ServerLayout, backupId: string): Promise<FileListWriter> {
    return new FileListWriter(await DurableWriter.open(join(layout.backupDir(backupId), FILE_LIST)));
  }

  /** Entries may be added from concurrent callbacks: writes are serialised on a chain. */
  async add(e: FileEntry): Promise<void> {
    this.lines.push(JSON.stringify(e));
    if (this.lines.length >= 512) await this.flush();
  }

  private flush(): Promise<void> {
    const batch = this.lines.splice(0);
    if (batch.length) this.chain = this.chain.then(() => this.w.write(Buffer.from(batch.join('\n') + '\n')));
    return this.chain;
  }

  async commit(): Promise<void> {
    await this.flush();
    await this.w.commit();
  }

  async abort(): Promise<void> {
    await this.w.abort();
  }
}

export async function* readFileList(layout: ServerLayout, backupId: string): AsyncGenerator<FileEntry> {
  yield* readFileListAt(layout.backupDir(backupId));
}

/** Reads and validates files.jsonl of the backup in `backupDir`, entry by entry. */
export async function* readFileListAt(backupDir: string): AsyncGenerator<FileEntry> {
  const path = join(backupDir, FILE_LIST);
  const rl = createInterface({ input: createReadStream(path, 'utf8'), crlfDelay: Infinity });
  let n = 0;
  try {
    for await (const line of rl) {
      n++;
      if (!line.trim()) continue;
      let m: FileEntry;
      try {
        m = JSON.parse(line) as FileEntry;
      } catch (err) {
        throw new BarmantsError('integrity', `${path}:${n}: unreadable file list entry`, { cause: err });
      }
      if (m.type !== 'file' && m.type !== 'dir' && m.type !== 'symlink') {
        throw new BarmantsError('integrity', `${path}:${n}: unknown member type "${String(m.type)}"`);
      }
      if (m.ts !== null && !(Number.isInteger(m.ts) && m.ts > 0)) throw new BarmantsError('integrity', `${path}:${n}: bad tablespace oid "${String(m.ts)}"`);
      checkMemberPath(m.path);
      if (m.type === 'file' && !/^[0-9a-f]{64}$/.test(fileChecksum(m)?.hex ?? '')) {
        throw new BarmantsError('integrity', `${path}:${n}: file ${m.path} has no blake3 or sha256 checksum: it cannot be verified`);
      }
      yield m;
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new BarmantsError('integrity', `backup has no file list (${path})`, { cause: err });
    throw err;
  } finally {
    rl.close();
  }
}
