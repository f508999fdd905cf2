// The recovery configuration writer: settings per target, quoting, commented-out old lines,
// archiving turned off, and the dangerous-settings scan.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  buildRecoveryFiles, commentOutReplaced, cpRestoreCommand, getWalRestoreCommand, quoteConfValue, recoverySettings,
  scanDangerous, shellQuote, walRestoreScriptCommand, type RecoverySettingsInput,
} from '../../../packages/barmants/src/recovery/config.js';
import { BarmantsError } from '../../../packages/barmants/src/errors/index.js';

const base: RecoverySettingsInput = {
  pgVersion: 160004, target: { kind: 'end' }, targetTli: null, action: null, standby: false,
  restoreCommand: 'cp /d/barmants_wal/%f %p', recoveryEndCommand: null,
};
const get = (s: [string, string][], k: string): string | undefined => s.find(([n]) => n === k)?.[1];

describe('recovery settings', () => {
  test('each target kind', () => {
    const time = recoverySettings({ ...base, target: { kind: 'time', time: new Date('2026-11-27T09:15:00.123Z'), micros: 456, inclusive: true, text: '' } });
    assert.equal(get(time, 'recovery_target_time'), '2026-11-27 09:15:00.123456+00');
    assert.equal(get(time, 'recovery_target_inclusive'), undefined);
    const xid = recoverySettings({ ...base, target: { kind: 'xid', xid: '734', inclusive: false }, action: 'promote' });
    assert.equal(get(xid, 'recovery_target_xid'), '734');
    assert.equal(get(xid, 'recovery_target_inclusive'), 'false');
    assert.equal(get(xid, 'recovery_target_action'), 'promote');
    assert.equal(get(recoverySettings({ ...base, target: { kind: 'lsn', lsn: 0x16b3748n, inclusive: true } }), 'recovery_target_lsn'), '0/16B3748');
    assert.equal(get(recoverySettings({ ...base, target: { kind: 'name', name: "it's" } }), 'recovery_target_name'), "it's");
    assert.equal(get(recoverySettings({ ...base, target: { kind: 'immediate' } }), 'recovery_target'), 'immediate');
    assert.equal(get(recoverySettings({ ...base, targetTli: 3 }), 'recovery_target_timeline'), '3');
  });

  test('archiving is always turned off; archive_library too from 15', () => {
    assert.equal(get(recoverySettings(base), 'archive_command'), 'false');
    assert.equal(get(recoverySettings(base), 'archive_library'), '');
    assert.equal(get(recoverySettings({ ...base, pgVersion: 140011 }), 'archive_library'), undefined);
  });

  test('refusals: PG < 12, action without target', () => {
    assert.throws(() => recoverySettings({ ...base, pgVersion: 110020 }), /recovery.conf/);
    assert.throws(() => recoverySettings({ ...base, action: 'promote' }), (e: unknown) => e instanceof BarmantsError && e.kind === 'usage');
  });
});

describe('quoting', () => {
  test('postgresql.conf values', () => {
    assert.equal(quoteConfValue("a'b\\c"), "'a''b\\\\c'");
  });
  test('shell words and restore commands', () => {
    assert.equal(shellQuote('/var/lib/pg'), '/var/lib/pg');
    assert.equal(shellQuote("/my dir/it's"), `'/my dir/it'\\''s'`);
    assert.equal(cpRestoreCommand('/srv/dest/barmants_wal'), 'cp /srv/dest/barmants_wal/%f %p');
    assert.equal(cpRestoreCommand('/srv/my dest/barmants_wal'), "cp '/srv/my dest/barmants_wal/%f' %p");
    assert.equal(
      getWalRestoreCommand({ barmants: '/usr/bin/barmants', configFile: '/etc/barmants.conf', server: 'pg', partial: true }),
      '/usr/bin/barmants -c /etc/barmants.conf -q get-wal -P pg %f > %p',
    );
    assert.equal(
      walRestoreScriptCommand({ script: 'barmants-wal-restore', user: 'barmants', host: 'backup1', server: 'pg', configFile: null, partial: false }),
      'barmants-wal-restore -U barmants backup1 pg %f %p',
    );
  });
});

describe('config files', () => {
  const conf = [
    "port = 5432",
    "archive_command = 'cp %p /mnt/archive/%f'   # ship",
    "#archive_command = ''",
    "hba_file = '/etc/pg/hba.conf'",
    "include_dir 'conf.d'",
    "Recovery_Target_Time = '2020-01-01'",
  ].join('\n');

  test('replaced settings are commented out, others kept', () => {
    const r = commentOutReplaced('postgresql.conf', conf);
    assert.deepEqual(r.commented.map((c) => [c.line, c.name]), [[2, 'archive_command'], [6, 'recovery_target_time']]);
    assert.match(r.text, /^#BARMANTS# archive_command = 'cp %p/m);
    assert.match(r.text, /^port = 5432$/m);
    assert.match(r.text, /^#archive_command = ''$/m);
  });

  test('dangerous settings are listed with file and line', () => {
    const d = scanDangerous('postgresql.conf', conf);
    assert.deepEqual(d.map((x) => `${x.file} line ${x.line}: ${x.name}`), [
      'postgresql.conf line 2: archive_command', 'postgresql.conf line 4: hba_file', 'postgresql.conf line 5: include_dir',
    ]);
  });

  test('buildRecoveryFiles: auto.conf appended, old lines commented, signal file', () => {
    const f = buildRecoveryFiles({
      ...base, standby: true, targetTli: 'latest',
      postgresqlConf: conf, postgresqlAutoConf: "# Do not edit\nrestore_command = 'old'\nwork_mem = '8MB'\n", banner: 'barmants recover test',
    });
    assert.equal(f.signalFile, 'standby.signal');
    assert.match(f.postgresqlAutoConf, /^#BARMANTS# restore_command = 'old'$/m);
    assert.match(f.postgresqlAutoConf, /^work_mem = '8MB'$/m);
    assert.match(f.postgresqlAutoConf, /# barmants recover test\nrestore_command = 'cp \/d\/barmants_wal\/%f %p'\n/);
    assert.match(f.postgresqlAutoConf, /^archive_command = 'false'$/m);
    assert.match(f.postgresqlAutoConf, /^recovery_target_timeline = 'latest'$/m);
    assert.ok(f.postgresqlConf !== null && f.postgresqlConf.includes("#BARMANTS# archive_command"));
    assert.deepEqual(f.modified.map((m) => `${m.file}:${m.line}`), ['postgresql.conf:2', 'postgresql.conf:6', 'postgresql.auto.conf:2']);
    assert.deepEqual(f.dangerous.map((m) => m.name), ['hba_file', 'include_dir']);
  });

  test('no auto.conf in the backup: one is created', () => {
    const f = buildRecoveryFiles({ ...base, postgresqlConf: null, postgresqlAutoConf: null, banner: 'b' });
    assert.match(f.postgresqlAutoConf, /^# Do not edit this file manually!/);
    assert.equal(f.postgresqlConf, null);
    assert.equal(f.signalFile, 'recovery.signal');
  });
});
