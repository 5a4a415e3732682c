#!/usr/bin/env node
// Writes the synthetic RSNA-layout lumbar MRI dataset; `node bin/make-synthetic.js --help` lists the options.
'use strict';

const { Command, InvalidArgumentError } = require('commander');

let synthetic;
try {
  synthetic = require('../dist/lib/data/synthetic');
} catch (error) {
  console.error(
    `lumbar-stenosis is not built (${error.message}). Run: npx tsc -p tsconfig.build.json (or npm install)`,
  );
  process.exit(1);
}

function integer(name, min, max) {
  return (text) => {
    const value = Number(text);
    if (!/^\d+$/.test(text.trim()) || !Number.isSafeInteger(value) || value < min || value > max)
      throw new InvalidArgumentError(`${name} must be an integer in [${min}, ${max}], got '${text}'`);
    return value;
  };
}

/** The label counts as a table: one row per level, one column per severity and missing. */
function labelTable(labelCounts) {
  const columns = ['normal_mild', 'moderate', 'severe', 'missing'];
  const lines = [['level', ...columns].map((c, i) => (i === 0 ? c.padEnd(8) : c.padStart(12))).join('')];
  const totals = columns.map(() => 0);
  for (const [level, counts] of Object.entries(labelCounts)) {
    lines.push(level.padEnd(8) + columns.map((c) => String(counts[c] ?? 0).padStart(12)).join(''));
    columns.forEach((c, i) => (totals[i] += counts[c] ?? 0));
  }
  const all = totals.reduce((a, b) => a + b, 0) || 1;
  lines.push('all'.padEnd(8) + totals.map((n) => `${((100 * n) / all).toFixed(1)}%`.padStart(12)).join(''));
  return lines.join('\n');
}

function printSummary(summary, seconds) {
  console.log(`folder   ${summary.folder}`);
  console.log(`studies  ${summary.studies}`);
  console.log(`files    ${summary.files}`);
  console.log(`size     ${(summary.bytes / 1e6).toFixed(1)} MB`);
  console.log(`seconds  ${seconds === undefined ? '(already generated, reused)' : seconds.toFixed(1)}`);
  console.log('spinal canal stenosis labels:');
  console.log(labelTable(summary.labelCounts));
}

async function main(argv) {
  const program = new Command()
    .name('make-synthetic')
    .description(
      'Generate the synthetic sagittal lumbar MRI dataset in the RSNA 2024 layout (train.csv, ' +
        'train_label_coordinates.csv, train_series_descriptions.csv, train_images/). ' +
        'The same options always give byte-identical files.',
    )
    .option(
      '--out <dir>',
      'folder to write into; it must not exist or be empty (default: the cache folder, ' +
        '$STENOSIS_CACHE_DIR or $XDG_CACHE_HOME/lumbar-stenosis or ~/.cache/lumbar-stenosis, ' +
        'reused when already complete)',
    )
    .option('--studies <n>', 'number of studies', integer('--studies', 1, 100000), 300)
    .option('--seed <n>', 'seed of every random choice', integer('--seed', 0, 2 ** 32 - 1), 0)
    .option(
      '--image-size <n>',
      'rows and columns of the Sagittal T2/STIR images',
      integer('--image-size', 64, 1024),
      256,
    )
    .showHelpAfterError()
    .parse(argv);
  const opts = program.opts();
  const options = { studies: opts.studies, seed: opts.seed, imageSize: opts.imageSize };

  if (opts.out !== undefined) {
    const summary = await synthetic.generateSyntheticDataset(opts.out, options);
    printSummary(summary, summary.seconds);
    return 0;
  }
  const folder = synthetic.defaultSyntheticFolder(options);
  const existing = synthetic.readSyntheticSummary(folder);
  if (existing) {
    printSummary(existing, undefined);
    return 0;
  }
  const started = process.hrtime.bigint();
  await synthetic.ensureSyntheticDataset(options, (line) => console.error(line));
  const summary = synthetic.readSyntheticSummary(folder);
  if (!summary) throw new Error(`${folder} was generated but holds no completion marker`);
  printSummary(summary, Number(process.hrtime.bigint() - started) / 1e9);
  return 0;
}

main(process.argv).then(
  (code) => process.exit(code),
  (error) => {
    console.error(`make-synthetic: ${error.code ? `${error.code}: ` : ''}${error.message}`);
    process.exit(1);
  },
);
