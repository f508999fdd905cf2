// Daemon footprint: `barmants daemon` with N servers streaming WAL (all from the bench cluster, one
// slot and application_name each). Two windows:
//  1. idle: resident memory and CPU once every receiver streams;
//  2. one server under a compressed backup taken by the daemon itself (a one-shot backup_schedule
//     set by SIGHUP): memory and CPU, and how fast the receiver of that server answers keepalives.
//     Its replication connections go through a small proxy here that reads the protocol: the
//     delay from each server keepalive asking for a reply ('k' with reply_requested) to the
//     client's next status update ('r'), and the longest silence between status updates. With
//     wal_sender_timeout lowered to 2 s for the window, the walsender asks for a reply after ~1 s of silence.
// Targets (DESIGN §8): ≤ 150 MB RSS with 20 servers; replies well within wal_sender_timeout
// (issue 6: under 1 s). The load average is printed with every figure: the machine may be shared.

import { spawn } from 'node:child_process';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { loadavg } from 'node:os';
import type { Measurement } from './report.js';
import { processTree, quantile, runQuiet, sleep, treeSample, waitFor } from './measure.js';
import { barmantsArgs, BARMANTS_BIN, dropSlot, writeBarmantsConfig, type BenchCluster, type Scratch } from './setup.js';
import { stop } from './wal.js';

/** null when this build of barmants has no daemon command (it was written in parallel). */
export async function daemonMissing(): Promise<string | null> {
  try {
    const help = await runQuiet(process.execPath, [BARMANTS_BIN, '--help']);
    return /^\s+barmants daemon\b/m.test(help) ? null : 'barmants has no daemon command in this build';
  } catch (e) {
    return `barmants --help failed: ${(e as Error).message}`;
  }
}

function load(): string {
  return loadavg().map((l) => l.toFixed(2)).join(' ');
}

// ------------------------------------------------------------------ keepalive proxy

interface KeepaliveStats {
  /** ms from a keepalive asking for a reply to the client's next status update */
  replies: number[];
  /** ms between consecutive status updates of a streaming connection */
  gaps: number[];
}

const SSL_REQUEST = 80877103;
const GSSENC_REQUEST = 80877104;

/**
 * A TCP proxy to PostgreSQL that forwards bytes untouched and reads the message framing on the
 * side: client→server untyped start-up messages then typed ones, server→client typed messages
 * (after a one-byte answer to an SSL/GSS request). CopyData 'd' carrying 'k' (keepalive) and 'r'
 * (status update) are what it times. Recording is switched on and off by the caller.
 */
class KeepaliveProxy {
  private server: Server | null = null;
  recording = false;
  readonly stats: KeepaliveStats = { replies: [], gaps: [] };
  port = 0;

  constructor(private readonly target: { host: string; port: number }) {}

  async start(): Promise<void> {
    this.server = createServer((client) => this.pipe(client));
    await new Promise<void>((r) => this.server!.listen(0, '127.0.0.1', () => r()));
    this.port = (this.server.address() as { port: number }).port;
  }

  async close(): Promise<void> {
    await new Promise<void>((r) => this.server?.close(() => r()) ?? r());
  }

  private pipe(client: Socket): void {
    const upstream = connect(this.target.port, this.target.host);
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    let pendingSince: number | null = null;
    let lastStatus: number | null = null;
    let expectOneByte = false;
    const fromClient = new Framer(true, (type, body) => {
      if (type === null && body.length >= 4) {
        const code = body.readUInt32BE(0);
        if (code === SSL_REQUEST || code === GSSENC_REQUEST) expectOneByte = true;
        return;
      }
      if (type === 0x64 /* d */ && body[0] === 0x72 /* r */) {
        const now = performance.now();
        if (this.recording && pendingSince !== null) this.stats.replies.push(now - pendingSince);
        if (this.recording && lastStatus !== null) this.stats.gaps.push(now - lastStatus);
        pendingSince = null;
        lastStatus = now;
      }
    });
    const fromServer = new Framer(false, (type, body) => {
      if (type === 0x64 /* d */ && body[0] === 0x6b /* k */ && body[17] === 1) pendingSince ??= performance.now();
    });
    client.on('data', (b: Buffer) => {
      fromClient.push(b);
      upstream.write(b);
    });
    upstream.on('data', (b: Buffer) => {
      if (expectOneByte) {
        expectOneByte = false;
        if (b[0] === 0x53 /* S: TLS follows, nothing readable */) fromServer.blind = true;
        fromServer.push(b.subarray(1));
      } else {
        fromServer.push(b);
      }
      client.write(b);
    });
    const end = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on('close', end).on('error', end);
    upstream.on('close', end).on('error', end);
  }
}

/**
 * Splits a byte stream into protocol messages ([type][int32 length incl. itself][body], or no
 * type byte before start-up) and hands on the type and the first bytes of each body: enough for
 * 'k' and 'r', and nothing of a backup's data is buffered or copied.
 */
