import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BarmantsError } from '../../../packages/barmants/src/errors/index.js';
import { loadConfig, parseIni, renderOptionsMarkdown, showServer } from '../../../packages/barmants/src/config/index.js';

let root: string;
let n = 0;
before(() => {
  root = mkdtempSync(join(tmpdir(), 'barmants-config-'));
});
after(() => rmSync(root, { recursive: true, force: true }));

/** Writes a config under a fresh directory; `home` is substituted with a per-test home. */
function write(text: string, extra: Record<string, string> = {}): { file: string; dir: string; home: string } {
  const dir = join(root, `t${++n}`);
  mkdirSync(dir);
  const home = join(dir, 'home');
  const file = join(dir, 'barmants.conf');
  writeFileSync(file, text.replaceAll('@HOME@', home).replaceAll('@DIR@', dir));
  for (const [name, body] of Object.entries(extra)) {
    mkdirSync(join(dir, name, '..'), { recursive: true });
    writeFileSync(join(dir, name), body.replaceAll('@HOME@', home));
  }
  return { file, dir, home };
}

function configError(fn: () => unknown, re: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof BarmantsError, String(e));
    assert.equal(e.kind, 'config');
    assert.match(e.message, re);
    return true;
  });
}

test('INI reader: delimiters, comments, continuations, case rules, line numbers', () => {
  const doc = parseIni('# c\n[Srv]\nConnInfo = host=a user=b\nkey2: v:2\n; c\nmulti = a\n  b\n\n  c\nnext=1\n', 'f.conf');
  const s = doc.sections[0]!;
  assert.equal(s.name, 'Srv');
  assert.equal(s.line, 2);
  assert.deepEqual(s.entries.get('conninfo'), { key: 'conninfo', value: 'host=a user=b', file: 'f.conf', line: 3 });
  assert.equal(s.entries.get('key2')!.value, 'v:2');
  assert.equal(s.entries.get('multi')!.value, 'a\nb\nc');
  assert.equal(s.entries.get('next')!.line, 10);
  assert.throws(() => parseIni('[a]\nx=1\nX = 2\n', 'f.conf'), /f\.conf:3: option 'x' in section \[a\] already set at line 2/);
  assert.throws(() => parseIni('x=1\n', 'f.conf'), /f\.conf:1: option 'x' appears before any \[section\]/);
  assert.throws(() => parseIni('[a]\n[a]\n', 'f.conf'), /f\.conf:2: section \[a\] already defined at line 1/);
  assert.throws(() => parseIni('[a]\njunk\n', 'f.conf'), /f\.conf:2: cannot parse line/);
});

test('a full Barman-style config loads with typed values and defaults', () => {
  const { file, home } = write(`
[barman]
barman_home = @HOME@
log_level = debug
compression = gzip
retention_policy = RECOVERY WINDOW OF 2 WEEKS

[pg]
description = "main cluster"
conninfo = host=pg user=barman dbname=postgres password=secret
backup_method = postgres
streaming_archiver = on
slot_name = barman
create_slot = auto
backup_compression = zstd
backup_compression_level = 3
last_backup_maximum_age = 1 day
last_backup_minimum_size = 1 Gi
wal_flush_interval = 1 second
backup_schedule = 0 2 * * *
post_backup_script = /usr/local/bin/notify
recovery_options = get-wal
`);
  const cfg = loadConfig({ path: file, env: {} });
  assert.deepEqual(cfg.files, [file]);
  assert.deepEqual(cfg.warnings, []);
  assert.equal(cfg.global.section, 'barman');
  assert.equal(cfg.global.barmantsHome, home);
  assert.equal(cfg.global.lockDirectory, home);
  assert.equal(cfg.global.logLevel, 'DEBUG');
  assert.equal(cfg.global.maintenanceIntervalSec, 60);
  const pg = cfg.servers.get('pg')!;
  assert.equal(pg.description, '"main cluster"');
  assert.equal(pg.active, true);
  assert.equal(pg.streamingConninfo, pg.conninfo);
  assert.equal(pg.backupDirectory, join(home, 'pg'));
  assert.deepEqual(pg.backupCompression, { codec: 'zstd', level: 3 });
  assert.deepEqual(pg.walCompression, { codec: 'gzip' });
  assert.deepEqual(pg.retentionPolicy, { kind: 'window', amount: 2, unit: 'weeks', seconds: 14 * 86400 });
  assert.equal(pg.lastBackupMaximumAgeSec, 86400);
  assert.equal(pg.lastBackupMinimumSizeBytes, 1024 ** 3);
  assert.equal(pg.walFlushIntervalMs, 1000);
  assert.equal(pg.streamingArchiver, true);
  assert.equal(pg.slotName, 'barman');
  assert.equal(pg.createSlot, 'auto');
  assert.equal(pg.streamingArchiverName, 'barmants_receive_wal');
  assert.equal(pg.checkTimeoutSec, 30);
  assert.equal(pg.failedBackupRetentionSec, 7 * 86400);
  assert.equal(pg.shutdownGracePeriodSec, 60);
  assert.equal(pg.basebackupRetrySleepSec, 30);
  assert.equal(pg.backupScheduleCatchup, 1);
  assert.equal(pg.reuseBackup, 'off');
  assert.deepEqual(pg.recoveryOptions, ['get-wal']);
  assert.deepEqual(pg.hooks, { post_backup_script: '/usr/local/bin/notify' });
  assert.deepEqual(pg.source['compression'], { file, line: 5 });
  assert.deepEqual(pg.source['slot_name'], { file, line: 13 });
  assert.equal(pg.source['check_timeout'], undefined);
});

