// Precision 'auto' and dynamic loss scaling. Loss scaling is what fp16 training on a GPU needs; its mechanics
// (scale, unscale, skip on overflow, growth, checkpointing) do not depend on the dtype, so they are checked here
// on the CPU with an fp32 model and the scaling turned on explicitly.
import fs from 'node:fs';
import path from 'node:path';
import {
  Backbone,
  LevelEmbedding,
  preferredPrecision,
  StenosisClassifier,
  Trainer,
  type TrainerOptions,
} from '../../lib';
import { main } from '../../lib/cli/train';
import { loadAddon } from '../../lib/native/loader';
import { generateSyntheticDataset } from '../../lib/data/synthetic';
import { makeBatch, maxAbs, maxAbsDiff, MODELS, RESNET18, runCaptured, sameBits, tempDir } from '../helpers';

async function build(
  precision: 'fp32' | 'bf16' | 'auto',
  trainerOptions: TrainerOptions = {},
): Promise<{ classifier: StenosisClassifier; trainer: Trainer }> {
  const backbone = await Backbone.load(RESNET18);
  await backbone.unfreezeLast(4);
  const classifier = await StenosisClassifier.create({
    backbone,
    levelEmbedding: new LevelEmbedding({ dimension: 16 }),
    dropout: 0,
    seed: 3,
    precision,
  });
  const trainer = await Trainer.create(classifier, { learningRate: 1e-3, ...trainerOptions });
  return { classifier, trainer };
}

async function parameters(classifier: StenosisClassifier): Promise<Float32Array[]> {
  return (await classifier.parameters(true)).map((p) => p.data);
}

/** What the kernel says of this processor, read independently of the addon. */
function cpuHasBf16(): boolean {
  const flags = fs
    .readFileSync('/proc/cpuinfo', 'utf8')
    .split('\n')
    .find((line) => line.startsWith('flags'));
  const list = (flags ?? '').split(':')[1]?.trim().split(/\s+/) ?? [];
  return list.includes('avx512_bf16') || list.includes('amx_bf16');
}

describe('precision auto', () => {
  test('picks bf16 on a CPU that computes it natively, else fp32, and the classifier reports the choice', async () => {
    const expected = cpuHasBf16() ? 'bf16' : 'fp32';
    expect(preferredPrecision()).toBe(expected);
    expect(preferredPrecision('cpu')).toBe(expected);
    const { classifier, trainer } = await build('auto');
    expect(classifier.precision).toBe(expected);
    expect(trainer.checkpointMetadata().classifier.precision).toBe(expected);
    // An auto classifier computes what one built with the chosen precision does.
    const explicit = await build(expected);
    const batch = makeBatch(48, 4, 7);
    const input = { images: batch.images, shape: batch.shape };
    expect(sameBits(await classifier.features(input), await explicit.classifier.features(input))).toBe(true);
  });

  test('refuses unknown precisions and absent devices by name', async () => {
    const backbone = await Backbone.load(RESNET18);
    await expect(StenosisClassifier.create({ backbone, precision: 'fp8' as 'fp32' })).rejects.toMatchObject({
      code: 'ERR_INVALID_ARG',
      message: expect.stringMatching(/fp32, bf16, fp16, auto for precision/),
    });
    await expect(StenosisClassifier.create({ backbone, precision: 'fp16' })).rejects.toMatchObject({
      code: 'ERR_INVALID_ARG',
      message: expect.stringMatching(/fp16 needs a CUDA device/),
    });
    expect(() => preferredPrecision('cuda:7' as 'cpu')).toThrow(/CUDA is not available|does not exist/);
    expect(() => preferredPrecision('tpu' as 'cpu')).toThrow(/Expected cpu, cuda or cuda:N/);
  });
});

