// Builders for check facts and settings: a healthy server by default, overridden per test.
import type { CheckSettings, RepositoryFacts, ServerFacts, SqlFacts } from '../../../packages/barmants/src/checks/index.js';

export const NOW = new Date('2026-11-27T12:00:00Z');

export function ago(sec: number): string {
  return new Date(NOW.getTime() - sec * 1000).toISOString();
}

export function settings(over: Partial<CheckSettings> = {}): CheckSettings {
  return {
    name: 'pg', active: true, streamingArchiver: true, slotName: 'barmants', retentionPolicy: { kind: 'redundancy', count: 2 },
    minimumRedundancy: 1, lastBackupMaximumAgeSec: 86_400, lastBackupMinimumSizeBytes: null, lastWalMaximumAgeSec: 3600,
    minFreeSpaceBytes: null, slotRetainedWalWarningBytes: null, slotRetainedWalCriticalBytes: null,
    walCompression: { codec: 'none' }, backupCompression: { codec: 'none' }, ...over,
  };
}

export function sql(over: Partial<SqlFacts> = {}): SqlFacts {
  return {
    ok: true, versionNum: 170002, versionText: '17.2', superuser: true, backupPrivileges: true, walLevel: 'replica', inRecovery: false,
    systemId: '7311831194433320669', dataDirectory: '/var/lib/pg', currentLsn: 0x7000060n, currentWal: '000000010000000000000007',
    dataSizeBytes: 23_000_000, maxSlotWalKeepSizeBytes: null,
    slot: { name: 'barmants', active: true, restartLsn: 0x7000000n, walStatus: 'reserved', retainedBytes: 96 }, slotExists: true,
    receiverConnection: { state: 'streaming', flushLsn: 0x7000060n, sync: 'async' }, ...over,
  };
}

export function repo(over: Partial<RepositoryFacts> = {}): RepositoryFacts {
  return {
    identitySystemId: '7311831194433320669', identityPath: '/b/pg/identity.json', identityError: null, catalogSystemId: '7311831194433320669',
    walSegmentSize: 16 * 1024 * 1024,
    backups: [{ backupId: '20261127T100000', name: null, status: 'DONE', beginTime: ago(7300), endTime: ago(7200), beginWal: '000000010000000000000005', timeline: 1, systemId: '7311831194433320669', walSegmentSize: 16777216, size: 30_000_000 }],
    walCount: 3, walBytes: 3 * 16777216, firstWal: { name: '000000010000000000000005', archivedAt: ago(7300) },
    lastWal: { name: '000000010000000000000007', archivedAt: ago(60) }, walRate: { segments: 2, windowSec: 3600 }, walGaps: [],
    walCheckedFrom: '000000010000000000000005',
    heartbeat: { pid: 4242, state: 'streaming', flushedLsn: 0x7000060n, receivedLsn: 0x7000060n, message: null, updatedAt: ago(1) },
    receiverLock: { pid: 4242, host: 'h', since: ago(8000) },
    directories: [{ path: '/b/pg', exists: true, writable: true, mode: 0o700, error: null }], errorFiles: [], freeBytes: 10e9, totalBytes: 20e9,
    error: null, ...over,
  };
}

export function facts(over: { sql?: ServerFacts['sql']; streaming?: ServerFacts['streaming']; repo?: Partial<RepositoryFacts> } = {}): ServerFacts {
  return {
    server: 'pg', now: NOW, sql: over.sql ?? sql(),
    streaming: over.streaming ?? { ok: true, systemId: '7311831194433320669', timeline: 1, xlogPos: 0x7000060n },
    repo: repo(over.repo),
  };
}
