/*
 * SSH connections for remote recovery (ssh2): key from ssh_key or ~/.ssh/id_*, the agent when
 * SSH_AUTH_SOCK is set, and a host key that must be in known_hosts. Unknown or changed keys are
 * refused with the fingerprint and the command to accept them: barmants never trusts on first use.
 */
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import type { Client, ClientChannel, ConnectConfig } from 'ssh2';
import { BarmantsError } from '../errors/index.js';
import { fingerprint, keyType, knownHostsName, knownKeyTypes, verifyHostKey, type HostKeyVerdict } from './known-hosts.js';
import type { SshTarget } from './ssh-command.js';

export interface ConnectOptions {
  /** server's ssh_key option */
  sshKey?: string | null;
  /** overrides $HOME (tests) */
  home?: string;
  readyTimeoutMs?: number;
}

export interface SshSession {
  client: Client;
  target: SshTarget;
  /** runs `command`, feeding stdin if given; resolves with stdout when it exits 0, else throws */
  exec(command: string, stdin?: Readable | string): Promise<string>;
  close(): void;
}

function homeDir(o: ConnectOptions): string {
  return o.home ?? process.env['HOME'] ?? homedir();
}

function expandTilde(p: string, home: string): string {
  return p === '~' ? home : p.startsWith('~/') ? join(home, p.slice(2)) : p;
}

const RSA_ALGOS = ['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa'];

export async function connectSsh(target: SshTarget, o: ConnectOptions = {}): Promise<SshSession> {
  const home = homeDir(o);
  const knownFiles = (target.knownHostsFile ? [expandTilde(target.knownHostsFile, home)] : [join(home, '.ssh/known_hosts'), '/etc/ssh/ssh_known_hosts'])
    .filter((f) => existsSync(f))
    .map((file) => ({ file, text: readFileSync(file, 'utf8') }));
  const keyFile = target.identityFile ?? o.sshKey ?? ['id_ed25519', 'id_ecdsa', 'id_rsa'].map((n) => join(home, '.ssh', n)).find((f) => existsSync(f)) ?? null;
  let privateKey: Buffer | undefined;
  if (keyFile !== null) {
    try {
      privateKey = readFileSync(expandTilde(keyFile, home));
    } catch (e) {
      throw new BarmantsError('config', `cannot read the SSH key ${keyFile}: ${(e as Error).message}`, { cause: e });
    }
  }
  const agent = process.env['SSH_AUTH_SOCK'] || undefined;
  if (privateKey === undefined && agent === undefined) {
    throw new BarmantsError('config', `no SSH key to connect to ${target.host}: none of ~/.ssh/id_ed25519, id_ecdsa, id_rsa exists and no agent runs`, {
      hint: 'set ssh_key in the server section, pass -i KEY in --remote-ssh-command, or start ssh-agent',
    });
  }
  const known = knownKeyTypes(knownFiles, target.host, target.port).flatMap((t) => (t === 'ssh-rsa' ? RSA_ALGOS : [t]));
  let verdict: HostKeyVerdict | null = null;
  let offered: Buffer | null = null;
  const cfg: ConnectConfig = {
    host: target.host,
    port: target.port,
    username: target.user ?? process.env['USER'] ?? 'root',
    privateKey,
    agent,
    readyTimeout: o.readyTimeoutMs ?? (target.connectTimeoutSec ? target.connectTimeoutSec * 1000 : 20_000),
    hostVerifier: (key: Buffer): boolean => {
      offered = key;
      verdict = verifyHostKey(knownFiles, target.host, target.port, key);
      return verdict.status === 'match';
    },
    ...(known.length ? { algorithms: { serverHostKey: { prepend: known as never[] } as never } } : {}),
  };
  // Loaded on use: ssh2 costs ~0.1 s of start-up that every other command would pay.
  const { Client: SshClient } = await import('ssh2');
  const client = new SshClient();
  await new Promise<void>((resolve, reject) => {
    client.once('ready', () => resolve());
    client.once('error', (err: Error & { level?: string }) => {
      const v = verdict as HostKeyVerdict | null;
      const name = knownHostsName(target.host, target.port);
      if (v !== null && v.status !== 'match' && offered !== null) {
        const fp = fingerprint(offered);
        if (v.status === 'unknown') {
          reject(new BarmantsError('unsafe', `the host key of ${name} is not in known_hosts (${keyType(offered)} ${fp}): refusing to connect`, {
            hint: `check this fingerprint with the host's administrator, then accept it with: ssh-keyscan ${target.port === 22 ? '' : `-p ${target.port} `}${target.host} >> ~/.ssh/known_hosts (or connect once with: ssh ${target.port === 22 ? '' : `-p ${target.port} `}${target.user ? `${target.user}@` : ''}${target.host})`,
          }));
        } else {
          reject(new BarmantsError('unsafe', `HOST KEY ${v.status === 'revoked' ? 'REVOKED' : 'MISMATCH'} for ${name}: it offered ${keyType(offered)} ${fp}, which does not match ${v.file} line ${v.line}. Someone may be intercepting the connection`, {
            hint: `do not proceed until you know why the key changed; if it legitimately did, remove the old entry with: ssh-keygen -R '${name}'`,
          }));
        }
        return;
      }
      if (err.level === 'client-authentication') {
        reject(new BarmantsError('connection', `ssh authentication to ${cfg.username}@${name} failed (tried ${[keyFile ? `key ${keyFile}` : null, agent ? 'the agent' : null].filter(Boolean).join(' and ')})`, {
          hint: `add the public key to ~${cfg.username}/.ssh/authorized_keys on ${target.host}, or set ssh_key`,
          cause: err,
        }));
        return;
      }
      reject(new BarmantsError('connection', `cannot connect with ssh to ${name}: ${err.message}`, { cause: err }));
    });
    client.connect(cfg);
  });
  const exec = (command: string, stdin?: Readable | string): Promise<string> =>
    new Promise((resolve, reject) => {
      client.exec(command, (err, ch: ClientChannel) => {
        if (err) return reject(new BarmantsError('connection', `ssh exec failed on ${target.host}: ${err.message}`, { cause: err }));
        let out = '';
        let errText = '';
        let code: number | null = null;
        ch.on('data', (b: Buffer) => { if (out.length < 1 << 20) out += b.toString(); });
        ch.stderr.on('data', (b: Buffer) => { if (errText.length < 65536) errText += b.toString(); });
        ch.on('exit', (c: number | null) => { code = c; });
        ch.on('close', () => {
          if (code === 0) resolve(out);
          else reject(new BarmantsError('io', `remote command failed on ${target.host} (exit ${code ?? 'signal'}): ${errText.trim().split('\n').slice(-3).join(' | ') || command}`));
        });
        if (stdin === undefined) ch.end();
        else if (typeof stdin === 'string') ch.end(stdin);
        else {
          stdin.on('error', (e) => { ch.destroy(); reject(e); });
          stdin.pipe(ch);
        }
      });
    });
  return { client, target, exec, close: () => client.end() };
}