class Framer {
  private head = Buffer.alloc(0);
  private captured: Buffer[] = [];
  private capturedLen = 0;
  private remaining = -1;
  private type: number | null = null;
  private untyped: boolean;
  blind = false;

  constructor(startsUntyped: boolean, private readonly onMessage: (type: number | null, body: Buffer) => void) {
    this.untyped = startsUntyped;
  }

  push(b: Buffer): void {
    if (this.blind) return;
    let off = 0;
    while (off < b.length) {
      if (this.remaining < 0) {
        const need = (this.untyped ? 4 : 5) - this.head.length;
        const take = Math.min(need, b.length - off);
        this.head = Buffer.concat([this.head, b.subarray(off, off + take)]);
        off += take;
        if (take < need) return;
        this.type = this.untyped ? null : this.head[0]!;
        this.remaining = this.head.readUInt32BE(this.untyped ? 0 : 1) - 4;
        this.head = Buffer.alloc(0);
      }
      const take = Math.min(this.remaining, b.length - off);
      if (this.capturedLen < BODY_PREFIX && take > 0) {
        const keep = b.subarray(off, off + Math.min(take, BODY_PREFIX - this.capturedLen));
        this.captured.push(Buffer.from(keep));
        this.capturedLen += keep.length;
      }
      off += take;
      this.remaining -= take;
      if (this.remaining === 0) {
        const body = Buffer.concat(this.captured);
        this.captured = [];
        this.capturedLen = 0;
        this.remaining = -1;
        this.onMessage(this.type, body);
        // The start-up message (protocol 3.0) ends the untyped phase; SSL/GSS requests do not.
        if (this.untyped && body.length >= 4 && body.readUInt32BE(0) === 196608) this.untyped = false;
      }
    }
  }
}

/** Bytes of each message body kept: a keepalive's reply flag is byte 17. */
const BODY_PREFIX = 32;

// ------------------------------------------------------------------ the bench

/** A cron expression (with seconds) that fires once, `inSeconds` from now (local time). */
function oneShot(inSeconds: number): string {
  const t = new Date(Date.now() + inSeconds * 1000);
  return `${t.getSeconds()} ${t.getMinutes()} ${t.getHours()} ${t.getDate()} ${t.getMonth() + 1} *`;
}

