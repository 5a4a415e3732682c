// A frozen backbone held in eval mode gives the same features at every pass, so fit() computes them once and
// trains the head on them. The run must match one that recomputes them from images every epoch: the same
// shuffles, losses, weights and validation figures.
import fs from 'node:fs';
import path from 'node:path';
import { Backbone, FeatureCache, LevelEmbedding, StenosisClassifier, Trainer } from '../../lib';
import { SampleCache } from '../../lib/data/loader';
import { readRsnaDataset } from '../../lib/data/rsna';
import { splitByStudy } from '../../lib/data/splits';
import { generateSyntheticDataset } from '../../lib/data/synthetic';
import type { FitEvent, FitOptions } from '../../lib/train/fit';
import { maxAbsDiff, RESNET18, sameBits, smallPipeline, tempDir } from '../helpers';

const PIPELINE = smallPipeline(false);

async function makeTrainer(
  unfreeze: number,
  frozenBackboneEval: boolean,
  precision: { precision?: 'fp32' | 'bf16'; fp32Evaluation?: boolean } = {},
): Promise<Trainer> {
  const backbone = await Backbone.load(RESNET18, { inputSize: 48 });
  await backbone.unfreezeLast(unfreeze);
  const classifier = await StenosisClassifier.create({
    backbone,
    levelEmbedding: new LevelEmbedding({ dimension: 16 }),
    dropout: 0,
    seed: 3,
    frozenBackboneEval,
    ...precision,
  });
  return Trainer.create(classifier, { learningRate: 1e-3, classWeights: [1, 2, 4] });
}

