// Test harness entry point: throwaway PostgreSQL clusters and write load for integration tests.
// Import from here: `import { useCluster, generateLoad } from '../../harness/index.js'`.

export * from './cluster.js';
export * from './load.js';
