// Locks: exclusive while the owner lives, taken over when it died (kill -9) or its pid was reused.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { acquireLock, processStartTime, readLockOwner } from '../../../packages/barmants/src/repository/index.js';
import { isBarmantsError } from '../../../packages/barmants/src/errors/index.js';

let dir: string;
before(async () => { dir = await mkdtemp(join(tmpdir(), 'barmants-lock-')); });
after(async () => { await rm(dir, { recursive: true, force: true }); });

async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ['-e', '']);
  const pid = child.pid!;
  await once(child, 'exit');
  return pid;
}

describe('acquireLock', () => {
  test('exclusive; the refusal names the pid and what it does; release frees it', async () => {
    const p = join(dir, '.locks', 'pg-backup.lock');
    const lock = await acquireLock(p, { purpose: 'backup' });
    assert.equal((await stat(p)).mode & 0o777, 0o600);
    assert.equal((await readLockOwner(p))?.pid, process.pid);
    await assert.rejects(acquireLock(p, { purpose: 'backup' }), (e: unknown) => {
      assert.ok(isBarmantsError(e, 'lock'));
      assert.match((e as Error).message, new RegExp(`process ${process.pid} .*backup`));
      return true;
    });
    await lock.release();
    assert.equal(await readLockOwner(p), null);
    const again = await acquireLock(p, { purpose: 'backup' });
    await again.release();
    assert.deepEqual((await readdir(join(dir, '.locks'))), []);
  });

  test('stale lock of a dead process is taken over, with a log line', async () => {
    const p = join(dir, 'dead.lock');
    const pid = await deadPid();
    await writeFile(p, JSON.stringify({ pid, startTime: '1', host: hostname(), purpose: 'receive-wal', since: 'x' }));
    assert.equal(await readLockOwner(p), null);
    const logs: string[] = [];
    const lock = await acquireLock(p, { purpose: 'receive-wal', log: (m) => logs.push(m) });
    assert.equal(lock.owner.pid, process.pid);
    assert.match(logs.join('\n'), new RegExp(`taking over stale lock .* of dead process ${pid}`));
    await lock.release();
  });

  test('a reused pid (different start time) is stale too', async () => {
    const p = join(dir, 'reused.lock');
    const real = await processStartTime(process.pid);
    assert.ok(real !== null);
    await writeFile(p, JSON.stringify({ pid: process.pid, startTime: String(Number(real) - 1), host: hostname(), purpose: 'cron', since: 'x' }));
    const lock = await acquireLock(p, { purpose: 'cron' });
    await lock.release();
  });

  test('concurrent takeovers of one stale lock: exactly one wins', async () => {
    const p = join(dir, 'race.lock');
    await writeFile(p, JSON.stringify({ pid: await deadPid(), startTime: null, host: hostname(), purpose: 'backup', since: 'x' }));
    const results = await Promise.allSettled(Array.from({ length: 8 }, () => acquireLock(p, { purpose: 'backup' })));
    // All contenders are this process, so a winner is "alive" for the others: they must be refused.
    assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1);
    for (const r of results) if (r.status === 'fulfilled') await r.value.release();
    assert.deepEqual((await readdir(dir)).filter((n) => n.startsWith('race.lock')), []);
  });

  test('wait: acquires once the holder releases; times out otherwise', async () => {
    const p = join(dir, 'wait.lock');
    const held = await acquireLock(p, { purpose: 'delete' });
    await assert.rejects(acquireLock(p, { purpose: 'delete', wait: true, timeoutMs: 300 }), (e) => isBarmantsError(e, 'lock'));
    const waiting = acquireLock(p, { purpose: 'delete', wait: true, timeoutMs: 30000 });
    await held.release();
    await (await waiting).release();
  });

  test('lock held by a live child process is refused', async () => {
    const p = join(dir, 'child.lock');
    const child = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)']);
    try {
      const st = await processStartTime(child.pid!);
      await writeFile(p, JSON.stringify({ pid: child.pid, startTime: st, host: hostname(), purpose: 'recover', since: 'now' }));
      await assert.rejects(acquireLock(p, { purpose: 'recover' }), new RegExp(`process ${child.pid} .*recover`));
      assert.equal((await readLockOwner(p))?.pid, child.pid);
    } finally {
      child.kill('SIGKILL');
      await once(child, 'exit');
    }
    // The same file, now that its owner was killed, is stale.
    assert.equal(await readLockOwner(p), null);
    await (await acquireLock(p, { purpose: 'recover' })).release();
  });
});
