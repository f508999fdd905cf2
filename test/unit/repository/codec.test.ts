// Round trips of every codec, and interop with the stock gzip/lz4/zstd command-line tools.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes, createHash } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { Readable, type Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  CODECS, codecFromFileName, codecSuffix, compressWhole, createCompressor, decompressWhole, createDecompressor, stripCodecSuffix, zstdDecompressSync, type Codec,
} from '../../../packages/barmants/src/repository/index.js';

async function run(t: Transform, input: Buffer, chunk = 64 * 1024): Promise<Buffer> {
  const out: Buffer[] = [];
  const pieces: Buffer[] = [];
  for (let i = 0; i < input.length; i += chunk) pieces.push(input.subarray(i, i + chunk));
  await pipeline(Readable.from(pieces), t, async (src: AsyncIterable<Buffer>) => {
    for await (const c of src) out.push(c);
  });
  return Buffer.concat(out);
}

export function compressibleData(n: number): Buffer {
  const rows: string[] = [];
  let len = 0;
  for (let i = 0; len < n; i++) {
    const r = `${i}|${i % 100000}|${(i * 7919) % 1000}|${'0'.repeat(84)}|${Math.floor(Math.random() * 1e6)}\n`;
    rows.push(r);
    len += r.length;
  }
  return Buffer.from(rows.join('')).subarray(0, n);
}

const samples: Array<[string, Buffer]> = [
  ['empty', Buffer.alloc(0)],
  ['1 byte', Buffer.from([0x42])],
  ['5 MB random', randomBytes(5 * 1024 * 1024)],
  ['5 MB compressible', compressibleData(5 * 1024 * 1024)],
  ['1 MB zeros', Buffer.alloc(1 << 20)],
];

describe('codec names', () => {
  test('suffix and back', () => {
    for (const c of CODECS) {
      assert.equal(codecFromFileName('000000010000000000000001' + codecSuffix(c)), c);
      assert.equal(stripCodecSuffix('000000010000000000000001' + codecSuffix(c)), '000000010000000000000001');
    }
    assert.equal(codecSuffix('zstd'), '.zst');
  });
});

for (const codec of CODECS) {
  describe(`codec ${codec}`, () => {
    for (const [name, data] of samples) {
      test(`round trip ${name}`, async () => {
        const packed = await run(createCompressor(codec), data);
        // Feed the decompressor in awkward chunk sizes to exercise the frame parsers.
        const back = await run(createDecompressor(codec), packed, 1000);
        assert.equal(back.length, data.length);
        assert.ok(back.equals(data));
      });
    }
  });
}

const tools: Record<Exclude<Codec, 'none'>, { cmd: string; c: string[]; d: string[] }> = {
  gzip: { cmd: 'gzip', c: ['-c'], d: ['-dc'] },
  lz4: { cmd: 'lz4', c: ['-c'], d: ['-dc'] },
  zstd: { cmd: 'zstd', c: ['-c', '-q'], d: ['-dc', '-q'] },
};

function have(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
}

