// The in-place tar parser of BASE_BACKUP archives, fed archives written by an independent
// producer (tar-stream) in every way the socket can cut them, with and without blocking.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import tar from 'tar-stream';
import { TarFormatError, TarParser, type TarHeader } from '../../../packages/pg-replication/src/tar.js';

interface Member {
  name: string;
  type?: 'file' | 'directory' | 'symlink';
  body?: Buffer;
  linkname?: string;
  mode?: number;
  pax?: Record<string, string>;
}

async function pack(members: Member[]): Promise<Buffer> {
  const p = tar.pack();
  const parts: Buffer[] = [];
  p.on('data', (b: unknown) => void parts.push(b as Buffer));
  const done = new Promise<void>((r) => p.on('end', () => r()));
  for (const m of members) {
    await new Promise<void>((resolve, reject) =>
      p.entry(
        { name: m.name, type: m.type ?? 'file', mode: m.mode ?? 0o600, mtime: new Date(1_700_000_000_000), ...(m.linkname ? { linkname: m.linkname } : {}), ...(m.pax ? { pax: m.pax } : {}) },
        m.type === 'file' || m.type === undefined ? (m.body ?? Buffer.alloc(0)) : Buffer.alloc(0),
        (err) => (err ? reject(err) : resolve()),
      ),
    );
  }
  p.finalize();
  await done;
  return Buffer.concat(parts);
}

interface Parsed {
  header: TarHeader;
  body: Buffer;
  ends: number;
}

/** Feeds `archive` cut at the given sizes; `block` makes some events block (resumed right away). */
function parse(archive: Buffer, cut: (i: number) => number, block?: (ev: string) => boolean): { members: Parsed[]; parser: TarParser } {
  const members: Parsed[] = [];
  let blocked = false;
  const parts: Buffer[] = [];
  const parser = new TarParser(
    {
      header(h) {
        members.push({ header: h, body: Buffer.alloc(0), ends: 0 });
        parts.length = 0;
        if (block?.('header')) blocked = true;
      },
      data(chunk) {
        // A view valid during the call only: copy it, then scribble over the caller's bytes.
        parts.push(Buffer.from(chunk));
        if (block?.('data')) blocked = true;
      },
      end() {
        const m = members[members.length - 1]!;
        m.body = Buffer.concat(parts);
        m.ends++;
        if (block?.('end')) blocked = true;
      },
    },
    () => blocked,
  );
  let off = 0;
  let i = 0;
  while (off < archive.length) {
    const n = Math.min(archive.length - off, Math.max(1, cut(i++)));
    let piece = Buffer.from(archive.subarray(off, off + n));
    off += n;
    for (;;) {
      const used = parser.push(piece);
      piece.fill(0xee, 0, used); // the parser must not have kept views of consumed bytes
      if (used === piece.length) break;
      assert.ok(blocked, 'push stops early only when blocked');
      blocked = false;
      piece = piece.subarray(used);
    }
  }
  return { members, parser };
}

const MEMBERS: Member[] = [
  { name: 'PG_VERSION', body: Buffer.from('17\n') },
  { name: 'base', type: 'directory', mode: 0o700 },
  { name: 'base/1', type: 'directory', mode: 0o700 },
  { name: 'base/1/1259', body: randomBytes(8192 * 3) },
  { name: 'empty', body: Buffer.alloc(0) },
  { name: 'odd', body: randomBytes(1000) },
  { name: 'pg_tblspc/16384', type: 'symlink', linkname: '/srv/ts1' },
  { name: 'big', body: randomBytes(3 * 1024 * 1024 + 17) },
  { name: `${'d'.repeat(80)}/${'f'.repeat(60)}`, body: Buffer.from('long name via ustar prefix or pax') },
];

