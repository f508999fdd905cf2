// Remote recovery through a real sshd (Debian's openssh-server) on a private 127.0.0.1 port, with
// a generated host key and client key: happy path, unknown host key refused, changed host key
// refused, wrong client key refused. Skipped with a message when /usr/sbin/sshd is absent.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile, stat, chmod } from 'node:fs/promises';
import { createServer, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { recover, INCOMPLETE_MARKER, type RecoverEnv } from '../../../packages/barmants/src/recovery/index.js';
import { BarmantsError } from '../../../packages/barmants/src/errors/index.js';
import type { Catalog } from '../../../packages/barmants/src/catalog/index.js';
import { buildRepository, sampleFiles, segName } from '../recovery/fixture.js';

const SSHD = '/usr/sbin/sshd';
const skip = !existsSync(SSHD) ? `${SSHD} is missing (apt-get install openssh-server; .ci/run installs it)` : process.getuid?.() !== 0 ? 'sshd tests run as root' : false;

let tmp: string;
let sshd: ChildProcess | null = null;
let port = 0;
let env: RecoverEnv;
let catalog: Catalog;
let hostPub = '';
let sshdLog = '';
const savedHome = process.env['HOME'];
const savedAgent = process.env['SSH_AUTH_SOCK'];

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
    s.on('error', reject);
  });
}