describe('cached backbone features', () => {
  const dir = tempDir('feature-cache');
  let common: Omit<FitOptions, 'checkpointDir'>;
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  beforeAll(async () => {
    await generateSyntheticDataset(path.join(dir, 'data'), { studies: 12, seed: 4, imageSize: 128 });
    const { samples } = await readRsnaDataset(path.join(dir, 'data'));
    const splits = splitByStudy(samples, 1, [0.6, 0.2, 0.2]);
    common = {
      train: splits.train,
      val: splits.val,
      pipeline: PIPELINE,
      epochs: 3,
      batchSize: 8,
      seed: 5,
      name: 'm',
    };
  });

  test('training on cached features matches training on images', async () => {
    const events: FitEvent[] = [];
    const cached = await makeTrainer(0, true);
    const a = await cached.fit({
      ...common,
      checkpointDir: path.join(dir, 'a'),
      onEvent: (event) => events.push(event),
    });
    const features = events.filter((e) => e.type === 'features');
    expect(features).toEqual([
      {
        type: 'features',
        samples: common.train.length + common.val.length,
        seconds: expect.any(Number),
        train: true,
      },
    ]);
    expect(a.features?.size).toBe(common.train.length + common.val.length);

    const recomputed = await makeTrainer(0, true);
    const b = await recomputed.fit({ ...common, checkpointDir: path.join(dir, 'b'), cacheFeatures: false });
    expect(b.features).toBeNull();
    expect(a.history.map((h) => h.epoch)).toEqual([1, 2, 3]);
    for (const [i, h] of a.history.entries()) {
      expect(h.trainLoss).toBeCloseTo(b.history[i].trainLoss, 5);
      expect(h.valLoss as number).toBeCloseTo(b.history[i].valLoss as number, 5);
      expect(h.valMacroF1).toBeCloseTo(b.history[i].valMacroF1, 6);
      expect(h.trainAccuracy).toBeCloseTo(b.history[i].trainAccuracy, 6);
    }
    const pa = await cached.classifier.parameters(true);
    const pb = await recomputed.classifier.parameters(true);
    for (let i = 0; i < pa.length; i++) expect(maxAbsDiff(pa[i].data, pb[i].data)).toBeLessThan(1e-4);

    // Test-time evaluation reuses the cache and agrees with images.
    const test = common.val;
    const fromFeatures = await cached.evaluateSamples(test, a.cache, PIPELINE, {
      batchSize: 8,
      features: a.features,
    });
    const fromImages = await cached.evaluateSamples(test, a.cache, PIPELINE, { batchSize: 8 });
    expect(maxAbsDiff(fromFeatures.probabilities, fromImages.probabilities)).toBeLessThan(1e-5);
  });

  test('fp32Evaluation: training features cached at the training precision, evaluation features in fp32', async () => {
    // bf16 training with fp32 evaluation: each pass must see the features it would compute from images.
    const precision = { precision: 'bf16', fp32Evaluation: true } as const;
    const cached = await makeTrainer(0, true, precision);
    const a = await cached.fit({ ...common, epochs: 2, checkpointDir: path.join(dir, 'e') });
    const recomputed = await makeTrainer(0, true, precision);
    const b = await recomputed.fit({
      ...common,
      epochs: 2,
      checkpointDir: path.join(dir, 'f'),
      cacheFeatures: false,
    });
    expect(a.features?.size).toBe(common.train.length + common.val.length);
    expect(a.history.map((h) => [h.trainLoss, h.valLoss, h.valMacroF1])).toEqual(
      b.history.map((h) => [h.trainLoss, h.valLoss, h.valMacroF1]),
    );
    const pa = await cached.classifier.parameters(true);
    const pb = await recomputed.classifier.parameters(true);
    for (let i = 0; i < pa.length; i++) expect(sameBits(pa[i].data, pb[i].data)).toBe(true);

    // Evaluating the training samples (held at the training precision) computes their fp32 features.
    const fromFeatures = await cached.evaluateSamples(common.train, a.cache, PIPELINE, {
      batchSize: 8,
      features: a.features,
    });
    const fromImages = await cached.evaluateSamples(common.train, a.cache, PIPELINE, { batchSize: 8 });
    expect(sameBits(fromFeatures.probabilities, fromImages.probabilities)).toBe(true);
    expect(fromFeatures.loss).toBe(fromImages.loss);
  });

  test('augmented training recomputes training features; validation still uses the cache', async () => {
    const events: FitEvent[] = [];
    const trainer = await makeTrainer(0, true);
    const augmented = { ...PIPELINE, flipProbability: 0.5, rotationDegrees: 10 };
    const result = await trainer.fit({
      ...common,
      epochs: 1,
      pipeline: augmented,
      checkpointDir: path.join(dir, 'c'),
      onEvent: (event) => events.push(event),
    });
    expect(events.filter((e) => e.type === 'features')).toEqual([
      { type: 'features', samples: common.val.length, seconds: expect.any(Number), train: false },
    ]);
    expect(result.features?.size).toBe(common.val.length);
  });

  test('no cache when the backbone can change its features', async () => {
    for (const [unfreeze, evalMode] of [
      [2, true],
      [0, false],
    ] as const) {
      const events: FitEvent[] = [];
      const trainer = await makeTrainer(unfreeze, evalMode);
      const result = await trainer.fit({
        ...common,
        epochs: 1,
        checkpointDir: path.join(dir, `d${unfreeze}`),
        onEvent: (event) => events.push(event),
      });
      expect(result.features).toBeNull();
      expect(events.some((e) => e.type === 'features')).toBe(false);
    }
  });

  test('FeatureCache batches follow the image batches: same groups, unreadable images left out', async () => {
    const trainer = await makeTrainer(0, true);
    const samples = common.train.slice(0, 10);
    const broken = { ...samples[3], imagePath: path.join(dir, 'missing.dcm') };
    const cache = new SampleCache(PIPELINE);
    const features = new FeatureCache(512);
    const computed = await features.fill(
      trainer.classifier,
      [...samples, broken, samples[0]],
      cache,
      PIPELINE,
      {
        batchSize: 4,
        skipBadSamples: true,
      },
    );
    expect(computed).toBe(10);
    expect(cache.problems.map((p) => p.where)).toEqual([broken.imagePath]);
    const batches = [...features.batches([...samples, broken], PIPELINE, { batchSize: 4, train: false })];
    expect(batches.map((b) => b.samples.length)).toEqual([4, 4, 2]);
    expect(batches[0].batch.shape).toEqual([4, 512]);
    expect(Array.from(batches[2].batch.levels)).toEqual(samples.slice(8).map((s) => s.level));
    await expect(
      features.fill(trainer.classifier, [broken], cache, PIPELINE, { batchSize: 4 }),
    ).rejects.toThrow(/missing.dcm/);
  });
});