describe('TarParser', () => {
  test('every member, byte for byte, whatever the cuts (1 byte, 7, 511, 513, 64 KiB, random)', async () => {
    const archive = await pack(MEMBERS);
    const cuts: Array<(i: number) => number> = [() => 1 << 30, () => 7, () => 511, () => 513, () => 65536, () => 1 + Math.floor(Math.random() * 20000)];
    for (const cut of cuts) {
      // One byte at a time over 3 MiB is slow; keep the 1-byte cut to the small members.
      const a = cut(0) === 1 ? await pack(MEMBERS.filter((m) => m.name !== 'big')) : archive;
      const { members, parser } = parse(a, cut);
      const expected = cut(0) === 1 ? MEMBERS.filter((m) => m.name !== 'big') : MEMBERS;
      assert.equal(members.length, expected.length);
      for (let i = 0; i < expected.length; i++) {
        const e = expected[i]!;
        const m = members[i]!;
        assert.equal(m.header.name.replace(/\/$/, ''), e.name);
        assert.equal(m.header.type, e.type ?? 'file');
        assert.equal(m.ends, 1, `${e.name}: one end event`);
        if ((e.type ?? 'file') === 'file') {
          assert.equal(m.header.size, e.body!.length);
          assert.ok(m.body.equals(e.body!), `${e.name}: content`);
        }
        if (e.type === 'symlink') assert.equal(m.header.linkname, e.linkname);
        if (e.mode) assert.equal(m.header.mode, e.mode);
        assert.equal(m.header.mtime?.getTime(), 1_700_000_000_000);
      }
      assert.ok(parser.finished, 'the closing zero blocks were seen');
    }
  });

  test('blocking after any event resumes exactly where it stopped', async () => {
    const archive = await pack(MEMBERS);
    for (const ev of ['header', 'data', 'end']) {
      const { members } = parse(archive, () => 100_000, (e) => e === ev);
      assert.equal(members.length, MEMBERS.length, `blocking on ${ev}`);
      assert.ok(members.find((m) => m.header.name === 'big')!.body.equals(MEMBERS.find((m) => m.name === 'big')!.body!));
    }
  });

  test('an archive without the closing blocks ends at a member boundary (as the walsender sends it)', async () => {
    const full = await pack(MEMBERS.slice(0, 4));
    const { parser, members } = parse(full.subarray(0, full.length - 1024), () => 4096);
    assert.equal(members.length, 4);
    assert.equal(parser.finished, false);
    assert.equal(parser.atBoundary, true);
    const cut = parse(full.subarray(0, 512 + 100), () => 4096).parser;
    assert.equal(cut.atBoundary, false, 'truncated inside a member is not a boundary');
  });

  test('pax path and size records override the ustar header', async () => {
    const name = `pax/${'n'.repeat(150)}`;
    const archive = await pack([{ name, body: Buffer.from('x'), pax: { path: name } }]);
    const { members } = parse(archive, () => 300);
    assert.equal(members[0]!.header.name, name);
    assert.equal(members[0]!.body.toString(), 'x');
  });

  test('base-256 sizes (8 GiB and more) are read', () => {
    const h = Buffer.alloc(512);
    h.write('huge', 0);
    h.write('0000600\0', 100);
    h.write('0000000\0', 108);
    h.write('0000000\0', 116);
    h[124] = 0x80;
    h.writeUIntBE(9 * 1024 ** 3, 6, 6); // 12-byte field at 124: value in the low bytes
    h.copy(h, 130, 6, 12);
    h.fill(0, 6, 12);
    h.write('14526517200\0', 136);
    h[156] = '0'.charCodeAt(0);
    h.write('ustar\x0000', 257, 'latin1');
    h.fill(0x20, 148, 156);
    let sum = 0;
    for (const b of h) sum += b;
    h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
    let got: TarHeader | null = null;
    const p = new TarParser({ header: (x) => (got = x), data: () => undefined, end: () => undefined });
    p.push(h);
    assert.equal((got as TarHeader | null)?.size, 9 * 1024 ** 3);
  });

  test('a corrupt header is refused with a clear error', async () => {
    const archive = Buffer.from(await pack(MEMBERS.slice(0, 1)));
    archive[10] ^= 0xff; // inside the name: the header checksum no longer matches
    assert.throws(() => parse(archive, () => 512), (err: unknown) => err instanceof TarFormatError && /checksum mismatch/.test(err.message));
  });
});
