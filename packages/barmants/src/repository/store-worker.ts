// Entry point of a store worker thread (see store.ts). Runs one task at a time: a whole-file
// store, a hash of a stored file, or a streaming store fed chunk by chunk from the main thread,
// acknowledging each chunk when it is pulled so the main thread can bound the bytes in flight.
import { parentPort } from 'node:worker_threads';
import type { Codec } from './codec.js';
import { hashStoredFile, storeFile, storeFramed, storeSmall, type StoreFileJob } from './storing.js';
import { dirname } from 'node:path';
import { fsyncDir } from './durable.js';

async function fsyncDirs(paths: string[]): Promise<void> {
  for (const d of new Set(paths.map((p) => dirname(p)))) await fsyncDir(d);
}

export type WorkerRequest =
  | { id: number; type: 'store'; job: StoreFileJob }
  | { id: number; type: 'storeBatch'; jobs: StoreFileJob[]; sync: boolean }
  | { id: number; type: 'hash'; path: string; codec: Codec }
  | { id: number; type: 'streamOpen'; dest: string; codec: Codec; level?: number; sync?: boolean }
  | { id: number; type: 'streamChunk'; buf: ArrayBuffer }
  | { id: number; type: 'streamEnd' }
  | { id: number; type: 'streamAbort' }
  | { id: number; type: 'ping' };

export type WorkerReply =
  | { id: number; type: 'done'; result: unknown }
  | { id: number; type: 'failed'; error: { message: string; code?: string; name: string; stack?: string } }
  | { id: number; type: 'ack'; bytes: number };

const port = parentPort;
if (!port) throw new Error('store-worker.ts must run in a worker thread');

const ABORTED = new Error('stream store aborted');

/** Chunks posted by the main thread, as an async iterable that pulls one at a time. */
class ChunkFeed implements AsyncIterable<Uint8Array> {
  private queue: Array<Uint8Array | null | Error> = [];
  private wake: (() => void) | null = null;

  constructor(private readonly id: number) {}

  put(item: Uint8Array | null | Error): void {
    this.queue.push(item);
    this.wake?.();
    this.wake = null;
  }

  async *[Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
    for (;;) {
      while (this.queue.length === 0) await new Promise<void>((r) => (this.wake = r));
      const item = this.queue.shift()!;
      if (item === null) return;
      if (item instanceof Error) throw item;
      port!.postMessage({ id: this.id, type: 'ack', bytes: item.length } satisfies WorkerReply);
      yield item;
    }
  }
}

let feed: ChunkFeed | null = null;

function reply(id: number, work: Promise<unknown>): void {
  work.then(
    (result) => port!.postMessage({ id, type: 'done', result } satisfies WorkerReply),
    (err: unknown) => {
      const e = err instanceof Error ? err : new Error(String(err));
      const code = (e as NodeJS.ErrnoException).code;
      port!.postMessage({
        id, type: 'failed', error: { message: e.message, name: e.name, stack: e.stack, ...(code ? { code } : {}) },
      } satisfies WorkerReply);
    },
  );
}

port.on('message', (msg: WorkerRequest) => {
  switch (msg.type) {
    case 'store':
      reply(msg.id, storeFile(msg.job));
      break;
    case 'storeBatch':
      reply(msg.id, (async () => {
        const out = [];
        for (const job of msg.jobs) out.push(storeSmall(job.source as Uint8Array[], job.dest, job.codec, job.level, msg.sync));
        if (msg.sync && msg.jobs.length) await fsyncDirs(msg.jobs.map((j) => j.dest));
        return out;
      })());
      break;
    case 'hash':
      reply(msg.id, hashStoredFile(msg.path, msg.codec));
      break;
    case 'streamOpen': {
      const f = new ChunkFeed(msg.id);
      feed = f;
      reply(msg.id, storeFramed(f, msg.dest, msg.codec, msg.level, msg.sync ?? true).finally(() => {
        if (feed === f) feed = null;
      }));
      break;
    }
    case 'streamChunk':
      feed?.put(new Uint8Array(msg.buf));
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
