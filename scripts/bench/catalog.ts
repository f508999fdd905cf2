// Catalog at scale: a catalog holding 1,000,000 WAL segments (one gap) and 1,000 backups, in
// process: how long list-backups, gap detection over the whole archive and recovery planning take.
// The target (DESIGN §8) is under 100 ms each.

import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Catalog, type BackupRecord } from '../../packages/barmants/src/catalog/index.js';
import { planRecovery, type PlanBackup } from '../../packages/barmants/src/recovery/plan.js';
import type { Measurement } from './report.js';
import type { Scratch } from './setup.js';

const SERVER = 'bench';
const TLI = 1;
const SEG_SIZE = 16 * 1024 * 1024;
const SEGS_PER_XLOGID = 0x100000000n / BigInt(SEG_SIZE);
const FIRST_SEGNO = 0x1000n;

function walName(tli: number, segno: bigint): string {
  const hex = (n: bigint | number) => n.toString(16).toUpperCase().padStart(8, '0');
  return hex(tli) + hex(segno / SEGS_PER_XLOGID) + hex(segno % SEGS_PER_XLOGID);
}

function isoAt(ms: number): string {
  return new Date(ms).toISOString().replace('Z', '+00:00');
}

function toPlanBackup(b: BackupRecord): PlanBackup {
  return {
    backupId: b.backupId, name: b.name, status: b.status, beginTime: b.beginTime!, endTime: b.endTime!, beginLsn: b.beginLsn!,
    endLsn: b.endLsn!, beginWal: b.beginWal!, endWal: b.endWal!, timeline: b.timeline!, walSegmentSize: b.walSegmentSize!, pgVersion: b.pgVersion!,
  };
}

function timeIt(iterations: number, fn: () => void): number[] {
  fn(); // warm: prepared statements, page cache
  const out: number[] = [];
  for (let i = 0; i < iterations; i++) {
    const t0 = process.hrtime.bigint();
    fn();
    out.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  return out;
}

export async function benchCatalog(scratch: Scratch, opts: { segments: number; backups: number; iterations: number }, log: (s: string) => void): Promise<Measurement[]> {
  const dir = await scratch.dir('catalog');
  const catalog = Catalog.open(join(dir, 'catalog.db'));
  const out: Measurement[] = [];
  try {
    catalog.upsertServer({ name: SERVER, systemId: '7000000000000000000', pgVersion: 150000, walSegmentSize: SEG_SIZE });
    const n = BigInt(opts.segments);
    const last = FIRST_SEGNO + n; // one position left empty: the gap
    const gapAt = FIRST_SEGNO + n / 3n;
    const t0 = Date.now();
    const archivedAt = isoAt(Date.UTC(2024, 0, 1));
    const checksum = 'a'.repeat(64);
    const BATCH = 50_000n;
    for (let lo = FIRST_SEGNO; lo <= last; lo += BATCH) {
      const hi = lo + BATCH - 1n < last ? lo + BATCH - 1n : last;
      catalog.addWalSegments(
        (function* () {
          for (let s = lo; s <= hi; s++) {
            if (s === gapAt) continue;
            yield { server: SERVER, timeline: TLI, segno: s, name: walName(TLI, s), size: SEG_SIZE, storedSize: SEG_SIZE, compression: null, checksum, archivedAt };
          }
        })(),
      );
    }
    const insertS = (Date.now() - t0) / 1000;
    log(`catalog: ${opts.segments} WAL rows in ${insertS.toFixed(1)} s`);
    out.push({ section: 'catalog', name: `insert ${opts.segments} WAL rows`, unit: 's', values: [insertS], note: 'addWalSegments, 50,000 per transaction' });

    // Backups spread evenly over the archive, one every segments/backups positions.
    const t1 = Date.now();
    const step = n / BigInt(opts.backups);
    const base = Date.UTC(2024, 0, 1);
    catalog.transaction(() => {
      for (let i = 0; i < opts.backups; i++) {
        const begin = FIRST_SEGNO + BigInt(i) * step;
        const end = begin + 1n;
        const beginMs = base + i * 3_600_000;
        const id = new Date(beginMs).toISOString().replace(/[-:]/g, '').slice(0, 15);
        catalog.insertBackup({
          server: SERVER, backupId: id, status: 'DONE', beginTime: isoAt(beginMs), endTime: isoAt(beginMs + 600_000),
          beginLsn: begin * BigInt(SEG_SIZE) + 40n, endLsn: end * BigInt(SEG_SIZE) + 256n, beginWal: walName(TLI, begin), endWal: walName(TLI, end),
          timeline: TLI, pgVersion: 150000, systemId: '7000000000000000000', walSegmentSize: SEG_SIZE, size: 750_000_000, clusterSize: 750_000_000,
          compression: null,
        });
      }
    });
    out.push({ section: 'catalog', name: `insert ${opts.backups} backups`, unit: 's', values: [(Date.now() - t1) / 1000] });

    let listed = 0;
    out.push({
      section: 'catalog',
      name: `list-backups (${opts.backups} backups)`,
      unit: 'ms',
      values: timeIt(opts.iterations, () => (listed = catalog.listBackups(SERVER).length)),
      note: 'catalog.listBackups',
    });
    if (listed !== opts.backups) throw new Error(`listBackups returned ${listed} backups, expected ${opts.backups}`);

    let gaps = 0;
    out.push({
      section: 'catalog',
      name: `gap detection over ${opts.segments} segments`,
      unit: 'ms',
      values: timeIt(opts.iterations, () => (gaps = catalog.missingSegments(SERVER, TLI, FIRST_SEGNO, last).length)),
      note: 'catalog.missingSegments, whole range, one gap',
    });
    if (gaps !== 1) throw new Error(`missingSegments found ${gaps} gaps, expected 1`);

    // planRecovery as `recover` feeds it: backups from the catalog, gaps from missingSegments.
    const plan = (backupRef: string | null) => {
      const backups = catalog.listBackups(SERVER).map(toPlanBackup);
      const lastSeg = catalog.lastWalSegment(SERVER)!;
      return planRecovery({
        backups, backupRef, target: { kind: 'end' }, targetTli: null, histories: new Map(),
        walRanges: (tli, from, to) => catalog.missingSegments(SERVER, tli, from, to),
        lastWal: { tli: lastSeg.timeline, segno: lastSeg.segno, partial: false },
      });
    };
    out.push({
      section: 'catalog',
      name: 'plan recovery of the latest backup',
      unit: 'ms',
      values: timeIt(opts.iterations, () => plan(null)),
      note: 'listBackups + lastWalSegment + planRecovery (missingSegments as walRanges)',
    });
    // The oldest backup after the gap: the plan checks two thirds of the archive for gaps.
    const afterGap = catalog.listBackups(SERVER).find((b) => b.beginWal! > walName(TLI, gapAt))!;
    let spanned = 0n;
    out.push({
      section: 'catalog',
      name: 'plan recovery of the oldest backup after the gap',
      unit: 'ms',
      values: timeIt(opts.iterations, () => {
        const p = plan(afterGap.backupId);
        spanned = p.walSegments.reduce((a, r) => a + r.toSegno - r.fromSegno + 1n, 0n);
      }),
    });
    out[out.length - 1]!.note = `${spanned} segments checked`;
  } finally {
    catalog.close();
    await rm(dir, { recursive: true, force: true });
  }
  return out;
}
