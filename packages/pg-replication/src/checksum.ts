/*
 * File checksums exactly as a PostgreSQL backup manifest prints them, so a backup's files can be
 * checked against the manifest the server sent (pg_verifybackup's job) while they stream in.
 */
import { createHash, type Hash } from 'node:crypto';
import { createRequire } from 'node:module';
import type * as Crc32 from '@node-rs/crc32';

// The CRC32C add-on is loaded on first use: importing it (a native module behind a CommonJS
// loader) cost ~20 ms of every start-up, for commands that never check a manifest too.
let crc32Module: typeof Crc32 | undefined;
const crc32c = (input: Buffer, crc: number): number =>
  (crc32Module ??= createRequire(import.meta.url)('@node-rs/crc32') as typeof Crc32).crc32c(input, crc);

/** The manifest's `Checksum-Algorithm` names (pg_checksum_type_name). */
export type ChecksumAlgorithm = 'NONE' | 'CRC32C' | 'SHA224' | 'SHA256' | 'SHA384' | 'SHA512';

export const CHECKSUM_ALGORITHMS: readonly ChecksumAlgorithm[] = ['NONE', 'CRC32C', 'SHA224', 'SHA256', 'SHA384', 'SHA512'];

export interface FileChecksum {
  update(chunk: Buffer): void;
  /** Lowercase hex as in the manifest; '' for NONE. Call once, after the last update. */
  digest(): string;
}

export function isChecksumAlgorithm(name: string): name is ChecksumAlgorithm {
  return (CHECKSUM_ALGORITHMS as readonly string[]).includes(name);
}

/** An incremental checksum of one file's content in the given algorithm. */
export function createFileChecksum(alg: ChecksumAlgorithm): FileChecksum {
  switch (alg) {
    case 'NONE':
      return { update() {}, digest: () => '' };
    case 'CRC32C': {
      let crc = 0;
      return {
        update(chunk) {
          crc = crc32c(chunk, crc);
        },
        digest() {
          // The server memcpy()s the uint32 CRC into the manifest: little-endian byte order.
          const out = Buffer.alloc(4);
          out.writeUInt32LE(crc >>> 0);
          return out.toString('hex');
        },
      };
    }
    case 'SHA224':
    case 'SHA256':
    case 'SHA384':
    case 'SHA512': {
      const hash: Hash = createHash(alg.toLowerCase());
      return {
        update(chunk) {
          hash.update(chunk);
        },
        digest: () => hash.digest('hex'),
      };
    }
    default:
      throw new TypeError(`unknown checksum algorithm ${JSON.stringify(alg as string)}: expected one of ${CHECKSUM_ALGORITHMS.join(', ')}`);
  }
}
