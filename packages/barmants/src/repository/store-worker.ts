// Entry point of a store worker thread (see store.ts). Runs one task at a time: a whole-file
// store, a hash of a stored file, or a streaming store fed chunk by chunk from the main thread,
// acknowledging each chunk when it is pulled so the main thread can bound the bytes in flight.
import { parentPort } from 'node:worker_threads';
import type { Codec } from './codec.js';
import type { PackedFile } from './store.js';
import { restoreFile, type RestoreFileJob } from '../recovery/restore-file.js';
import { BarmantsError, type ErrorKind } from '../errors/index.js';
import { hashStoredFile, storeFile, storeFramed, storeSmall, type StoreFileJob, type StoreSpec } from './storing.js';
import { dirname } from 'node:path';
import { compressWhole } from './codec.js';
import { fsyncDir } from './durable.js';

async function fsyncDirs(paths: string[]): Promise<void> {
  for (const d of new Set(paths.map((p) => dirname(p)))) await fsyncDir(d);
}

export type WorkerRequest =
  | { id: number; type: 'store'; job: StoreFileJob }
  | { id: number; type: 'storePacked'; slab: number; sab?: SharedArrayBuffer; files: PackedFile[]; spec: StoreSpec }
  | { id: number; type: 'hash'; path: string; codec: Codec }
  | { id: number; type: 'streamOpen'; dest: string; spec: StoreSpec }
  | { id: number; type: 'streamChunk'; buf: ArrayBuffer; len: number }
  | { id: number; type: 'streamEnd' }
  | { id: number; type: 'streamAbort' }
  | { id: number; type: 'restore'; jobs: RestoreFileJob[] }
  | { id: number; type: 'compressFrame'; slab: number; sab?: SharedArrayBuffer; len: number; codec: Codec; level?: number }
  | { id: number; type: 'ping' };

export type WorkerReply =
  | { id: number; type: 'done'; result: unknown }
  | { id: number; type: 'failed'; error: { message: string; code?: string; name: string; stack?: string; kind?: ErrorKind; hint?: string } }
  /** a chunk consumed; its transfer buffer comes back with it */
  | { id: number; type: 'ack'; bytes: number; buf?: ArrayBuffer };

const port = parentPort;
if (!port) throw new Error('store-worker.ts must run in a worker thread');

const ABORTED = new Error('stream store aborted');

type Chunk = { buf: ArrayBuffer; len: number };

/**
 * Chunks posted by the main thread, as an async iterable that pulls one at a time. Pulling the
 * next chunk means the previous one is done with: its buffer goes back to the main thread (and
 * its bytes no longer count as in flight).
 */
class ChunkFeed implements AsyncIterable<Uint8Array> {
  private queue: Array<Chunk | null | Error> = [];
  private wake: (() => void) | null = null;

  constructor(private readonly id: number) {}

  put(item: Chunk | null | Error): void {
    this.queue.push(item);
    this.wake?.();
    this.wake = null;
  }

  async *[Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
    let previous: Chunk | null = null;
    const giveBack = () => {
      if (!previous) return;
      port!.postMessage({ id: this.id, type: 'ack', bytes: previous.len, buf: previous.buf } satisfies WorkerReply, [previous.buf]);
      previous = null;
    };
    try {
      for (;;) {
        while (this.queue.length === 0) await new Promise<void>((r) => (this.wake = r));
        giveBack();
        const item = this.queue.shift()!;
        if (item === null) return;
        if (item instanceof Error) throw item;
        previous = item;
        yield new Uint8Array(item.buf, 0, item.len);
      }
    } finally {
      giveBack();
    }
  }
}

let feed: ChunkFeed | null = null;

/** The shared slabs the main thread has sent, by number (see Slab in store.ts). */
const slabs: Uint8Array[] = [];

function slabOf(msg: { slab: number; sab?: SharedArrayBuffer }): Uint8Array {
  if (msg.sab) slabs[msg.slab] = new Uint8Array(msg.sab);
  const s = slabs[msg.slab];
  if (!s) throw new Error(`internal: slab ${msg.slab} was never sent to this worker`);
  return s;
}

function reply(id: number, work: Promise<unknown>, before?: () => void): void {
  work.then(
    (result) => {
      before?.();
      port!.postMessage({ id, type: 'done', result } satisfies WorkerReply);
    },
    (err: unknown) => {
      before?.();
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
      reply(msg.id, storeFile(msg.job));
      break;
    case 'storePacked': {
      const { files, spec } = msg;
      reply(msg.id, (async () => {
        const slab = slabOf(msg);
        const out = files.map((f) => storeSmall([slab.subarray(f.offset, f.offset + f.length)], f.dest, spec));
        if ((spec.sync ?? true) && files.length) await fsyncDirs(files.map((f) => f.dest));
        return out;
      })());
      break;
    }
    case 'restore':
      reply(msg.id, (async () => {
        const out: Array<'written' | 'unchanged'> = [];
        for (const job of msg.jobs) out.push(await restoreFile(job));
        return out;
      })());
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
      })());
      break;
    case 'hash':
      reply(msg.id, hashStoredFile(msg.path, msg.codec));
      break;
    case 'streamOpen': {
      const f = new ChunkFeed(msg.id);
      feed = f;
      reply(msg.id, storeFramed(f, msg.dest, msg.spec).finally(() => {
        if (feed === f) feed = null;
      }));
      break;
    }
    case 'streamChunk':
      feed?.put({ buf: msg.buf, len: msg.len });
      break;
    case 'streamEnd':
      feed?.put(null);
      break;
    case 'ping':
      reply(msg.id, Promise.resolve(null));
      break;
    case 'streamAbort':
      feed?.put(ABORTED);
      break;
  }
});