describe('interop with CLI tools', () => {
  const data = Buffer.concat([compressibleData(3 * 1024 * 1024), randomBytes(1024 * 1024)]);
  const digest = createHash('sha256').update(data).digest('hex');
  for (const [codec, t] of Object.entries(tools) as Array<[Exclude<Codec, 'none'>, typeof tools.gzip]>) {
    test(`${codec}: ours → ${t.cmd} -d`, { skip: !have(t.cmd) && `${t.cmd} not installed` }, async () => {
      for (const input of [data, Buffer.alloc(0)]) {
        const packed = await run(createCompressor(codec), input);
        const r = spawnSync(t.cmd, t.d, { input: packed, maxBuffer: 1 << 28 });
        assert.equal(r.status, 0, r.stderr.toString());
        assert.ok(r.stdout.equals(input));
      }
    });
    test(`${codec}: ${t.cmd} → ours`, { skip: !have(t.cmd) && `${t.cmd} not installed` }, async () => {
      const variants = codec === 'lz4'
        ? [t.c, [...t.c, '-BD'], [...t.c, '-B4'], [...t.c, '--content-size', '--no-frame-crc'], [...t.c, '-9', '-BD', '-B7']]
        : [t.c];
      for (const args of variants) {
        const r = spawnSync(t.cmd, args, { input: data, maxBuffer: 1 << 28 });
        assert.equal(r.status, 0, r.stderr.toString());
        const back = await run(createDecompressor(codec), r.stdout, 777);
        assert.equal(createHash('sha256').update(back).digest('hex'), digest, `${t.cmd} ${args.join(' ')}`);
      }
    });
  }
  test('lz4: concatenated CLI frames decode', { skip: !have('lz4') && 'lz4 not installed' }, async () => {
    const a = spawnSync('lz4', ['-c'], { input: Buffer.from('hello ') }).stdout;
    const b = spawnSync('lz4', ['-c', '-BD'], { input: Buffer.from('world') }).stdout;
    const back = await run(createDecompressor('lz4'), Buffer.concat([a, b]), 3);
    assert.equal(back.toString(), 'hello world');
  });
  test('lz4: one frame of independent 64 KiB blocks, read by the lz4_flex frame decoder too', async () => {
    const lz4Napi = createRequire(import.meta.url)('lz4-napi') as { decompressFrameSync(b: Buffer): Buffer };
    // 2.5 MiB: full blocks and a partial one; random data makes raw (uncompressed) blocks.
    for (const data of [compressibleData(5 << 19), randomBytes(5 << 19)]) {
      const streamed = await run(createCompressor('lz4'), data);
      const whole = compressWhole('lz4', data);
      for (const packed of [streamed, whole]) {
        assert.deepEqual([...packed.subarray(0, 7)], [0x04, 0x22, 0x4d, 0x18, 0x60, 0x40, 0x82], 'standard header, 64 KiB blocks');
        assert.equal(packed.indexOf(Buffer.from([0x04, 0x22, 0x4d, 0x18]), 4), -1, 'a single frame');
        assert.ok(lz4Napi.decompressFrameSync(packed).equals(data));
        assert.ok(decompressWhole('lz4', packed).equals(data));
      }
    }
  });
  test('lz4: a damaged block is an error or other bytes, never the original silently', () => {
    const data = compressibleData(300000);
    const packed = compressWhole('lz4', data);
    packed[40] ^= 0xff;
    packed[41] ^= 0xff;
    // A flipped literal decodes to other bytes (the SHA-256 of stored files catches those); a
    // damaged offset or length is refused by the decoder.
    try {
      assert.ok(!decompressWhole('lz4', packed).equals(data));
    } catch (e) {
      assert.match((e as Error).message, /lz4/);
    }
    const truncatedBlock = Buffer.concat([packed.subarray(0, 30), Buffer.alloc(4)]);
    assert.throws(() => decompressWhole('lz4', truncatedBlock), /lz4/);
  });
  test('corrupt input is an error, not silent garbage', async () => {
    for (const codec of ['gzip', 'lz4', 'zstd'] as const) {
      const packed = await run(createCompressor(codec), compressibleData(100000));
      const truncated = packed.subarray(0, packed.length - 10);
      await assert.rejects(run(createDecompressor(codec), truncated), `${codec} truncated`);
    }
  });
});

describe('zstdDecompressSync', () => {
  const decode = (stored: Buffer, readSize: number): Buffer => {
    const out: Buffer[] = [];
    let pos = 0;
    zstdDecompressSync(
      (buf) => {
        const n = Math.min(readSize, buf.length, stored.length - pos);
        stored.copy(buf, 0, pos, pos + n);
        pos += n;
        return n;
      },
      (piece) => void out.push(Buffer.from(piece)),
    );
    return Buffer.concat(out);
  };
  const streamed = async (data: Buffer): Promise<Buffer> => {
    const parts: Buffer[] = [];
    await pipeline(Readable.from([data]), createCompressor('zstd'), async (src: AsyncIterable<Buffer>) => {
      for await (const c of src) parts.push(c);
    });
    return Buffer.concat(parts);
  };

  test('one streamed frame ending exactly at a buffer boundary (a 16 MiB WAL segment)', async () => {
    const data = Buffer.alloc(16 << 20);
    for (let i = 0; i < data.length; i += 8192) data.write(`page ${i}`, i);
    const stored = await streamed(data);
    for (const readSize of [1 << 20, 4096, 7]) {
      if (readSize === 7 && stored.length > 200_000) continue;
      assert.ok(decode(stored, readSize).equals(data), `read ${readSize}`);
    }
  });

  test('concatenated 1 MiB frames (a large backup member), last one full', () => {
    const frames = [0, 1, 2].map((i) => Buffer.alloc(1 << 20, i + 1));
    const stored = Buffer.concat(frames.map((f) => compressWhole('zstd', f)));
    assert.ok(decode(stored, 1 << 20).equals(Buffer.concat(frames)));
  });

  test('a truncated stream is refused', () => {
    const stored = compressWhole('zstd', randomBytes(300_000));
    assert.throws(() => decode(stored.subarray(0, stored.length - 10), 65536), /truncated zstd stream/);
  });
});
