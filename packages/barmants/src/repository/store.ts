// Storing files off the main thread: a pool of worker threads that compress, hash (the checksum of
// the uncompressed content) and durably write repository files, or hard-link an identical file of an
// earlier backup. The main thread only moves bytes, so the replication connection stays served.
//
// The worker script is `store-worker.js` next to this module when running from `dist/`; under tsx
// (running `src/*.ts` directly) it is the `.ts` sibling, loaded through tsx's register() because
// Node 20 workers do not inherit the parent's --import loaders.
import { existsSync } from 'node:fs';
import { TmpFile } from './durable.js';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { BarmantsError, type ErrorKind } from '../errors/index.js';
import type { ContentAlgorithm } from './checksum.js';
import type { Codec } from './codec.js';
import { ContentSums, type StoredFile, type StoreFileJob, type StoreSpec } from './storing.js';
import type { WorkerReply, WorkerRequest } from './store-worker.js';
import type { RestoreFileJob } from '../recovery/restore-file.js';
import type { WalFileToCopy } from '../recovery/wal-copy.js';

export type { StoredFile, StoreFileJob, ReuseCandidate, StoreSpec } from './storing.js';

export interface StoredDigest {
  checksum: string;
  size: number;
  storedSize: number;
  /** in the manifest algorithm the store was asked for */
  manifestChecksum?: string;
}

/**
 * Size of the shared slabs that carry file content to the workers (see Slab), and so of a large
 * file's compressed frames. They are allocated once and reused: fresh allocations cost page faults
 * on every use, which showed up as a large share of a backup's CPU. 4 MiB rather than 1: a quarter
 * of the messages to and from the workers, whose cost (a worker woken per message, on two cores
 * shared with the server) weighed on the receiving thread (lz4 backup at scale 50, same minute:
 * 1 MiB 3.08 s, 2 MiB 2.90 s, 4 MiB 2.72-2.85 s, 8 MiB 2.86 s; peak RSS 135 / 154 / 176 MB at 1 /
 * 4 / 8 MiB). zstd compresses 4 MiB frames 2.6% less well than 1 MiB ones on pgbench data (gzip
 * 0.7% better, lz4 the same): docs/BENCHMARKS.md.
 */
export const TRANSFER_BUFFER = 4 << 20;

/** A small file packed into a transfer buffer with others. */
export interface PackedFile {
  dest: string;
  offset: number;
  length: number;
}

function spawnStoreWorker(): Worker {
  const js = new URL('./store-worker.js', import.meta.url);
  if (existsSync(fileURLToPath(js))) return new Worker(js);
  const ts = new URL('./store-worker.ts', import.meta.url);
  const tsxApi = import.meta.resolve('tsx/esm/api');
  const boot =
    `import(${JSON.stringify(tsxApi)}).then((m) => { m.register(); return import(${JSON.stringify(ts.href)}); })` +
    `.catch((e) => { process.nextTick(() => { throw e; }); });`;
  return new Worker(boot, { eval: true });
}

interface Slot {
  worker: Worker;
  /** the shared slabs this worker has already been sent */
  slabsKnown: Set<number>;
  /** reply handler of the task currently holding this worker */
  onReply: ((r: WorkerReply) => void) | null;
  onCrash: ((err: Error) => void) | null;
}

type Grant = (slot: Slot) => void;
type TaskRequest =
  | { type: 'store'; job: StoreFileJob }
  | { type: 'storePacked'; slab: number; files: PackedFile[]; spec: StoreSpec }
  | { type: 'hash'; path: string; codec: Codec; alg: ContentAlgorithm }
  | { type: 'restore'; jobs: RestoreFileJob[] }
  | { type: 'copyWal'; file: WalFileToCopy; target: string }
  | { type: 'compressFrame'; slab: number; len: number; codec: Codec; level?: number };

/**
 * A slab of shared memory (TRANSFER_BUFFER) that carries file content to a worker: the main thread fills it,
 * a worker reads it (and may write its result back into it), the main thread releases it when the
 * worker's reply has been consumed. Posting a slab's number costs nothing, where transferring an
 * ArrayBuffer costs ~0.15 ms per message (measured): a backup sends one per slab.
 */
