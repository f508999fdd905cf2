// Entry point of a store worker thread (see store.ts). Runs one task at a time: a whole-file
// store, a batch of small files packed in a shared slab, one compressed frame of a large file,
// a hash of a stored file, or the restore of members (recovery).
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { parentPort } from 'node:worker_threads';
import type { ContentAlgorithm } from './checksum.js';
import type { Codec } from './codec.js';
import type { PackedFile } from './store.js';
import { restoreFile, type RestoreFileJob } from '../recovery/restore-file.js';
import type { WalFileToCopy } from '../recovery/wal-copy.js';
import { BarmantsError, type ErrorKind } from '../errors/index.js';
import type { StoreFileJob, StoreSpec } from './storing.js';
import { dirname } from 'node:path';
import { compressWhole } from './codec.js';
import { fsyncDir } from './durable.js';

// Backup-side work, loaded on the first such task (or ping): a worker that only restores
// (recovery) starts without it and the CRC32C native module under it.
let storingModule: Promise<typeof import('./storing.js')> | undefined;
const storing = (): Promise<typeof import('./storing.js')> => (storingModule ??= import('./storing.js'));

async function fsyncDirs(paths: string[]): Promise<void> {
  for (const d of new Set(paths.map((p) => dirname(p)))) await fsyncDir(d);
}

export type WorkerRequest =
  | { id: number; type: 'store'; job: StoreFileJob }
  | { id: number; type: 'storePacked'; slab: number; sab?: SharedArrayBuffer; files: PackedFile[]; spec: StoreSpec }
  | { id: number; type: 'hash'; path: string; codec: Codec; alg: ContentAlgorithm }
  | { id: number; type: 'restore'; jobs: RestoreFileJob[] }
  | { id: number; type: 'copyWal'; file: WalFileToCopy; target: string }
  | { id: number; type: 'compressFrame'; slab: number; sab?: SharedArrayBuffer; len: number; codec: Codec; level?: number }
  | { id: number; type: 'ping'; backupCode: boolean };

export type WorkerReply =
  | { id: number; type: 'done'; result: unknown }
  | { id: number; type: 'failed'; error: { message: string; code?: string; name: string; stack?: string; kind?: ErrorKind; hint?: string } };

const port = parentPort;
if (!port) throw new Error('store-worker.ts must run in a worker thread');

/** The shared slabs the main thread has sent, by number (see Slab in store.ts). */
const slabs: Uint8Array[] = [];

function slabOf(msg: { slab: number; sab?: SharedArrayBuffer }): Uint8Array {
  if (msg.sab) slabs[msg.slab] = new Uint8Array(msg.sab);
  const s = slabs[msg.slab];
  if (!s) throw new Error(`internal: slab ${msg.slab} was never sent to this worker`);
  return s;
}

/**
 * The codecs' native outputs (lz4-napi and zstd-napi buffers, zlib's per-call state) live outside
 * V8's heap and are not reported to it, while a worker allocates almost no JavaScript: no
 * collection ever came, and the dead buffers piled up with the size of the backup (lz4 at pgbench
 * scale 50: 253 MB peak RSS for the process, against the 200 MB it must stay under; lz4-napi
 * leaves a few MB of garbage per MiB compressed). A minor collection after every COLLECT_EVERY
 * bytes of content frees them; it costs well under a millisecond, as the young generation holds
 * almost nothing else (lz4 peak RSS, collecting every 1 / 8 / 32 MiB / never: 156 / 178 / 206 /
 * 259 MB). `gc` is exposed for this
 * worker's use only, through a context of its own; without it (a V8 that refuses the flag) the
 * worker runs as before.
 */
const COLLECT_EVERY = 4 << 20;
const minorGc = ((): (() => void) | null => {
  try {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as ((o?: { type: 'minor' | 'major' }) => void) | undefined;
    return typeof gc === 'function' ? () => gc({ type: 'minor' }) : null;
  } catch {
    return null;
  }
})();
let bytesSinceCollect = 0;

function processed(bytes: number): void {
  bytesSinceCollect += bytes;
  if (bytesSinceCollect < COLLECT_EVERY || !minorGc) return;
  bytesSinceCollect = 0;
  minorGc();
}

function reply(id: number, work: Promise<unknown>, bytes = 0): void {
  work.then(
    (result) => {
      processed(bytes);
      port!.postMessage({ id, type: 'done', result } satisfies WorkerReply);
    },
    (err: unknown) => {
      const e = err instanceof Error ? err : new Error(String(err));
      const code = (e as NodeJS.ErrnoException).code;
      const kind = e instanceof BarmantsError ? { kind: e.kind, hint: e.hint } : {};
      port!.postMessage({
        id, type: 'failed', error: { message: e.message, name: e.name, stack: e.stack, ...(code ? { code } : {}), ...kind },
      } satisfies WorkerReply);
    },
  );
}

port.on('message', (msg: WorkerRequest) => {
  switch (msg.type) {
    case 'store':
      reply(msg.id, storing().then(({ storeFile }) => storeFile(msg.job)).then((r) => (processed(r.size), r)));
      break;
    case 'storePacked': {
      const { files, spec } = msg;
      reply(msg.id, (async () => {
        const slab = slabOf(msg);
        const { storeSmall } = await storing();
        const out = files.map((f) => storeSmall([slab.subarray(f.offset, f.offset + f.length)], f.dest, spec));
        if ((spec.sync ?? true) && files.length) await fsyncDirs(files.map((f) => f.dest));
        return out;
      })(), files.reduce((n, f) => n + f.length, 0));
      break;
    }
    case 'restore':
      reply(msg.id, (async () => {
        const out: Array<'written' | 'unchanged'> = [];
        for (const job of msg.jobs) out.push(await restoreFile(job));
        return out;
      })(), msg.jobs.reduce((n, j) => n + j.member.size, 0));
      break;
    case 'copyWal':
      // Loaded on first use, like the backup side: most workers never copy WAL.
      reply(msg.id, import('../recovery/wal-copy.js').then(({ copyWalFileSync }) => copyWalFileSync(msg.file, msg.target)), msg.file.size ?? 0);
      break;
    case 'compressFrame':
      reply(msg.id, (async () => {
        const slab = slabOf(msg);
        const out = compressWhole(msg.codec, Buffer.from(slab.buffer, 0, msg.len), msg.level);
        // The frame goes back in the slab when it fits (it almost always does); else as bytes.
        if (out.length <= slab.length) {
          slab.set(out, 0);
          return out.length;
        }
        return new Uint8Array(out);
      })(), msg.len);
      break;
    case 'hash':
      reply(msg.id, storing().then(({ hashStoredFile }) => hashStoredFile(msg.path, msg.codec, msg.alg)));
      break;
    case 'ping':
      // warm() pings before a backup: the backup-side code is loaded by its answer.
      reply(msg.id, msg.backupCode ? storing().then(() => null) : Promise.resolve(null));
      break;
  }
});
