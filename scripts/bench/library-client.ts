// The replication library alone, for the `library` bench section: one BASE_BACKUP through
// pg-replication's ReplicationClient, every member either discarded (null sink) or written to a
// plain directory and made durable at the end as pg_basebackup -Fp does (every file, then every
// directory, fsynced; see fsyncAll), large files' write-back started while they are written (see
// WRITEBACK_STEP). No hashing, no catalog, nothing of barmants: what the library costs.
//
// Run as plain JavaScript: library.ts transpiles this file once into the scratch dir and points
// the `pg-replication` import at packages/pg-replication/dist, so no tsx start-up is measured.
//
//   node library-client.mjs null 'host=H port=P'
//   node library-client.mjs disk 'host=H port=P' DEST
//
// The rest of the connection (user, password) comes from libpq's environment (PGUSER, PGPASSWORD).
// On success one JSON line on stdout: sizes and the in-process times in ms.

import { closeSync, fdatasync, mkdirSync, openSync, symlinkSync, writeFileSync, writeSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { dirname, join } from 'node:path';

/** Node's own start-up, before this module runs (performance.now() counts from process start). */
const bootMs = performance.now();

interface MemberSinkLike {
  data(chunk: Buffer): void;
  end(): void;
}

function writeAll(fd: number, chunk: Buffer): void {
  let off = 0;
  while (off < chunk.length) off += writeSync(fd, chunk, off, chunk.length - off);
}

/**
 * Every WRITEBACK_STEP bytes of a file, its write-back is started (fdatasync on libuv's pool,
 * not waited for), as barmants does: the closing fsync pass then finds little left to write. It
 * stands in for the write-back pg_basebackup starts with sync_file_range, which Node lacks. A file
 * is closed only once its write-backs have finished (its descriptor number must not be reused).
 */
const WRITEBACK_STEP = 8 << 20;

/**
 * fsync every path, SYNC_PARALLEL at a time on libuv's thread pool. pg_basebackup first starts
 * write-back of every file (sync_file_range, which Node does not offer) and then fsyncs them one
 * by one; several fsyncs in flight is the nearest Node has to that first pass.
 */
const SYNC_PARALLEL = 8;
async function fsyncAll(paths: string[]): Promise<void> {
  let i = 0;
  const worker = async () => {
    while (i < paths.length) {
      const fh = await open(paths[i++]!, 'r');
      try {
        await fh.sync();
      } finally {
        await fh.close();
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(SYNC_PARALLEL, paths.length) }, worker));
}

async function main(): Promise<void> {
  const [mode, conninfo, dest] = process.argv.slice(2);
  if ((mode !== 'null' && mode !== 'disk') || !conninfo || (mode === 'disk' && !dest)) {
    throw new Error('usage: library-client null|disk CONNINFO [DEST]');
  }
  const { ReplicationClient } = await import('pg-replication');
  const tImported = performance.now();

  const rc = await ReplicationClient.connect(conninfo);
  const tConnected = performance.now();
  const cpuConnected = process.cpuUsage();

  let fileBytes = 0;
  let files = 0;
  const written: string[] = [];
  const dirs: string[] = [];
  const closing: Promise<void>[] = [];
  if (mode === 'disk') {
    mkdirSync(dest!, { recursive: true, mode: 0o700 });
    dirs.push(dest!);
  }
  const target = (path: string, tablespace: number | null): string => {
    if (tablespace !== null) throw new Error(`tablespace ${tablespace}: this bench client writes the main data directory only`);
    if (path.split('/').includes('..')) throw new Error(`archive member outside the backup: ${path}`);
    return join(dest!, path);
  };

  let result;
  try {
    result = await rc.baseBackup(
      {
        label: 'pg-replication bench',
        fastCheckpoint: true,
        wal: false,
        // What pg_basebackup -X none sends: no WAIT option (the server waits for archiving, a
        // no-op without archive_mode), PROGRESS (size estimate, on by default), a CRC32C
        // manifest, TABLESPACE_MAP only in tar format.
        wait: true,
        progress: true,
        manifest: true,
        tablespaceMap: mode === 'null',
      },
      {
        onMember(entry): MemberSinkLike | null {
          if (mode === 'null') {
            if (entry.type !== 'file') return null;
            files++;
            return {
              data: (chunk) => {
                fileBytes += chunk.length;
              },
              end: () => {},
            };
          }
          const path = target(entry.path, entry.tablespace.oid);
          if (entry.type === 'directory') {
            mkdirSync(path, { recursive: true, mode: entry.mode & 0o7777 });
            dirs.push(path);
            return null;
          }
          if (entry.type === 'symlink') {
            symlinkSync(entry.linkname ?? '', path);
            return null;
          }
          if (entry.type !== 'file') return null;
          let fd: number;
          try {
            fd = openSync(path, 'w', entry.mode & 0o7777);
          } catch (e) {
            if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
            mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
            dirs.push(dirname(path));
            fd = openSync(path, 'w', entry.mode & 0o7777);
          }
          files++;
          written.push(path);
          const flushes: Promise<void>[] = [];
          let sinceWriteback = 0;
          return {
            data: (chunk) => {
              fileBytes += chunk.length;
              writeAll(fd, chunk);
              sinceWriteback += chunk.length;
              if (mode === 'disk' && sinceWriteback >= WRITEBACK_STEP) {
                sinceWriteback = 0;
                flushes.push(new Promise((resolve, reject) => fdatasync(fd, (e) => (e ? reject(e) : resolve()))));
              }
            },
            end: () => {
              if (!flushes.length) return closeSync(fd);
              const closed = Promise.allSettled(flushes).then(() => closeSync(fd)).then(() => Promise.all(flushes)).then(() => undefined);
              closing.push(closed);
            },
          };
        },
      },
    );
  } finally {
    await rc.close();
  }
  const tStreamed = performance.now();
  const cpuStream = process.cpuUsage(cpuConnected);

  await Promise.all(closing);
  if (mode === 'disk') {
    // pg_basebackup -Fp writes backup_manifest next to the files, then fsyncs the whole tree.
    const manifest = join(dest!, 'backup_manifest');
    writeFileSync(manifest, result.manifest ?? Buffer.alloc(0), { mode: 0o600 });
    written.push(manifest);
    await fsyncAll(written);
    await fsyncAll(dirs);
  }
  const tDone = performance.now();

  process.stdout.write(
    JSON.stringify({
      mode,
      archiveBytes: result.bytes,
      fileBytes,
      files,
      manifestBytes: result.manifest?.length ?? 0,
      bootMs,
      importMs: tImported - bootMs,
      connectMs: tConnected - tImported,
      streamMs: tStreamed - tConnected,
      syncMs: tDone - tStreamed,
      // CPU of this process (user + system) while the stream ran: far below streamMs, it waited.
      streamCpuMs: (cpuStream.user + cpuStream.system) / 1000,
      streamSysMs: cpuStream.system / 1000,
      inProcessMs: tDone - bootMs,
    }) + '\n',
  );
}

main().catch((e: Error) => {
  process.stderr.write(`library-client: ${e.stack ?? e.message}\n`);
  process.exitCode = 1;
});