test('validation errors name file:line, option, section and what is allowed', () => {
  const { file } = write('[barmants]\nbarmants_home = /tmp/x\n[pg]\nconninfo = host=a\n\nbackup_compression = zstdd\n');
  configError(
    () => loadConfig({ path: file, env: {} }),
    new RegExp(`^${file.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}:6: invalid value 'zstdd' for option 'backup_compression' in section \\[pg\\]: expected one of none, gzip, lz4, zstd`),
  );
  const g = write('[barmants]\nbarmants_home = /tmp/x\nminimum_redundancy = -1\n[pg]\nconninfo = host=a\n');
  configError(() => loadConfig({ path: g.file, env: {} }), /barmants\.conf:3: invalid value '-1' for option 'minimum_redundancy' in section \[barmants\]: expected an integer >= 0/);
  const b = write('[pg]\nconninfo = host=a\nactive = maybe\n');
  configError(() => loadConfig({ path: b.file, env: {} }), /:3: invalid value 'maybe' for option 'active' in section \[pg\]: expected a boolean/);
  const c = write('[pg]\nconninfo = host=a\nbackup_schedule = every day\n');
  configError(() => loadConfig({ path: c.file, env: {} }), /:3: .*'backup_schedule' .*cron expression/);
  const d = write("[pg]\nconninfo = host='a\n");
  configError(() => loadConfig({ path: d.file, env: {} }), /:2: invalid value .* for option 'conninfo' in section \[pg\]: .*unterminated/);
});

test('backup_method other than postgres is refused with the reason', () => {
  const { file } = write('[pg]\nconninfo = host=a\nbackup_method = rsync\n');
  configError(() => loadConfig({ path: file, env: {} }), /:3: invalid value 'rsync' for option 'backup_method' in section \[pg\]: barmants only supports backup_method = postgres/);
  const e = write('[pg]\nconninfo = host=a\nbackup_method = streaming\n');
  configError(() => loadConfig({ path: e.file, env: {} }), /:3: .*'backup_method' .*expected one of postgres/);
  const g = write('[barman]\nbackup_method = snapshot\n[pg]\nconninfo = host=a\n');
  configError(() => loadConfig({ path: g.file, env: {} }), /:2: invalid value 'snapshot' for option 'backup_method' in section \[barman\]: barmants only supports backup_method = postgres/);
});

test('active servers need conninfo; inactive ones do not', () => {
  const { file } = write('[pg]\ndescription = x\n');
  configError(() => loadConfig({ path: file, env: {} }), /:1: server \[pg\] has no 'conninfo'/);
  const ok = write('[pg]\nactive = false\n');
  const pg = loadConfig({ path: ok.file, env: {} }).servers.get('pg')!;
  assert.equal(pg.active, false);
  assert.equal(pg.conninfo, null);
});

