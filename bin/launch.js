'use strict';

/**
 * Runs the `main(argv)` of a compiled CLI module under dist/lib/cli and exits with its code. Shared by the
 * launchers in this folder so that each stays one line.
 */
module.exports = function launch(name) {
  let main;
  try {
    ({ main } = require(`../dist/lib/cli/${name}`));
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
};