export interface Slab {
  readonly index: number;
  readonly view: Uint8Array;
}

function reviveError(e: { message: string; code?: string; name: string; stack?: string; kind?: ErrorKind; hint?: string }, what: string): Error {
  // A BarmantsError raised in the worker comes back as itself: its message and hint are for the user.
  if (e.kind) return new BarmantsError(e.kind, e.message, e.hint ? { hint: e.hint } : {});
  const cause = Object.assign(new Error(e.message), { name: e.name, ...(e.code ? { code: e.code } : {}) });
  if (e.stack) cause.stack = e.stack;
  const kind = e.code === 'ERR_LZ4_CORRUPT' || /incorrect header|invalid|corrupt|unknown frame|truncated/i.test(e.message)
    ? 'integrity'
    : 'io';
  return new BarmantsError(kind, `${what}: ${e.message}`, { cause });
}

export class StoreWorkerPool {
  readonly size: number;
  private readonly slots: Slot[] = [];
  private readonly idle: Slot[] = [];
  private readonly waiting: Grant[] = [];
  private nextId = 1;
  private closed = false;
  private readonly slabs: SharedArrayBuffer[] = [];
  private readonly freeSlabs: Slab[] = [];

  constructor(size = availableParallelism()) {
    this.size = Math.max(1, Math.floor(size));
  }

  /** A free shared slab (allocated once, reused for the pool's lifetime). */
  takeSlab(): Slab {
    const free = this.freeSlabs.pop();
    if (free) return free;
    const sab = new SharedArrayBuffer(TRANSFER_BUFFER);
    this.slabs.push(sab);
    return { index: this.slabs.length - 1, view: new Uint8Array(sab) };
  }

  /** Gives a slab back once nothing reads or writes it any more. */
  releaseSlab(slab: Slab): void {
    this.freeSlabs.push(slab);
  }

  /** slabs allocated so far (each TRANSFER_BUFFER bytes) */
  get slabCount(): number {
    return this.slabs.length;
  }

  /**
   * Stores many small files packed in one shared slab: per-file messaging dominates when a
   * cluster has thousands of 8 KiB files.
   */
  storePacked(slab: Slab, files: PackedFile[], spec: StoreSpec): Promise<StoredFile[]> {
    return this.run({ type: 'storePacked', slab: slab.index, files, spec }, `cannot store ${files.length} files`) as Promise<StoredFile[]>;
  }

  /**
   * Compresses the first `len` bytes of a slab into a self-contained frame in a worker. The frame
   * comes back in the slab itself (a number: its length), or as bytes when it is larger than the slab.
   */
  compressFrame(slab: Slab, len: number, codec: Codec, level?: number): Promise<number | Uint8Array> {
    return this.run({ type: 'compressFrame', slab: slab.index, len, codec, ...(level !== undefined ? { level } : {}) }, 'cannot compress') as Promise<number | Uint8Array>;
  }

  /** A large file whose chunks are compressed by all the workers at once (see ParallelFrameWriter). */
  openParallelFile(dest: string, spec: StoreSpec): ParallelFrameWriter {
    return new ParallelFrameWriter(this, dest, spec);
  }

  /** A packer of small files into transfer buffers for storePacked, for one store spec. */
  packer(spec: StoreSpec): FilePacker {
    return new FilePacker(this, spec);
  }

  /** Compresses + hashes + durably writes one file (or hard-links reuseFrom when identical). */
  storeFile(job: StoreFileJob): Promise<StoredFile> {
    if (typeof job.source === 'string') return this.run({ type: 'store', job }, `cannot store ${job.dest}`) as Promise<StoredFile>;
    // postMessage clones a Buffer's whole underlying ArrayBuffer (a 1 MiB slice of a 100 MiB buffer
    // would cost 100 MiB), so each chunk is copied into its own ArrayBuffer and that is transferred.
    const transfer: ArrayBuffer[] = [];
    const source = job.source.map((b) => {
      const ab = new ArrayBuffer(b.length);
      new Uint8Array(ab).set(b);
      transfer.push(ab);
      return new Uint8Array(ab);
    });
    return this.run({ type: 'store', job: { ...job, source: source as Buffer[] } }, `cannot store ${job.dest}`, transfer) as Promise<StoredFile>;
  }