test('server names must be safe directory names', () => {
  for (const name of ['all', 'a/b', '.hidden', 'a b']) {
    const { file } = write(`[${name}]\nconninfo = host=a\n`);
    configError(() => loadConfig({ path: file, env: {} }), /invalid server name/);
  }
});

test('configuration_files_directory: *.conf in name order, several sections per file, duplicates refused', () => {
  const { file, dir } = write('[barmants]\nbarmants_home = @HOME@\nconfiguration_files_directory = @DIR@/conf.d\n[main]\nconninfo = host=m\n', {
    'conf.d/b.conf': '[b1]\nconninfo = host=b1\n[b2]\nconninfo = host=b2\n',
    'conf.d/a.conf': '[a]\nconninfo = host=a\n',
    'conf.d/skip.txt': '[nope]\n',
  });
  const cfg = loadConfig({ path: file, env: {} });
  assert.deepEqual(cfg.files, [file, join(dir, 'conf.d/a.conf'), join(dir, 'conf.d/b.conf')]);
  assert.deepEqual([...cfg.servers.keys()], ['main', 'a', 'b1', 'b2']);
  assert.deepEqual(cfg.servers.get('b2')!.source['conninfo'], { file: join(dir, 'conf.d/b.conf'), line: 4 });

  const dup = write('[barmants]\nconfiguration_files_directory = @DIR@/d\n[pg]\nconninfo = host=a\n', { 'd/pg.conf': '\n[pg]\nconninfo = host=b\n' });
  configError(() => loadConfig({ path: dup.file, env: {} }), /d\/pg\.conf:2: server \[pg\] is already defined at .*barmants\.conf:3/);
  const glob = write('[barmants]\nconfiguration_files_directory = @DIR@/d\n', { 'd/x.conf': '[barman]\nlog_level = INFO\n' });
  configError(() => loadConfig({ path: glob.file, env: {} }), /x\.conf:1: global section \[barman\] is only allowed in the main configuration file/);
  const missing = write('[barmants]\nconfiguration_files_directory = @DIR@/none\n');
  configError(() => loadConfig({ path: missing.file, env: {} }), /barmants\.conf:2: configuration_files_directory .* cannot be read/);
});

test('interpolation: same section, then global, then built-ins; %% escapes; unknown names fail', () => {
  const { file, home } = write(`[barmants]
barmants_home = @HOME@
common_user = ignored-unknown
streaming_archiver_name = arch_%(name)s
[pg]
host = db1
conninfo = host=%(host)s user=barman
streaming_conninfo = %(conninfo)s replication=true
backup_directory = %(barman_home)s/custom/%(name)s
description = 100%% ok
`);
  const cfg = loadConfig({ path: file, env: {} });
  const pg = cfg.servers.get('pg')!;
  assert.equal(pg.conninfo, 'host=db1 user=barman');
  assert.equal(pg.streamingConninfo, 'host=db1 user=barman replication=true');
  assert.equal(pg.backupDirectory, join(home, 'custom/pg'));
  assert.equal(pg.description, '100% ok');
  assert.equal(pg.streamingArchiverName, 'arch_pg');
  assert.ok(cfg.warnings.some((w) => /barmants\.conf:3: unknown option 'common_user' in section \[barmants\]: ignored/.test(w)));
  assert.ok(cfg.warnings.some((w) => /:6: unknown option 'host' in section \[pg\]: ignored/.test(w)));

  const badRef = write('[pg]\nconninfo = host=%(nohost)s\n');
  configError(() => loadConfig({ path: badRef.file, env: {} }), /:2: option 'conninfo' in section \[pg\] refers to '%\(nohost\)s'/);
  const loop = write('[pg]\nconninfo = %(description)s\ndescription = %(conninfo)s\n');
  configError(() => loadConfig({ path: loop.file, env: {} }), /nested too deeply/);
  const lone = write('[pg]\nconninfo = host=a\ndescription = 100% ok\n');
  configError(() => loadConfig({ path: lone.file, env: {} }), /:3: invalid value for option 'description'.*'%%'/);
});

