/*
 * Reading a stored backup for restore: its backup.info and files.jsonl (docs/REPOSITORY.md), with
 * every member path checked before anything is written, so a damaged or hostile file list can never
 * make recovery write outside the destination.
 */
import { readFile } from 'node:fs/promises';
import { join, posix } from 'node:path';
import { BarmantsError } from '../errors/index.js';
import { isCodec, type Codec } from '../repository/index.js';

export type MemberType = 'file' | 'dir' | 'symlink';

/** One line of files.jsonl. */
export interface BackupMember {
  /** tablespace OID, null for the main data directory */
  ts: number | null;
  path: string;
  type: MemberType;
  size: number;
  mode: number;
  mtime: number | null;
  sha256: string | null;
  stored: number;
  link: string | null;
  reused: boolean;
}

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

/** Member paths come from the server's tar: refuse anything that could leave its root. */
export function checkMemberPath(path: string): void {
  if (
    typeof path !== 'string' ||
    path === '' ||
    path.startsWith('/') ||
    path.includes('\0') ||
    path.split('/').some((c) => c === '..' || c === '' || c === '.') ||
    posix.normalize(path) !== path
  ) {
    throw new BarmantsError('integrity', `refusing unsafe member path "${String(path)}" in the backup's file list`, {
      hint: 'the file list is damaged or was not written by barmants: run `barmants verify-backup` and restore another backup',
    });
  }
}

export async function readMembers(backupDir: string): Promise<BackupMember[]> {
  const path = join(backupDir, 'files.jsonl');
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new BarmantsError('integrity', `backup has no readable file list (${path}): ${(err as Error).message}`, { cause: err });
  }
  const out: BackupMember[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (line.trim() === '') continue;
    let m: BackupMember;
    try {
      m = JSON.parse(line) as BackupMember;
    } catch (err) {
      throw new BarmantsError('integrity', `${path}:${i + 1}: unreadable file list entry`, { cause: err });
    }
    if (m.type !== 'file' && m.type !== 'dir' && m.type !== 'symlink') {
      throw new BarmantsError('integrity', `${path}:${i + 1}: unknown member type "${String(m.type)}"`);
    }
    if (m.ts !== null && !(Number.isInteger(m.ts) && m.ts > 0)) {
      throw new BarmantsError('integrity', `${path}:${i + 1}: bad tablespace oid "${String(m.ts)}"`);
    }
    checkMemberPath(m.path);
    if (m.type === 'file' && (typeof m.sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(m.sha256))) {
      throw new BarmantsError('integrity', `${path}:${i + 1}: file ${m.path} has no sha256: it cannot be verified`);
    }
    out.push(m);
  }
  return out;
}
