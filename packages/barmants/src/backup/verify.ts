/*
 * verify-backup: re-reads every stored file of a backup through the store workers (decompressing
 * it) and compares its checksum (BLAKE3, or SHA-256 in older backups) and size with files.jsonl;
 * checks the server manifest's own checksum too. Reports every damaged or missing file, not just
 * the first.
 */
import { readFile, stat } from 'node:fs/promises';
import { relative } from 'node:path';
import { verifyManifestChecksum } from 'pg-replication';
import type { BackupRecord } from '../catalog/index.js';
import { isCodec, StoreWorkerPool, type Codec, type ServerLayout } from '../repository/index.js';
import { fileChecksum, readFileList, storedPath } from './info.js';

export interface VerifyProblem {
  /** path of the stored file, relative to the backup directory */
  file: string;
  problem: 'missing' | 'checksum' | 'size' | 'unreadable' | 'manifest';
  detail: string;
}

export interface VerifyReport {
  backupId: string;
  filesChecked: number;
  bytesChecked: number;
  seconds: number;
  problems: VerifyProblem[];
}

export async function verifyBackup(
  layout: ServerLayout,
  rec: BackupRecord,
  opts: { pool?: StoreWorkerPool; onProgress?: (filesDone: number, bytesDone: number) => void } = {},
): Promise<VerifyReport> {
  const t0 = Date.now();
  const dir = layout.backupDir(rec.backupId);
  const codec: Codec = rec.compression && isCodec(rec.compression) ? rec.compression : 'none';
  const problems: VerifyProblem[] = [];
  const rel = (p: string) => relative(dir, p);

  // The manifest as the server sent it: its last line is a SHA-256 of everything before it.
  try {
    const buf = await readFile(layout.backupManifestFile(rec.backupId));
    if (!verifyManifestChecksum(buf)) problems.push({ file: 'backup_manifest', problem: 'manifest', detail: 'its Manifest-Checksum does not match its content' });
  } catch (err) {
    const missing = (err as NodeJS.ErrnoException).code === 'ENOENT';
    problems.push({ file: 'backup_manifest', problem: missing ? 'missing' : 'manifest', detail: missing ? 'file is missing' : (err as Error).message });
  }

  const pool = opts.pool ?? new StoreWorkerPool();
  let filesChecked = 0;
  let bytesChecked = 0;
  const inFlight = new Set<Promise<void>>();
  const window = Math.max(2, pool.size * 2);
  try {
    for await (const e of readFileList(layout, rec.backupId)) {
      if (e.type !== 'file') continue;
      const path = storedPath(layout, rec.backupId, e, codec);
      const sum = fileChecksum(e)!; // readFileList refuses a file without one
      const task = (async () => {
        try {
          await stat(path);
        } catch {
          problems.push({ file: rel(path), problem: 'missing', detail: 'file is missing' });
          return;
        }
        try {
          const d = await pool.hashFile(path, codec, sum.alg);
          if (d.size !== e.size) problems.push({ file: rel(path), problem: 'size', detail: `${d.size} bytes once decompressed, files.jsonl says ${e.size}` });
          else if (d.checksum !== sum.hex) problems.push({ file: rel(path), problem: 'checksum', detail: `${sum.alg} ${d.checksum.slice(0, 16)}…, files.jsonl says ${sum.hex.slice(0, 16)}…` });
          bytesChecked += d.size;
        } catch (err) {
          problems.push({ file: rel(path), problem: 'unreadable', detail: (err as Error).message.replace(/^cannot read [^:]*: /, '') });
        }
        filesChecked++;
        opts.onProgress?.(filesChecked, bytesChecked);
      })();
      inFlight.add(task);
      void task.finally(() => inFlight.delete(task));
      if (inFlight.size >= window) await Promise.race(inFlight);
    }
    await Promise.all(inFlight);
  } finally {
    if (!opts.pool) await pool.close();
  }
  problems.sort((a, b) => (a.file < b.file ? -1 : a.file > b.file ? 1 : 0));
  return { backupId: rec.backupId, filesChecked, bytesChecked, seconds: (Date.now() - t0) / 1000, problems };
}