test('alias sections and options; both spellings in one section is an error', () => {
  const a = write('[barman]\nbarman_home = /srv/b\nbarman_lock_directory = /run/b\n');
  const cfg = loadConfig({ path: a.file, env: {} });
  assert.equal(cfg.global.barmantsHome, '/srv/b');
  assert.equal(cfg.global.lockDirectory, '/run/b');
  assert.equal(cfg.servers.size, 0);
  const both = write('[barmants]\nbarmants_home = /a\nbarman_home = /b\n');
  configError(() => loadConfig({ path: both.file, env: {} }), /:3: option 'barman_home' in section \[barmants\] sets 'barmants_home' again \(already set as 'barmants_home' at line 2\)/);
  const two = write('[barmants]\n[barman]\n');
  configError(() => loadConfig({ path: two.file, env: {} }), /:2: global section \[barman\] repeats \[barmants\]/);
});

test('global defaults flow to servers; scope mismatches, ignored and unknown options warn', () => {
  const { file } = write(`[barmants]
barmants_home = /srv/x
minimum_redundancy = 2
slot_name = nope
network_compression = true
[pg]
conninfo = host=a
log_file = /tmp/x.log
path_prefix = /usr/lib/postgresql/16/bin
reuse_backup = copy
archiver = on
compresion = gzip
[pg2]
conninfo = host=b
minimum_redundancy = 5
`);
  const cfg = loadConfig({ path: file, env: {} });
  assert.equal(cfg.servers.get('pg')!.minimumRedundancy, 2);
  assert.deepEqual(cfg.servers.get('pg')!.source['minimum_redundancy'], { file, line: 3 });
  assert.equal(cfg.servers.get('pg2')!.minimumRedundancy, 5);
  assert.equal(cfg.servers.get('pg')!.slotName, null);
  assert.equal(cfg.servers.get('pg')!.reuseBackup, 'off');
  const w = cfg.warnings.join('\n');
  assert.match(w, /:4: option 'slot_name' is a server option/);
  assert.match(w, /:8: option 'log_file' is a global option/);
  assert.match(w, /:10: reuse_backup = copy is not supported/);
  assert.match(w, /:11: archiver = on for server \[pg\]/);
  assert.match(w, /:12: unknown option 'compresion' in section \[pg\]: ignored/);
  assert.equal(cfg.warnings.length, 5);
  assert.match(cfg.notes.join('\n'), /:5: option 'network_compression' in section \[barmants\] is ignored: /);
  assert.match(cfg.notes.join('\n'), /:9: option 'path_prefix' in section \[pg\] is ignored: /);
});

test('compression level: separate option, conflicts, ranges', () => {
  const { file } = write('[barmants]\ncompression = lz4\ncompression_level = high\n[pg]\nconninfo = host=a\nbackup_compression = gzip\nbackup_compression_level = low\n');
  const pg = loadConfig({ path: file, env: {} }).servers.get('pg')!;
  assert.deepEqual(pg.walCompression, { codec: 'lz4', level: 12 });
  assert.deepEqual(pg.backupCompression, { codec: 'gzip', level: 1 });
  const conflict = write('[pg]\nconninfo = host=a\nbackup_compression = zstd:3\nbackup_compression_level = 5\n');
  configError(() => loadConfig({ path: conflict.file, env: {} }), /:4: option 'backup_compression_level' .* conflicts with the level already given in 'backup_compression' at .*:3/);
  const range = write('[pg]\nconninfo = host=a\nbackup_compression = gzip\nbackup_compression_level = 12\n');
  configError(() => loadConfig({ path: range.file, env: {} }), /:4: invalid value '12' for option 'backup_compression_level' in section \[pg\]: expected a gzip level between 1 and 9/);
});

