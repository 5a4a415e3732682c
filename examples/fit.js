// example: fit
const {
  Backbone,
  StenosisClassifier,
  Trainer,
  ensureSyntheticDataset,
  readRsnaDataset,
  splitByStudy,
} = require('lumbar-stenosis');

async function main() {
  // An RSNA-layout folder: the one given, or the synthetic dataset (generated once into the cache).
  const folder = process.argv[2] ?? (await ensureSyntheticDataset());
  const { samples, problems } = await readRsnaDataset(folder);
  console.log(`${samples.length} samples, ${problems.length} rows not usable`);
  const { train, val, test } = splitByStudy(samples, /*seed=*/ 0);

  const backbone = await Backbone.load('models/resnet18.pt', { inputSize: 128 });
  await backbone.unfreezeLast(32);
  const classifier = await StenosisClassifier.create({ backbone, seed: 0 });
  const trainer = await Trainer.create(classifier, {
    learningRate: 3e-4,
    trainingLabels: train.map((s) => s.label),
  });

  const pipeline = {
    size: backbone.inputSize,
    crop: { size: 60, unit: 'mm' }, // around each level's labelled point
    scaling: 'minmax',
    mean: backbone.metadata.mean,
    std: backbone.metadata.std,
    flipProbability: 0.5,
    rotationDegrees: 10,
  };
  const controller = new AbortController();
  process.once('SIGINT', () => controller.abort()); // Ctrl-C: save a resumable state and stop
  const result = await trainer.fit({
    train,
    val,
    pipeline,
    epochs: 2,
    batchSize: 16,
    seed: 0,
    checkpointDir: 'example-checkpoints',
    name: 'resnet18',
    signal: controller.signal,
    onEvent: (event) => {
      if (event.type === 'epoch') {
        const r = event.record;
        console.log(
          `epoch ${r.epoch}: train loss ${r.trainLoss.toFixed(3)}, val macro F1 ${r.valMacroF1.toFixed(3)}`,
        );
      }
    },
  });
  if (result.interrupted) return;

  await trainer.load(result.bestPath);
  const { metrics } = await trainer.evaluateSamples(test, result.cache, pipeline, { batchSize: 16 });
  console.log(
    `test macro F1 ${metrics.macro.f1.toFixed(3)}, competition score ${metrics.score.total.toFixed(3)}`,
  );
}

main().catch((error) => {
  console.error(`${error.code ?? 'error'}: ${error.message}`);
  process.exit(1);
});
