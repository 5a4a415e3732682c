// example: library
const { Backbone, LevelEmbedding, StenosisClassifier, Trainer, setNumThreads } = require('lumbar-stenosis');

async function main() {
  setNumThreads(2);
  // A TorchScript backbone exported by scripts/export_backbones.py; its metadata JSON sits beside it.
  const backbone = await Backbone.load('models/resnet18.pt', { device: 'cpu' });
  await backbone.unfreezeLast(32); // the reference's "last 32 layers": the last 32 parameter tensors

  const classifier = await StenosisClassifier.create({
    backbone,
    levelEmbedding: new LevelEmbedding({ dimension: 256 }),
    dropout: 0.1,
    seed: 0,
  });
  const trainer = await Trainer.create(classifier, {
    learningRate: 1e-4,
    weightDecay: 0.02,
    trainingLabels: [0, 0, 0, 1, 2, 0, 1, 2], // class weights N / (3 n_c) from the training split
  });

  // Preprocessed images: [batch, 3, size, size], row-major, ImageNet-normalized.
  const size = backbone.inputSize;
  const batch = {
    images: new Float32Array(4 * 3 * size * size).map((_, i) => Math.sin(i)),
    shape: [4, 3, size, size],
    levels: ['L1/L2', 'L3/L4', 'L4/L5', 'L5/S1'],
    labels: ['normal_mild', 'moderate', 'severe', 'normal_mild'],
  };
  for (let step = 1; step <= 3; step++)
    console.log(`step ${step} loss ${(await trainer.trainStep(batch)).toFixed(4)}`);

  const { probabilities } = await trainer.evaluate(batch); // eval mode, no autograd
  console.log('P(severe) at L4/L5:', probabilities[2 * 3 + 2].toFixed(3));
  await trainer.save('stenosis.ckpt', { note: 'three steps' }); // torch.save format: Python's torch.load reads it
}

main().catch((error) => {
  console.error(`${error.code ?? 'error'}: ${error.message}`);
  process.exit(1);
});
