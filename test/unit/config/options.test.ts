import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  OPTIONS,
  OptionValueError,
  findOption,
  parseBool,
  parseCompression,
  parseCompressionLevel,
  compressionLevelFor,
  parseCron,
  parseDuration,
  parseEnum,
  parseInt10,
  parseList,
  parsePath,
  parseRetention,
  formatRetention,
  parseSize,
  parseOptionValue,
} from '../../../packages/barmants/src/config/index.js';

const bad = (fn: () => unknown, re?: RegExp) => assert.throws(fn, (e: unknown) => e instanceof OptionValueError && (!re || re.test(e.expected)));

test('options are declared once, with unique names and aliases', () => {
  const names = new Set<string>();
  for (const o of OPTIONS) {
    for (const n of [o.name, o.barmanAlias].filter((x): x is string => !!x)) {
      assert.ok(!names.has(n), `duplicate ${n}`);
      names.add(n);
    }
    assert.ok(o.help.length > 0, o.name);
    if (o.ignored) assert.ok(o.reason, o.name);
    if (o.default !== null && !o.default.includes('%(')) parseOptionValue(o, o.default);
  }
  assert.equal(findOption('BARMAN_HOME')?.name, 'barmants_home');
  assert.equal(findOption('barman_lock_directory')?.name, 'lock_directory');
  assert.equal(findOption('post_wal_delete_retry_script')?.type, 'command');
  assert.equal(findOption('network_compression')?.ignored, true);
  assert.equal(findOption('nope'), undefined);
});

test('bool: Barman spellings, case-insensitive', () => {
  for (const t of ['true', 'T', 'yes', '1', 'ON', ' on ']) assert.equal(parseBool(t), true, t);
  for (const f of ['false', 'f', 'NO', '0', 'off']) assert.equal(parseBool(f), false, f);
  for (const b of ['', 'y', 'enabled', '2']) bad(() => parseBool(b), /true\|t\|yes/);
});

test('int with bounds', () => {
  assert.equal(parseInt10(' 42 '), 42);
  assert.equal(parseInt10('0', 0), 0);
  bad(() => parseInt10('-1', 0), />= 0/);
  bad(() => parseInt10('1.5'));
  bad(() => parseInt10('ten'));
  bad(() => parseInt10('13', 1, 12), /between 1 and 12/);
});

test('size: Barman suffixes, case-sensitive, bare number = bytes', () => {
  assert.equal(parseSize('100'), 100);
  assert.equal(parseSize('1 k'), 1000);
  assert.equal(parseSize('1Ki'), 1024);
  assert.equal(parseSize('2 M'), 2e6);
  assert.equal(parseSize('2 Mi'), 2 * 1024 ** 2);
  assert.equal(parseSize('3 G'), 3e9);
  assert.equal(parseSize('1 Gi'), 1024 ** 3);
  assert.equal(parseSize('1 T'), 1e12);
  assert.equal(parseSize('1 Ti'), 1024 ** 4);
  for (const b of ['1 K', '1 kB', '1 gi', '-1', '1.5 G', 'G', '']) bad(() => parseSize(b), /k\|Ki/);
});

test('duration: Barman grammar plus seconds/minutes and short forms', () => {
  assert.equal(parseDuration('1 day'), 86400);
  assert.equal(parseDuration('2 days'), 172800);
  assert.equal(parseDuration('1 week'), 604800);
  assert.equal(parseDuration('1 month'), 31 * 86400);
  assert.equal(parseDuration('3 hours'), 10800);
  assert.equal(parseDuration('5 minutes'), 300);
  assert.equal(parseDuration('30 seconds'), 30);
  assert.equal(parseDuration('30'), 30);
  assert.equal(parseDuration('30s'), 30);
  assert.equal(parseDuration(' 2 HOURS '), 7200);
  assert.equal(parseDuration('200 ms', 'ms'), 200);
  assert.equal(parseDuration('200', 'ms'), 200);
  assert.equal(parseDuration('1 second', 'ms'), 1000);
  bad(() => parseDuration('200 ms', 's'), /second\|minute/);
  bad(() => parseDuration('1 fortnight'));
  bad(() => parseDuration('-1 day'));
  bad(() => parseDuration('1.5 days'));
  bad(() => parseDuration('day'));
  bad(() => parseDuration('0', 's', 1), /at least 1/);
});

