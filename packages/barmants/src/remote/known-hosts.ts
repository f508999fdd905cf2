/*
 * Host key verification against OpenSSH known_hosts files: plain and hashed (`|1|salt|hmac`,
 * HMAC-SHA1 of the host name) entries, `[host]:port` for non-22 ports, patterns with * and ?,
 * negations, @revoked; @cert-authority lines are skipped (certificates are not supported).
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';

export type HostKeyVerdict =
  | { status: 'match'; file: string; line: number }
  | { status: 'mismatch'; file: string; line: number; knownType: string }
  | { status: 'revoked'; file: string; line: number }
  | { status: 'unknown' };

/** OpenSSH's `SHA256:...` fingerprint of a public key blob. */
export function fingerprint(keyBlob: Buffer): string {
  return `SHA256:${createHash('sha256').update(keyBlob).digest('base64').replace(/=+$/, '')}`;
}

/** The algorithm name a key blob starts with (`ssh-ed25519`, `ecdsa-sha2-nistp256`, ...). */
export function keyType(keyBlob: Buffer): string {
  const len = keyBlob.readUInt32BE(0);
  return keyBlob.subarray(4, 4 + len).toString('latin1');
}

/** The name known_hosts uses: `host`, or `[host]:port` when the port is not 22. */
export function knownHostsName(host: string, port: number): string {
  return port === 22 ? host : `[${host}]:${port}`;
}

function globMatch(pattern: string, name: string): boolean {
  const re = new RegExp(`^${pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.')}$`, 'i');
  return re.test(name);
}

function hostFieldMatches(field: string, name: string): boolean {
  if (field.startsWith('|1|')) {
    const [, , salt, hash] = field.split('|');
    if (!salt || !hash) return false;
    const mac = createHmac('sha1', Buffer.from(salt, 'base64')).update(name).digest();
    const want = Buffer.from(hash, 'base64');
    return want.length === mac.length && timingSafeEqual(mac, want);
  }
  let matched = false;
  for (const pat of field.split(',')) {
    if (pat.startsWith('!')) {
      if (globMatch(pat.slice(1), name)) return false;
    } else if (globMatch(pat, name)) {
      matched = true;
    }
  }
  return matched;
}

/** Looks the host's key up in the given files (name → content), first file first. */
export function verifyHostKey(files: { file: string; text: string }[], host: string, port: number, keyBlob: Buffer): HostKeyVerdict {
  const name = knownHostsName(host, port);
  const type = keyType(keyBlob);
  const b64 = keyBlob.toString('base64');
  let mismatch: HostKeyVerdict | null = null;
  for (const { file, text } of files) {
    const lines = text.split('\n');
    for (let i = 0; i < lines.length; i++) {
      const line = lines[i]!.trim();
      if (line === '' || line.startsWith('#')) continue;
      const parts = line.split(/\s+/);
      let marker: string | null = null;
      if (parts[0]!.startsWith('@')) marker = parts.shift()!;
      if (parts.length < 3) continue;
      const [hosts, ktype, kdata] = parts as [string, string, string];
      if (marker === '@cert-authority') continue;
      if (!hostFieldMatches(hosts, name)) continue;
      if (marker === '@revoked') {
        if (kdata === b64) return { status: 'revoked', file, line: i + 1 };
        continue;
      }
      if (ktype === type && kdata === b64) return { status: 'match', file, line: i + 1 };
      // Another key type for the same host is not a mismatch (the server may offer several kinds).
      if (ktype === type) mismatch ??= { status: 'mismatch', file, line: i + 1, knownType: ktype };
    }
  }
  return mismatch ?? { status: 'unknown' };
}

/** Key types known for this host, so the client asks the server for one it can verify. */
export function knownKeyTypes(files: { file: string; text: string }[], host: string, port: number): string[] {
  const name = knownHostsName(host, port);
  const types: string[] = [];
  for (const { text } of files) {
    for (const raw of text.split('\n')) {
      const parts = raw.trim().split(/\s+/);
      if (parts[0] === undefined || parts[0] === '' || parts[0].startsWith('#') || parts[0].startsWith('@') || parts.length < 3) continue;
      if (hostFieldMatches(parts[0], name) && !types.includes(parts[1]!)) types.push(parts[1]!);
    }
  }
  return types;
}
