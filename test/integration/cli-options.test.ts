// The train and predict commands refuse flags that the run would fail on or silently ignore, before anything
// is read or written, naming the flag; and the ranges they check are the ones the library enforces.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Backbone, LevelEmbedding, StenosisClassifier, Trainer, setNumThreads } from '../../lib';
import { LIMITS } from '../../lib/limits';
import { buildCommand, main } from '../../lib/cli/train';
import { parseArgv } from '../../lib/cli/options';
import { main as predictMain } from '../../lib/cli/predict';
import { generateSyntheticDataset } from '../../lib/data/synthetic';
import { RESNET18, runCaptured, tempDir } from '../helpers';

describe('train.js flag checks', () => {
  const dir = tempDir('cli-options');
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  /** Runs train.js with a fresh output folder; the folder must not exist afterwards (nothing written). */
  async function refused(args: string[]): Promise<{ code: number; stderr: string }> {
    const out = path.join(dir, `out-${Math.random().toString(36).slice(2)}`);
    const result = await runCaptured(main, ['node', 'train.js', ...args, '--output', out]);
    expect(fs.existsSync(out)).toBe(false);
    return result;
  }

  test.each([
    [
      ['--image_size', '7'],
      /--image-size <px>' argument '7' is invalid\. expected an integer in \[16, 4096\]/,
    ],
    [
      ['--image_size', '5000'],
      /--image-size <px>' argument '5000' is invalid\. expected an integer in \[16, 4096\]/,
    ],
    [
      ['--learning_rate', '1e9'],
      /--learning-rate <lr>' argument '1e9' is invalid\. expected a number in \(0, 10\]/,
    ],
    [
      ['--weight_decay', '1e9'],
      /--weight-decay <wd>' argument '1e9' is invalid\. expected a number in \[0, 10\]/,
    ],
    [['--level_embeddings', '100000'], /--level-embeddings <dim>' argument '100000' is invalid/],
    [['--synthetic_studies', '200000'], /--synthetic-studies <n>' argument '200000' is invalid/],
    [['--clip_grad_norm', '1e12'], /--clip-grad-norm <norm>' argument '1e12' is invalid/],
    [['--class_weights', '1,2,1e7'], /--class-weights <w,w,w>' argument '1,2,1e7' is invalid/],
  ])('%j is refused when parsed, naming the flag', async (args, message) => {
    const { code, stderr } = await refused(args);
    expect(code).toBe(1);
    expect(stderr).toMatch(message);
    expect(stderr).not.toMatch(/inputSize|learningRate|weightDecay/);
  });

  const data = ['--data', path.join(os.tmpdir(), 'no-such-dataset')];
  test.each([
    [
      // The quick preset (small, so that a run that is not refused ends soon).
      ['--frozen_backbone_eval', '--synthetic_studies', '30', '--image_size', '32', '--num_epochs', '1'],
      new RegExp(
        '--frozen-backbone-eval holds a fully frozen backbone in eval mode and needs --freeze-backbone true ' +
          "and --unfreeze-last-n 0; here --unfreeze-last-n 62 \\(the quick preset's\\) leaves",
      ),
    ],
    [
      [...data, '--frozen_backbone_eval'],
      /--frozen-backbone-eval .* needs .*--unfreeze-last-n 0; here --unfreeze-last-n 32 \(the default\) leaves/,
    ],
    [
      [...data, '--frozen_backbone_eval', '--unfreeze_last_n', '0', '--freeze_backbone', 'false'],
      /--frozen-backbone-eval .* needs --freeze-backbone true .*; here --freeze-backbone false trains the whole/,
    ],
    [
      [...data, '--crop_mm', '60', '--crop_px', '40'],
      /--crop-mm and --crop-px both give the crop size; give one of them/,
    ],
    [
      [...data, '--warmup_steps', '10'],
      /--warmup-steps is the warm-up of --lr-schedule cosine; with --lr-schedule constant there is none/,
    ],
    [
      [...data, '--lr_schedule', 'constant', '--warmup_steps', '10'],
      /--warmup-steps .* with --lr-schedule constant/,
    ],
    [
      [...data, '--synthetic_studies', '30'],
      /--synthetic-studies sizes the generated dataset.*; --data gives/,
    ],
  ])('%j is refused before anything is written', async (args, message) => {
    const { code, stderr } = await refused(args);
    expect(code).toBe(2);
    expect(stderr).toMatch(message);
  });

  test('--channels_last and --frozen_backbone_eval take a boolean value or none, like --freeze_backbone', () => {
    const parsed = (args: string[]) => {
      const command = buildCommand();
      const exit = parseArgv(command, ['node', 'train.js', ...args]);
      return exit === null ? command.opts() : exit;
    };
    expect(parsed([])).toMatchObject({ channelsLast: false, frozenBackboneEval: false });
    expect(parsed(['--channels_last', '--frozen_backbone_eval'])).toMatchObject({
      channelsLast: true,
      frozenBackboneEval: true,
    });
    expect(parsed(['--channels_last', 'false', '--frozen_backbone_eval', 'no'])).toMatchObject({
      channelsLast: false,
      frozenBackboneEval: false,
    });
    expect(parsed(['--channels_last', 'yes', '--json'])).toMatchObject({ channelsLast: true, json: true });
  });

  test('--threads above 4 times the cores is refused, in train.js and predict.js', async () => {
    const max = Math.min(LIMITS.threads.max, 4 * os.availableParallelism());
    const { code, stderr } = await refused(['--threads', String(max + 1)]);
    expect(code).toBe(1);
    expect(stderr).toMatch(
      new RegExp(`--threads <n>' argument '${max + 1}' is invalid\\. expected an integer in \\[1, ${max}\\]`),
    );
    const predicted = await runCaptured(predictMain, [
      'node',
      'predict.js',
      '--checkpoint',
      'x.ckpt',
      '--data',
      dir,
      '--threads',
      '1000000',
    ]);
    expect(predicted.code).toBe(1);
    expect(predicted.stderr).toMatch(/--threads <n>' argument '1000000' is invalid/);
  });
});

describe('LIMITS are the ranges the library enforces', () => {
  test('input size, embedding, learning rate, weight decay, class weights, clip norm, studies, threads', async () => {
    const { inputSize, levelEmbedding, learningRate, weightDecay, classWeight, threads } = LIMITS;
    await expect(Backbone.load(RESNET18, { inputSize: inputSize.min - 1 })).rejects.toThrow(
      `in [${inputSize.min}, ${inputSize.max}]`,
    );
    await expect(Backbone.load(RESNET18, { inputSize: inputSize.max + 1 })).rejects.toThrow(/inputSize/);
    expect(() => new LevelEmbedding({ dimension: levelEmbedding.max })).not.toThrow();
    expect(() => new LevelEmbedding({ dimension: levelEmbedding.max + 1 })).toThrow(
      `in [${levelEmbedding.min}, ${levelEmbedding.max}]`,
    );
    expect(() => setNumThreads(threads.max + 1)).toThrow(`in [${threads.min}, ${threads.max}]`);
    const backbone = await Backbone.load(RESNET18, { inputSize: 32 });
    const classifier = await StenosisClassifier.create({ backbone });
    const create = (options: object) => Trainer.create(classifier, { classWeights: [1, 1, 1], ...options });
    await expect(create({ learningRate: learningRate.max })).resolves.toBeDefined();
    await expect(create({ learningRate: learningRate.max * 1.0001 })).rejects.toThrow(
      `in [${learningRate.min}, ${learningRate.max}] for learningRate`,
    );
    await expect(create({ weightDecay: weightDecay.max * 1.0001 })).rejects.toThrow(
      `in [${weightDecay.min}, ${weightDecay.max}] for weightDecay`,
    );
    await expect(create({ classWeights: [1, 1, classWeight.max * 1.0001] })).rejects.toThrow(
      `in [${classWeight.min}, ${classWeight.max}]`,
    );
    const trainer = await create({});
    await expect(trainer.clipGradients(LIMITS.gradientClipNorm.max * 1.0001)).rejects.toThrow(
      `in [${LIMITS.gradientClipNorm.min}, ${LIMITS.gradientClipNorm.max}]`,
    );
    const studies = LIMITS.syntheticStudies;
    const folder = tempDir('limits');
    await expect(generateSyntheticDataset(folder, { studies: studies.max + 1 })).rejects.toThrow(
      `in [${studies.min}, ${studies.max}]`,
    );
    fs.rmSync(folder, { recursive: true, force: true });
  });
});
