// The train command end to end on a generated RSNA-layout dataset of real DICOM files: every output exists,
// parses and agrees with itself.
import fs from 'node:fs';
import path from 'node:path';
import { parse } from 'csv-parse/sync';
import { main } from '../../lib/cli/train';
import { main as predictMain } from '../../lib/cli/predict';
import { StenosisPredictor } from '../../lib/predict/predictor';
import { generateSyntheticDataset } from '../../lib/data/synthetic';
import { computeMetrics } from '../../lib/report/metrics';
import { MODELS, RESNET18, runCaptured, tempDir } from '../helpers';

type Row = Record<string, string>;
const readCsv = (file: string): Row[] => parse(fs.readFileSync(file, 'utf8'), { columns: true }) as Row[];

describe('node bin/train.js', () => {
  const dir = tempDir('cli');
  const data = path.join(dir, 'data');
  const out = path.join(dir, 'out');
  let exitCode: number;
  let stdout = '';

  beforeAll(async () => {
    await generateSyntheticDataset(data, { studies: 24, seed: 5, imageSize: 128 });
    const write = process.stdout.write.bind(process.stdout);
    process.stdout.write = ((chunk: string) => ((stdout += chunk), true)) as typeof process.stdout.write;
    try {
      exitCode = await main(
        ['node', 'train.js', '--data', data, '--models', RESNET18, 'no-such-backbone', '--models-dir', MODELS]
          .concat(['--num_epochs', '2', '--batch_size', '8', '--image_size', '64', '--crop_mm', '60'])
          .concat(['--freeze_backbone', 'no', '--output', out, '--json'])
          .concat([
            '--lr-schedule',
            'cosine',
            '--warmup_steps',
            '2',
            '--clip-grad-norm',
            '5',
            '--accumulation_steps',
            '2',
          ]),
      );
    } finally {
      process.stdout.write = write;
    }
    if (exitCode !== 3) process.stderr.write(stdout);
  });

  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  test('runs, reports a failing model, goes on with the others, and exits with code 3', () => {
    expect(exitCode).toBe(3);
    const events = stdout
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line));
    expect(events[0].event).toBe('start');
    expect(events.filter((e) => e.event === 'epoch')).toHaveLength(2);
    const failed = events.find((e) => e.event === 'model-failed');
    expect(failed).toMatchObject({ model: 'no-such-backbone', code: 'ERR_MODEL_FILE' });
    expect(events[events.length - 1]).toMatchObject({ event: 'end', failed: 1 });
  });

  test('writes splits, checkpoints, metrics and predictions that agree with each other', () => {
    const results = path.join(out, 'results');
    for (const name of ['train', 'val', 'test'])
      expect(fs.existsSync(path.join(out, 'splits', `${name}.csv`))).toBe(true);
    const studiesOf = (file: string) => new Set(readCsv(file).map((r) => r.row_id.split('_')[0]));
    const train = studiesOf(path.join(out, 'splits', 'train.csv'));
    const test = studiesOf(path.join(out, 'splits', 'test.csv'));
    expect([...test].some((s) => train.has(s))).toBe(false);
    expect(fs.statSync(path.join(out, 'trained_models', 'resnet18_best.ckpt')).size).toBeGreaterThan(1e6);
    expect(fs.existsSync(path.join(out, 'trained_models', 'resnet18_last.ckpt'))).toBe(true);
    for (const split of ['val', 'test']) {
      const metrics = JSON.parse(
        fs.readFileSync(path.join(results, `resnet18_${split}_metrics.json`), 'utf8'),
      );
      const rows = readCsv(path.join(results, `resnet18_${split}_predictions.csv`));
      expect(metrics.confusion.flat().reduce((a: number, b: number) => a + b, 0)).toBe(rows.length);
      const classes = ['normal_mild', 'moderate', 'severe'];
      const probabilities = rows.flatMap((r) => classes.map((c) => Number(r[c])));
      const recomputed = computeMetrics(
        probabilities,
        rows.map((r) => classes.indexOf(r.label)),
        rows.map((r) => r.study_id),
      );
      expect(recomputed.confusion).toEqual(metrics.confusion);
      expect(recomputed.macro.f1).toBeCloseTo(metrics.macro.f1, 6);
      expect(recomputed.score.total).toBeCloseTo(metrics.score.total, 4);
    }
    const summary = fs.readFileSync(path.join(results, 'summary.csv'), 'utf8');
    expect(summary).toMatch(/^model,split,accuracy,macro_f1,weighted_f1,score,status\n/);
    expect(summary).toMatch(/no-such-backbone,.*failed: ERR_MODEL_FILE/);
    expect(summary).toMatch(/baseline_majority,test/);
    for (const plot of [
      'resnet18_training_curves',
      'resnet18_val_confusion',
      'resnet18_test_confusion',
      'model_comparison',
    ]) {
      const png = fs.readFileSync(path.join(out, 'plots', `${plot}.png`));
      expect(png.subarray(1, 4).toString()).toBe('PNG');
    }
    const testMetrics = JSON.parse(fs.readFileSync(path.join(results, 'resnet18_test_metrics.json'), 'utf8'));
    expect(Object.keys(testMetrics.perLevel)).toEqual(['L1/L2', 'L2/L3', 'L3/L4', 'L4/L5', 'L5/S1']);
    expect(testMetrics.bootstrap.macroF1.low).toBeLessThanOrEqual(testMetrics.bootstrap.macroF1.high);
    const leftovers = fs.readdirSync(results).filter((name) => name.includes('.tmp-'));
    expect(leftovers).toEqual([]);
  });

  test('the written splits train again through the reference CSV layout', async () => {
    const again = path.join(dir, 'again');
    const splits = path.join(out, 'splits');
    const quiet = process.stdout.write.bind(process.stdout);
    let stdout = '';
    process.stdout.write = ((chunk: string | Uint8Array) => {
      stdout += chunk.toString();
      return true;
    }) as typeof process.stdout.write;
    let code: number;
    try {
      code = await main(
        [
          'node',
          'train.js',
          '--models',
          RESNET18,
          '--num_epochs',
          '1',
          '--image_size',
          '64',
          '--output',
          again,
        ]
          .concat(['--train_csv', path.join(splits, 'train.csv'), '--val_csv', path.join(splits, 'val.csv')])
          .concat(['--test_csv', path.join(splits, 'test.csv'), '--crop_mm', '60']),
      );
    } finally {
      process.stdout.write = quiet;
    }
    expect(code).toBe(0);
    // The CSVs are the splits as given, not split by study here; they do not overlap.
    expect(stdout).toMatch(/splits from the CSVs: train \d+, val \d+, test \d+ samples/);
    expect(stdout).not.toMatch(/split by study|appear in two splits/);
    const predictions = readCsv(path.join(again, 'results', 'resnet18_test_predictions.csv'));
    expect(predictions).toHaveLength(readCsv(path.join(splits, 'test.csv')).length);
  });

  test('a model trained on crops warns that prediction reads whole slices', async () => {
    const predictor = await StenosisPredictor.load(path.join(out, 'trained_models', 'resnet18_best.ckpt'));
    expect(predictor.warnings).toEqual([
      expect.stringMatching(/trained on 60 mm crops .* whole middle slices/),
    ]);
  });

  test('bad flags are refused with the flag named', async () => {
    let stderr = '';
    const write = process.stderr.write.bind(process.stderr);
    process.stderr.write = ((chunk: string) => ((stderr += chunk), true)) as typeof process.stderr.write;
    try {
      expect(await main(['node', 'train.js', '--freeze_backbone', 'maybe'])).toBe(1);
      expect(await main(['node', 'train.js', '--batch_size', '0'])).toBe(1);
      expect(await main(['node', 'train.js', '--no-such-flag'])).toBe(1);
      expect(await main(['node', 'train.js', '--flip', '1.5'])).toBe(1);
      expect(await main(['node', 'train.js', '--dropout', '1'])).toBe(1);
      expect(await main(['node', 'train.js', '--class-weights', '1,2'])).toBe(1);
      expect(await main(['node', 'train.js', '--class-weights', '0,0,0'])).toBe(1);
      const file = path.join(dir, 'a-file');
      fs.writeFileSync(file, 'x');
      expect(await main(['node', 'train.js', '--output', file])).toBe(2);
      expect(fs.readFileSync(file, 'utf8')).toBe('x');
    } finally {
      process.stderr.write = write;
    }
    expect(stderr).toMatch(/--freeze-backbone <bool>' argument 'maybe' is invalid\. expected true\/false/);
    expect(stderr).toMatch(/--batch-size <n>' argument '0' is invalid/);
    expect(stderr).toMatch(/unknown option '--no-such-flag'/);
    expect(stderr).toMatch(/--flip <p>' argument '1.5' is invalid\. expected a number in \[0, 1\]/);
    expect(stderr).toMatch(/--dropout <p>' argument '1' is invalid\. expected a number in \[0, 1\)/);
    expect(stderr).toMatch(/--class-weights <w,w,w>' argument '1,2' is invalid\. expected three numbers/);
    expect(stderr).toMatch(/argument '0,0,0' is invalid\. expected a positive weight/);
    expect(stderr).toMatch(/--output .*a-file exists and is not a folder/);
  });
});

describe('node bin/predict.js and StenosisPredictor', () => {
  const dir = tempDir('predict');
  const data = path.join(dir, 'data');
  const out = path.join(dir, 'out');

  beforeAll(async () => {
    await generateSyntheticDataset(data, { studies: 8, seed: 9, imageSize: 128 });
    const quiet = process.stdout.write.bind(process.stdout);
    process.stdout.write = (() => true) as typeof process.stdout.write;
    try {
      await main(
        [
          'node',
          'train.js',
          '--data',
          data,
          '--models',
          RESNET18,
          '--num_epochs',
          '1',
          '--batch_size',
          '8',
        ].concat(['--image_size', '64', '--output', out]),
      );
    } finally {
      process.stdout.write = quiet;
    }
  });

  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  test('writes five rows per study in the submission format', async () => {
    const submission = path.join(dir, 'submission.csv');
    const checkpoint = path.join(out, 'trained_models', 'resnet18_best.ckpt');
    const quiet = process.stdout.write.bind(process.stdout);
    let stdout = '';
    process.stdout.write = ((chunk: string | Uint8Array) => {
      stdout += chunk.toString();
      return true;
    }) as typeof process.stdout.write;
    let code: number;
    try {
      code = await predictMain([
        'node',
        'predict.js',
        '--checkpoint',
        checkpoint,
        '--data',
        data,
        '--output',
        submission,
      ]);
    } finally {
      process.stdout.write = quiet;
    }
    expect(code).toBe(0);
    const rows = readCsv(submission);
    expect(Object.keys(rows[0])).toEqual(['row_id', 'normal_mild', 'moderate', 'severe']);
    expect(rows).toHaveLength(8 * 5);
    expect(rows[0].row_id).toMatch(/^\d+_spinal_canal_stenosis_l1_l2$/);
    expect(rows[4].row_id).toMatch(/_l5_s1$/);
    for (const row of rows) {
      expect(Number(row.normal_mild) + Number(row.moderate) + Number(row.severe)).toBeCloseTo(1, 5);
    }
    // The library gives the same numbers for one study in memory.
    const predictor = await StenosisPredictor.load(checkpoint);
    expect(predictor.warnings).toEqual([]);
    // The optimized backbone (batch norm folded into convolutions) gives the same probabilities.
    const optimized = await StenosisPredictor.load(checkpoint, { optimize: true });
    expect(optimized.warnings).toEqual([]);
    const study = rows[0].row_id.split('_')[0];
    const one = await predictor.predictStudy(path.join(data, 'train_images', study));
    expect(one.levels.map((l) => l.level)).toEqual(['L1/L2', 'L2/L3', 'L3/L4', 'L4/L5', 'L5/S1']);
    expect(one.levels[2].severe).toBeCloseTo(Number(rows[2].severe), 5);
    const fast = await optimized.predictStudy(path.join(data, 'train_images', study));
    for (const [i, level] of fast.levels.entries()) expect(level.severe).toBeCloseTo(one.levels[i].severe, 4);
  });

  test('--resume keeps a finished model and refuses a checkpoint written with other options', async () => {
    const args = ['node', 'train.js', '--data', data, '--models', RESNET18, '--num_epochs', '1'].concat([
      '--batch_size',
      '8',
      '--image_size',
      '64',
      '--output',
      out,
      '--resume',
      '--json',
    ]);
    const run = async (extra: string[]) => {
      let stdout = '';
      const write = process.stdout.write.bind(process.stdout);
      process.stdout.write = ((chunk: string) => ((stdout += chunk), true)) as typeof process.stdout.write;
      try {
        const code = await main(args.concat(extra));
        return {
          code,
          events: stdout
            .split('\n')
            .filter(Boolean)
            .map((line) => JSON.parse(line)),
        };
      } finally {
        process.stdout.write = write;
      }
    };
    const checkpoint = path.join(out, 'trained_models', 'resnet18_best.ckpt');
    const before = fs.statSync(checkpoint).mtimeMs;
    const kept = await run([]);
    expect(kept.code).toBe(0);
    expect(kept.events).toContainEqual(
      expect.objectContaining({
        event: 'warning',
        message: expect.stringMatching(/finished in the earlier run/),
      }),
    );
    expect(kept.events.some((e: { event: string }) => e.event === 'epoch')).toBe(false);
    expect(fs.statSync(checkpoint).mtimeMs).toBe(before);

    fs.copyFileSync(checkpoint, path.join(out, 'trained_models', 'resnet18_resume.ckpt'));
    const summary = path.join(out, 'results', 'summary.csv');
    const summaryBefore = fs.readFileSync(summary, 'utf8');
    let stderr = '';
    const writeError = process.stderr.write.bind(process.stderr);
    process.stderr.write = ((chunk: string) => ((stderr += chunk), true)) as typeof process.stderr.write;
    let refused: Awaited<ReturnType<typeof run>>;
    try {
      refused = await run(['--learning_rate', '1e-3']);
    } finally {
      process.stderr.write = writeError;
    }
    // Refused before anything is read or written.
    expect(refused.code).toBe(1);
    expect(refused.events.filter((e: { event: string }) => e.event !== 'start')).toEqual([]);
    expect(stderr).toMatch(
      /other options; give the same ones with --resume \(--learning-rate: 0.0001 then, 0.001 now\)/,
    );
    expect(stderr).toMatch(/\(ERR_RESUME\)/);
    expect(fs.readFileSync(summary, 'utf8')).toBe(summaryBefore);
    fs.rmSync(path.join(out, 'trained_models', 'resnet18_resume.ckpt'));
  });

  test('a missing checkpoint is a clear error', async () => {
    let stderr = '';
    const write = process.stderr.write.bind(process.stderr);
    process.stderr.write = ((chunk: string) => ((stderr += chunk), true)) as typeof process.stderr.write;
    try {
      expect(
        await predictMain([
          'node',
          'predict.js',
          '--checkpoint',
          path.join(dir, 'nope.ckpt'),
          '--data',
          data,
        ]),
      ).toBe(1);
    } finally {
      process.stderr.write = write;
    }
    expect(stderr).toMatch(/checkpoint .*nope\.ckpt does not exist \(ERR_CHECKPOINT\)/);
    stderr = '';
    process.stderr.write = ((chunk: string) => ((stderr += chunk), true)) as typeof process.stderr.write;
    try {
      const args = ['node', 'predict.js', '--checkpoint', path.join(dir, 'nope.ckpt'), '--data', data];
      expect(await predictMain(args.concat(['--output', dir]))).toBe(2);
      expect(await predictMain(args.concat(['--device', 'gpu']))).toBe(1);
    } finally {
      process.stderr.write = write;
    }
    expect(stderr).toMatch(/--output .* is a folder; give the submission CSV's file name/);
    expect(stderr).toMatch(/--device <device>' argument 'gpu' is invalid\. expected cpu, cuda or cuda:N/);
  });

  test('--skip-bad-samples leaves out studies that cannot be read and names them', async () => {
    // A copy of the dataset with three broken studies: every file of one is not DICOM, one has no series
    // left, and one has every file cut after its header (the header reads, the pixels do not).
    const broken = path.join(dir, 'broken');
    fs.cpSync(data, broken, { recursive: true });
    const images = path.join(broken, 'train_images');
    const studies = fs.readdirSync(images).sort();
    const filesOf = (study: string) =>
      fs
        .readdirSync(path.join(images, study), { recursive: true })
        .map(String)
        .filter((f) => f.endsWith('.dcm'))
        .map((f) => path.join(images, study, f));
    for (const file of filesOf(studies[0])) fs.writeFileSync(file, 'this is not a DICOM file\n');
    for (const series of fs.readdirSync(path.join(images, studies[1])))
      fs.rmSync(path.join(images, studies[1], series), { recursive: true });
    for (const file of filesOf(studies[2])) {
      const bytes = fs.readFileSync(file);
      fs.writeFileSync(file, bytes.subarray(0, bytes.length - 4000));
    }
    // Entries that are not study folders: one not named by a numeric id, one a file.
    fs.cpSync(path.join(images, studies[3]), path.join(images, 'abc_study'), { recursive: true });
    fs.writeFileSync(path.join(images, '123456'), 'junk\n');
    const checkpoint = path.join(out, 'trained_models', 'resnet18_best.ckpt');
    const submission = path.join(dir, 'skipped.csv');
    const run = (extra: string[]) =>
      runCaptured(
        predictMain,
        ['node', 'predict.js', '--checkpoint', checkpoint, '--data', broken, '--output', submission].concat(
          extra,
        ),
      );

    const strict = await run([]);
    expect(strict.code).toBe(1);
    expect(strict.stderr).toMatch(
      /error: .*(abc_study|123456).* \(skipBadStudies, --skip_bad_samples, leaves it out\)/,
    );
    expect(fs.existsSync(submission)).toBe(false);

    const lenient = await run(['--skip_bad_samples']);
    expect(lenient.code).toBe(0);
    for (const study of [...studies.slice(0, 3), 'abc_study', '123456'])
      expect(lenient.stderr).toMatch(new RegExp(`skipped .*${study}`));
    expect(lenient.stdout).toMatch(/5 studies, 25 rows written .*; 5 studies skipped/);
    const rows = readCsv(submission);
    expect(new Set(rows.map((r) => r.row_id.split('_')[0]))).toEqual(new Set(studies.slice(3)));
  });
});
