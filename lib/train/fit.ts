import fs from 'node:fs';
import path from 'node:path';
import { native, StenosisError } from '../errors';
import { loadAddon } from '../native/loader';
import { batches, SampleCache, type PipelineOptions } from '../data/loader';
import { SeededRandom } from '../data/random';
import type { Sample } from '../data/samples';
import { computeMetrics, type Metrics } from '../report/metrics';
import { canCacheFeatures, FeatureCache } from './features';
import type { Trainer } from './trainer';

/** One epoch's figures. */
export interface EpochRecord {
  epoch: number;
  trainLoss: number;
  /** Running figures over the epoch's (augmented, train-mode) batches. */
  trainAccuracy: number;
  trainMacroF1: number;
  valLoss: number | null;
  valAccuracy: number;
  valMacroF1: number;
  valScore: number;
  seconds: number;
  samplesPerSecond: number;
  /** With dynamic loss scaling (fp16): the scale at the epoch's end and the updates skipped so far. */
  lossScale?: { scale: number; skippedSteps: number };
}

/** Progress of fit(), as typed events. */
export type FitEvent =
  | { type: 'epoch-start'; epoch: number; epochs: number; steps: number }
  | {
      type: 'step';
      epoch: number;
      step: number;
      steps: number;
      loss: number;
      samplesPerSecond: number;
      etaSeconds: number;
    }
  | { type: 'epoch'; record: EpochRecord }
  /** Backbone features computed once for `samples` samples; `train`: training batches use them too. */
  | { type: 'features'; samples: number; seconds: number; train: boolean }
  | { type: 'checkpoint'; kind: 'best' | 'last' | 'resume'; path: string; epoch: number }
  | { type: 'resumed'; epoch: number; step: number; path: string }
  | { type: 'interrupted'; epoch: number; step: number; path: string };

/** Which validation figure picks the best checkpoint. */
export type SelectionMetric = 'macroF1' | 'score';

export interface FitOptions {
  train: readonly Sample[];
  val: readonly Sample[];
  pipeline: PipelineOptions;
  epochs: number;
  batchSize: number;
  /** Seed of the shuffles and augmentation draws. */
  seed: number;
  /** Folder of <name>_best.ckpt, <name>_last.ckpt and, after an interruption, <name>_resume.ckpt. */
  checkpointDir: string;
  name: string;
  /** Best checkpoint by validation macro F1 (higher is better, the default) or competition score (lower). */
  selectBy?: SelectionMetric;
  skipBadSamples?: boolean;
  /** Aborting finishes the current step, saves <name>_resume.ckpt and returns with interrupted set. */
  signal?: AbortSignal;
  /** Continue from <name>_resume.ckpt when it exists. */
  resume?: boolean;
  /** Extra fields recorded in every checkpoint's metadata. */
  metadata?: Record<string, unknown>;
  onEvent?: (event: FitEvent) => void;
  /** Reuse a cache of prepared samples (e.g. across calls). */
  cache?: SampleCache;
  /** Batches accumulated into one optimizer step (default 1: off). */
  accumulationSteps?: number;
  /** Clip the gradients' global L2 norm before each optimizer step (default: no clipping). */
  gradientClipNorm?: number | null;
  /** Learning-rate schedule (default constant, as the reference). */
  schedule?: LearningRateSchedule;
  /** Stop after this many epochs without a better validation figure (default: never). */
  earlyStoppingPatience?: number | null;
  /**
   * Compute backbone features once when they cannot change (no trainable backbone tensor, backbone held in eval
   * mode: frozenBackboneEval) and run the head on them: for validation always, for training when augmentation is
   * off. Default true; it has no effect on other models.
   */
  cacheFeatures?: boolean;
  /** Reuse a feature cache (e.g. across calls); implies cacheFeatures. */
  features?: FeatureCache;
}

export type LearningRateSchedule =
  | { type: 'constant' }
  /** Linear warm-up from 0 over warmupSteps optimizer steps, then cosine decay to minLearningRate. */
  | { type: 'cosine'; warmupSteps: number; minLearningRate?: number };

/** The learning rate of optimizer step `step` (0-based) out of `total`. */
export function scheduledLearningRate(
  schedule: LearningRateSchedule,
  base: number,
  step: number,
  total: number,
): number {
  if (schedule.type === 'constant') return base;
  const warmup = Math.max(0, schedule.warmupSteps);
  const min = schedule.minLearningRate ?? 0;
  if (step < warmup) return (base * (step + 1)) / warmup;
  const progress = total > warmup ? Math.min(1, (step - warmup) / (total - warmup)) : 1;
  return Math.max(min + (base - min) * 0.5 * (1 + Math.cos(Math.PI * progress)), 1e-12);
}

