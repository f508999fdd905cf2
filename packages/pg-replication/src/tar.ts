/*
 * A push parser for the tar archives BASE_BACKUP sends. It works on the bytes where they are:
 * headers are read from the CopyData buffer (or from a 512-byte carry when one straddles two
 * messages) and member data is handed on as views of the caller's buffer, so nothing is copied.
 * The views are valid only during the call: pg reuses its receive buffer (PROTOCOL.md pitfall 1).
 *
 * PostgreSQL writes ustar headers itself (src/port/tar.c): names up to 99 bytes, octal numbers
 * or base-256 for sizes of 8 GiB and more, types '0' file, '5' directory, '2' symlink. pax ('x')
 * and GNU long-name ('L', 'K') records are understood too, so any ustar producer can feed it.
 */

const BLOCK = 512;

export type TarMemberType = 'file' | 'directory' | 'symlink' | 'other';

export interface TarHeader {
  /** as stored, prefix joined; callers normalise */
  name: string;
  type: TarMemberType;
  /** the raw typeflag character */
  typeflag: string;
  size: number;
  mode: number;
  mtime: Date | null;
  linkname: string | null;
}

export class TarFormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TarFormatError';
  }
}

export interface TarEvents {
  /** a member starts; data for it follows (files only) */
  header(h: TarHeader): void;
  /** a piece of the current member's data: a view valid only during the call */
  data(chunk: Buffer): void;
  /** the current member's last byte was delivered (called for every member, even empty) */
  end(): void;
}

type State = 'header' | 'data' | 'padding' | 'meta' | 'done';

/**
 * Parses one archive pushed in arbitrary pieces. `push` consumes bytes until the events ask it to
 * stop (`blocked()` returns true after an event), and returns how many bytes it consumed; the
 * caller keeps the rest and pushes it again later.
 */
export class TarParser {
  private state: State = 'header';
  private readonly carry = Buffer.alloc(BLOCK);
  private carried = 0;
  private remaining = 0;
  private padding = 0;
  private zeroBlocks = 0;
  private meta: Buffer[] = [];
  private metaKind = '';
  private overrides: { path?: string; linkpath?: string; size?: number } = {};
  private member: TarHeader | null = null;

  constructor(private readonly events: TarEvents, private readonly blocked: () => boolean = () => false) {}

  /** true once the end-of-archive blocks were seen */
  get finished(): boolean {
    return this.state === 'done';
  }

  /** true between members (a truncated archive ends elsewhere) */
  get atBoundary(): boolean {
    return this.state === 'header' && this.carried === 0;
  }

  /** Consumes from `buf`, stopping early when an event blocks. Returns the bytes consumed. */
  push(buf: Buffer): number {
    let off = 0;
    while (off < buf.length && !this.blocked()) {
      switch (this.state) {
        case 'done':
          // Trailing zero padding after the end-of-archive marker (a record's remainder).
          return buf.length;
        case 'header': {
          let block: Buffer;
          if (this.carried === 0 && buf.length - off >= BLOCK) {
            block = buf.subarray(off, off + BLOCK);
            off += BLOCK;
          } else {
            const n = Math.min(BLOCK - this.carried, buf.length - off);
            buf.copy(this.carry, this.carried, off, off + n);
            this.carried += n;
            off += n;
            if (this.carried < BLOCK) return off;
            this.carried = 0;
            block = this.carry;
          }
          this.onHeaderBlock(block);
          break;
        }
        case 'data': {
          const n = Math.min(this.remaining, buf.length - off);
          const view = buf.subarray(off, off + n);
          off += n;
          this.remaining -= n;
          this.events.data(view);
          if (this.remaining === 0) this.endMember();
          break;
        }
        case 'meta': {
          const n = Math.min(this.remaining, buf.length - off);
          this.meta.push(Buffer.from(buf.subarray(off, off + n)));
          off += n;
          this.remaining -= n;
          if (this.remaining === 0) this.endMeta();
          break;
        }
        case 'padding': {
          const n = Math.min(this.padding, buf.length - off);
          off += n;
          this.padding -= n;
          if (this.padding === 0) this.state = 'header';
          break;
        }
      }
    }
    return off;
  }