  /** Restores members into their target files, in order (recovery); see recovery/restore-file.ts. */
  restoreFiles(jobs: RestoreFileJob[]): Promise<Array<'written' | 'unchanged'>> {
    return this.run({ type: 'restore', jobs }, `cannot restore ${jobs.length === 1 ? jobs[0]!.target : `${jobs.length} files`}`) as Promise<Array<'written' | 'unchanged'>>;
  }

  /** Copies one plain, zstd or lz4 WAL file into `target`, checked (recovery); its size. */
  copyWalFile(file: WalFileToCopy, target: string): Promise<number> {
    return this.run({ type: 'copyWal', file, target }, `cannot copy WAL file ${file.name}`) as Promise<number>;
  }

  /** Checksum (in `alg`) and size of a stored file's uncompressed content (verify-backup, rebuild-catalog). */
  hashFile(path: string, codec: Codec, alg: ContentAlgorithm): Promise<StoredDigest> {
    return this.run({ type: 'hash', path, codec, alg }, `cannot read ${path}`) as Promise<StoredDigest>;
  }

  /**
   * Starts every worker now rather than on first use (their start-up is then off the clock), with
   * the backup-side code loaded unless `backupCode` is false (a restore's workers need none of it).
   */
  async warm(o: { backupCode?: boolean } = {}): Promise<void> {
    const slots: Slot[] = [];
    while (this.slots.length < this.size) slots.push(this.hold(this.spawn()));
    await Promise.all(slots.map((slot) => new Promise<void>((resolve, reject) => {
      const id = this.nextId++;
      slot.onReply = (r) => {
        if (r.id !== id) return;
        this.releaseSlot(slot);
        if (r.type === 'failed') reject(reviveError(r.error, 'store worker failed to start'));
        else resolve();
      };
      slot.onCrash = reject;
      slot.worker.postMessage({ id, type: 'ping', backupCode: o.backupCode ?? true } satisfies WorkerRequest);
    })));
  }

  /** Terminates the workers. Tasks still queued are rejected. */
  async close(): Promise<void> {
    this.closed = true;
    for (const g of this.waiting.splice(0)) g(null as unknown as Slot);
    await Promise.all(this.slots.map((s) => s.worker.terminate()));
    this.slots.length = 0;
    this.idle.length = 0;
  }

  private run(req: TaskRequest, what: string, transfer: ArrayBuffer[] = []): Promise<unknown> {
    return this.acquire().then(
      (slot) =>
        new Promise((resolve, reject) => {
          const id = this.nextId++;
          slot.onReply = (r) => {
            if (r.id !== id) return;
            this.releaseSlot(slot);
            if (r.type === 'done') resolve(r.result);
            else reject(reviveError(r.error, what));
          };
          slot.onCrash = (err) => reject(new BarmantsError('io', `${what}: store worker died`, { cause: err }));
          const msg = { ...req, id } as WorkerRequest & { sab?: SharedArrayBuffer };
          // A worker is sent each slab's memory once; after that the number is enough.
          if ('slab' in req && !slot.slabsKnown.has(req.slab)) {
            msg.sab = this.slabs[req.slab]!;
            slot.slabsKnown.add(req.slab);
          }
          slot.worker.postMessage(msg, transfer);
        }),
    );
  }

  private acquire(): Promise<Slot> {
    if (this.closed) return Promise.reject(new BarmantsError('internal', 'store worker pool is closed'));
    const free = this.idle.pop();
    if (free) return Promise.resolve(this.hold(free));
    if (this.slots.length < this.size) return Promise.resolve(this.hold(this.spawn()));
    return new Promise((resolve, reject) =>
      this.waiting.push((slot) => (slot ? resolve(this.hold(slot)) : reject(new BarmantsError('internal', 'store worker pool is closed')))),
    );
  }

