// The library example of the README, run as written: the README's block must equal examples/library.js, and
// that file must run against this package and a ResNet-18 export in models/.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { generateSyntheticDataset } from '../../lib/data/synthetic';
import { MODELS, ROOT, tempDir } from '../helpers';

test('the README library example is examples/library.js and it trains, evaluates and saves', () => {
  const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
  const block = /```js\n(\/\/ example: library\n[\s\S]*?)```/.exec(readme);
  expect(block).not.toBeNull();
  const example = fs.readFileSync(path.join(ROOT, 'examples', 'library.js'), 'utf8');
  expect(block![1]).toBe(example);

  // A user's folder: node_modules/lumbar-stenosis is this package, models/ holds the export.
  const dir = tempDir('readme');
  fs.mkdirSync(path.join(dir, 'node_modules'));
  fs.symlinkSync(ROOT, path.join(dir, 'node_modules', 'lumbar-stenosis'));
  fs.symlinkSync(MODELS, path.join(dir, 'models'));
  fs.writeFileSync(path.join(dir, 'example.js'), example);
  const output = execFileSync(process.execPath, ['example.js'], { cwd: dir, encoding: 'utf8' });
  expect(output).toMatch(/step 1 loss \d+\.\d{4}\nstep 2 loss \d+\.\d{4}\nstep 3 loss \d+\.\d{4}\n/);
  expect(output).toMatch(/P\(severe\) at L4\/L5: 0\.\d{3}/);
  const checkpoint = path.join(dir, 'stenosis.ckpt');
  expect(fs.statSync(checkpoint).size).toBeGreaterThan(1e6);
  fs.rmSync(dir, { recursive: true, force: true });
});

test('the README fit example is examples/fit.js and it trains, validates and tests on DICOM files', async () => {
  const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
  const block = /```js\n(\/\/ example: fit\n[\s\S]*?)```/.exec(readme);
  expect(block).not.toBeNull();
  const example = fs.readFileSync(path.join(ROOT, 'examples', 'fit.js'), 'utf8');
  expect(block![1]).toBe(example);

  const dir = tempDir('readme-fit');
  fs.mkdirSync(path.join(dir, 'node_modules'));
  fs.symlinkSync(ROOT, path.join(dir, 'node_modules', 'lumbar-stenosis'));
  fs.symlinkSync(MODELS, path.join(dir, 'models'));
  fs.writeFileSync(path.join(dir, 'fit.js'), example);
  await generateSyntheticDataset(path.join(dir, 'data'), { studies: 24, seed: 1, imageSize: 128 });
  const output = execFileSync(process.execPath, ['fit.js', path.join(dir, 'data')], {
    cwd: dir,
    encoding: 'utf8',
  });
  expect(output).toMatch(/^\d+ samples, \d+ rows not usable\n/);
  expect(output).toMatch(/epoch 1: train loss \d\.\d{3}, val macro F1 \d\.\d{3}\nepoch 2: /);
  expect(output).toMatch(/test macro F1 \d\.\d{3}, competition score \d+\.\d{3}\n$/);
  expect(fs.existsSync(path.join(dir, 'example-checkpoints', 'resnet18_best.ckpt'))).toBe(true);
  fs.rmSync(dir, { recursive: true, force: true });
});
