#!/usr/bin/env node
// Entry point installed as `barmants`: the CLI lives in dist/cli (built by `npm run build`).
import { main } from '../dist/cli/index.js';

main(process.argv.slice(2)).then(
  (code) => { process.exitCode = code; },
  (err) => { console.error(`barmants: ${err && err.message ? err.message : err}`); process.exitCode = 1; },
);
