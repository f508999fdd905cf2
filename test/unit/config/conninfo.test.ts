import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatConninfo, maskConninfo, parseConninfo, ConninfoSyntaxError } from '../../../packages/barmants/src/config/index.js';

test('key=value form with spaces, quotes and escapes', () => {
  assert.deepEqual(parseConninfo('host=db port=5433 user=barman dbname=postgres'), { host: 'db', port: '5433', user: 'barman', dbname: 'postgres' });
  assert.deepEqual(parseConninfo("  host = db   application_name='va lue\\'s' "), { host: 'db', application_name: "va lue's" });
  assert.deepEqual(parseConninfo("password='a\\\\b' options=''"), { password: 'a\\b', options: '' });
  assert.deepEqual(parseConninfo('password=a\\ b'), { password: 'a b' });
  assert.deepEqual(parseConninfo('HOST=x'), { host: 'x' });
  assert.deepEqual(parseConninfo(''), {});
});

test('key=value syntax errors', () => {
  assert.throws(() => parseConninfo('host'), ConninfoSyntaxError);
  assert.throws(() => parseConninfo("host='db"), /unterminated/);
  assert.throws(() => parseConninfo('=x'), /empty keyword/);
});

test('URL form: user, password, hosts, ports, db, query, percent-encoding', () => {
  assert.deepEqual(parseConninfo('postgres://bob:s%40cret@db.example:5433/my%20db?sslmode=require&application_name=a+b'), {
    user: 'bob',
    password: 's@cret',
    host: 'db.example',
    port: '5433',
    dbname: 'my db',
    sslmode: 'require',
    application_name: 'a b',
  });
  assert.deepEqual(parseConninfo('postgresql://h1:5432,h2:5433/db'), { host: 'h1,h2', port: '5432,5433', dbname: 'db' });
  assert.deepEqual(parseConninfo('postgresql://[::1]:5432'), { host: '::1', port: '5432' });
  assert.deepEqual(parseConninfo('postgresql://'), {});
  assert.deepEqual(parseConninfo('postgresql:///db?host=/run/postgresql'), { dbname: 'db', host: '/run/postgresql' });
  assert.throws(() => parseConninfo('postgresql://h:port/'), /invalid port/);
  assert.throws(() => parseConninfo('postgresql://h/%zz'), /percent-encoding/);
});

test('maskConninfo hides passwords and keeps the rest as written', () => {
  assert.equal(maskConninfo('host=db password=s3cret user=x'), 'host=db password=******** user=x');
  assert.equal(maskConninfo("host=db  password = 'a b\\'c'"), 'host=db  password = ********');
  assert.equal(maskConninfo('host=db sslpassword=k'), 'host=db sslpassword=********');
  assert.equal(maskConninfo('host=db user=x'), 'host=db user=x');
  assert.equal(maskConninfo('postgres://bob:hunter2@db/x'), 'postgres://bob:********@db/x');
  assert.equal(maskConninfo('postgres://db/x?user=a&password=zz'), 'postgres://db/x?user=a&password=********');
  assert.equal(maskConninfo("host=db password='unterminated"), 'host=db password=********');
});

test('formatConninfo round-trips through parseConninfo', () => {
  const params = { host: 'db', application_name: "it's a b", password: 'x\\y', options: '' };
  assert.deepEqual(parseConninfo(formatConninfo(params)), params);
});
