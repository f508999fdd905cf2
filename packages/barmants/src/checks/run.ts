/*
 * Runs the checks of several servers at once: facts gathered concurrently (each bounded by its
 * own check_timeout), verdicts applied. One server's trouble never delays another's report.
 */
import type { Catalog } from '../catalog/index.js';
import type { ServerConfig } from '../config/index.js';
import { createCompressor, isCodec, type ServerLayout } from '../repository/index.js';
import { gatherFacts } from './gather.js';
import type { ServerCheckReport, ServerFacts } from './types.js';
import { evaluateChecks } from './verdicts.js';

export interface RunChecksOptions {
  servers: ServerConfig[];
  layout: (s: ServerConfig) => ServerLayout;
  catalog: Catalog | null;
  /** --check-timeout: overrides every server's check_timeout */
  timeoutSec?: number;
  now?: () => Date;
}

/** Whether a codec's compressor can be built here (lz4/zstd are native modules). */
export function codecAvailable(codec: string): string | null {
  if (!isCodec(codec)) return `unknown codec '${codec}'`;
  try {
    createCompressor(codec).destroy();
    return null;
  } catch (err) {
    return `cannot load the ${codec} compressor: ${(err as Error).message}`;
  }
}

export async function gatherAll(o: RunChecksOptions): Promise<ServerFacts[]> {
  return Promise.all(
    o.servers.map((server) => gatherFacts({ server, layout: o.layout(server), catalog: o.catalog, timeoutSec: o.timeoutSec, now: o.now })),
  );
}

export async function runChecks(o: RunChecksOptions): Promise<{ reports: ServerCheckReport[]; facts: ServerFacts[] }> {
  const facts = await gatherAll(o);
  const reports = facts.map((f, i) => {
    const server = o.servers[i]!;
    return { server: server.name, active: server.active, checks: evaluateChecks(f, server, codecAvailable) };
  });
  return { reports, facts };
}
