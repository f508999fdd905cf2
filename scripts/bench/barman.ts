// Barman as a recovery contender (only with --with-barman): Debian's barman, configured under a
// temp dir for the bench cluster (backup_method = postgres, streaming WAL), one DONE backup taken,
// then `barman recover` timed like the others. Installed with apt-get only when the flag asks.

import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, openSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { runMeasured, runQuiet } from './measure.js';
import type { ExtraRecoverer } from './recover.js';
import { dropSlot, PG_BIN, type BenchCluster, type Scratch } from './setup.js';
import { stop } from './wal.js';

const SLOT = 'bench_barman';

function which(cmd: string): string | null {
  for (const d of (process.env.PATH ?? '/usr/bin:/bin').split(':')) if (existsSync(join(d, cmd))) return join(d, cmd);
  return null;
}

export interface BarmanSetup {
  recoverer: ExtraRecoverer;
  version: string;
  teardown: () => Promise<void>;
}

export async function prepareBarman(bc: BenchCluster, scratch: Scratch, log: (s: string) => void): Promise<BarmanSetup> {
  if (!which('barman')) {
    log('barman: not installed, apt-get install -y barman (asked for by --with-barman)');
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    try {
      await runQuiet('apt-get', ['install', '-y', 'barman', 'rsync'], { env, timeoutMs: 900_000 });
    } catch {
      await runQuiet('apt-get', ['update'], { env, timeoutMs: 900_000 });
      await runQuiet('apt-get', ['install', '-y', 'barman', 'rsync'], { env, timeoutMs: 900_000 });
    }
  }
  const barman = which('barman');
  if (!barman) throw new Error('barman is still not on PATH after apt-get install');
  const version = (await runQuiet(barman, ['--version']).catch(() => 'unknown')).trim().split('\n')[0]!;
  const home = await scratch.dir('barman');
  const c = bc.cluster;
  const conf = join(home, 'barman.conf');
  await writeFile(
    conf,
    [
      '[barman]',
      `barman_home = ${home}`,
      'barman_user = root',
      `log_file = ${join(home, 'barman.log')}`,
      'log_level = INFO',
      '',
      '[bench]',
      'description = barmants bench',
      `conninfo = ${c.conninfo()}`,
      `streaming_conninfo = ${c.conninfo({ user: c.replUser, password: c.replPassword })}`,
      'backup_method = postgres',
      'streaming_archiver = on',
      `slot_name = ${SLOT}`,
      'create_slot = auto',
      `path_prefix = ${PG_BIN}`,
      'immediate_checkpoint = true',
      '',
    ].join('\n'),
    { mode: 0o600 },
  );
  const b = (...args: string[]) => runQuiet(barman, ['-c', conf, ...args], { timeoutMs: 900_000 });
  let receiver: ChildProcess | null = null;
  const teardown = async () => {
    if (receiver) await stop(receiver);
    await dropSlot(bc, SLOT);
  };
  // Barman moves streamed WAL into its archive only in `barman cron` (archive-wal), which system
  // cron runs every minute: run it every 2 s while the backup and its WAL are being taken.
  let cronRunning = false;
  const cron = setInterval(() => {
    if (cronRunning) return;
    cronRunning = true;
    void b('cron').catch(() => {}).finally(() => (cronRunning = false));
  }, 2000);
  try {
    await b('receive-wal', '--create-slot', 'bench').catch(() => {}); // exists already: fine
    const out = openSync(join(home, 'receive-wal.out'), 'a', 0o600);
    receiver = spawn(barman, ['-c', conf, 'receive-wal', 'bench'], { stdio: ['ignore', out, out] });
    closeSync(out);
    // Barman waits for the segment that switch-wal closes: if pg_receivewal is not streaming yet,
    // it may start after that segment and never receive it (seen: "WAL file ... has not been
    // received in 120 seconds"). Switch only once its walsender is there.
    for (let i = 0; i < 300; i++) {
      const rows = await bc.cluster.sql<{ n: string }>(`SELECT count(*) AS n FROM pg_stat_replication WHERE state = 'streaming' AND application_name LIKE 'barman%'`);
      if (Number(rows[0]!.n) > 0) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    await b('switch-wal', '--force', '--archive', '--archive-timeout', '120', 'bench');
    await b('backup', '--wait', 'bench');
    log(`barman: ${version}, one DONE backup in ${home}`);
  } catch (e) {
    await teardown();
    // Barman says why in its log, not on stderr: carry the end of it in the error.
    const tail = [
      (await readFile(join(home, 'receive-wal.out'), 'utf8').catch(() => '')).trim().split('\n').slice(-5).join('\n'),
      (await readFile(join(home, 'barman.log'), 'utf8').catch(() => '')).trim().split('\n').slice(-8).join('\n'),
    ].filter(Boolean).join('\n');
    throw new Error(`${(e as Error).message}${tail ? `\nbarman.log ends with:\n${tail}` : ''}`);
  } finally {
    clearInterval(cron);
    while (cronRunning) await new Promise((r) => setTimeout(r, 100));
  }
  return {
    version,
    teardown,
    recoverer: {
      name: `barman recover (${version})`,
      command: 'barman recover bench latest DEST',
      restore: (dest) => runMeasured(barman, ['-c', conf, 'recover', 'bench', 'latest', dest], { timeoutMs: 900_000 }),
    },
  };
}
