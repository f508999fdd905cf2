// `barmants backup` with each of the four compressions on one version (the last under test), the
// first of them restored.
import { versionsUnderTest } from '../../harness/index.js';
import { backupSuite, CODECS } from './suite.js';

const versions = versionsUnderTest();
backupSuite(versions[versions.length - 1]!, [...CODECS].reverse(), true);
