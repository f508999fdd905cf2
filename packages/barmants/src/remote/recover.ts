/*
 * Remote recovery: the same restore, streamed as tar archives through ssh2 into `tar -x` on the
 * target host (one per destination root: the data directory and each tablespace). Every file is
 * decompressed and its checksum verified here as it is sent; the configuration is built here from the
 * backup's own files, so the remote side only needs sh and tar. Same safety checks, run remotely.
 */
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Transform, type Readable, type TransformCallback } from 'node:stream';
import type { Header } from 'tar-stream';

type Headers = Partial<Header> & { name: string };
import { BarmantsError } from '../errors/index.js';
import { runHooks } from '../hooks/index.js';
import { createContentHash, createDecompressor, type ContentAlgorithm, type ContentHash } from '../repository/index.js';
import type { BackupMember } from '../recovery/backup-files.js';
import { WAL_DIR_NAME, shellQuote } from '../recovery/config.js';
import {
  baseResult, hookVars, nextSteps, recoveryFilesFor, type PreparedRecovery, type RecoverEnv, type RecoverOptions, type RecoverResult,
} from '../recovery/execute.js';
import { describeMember, INCOMPLETE_MARKER, isRestoredMember, memberChecksum, openStoredMember, type RestoreProgress } from '../recovery/restore.js';
import { rewriteTablespaceMap } from '../recovery/tablespaces.js';
import { streamWalFile } from '../recovery/wal-copy.js';
import { connectSsh, type SshSession } from './connect.js';
import { parseSshCommand } from './ssh-command.js';

/** The sh script that checks each destination on the remote host; one line per problem. */
export function remoteCheckScript(dirs: string[]): string {
  return [
    'command -v tar >/dev/null 2>&1 || echo "NOTAR"',
    'check() {',
    '  d="$1"',
    '  [ -L "$d" ] && d=$(readlink -f "$d")',
    '  [ -e "$d" ] || return 0',
    '  [ -d "$d" ] || { echo "NOTDIR $1"; return 0; }',
    '  if [ -f "$d/postmaster.pid" ]; then',
    '    pid=$(head -n 1 "$d/postmaster.pid")',
    '    case "$pid" in ""|*[!0-9]*) ;; *) if kill -0 "$pid" 2>/dev/null || [ -d "/proc/$pid" ]; then echo "LIVE $pid $1"; fi ;; esac',
    '  fi',
    '  [ -n "$(ls -A "$d" 2>/dev/null | head -n 1)" ] && echo "NONEMPTY $1"',
    '  return 0',
    '}',
    ...dirs.map((d) => `check ${shellQuote(d)}`),
  ].join('\n') + '\n';
}

export function interpretRemoteCheck(output: string, host: string): void {
  for (const line of output.split('\n')) {
    if (line === 'NOTAR') throw new BarmantsError('usage', `tar is not installed on ${host}: remote recovery streams a tar archive into it`);
    const live = /^LIVE (\d+) (.*)$/.exec(line);
    if (live) {
      throw new BarmantsError('unsafe', `${live[2]} on ${host} belongs to a running PostgreSQL (postmaster.pid: process ${live[1]} is alive)`, {
        hint: 'stop that server first, or restore into another directory',
      });
    }
    const m = /^(NOTDIR|NONEMPTY) (.*)$/.exec(line);
    if (m) {
      throw new BarmantsError('unsafe', `${m[2]} on ${host} ${m[1] === 'NOTDIR' ? 'exists and is not a directory' : 'is not empty'}`, {
        hint: 'choose an empty directory, or empty it yourself (--delta is not available for remote recovery)',
      });
    }
  }
}

async function memberText(p: PreparedRecovery, m: BackupMember): Promise<string> {
  const src = await openStoredMember(p.backupDir, m, p.info.codec);
  const chunks: Buffer[] = [];
  await pipeline(src.stream, src.codec === 'none' ? new Transform({ transform: (c, _e, cb) => cb(null, c) }) : createDecompressor(src.codec), async (s: AsyncIterable<Buffer>) => {
    for await (const c of s) chunks.push(c);
  });
  const b = Buffer.concat(chunks);
  const want = memberChecksum(m);
  const hash = createContentHash(want.alg);
  hash.update(b);
  if (hash.digest() !== want.hex) {
    throw new BarmantsError('integrity', `${describeMember(m)}: checksum mismatch (stored as ${src.path}); nothing was written`);
  }
  return b.toString('utf8');
}

class Verifier extends Transform {
  readonly hash: ContentHash;
  size = 0;
  constructor(
    alg: ContentAlgorithm,
    private readonly onBytes: (n: number) => void,
  ) {
    super();
    this.hash = createContentHash(alg);
  }
  override _transform(chunk: Buffer, _e: BufferEncoding, cb: TransformCallback): void {
    this.hash.update(chunk);
    this.size += chunk.length;
    this.onBytes(chunk.length);
    cb(null, chunk);
  }
}

