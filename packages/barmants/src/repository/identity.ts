// The identity of the PostgreSQL cluster a server directory belongs to (identity.json).
// Mixing WAL or backups of two clusters in one directory would make every restore a lie, so the
// first contact records the system identifier and every later one must match it.
import { readFile } from 'node:fs/promises';
import { BarmantsError } from '../errors/index.js';
import { writeFileDurable } from './durable.js';
import { ensureDir, type ServerLayout } from './layout.js';

export interface ClusterIdentity {
  /** pg_control system identifier, as a decimal string (it does not fit a double) */
  systemId: string;
  /** server_version_num, e.g. 170002 */
  pgVersion: number;
  walSegmentSize: number;
}

export interface IdentityRecord extends ClusterIdentity {
  createdAt: string;
  updatedAt: string;
}

export interface IdentityCheck {
  identity: IdentityRecord;
  created: boolean;
  /** the previous server_version_num when the cluster was upgraded since the last check */
  upgradedFrom?: number;
}

export async function readIdentity(layout: ServerLayout): Promise<IdentityRecord | null> {
  let text: string;
  try {
    text = await readFile(layout.identityFile, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new BarmantsError('io', `cannot read ${layout.identityFile}: ${(err as Error).message}`, { cause: err });
  }
  try {
    const r = JSON.parse(text) as IdentityRecord;
    if (typeof r.systemId !== 'string' || typeof r.pgVersion !== 'number' || typeof r.walSegmentSize !== 'number') {
      throw new Error('missing fields');
    }
    return r;
  } catch (err) {
    throw new BarmantsError('integrity', `identity file ${layout.identityFile} is unreadable`, {
      cause: err,
      hint: 'restore it from the values shown by `barmants show-servers`, or move the server directory away',
    });
  }
}

export async function checkIdentity(
  layout: ServerLayout,
  observed: ClusterIdentity,
  opts: { log?: (msg: string) => void } = {},
): Promise<IdentityCheck> {
  const now = new Date().toISOString();
  const known = await readIdentity(layout);
  if (!known) {
    await ensureDir(layout.dir);
    const identity: IdentityRecord = { ...observed, createdAt: now, updatedAt: now };
    try {
      await writeFileDurable(layout.identityFile, JSON.stringify(identity, null, 2) + '\n');
    } catch (err) {
      // The receiver and a backup often make first contact together and race on identity.json.tmp:
      // the loser's rename fails. If the winner recorded an identity, check against it instead.
      if ((await readIdentity(layout).catch(() => null)) !== null) return checkIdentity(layout, observed, opts);
      throw err;
    }
    opts.log?.(`recorded identity of server ${layout.server}: system identifier ${observed.systemId}, version ${observed.pgVersion}`);
    return { identity, created: true };
  }
  if (known.systemId !== observed.systemId) {
    throw new BarmantsError(
      'integrity',
      `server ${layout.server} now has system identifier ${observed.systemId}, but ${layout.dir} holds backups of system ${known.systemId}`,
      {
        hint: `the cluster was re-initialised (initdb, pg_upgrade, restore elsewhere) or conninfo points to another cluster; ` +
          `move ${layout.dir} away or configure a new server section for the new cluster`,
      },
    );
  }
  if (known.walSegmentSize !== observed.walSegmentSize) {
    throw new BarmantsError(
      'integrity',
      `server ${layout.server} reports a WAL segment size of ${observed.walSegmentSize} bytes, but ${layout.dir} holds segments of ${known.walSegmentSize} bytes`,
      { hint: `move ${layout.dir} away or configure a new server section for this cluster` },
    );
  }
  if (observed.pgVersion < known.pgVersion) {
    throw new BarmantsError(
      'integrity',
      `server ${layout.server} reports PostgreSQL ${observed.pgVersion}, older than the ${known.pgVersion} recorded for system ${known.systemId}`,
      { hint: 'check that conninfo points to the right cluster' },
    );
  }
  if (observed.pgVersion > known.pgVersion) {
    const identity: IdentityRecord = { ...known, pgVersion: observed.pgVersion, updatedAt: now };
    await writeFileDurable(layout.identityFile, JSON.stringify(identity, null, 2) + '\n');
    opts.log?.(`server ${layout.server} was upgraded from PostgreSQL ${known.pgVersion} to ${observed.pgVersion}`);
    return { identity, created: false, upgradedFrom: known.pgVersion };
  }
  return { identity: known, created: false };
}

/** What checkCatalogIdentity reads from the catalog (kept narrow: the repository does not depend on it). */
export interface CatalogServerRecords {
  getServer(name: string): { systemId: string | null } | null;
  listBackups(server: string): unknown[];
  countWalSegments(server: string): number;
}

/**
 * identity.json guards a server directory; this guards the catalog. When the directory was
 * removed by hand, the catalog still lists the old cluster's backups and WAL: a backup or receiver
 * of another cluster would add rows beside them (a backup of the new cluster then waited forever
 * for WAL the catalog already "had"). Checked before anything is written.
 */
export function checkCatalogIdentity(catalog: CatalogServerRecords, server: string, systemId: string, dir: string): void {
  const known = catalog.getServer(server)?.systemId ?? null;
  if (known === null || known === systemId) return;
  const backups = catalog.listBackups(server).length;
  const segments = catalog.countWalSegments(server);
  if (backups === 0 && segments === 0) return;
  throw new BarmantsError(
    'integrity',
    `server ${server} now has system identifier ${systemId}, but the catalog lists ${backups} backup(s) and ${segments} WAL segment(s) of system ${known}`,
    {
      hint: `if ${dir} was removed on purpose, run \`barmants rebuild-catalog ${server}\` so that the catalog forgets files that are gone; ` +
        `if conninfo points to the wrong cluster, fix it; to keep both, configure a new server section for the new cluster`,
    },
  );
}
