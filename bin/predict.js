#!/usr/bin/env node
// Writes a submission CSV from a trained checkpoint; `node bin/predict.js --help` lists the options.
'use strict';

let main;
try {
  ({ main } = require('../dist/lib/cli/predict'));
} catch (error) {
  console.error(`lumbar-stenosis is not built (${error.message}). Run: npm install`);
  process.exit(1);
}
main(process.argv).then(
  (code) => process.exit(code),
  (error) => {
    console.error(error);
    process.exit(1);
  },
);
