#!/usr/bin/env node
// Exports a trained checkpoint as one TorchScript file; `node bin/export-model.js --help` lists the options.
'use strict';

let main;
try {
  ({ main } = require('../dist/lib/cli/export-model'));
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
