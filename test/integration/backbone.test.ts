import fs from 'node:fs';
import path from 'node:path';
import { Backbone, StenosisClassifier, StenosisError, Trainer } from '../../lib';
import { makeBatch, maxAbsDiff, MODELS, RESNET18, runPython, sameBits, tempDir } from '../helpers';

async function expectCode(promise: Promise<unknown>, code: string, message: RegExp): Promise<void> {
  await expect(promise).rejects.toMatchObject({ code, message: expect.stringMatching(message) });
}

describe('Backbone', () => {
  let backbone: Backbone;
  const metadata = JSON.parse(fs.readFileSync(path.join(MODELS, 'resnet18.json'), 'utf8'));

  beforeAll(async () => {
    backbone = await Backbone.load(RESNET18);
  });

  test('loads a TorchScript export and probes its feature dimension', async () => {
    expect(backbone.featureDim).toBe(512);
    expect(backbone.inputSize).toBe(64);
    expect(backbone.device).toBe('cpu');
    expect(backbone.metadata.architecture).toBe('resnet18');
    expect(await backbone.parameterNames()).toEqual(metadata.parameterNames);
  });

  test('loads by registry name from a models folder', async () => {
    const byName = await Backbone.load('resnet18', { modelsDir: MODELS });
    expect(byName.path).toBe(RESNET18);
  });

  test('freeze, unfreezeLast and unfreezeLastBlocks change exactly the trainable set', async () => {
    const total = await backbone.parameterCount();
    await backbone.freeze();
    expect(await backbone.parameterCount(true)).toBe(0);
    const names = await backbone.unfreezeLast(32);
    expect(names).toEqual(metadata.parameterNames.slice(-32));
    expect(await backbone.parameterNames(true)).toEqual(names);
    expect(await backbone.unfreezeLast(10_000)).toHaveLength(metadata.parameterNames.length);
    expect(await backbone.parameterCount(true)).toBe(total);
    expect(await backbone.unfreezeLast(0)).toEqual([]);
    const blocks = await backbone.unfreezeLastBlocks(1);
    // ResNet-18: the last block with parameters is the last BasicBlock, layer4.1 (fc is an identity).
    expect(blocks.length).toBeGreaterThan(0);
    expect(blocks.every((name) => name.startsWith('layer4.1.'))).toBe(true);
  });

  test('features have shape [batch, featureDim] and depend on the mode', async () => {
    const batch = makeBatch(64, 3, 1);
    await backbone.setTraining(false);
    expect(await backbone.isTraining()).toBe(false);
    const evalFeatures = await backbone.features(batch);
    expect(evalFeatures).toHaveLength(3 * 512);
    expect(sameBits(await backbone.features(batch), evalFeatures)).toBe(true);
    await backbone.setTraining(true);
    const trainFeatures = await backbone.features(batch);
    expect(sameBits(trainFeatures, evalFeatures)).toBe(false);
  });

  test('optimizeForInference keeps the eval-mode features; its model can no longer train or be saved', async () => {
    const batch = makeBatch(64, 3, 21);
    const plain = await Backbone.load(RESNET18);
    await plain.setTraining(false);
    const expected = await plain.features(batch);
    const optimized = await Backbone.load(RESNET18);
    await optimized.optimizeForInference();
    await optimized.setTraining(true);
    expect(await optimized.isTraining()).toBe(false);
    const largest = Math.max(...Array.from(expected, Math.abs));
    expect(maxAbsDiff(await optimized.features(batch), expected)).toBeLessThan(1e-4 * (1 + largest));
    expect(await optimized.parameterCount()).toBe(0);
    const trainer = await Trainer.create(await StenosisClassifier.create({ backbone: optimized }), {
      classWeights: [1, 2, 4],
    });
    await expect(trainer.trainStep(batch)).rejects.toMatchObject({
      code: 'ERR_STATE',
      message: expect.stringMatching(/optimized for inference, so its model cannot train/),
    });
    const dir = tempDir('optimized');
    await expect(trainer.save(path.join(dir, 'never.ckpt'))).rejects.toMatchObject({ code: 'ERR_STATE' });
    expect(fs.readdirSync(dir)).toEqual([]);
    fs.rmSync(dir, { recursive: true, force: true });
    expect((await trainer.evaluate(batch)).probabilities).toHaveLength(9);
  });

  test('a missing file, a non-TorchScript file and a wrong output shape get clear errors', async () => {
    const dir = tempDir('backbone');
    await expectCode(
      Backbone.load(path.join(dir, 'missing.pt')),
      'ERR_MODEL_FILE',
      /missing\.pt does not exist/,
    );
    const notModel = path.join(dir, 'notes.pt');
    fs.writeFileSync(notModel, 'not a model');
    await expectCode(Backbone.load(notModel), 'ERR_MODEL_FILE', /notes\.pt' is not a TorchScript model/);
    const truncated = path.join(dir, 'truncated.pt');
    fs.writeFileSync(truncated, fs.readFileSync(RESNET18).subarray(0, 4096));
    await expectCode(
      Backbone.load(truncated),
      'ERR_MODEL_FILE',
      /truncated\.pt' could not be loaded as TorchScript/,
    );
    const spatial = path.join(dir, 'spatial.pt');
    runPython([
      '-c',
      'import sys, torch; torch.jit.save(torch.jit.script(torch.nn.Conv2d(3, 4, 3)), sys.argv[1])',
      spatial,
    ]);
    await expectCode(
      Backbone.load(spatial),
      'ERR_MODEL_FILE',
      /returned a tensor of shape \[1, 4, 222, 222\]; expected \[batch, features\]/,
    );
    await expectCode(
      Backbone.load('nosuchnet', { modelsDir: dir }),
      'ERR_MODEL_FILE',
      /'nosuchnet' is not in .*registry\.json/,
    );
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('asking for CUDA without it is a clear error', async () => {
    await expectCode(
      Backbone.load(RESNET18, { device: 'cuda' }),
      'ERR_CUDA_UNAVAILABLE',
      /CUDA is not available/,
    );
    await expectCode(
      Backbone.load(RESNET18, { device: 'gpu' as never }),
      'ERR_INVALID_DEVICE',
      /cpu, cuda or cuda:N/,
    );
  });

  test('arguments are validated before they reach the addon', async () => {
    await expect(backbone.unfreezeLast(-1)).rejects.toThrow(/Expected an integer >= 0 for n but received -1/);
    await expect(backbone.features({ images: new Float32Array(10), shape: [1, 3, 64, 64] })).rejects.toThrow(
      /Expected 12288 values for shape \[1, 3, 64, 64\] for batch.images/,
    );
    await expect(Backbone.load(RESNET18, { inputsize: 64 } as never)).rejects.toThrow(StenosisError);
  });
});