describe('dynamic loss scaling', () => {
  const dir = tempDir('loss-scale');
  const batch = makeBatch(48, 6, 21);
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  test('is off by default outside fp16, and its state says so', async () => {
    const { trainer } = await build('fp32');
    expect(trainer.dynamicLossScaling).toBe(false);
    await trainer.trainStep(batch);
    expect(await trainer.lossScale()).toEqual({
      scale: 1,
      goodSteps: 0,
      skippedSteps: 0,
      lastStepSkipped: false,
    });
  });

  test('a power-of-two scale leaves losses, gradients and updates as without scaling', async () => {
    const plain = await build('fp32');
    const scaled = await build('fp32', { dynamicLossScaling: true, initialLossScale: 2 ** 16 });
    for (let i = 0; i < 3; i++) {
      const a = await plain.trainer.backward(batch);
      const b = await scaled.trainer.backward(batch);
      expect(b).toBe(a);
      const ga = await plain.trainer.gradients();
      const gb = await scaled.trainer.gradients();
      // Unscaled on the way out; multiplying and dividing by 2^16 is exact unless a value under/overflows.
      for (let t = 0; t < ga.length; t++) expect(maxAbsDiff(gb[t].data, ga[t].data)).toBeLessThan(1e-9);
      await plain.trainer.clipGradients(1);
      await scaled.trainer.clipGradients(1);
      await plain.trainer.step();
      await scaled.trainer.step();
    }
    const pa = await parameters(plain.classifier);
    const pb = await parameters(scaled.classifier);
    for (let t = 0; t < pa.length; t++) expect(maxAbsDiff(pb[t], pa[t])).toBeLessThan(1e-6);
    expect(await scaled.trainer.lossScale()).toMatchObject({ scale: 2 ** 16, goodSteps: 3, skippedSteps: 0 });
  });

  test('an overflowing scale skips the update, halves the scale and leaves the weights untouched', async () => {
    // 2^128 is beyond fp32's range: the scaled loss is inf, so every gradient is inf or NaN.
    const { classifier, trainer } = await build('fp32', {
      dynamicLossScaling: true,
      initialLossScale: 2 ** 128,
    });
    const before = await parameters(classifier);
    const loss = await trainer.backward(batch);
    expect(Number.isFinite(loss)).toBe(true);
    expect(Number.isFinite(await trainer.clipGradients(1))).toBe(false);
    await trainer.step();
    const after = await parameters(classifier);
    for (let t = 0; t < before.length; t++) expect(sameBits(after[t], before[t])).toBe(true);
    expect(await trainer.lossScale()).toEqual({
      scale: 2 ** 127,
      goodSteps: 0,
      skippedSteps: 1,
      lastStepSkipped: true,
    });
    expect(await trainer.steps()).toBe(1);
    // Halving until the scaled loss fits in fp32, then updates resume.
    let skipped = 1;
    for (let i = 0; i < 6; i++) {
      await trainer.trainStep(batch);
      const state = await trainer.lossScale();
      if (!state.lastStepSkipped) break;
      skipped = state.skippedSteps;
    }
    const state = await trainer.lossScale();
    expect(state.lastStepSkipped).toBe(false);
    expect(state.scale).toBeLessThanOrEqual(2 ** 127);
    expect(state.skippedSteps).toBe(skipped);
    const moved = await parameters(classifier);
    expect(moved.some((p, t) => !sameBits(p, before[t]))).toBe(true);
  });

  test('the scale doubles after the growth interval and is restored from a checkpoint', async () => {
    // 2^20 + 2^-20: saved as text, it must come back to the last bit.
    const initial = 2 ** 20 + 2 ** -20;
    const options = { dynamicLossScaling: true, initialLossScale: initial, lossScaleGrowthInterval: 2 };
    const { trainer } = await build('fp32', options);
    await trainer.trainStep(batch);
    expect(await trainer.lossScale()).toMatchObject({ scale: initial, goodSteps: 1 });
    await trainer.trainStep(batch);
    expect(await trainer.lossScale()).toMatchObject({ scale: 2 * initial, goodSteps: 0 });
    await trainer.trainStep(batch);
    const file = path.join(dir, 'scaled.ckpt');
    await trainer.save(file);
    expect(trainer.checkpointMetadata().trainer.dynamicLossScaling).toBe(true);
    const restored = await build('fp32', options);
    await restored.trainer.load(file);
    expect(await restored.trainer.lossScale()).toMatchObject({ scale: 2 * initial, goodSteps: 1 });
  });

  test('refuses to accumulate into gradients that were already unscaled, and bad options by name', async () => {
    const { trainer } = await build('fp32', { dynamicLossScaling: true });
    await trainer.backward(batch);
    await trainer.clipGradients(1);
    await expect(trainer.backward(batch, { accumulate: true })).rejects.toMatchObject({
      code: 'ERR_STATE',
      message: expect.stringMatching(/already unscaled/),
    });
    // Accumulating before clipping is what a step over several batches does.
    await trainer.backward(batch);
    await trainer.backward(batch, { accumulate: true });
    await trainer.step();
    await expect(trainer.backward(batch, { accumulate: true })).rejects.toMatchObject({
      code: 'ERR_STATE',
      message: expect.stringMatching(/right after step\(\)/),
    });
    // A load drops gradients still pending: they belong to other weights and another scale.
    const file = path.join(dir, 'pending.ckpt');
    await trainer.save(file);
    await trainer.backward(batch);
    await trainer.load(file);
    for (const g of await trainer.gradients()) expect(maxAbs(g.data)).toBe(0);
    const backbone = await Backbone.load(RESNET18);
    const classifier = await StenosisClassifier.create({ backbone });
    const dynamic = { dynamicLossScaling: true };
    await expect(Trainer.create(classifier, { ...dynamic, initialLossScale: 0.5 })).rejects.toMatchObject({
      code: 'ERR_INVALID_ARG',
      message: expect.stringMatching(/initialLossScale/),
    });
    await expect(
      Trainer.create(classifier, { ...dynamic, lossScaleGrowthInterval: 0 }),
    ).rejects.toMatchObject({
      code: 'ERR_INVALID_ARG',
      message: expect.stringMatching(/lossScaleGrowthInterval/),
    });
    // Without dynamic loss scaling (off by default outside fp16) the two would be ignored: refused instead.
    for (const option of [{ initialLossScale: 1024 }, { lossScaleGrowthInterval: 10 }]) {
      await expect(Trainer.create(classifier, option)).rejects.toMatchObject({
        code: 'ERR_INVALID_ARG',
        message: expect.stringMatching(/applies to dynamic loss scaling, which is off/),
      });
    }
  });
});

