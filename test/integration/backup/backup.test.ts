// `barmants backup` on every version under test, one compression each (version i uses codec
// i % 4) so that all codecs meet several versions; the first version's backup is also restored.
import { versionsUnderTest } from '../../harness/index.js';
import { backupSuite, CODECS } from './suite.js';

for (const [i, version] of versionsUnderTest().entries()) backupSuite(version, [CODECS[(i + 3) % 4]!], i === 0);