type Extra = { name: string; content: string | Buffer; mode?: number } | { name: string; symlink: string } | { name: string; dir: true };

/** Streams one destination root as a tar archive into `tar -x -C root` on the remote host. */
async function streamRoot(
  session: SshSession,
  p: PreparedRecovery,
  root: string,
  members: BackupMember[],
  replace: Map<string, string>,
  extras: Extra[],
  wal: boolean,
  progress: RestoreProgress,
  report: () => void,
): Promise<void> {
  const { default: tar } = await import('tar-stream');
  const pack = tar.pack();
  const remote = session.exec(`tar -x --no-same-owner -f - -C ${shellQuote(root)}`, pack as unknown as Readable);
  const mtime = new Date();
  const entry = (h: Headers, body?: string | Buffer): Promise<void> =>
    new Promise((resolve, reject) => pack.entry(h as Header, body ?? '', (err) => (err ? reject(err) : resolve())));
  const produce = async (): Promise<void> => {
    for (const m of members) {
      if (m.type === 'dir') await entry({ name: m.path, type: 'directory', mode: 0o700, mtime });
    }
    for (const m of members) {
      if (m.type !== 'file') continue;
      const mt = m.mtime ? new Date(m.mtime * 1000) : mtime;
      const repl = replace.get(m.path);
      if (repl !== undefined) {
        await entry({ name: m.path, type: 'file', mode: 0o600, mtime: mt }, Buffer.from(repl));
      } else {
        const src = await openStoredMember(p.backupDir, m, p.info.codec);
        const want = memberChecksum(m);
        const v = new Verifier(want.alg, (n) => { progress.bytesDone += n; report(); });
        const sink = pack.entry({ name: m.path, type: 'file', mode: 0o600, size: m.size, mtime: mt } as Header);
        try {
          if (src.codec === 'none') await pipeline(src.stream, v, sink);
          else await pipeline(src.stream, createDecompressor(src.codec), v, sink);
        } catch (e) {
          throw new BarmantsError('integrity', `${describeMember(m)}: cannot be read back or has the wrong size (stored as ${src.path}): ${(e as Error).message}; the restore stopped`, {
            hint: `the destination is incomplete (marked by ${INCOMPLETE_MARKER}); run \`barmants verify-backup\` and restore another backup`,
          });
        }
        const digest = v.hash.digest();
        if (digest !== want.hex) {
          throw new BarmantsError('integrity', `${describeMember(m)}: checksum mismatch: ${want.alg} ${digest}, the file list says ${want.hex} (stored as ${src.path}); the restore stopped`, {
            hint: `the destination is incomplete (marked by ${INCOMPLETE_MARKER}); run \`barmants verify-backup\` and restore another backup`,
          });
        }
      }
      progress.filesDone++;
      report();
    }
    if (wal) {
      await entry({ name: WAL_DIR_NAME, type: 'directory', mode: 0o700, mtime });
      for (const f of p.walFiles) {
        const chunks: Buffer[] = [];
        await streamWalFile(f, async (s) => { for await (const c of s) chunks.push(c); });
        await entry({ name: `${WAL_DIR_NAME}/${f.name}`, type: 'file', mode: 0o600, mtime }, Buffer.concat(chunks));
      }
    }
    for (const x of extras) {
      if ('dir' in x) await entry({ name: x.name, type: 'directory', mode: 0o700, mtime });
      else if ('symlink' in x) await entry({ name: x.name, type: 'symlink', linkname: x.symlink, mtime });
      else await entry({ name: x.name, type: 'file', mode: x.mode ?? 0o600, mtime }, typeof x.content === 'string' ? Buffer.from(x.content) : x.content);
    }
    for (const m of members) {
      if (m.type === 'symlink' && m.link) await entry({ name: m.path, type: 'symlink', linkname: m.link, mtime });
    }
    pack.finalize();
  };
  const producing = produce().catch((e) => {
    pack.destroy(e);
    throw e;
  });
  const [prod, rem] = await Promise.allSettled([producing, remote]);
  if (prod.status === 'rejected') throw prod.reason;
  if (rem.status === 'rejected') throw rem.reason;
}

