#!/usr/bin/env node
// Trains and evaluates stenosis graders; `node bin/train.js --help` lists the options.
'use strict';

let main;
try {
  ({ main } = require('../dist/lib/cli/train'));
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
