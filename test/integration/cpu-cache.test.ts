// The caching CPU allocator (native/core/cpu_cache.h): large tensors are reused across train steps, results do
// not depend on it, its limit is honoured, and a malformed STENOSIS_CPU_CACHE_MB is refused by name.
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import {
  Backbone,
  cpuCacheStats,
  LevelEmbedding,
  setCpuCacheLimit,
  StenosisClassifier,
  Trainer,
} from '../../lib';
import { makeBatch, RESNET18, ROOT } from '../helpers';

// ResNet-18 at 64 px, batch 8: the stem's activations alone are 2 MiB, above the 1 MiB caching threshold.
const SIZE = 64;
const BATCH = 8;

async function losses(steps: number): Promise<number[]> {
  const backbone = await Backbone.load(RESNET18, { inputSize: SIZE });
  await backbone.unfreezeLast(8);
  const classifier = await StenosisClassifier.create({
    backbone,
    levelEmbedding: new LevelEmbedding({ dimension: 8 }),
    seed: 3,
  });
  const trainer = await Trainer.create(classifier, { classWeights: [1, 2, 4] });
  const batch = makeBatch(SIZE, BATCH, 11);
  const result: number[] = [];
  for (let i = 0; i < steps; i++) result.push(await trainer.trainStep(batch));
  return result;
}

// The limit is the process's: later test files in this process get the default back.
const initialLimit = cpuCacheStats().limitBytes;
afterAll(() => setCpuCacheLimit(initialLimit));

test('train steps reuse kept blocks and give the same losses as without the cache', async () => {
  setCpuCacheLimit(0);
  const uncached = await losses(3);
  expect(cpuCacheStats()).toMatchObject({ installed: true, limitBytes: 0, cachedBytes: 0, blocks: 0 });

  setCpuCacheLimit(512 * 2 ** 20);
  const before = cpuCacheStats();
  const cached = await losses(3);
  const after = cpuCacheStats();
  expect(after.hits - before.hits).toBeGreaterThan(after.misses - before.misses);
  expect(after.cachedBytes).toBeGreaterThan(0);
  expect(after.cachedBytes).toBeLessThanOrEqual(512 * 2 ** 20);
  // Reused blocks hold old values, fresh ones zeros: a kernel that read memory before writing it would differ.
  expect(cached).toEqual(uncached);
});

test('lowering the limit returns kept blocks at once', async () => {
  setCpuCacheLimit(512 * 2 ** 20);
  await losses(1);
  expect(cpuCacheStats().cachedBytes).toBeGreaterThan(2 ** 20);
  setCpuCacheLimit(2 ** 20);
  expect(cpuCacheStats().cachedBytes).toBeLessThanOrEqual(2 ** 20);
  expect(() => setCpuCacheLimit(-1)).toThrow(/bytes/);
});

test('STENOSIS_CPU_CACHE_MB sets the limit, and a malformed value is refused by name', () => {
  // The compiled package, as a user's process loads it.
  const script = `const lib = require(${JSON.stringify(path.join(ROOT, 'dist', 'lib'))});
    try { console.log(JSON.stringify(lib.cpuCacheStats())); }
    catch (error) { console.log(JSON.stringify({ code: error.code, message: error.message })); }`;
  const run = (value: string) => {
    const child = spawnSync(process.execPath, ['-e', script], {
      cwd: ROOT,
      env: { ...process.env, STENOSIS_CPU_CACHE_MB: value },
      encoding: 'utf8',
    });
    return JSON.parse(child.stdout.trim().split('\n').pop() ?? '{}');
  };
  expect(run('64')).toMatchObject({ installed: true, limitBytes: 64 * 2 ** 20 });
  expect(run('0')).toMatchObject({ limitBytes: 0 });
  expect(run('').limitBytes).toBeGreaterThan(0); // empty: unset, the default
  for (const value of ['4GB', '-1', '99999999999999999999']) {
    const refused = run(value);
    expect(refused.code).toBe('ERR_INVALID_ARG');
    expect(refused.message).toContain(`STENOSIS_CPU_CACHE_MB must be a whole number of MiB`);
    expect(refused.message).toContain(`'${value}'`);
  }
});
