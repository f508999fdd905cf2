// Test helper: turns a stored backup back into a data directory without the recovery module
// (decompress each member, relocate tablespaces, put the archived WAL in pg_wal), so backup
// tests can prove that what they stored starts as a cluster.
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, readdir, readFile, symlink, writeFile, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { codecFromFileName, createDecompressor, codecSuffix, type Codec } from '../../packages/barmants/src/repository/index.js';

interface Member { ts: number | null; path: string; type: 'file' | 'dir' | 'symlink'; link: string | null; mode: number }

/**
 * Extracts backup `backupDir` (…/base/<id>) into `dest`, tablespace <oid> into `tsRoot/<oid>`,
 * and every archived segment of `walsDir` into `dest/pg_wal`.
 */
export async function extractBackup(backupDir: string, walsDir: string, dest: string, tsRoot: string): Promise<void> {
  const info = JSON.parse(await readFile(join(backupDir, 'backup.info'), 'utf8')) as { compression: Codec; tablespaces: { oid: number }[] };
  const codec = info.compression ?? 'none';
  const lines = (await readFile(join(backupDir, 'files.jsonl'), 'utf8')).split('\n').filter(Boolean);
  await mkdir(dest, { recursive: true, mode: 0o700 });
  const rootOf = (ts: number | null) => (ts === null ? dest : join(tsRoot, String(ts)));
  for (const l of lines) {
    const m = JSON.parse(l) as Member;
    const out = join(rootOf(m.ts), m.path);
    if (m.type === 'dir') await mkdir(out, { recursive: true, mode: 0o700 });
    else if (m.type === 'symlink') continue; // tablespace links: recreated from tablespace_map below
    else {
      await mkdir(dirname(out), { recursive: true, mode: 0o700 });
      const src = join(m.ts === null ? join(backupDir, 'data') : join(backupDir, 'tablespaces', String(m.ts)), m.path) + codecSuffix(codec);
      await pipeline(createReadStream(src), createDecompressor(codec), createWriteStream(out, { mode: 0o600 }));
    }
  }
  await mkdir(join(dest, 'pg_tblspc'), { recursive: true, mode: 0o700 });
  for (const t of info.tablespaces ?? []) {
    await mkdir(join(tsRoot, String(t.oid)), { recursive: true, mode: 0o700 });
  }
  // tablespace_map would point PostgreSQL at the original locations: relink to ours instead.
  const mapPath = join(dest, 'tablespace_map');
  const map = await readFile(mapPath, 'utf8').catch(() => null);
  if (map !== null) {
    await rm(mapPath);
    for (const line of map.split('\n').filter(Boolean)) {
      const oid = line.split(' ')[0]!;
      await rm(join(dest, 'pg_tblspc', oid), { force: true });
      await symlink(join(tsRoot, oid), join(dest, 'pg_tblspc', oid));
    }
  }
  await mkdir(join(dest, 'pg_wal'), { recursive: true, mode: 0o700 });
  for (const dir of await readdir(walsDir)) {
    if (dir.endsWith('.history')) {
      await writeFile(join(dest, 'pg_wal', dir), await readFile(join(walsDir, dir)));
      continue;
    }
    if (!/^[0-9A-F]{16}$/.test(dir)) continue;
    for (const f of await readdir(join(walsDir, dir))) {
      const c = codecFromFileName(f);
      const name = f.slice(0, 24);
      if (f.length !== 24 + codecSuffix(c).length) continue;
      await pipeline(createReadStream(join(walsDir, dir, f)), createDecompressor(c), createWriteStream(join(dest, 'pg_wal', name), { mode: 0o600 }));
    }
  }
}
