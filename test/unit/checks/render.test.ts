// Console, JSON and Nagios renderings of check reports: status lines, perfdata, exit codes.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { checksJson, formatPerfdata, nagiosUnknown, renderChecksConsole, renderNagios, type ServerCheckReport } from '../../../packages/barmants/src/checks/index.js';

const ok = (name: string, detail = '') => ({ name, status: 'OK' as const, detail });
const failed = (name: string, detail = '') => ({ name, status: 'FAILED' as const, detail });
const warn = (name: string, detail = '') => ({ name, status: 'WARNING' as const, detail });

function rep(server: string, checks: ServerCheckReport['checks'], active = true): ServerCheckReport {
  return { server, active, checks };
}

describe('console and JSON', () => {
  test('Barman-style lines; warnings as OK (WARNING: ...)', () => {
    const lines = renderChecksConsole([rep('pg', [ok('PostgreSQL'), failed('backup maximum age', 'interval provided: 1 day, latest backup age: No available backups'), warn('directories', 'x')])]);
    assert.deepEqual(lines, [
      'Server pg:',
      '\tPostgreSQL: OK',
      '\tbackup maximum age: FAILED (interval provided: 1 day, latest backup age: No available backups)',
      '\tdirectories: OK (WARNING: x)',
    ]);
  });

  test('JSON keys are snake_case check names', () => {
    const j = checksJson([rep('pg', [ok('receive-wal running'), { ...failed('backup maximum age', 'old'), perfdata: [{ label: 'last_backup_age', value: 5, uom: 's' }] }])]);
    assert.deepEqual(j, {
      pg: {
        receive_wal_running: { status: 'OK', hint: '' },
        backup_maximum_age: { status: 'FAILED', hint: 'old', perfdata: [{ label: 'last_backup_age', value: 5, uom: 's' }] },
      },
    });
  });
});

describe('nagios', () => {
  test('all OK: exit 0 and the ready line', () => {
    const n = renderNagios([rep('a', [ok('PostgreSQL')]), rep('b', [ok('PostgreSQL')])]);
    assert.deepEqual(n, { state: 'OK', exitCode: 0, lines: ['BARMANTS OK - Ready to serve backups for 2 servers'] });
    assert.equal(renderNagios([rep('a', [ok('x')])]).lines[0], 'BARMANTS OK - Ready to serve backups for 1 server');
  });

  test('a FAILED check: CRITICAL, exit 2, servers and checks named, long text per problem', () => {
    const n = renderNagios([
      rep('srv1', [failed('backup maximum age', 'too old'), ok('PostgreSQL'), failed('receive-wal running')]),
      rep('srv2', [ok('PostgreSQL')]),
      rep('srv3', [warn('free disk space', 'low')]),
    ]);
    assert.equal(n.exitCode, 2);
    assert.equal(n.state, 'CRITICAL');
    assert.deepEqual(n.lines, [
      'BARMANTS CRITICAL - 1 server has problems: srv1 (backup maximum age, receive-wal running); 1 server with warnings: srv3 (free disk space)',
      'srv1.backup maximum age: FAILED (too old)',
      'srv1.receive-wal running: FAILED',
      'srv3.free disk space: WARNING (low)',
    ]);
    const two = renderNagios([rep('a', [failed('x')]), rep('b', [failed('y')])]);
    assert.equal(two.lines[0], 'BARMANTS CRITICAL - 2 servers have problems: a (x), b (y)');
  });

  test('only warnings: WARNING, exit 1', () => {
    const n = renderNagios([rep('a', [warn('backup maximum age', 'near')]), rep('b', [ok('x')])]);
    assert.equal(n.exitCode, 1);
    assert.equal(n.lines[0], 'BARMANTS WARNING - 1 server has warnings: a (backup maximum age)');
  });

  test('perfdata after |, prefixed by server, Nagios syntax', () => {
    const n = renderNagios([
      rep('pg', [
        { ...ok('backup maximum age'), perfdata: [{ label: 'last_backup_age', value: 3600, uom: 's', warn: 69120, crit: 86400, min: 0 }] },
        { ...ok('backup minimum size'), perfdata: [{ label: 'last_backup_size', value: 123, uom: 'B', min: 0 }] },
      ]),
    ]);
    assert.equal(n.lines[0], 'BARMANTS OK - Ready to serve backups for 1 server|pg_last_backup_age=3600s;69120;86400;0 pg_last_backup_size=123B;;;0');
    assert.equal(formatPerfdata('pg', { label: 'failed_backups', value: 0, uom: '' }), 'pg_failed_backups=0');
    assert.equal(formatPerfdata('my db', { label: 'x', value: 1, uom: 'B', crit: 2 }), "'my db_x'=1B;;2");
  });

  test('inactive servers are reported but ignored', () => {
    const n = renderNagios([rep('a', [ok('x')]), rep('old', [failed('PostgreSQL')], false)]);
    assert.equal(n.exitCode, 0);
    assert.equal(n.lines[0], 'BARMANTS OK - Ready to serve backups for 1 server * IGNORING: old');
  });

  test('no server configured, and UNKNOWN', () => {
    assert.deepEqual(renderNagios([]).lines, ['BARMANTS OK - No server configured']);
    assert.deepEqual(nagiosUnknown('cannot read configuration file /x:\n no such file'), {
      state: 'UNKNOWN', exitCode: 3, lines: ['BARMANTS UNKNOWN - cannot read configuration file /x: no such file'],
    });
  });
});