async function waitListening(p: number, deadlineMs: number): Promise<void> {
  const end = Date.now() + deadlineMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const c = connect(p, '127.0.0.1', () => { c.destroy(); resolve(true); });
      c.on('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > end) throw new Error(`sshd did not listen on ${p}: ${sshdLog}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const keygen = (type: string, file: string): void => { execFileSync('ssh-keygen', ['-q', '-t', type, '-N', '', '-f', file]); };

describe('remote recovery over ssh', { skip }, () => {
  before(async () => {
    tmp = await mkdtemp(join(tmpdir(), 'barmants-ssh-'));
    const home = join(tmp, 'home');
    await mkdir(join(home, '.ssh'), { recursive: true, mode: 0o700 });
    keygen('ed25519', join(tmp, 'host_ed25519'));
    keygen('ed25519', join(home, '.ssh', 'id_ed25519'));
    keygen('ed25519', join(tmp, 'wrong_key'));
    await writeFile(join(tmp, 'authorized_keys'), await readFile(join(home, '.ssh', 'id_ed25519.pub')));
    await chmod(join(tmp, 'authorized_keys'), 0o600);
    hostPub = (await readFile(join(tmp, 'host_ed25519.pub'), 'utf8')).trim().split(/\s+/).slice(0, 2).join(' ');
    port = await freePort();
    await mkdir('/run/sshd', { recursive: true, mode: 0o755 });
    await writeFile(join(tmp, 'sshd_config'), [
      `Port ${port}`, 'ListenAddress 127.0.0.1', `HostKey ${join(tmp, 'host_ed25519')}`, `AuthorizedKeysFile ${join(tmp, 'authorized_keys')}`,
      'StrictModes no', 'UsePAM no', 'PasswordAuthentication no', 'KbdInteractiveAuthentication no', 'PermitRootLogin prohibit-password',
      `PidFile ${join(tmp, 'sshd.pid')}`, 'LogLevel VERBOSE', '',
    ].join('\n'));
    sshd = spawn(SSHD, ['-D', '-e', '-f', join(tmp, 'sshd_config')], { stdio: ['ignore', 'ignore', 'pipe'] });
    sshd.stderr!.on('data', (b: Buffer) => { sshdLog += b.toString(); });
    await waitListening(port, 10_000);
    process.env['HOME'] = home;
    delete process.env['SSH_AUTH_SOCK'];
    ({ env, catalog } = await buildRepository(join(tmp, 'repo')));
  });

  after(async () => {
    if (savedHome === undefined) delete process.env['HOME'];
    else process.env['HOME'] = savedHome;
    if (savedAgent !== undefined) process.env['SSH_AUTH_SOCK'] = savedAgent;
    catalog?.close();
    if (sshd && sshd.exitCode === null) {
      const exited = new Promise((r) => sshd!.once('exit', r));
      sshd.kill('SIGTERM');
      await exited;
    }
    await rm(tmp, { recursive: true, force: true });
  });

  const ssh = (): string => `ssh root@127.0.0.1 -p ${port}`;
  const kh = (): string => join(process.env['HOME']!, '.ssh', 'known_hosts');

  test('unknown host key: refused with its fingerprint and how to accept it, nothing written', async () => {
    const dest = join(tmp, 'remote-unknown');
    await assert.rejects(recover(env, { server: 'pg', backupRef: 'latest', dest, remoteSshCommand: ssh() }), (e: unknown) => {
      assert.ok(e instanceof BarmantsError);
      assert.equal(e.kind, 'unsafe');
      assert.match(e.message, /not in known_hosts \(ssh-ed25519 SHA256:/);
      assert.match(e.hint, new RegExp(`ssh-keyscan -p ${port} 127.0.0.1`));
      return true;
    });
    assert.equal(existsSync(dest), false);
  });

  test('changed host key: refused loudly', async () => {
    const other = (await readFile(join(tmp, 'wrong_key.pub'), 'utf8')).trim().split(/\s+/).slice(0, 2).join(' ');
    await writeFile(kh(), `[127.0.0.1]:${port} ${other}\n`);
    await assert.rejects(recover(env, { server: 'pg', backupRef: 'latest', dest: join(tmp, 'remote-mismatch'), remoteSshCommand: ssh() }), /HOST KEY MISMATCH/);
  });

  test('wrong client key: refused', async () => {
    await writeFile(kh(), `[127.0.0.1]:${port} ${hostPub}\n`);
    await assert.rejects(
      recover(env, { server: 'pg', backupRef: 'latest', dest: join(tmp, 'remote-wrongkey'), remoteSshCommand: `${ssh()} -i ${join(tmp, 'wrong_key')}` }),
      (e: unknown) => e instanceof BarmantsError && e.kind === 'connection' && /authentication/.test(e.message),
    );
  });

  test('happy path: files, WAL, config on the remote side; non-empty destination then refused', async () => {
    await writeFile(kh(), `[127.0.0.1]:${port} ${hostPub}\n`);
    const dest = join(tmp, 'remote-ok');
    const r = await recover(env, { server: 'pg', backupRef: 'latest', dest, remoteSshCommand: ssh(), targetLsn: '0/700010', targetAction: 'promote' });
    assert.equal(r.remote, `root@127.0.0.1:${port}`);
    const names = await readdir(dest);
    assert.ok(names.includes('recovery.signal'));
    assert.ok(!names.includes(INCOMPLETE_MARKER));
    assert.ok(!names.includes('postmaster.pid'));
    for (const f of sampleFiles()) {
      if ((f.type ?? 'file') !== 'file' || f.path.startsWith('postmaster') || f.path.endsWith('.conf')) continue;
      const want = typeof f.content === 'string' ? Buffer.from(f.content) : f.content!;
      assert.ok((await readFile(join(dest, f.path))).equals(want), f.path);
      assert.equal((await stat(join(dest, f.path))).mode & 0o777, 0o600, f.path);
    }
    assert.deepEqual((await readdir(join(dest, 'barmants_wal'))).sort(), [5, 6, 7].map(segName));
    const auto = await readFile(join(dest, 'postgresql.auto.conf'), 'utf8');
    assert.match(auto, /^recovery_target_lsn = '0\/700010'$/m);
    assert.match(auto, /^#BARMANTS# restore_command = 'old'$/m);
    assert.match(auto, /^archive_command = 'false'$/m);
    await assert.rejects(recover(env, { server: 'pg', backupRef: 'latest', dest, remoteSshCommand: ssh() }), /is not empty/);
  });
});
