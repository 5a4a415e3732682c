// `npm pack`, then installing the tarball into an empty folder: the install builds the addon, the consumer's
// TypeScript type-checks against the shipped declarations, and its compiled code trains one step.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { RESNET18, ROOT, tempDir } from '../helpers';

const CONSUMER = `
import { Backbone, StenosisClassifier, Trainer, LevelEmbedding, LEVELS, type ImageBatch } from 'lumbar-stenosis';

async function main(modelFile: string): Promise<void> {
  const backbone = await Backbone.load(modelFile, { device: 'cpu' });
  await backbone.unfreezeLast(2);
  const levelEmbedding = new LevelEmbedding({ dimension: 16 });
  const classifier = await StenosisClassifier.create({ backbone, levelEmbedding });
  const trainer = await Trainer.create(classifier, { learningRate: 1e-4, classWeights: [1, 2, 4] });
  const size = backbone.inputSize;
  const batch: ImageBatch = {
    images: new Float32Array(2 * 3 * size * size).fill(0.5),
    shape: [2, 3, size, size],
    levels: [LEVELS[0], 'L4/L5'],
    labels: ['normal_mild', 'severe'],
  };
  const loss: number = await trainer.trainStep(batch);
  console.log(JSON.stringify({ loss, featureDim: backbone.featureDim }));
}

main(process.argv[2]).catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
`;

// A consumer that misuses the API must fail to type-check.
const MISUSE = `
import { StenosisClassifier } from 'lumbar-stenosis';
StenosisClassifier.create({ backbone: 'resnet18' });
`;

test('npm pack, install into an empty folder, type-check and run a consumer', () => {
  const dir = tempDir('package');
  const packed = execFileSync('npm', ['pack', '--silent', '--pack-destination', dir], {
    cwd: ROOT,
    encoding: 'utf8',
  })
    .trim()
    .split('\n')
    .pop() as string;
  const tarball = path.join(dir, packed);
  expect(fs.existsSync(tarball)).toBe(true);

  const consumer = path.join(dir, 'consumer');
  fs.mkdirSync(consumer);
  fs.writeFileSync(
    path.join(consumer, 'package.json'),
    JSON.stringify({
      name: 'consumer',
      version: '1.0.0',
      private: true,
      allowScripts: { 'lumbar-stenosis': true },
    }),
  );
  execFileSync('npm', ['install', '--no-audit', '--no-fund', tarball], { cwd: consumer, stdio: 'inherit' });
  const addon = path.join(consumer, 'node_modules', 'lumbar-stenosis', 'build', 'Release', 'stenosis.node');
  expect(fs.existsSync(addon)).toBe(true);

  fs.writeFileSync(path.join(consumer, 'main.ts'), CONSUMER);
  fs.writeFileSync(path.join(consumer, 'misuse.ts'), MISUSE);
  const tsc = path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
  const common = [
    '--strict',
    '--module',
    'commonjs',
    '--target',
    'ES2022',
    '--esModuleInterop',
    '--types',
    'node',
  ];
  const typeRoots = ['--typeRoots', path.join(ROOT, 'node_modules', '@types')];
  execFileSync(process.execPath, [tsc, ...common, ...typeRoots, 'main.ts'], {
    cwd: consumer,
    stdio: 'inherit',
  });
  let misuseOutput = '';
  try {
    execFileSync(process.execPath, [tsc, ...common, ...typeRoots, '--noEmit', 'misuse.ts'], {
      cwd: consumer,
      encoding: 'utf8',
    });
  } catch (error) {
    misuseOutput = String((error as { stdout?: string }).stdout);
  }
  expect(misuseOutput).toMatch(/Type 'string' is not assignable to type 'Backbone'/);

  const output = execFileSync(process.execPath, ['main.js', RESNET18], { cwd: consumer, encoding: 'utf8' });
  const result = JSON.parse(output.trim().split('\n').pop() as string);
  expect(result.featureDim).toBe(512);
  expect(Number.isFinite(result.loss)).toBe(true);
  fs.rmSync(dir, { recursive: true, force: true });
});
