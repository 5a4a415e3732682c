// The addon's forward pass, loss, gradients and one AdamW step against plain Python PyTorch
// (scripts/reference_step.py) on the same exported weights and the same inputs.
//
// Tolerances (both sides run the same libtorch build, but with different op dispatch and thread scheduling, so
// float sums may be ordered differently):
//   features, logits        max |a - b| <= 1e-4 * (1 + max |b|)
//   loss                    |a - b| <= 1e-5 * (1 + |b|)
//   gradients               max |a - b| <= 1e-4 * max |b| + 1e-7, per tensor
//   parameters after AdamW  max |a - b| <= 1e-6 + 1e-3 * lr, per tensor
import fs from 'node:fs';
import path from 'node:path';
import { Backbone, StenosisClassifier, Trainer } from '../../lib';
import { makeBatch, maxAbs, maxAbsDiff, RESNET18, runPython, tempDir } from '../helpers';

interface Reference {
  unfrozen: string[];
  trainable: string[];
  tensors: Record<string, { shape: number[]; offset: number; length: number }>;
  get(name: string): Float32Array;
}

function readReference(prefix: string): Reference {
  const manifest = JSON.parse(fs.readFileSync(prefix + '.json', 'utf8'));
  const blob = fs.readFileSync(prefix + '.bin');
  const all = new Float32Array(blob.buffer, blob.byteOffset, blob.byteLength / 4);
  return {
    ...manifest,
    get(name: string) {
      const entry = manifest.tensors[name];
      if (!entry) throw new Error(`reference has no tensor ${name}`);
      return all.subarray(entry.offset, entry.offset + entry.length);
    },
  };
}

describe('parity with Python PyTorch (ResNet-18, last 8 tensors unfrozen)', () => {
  const unfreezeLast = 8;
  const learningRate = 1e-3;
  const dir = tempDir('parity');
  const batch = makeBatch(64, 4, 7);
  let reference: Reference;
  let unfrozen: string[];
  let features: Float32Array;
  let logits: Float32Array;
  let loss: number;
  let gradients: Awaited<ReturnType<Trainer['gradients']>>;
  let updated: Awaited<ReturnType<StenosisClassifier['parameters']>>;
  let trainableNames: string[];

  beforeAll(async () => {
    const backbone = await Backbone.load(RESNET18);
    unfrozen = await backbone.unfreezeLast(unfreezeLast);
    const classifier = await StenosisClassifier.create({ backbone, dropout: 0, seed: 3 });
    const trainer = await Trainer.create(classifier, {
      learningRate,
      weightDecay: 0.02,
      trainingLabels: batch.labels,
    });
    trainableNames = trainer.trainableNames;
    const checkpoint = path.join(dir, 'init.ckpt');
    await trainer.save(checkpoint);

    fs.writeFileSync(path.join(dir, 'images.bin'), Buffer.from(batch.images.buffer));
    fs.writeFileSync(
      path.join(dir, 'inputs.json'),
      JSON.stringify({
        shape: batch.shape,
        levels: batch.levels,
        labels: batch.labels,
        imagesFile: path.join(dir, 'images.bin'),
      }),
    );
    runPython([
      'scripts/reference_step.py',
      '--backbone',
      RESNET18,
      '--checkpoint',
      checkpoint,
      '--inputs',
      path.join(dir, 'inputs.json'),
      '--out',
      path.join(dir, 'reference'),
      '--unfreeze-last',
      String(unfreezeLast),
    ]);
    reference = readReference(path.join(dir, 'reference'));

    // Same order as the reference: features, logits, then the training step (train mode throughout).
    features = await backbone.features(batch);
    logits = await classifier.forward(batch);
    loss = await trainer.backward(batch);
    gradients = await trainer.gradients();
    await trainer.step();
    updated = await classifier.parameters(true);
  });

  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  test('unfreezeLast(n) unfreezes the same tensors as list(model.parameters())[-n:]', () => {
    expect(unfrozen).toHaveLength(unfreezeLast);
    expect(unfrozen).toEqual(reference.unfrozen);
    expect(trainableNames).toEqual(reference.trainable);
  });

  test('backbone features match', () => {
    const expected = reference.get('features');
    expect(features.length).toBe(4 * 512);
    expect(maxAbsDiff(features, expected)).toBeLessThanOrEqual(1e-4 * (1 + maxAbs(expected)));
  });

  test('head logits match', () => {
    const expected = reference.get('logits');
    expect(maxAbsDiff(logits, expected)).toBeLessThanOrEqual(1e-4 * (1 + maxAbs(expected)));
  });

  test('class-weighted cross-entropy matches', () => {
    const expected = reference.get('loss')[0];
    expect(Number.isFinite(loss)).toBe(true);
    expect(Math.abs(loss - expected)).toBeLessThanOrEqual(1e-5 * (1 + Math.abs(expected)));
  });

  test('gradients of every trainable tensor match', () => {
    expect(gradients.map((g) => g.name)).toEqual(reference.trainable);
    for (const grad of gradients) {
      const expected = reference.get(`grad:${grad.name}`);
      expect(maxAbs(expected)).toBeGreaterThan(0);
      const diff = maxAbsDiff(grad.data, expected);
      if (diff > 1e-4 * maxAbs(expected) + 1e-7) throw new Error(`gradient ${grad.name} differs by ${diff}`);
    }
  });

  test('one AdamW step gives the same parameters', () => {
    expect(updated.map((p) => p.name)).toEqual(reference.trainable);
    for (const param of updated) {
      const diff = maxAbsDiff(param.data, reference.get(`param:${param.name}`));
      if (diff > 1e-6 + 1e-3 * learningRate) throw new Error(`parameter ${param.name} differs by ${diff}`);
    }
  });
});
