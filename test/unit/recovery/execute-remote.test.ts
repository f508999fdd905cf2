// Remote recovery, the pure parts: --remote-ssh-command parsing, known_hosts lookups (plain,
// hashed, [host]:port, negation, revoked), and the remote destination check's verdicts.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac, randomBytes } from 'node:crypto';
import { parseSshCommand, verifyHostKey, fingerprint, knownKeyTypes, interpretRemoteCheck, remoteCheckScript } from '../../../packages/barmants/src/remote/index.js';
import { BarmantsError } from '../../../packages/barmants/src/errors/index.js';

function blob(type: string, body: Buffer): Buffer {
  const t = Buffer.from(type);
  const len = Buffer.alloc(4);
  len.writeUInt32BE(t.length);
  const blen = Buffer.alloc(4);
  blen.writeUInt32BE(body.length);
  return Buffer.concat([len, t, blen, body]);
}
const KEY = blob('ssh-ed25519', Buffer.alloc(32, 1));
const OTHER = blob('ssh-ed25519', Buffer.alloc(32, 2));
const hashed = (name: string): string => {
  const salt = randomBytes(20);
  return `|1|${salt.toString('base64')}|${createHmac('sha1', salt).update(name).digest('base64')}`;
};

describe('parseSshCommand', () => {
  test('user@host, -p, -i, -o', () => {
    assert.deepEqual(parseSshCommand('ssh postgres@db1 -p 2222'), { user: 'postgres', host: 'db1', port: 2222, identityFile: null, knownHostsFile: null, connectTimeoutSec: null });
    const t = parseSshCommand("ssh -i '/k/id key' -o Port=2200 -o UserKnownHostsFile=/tmp/kh -o BatchMode=yes -l pg -q db2");
    assert.equal(t.identityFile, '/k/id key');
    assert.equal(t.port, 2200);
    assert.equal(t.knownHostsFile, '/tmp/kh');
    assert.equal(t.user, 'pg');
    assert.equal(t.host, 'db2');
    assert.equal(parseSshCommand('/usr/bin/ssh -p2201 db3').port, 2201);
    assert.equal(parseSshCommand('ssh db4').user, null);
  });
  test('refusals', () => {
    for (const bad of ['scp db', 'ssh', 'ssh -p x db', 'ssh -o StrictHostKeyChecking=no db', 'ssh -o ProxyCommand=nc db', 'ssh db ls', 'ssh -J jump db']) {
      assert.throws(() => parseSshCommand(bad), BarmantsError, bad);
    }
  });
});

describe('known_hosts', () => {
  const b64 = KEY.toString('base64');
  test('plain, port form, hashed', () => {
    assert.equal(verifyHostKey([{ file: 'kh', text: `db1,10.0.0.1 ssh-ed25519 ${b64}\n` }], 'db1', 22, KEY).status, 'match');
    assert.equal(verifyHostKey([{ file: 'kh', text: `db1 ssh-ed25519 ${b64}\n` }], 'db1', 2222, KEY).status, 'unknown');
    assert.equal(verifyHostKey([{ file: 'kh', text: `[db1]:2222 ssh-ed25519 ${b64}\n` }], 'db1', 2222, KEY).status, 'match');
    assert.equal(verifyHostKey([{ file: 'kh', text: `${hashed('db1')} ssh-ed25519 ${b64}\n` }], 'db1', 22, KEY).status, 'match');
    assert.equal(verifyHostKey([{ file: 'kh', text: `${hashed('[127.0.0.1]:2222')} ssh-ed25519 ${b64}\n` }], '127.0.0.1', 2222, KEY).status, 'match');
    assert.equal(verifyHostKey([{ file: 'kh', text: `${hashed('db2')} ssh-ed25519 ${b64}\n` }], 'db1', 22, KEY).status, 'unknown');
  });
  test('mismatch, other key type, patterns, revoked', () => {
    const v = verifyHostKey([{ file: 'kh', text: `# c\n\ndb1 ssh-ed25519 ${OTHER.toString('base64')}\n` }], 'db1', 22, KEY);
    assert.deepEqual(v, { status: 'mismatch', file: 'kh', line: 3, knownType: 'ssh-ed25519' });
    assert.equal(verifyHostKey([{ file: 'kh', text: `db1 ssh-rsa AAAA\n` }], 'db1', 22, KEY).status, 'unknown');
    assert.equal(verifyHostKey([{ file: 'kh', text: `*.example.com,!bad.example.com ssh-ed25519 ${b64}\n` }], 'db.example.com', 22, KEY).status, 'match');
    assert.equal(verifyHostKey([{ file: 'kh', text: `*.example.com,!bad.example.com ssh-ed25519 ${b64}\n` }], 'bad.example.com', 22, KEY).status, 'unknown');
    assert.equal(verifyHostKey([{ file: 'kh', text: `@revoked * ssh-ed25519 ${b64}\ndb1 ssh-ed25519 ${b64}\n` }], 'db1', 22, KEY).status, 'revoked');
    assert.deepEqual(knownKeyTypes([{ file: 'kh', text: `db1 ssh-rsa AAAA\ndb1 ssh-ed25519 ${b64}\n` }], 'db1', 22), ['ssh-rsa', 'ssh-ed25519']);
  });
  test('fingerprint is OpenSSH-style', () => {
    assert.match(fingerprint(KEY), /^SHA256:[A-Za-z0-9+/]{43}$/);
  });
});

describe('remote destination checks', () => {
  test('verdicts', () => {
    interpretRemoteCheck('', 'h');
    assert.throws(() => interpretRemoteCheck('NONEMPTY /d\n', 'h'), /\/d on h is not empty/);
    assert.throws(() => interpretRemoteCheck('LIVE 42 /d\n', 'h'), /running PostgreSQL.*42/);
    assert.throws(() => interpretRemoteCheck('NOTAR\n', 'h'), /tar is not installed/);
    assert.match(remoteCheckScript(["/my dir"]), /check '\/my dir'/);
  });
});