  private hold(slot: Slot): Slot {
    // Busy workers keep the process alive; idle ones must not (a forgotten close() must not hang).
    slot.worker.ref();
    return slot;
  }

  private releaseSlot(slot: Slot): void {
    slot.onReply = null;
    slot.onCrash = null;
    const next = this.waiting.shift();
    if (next) return next(slot);
    slot.worker.unref();
    this.idle.push(slot);
  }

  private spawn(): Slot {
    const slot: Slot = { worker: spawnStoreWorker(), slabsKnown: new Set(), onReply: null, onCrash: null };
    slot.worker.on('message', (r: WorkerReply) => slot.onReply?.(r));
    const crashed = (err: Error): void => {
      const i = this.slots.indexOf(slot);
      if (i < 0) return;
      this.slots.splice(i, 1);
      const j = this.idle.indexOf(slot);
      if (j >= 0) this.idle.splice(j, 1);
      const onCrash = slot.onCrash;
      slot.onReply = null;
      slot.onCrash = null;
      onCrash?.(err);
      // A queued task would otherwise wait for a worker that never comes back.
      const next = this.waiting.shift();
      if (next && !this.closed) next(this.spawn());
    };
    slot.worker.on('error', crashed);
    slot.worker.on('exit', (code) => {
      if (!this.closed) crashed(new Error(`store worker exited with code ${code}`));
    });
    this.slots.push(slot);
    return slot;
  }
}

/**
 * Packs small files back to back into transfer buffers and stores each full buffer's files in
 * one worker round trip. A file must fit in one buffer (at most TRANSFER_BUFFER bytes).
 */
export class FilePacker {
  private slab: Slab | null = null;
  private used = 0;
  private files: PackedFile[] = [];
  private callbacks: Array<(d: StoredFile) => void | Promise<void>> = [];
  private current: PackedFile | null = null;

  /** @internal */
  constructor(private readonly pool: StoreWorkerPool, private readonly spec: StoreSpec) {}

  /**
   * Starts a file of `size` bytes. If the buffer in hand has no room for it, the files packed so
   * far are handed to a worker: their promise is returned (null when nothing was sent).
   */
  begin(dest: string, size: number): Promise<void> | null {
    if (size > TRANSFER_BUFFER) throw new RangeError(`${dest}: ${size} bytes do not fit in a transfer buffer`);
    const sent = this.slab && this.used + size > TRANSFER_BUFFER ? this.flush() : null;
    this.slab ??= this.pool.takeSlab();
    this.current = { dest, offset: this.used, length: 0 };
    return sent;
  }

  /** Appends a chunk of the current file. */
  append(chunk: Uint8Array): void {
    const f = this.current!;
    if (f.offset + f.length + chunk.length > TRANSFER_BUFFER) throw new RangeError(`${f.dest}: more bytes than announced`);
    this.slab!.view.set(chunk, f.offset + f.length);
    f.length += chunk.length;
  }

  /** Ends the current file; `stored` runs with its result once the worker has stored it. */
  commit(stored: (d: StoredFile) => void | Promise<void>): void {
    const f = this.current!;
    this.current = null;
    this.used = f.offset + f.length;
    this.files.push(f);
    this.callbacks.push(stored);
  }

  get pendingFiles(): number {
    return this.files.length;
  }

  /** Hands the packed files to a worker; resolves once they are stored and their callbacks ran. */
  flush(): Promise<void> | null {
    if (!this.slab || !this.files.length) return null;
    const slab = this.slab;
    const files = this.files;
    const callbacks = this.callbacks;
    this.slab = null;
    this.used = 0;
    this.files = [];
    this.callbacks = [];
    return this.pool.storePacked(slab, files, this.spec).then(
      async (results) => {
        this.pool.releaseSlab(slab);
        for (let i = 0; i < results.length; i++) await callbacks[i]!(results[i]!);
      },
      (err: unknown) => {
        // The worker may still hold a view of it if it died mid-task: this slab is not reused.
        throw err;
      },
    );
  }
}

