// The export-model command end to end: a briefly trained classifier is saved, exported as one TorchScript file,
// and Python's torch.jit.load on that file alone gives the addon's probabilities on the same inputs.
import fs from 'node:fs';
import path from 'node:path';
import { Backbone, LevelEmbedding, StenosisClassifier, Trainer } from '../../lib';
import { main } from '../../lib/cli/export-model';
import { makeBatch, maxAbsDiff, RESNET18, runPython, smallPipeline, tempDir } from '../helpers';

/** Runs the command with stdout and stderr captured (and kept out of the test log). */
async function runExport(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const writeOut = process.stdout.write.bind(process.stdout);
  const writeErr = process.stderr.write.bind(process.stderr);
  process.stdout.write = ((chunk: string | Uint8Array) => (
    (stdout += chunk.toString()),
    true
  )) as typeof process.stdout.write;
  process.stderr.write = ((chunk: string | Uint8Array) => (
    (stderr += chunk.toString()),
    true
  )) as typeof process.stderr.write;
  try {
    const code = await main(['node', 'export-model.js', ...args]);
    return { code, stdout, stderr };
  } finally {
    process.stdout.write = writeOut;
    process.stderr.write = writeErr;
  }
}

// Loads only the exported file (no package code, no backbone file) and prints its probabilities as JSON.
const LOAD_AND_RUN = `
import json, sys
import numpy as np, torch
model = torch.jit.load(sys.argv[1])
shape = json.loads(sys.argv[3])
images = torch.from_numpy(np.fromfile(sys.argv[2], dtype="<f4").reshape(shape).copy())
levels = torch.tensor(json.loads(sys.argv[4]), dtype=torch.long)
with torch.no_grad():
    probabilities = model(images, levels)
print(json.dumps({"training": model.training, "shape": list(probabilities.shape),
                  "probabilities": probabilities.flatten().tolist()}))
`;

