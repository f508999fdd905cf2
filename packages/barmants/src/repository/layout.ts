// On-disk layout of one server's part of the repository (DESIGN.md §4).
// Every path barmants writes under <home> is computed here, so the shape of the repository
// is declared once and can be read back when the catalog is rebuilt from the files.
import { chmod, mkdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { codecSuffix, type Codec } from './codec.js';

export type LockPurpose = 'backup' | 'receive-wal' | 'cron' | 'recover' | 'delete';

/** The SQLite index of everything in the repository. */
export function catalogPath(home: string): string {
  return join(home, 'catalog.db');
}

/** The directory holding every lock file of this barmants home. */
export function locksDir(home: string): string {
  return join(home, '.locks');
}

/** Creates `dir` and its missing parents with mode 0700, and tightens `dir` if it was looser. */
export async function ensureDir(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const st = await stat(dir);
  if ((st.mode & 0o777) !== 0o700) await chmod(dir, 0o700);
}

export class ServerLayout {
  readonly home: string;
  readonly server: string;
  /** `<home>/<server>`, or the server's `backup_directory` when configured. */
  readonly dir: string;

  constructor(home: string, server: string, backupDirectory?: string) {
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(server)) {
      // The name becomes a directory and part of lock file names: keep it a single safe component.
      throw new Error(`invalid server name "${server}"`);
    }
    this.home = home;
    this.server = server;
    this.dir = backupDirectory ?? join(home, server);
  }

  get identityFile(): string { return join(this.dir, 'identity.json'); }
  get baseDir(): string { return join(this.dir, 'base'); }
  get walsDir(): string { return join(this.dir, 'wals'); }
  get streamingDir(): string { return join(this.dir, 'streaming'); }
  get errorsDir(): string { return join(this.dir, 'errors'); }

  backupDir(id: string): string { return join(this.baseDir, checkComponent(id)); }
  backupDataDir(id: string): string { return join(this.backupDir(id), 'data'); }
  backupTablespaceDir(id: string, oid: number | string): string {
    return join(this.backupDir(id), 'tablespaces', checkComponent(String(oid)));
  }
  backupInfoFile(id: string): string { return join(this.backupDir(id), 'backup.info'); }
  backupManifestFile(id: string): string { return join(this.backupDir(id), 'backup_manifest'); }

  /** The hash directory of a segment (`wals/<timeline+log>/`), or `wals/` for `.history` files. */
  walDirFor(name: string): string {
    checkComponent(name);
    if (name.endsWith('.history')) return this.walsDir;
    if (name.length < 16) throw new Error(`invalid WAL file name "${name}"`);
    return join(this.walsDir, name.slice(0, 16));
  }

  walFilePath(name: string, codec: Codec): string {
    // History files are tiny and read by timeline, not by range: never compressed, kept flat.
    if (name.endsWith('.history')) return join(this.walsDir, name);
    return join(this.walDirFor(name), name + codecSuffix(codec));
  }

  partialPath(segName: string): string {
    return join(this.streamingDir, checkComponent(segName) + '.partial');
  }

  lockFile(purpose: LockPurpose): string {
    return join(locksDir(this.home), `${this.server}-${purpose}.lock`);
  }

  /** Creates the server's directories (0700), repairing modes left looser by hand. */
  async ensure(): Promise<void> {
    await ensureDir(this.home);
    for (const d of [this.dir, this.baseDir, this.walsDir, this.streamingDir, this.errorsDir, locksDir(this.home)]) {
      await ensureDir(d);
    }
  }
}

function checkComponent(name: string): string {
  if (name === '' || name === '.' || name === '..' || name.includes('/') || name.includes('\0')) {
    throw new Error(`invalid path component "${name}"`);
  }
  return name;
}