test('enum and list', () => {
  assert.equal(parseEnum('debug', ['DEBUG', 'INFO']), 'DEBUG');
  bad(() => parseEnum('trace', ['DEBUG', 'INFO']), /expected one of DEBUG, INFO/);
  assert.deepEqual(parseList('get-wal, delta-restore', ['get-wal', 'delta-restore']), ['get-wal', 'delta-restore']);
  assert.deepEqual(parseList('', ['get-wal']), []);
  bad(() => parseList('get-wal,standby-mode', ['get-wal', 'delta-restore']), /get-wal, delta-restore/);
});

test('compression: codecs, :level, level words and ranges', () => {
  assert.deepEqual(parseCompression('none'), { codec: 'none' });
  assert.deepEqual(parseCompression('ZSTD'), { codec: 'zstd' });
  assert.deepEqual(parseCompression('zstd:3'), { codec: 'zstd', level: 3 });
  assert.deepEqual(parseCompression('gzip:level=9'), { codec: 'gzip', level: 9 });
  assert.deepEqual(parseCompression('lz4:high'), { codec: 'lz4', level: 12 });
  assert.deepEqual(parseCompression('pigz'), { codec: 'gzip' });
  for (const b of ['zstdd', 'bzip2', 'xz', 'snappy', 'custom', '']) bad(() => parseCompression(b), /none, gzip, lz4, zstd/);
  bad(() => parseCompression('gzip:10'), /between 1 and 9/);
  bad(() => parseCompression('zstd:23'), /between 1 and 22/);
  bad(() => parseCompression('none:3'), /not none/);
  assert.equal(parseCompressionLevel('Medium'), 'medium');
  assert.equal(parseCompressionLevel('5'), 5);
  bad(() => parseCompressionLevel('max'));
  assert.equal(compressionLevelFor('zstd', 'medium'), 3);
  assert.equal(compressionLevelFor('gzip', 'low'), 1);
});

test('retention: Barman grammar, case-insensitive, month = 31 days', () => {
  assert.deepEqual(parseRetention('REDUNDANCY 2'), { kind: 'redundancy', count: 2 });
  assert.deepEqual(parseRetention(' redundancy   7 '), { kind: 'redundancy', count: 7 });
  assert.deepEqual(parseRetention('RECOVERY WINDOW OF 4 WEEKS'), { kind: 'window', amount: 4, unit: 'weeks', seconds: 4 * 7 * 86400 });
  assert.deepEqual(parseRetention('recovery window of 1 day'), { kind: 'window', amount: 1, unit: 'days', seconds: 86400 });
  assert.deepEqual(parseRetention('Recovery Window Of 2 Months'), { kind: 'window', amount: 2, unit: 'months', seconds: 62 * 86400 });
  for (const b of ['REDUNDANCY', 'REDUNDANCY 0', 'REDUNDANCY two', 'RECOVERY WINDOW 4 WEEKS', 'RECOVERY WINDOW OF 4 HOURS', 'RECOVERY WINDOW OF 0 DAYS', 'KEEP 3']) {
    bad(() => parseRetention(b), /REDUNDANCY n or RECOVERY WINDOW OF n/);
  }
  assert.equal(formatRetention(parseRetention('redundancy 3')), 'REDUNDANCY 3');
  assert.equal(formatRetention(parseRetention('recovery window of 2 weeks')), 'RECOVERY WINDOW OF 2 WEEKS');
});

test('cron via node-cron validate', () => {
  assert.equal(parseCron('0 2 * * *'), '0 2 * * *');
  assert.equal(parseCron('  */15   * * * 1-5 '), '*/15 * * * 1-5');
  for (const b of ['', 'daily', '61 * * * *', '* * *']) bad(() => parseCron(b), /cron expression/);
});

test('path: absolute or ~, normalised', () => {
  assert.equal(parsePath('/var/lib/barmants/'), '/var/lib/barmants');
  assert.equal(parsePath('/a//b/../c'), '/a/c');
  assert.equal(parsePath('~/x', { HOME: '/home/u' }), '/home/u/x');
  bad(() => parsePath('relative/dir'), /absolute path/);
  bad(() => parsePath(''));
});

test('string pattern (slot_name) and conninfo option', () => {
  const slot = findOption('slot_name')!;
  assert.equal(parseOptionValue(slot, 'barman_1'), 'barman_1');
  bad(() => parseOptionValue(slot, 'Barman-1'), /\[0-9a-z_\]/);
  const ci = findOption('conninfo')!;
  assert.equal(parseOptionValue(ci, ' host=a user=b '), 'host=a user=b');
  bad(() => parseOptionValue(ci, "host='a"), /unterminated/);
  bad(() => parseOptionValue(ci, 'host'), /missing "="/);
});
