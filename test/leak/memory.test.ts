// Tensors must not leak across the N-API boundary: resident memory stays flat over a thousand train steps.
import { Backbone, LevelEmbedding, StenosisClassifier, Trainer } from '../../lib';
import { makeBatch, RESNET18 } from '../helpers';

const STEPS = 1000;
// Generous: allocator caches and JIT profiling settle in the warm-up; a leak of one 2x3x32x32 input per step
// alone would be 24 MB over the run, a leaked gradient set far more.
const MAX_GROWTH_MB = 64;

test(`resident memory stays flat over ${STEPS} train and eval steps`, async () => {
  const backbone = await Backbone.load(RESNET18, { inputSize: 32 });
  await backbone.unfreezeLast(2);
  const classifier = await StenosisClassifier.create({
    backbone,
    levelEmbedding: new LevelEmbedding({ dimension: 8 }),
  });
  const trainer = await Trainer.create(classifier, { classWeights: [1, 2, 4] });
  const batch = makeBatch(32, 2, 5);
  const rssMb = () => process.memoryUsage().rss / 2 ** 20;

  for (let i = 0; i < 100; i++) await trainer.trainStep(batch);
  global.gc?.();
  const start = rssMb();
  for (let i = 0; i < STEPS; i++) {
    await trainer.trainStep(batch);
    if (i % 10 === 0) {
      await trainer.evaluate(batch);
      await trainer.gradients();
    }
  }
  global.gc?.();
  const growth = rssMb() - start;
  process.stdout.write(
    `memory: ${start.toFixed(0)} MB after warm-up, +${growth.toFixed(1)} MB over ${STEPS} steps\n`,
  );
  expect(growth).toBeLessThan(MAX_GROWTH_MB);
});
