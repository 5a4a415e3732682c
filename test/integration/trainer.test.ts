import fs from 'node:fs';
import path from 'node:path';
import { Backbone, LevelEmbedding, StenosisClassifier, Trainer } from '../../lib';
import { makeBatch, maxAbsDiff, PYTHON, RESNET18, sameBits, tempDir } from '../helpers';
import { execFileSync } from 'node:child_process';

async function buildTrainer(
  seed: number,
  unfreeze = 4,
  frozenBackboneEval = false,
): Promise<{ classifier: StenosisClassifier; trainer: Trainer }> {
  const backbone = await Backbone.load(RESNET18);
  await backbone.unfreezeLast(unfreeze);
  const classifier = await StenosisClassifier.create({
    backbone,
    levelEmbedding: new LevelEmbedding({ dimension: 32 }),
    dropout: 0,
    seed,
    frozenBackboneEval,
  });
  const trainer = await Trainer.create(classifier, { learningRate: 1e-3, classWeights: [1, 2, 4] });
  return { classifier, trainer };
}

describe('StenosisClassifier and Trainer', () => {
  const dir = tempDir('trainer');
  const batch = makeBatch(64, 6, 11);
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  test('the head has the documented shape and the seed fixes its initial weights', async () => {
    const a = await buildTrainer(5);
    const b = await buildTrainer(5);
    const c = await buildTrainer(6);
    const headA = (await a.classifier.parameters()).filter((p) => !p.name.startsWith('backbone.'));
    expect(headA.map((p) => [p.name, p.shape])).toEqual([
      ['embedding.weight', [5, 32]],
      ['head.0.weight', [512, 512 + 32]],
      ['head.0.bias', [512]],
      ['head.1.weight', [512]],
      ['head.1.bias', [512]],
      ['head.4.weight', [256, 512]],
      ['head.4.bias', [256]],
      ['head.5.weight', [256]],
      ['head.5.bias', [256]],
      ['head.8.weight', [3, 256]],
      ['head.8.bias', [3]],
    ]);
    const headB = (await b.classifier.parameters()).filter((p) => !p.name.startsWith('backbone.'));
    const headC = (await c.classifier.parameters()).filter((p) => !p.name.startsWith('backbone.'));
    expect(sameBits(headB[1].data, headA[1].data)).toBe(true);
    expect(sameBits(headC[1].data, headA[1].data)).toBe(false);
    expect(a.trainer.trainableNames).toHaveLength(4 + headA.length);
  });

  test('the loss falls when training on one batch, and probabilities are distributions', async () => {
    const { classifier, trainer } = await buildTrainer(1);
    const losses: number[] = [];
    for (let i = 0; i < 8; i++) losses.push(await trainer.trainStep(batch));
    expect(losses[7]).toBeLessThan(losses[0] * 0.5);
    expect(await trainer.steps()).toBe(8);
    const { probabilities, loss } = await trainer.evaluate(batch);
    expect(probabilities).toHaveLength(6 * 3);
    for (let row = 0; row < 6; row++) {
      const sum = probabilities[3 * row] + probabilities[3 * row + 1] + probabilities[3 * row + 2];
      expect(sum).toBeCloseTo(1, 5);
    }
    expect(loss).not.toBeNull();
    const predicted = await classifier.predict({
      images: batch.images,
      shape: batch.shape,
      levels: batch.levels,
    });
    expect(maxAbsDiff(predicted, probabilities)).toBeLessThan(1e-5);
  });

  test('the event loop keeps running during native steps', async () => {
    const { trainer } = await buildTrainer(2);
    let ticks = 0;
    const timer = setInterval(() => ticks++, 2);
    const start = Date.now();
    for (let i = 0; i < 3; i++) await trainer.trainStep(batch);
    const elapsed = Date.now() - start;
    clearInterval(timer);
    // A blocked loop would fire (almost) no ticks; an open one fires a good share of elapsed / 2 ms.
    expect(ticks).toBeGreaterThan(Math.min(20, elapsed / 20));
  });

  test('save then load restores model and optimizer: the next step is identical', async () => {
    const first = await buildTrainer(3);
    await first.trainer.trainStep(batch);
    await first.trainer.trainStep(batch);
    const file = path.join(dir, 'two-steps.ckpt');
    await first.trainer.save(file, { note: 'two steps' });
    expect(fs.readdirSync(dir).filter((f) => f.includes('.tmp-'))).toEqual([]);
    const lossA = await first.trainer.trainStep(batch);
    const paramsA = await first.classifier.parameters(true);

    const second = await buildTrainer(99);
    const metadata = await second.trainer.load(file);
    expect(metadata.user).toEqual({ note: 'two steps' });
    expect(metadata.classes).toEqual(['normal_mild', 'moderate', 'severe']);
    expect(metadata.backbone.architecture).toBe('resnet18');
    expect(await second.trainer.steps()).toBe(2);
    const lossB = await second.trainer.trainStep(batch);
    const paramsB = await second.classifier.parameters(true);
    expect(lossB).toBe(lossA);
    for (let i = 0; i < paramsA.length; i++) expect(sameBits(paramsB[i].data, paramsA[i].data)).toBe(true);
  });

  test('a checkpoint is a torch.save file that Python reads', async () => {
    const { trainer } = await buildTrainer(4);
    await trainer.trainStep(batch);
    const file = path.join(dir, 'python.ckpt');
    await trainer.save(file);
    const out = execFileSync(
      PYTHON,
      [
        '-c',
        'import sys, json, torch; c = torch.load(sys.argv[1], weights_only=False); m = json.loads(c["metadata"]); ' +
          'print(c["format"], c["version"], len(c["optimizer"]["state"]), c["optimizer"]["steps"], ' +
          'tuple(c["model"]["head.0.weight"].shape), m["trainer"]["classWeights"])',
        file,
      ],
      { encoding: 'utf8' },
    );
    expect(out.trim()).toBe(
      `lumbar-stenosis-checkpoint 1 ${trainer.trainableNames.length} 1 (512, 544) [1, 2, 4]`,
    );
  });

  test('loading a checkpoint of a different model or a damaged file fails without changing the model', async () => {
    const { classifier, trainer } = await buildTrainer(5);
    const before = await classifier.parameters();
    const file = path.join(dir, 'small.ckpt');
    await trainer.save(file);
    const backbone = await Backbone.load(RESNET18);
    await backbone.unfreezeLast(4);
    const wide = await StenosisClassifier.create({
      backbone,
      levelEmbedding: new LevelEmbedding({ dimension: 64 }),
    });
    const other = await Trainer.create(wide);
    await expect(other.load(file)).rejects.toMatchObject({
      code: 'ERR_CHECKPOINT',
      message: expect.stringMatching(
        /tensor 'embedding.weight' has shape \[5, 32\], this model expects \[5, 64\]/,
      ),
    });
    const damaged = path.join(dir, 'damaged.ckpt');
    fs.writeFileSync(damaged, fs.readFileSync(file).subarray(0, 1000));
    await expect(trainer.load(damaged)).rejects.toMatchObject({ code: 'ERR_CHECKPOINT' });
    await expect(trainer.load(path.join(dir, 'absent.ckpt'))).rejects.toThrow(/absent.ckpt' does not exist/);
    const after = await classifier.parameters();
    for (let i = 0; i < before.length; i++) expect(sameBits(after[i].data, before[i].data)).toBe(true);
  });

  test('bad batches and options are rejected with what was expected', async () => {
    const { trainer } = await buildTrainer(6);
    await expect(trainer.trainStep({ ...batch, labels: undefined })).rejects.toThrow(/Expected labels/);
    await expect(
      trainer.trainStep({ ...batch, levels: ['L1/L2', 'L9/L9', 0, 1, 2, 3] }),
    ).rejects.toMatchObject({
      code: 'ERR_UNKNOWN_LEVEL',
      message: expect.stringMatching(/"L9\/L9" in batch.levels\[1\]/),
    });
    await expect(trainer.trainStep({ ...batch, labels: [0, 1, 2] })).rejects.toThrow(
      /Expected 6 values \(one per image\)/,
    );
    const { classifier } = await buildTrainer(7);
    await expect(Trainer.create(classifier, { trainingLabels: [0, 0, 1] })).rejects.toMatchObject({
      code: 'ERR_MISSING_CLASS',
    });
    await expect(Trainer.create(classifier, { learningRate: -1 })).rejects.toThrow(/learningRate/);
    await expect(Trainer.create(classifier, { lr: 1 } as never)).rejects.toThrow(/Unknown option 'lr'/);
  });

  test('a feature batch trains the head alone as images through a frozen eval-mode backbone would', async () => {
    const onImages = await buildTrainer(9, 0, true);
    const onFeatures = await buildTrainer(9, 0, true);
    const features = await onFeatures.classifier.features(batch);
    const featureBatch = { features, shape: [6, 512] as const, levels: batch.levels, labels: batch.labels };
    for (let i = 0; i < 3; i++) {
      const expected = await onImages.trainer.trainStep(batch);
      expect(await onFeatures.trainer.trainStep(featureBatch)).toBeCloseTo(expected, 5);
    }
    const a = await onImages.classifier.parameters(true);
    const b = await onFeatures.classifier.parameters(true);
    expect(b.map((p) => p.name)).toEqual(a.map((p) => p.name));
    for (let i = 0; i < a.length; i++) expect(maxAbsDiff(b[i].data, a[i].data)).toBeLessThan(1e-5);
    const fromImages = await onImages.trainer.evaluate(batch);
    const fromFeatures = await onFeatures.trainer.evaluate(featureBatch);
    expect(maxAbsDiff(fromFeatures.probabilities, fromImages.probabilities)).toBeLessThan(1e-5);
    expect(fromFeatures.loss).toBeCloseTo(fromImages.loss as number, 5);

    await expect(onFeatures.trainer.trainStep({ ...featureBatch, shape: [3, 1024] })).rejects.toThrow(
      /Expected a shape \[batch, 512\] \(the backbone's feature dimension\) for batch.shape/,
    );
    const partlyTrainable = await buildTrainer(9, 2);
    await expect(partlyTrainable.trainer.trainStep(featureBatch)).rejects.toMatchObject({
      code: 'ERR_STATE',
      message: expect.stringMatching(/feature batch trains the head alone/),
    });
  });

  test('a trial step leaves no trace: batch-norm statistics, dropout draws and weights as before', async () => {
    const run = async (trial: boolean) => {
      const backbone = await Backbone.load(RESNET18);
      await backbone.unfreezeLast(8);
      const classifier = await StenosisClassifier.create({ backbone, dropout: 0.3, seed: 12 });
      const trainer = await Trainer.create(classifier, { learningRate: 1e-3, classWeights: [1, 2, 4] });
      if (trial) expect(await trainer.trialStep(batch)).toBeNull();
      const evaluated = await trainer.evaluate(batch);
      const losses = [await trainer.trainStep(batch), await trainer.trainStep(batch)];
      return { probabilities: evaluated.probabilities, losses, steps: await trainer.steps() };
    };
    const plain = await run(false);
    const tried = await run(true);
    expect(sameBits(tried.probabilities, plain.probabilities)).toBe(true);
    expect(tried.losses).toEqual(plain.losses);
    expect(tried.steps).toBe(2);
  });

  test('a trial step keeps the gradients pending from a backward pass', async () => {
    const { trainer } = await buildTrainer(13);
    await trainer.backward(batch);
    const pending = await trainer.gradients();
    expect(await trainer.trialStep(batch)).toBeNull();
    const after = await trainer.gradients();
    expect(after.map((g) => g.name)).toEqual(pending.map((g) => g.name));
    for (let i = 0; i < pending.length; i++) {
      expect(sameBits(after[i].data as Float32Array, pending[i].data as Float32Array)).toBe(true);
    }
  });

  test('a step whose loss is not finite leaves weights, batch-norm statistics and gradients as before', async () => {
    const poisoned = { ...batch, images: Float32Array.from(batch.images) };
    poisoned.images[5] = NaN;
    const numeric = { code: 'ERR_NUMERIC', message: expect.stringMatching(/not finite/) };

    const { classifier, trainer } = await buildTrainer(14);
    await trainer.trainStep(batch);
    const before = await trainer.evaluate(batch);
    const weights = await classifier.parameters();
    await expect(trainer.trainStep(poisoned)).rejects.toMatchObject(numeric);
    expect(await trainer.steps()).toBe(1);
    const after = await trainer.evaluate(batch);
    expect(sameBits(after.probabilities, before.probabilities)).toBe(true);
    expect(after.loss).toBe(before.loss);
    const weightsAfter = await classifier.parameters();
    for (let i = 0; i < weights.length; i++) {
      expect(sameBits(weightsAfter[i].data as Float32Array, weights[i].data as Float32Array)).toBe(true);
    }

    // Accumulating a poisoned batch keeps the gradients accumulated so far.
    await trainer.backward(batch, { lossScale: 0.5 });
    const pending = await trainer.gradients();
    const accumulated = await trainer.evaluate(batch);
    await expect(trainer.backward(poisoned, { accumulate: true, lossScale: 0.5 })).rejects.toMatchObject(
      numeric,
    );
    const kept = await trainer.gradients();
    for (let i = 0; i < pending.length; i++) {
      expect(sameBits(kept[i].data as Float32Array, pending[i].data as Float32Array)).toBe(true);
    }
    expect(sameBits((await trainer.evaluate(batch)).probabilities, accumulated.probabilities)).toBe(true);
    await trainer.step();
    expect(await trainer.steps()).toBe(2);
    expect(Number.isFinite((await trainer.evaluate(batch)).loss)).toBe(true);
  });

  test('lossScale scales the gradients of a backward pass (gradient accumulation)', async () => {
    const { trainer } = await buildTrainer(10);
    await trainer.backward(batch);
    const full = await trainer.gradients();
    await trainer.backward(batch, { lossScale: 0.25 });
    const quarter = await trainer.gradients();
    for (let i = 0; i < full.length; i++) {
      const expected = Float32Array.from(full[i].data as Float32Array, (g) => g * 0.25);
      expect(maxAbsDiff(quarter[i].data as Float32Array, expected)).toBeLessThan(1e-6);
    }
    await trainer.backward(batch, { accumulate: true, lossScale: 0.75 });
    const summed = await trainer.gradients();
    for (let i = 0; i < full.length; i++) {
      expect(maxAbsDiff(summed[i].data as Float32Array, full[i].data as Float32Array)).toBeLessThan(1e-6);
    }
  });

  test('an inference-only trainer evaluates as before, in inference mode, and refuses to train', async () => {
    const { trainer } = await buildTrainer(4);
    await trainer.trainStep(batch);
    const before = await trainer.evaluate(batch);
    await trainer.setInferenceOnly();
    const after = await trainer.evaluate(batch);
    expect(sameBits(after.probabilities, before.probabilities)).toBe(true);
    expect(after.loss).toBe(before.loss);
    const refused = { code: 'ERR_STATE', message: expect.stringMatching(/inference only/) };
    await expect(trainer.trainStep(batch)).rejects.toMatchObject(refused);
    await expect(trainer.backward(batch)).rejects.toMatchObject(refused);
    await expect(trainer.trialStep(batch)).rejects.toMatchObject(refused);
    await trainer.save(path.join(dir, 'inference-only.ckpt'));
  });

  test('setInferenceOnly drops pending gradients and refuses every call that would update the weights', async () => {
    const { trainer } = await buildTrainer(15);
    await trainer.backward(batch);
    await trainer.setInferenceOnly();
    const before = await trainer.evaluate(batch);
    expect((await trainer.gradients()).every((g) => g.data.length === 0)).toBe(true);
    const refused = (call: string) => ({
      code: 'ERR_STATE',
      message: expect.stringMatching(new RegExp(`^${call.replace(/[()]/g, '\\$&')} .*inference only`)),
    });
    await expect(trainer.step()).rejects.toMatchObject(refused('step()'));
    await expect(trainer.clipGradients(1)).rejects.toMatchObject(refused('clipGradients()'));
    await expect(trainer.backward(batch, { accumulate: true })).rejects.toMatchObject(refused('backward()'));
    await expect(trainer.trainStep(batch)).rejects.toMatchObject(refused('trainStep()'));
    await expect(trainer.trialStep(batch)).rejects.toMatchObject(refused('trialStep()'));
    expect(await trainer.steps()).toBe(0);
    expect(sameBits((await trainer.evaluate(batch)).probabilities, before.probabilities)).toBe(true);
  });

  test('changing the trainable set after creating the trainer is caught', async () => {
    const { classifier, trainer } = await buildTrainer(8);
    await classifier.backbone.unfreezeLast(10);
    await expect(trainer.trainStep(batch)).rejects.toMatchObject({ code: 'ERR_STATE' });
  });
});
