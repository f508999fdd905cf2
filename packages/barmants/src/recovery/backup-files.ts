/*
 * Reading a stored backup for restore: its backup.info and files.jsonl (docs/REPOSITORY.md), with
 * every member path checked before anything is written, so a damaged or hostile file list can never
 * make recovery write outside the destination.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { checkMemberPath, readFileListAt, type FileEntry, type MemberType } from '../backup/info.js';
import { BarmantsError } from '../errors/index.js';
import { isCodec, type Codec } from '../repository/codec.js';

/** One line of files.jsonl (the backup module owns the format). */
export type BackupMember = FileEntry;
export type { MemberType };

export interface BackupTablespace {
  name: string;
  oid: number;
  location: string;
}

/** The fields of backup.info that a restore needs; the rest is kept in `raw`. */
export interface StoredBackupInfo {
  backupId: string;
  server: string;
  status: string;
  codec: Codec;
  pgVersion: number;
  pgdata: string | null;
  tablespaces: BackupTablespace[];
  beginWal: string | null;
  endWal: string | null;
  timeline: number | null;
  raw: Record<string, unknown>;
}

export async function readStoredBackupInfo(backupDir: string): Promise<StoredBackupInfo> {
  const path = join(backupDir, 'backup.info');
  let j: Record<string, any>;
  try {
    j = JSON.parse(await readFile(path, 'utf8'));
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new BarmantsError(code === 'ENOENT' ? 'notFound' : 'integrity', `cannot read ${path}: ${(err as Error).message}`, { cause: err });
  }
  const compression = j.compression ?? 'none';
  if (typeof compression !== 'string' || !isCodec(compression)) {
    throw new BarmantsError('integrity', `${path}: unknown compression "${String(compression)}"`);
  }
  const tablespaces: BackupTablespace[] = Array.isArray(j.tablespaces)
    ? j.tablespaces.map((t: any) => ({ name: String(t.name), oid: Number(t.oid), location: String(t.location) }))
    : [];
  return {
    backupId: String(j.backup_id),
    server: String(j.server),
    status: String(j.status),
    codec: compression,
    pgVersion: Number(j.version ?? 0),
    pgdata: typeof j.pgdata === 'string' ? j.pgdata : null,
    tablespaces,
    beginWal: j.begin_wal ?? null,
    endWal: j.end_wal ?? null,
    timeline: j.timeline ?? null,
    raw: j,
  };
}

export { checkMemberPath };

export async function readMembers(backupDir: string): Promise<BackupMember[]> {
  const out: BackupMember[] = [];
  for await (const m of readFileListAt(backupDir)) out.push(m);
  return out;
}
