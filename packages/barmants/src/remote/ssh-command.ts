/*
 * `--remote-ssh-command "ssh user@host -p 2222"`: Barman passes this string to the ssh binary;
 * barmants reads it into connection settings for ssh2 instead, refusing options it would ignore.
 */
import { BarmantsError } from '../errors/index.js';
import { splitCommandLine } from '../hooks/index.js';

export interface SshTarget {
  user: string | null;
  host: string;
  port: number;
  identityFile: string | null;
  knownHostsFile: string | null;
  connectTimeoutSec: number | null;
}

const SUPPORTED_O = ['Port', 'User', 'IdentityFile', 'UserKnownHostsFile', 'ConnectTimeout', 'BatchMode', 'StrictHostKeyChecking'];

function bad(text: string, why: string): BarmantsError {
  return new BarmantsError('usage', `cannot use --remote-ssh-command "${text}": ${why}`, {
    hint: `barmants connects itself (ssh2); it understands: ssh [-p PORT] [-i KEY] [-l USER] [-o ${SUPPORTED_O.join('|')}=VALUE] [user@]host`,
  });
}

function port(text: string, v: string): number {
  if (!/^\d+$/.test(v) || Number(v) < 1 || Number(v) > 65535) throw bad(text, `invalid port "${v}"`);
  return Number(v);
}

export function parseSshCommand(text: string): SshTarget {
  const words = splitCommandLine(text);
  if (words.length === 0 || !/(^|\/)ssh$/.test(words[0]!)) throw bad(text, 'it must start with ssh');
  const t: SshTarget = { user: null, host: '', port: 22, identityFile: null, knownHostsFile: null, connectTimeoutSec: null };
  let dest: string | null = null;
  for (let i = 1; i < words.length; i++) {
    const w = words[i]!;
    const value = (): string => {
      if (w.length > 2) return w.slice(2); // -p2222
      const v = words[++i];
      if (v === undefined) throw bad(text, `${w} needs a value`);
      return v;
    };
    if (w.startsWith('-p')) t.port = port(text, value());
    else if (w.startsWith('-i')) t.identityFile = value();
    else if (w.startsWith('-l')) t.user = value();
    else if (w.startsWith('-o')) {
      const opt = value();
      const m = /^([A-Za-z]+)\s*[= ]\s*(.*)$/.exec(opt);
      if (m === null) throw bad(text, `invalid -o "${opt}"`);
      const [, k, v] = m as unknown as [string, string, string];
      switch (k.toLowerCase()) {
        case 'port': t.port = port(text, v); break;
        case 'user': t.user = v; break;
        case 'identityfile': t.identityFile = v; break;
        case 'userknownhostsfile': t.knownHostsFile = v; break;
        case 'connecttimeout': t.connectTimeoutSec = Number(v); break;
        case 'batchmode': break; // always true: barmants never prompts
        case 'stricthostkeychecking':
          if (!/^(yes|ask)$/i.test(v)) throw bad(text, `StrictHostKeyChecking=${v}: barmants always checks the host key against known_hosts`);
          break;
        default: throw bad(text, `unsupported option -o ${k}`);
      }
    } else if (/^-[46ACqTtvxXYkaN]+$/.test(w)) {
      // flags that change nothing for a non-interactive channel
    } else if (w.startsWith('-')) {
      throw bad(text, `unsupported option ${w}`);
    } else if (dest === null) {
      dest = w;
    } else {
      throw bad(text, `a remote command ("${words.slice(i).join(' ')}") cannot be given: barmants runs its own`);
    }
  }
  if (dest === null) throw bad(text, 'no host');
  const at = dest.lastIndexOf('@');
  if (at >= 0) {
    t.user ??= dest.slice(0, at);
    dest = dest.slice(at + 1);
  }
  const url = /^ssh:\/\/(?:([^@]+)@)?([^:/]+)(?::(\d+))?$/.exec(words.find((x) => x.startsWith('ssh://')) ?? '');
  if (url !== null) {
    t.user ??= url[1] ?? null;
    dest = url[2]!;
    if (url[3]) t.port = port(text, url[3]);
  }
  if (dest === '' || /[\s/]/.test(dest)) throw bad(text, `invalid host "${dest}"`);
  t.host = dest.replace(/^\[(.*)\]$/, '$1');
  return t;
}