/**
 * A large file stored as a sequence of independently compressed frames (one per transfer buffer),
 * the frames compressed by every worker in parallel and written here in order. This thread hashes
 * the content (BLAKE3 and the manifest's algorithm) as it copies it into the transfer buffers:
 * one table of a cluster is often most of its size, and a single worker would compress it alone.
 * Writes reach the page cache; the caller makes the tree durable (syncTree), as for packed files.
 */
export class ParallelFrameWriter {
  private readonly file: TmpFile;
  private readonly sums: ContentSums;
  private slab: Slab | null = null;
  private used = 0;
  private nextSeq = 0;
  private writeSeq = 0;
  private readonly done = new Map<number, { slab: Slab; frame: number | Uint8Array }>();
  private readonly inFlight = new Set<Promise<void>>();
  private failure: Error | null = null;
  private readonly maxInFlight: number;

  /** @internal */
  constructor(private readonly pool: StoreWorkerPool, dest: string, private readonly spec: StoreSpec) {
    this.sums = new ContentSums(spec.manifestChecksum);
    this.file = TmpFile.open(dest);
    this.maxInFlight = pool.size * 2;
  }

  /** Copies `chunk` in. False when the caller should wait for drained(). */
  push(chunk: Uint8Array): boolean {
    if (this.failure) throw this.failure;
    this.sums.update(chunk);
    let off = 0;
    while (off < chunk.length) {
      this.slab ??= this.pool.takeSlab();
      const n = Math.min(chunk.length - off, TRANSFER_BUFFER - this.used);
      this.slab.view.set(chunk.subarray(off, off + n), this.used);
      this.used += n;
      off += n;
      if (this.used === TRANSFER_BUFFER) this.submit();
    }
    return this.inFlight.size < this.maxInFlight;
  }

  /** Resolves once fewer than two frames per worker are being compressed. */
  async drained(): Promise<void> {
    while (this.inFlight.size >= this.maxInFlight && !this.failure) await Promise.race(this.inFlight);
    if (this.failure) throw this.failure;
  }

  /** Ends the file: resolves when every frame is written and the file renamed into place. */
  async finish(): Promise<StoredFile> {
    if (this.slab && this.used > 0) this.submit();
    if (this.sums.size === 0) {
      // An empty file is still a valid, empty compressed file.
      this.slab = this.pool.takeSlab();
      this.used = 0;
      this.submit();
    }
    while (this.inFlight.size && !this.failure) await Promise.race(this.inFlight);
    if (this.failure) {
      this.abort();
      throw this.failure;
    }
    return this.sums.stored(this.file.commit({ sync: false }));
  }

  abort(): void {
    this.file.abort();
  }

  private submit(): void {
    const slab = this.slab!;
    const len = this.used;
    this.slab = null;
    this.used = 0;
    const seq = this.nextSeq++;
    const p: Promise<void> = this.pool.compressFrame(slab, len, this.spec.codec, this.spec.level).then(
      (frame) => {
        this.done.set(seq, { slab, frame });
        this.writeReady();
      },
      (err: Error) => {
        this.failure ??= err;
      },
    ).finally(() => this.inFlight.delete(p));
    this.inFlight.add(p);
  }

  /** Writes the frames that are next in order. */
  private writeReady(): void {
    for (let d = this.done.get(this.writeSeq); d !== undefined && this.file.isOpen; d = this.done.get(this.writeSeq)) {
      this.done.delete(this.writeSeq++);
      try {
        this.file.write(typeof d.frame === 'number' ? d.slab.view.subarray(0, d.frame) : d.frame);
      } catch (err) {
        this.failure ??= err as Error;
        return;
      } finally {
        this.pool.releaseSlab(d.slab);
      }
    }
  }
}

let defaultPool: StoreWorkerPool | null = null;

/** The process-wide pool used by the free functions below (its idle workers do not hold the process). */
export function defaultStorePool(): StoreWorkerPool {
  return (defaultPool ??= new StoreWorkerPool());
}

export function hashFile(path: string, codec: Codec, alg: ContentAlgorithm): Promise<StoredDigest> {
  return defaultStorePool().hashFile(path, codec, alg);
}
