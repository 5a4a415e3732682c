// Interrupting fit() and resuming it ends bit-identical to an uninterrupted run with the same seed (CPU):
// model, optimizer, both random generators (data order and augmentation; dropout) and the position in the epoch
// are all restored.
import fs from 'node:fs';
import path from 'node:path';
import { Backbone, LevelEmbedding, StenosisClassifier, Trainer } from '../../lib';
import { readRsnaDataset } from '../../lib/data/rsna';
import { splitByStudy } from '../../lib/data/splits';
import { generateSyntheticDataset } from '../../lib/data/synthetic';
import type { FitEvent } from '../../lib/train/fit';
import { RESNET18, sameBits, smallPipeline, tempDir } from '../helpers';

const PIPELINE = smallPipeline(true);

async function makeTrainer(seed: number, trainLabels: number[]): Promise<Trainer> {
  const backbone = await Backbone.load(RESNET18, { inputSize: 48 });
  await backbone.unfreezeLast(6);
  const classifier = await StenosisClassifier.create({
    backbone,
    levelEmbedding: new LevelEmbedding({ dimension: 16 }),
    dropout: 0.3,
    seed,
  });
  return Trainer.create(classifier, { learningRate: 1e-3, trainingLabels: trainLabels });
}

// Interrupted in the first epoch, and in a later one, where the resumed process's sample cache starts empty
// while the uninterrupted run's is full.
test.each([
  [1, 2],
  [2, 1],
])(
  'a fit() interrupted at epoch %i step %i and resumed ends bit-identical to an uninterrupted one',
  async (stopEpoch, stopStep) => {
    const dir = tempDir('resume');
    await generateSyntheticDataset(path.join(dir, 'data'), { studies: 16, seed: 2, imageSize: 128 });
    const { samples } = await readRsnaDataset(path.join(dir, 'data'));
    const splits = splitByStudy(samples, 1, [0.6, 0.2, 0.2]);
    const labels = splits.train.map((s) => s.label as number);
    const common = {
      train: splits.train,
      val: splits.val,
      pipeline: PIPELINE,
      epochs: 2,
      batchSize: 8,
      seed: 7,
      name: 'm',
    };

    const straight = await makeTrainer(1, labels);
    const a = await straight.fit({ ...common, checkpointDir: path.join(dir, 'a') });
    expect(a.interrupted).toBe(false);

    const controller = new AbortController();
    const events: FitEvent[] = [];
    const first = await makeTrainer(1, labels);
    const b1 = await first.fit({
      ...common,
      checkpointDir: path.join(dir, 'b'),
      signal: controller.signal,
      onEvent: (event) => {
        events.push(event);
        if (event.type === 'step' && event.epoch === stopEpoch && event.step === stopStep) controller.abort();
      },
    });
    expect(b1.interrupted).toBe(true);
    expect(events.at(-1)).toMatchObject({ type: 'interrupted', epoch: stopEpoch, step: stopStep });
    expect(fs.existsSync(path.join(dir, 'b', 'm_resume.ckpt'))).toBe(true);

    // A new process would build a fresh model (here with another seed: the checkpoint replaces it all).
    const second = await makeTrainer(99, labels);
    const resumedEvents: FitEvent[] = [];
    const b2 = await second.fit({
      ...common,
      checkpointDir: path.join(dir, 'b'),
      resume: true,
      onEvent: (event) => resumedEvents.push(event),
    });
    expect(resumedEvents[0]).toMatchObject({ type: 'resumed', epoch: stopEpoch, step: stopStep });
    expect(b2.interrupted).toBe(false);
    expect(fs.existsSync(path.join(dir, 'b', 'm_resume.ckpt'))).toBe(false);
    // The running training figures of the interrupted epoch count the steps before the interruption too.
    const figures = (r: (typeof a.history)[number]) => [
      r.trainLoss,
      r.trainAccuracy,
      r.trainMacroF1,
      r.valLoss,
      r.valMacroF1,
    ];
    expect(b2.history.map(figures)).toEqual(a.history.map(figures));
    const pa = await straight.classifier.parameters();
    const pb = await second.classifier.parameters();
    expect(pb.map((p) => p.name)).toEqual(pa.map((p) => p.name));
    const differing = pa.filter((p, i) => !sameBits(p.data, pb[i].data)).map((p) => p.name);
    expect(differing).toEqual([]);
    expect(await second.steps()).toBe(await straight.steps());
    fs.rmSync(dir, { recursive: true, force: true });
  },
);
