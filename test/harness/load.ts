// Write load for integration tests: a pgbench-like insert workload that produces WAL on demand,
// either a fixed amount (generateLoad) or continuously until stopped (startBackgroundLoad).
// Tables are plain heap tables with a bigserial key, so tests can count and compare rows.

import pg from 'pg';
import type { Cluster } from './cluster.js';

const DEFAULT_TABLE = 'barmants_load';

function ident(name: string): string {
  if (!/^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$/.test(name)) throw new Error(`bad table name ${JSON.stringify(name)}`);
  return name;
}

async function connect(cluster: Cluster): Promise<pg.Client> {
  const client = new pg.Client({ ...cluster.sqlConfig(), connectionTimeoutMillis: 30_000 });
  client.on('error', () => {}); // surfaced through the pending query instead
  await client.connect();
  return client;
}

async function ensureTable(client: pg.Client, table: string): Promise<void> {
  await client.query(
    `CREATE TABLE IF NOT EXISTS ${table} (id bigserial PRIMARY KEY, batch int NOT NULL, payload text NOT NULL, created timestamptz NOT NULL DEFAULT now())`,
  );
}

// Per-row payload from md5 so rows differ (WAL is not all one repeated byte); repeated within a row.
const INSERT = (table: string) =>
  `INSERT INTO ${table} (batch, payload)
   SELECT $1, left(repeat(md5(random()::text || g::text), ($2::int + 31) / 32), $2::int)
   FROM generate_series(1, $3::int) AS g`;

/** The WAL segment that pg_switch_wal() closed. */
export async function switchWal(cluster: Cluster): Promise<string> {
  const rows = await cluster.sql<{ f: string }>('SELECT pg_walfile_name(pg_switch_wal()) AS f');
  return rows[0]!.f;
}

/**
 * pgbench-like load: creates the table if missing, inserts `rows` rows in `batches` transactions,
 * calling pg_switch_wal() `switches` times spread over the run. Returns the number of rows inserted.
 */
export async function generateLoad(
  cluster: Cluster,
  opts: { table?: string; rows: number; batches?: number; switches?: number; payloadBytes?: number },
): Promise<number> {
  const table = ident(opts.table ?? DEFAULT_TABLE);
  const batches = Math.max(1, Math.min(opts.batches ?? 1, Math.max(1, opts.rows)));
  const switches = Math.max(0, opts.switches ?? 0);
  const payload = Math.max(0, opts.payloadBytes ?? 100);
  const client = await connect(cluster);
  let inserted = 0;
  try {
    await ensureTable(client, table);
    const sql = INSERT(table);
    for (let b = 0; b < batches; b++) {
      const n = Math.floor((opts.rows * (b + 1)) / batches) - Math.floor((opts.rows * b) / batches);
      if (n > 0) {
        const r = await client.query(sql, [b, payload, n]);
        inserted += r.rowCount ?? 0;
      }
      // Spread the switches: after batch b, the run has done floor(switches*(b+1)/batches) of them.
      const due = Math.floor((switches * (b + 1)) / batches) - Math.floor((switches * b) / batches);
      for (let s = 0; s < due; s++) {
        if (s > 0) await client.query(sql, [b, payload, 1]).then((r) => (inserted += r.rowCount ?? 0));
        await client.query('SELECT pg_switch_wal()');
      }
    }
  } finally {
    await client.end().catch(() => {});
  }
  return inserted;
}

/**
 * Runs load continuously until stop() is called; stop() resolves with the number of committed rows
 * (rejects with the load's error, carrying `.committed`, if the load failed, e.g. the server died).
 */
export function startBackgroundLoad(
  cluster: Cluster,
  opts: { table?: string; rowsPerTx?: number; switchEveryMs?: number } = {},
): { stop(): Promise<number> } {
  const table = ident(opts.table ?? DEFAULT_TABLE);
  const rowsPerTx = Math.max(1, opts.rowsPerTx ?? 10);
  let stopping = false;
  let committed = 0;
  const loop = (async () => {
    const client = await connect(cluster);
    try {
      await ensureTable(client, table);
      const sql = INSERT(table);
      let lastSwitch = Date.now();
      let tx = 0;
      while (!stopping) {
        const r = await client.query(sql, [tx++, 100, rowsPerTx]); // autocommit: one transaction
        committed += r.rowCount ?? 0;
        if (opts.switchEveryMs !== undefined && Date.now() - lastSwitch >= opts.switchEveryMs) {
          await client.query('SELECT pg_switch_wal()');
          lastSwitch = Date.now();
        }
        // Let timers and other I/O in this process run between transactions.
        await new Promise((r) => setImmediate(r));
      }
    } finally {
      await client.end().catch(() => {});
    }
  })();
  const outcome = loop.then(
    () => ({ error: undefined as unknown }),
    (error: unknown) => ({ error }),
  );
  return {
    async stop() {
      stopping = true;
      const { error } = await outcome;
      if (error) {
        if (error instanceof Error) Object.assign(error, { committed });
        throw error;
      }
      return committed;
    },
  };
}
