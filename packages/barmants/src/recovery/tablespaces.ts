/*
 * Tablespaces on restore: where each one goes (its original location, or --tablespace NAME:PATH),
 * and the two things PostgreSQL reads to find them: the `pg_tblspc/<oid>` symlinks and, when the
 * backup has one, `tablespace_map` (which wins at startup: PostgreSQL recreates the links from it).
 */
import { readFile } from 'node:fs/promises';
import { isAbsolute, join, normalize } from 'node:path';
import { BarmantsError } from '../errors/index.js';
import { writeFileDurable } from '../repository/durable.js';
import type { BackupTablespace } from './backup-files.js';
import { ensureRealDir, placeSymlink } from './restore.js';

export interface TablespacePlacement extends BackupTablespace {
  /** where the files go */
  target: string;
  relocated: boolean;
}

/** `NAME:PATH` → [name, path]; the path must be absolute. */
export function parseTablespaceOption(text: string): [string, string] {
  const i = text.indexOf(':');
  if (i <= 0 || i === text.length - 1) {
    throw new BarmantsError('usage', `invalid --tablespace "${text}": expected NAME:PATH, e.g. ts1:/srv/pg/ts1`);
  }
  const name = text.slice(0, i);
  const path = text.slice(i + 1);
  if (!isAbsolute(path)) throw new BarmantsError('usage', `invalid --tablespace "${text}": the location must be an absolute path`);
  return [name, normalize(path).replace(/\/+$/, '') || '/'];
}

/** Where every tablespace of the backup goes; unknown names in `mapping` are an error. */
export function placeTablespaces(tablespaces: readonly BackupTablespace[], mapping: ReadonlyMap<string, string>): TablespacePlacement[] {
  for (const name of mapping.keys()) {
    if (!tablespaces.some((t) => t.name === name)) {
      const known = tablespaces.map((t) => t.name);
      throw new BarmantsError('usage', `--tablespace ${name}: the backup has no tablespace named "${name}"`, {
        hint: known.length ? `its tablespaces are: ${known.join(', ')}` : 'this backup has no user tablespace',
      });
    }
  }
  const out = tablespaces.map((t) => {
    const m = mapping.get(t.name);
    return { ...t, target: m ?? t.location, relocated: m !== undefined && m !== t.location };
  });
  const seen = new Map<string, string>();
  for (const p of out) {
    const other = seen.get(p.target);
    if (other !== undefined) throw new BarmantsError('usage', `tablespaces ${other} and ${p.name} would both be restored into ${p.target}`);
    seen.set(p.target, p.name);
  }
  return out;
}

/** PostgreSQL escapes `\`, CR and LF in tablespace_map paths with a backslash. */
function escapeMapPath(path: string): string {
  return path.replace(/[\\\r\n]/g, (c) => `\\${c}`);
}

/** tablespace_map content with each OID's path replaced by its new location. */
export function rewriteTablespaceMap(text: string, placements: readonly TablespacePlacement[]): string {
  const byOid = new Map(placements.map((p) => [String(p.oid), p.target]));
  const done = new Set<string>();
  const lines = text.split('\n');
  const out: string[] = [];
  for (const line of lines) {
    const m = /^(\d+) (.*)$/.exec(line);
    if (m !== null && byOid.has(m[1]!)) {
      out.push(`${m[1]} ${escapeMapPath(byOid.get(m[1]!)!)}`);
      done.add(m[1]!);
    } else {
      out.push(line);
    }
  }
  let result = out.join('\n');
  for (const [oid, target] of byOid) {
    if (!done.has(oid)) result += `${result === '' || result.endsWith('\n') ? '' : '\n'}${oid} ${escapeMapPath(target)}\n`;
  }
  return result;
}

/** Points pg_tblspc/<oid> at each tablespace's location, and rewrites tablespace_map if present. */
export async function linkTablespaces(dest: string, placements: readonly TablespacePlacement[]): Promise<{ mapRewritten: boolean }> {
  if (placements.length === 0) return { mapRewritten: false };
  await ensureRealDir(join(dest, 'pg_tblspc'), true);
  for (const p of placements) await placeSymlink(join(dest, 'pg_tblspc', String(p.oid)), p.target, true);
  let text: string;
  try {
    text = await readFile(join(dest, 'tablespace_map'), 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { mapRewritten: false };
    throw e;
  }
  await writeFileDurable(join(dest, 'tablespace_map'), rewriteTablespaceMap(text, placements));
  return { mapRewritten: true };
}
