// bin/predict.js predicts at the precision and memory format the checkpoint was evaluated at, says which, and
// takes --precision to override it; --backbone takes an existing file whatever its name.
import fs from 'node:fs';
import path from 'node:path';
import { main } from '../../lib/cli/train';
import { main as predictMain } from '../../lib/cli/predict';
import { StenosisPredictor } from '../../lib/predict/predictor';
import { generateSyntheticDataset } from '../../lib/data/synthetic';
import { RESNET18, runCaptured, tempDir } from '../helpers';

describe('predict.js with a bf16, channels-last checkpoint', () => {
  const dir = tempDir('predict-precision');
  const data = path.join(dir, 'data');
  const out = path.join(dir, 'out');
  const checkpoint = path.join(out, 'trained_models', 'resnet18_best.ckpt');
  const submission = path.join(dir, 'submission.csv');
  const predict = (extra: string[]) =>
    runCaptured(
      predictMain,
      ['node', 'predict.js', '--checkpoint', checkpoint, '--data', data, '--output', submission].concat(
        extra,
      ),
    );

  beforeAll(async () => {
    await generateSyntheticDataset(data, { studies: 8, seed: 9, imageSize: 128 });
    const trained = await runCaptured(
      main,
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
      ].concat(['--image_size', '32', '--output', out, '--precision', 'bf16', '--channels_last']),
    );
    if (trained.code !== 0) throw new Error(`training failed:\n${trained.stdout}\n${trained.stderr}`);
  });

  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  test("uses the checkpoint's precision and memory format by default, and says so", async () => {
    const predictor = await StenosisPredictor.load(checkpoint);
    expect(predictor.precision).toBe('bf16');
    expect(predictor.memoryFormat).toBe('channels_last');
    const result = await predict([]);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(
      /rows written to .* \(backbone in bf16, channels-last, as the checkpoint was evaluated\)/,
    );
  });

  test('--precision overrides it; fp16 on the CPU is refused', async () => {
    const fp32 = await predict(['--precision', 'fp32']);
    expect(fp32.code).toBe(0);
    expect(fp32.stdout).toMatch(/\(backbone in fp32, channels-last; the checkpoint was evaluated in bf16\)/);
    const fp16 = await predict(['--precision', 'fp16']);
    expect(fp16.code).toBe(1);
    expect(fp16.stderr).toMatch(/precision fp16 needs a CUDA device/);
  });

  test('--backbone takes an existing file whatever its name', async () => {
    const renamed = path.join(dir, 'backbone.ckpt');
    fs.copyFileSync(RESNET18, renamed);
    // A bare name, as typed in the folder that holds it.
    const cwd = process.cwd();
    process.chdir(dir);
    let result: Awaited<ReturnType<typeof predict>>;
    try {
      result = await predict(['--backbone', 'backbone.ckpt']);
    } finally {
      process.chdir(cwd);
    }
    expect(result.stderr).not.toMatch(/registry/);
    expect(result.code).toBe(0);
  });
});