export interface FitResult {
  history: EpochRecord[];
  bestEpoch: number;
  bestPath: string;
  lastPath: string;
  interrupted: boolean;
  /** Set when early stopping ended the run before the last epoch. */
  stoppedEarly: boolean;
  cache: SampleCache;
  /** The backbone features computed once, when the model allowed it (pass to evaluateSamples). */
  features: FeatureCache | null;
}

export interface EvaluationResult {
  metrics: Metrics;
  /** [samples, 3] row-major, in the order of `samples`. */
  probabilities: Float32Array;
  /** The samples evaluated (unreadable ones are left out when skipBadSamples is set). */
  samples: Sample[];
  loss: number | null;
}

/** What a resumable checkpoint records beside the tensors, so that the run continues exactly. */
interface ResumeState {
  epoch: number;
  stepsDone: number;
  rngAtEpochStart: number;
  torchRng: string;
  history: EpochRecord[];
  best: { value: number; epoch: number };
  lossSum: number;
  seen: number;
  /** Running confusion matrix of the epoch's training batches so far. */
  trainConfusion?: number[][];
}

function emptyConfusion(): number[][] {
  return [
    [0, 0, 0],
    [0, 0, 0],
    [0, 0, 0],
  ];
}

/** Accuracy and macro F1 of a confusion matrix (confusion[true][predicted]). */
function confusionFigures(confusion: number[][]): { accuracy: number; macroF1: number } {
  const total = confusion.flat().reduce((a, b) => a + b, 0);
  let correct = 0;
  let f1 = 0;
  for (let c = 0; c < confusion.length; c++) {
    const tp = confusion[c][c];
    correct += tp;
    const predicted = confusion.reduce((sum, row) => sum + row[c], 0);
    const support = confusion[c].reduce((a, b) => a + b, 0);
    const precision = predicted ? tp / predicted : 0;
    const recall = support ? tp / support : 0;
    f1 += precision + recall > 0 ? (2 * precision * recall) / (precision + recall) / confusion.length : 0;
  }
  return { accuracy: total ? correct / total : 0, macroF1: f1 };
}

/** Class probabilities and metrics of a set of labelled samples, in eval mode without augmentation. */
export async function evaluateSamples(
  trainer: Trainer,
  samples: readonly Sample[],
  cache: SampleCache,
  pipeline: PipelineOptions,
  options: { batchSize: number; skipBadSamples?: boolean; features?: FeatureCache | null },
): Promise<EvaluationResult> {
  const kept: Sample[] = [];
  const chunks: Float32Array[] = [];
  let lossSum = 0;
  let lossCount = 0;
  const batchOptions = { batchSize: options.batchSize, train: false, skipBadSamples: options.skipBadSamples };
  const { features } = options;
  if (features) {
    const fillOptions = {
      batchSize: options.batchSize,
      skipBadSamples: options.skipBadSamples,
      pass: 'eval' as const,
    };
    await features.fill(trainer.classifier, samples, cache, pipeline, fillOptions);
  }
  const source = features
    ? features.batches(samples, pipeline, batchOptions)
    : batches(samples, cache, pipeline, batchOptions);
  for await (const { batch, samples: batchSamples } of source) {
    const { probabilities, loss } = await trainer.evaluate(batch);
    chunks.push(probabilities);
    kept.push(...batchSamples);
    if (loss !== null) {
      lossSum += loss * batchSamples.length;
      lossCount += batchSamples.length;
    }
  }
  const probabilities = new Float32Array(kept.length * 3);
  let offset = 0;
  for (const chunk of chunks) {
    probabilities.set(chunk, offset);
    offset += chunk.length;
  }
  const labelled = kept.every((s) => s.label !== null);
  const metrics = computeMetrics(
    labelled ? probabilities : new Float32Array(0),
    labelled ? kept.map((s) => s.label as number) : [],
    labelled ? kept.map((s) => s.studyId) : [],
  );
  return { metrics, probabilities, samples: kept, loss: lossCount ? lossSum / lossCount : null };
}

function better(selectBy: SelectionMetric, value: number, best: number): boolean {
  return selectBy === 'score' ? value < best : value > best;
}

/**
 * Trains for `epochs` epochs with seeded shuffles and augmentation, evaluates on the validation samples after
 * each, and keeps the best and last checkpoints. Interrupted through `signal`, it saves everything needed to
 * continue (model, optimizer, both random generators, the position in the epoch); with `resume` it continues
 * from there and ends bit-identical to an uninterrupted run with the same seed on the CPU.
 */