describe('node bin/export-model.js', () => {
  const dir = tempDir('export');
  const batch = makeBatch(64, 6, 11);
  const checkpoint = path.join(dir, 'trained.ckpt');
  const bare = path.join(dir, 'bare.ckpt');
  const withPipeline = path.join(dir, 'pipeline.ckpt');
  const modelFile = path.join(dir, 'out', 'model.pt');
  let expected: Float32Array;
  let exported: { code: number; stdout: string; stderr: string };

  beforeAll(async () => {
    const backbone = await Backbone.load(RESNET18);
    await backbone.unfreezeLast(4);
    const classifier = await StenosisClassifier.create({
      backbone,
      levelEmbedding: new LevelEmbedding({ dimension: 16 }),
      seed: 8,
    });
    const trainer = await Trainer.create(classifier, { learningRate: 1e-3, classWeights: [1, 2, 4] });
    // Training moves the weights and the batch-norm running statistics away from the backbone file's, so the
    // export only matches if it copies both from the checkpoint.
    await trainer.trainStep(batch);
    await trainer.trainStep(batch);
    await trainer.save(checkpoint, { backbonePath: RESNET18 });
    await trainer.save(bare);
    // As the train command records it: the training pipeline, with its augmentation.
    await trainer.save(withPipeline, { backbonePath: RESNET18, pipeline: smallPipeline(true) });
    expected = (await trainer.evaluate(batch)).probabilities;
    exported = await runExport(['--checkpoint', checkpoint, '--out', modelFile]);
  });

  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  test('exports, says how to load it, and leaves no temporary file', () => {
    if (exported.code !== 0) throw new Error(`export failed:\n${exported.stderr}`);
    expect(exported.stdout).toContain(`exported ${modelFile}`);
    expect(exported.stdout).toContain('torch.jit.load(');
    expect(fs.readdirSync(path.dirname(modelFile)).sort()).toEqual(['model.json', 'model.pt']);
  });

  test("torch.jit.load on the file alone gives the addon's probabilities", () => {
    fs.writeFileSync(path.join(dir, 'images.bin'), Buffer.from(batch.images.buffer));
    const result = JSON.parse(
      runPython([
        '-c',
        LOAD_AND_RUN,
        modelFile,
        path.join(dir, 'images.bin'),
        JSON.stringify(batch.shape),
        JSON.stringify(batch.levels),
      ]),
    ) as { training: boolean; shape: number[]; probabilities: number[] };
    expect(result.training).toBe(false);
    expect(result.shape).toEqual([6, 3]);
    const difference = maxAbsDiff(result.probabilities, expected);
    if (!(difference <= 1e-5)) throw new Error(`probabilities differ by ${difference}`);
    // Not a near-uniform output: the comparison would say little if every row were (1/3, 1/3, 1/3).
    expect(maxAbsDiff(expected, new Float32Array(expected.length).fill(1 / 3))).toBeGreaterThan(1e-3);
  });

  test('model.json describes classes, levels, input size and normalization', () => {
    const description = JSON.parse(fs.readFileSync(path.join(dir, 'out', 'model.json'), 'utf8'));
    expect(description).toMatchObject({
      format: 'lumbar-stenosis-model',
      version: 1,
      classes: ['normal_mild', 'moderate', 'severe'],
      levels: ['L1/L2', 'L2/L3', 'L3/L4', 'L4/L5', 'L5/S1'],
      levelIndex: { 'L1/L2': 0, 'L5/S1': 4 },
      inputSize: 64,
      mean: [0.485, 0.456, 0.406],
      std: [0.229, 0.224, 0.225],
      source: { checkpoint, backbone: RESNET18 },
    });
    // The torch that exported it: the Python interpreter the tests use.
    expect(description.torchVersion).toBe(runPython(['-c', 'import torch; print(torch.__version__)']).trim());
    expect(description.check.maxAbsDiff).toBeLessThanOrEqual(1e-5);
    expect(description.preprocessing.notes.length).toBeGreaterThan(0);
  });

  test('--out a folder, or a name not ending in .pt, is refused before Python runs', async () => {
    const folder = await runExport(['--checkpoint', checkpoint, '--out', dir]);
    expect(folder.code).toBe(1);
    expect(folder.stderr.trim().split('\n')).toEqual([
      `error: --out ${dir} is a folder; give the TorchScript file to write, e.g. ${path.join(dir, 'model.pt')} ` +
        '(ERR_INVALID_ARG)',
    ]);
    const onnx = path.join(dir, 'm.onnx');
    const named = await runExport(['--checkpoint', checkpoint, '--out', onnx]);
    expect(named.code).toBe(1);
    expect(named.stderr).toMatch(
      /--out .*m\.onnx: the export is a TorchScript file, so its name must end in \.pt/,
    );
    expect(fs.existsSync(onnx)).toBe(false);
  });

  test("the JSON's pipeline is the inference one; training augmentation is listed apart", async () => {
    const out = path.join(dir, 'pipeline', 'model.pt');
    const result = await runExport(['--checkpoint', withPipeline, '--out', out]);
    if (result.code !== 0) throw new Error(`export failed:\n${result.stderr}`);
    const description = JSON.parse(fs.readFileSync(path.join(dir, 'pipeline', 'model.json'), 'utf8'));
    expect(description.preprocessing.pipeline).toMatchObject({
      size: 48,
      crop: { size: 60, unit: 'mm' },
      flipProbability: 0,
      rotationDegrees: 0,
    });
    expect(description.preprocessing.trainingAugmentation).toEqual({
      flipProbability: 0.5,
      rotationDegrees: 10,
    });
    expect(description.preprocessing.notes).toContain(
      'no flip or rotation: those are training augmentation only',
    );
  });

  test('a missing checkpoint is one clear error line and exit code 1', async () => {
    const missing = path.join(dir, 'no-such.ckpt');
    const result = await runExport(['--checkpoint', missing, '--out', path.join(dir, 'missing.pt')]);
    expect(result.code).toBe(1);
    expect(result.stderr.trim().split('\n')).toEqual([
      `error: checkpoint not found: ${missing} (--checkpoint) (ERR_CHECKPOINT)`,
    ]);
    expect(fs.existsSync(path.join(dir, 'missing.pt'))).toBe(false);
  });

  test('a checkpoint that records no backbone needs --backbone, and works with it', async () => {
    const out = path.join(dir, 'bare', 'model.pt');
    const failed = await runExport(['--checkpoint', bare, '--out', out]);
    expect(failed.code).toBe(1);
    const lines = failed.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^error: .*bare\.ckpt records no backbone path .*--backbone/);
    expect(fs.existsSync(out)).toBe(false);

    const given = await runExport(['--checkpoint', bare, '--out', out, '--backbone', RESNET18]);
    if (given.code !== 0) throw new Error(`export failed:\n${given.stderr}`);
    expect(fs.existsSync(out)).toBe(true);
  });
});