export async function benchDaemon(
  bc: BenchCluster,
  scratch: Scratch,
  servers: number,
  seconds: number,
  log: (s: string) => void,
  opts: { backupCodec?: string } = {},
): Promise<Measurement[]> {
  const codec = opts.backupCodec ?? 'gzip';
  const home = await scratch.dir('daemon');
  const names = Array.from({ length: servers }, (_, i) => `bench_d${String(i + 1).padStart(2, '0')}`);
  const busy = names[names.length - 1]!;
  const proxy = new KeepaliveProxy({ host: bc.cluster.host, port: bc.cluster.port });
  await proxy.start();
  const config = await writeBarmantsConfig(
    bc,
    home,
    names.map((n) => ({ name: n, streaming: true, slotName: n, archiverName: n, backupCompression: n === busy ? codec : 'none', walCompression: 'none' })),
  );
  // The busy server's replication connections (receiver and backup) go through the proxy.
  const text = await readFile(config, 'utf8');
  const section = text.indexOf(`[${busy}]`);
  const proxied =
    text.slice(0, section) +
    text.slice(section).replace(/^(streaming_conninfo = .*\bport=)(\d+)/m, (_m, head: string) => `${head}${proxy.port}`);
  await writeFile(config, proxied);
  const child = spawn(process.execPath, barmantsArgs(config, 'daemon'), { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-8192)));
  let exited: string | null = null;
  child.on('exit', (code, signal) => (exited = `exited ${signal ?? code}`));
  const streaming = async (): Promise<number> => {
    if (exited) throw new Error(`daemon ${exited}: ${stderr.trim().split('\n').slice(-3).join(' | ')}`);
    const [r] = await bc.cluster.sql<{ n: number }>(
      `SELECT count(*)::int AS n FROM pg_stat_replication WHERE application_name LIKE 'bench\\_d%' AND state = 'streaming'`,
    );
    return r!.n;
  };
  const out: Measurement[] = [];
  try {
    const t0 = Date.now();
    await waitFor(`${servers} receivers of the daemon to stream`, async () => (await streaming()) === servers, 120_000, 250);
    const startupS = (Date.now() - t0) / 1000;
    log(`daemon: ${servers} receivers streaming after ${startupS.toFixed(1)} s; measuring ${seconds} s idle`);
    // Let start-up garbage be collected before the window opens.
    await sleep(2000);
    const loadIdle = load();
    const first = treeSample(child.pid!);
    const rss: number[] = [first.rssKb / 1024];
    const tEnd = Date.now() + seconds * 1000;
    while (Date.now() < tEnd) {
      await sleep(500);
      if (exited) throw new Error(`daemon ${exited} during the window: ${stderr.trim().split('\n').slice(-3).join(' | ')}`);
      rss.push(treeSample(child.pid!).rssKb / 1024);
    }
    const last = treeSample(child.pid!);
    const procs = processTree(child.pid!).length;
    const cpuS = last.cpuS - first.cpuS;
    out.push(
      { section: 'daemon', name: `start-up until ${servers} receivers stream`, unit: 's', values: [startupS] },
      { section: 'daemon', name: `RSS with ${servers} idle streaming servers`, unit: 'MB', values: rss, note: `sum over ${procs} process(es), sampled every 0.5 s for ${seconds} s; target ≤ 150 MB with 20; load average ${loadIdle}` },
      { section: 'daemon', name: `CPU over ${seconds} s idle`, unit: 's', values: [cpuS], note: `${((cpuS / seconds) * 100).toFixed(1)} % of one core; load average ${loadIdle}` },
    );

    // --- window 2: one server under a compressed backup taken by the daemon
    await bc.cluster.sql(`ALTER SYSTEM SET wal_sender_timeout = '2s'`);
    await bc.cluster.sql('SELECT pg_reload_conf()');
    try {
      const withSchedule = (await readFile(config, 'utf8')).replace(`[${busy}]\n`, `[${busy}]\nbackup_schedule = ${oneShot(6)}\n`);
      await writeFile(config, withSchedule);
      child.kill('SIGHUP');
      // The changed server's receiver restarts (through the proxy); wait for it before the backup fires.
      await waitFor(`${busy} streaming again after the reload`, async () => {
        const [r] = await bc.cluster.sql<{ n: number }>(`SELECT count(*)::int AS n FROM pg_stat_replication WHERE application_name = $1 AND state = 'streaming'`, [busy]);
        return r!.n === 1;
      }, 60_000, 100);
      const backupRunning = async (): Promise<boolean> => {
        const [r] = await bc.cluster.sql<{ n: number }>(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = 'barmants_streaming_backup'`);
        return r!.n > 0;
      };
      await waitFor('the scheduled backup to start', backupRunning, 60_000, 100);
      proxy.recording = true;
      const loadStart = load();
      const b0 = treeSample(child.pid!);
      const t1 = Date.now();
      const rssB: number[] = [b0.rssKb / 1024];
      while (await backupRunning()) {
        await sleep(500);
        if (exited) throw new Error(`daemon ${exited} during the backup: ${stderr.trim().split('\n').slice(-3).join(' | ')}`);
        rssB.push(treeSample(child.pid!).rssKb / 1024);
        if (Date.now() - t1 > 600_000) throw new Error('backup still running after 10 minutes');
      }
      proxy.recording = false;
      const b1 = treeSample(child.pid!);
      const backupS = (Date.now() - t1) / 1000;
      const cpuB = b1.cpuS - b0.cpuS;
      const loadEnd = load();
      const { replies, gaps } = proxy.stats;
      const q = (xs: number[], p: number) => (quantile(xs, p) ?? NaN).toFixed(0);
      log(`daemon: backup (${codec}) of ${busy} took ${backupS.toFixed(1)} s; ${replies.length} keepalive replies, max ${Math.max(...replies, 0).toFixed(0)} ms`);
      out.push(
        { section: 'daemon', name: `${codec} backup of one server by the daemon (${servers} streaming)`, unit: 's', values: [backupS], note: `load average ${loadStart} → ${loadEnd}` },
        { section: 'daemon', name: `RSS during the ${codec} backup`, unit: 'MB', values: rssB, note: `sampled every 0.5 s; load average ${loadStart} → ${loadEnd}` },
        { section: 'daemon', name: `CPU during the ${codec} backup`, unit: 's', values: [cpuB], note: `${((cpuB / backupS) * 100).toFixed(0)} % of one core (main thread + store workers); load average ${loadStart} → ${loadEnd}` },
        {
          section: 'daemon',
          name: 'keepalive (reply requested) → status update, during the backup',
          unit: 'ms',
          values: replies,
          note: `${replies.length} requests (wal_sender_timeout 2 s); p50 ${q(replies, 0.5)}, p99 ${q(replies, 0.99)}, max ${Math.max(...replies, 0).toFixed(0)} ms; target < 1000 ms`,
        },
        {
          section: 'daemon',
          name: 'longest silence between status updates, during the backup',
          unit: 'ms',
          values: gaps.length ? [Math.max(...gaps)] : [],
          note: `${gaps.length} updates; p50 gap ${q(gaps, 0.5)} ms`,
        },
      );
    } finally {
      await bc.cluster.sql('ALTER SYSTEM RESET wal_sender_timeout').catch(() => undefined);
      await bc.cluster.sql('SELECT pg_reload_conf()').catch(() => undefined);
    }
    return out;
  } finally {
    await stop(child);
    await proxy.close();
    for (const n of names) await dropSlot(bc, n);
    await rm(home, { recursive: true, force: true });
  }
}