export async function recoverRemote(env: RecoverEnv, o: RecoverOptions, p: PreparedRecovery, started: number): Promise<RecoverResult> {
  const target = parseSshCommand(o.remoteSshCommand!);
  if (p.delta) throw new BarmantsError('usage', '--delta is not available with --remote-ssh-command yet', { hint: 'restore into an empty remote directory' });
  const hostLabel = `${target.user ? `${target.user}@` : ''}${target.host}${target.port === 22 ? '' : `:${target.port}`}`;
  const session = await connectSsh(target, { sshKey: p.server.sshKey });
  try {
    const dirs = [p.dest, ...p.placements.map((t) => t.target)];
    interpretRemoteCheck(await session.exec(remoteCheckScript(dirs)), hostLabel);
    const r = baseResult(p, o, hostLabel);
    if (o.dryRun) {
      r.elapsed_seconds = (Date.now() - started) / 1000;
      return r;
    }
    const log = env.logger.child({ server: p.server.name, backup: p.info.backupId, component: 'recover' });
    // Everything read from the backup before the remote side is touched: a bad config file changes nothing.
    const mains = p.members.filter((m) => m.ts === null && m.type === 'file');
    const find = (name: string): BackupMember | undefined => mains.find((m) => m.path === name);
    const confM = find('postgresql.conf');
    const autoM = find('postgresql.auto.conf');
    const mapM = find('tablespace_map');
    const files = recoveryFilesFor(p, env, o, target, confM ? await memberText(p, confM) : null, autoM ? await memberText(p, autoM) : null);
    const replace = new Map<string, string>();
    if (files.postgresqlConf !== null) replace.set('postgresql.conf', files.postgresqlConf);
    if (autoM) replace.set('postgresql.auto.conf', files.postgresqlAutoConf);
    if (mapM) replace.set('tablespace_map', rewriteTablespaceMap(await memberText(p, mapM), p.placements));

    await runHooks({ operation: 'recovery', phase: 'pre', hooks: p.server.hooks, vars: hookVars(p, env, o, null), logger: log });
    let error: string | null = null;
    try {
      const marker = join(p.dest, INCOMPLETE_MARKER);
      await session.exec(
        dirs.map((d) => `mkdir -p -m 700 ${shellQuote(d)}`).join(' && ') +
          ` && printf '%s\\n' ${shellQuote(`barmants recover ${p.server.name} ${p.info.backupId} started ${new Date().toISOString()}`)} > ${shellQuote(marker)}`,
      );
      const restored = p.members.filter(isRestoredMember);
      const progress: RestoreProgress = {
        bytesDone: 0, filesDone: 0,
        bytesTotal: restored.filter((m) => m.type === 'file').reduce((s, m) => s + m.size, 0),
        filesTotal: restored.filter((m) => m.type === 'file').length,
      };
      let last = 0;
      const report = (): void => {
        if (Date.now() - last < 100) return;
        last = Date.now();
        o.onProgress?.({ ...progress });
      };
      const t0 = process.hrtime.bigint();
      for (const t of p.placements) {
        await streamRoot(session, p, t.target, restored.filter((m) => m.ts === t.oid), new Map(), [], false, progress, report);
      }
      const extras: Extra[] = [{ name: files.signalFile, content: '' }, { name: '.barmants-recover.info', content: JSON.stringify(p.info.raw, null, 2) + '\n' }];
      if (!autoM) extras.push({ name: 'postgresql.auto.conf', content: files.postgresqlAutoConf });
      if (p.placements.length) {
        if (!restored.some((m) => m.ts === null && m.path === 'pg_tblspc')) extras.push({ name: 'pg_tblspc', dir: true });
        for (const t of p.placements) extras.push({ name: `pg_tblspc/${t.oid}`, symlink: t.target });
      }
      const mainMembers = restored.filter((m) => m.ts === null && !(m.type === 'symlink' && p.placements.some((t) => m.path === `pg_tblspc/${t.oid}`)));
      await streamRoot(session, p, p.dest, mainMembers, replace, extras, !p.getWal, progress, report);
      o.onProgress?.({ ...progress });
      const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
      r.restore = { files: progress.filesDone, bytes: progress.bytesTotal, dirs: 0, symlinks: 0, unchanged: 0, removed: 0, seconds, throughput_mib_s: progress.bytesTotal / 1048576 / seconds };
      r.wal.bytes = p.walFiles.reduce((s, f) => s + (f.size ?? 0), 0);
      r.settings = Object.fromEntries(files.settings);
      r.modified_settings = files.modified;
      r.dangerous_settings = files.dangerous;
      await session.exec(`sync; rm -f ${shellQuote(marker)}`);
    } catch (e) {
      error = (e as Error).message;
      throw e;
    } finally {
      await runHooks({ operation: 'recovery', phase: 'post', hooks: p.server.hooks, vars: hookVars(p, env, o, error), logger: log }).catch((e) => log.warn(String(e)));
    }
    r.next_steps = nextSteps(p, hostLabel, o.targetAction ?? null);
    r.elapsed_seconds = (Date.now() - started) / 1000;
    return r;
  } finally {
    session.close();
  }
}