  private onHeaderBlock(block: Buffer): void {
    if (isZero(block)) {
      if (++this.zeroBlocks === 2) this.state = 'done';
      return;
    }
    if (this.zeroBlocks) throw new TarFormatError('a single zero block inside the archive');
    verifyChecksum(block);
    const typeflag = String.fromCharCode(block[156]!);
    let size = readNumber(block, 124, 12, 'size');
    if (typeflag === 'x' || typeflag === 'L' || typeflag === 'K') {
      this.metaKind = typeflag;
      this.meta = [];
      this.remaining = size;
      this.state = size > 0 ? 'meta' : 'header';
      this.padding = pad(size);
      if (size === 0) this.endMeta();
      return;
    }
    if (typeflag === 'g') {
      // Global pax header: nothing of it matters here.
      this.remaining = 0;
      this.padding = pad(size);
      this.state = this.padding ? 'padding' : 'header';
      return;
    }
    let name = readString(block, 0, 100);
    if (block.toString('latin1', 257, 262) === 'ustar') {
      const prefix = readString(block, 345, 155);
      if (prefix) name = `${prefix}/${name}`;
    }
    let linkname: string | null = readString(block, 157, 100) || null;
    const o = this.overrides;
    this.overrides = {};
    if (o.path !== undefined) name = o.path;
    if (o.linkpath !== undefined) linkname = o.linkpath;
    if (o.size !== undefined) size = o.size;
    const type: TarMemberType =
      typeflag === '0' || typeflag === '\0' || typeflag === '7' ? 'file' : typeflag === '5' ? 'directory' : typeflag === '2' ? 'symlink' : 'other';
    if (type !== 'file' && type !== 'other') size = 0;
    const mtime = readNumber(block, 136, 12, 'mtime');
    this.member = { name, type, typeflag, size, mode: readNumber(block, 100, 8, 'mode'), mtime: new Date(mtime * 1000), linkname };
    this.events.header(this.member);
    this.remaining = size;
    this.padding = pad(size);
    if (size === 0) this.endMember();
    else this.state = 'data';
  }

  private endMember(): void {
    this.member = null;
    this.state = this.padding ? 'padding' : 'header';
    this.events.end();
  }

  private endMeta(): void {
    const body = Buffer.concat(this.meta);
    this.meta = [];
    this.state = this.padding ? 'padding' : 'header';
    if (this.metaKind === 'L') this.overrides.path = cString(body);
    else if (this.metaKind === 'K') this.overrides.linkpath = cString(body);
    else Object.assign(this.overrides, parsePax(body));
  }
}

function pad(size: number): number {
  return (BLOCK - (size % BLOCK)) % BLOCK;
}

function isZero(b: Buffer): boolean {
  for (let i = 0; i < BLOCK; i += 8) if (b.readBigUInt64LE(i) !== 0n) return false;
  return true;
}

function cString(b: Buffer): string {
  const z = b.indexOf(0);
  return b.toString('utf8', 0, z < 0 ? b.length : z);
}

function readString(b: Buffer, off: number, len: number): string {
  return cString(b.subarray(off, off + len));
}

/** Octal ASCII (space or NUL terminated), or base-256 when the first byte has its high bit set. */
function readNumber(b: Buffer, off: number, len: number, what: string): number {
  if (b[off]! & 0x80) {
    let v = BigInt(b[off]! & 0x7f);
    for (let i = 1; i < len; i++) v = (v << 8n) | BigInt(b[off + i]!);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new TarFormatError(`tar header ${what} too large`);
    return Number(v);
  }
  const s = b.toString('latin1', off, off + len).replace(/[\0 ]+$/, '').trim();
  if (s === '') return 0;
  if (!/^[0-7]+$/.test(s)) throw new TarFormatError(`tar header ${what} is not an octal number: ${JSON.stringify(s)}`);
  return parseInt(s, 8);
}

function verifyChecksum(block: Buffer): void {
  const stored = readNumber(block, 148, 8, 'checksum');
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : block[i]!;
  if (sum !== stored) throw new TarFormatError(`tar header checksum mismatch (stored ${stored}, computed ${sum}): the archive is corrupt or not a tar`);
}

/** pax records: "<len> <key>=<value>\n" */
function parsePax(body: Buffer): { path?: string; linkpath?: string; size?: number } {
  const out: { path?: string; linkpath?: string; size?: number } = {};
  let off = 0;
  while (off < body.length) {
    const sp = body.indexOf(0x20, off);
    if (sp < 0) break;
    const len = Number(body.toString('latin1', off, sp));
    if (!Number.isInteger(len) || len <= 0) throw new TarFormatError('malformed pax header record');
    const rec = body.toString('utf8', sp + 1, off + len - 1);
    const eq = rec.indexOf('=');
    const key = rec.slice(0, eq);
    const value = rec.slice(eq + 1);
    if (key === 'path') out.path = value;
    else if (key === 'linkpath') out.linkpath = value;
    else if (key === 'size') out.size = Number(value);
    off += len;
  }
  return out;
}