export async function fit(trainer: Trainer, options: FitOptions): Promise<FitResult> {
  const emit = options.onEvent ?? (() => undefined);
  const selectBy = options.selectBy ?? 'macroF1';
  const cache = options.cache ?? new SampleCache(options.pipeline);
  fs.mkdirSync(options.checkpointDir, { recursive: true });
  const bestPath = path.join(options.checkpointDir, `${options.name}_best.ckpt`);
  const lastPath = path.join(options.checkpointDir, `${options.name}_last.ckpt`);
  const resumePath = path.join(options.checkpointDir, `${options.name}_resume.ckpt`);
  const addon = loadAddon();

  let state: ResumeState = {
    epoch: 1,
    stepsDone: 0,
    rngAtEpochStart: new SeededRandom(options.seed).snapshot,
    torchRng: '',
    history: [],
    best: { value: selectBy === 'score' ? Infinity : -Infinity, epoch: 0 },
    lossSum: 0,
    seen: 0,
  };
  if (options.resume && fs.existsSync(resumePath)) {
    const metadata = await trainer.load(resumePath);
    const saved = (metadata.user as { resume?: ResumeState }).resume;
    if (!saved) throw new StenosisError('ERR_CHECKPOINT', `${resumePath} holds no resume state`);
    state = saved;
    await native(addon.setRngState(new Uint8Array(Buffer.from(saved.torchRng, 'base64'))));
    emit({ type: 'resumed', epoch: state.epoch, step: state.stepsDone, path: resumePath });
  }
  const steps = Math.ceil(options.train.length / options.batchSize);
  const accumulation = options.accumulationSteps ?? 1;
  if (!Number.isInteger(accumulation) || accumulation < 1) {
    throw new StenosisError(
      'ERR_INVALID_ARG',
      `accumulationSteps must be an integer >= 1, got ${accumulation}`,
    );
  }
  const features =
    options.features ??
    (options.cacheFeatures !== false && (await canCacheFeatures(trainer.classifier))
      ? new FeatureCache(trainer.classifier.backbone.featureDim)
      : null);
  // Augmented training images give new features at every pass; only un-augmented ones can be cached.
  const trainOnFeatures =
    features !== null && options.pipeline.flipProbability === 0 && options.pipeline.rotationDegrees === 0;
  if (features) {
    const started = Date.now();
    // Each pass's features as that pass computes them (the precisions differ with fp32Evaluation).
    const fill = (samples: readonly Sample[], pass: 'train' | 'eval') =>
      features.fill(trainer.classifier, samples, cache, options.pipeline, {
        batchSize: options.batchSize,
        skipBadSamples: options.skipBadSamples,
        pass,
      });
    let computed = trainOnFeatures ? await fill(options.train, 'train') : 0;
    computed += await fill(options.val, 'eval');
    emit({
      type: 'features',
      samples: computed,
      seconds: (Date.now() - started) / 1000,
      train: trainOnFeatures,
    });
  }
  const schedule = options.schedule ?? { type: 'constant' };
  const baseLearningRate = trainer.learningRate;
  const totalOptimizerSteps = options.epochs * Math.ceil(steps / accumulation);
  let stoppedEarly = false;
  const result = (interrupted: boolean): FitResult => ({
    history: state.history,
    bestEpoch: state.best.epoch,
    bestPath,
    lastPath,
    interrupted,
    stoppedEarly,
    cache,
    features,
  });
  const checkpointMetadata = (epoch: number, extra: Record<string, unknown> = {}) => ({
    ...options.metadata,
    name: options.name,
    epoch,
    history: state.history,
    selectBy,
    pipeline: options.pipeline,
    ...extra,
  });

  // `state` always describes the start of the coming epoch (or, after a resume, the point where it stopped).
  for (let epoch = state.epoch; epoch <= options.epochs; epoch++) {
    const rng = SeededRandom.fromSnapshot(state.rngAtEpochStart);
    const rngAtEpochStart = rng.snapshot;
    const skip = state.stepsDone;
    let { lossSum, seen } = state;
    const trainConfusion = state.trainConfusion?.map((r) => [...r]) ?? emptyConfusion();
    const started = Date.now();
    let timedSamples = 0;
    emit({ type: 'epoch-start', epoch, epochs: options.epochs, steps });
    let step = 0;
    const trainBatches = {
      batchSize: options.batchSize,
      train: true,
      rng,
      skipBadSamples: options.skipBadSamples,
    };
    const source =
      features && trainOnFeatures
        ? features.batches(options.train, options.pipeline, trainBatches)
        : batches(options.train, cache, options.pipeline, trainBatches);
    for await (const { batch, samples } of source) {
      step++;
      if (step <= skip) continue;
      const loss = await trainer.backward(batch, {
        accumulate: (step - 1) % accumulation !== 0,
        lossScale: 1 / accumulation,
      });
      const predicted = await trainer.lastPredictions();
      predicted.forEach((p, i) => trainConfusion[(batch.labels as Int32Array)[i]][p]++);
      if (step % accumulation === 0 || step === steps) {
        if (options.gradientClipNorm) await trainer.clipGradients(options.gradientClipNorm);
        if (schedule.type !== 'constant') {
          const lr = scheduledLearningRate(
            schedule,
            baseLearningRate,
            await trainer.steps(),
            totalOptimizerSteps,
          );
          await trainer.setLearningRate(lr);
        }
        await trainer.step();
      }
      seen += samples.length;
      timedSamples += samples.length;
      lossSum += loss * samples.length;
      const rate = timedSamples / Math.max((Date.now() - started) / 1000, 1e-3);
      emit({
        type: 'step',
        epoch,
        step,
        steps,
        loss,
        samplesPerSecond: rate,
        etaSeconds: (options.train.length - seen) / rate,
      });
      // Stop only between optimizer steps, so that no half-accumulated gradient is lost.
      if (options.signal?.aborted && step < steps && step % accumulation === 0) {
        const torchRng = Buffer.from(await native(addon.getRngState())).toString('base64');
        const resume: ResumeState = {
          ...state,
          epoch,
          stepsDone: step,
          rngAtEpochStart,
          torchRng,
          lossSum,
          seen,
          trainConfusion: trainConfusion.map((row) => [...row]),
        };
        await trainer.save(resumePath, checkpointMetadata(epoch, { resume }));
        emit({ type: 'interrupted', epoch, step, path: resumePath });
        return result(true);
      }
    }
    // The generator continues from where this epoch's draws left it.
    const nextRng = rng.snapshot;
    const val = await evaluateSamples(trainer, options.val, cache, options.pipeline, {
      ...options,
      features,
    });
    const seconds = (Date.now() - started) / 1000;
    const record: EpochRecord = {
      epoch,
      trainLoss: lossSum / Math.max(seen, 1),
      trainAccuracy: confusionFigures(trainConfusion).accuracy,
      trainMacroF1: confusionFigures(trainConfusion).macroF1,
      valLoss: val.loss,
      valAccuracy: val.metrics.accuracy,
      valMacroF1: val.metrics.macro.f1,
      valScore: val.metrics.score.total,
      seconds,
      samplesPerSecond: timedSamples / Math.max(seconds, 1e-3),
    };
    if (trainer.dynamicLossScaling) {
      const { scale, skippedSteps } = await trainer.lossScale();
      record.lossScale = { scale, skippedSteps };
    }
    state = {
      ...state,
      epoch: epoch + 1,
      stepsDone: 0,
      rngAtEpochStart: nextRng,
      history: [...state.history, record],
      lossSum: 0,
      seen: 0,
      trainConfusion: emptyConfusion(),
    };
    emit({ type: 'epoch', record });
    const value = selectBy === 'score' ? record.valScore : record.valMacroF1;
    if (better(selectBy, value, state.best.value) || state.best.epoch === 0) {
      state.best = { value, epoch };
      await trainer.save(bestPath, checkpointMetadata(epoch, { selectedBy: `validation ${selectBy}` }));
      emit({ type: 'checkpoint', kind: 'best', path: bestPath, epoch });
    }
    // The last checkpoint can resume at the next epoch boundary too.
    const torchRng = Buffer.from(await native(addon.getRngState())).toString('base64');
    await trainer.save(lastPath, checkpointMetadata(epoch, { resume: { ...state, torchRng } }));
    emit({ type: 'checkpoint', kind: 'last', path: lastPath, epoch });
    const patience = options.earlyStoppingPatience;
    if (patience && epoch - state.best.epoch >= patience && epoch < options.epochs) {
      stoppedEarly = true;
      break;
    }
    if (options.signal?.aborted && epoch < options.epochs) {
      await trainer.save(resumePath, checkpointMetadata(epoch, { resume: { ...state, torchRng } }));
      emit({ type: 'interrupted', epoch: epoch + 1, step: 0, path: resumePath });
      return result(true);
    }
  }
  fs.rmSync(resumePath, { force: true });
  return result(false);
}