describe('node bin/train.js --precision', () => {
  const dir = tempDir('precision-cli');
  const data = path.join(dir, 'data');
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  const run = (out: string, precision: string) =>
    runCaptured(
      main,
      ['node', 'train.js', '--data', data, '--models', RESNET18, '--models-dir', MODELS, '--output', out]
        .concat(['--num_epochs', '1', '--batch_size', '8', '--image_size', '48', '--crop_mm', '60'])
        .concat(['--class-weights', '1,2,4', '--precision', precision, '--json']),
    );

  test('auto trains at the precision the CPU prefers and records it in events, metrics and checkpoints', async () => {
    await generateSyntheticDataset(data, { studies: 16, seed: 5, imageSize: 96 });
    const out = path.join(dir, 'auto');
    const { code, stdout, stderr } = await run(out, 'auto');
    expect({ code, stderr }).toEqual({ code: 0, stderr: '' });
    const events = stdout
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line));
    const expected = preferredPrecision();
    expect(events.find((e) => e.event === 'model-start')).toMatchObject({ precision: expected });
    const metrics = JSON.parse(
      fs.readFileSync(path.join(out, 'results', 'resnet18_test_metrics.json'), 'utf8'),
    );
    expect(metrics.precision).toBe(expected);
    const checkpoint = path.join(out, 'trained_models', 'resnet18_best.ckpt');
    const saved = JSON.parse(await loadAddon().readCheckpointMetadata(checkpoint));
    expect(saved.classifier.precision).toBe(expected);
  });

  test('fp16 on the CPU is refused by flag before anything is written', async () => {
    const out = path.join(dir, 'fp16');
    const { code, stderr } = await run(out, 'fp16');
    expect(code).not.toBe(0);
    expect(stderr).toMatch(/--precision fp16 needs a CUDA device/);
    expect(fs.existsSync(out)).toBe(false);
  });
});