test('wal_receiver_timeout: a duration in ms, 60 s by default, global or per server, 0 disables', () => {
  const { file } = write('[barmants]\nwal_receiver_timeout = 2 minutes\n[a]\nconninfo = host=a\n[b]\nconninfo = host=b\nwal_receiver_timeout = 0\n[c]\nconninfo = host=c\nwal_receiver_timeout = 1500\n[d]\nconninfo = host=d\nwal_receiver_timeout = 5s\n');
  const cfg = loadConfig({ path: file, env: {} });
  assert.equal(cfg.servers.get('a')!.walReceiverTimeoutMs, 120_000);
  assert.equal(cfg.servers.get('b')!.walReceiverTimeoutMs, 0);
  // A bare number is milliseconds, as in postgresql.conf.
  assert.equal(cfg.servers.get('c')!.walReceiverTimeoutMs, 1500);
  assert.equal(cfg.servers.get('d')!.walReceiverTimeoutMs, 5000);
  assert.deepEqual(cfg.warnings, []);
  const dflt = write('[pg]\nconninfo = host=a\n');
  const pg = loadConfig({ path: dflt.file, env: {} }).servers.get('pg')!;
  assert.equal(pg.walReceiverTimeoutMs, 60_000);
  assert.equal(new Map(showServer(pg)).get('wal_receiver_timeout'), '60000 ms');
  for (const bad of ['-1 s', '1.5 s', 'soon', '10 fortnights']) {
    const w = write(`[pg]\nconninfo = host=a\nwal_receiver_timeout = ${bad}\n`);
    configError(() => loadConfig({ path: w.file, env: {} }), new RegExp(`:3: invalid value '${bad.replace('.', '\\.')}' for option 'wal_receiver_timeout' in section \\[pg\\]: expected a duration`));
  }
  assert.match(renderOptionsMarkdown(), /\| `wal_receiver_timeout` \| global\/server \| duration \(ms\) \| `60 seconds` \|.*0 disables/);
});

test('two servers may not share a backup_directory', () => {
  const { file } = write('[a]\nconninfo = host=a\nbackup_directory = /srv/same\n[b]\nconninfo = host=b\nbackup_directory = /srv/same/\n');
  configError(() => loadConfig({ path: file, env: {} }), /:4: servers \[a\] and \[b\] share backup_directory \/srv\/same/);
});

test('config file search: explicit path, BARMANTS_CONFIG, ~/.barmants.conf, none', () => {
  const { file, dir } = write('[e]\nactive = false\n');
  assert.ok(loadConfig({ env: { BARMANTS_CONFIG: file } }).servers.has('e'));
  writeFileSync(join(dir, '.barmants.conf'), '[h]\nactive = false\n');
  assert.ok(loadConfig({ env: { HOME: dir } }).servers.has('h'));
  const empty = mkdtempSync(join(root, 'empty-'));
  if (!['/etc/barmants.conf', '/etc/barmants/barmants.conf'].some((p) => existsSync(p))) {
    configError(() => loadConfig({ env: { HOME: empty } }), /no configuration file found \(looked for .*\.barmants\.conf, \/etc\/barmants\.conf, \/etc\/barmants\/barmants\.conf\)/);
  }
  configError(() => loadConfig({ path: join(empty, 'missing.conf'), env: {} }), /cannot read configuration file/);
});

test('showServer masks passwords; renderOptionsMarkdown covers every option', () => {
  const { file } = write("[pg]\nconninfo = host=a password='top secret' user=b\nstreaming_conninfo = postgres://b:pw@a/db\nretention_policy = redundancy 2\nbackup_compression = zstd:5\npre_backup_script = /bin/true\n");
  const rows = new Map(showServer(loadConfig({ path: file, env: {} }).servers.get('pg')!));
  assert.equal(rows.get('conninfo'), 'host=a password=******** user=b');
  assert.equal(rows.get('streaming_conninfo'), 'postgres://b:********@a/db');
  assert.equal(rows.get('retention_policy'), 'REDUNDANCY 2');
  assert.equal(rows.get('backup_compression'), 'zstd');
  assert.equal(rows.get('backup_compression_level'), '5');
  assert.equal(rows.get('pre_backup_script'), '/bin/true');
  assert.equal(rows.get('active'), 'true');
  assert.equal(rows.get('wal_flush_interval'), '200 ms');
  assert.equal(rows.get('check_timeout'), '30 seconds');
  assert.ok(!rows.has('log_file'));
  assert.ok(!rows.has('network_compression'));
  assert.ok(![...rows.values()].some((v) => v.includes('secret') || v.includes(':pw@')));
  const md = renderOptionsMarkdown();
  assert.match(md, /^\| option \| scope \| type \| default \| Barman name \| meaning \|/);
  assert.match(md, /\| `barmants_home` \| global \| path \| `\/var\/lib\/barmants` \| `barman_home` \|/);
  assert.match(md, /\| `network_compression` \| .*rsync/);
  assert.match(md, /`post_wal_delete_retry_script`/);
});
