import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { Command, Option } from 'commander';
import { native, StenosisError } from '../errors';
import { Backbone, defaultModelsDir } from '../model/backbone';
import { LevelEmbedding } from '../model/level-embedding';
import { StenosisClassifier, type PrecisionOption } from '../model/classifier';
import { LEVELS, SEVERITIES } from '../model/levels';
import { loadAddon, packageRoot } from '../native/loader';
import { checkDevice, setNumThreads, getNumThreads, versions } from '../runtime';
import { Trainer } from '../train/trainer';
import { writeFileAtomic } from '../data/atomic';
import type { CropOptions, PipelineOptions } from '../data/loader';
import { SeededRandom } from '../data/random';
import { describeRsnaDataset, readRsnaDataset } from '../data/rsna';
import { countProblems, type DataProblem, type Sample } from '../data/samples';
import { describeProblems, validateSamples } from '../data/validate';
import {
  findSplitOverlaps,
  readReferenceCsv,
  splitByStudy,
  writeReferenceCsv,
  type Splits,
} from '../data/splits';
import { ensureSyntheticDataset } from '../data/synthetic';
import { plotConfusionMatrix, plotModelComparison, plotTrainingCurves } from '../report/plots';
import { bootstrapOverStudies, computeMetrics, perLevelMetrics, type Metrics } from '../report/metrics';
import type { EpochRecord, SelectionMetric } from '../train/fit';
import {
  choiceOption,
  integerInRange,
  maxThreads,
  numberInRange,
  parseArgv,
  parseClassWeights,
  parseDevice,
  parseBoolean,
  parseNonNegativeInt,
  parsePositiveInt,
  parsePositiveNumber,
  parseThreads,
  positiveNumberUpTo,
  printError,
} from './options';
import { LIMITS } from '../limits';

/** The quick preset used when no data is given: small backbone, few epochs, the synthetic dataset. */
export const QUICK_PRESET = {
  models: ['resnet18'],
  numEpochs: 4,
  batchSize: 16,
  imageSize: 128,
  unfreezeLastN: 62,
  learningRate: 3e-4,
  // Warm-up then cosine decay: with a constant rate the validation figures of so short a run swing from epoch
  // to epoch (seed 0: validation macro F1 0.91 at epoch 3, 0.81 at epoch 4, test 0.67 against 0.99 here).
  lrSchedule: 'cosine',
  warmupSteps: 30,
  syntheticStudies: 300,
  cropMm: 60,
} as const;

export interface TrainOptions {
  data?: string;
  trainCsv?: string;
  valCsv?: string;
  testCsv?: string;
  models: string[];
  modelsDir: string;
  batchSize: number;
  numEpochs: number;
  learningRate: number;
  weightDecay: number;
  levelEmbeddings: number;
  freezeBackbone: boolean;
  unfreezeLastN: number;
  frozenBackboneEval: boolean;
  classWeights?: [number, number, number];
  dropout: number;
  output: string;
  device: string;
  threads?: number;
  seed: number;
  imageSize?: number;
  cropMm?: number;
  cropPx?: number;
  rotation: number;
  flip: number;
  scaling: 'minmax' | 'percentile';
  syntheticStudies: number;
  skipBadSamples: boolean;
  selectBy: SelectionMetric;
  resume: boolean;
  precision: PrecisionOption;
  channelsLast: boolean;
  lrSchedule: 'constant' | 'cosine';
  warmupSteps: number;
  earlyStopping?: number;
  clipGradNorm?: number;
  accumulationSteps: number;
  json: boolean;
}

/** One line of the JSON-lines event stream (`--json`). */
export type TrainEvent =
  | { event: 'start'; preset: boolean; options: Record<string, unknown>; torch: string; threads: number }
  | {
      event: 'dataset';
      source: string;
      samples: number;
      studies: number;
      /** Labelled levels of train.csv that did not become a sample. */
      leftOut: number;
      /** Problems by kind; not every problem drops a sample. */
      problems: Record<string, number>;
    }
  /** Test macro F1 of the majority-class and stratified-random baselines. */
  | { event: 'baselines'; samples: number; majority: number; stratified: number }
  | { event: 'split'; train: number; val: number; test: number }
  | {
      event: 'model-start';
      model: string;
      featureDim: number;
      trainableTensors: number;
      trainableParameters: number;
      /** The precision training runs at ('auto' resolved, after any fallback to fp32). */
      precision: string;
      fp32Evaluation: boolean;
      memoryFormat: string;
    }
  | {
      event: 'step';
      model: string;
      epoch: number;
      step: number;
      steps: number;
      loss: number;
      samplesPerSecond: number;
    }
  | ({ event: 'epoch'; model: string } & EpochRecord)
  | { event: 'checkpoint'; model: string; kind: 'best' | 'last' | 'resume'; path: string; epoch: number }
  | { event: 'model-end'; model: string; val: Metrics; test: Metrics; seconds: number }
  | { event: 'model-failed'; model: string; code: string; message: string }
  /** `model` is absent for a warning about the whole run (data, splits). */
  | { event: 'warning'; model?: string; message: string }
  | { event: 'resumed'; model: string; epoch: number; step: number }
  | { event: 'features'; model: string; samples: number; seconds: number; train: boolean }
  | { event: 'interrupted'; model: string; epoch: number; step: number; path: string }
  | { event: 'end'; output: string; models: number; failed: number };

class Reporter {
  private lastLineLength = 0;
  constructor(private readonly json: boolean) {}

  emit(event: TrainEvent, text?: string): void {
    if (this.json) {
      process.stdout.write(JSON.stringify(event) + '\n');
    } else if (text !== undefined) {
      this.clearProgress();
      process.stdout.write(text + '\n');
    }
  }

  /** A progress bar redrawn in place on a terminal; nothing when output is not a terminal (epoch lines suffice). */
  progress(event: Extract<TrainEvent, { event: 'step' }>, etaSeconds: number): void {
    if (this.json) {
      this.emit(event);
      return;
    }
    if (!process.stdout.isTTY) return;
    const width = 24;
    const filled = Math.round((width * event.step) / event.steps);
    const line =
      `  epoch ${event.epoch} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${event.step}/${event.steps}` +
      ` loss ${event.loss.toFixed(4)} ${event.samplesPerSecond.toFixed(1)} samples/s ETA ${Math.ceil(etaSeconds)}s`;
    process.stdout.write('\r' + line.padEnd(this.lastLineLength));
    this.lastLineLength = line.length;
  }

  clearProgress(): void {
    if (this.lastLineLength > 0 && !this.json) {
      process.stdout.write('\r' + ' '.repeat(this.lastLineLength) + '\r');
      this.lastLineLength = 0;
    }
  }
}

/** Exports the small ResNet-18 of the quick preset into the models folder when it is not there yet. */
function ensureQuickBackbone(modelsDir: string, log: (line: string) => void): void {
  const registry = path.join(modelsDir, 'registry.json');
  if (fs.existsSync(registry) && JSON.parse(fs.readFileSync(registry, 'utf8')).models?.resnet18) return;
  const python = process.env.STENOSIS_PYTHON ?? '/usr/bin/python3';
  log(`exporting a random-weight ResNet-18 into ${modelsDir} (first run only)`);
  try {
    execFileSync(
      python,
      [path.join(packageRoot(), 'scripts', 'export_backbones.py'), 'resnet18', '--out', modelsDir],
      {
        stdio: ['ignore', 'ignore', 'pipe'],
      },
    );
  } catch (error) {
    const stderr = String((error as { stderr?: Buffer }).stderr ?? '');
    throw new StenosisError(
      'ERR_MODEL_FILE',
      `could not export ResNet-18 with ${python} ` +
        `(needs Debian's python3-torch: bash scripts/install-system-deps.sh): ${stderr.trim().split('\n').pop()}`,
    );
  }
}

function predictionsCsv(samples: readonly Sample[], probabilities: Float32Array): string {
  const lines = ['row_id,study_id,level,label,normal_mild,moderate,severe,predicted'];
  samples.forEach((s, i) => {
    const p = [probabilities[3 * i], probabilities[3 * i + 1], probabilities[3 * i + 2]];
    const predicted = p.indexOf(Math.max(...p));
    lines.push(
      [
        s.rowId,
        s.studyId,
        LEVELS[s.level],
        s.label === null ? '' : SEVERITIES[s.label],
        ...p.map((v) => v.toFixed(6)),
        SEVERITIES[predicted],
      ].join(','),
    );
  });
  return lines.join('\n') + '\n';
}

function metricsCsv(
  model: string,
  split: string,
  m: Metrics,
  perLevel: Record<string, Metrics>,
  bootstrap: ReturnType<typeof bootstrapOverStudies>,
): string {
  const rows = [['model', 'split', 'metric', 'value']];
  const add = (metric: string, value: number) => rows.push([model, split, metric, String(value)]);
  add('accuracy', m.accuracy);
  for (const [cls, c] of Object.entries(m.perClass)) {
    add(`${cls}_precision`, c.precision);
    add(`${cls}_recall`, c.recall);
    add(`${cls}_f1`, c.f1);
    add(`${cls}_support`, c.support);
  }
  for (const kind of ['macro', 'weighted'] as const) {
    add(`${kind}_precision`, m[kind].precision);
    add(`${kind}_recall`, m[kind].recall);
    add(`${kind}_f1`, m[kind].f1);
  }
  add('score', m.score.total);
  add('score_level_loss', m.score.levelLoss);
  add('score_any_severe_loss', m.score.anySevereLoss);
  add('macro_f1_ci95_low', bootstrap.macroF1.low);
  add('macro_f1_ci95_high', bootstrap.macroF1.high);
  add('score_ci95_low', bootstrap.score.low);
  add('score_ci95_high', bootstrap.score.high);
  for (const [level, lm] of Object.entries(perLevel)) {
    add(`${level}_samples`, lm.samples);
    add(`${level}_accuracy`, lm.accuracy);
    add(`${level}_macro_f1`, lm.macro.f1);
    add(`${level}_score`, lm.score.total);
  }
  m.confusion.forEach((row, t) =>
    row.forEach((count, p) => add(`confusion_${SEVERITIES[t]}_as_${SEVERITIES[p]}`, count)),
  );
  return rows.map((r) => r.join(',')).join('\n') + '\n';
}

function modelSlug(model: string): string {
  return path
    .basename(model)
    .replace(/\.pt$/, '')
    .replace(/[^A-Za-z0-9_.-]/g, '_');
}

/** Options that change what a run computes: a resumed run must have the same ones to continue it exactly. */
const RESUME_OPTIONS = [
  'data',
  'trainCsv',
  'valCsv',
  'testCsv',
  'syntheticStudies',
  'batchSize',
  'numEpochs',
  'learningRate',
  'weightDecay',
  'levelEmbeddings',
  'freezeBackbone',
  'unfreezeLastN',
  'frozenBackboneEval',
  'classWeights',
  'dropout',
  'seed',
  'imageSize',
  'cropMm',
  'cropPx',
  'rotation',
  'flip',
  'scaling',
  'selectBy',
  'precision',
  'channelsLast',
  'lrSchedule',
  'warmupSteps',
  'clipGradNorm',
  'accumulationSteps',
] as const;

/** Refuses to continue from a checkpoint written by a run whose options differ in what shapes the run. */
async function checkSameOptions(checkpoint: string, options: TrainOptions): Promise<void> {
  const metadata = JSON.parse(await native(loadAddon().readCheckpointMetadata(checkpoint))) as {
    user?: { options?: Record<string, unknown> };
  };
  const saved = metadata.user?.options ?? {};
  const now = options as unknown as Record<string, unknown>;
  const same = (key: string) => JSON.stringify(saved[key] ?? null) === JSON.stringify(now[key] ?? null);
  const changed = RESUME_OPTIONS.filter((key) => !same(key));
  if (changed.length === 0) return;
  const flag = (key: string) => `--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
  const describe = (value: unknown) =>
    value === undefined || value === null ? 'not given' : JSON.stringify(value);
  throw new StenosisError(
    'ERR_RESUME',
    `${checkpoint} was written by a run with other options; give the same ones with --resume (` +
      changed
        .map((key) => `${flag(key)}: ${describe(saved[key])} then, ${describe(now[key])} now`)
        .join('; ') +
      ')',
  );
}

/**
 * With --resume, what to do with one model: continue its interrupted run, keep the results of a run that
 * already finished, or start; with the checkpoint whose options the run must match (checked in main before
 * anything is written).
 */
function resumeSource(
  slug: string,
  options: TrainOptions,
): { kind: 'resume' | 'finished'; checkpoint: string } | { kind: 'start' } {
  const models = path.join(options.output, 'trained_models');
  const resume = path.join(models, `${slug}_resume.ckpt`);
  if (fs.existsSync(resume)) return { kind: 'resume', checkpoint: resume };
  const best = path.join(models, `${slug}_best.ckpt`);
  const finished = ['val', 'test'].every((split) => fs.existsSync(metricsFile(slug, split, options)));
  return finished && fs.existsSync(best) ? { kind: 'finished', checkpoint: best } : { kind: 'start' };
}

function metricsFile(slug: string, split: string, options: TrainOptions): string {
  return path.join(options.output, 'results', `${slug}_${split}_metrics.json`);
}

async function trainModel(
  model: string,
  splits: Splits,
  options: TrainOptions,
  reporter: Reporter,
  signal: AbortSignal,
): Promise<{ val: Metrics; test: Metrics } | null> {
  const started = Date.now();
  const slug = modelSlug(model);
  if (options.resume) {
    const plan = resumeSource(slug, options);
    if (plan.kind === 'finished') {
      const load = (split: string) =>
        JSON.parse(fs.readFileSync(metricsFile(slug, split, options), 'utf8')) as Metrics;
      reporter.emit(
        { event: 'warning', model, message: `${slug} finished in the earlier run; its results are kept` },
        `\n== ${slug}: finished in the earlier run; its results in ${path.join(options.output, 'results')} are kept`,
      );
      return { val: load('val'), test: load('test') };
    }
    if (plan.kind === 'start') {
      reporter.emit(
        { event: 'warning', model, message: `nothing to resume for ${slug}; training from the start` },
        `\nnothing to resume for ${slug} (no ${slug}_resume.ckpt in ${path.join(options.output, 'trained_models')}): ` +
          'training from the start',
      );
    }
  }
  const backbone = await Backbone.load(model, {
    device: options.device as 'cpu',
    modelsDir: options.modelsDir,
    ...(options.imageSize ? { inputSize: options.imageSize } : {}),
  });
  for (const warning of backbone.warnings)
    reporter.emit({ event: 'warning', model, message: warning }, `warning: ${warning}`);
  const unfrozen = options.freezeBackbone
    ? await backbone.unfreezeLast(options.unfreezeLastN)
    : await backbone.unfreezeLast(Number.MAX_SAFE_INTEGER);
  const build = async (precision: PrecisionOption, fp32Evaluation = false) => {
    const classifier = await StenosisClassifier.create({
      backbone,
      levelEmbedding: new LevelEmbedding({ dimension: options.levelEmbeddings }),
      dropout: options.dropout,
      seed: options.seed,
      frozenBackboneEval: options.frozenBackboneEval,
      precision,
      fp32Evaluation,
      memoryFormat: options.channelsLast && backbone.metadata.convolutional ? 'channels_last' : 'contiguous',
    });
    const trainer = await Trainer.create(classifier, {
      learningRate: options.learningRate,
      weightDecay: options.weightDecay,
      ...(options.classWeights
        ? { classWeights: options.classWeights }
        : { trainingLabels: splits.train.map((s) => s.label as number) }),
    });
    return { classifier, trainer };
  };
  let { classifier, trainer } = await build(options.precision);
  // 'auto' is resolved by the classifier (bf16 or fp32 on this CPU, bf16 or fp16 on a GPU).
  const precision = classifier.precision;
  if (precision !== 'fp32') {
    // Before training, a trial step (train mode, leaving no trace) and an evaluation (eval mode, no autograd):
    // some backbones fail under bf16 in libtorch 1.13 in one of them only, which must not surface as a crash
    // in the middle of an epoch.
    const size = backbone.inputSize;
    const trial = {
      images: new Float32Array(2 * 3 * size * size),
      shape: [2, 3, size, size] as const,
      levels: [0, 4],
      labels: [0, 2],
    };
    const lastLine = (message: string) =>
      message
        .split('\n')
        .filter((line) => line.trim())
        .pop() ?? message;
    const trainFailure = await trainer.trialStep(trial);
    const evalFailure = trainFailure
      ? null
      : await trainer.evaluate(trial).then(
          () => null,
          (error: Error) => error.message,
        );
    if (trainFailure) {
      const reason = lastLine(trainFailure);
      reporter.emit(
        { event: 'warning', model, message: `${precision} failed (${reason}); falling back to fp32` },
        `warning: ${slug} does not train in ${precision} with libtorch ${versions().torch} (${reason}); ` +
          'training in fp32 instead',
      );
      ({ classifier, trainer } = await build('fp32'));
    } else if (evalFailure) {
      // ViT-B/16 in libtorch 1.13: its attention takes a fast path in eval mode that fails under bf16.
      const reason = lastLine(evalFailure);
      reporter.emit(
        {
          event: 'warning',
          model,
          message: `${precision} evaluation failed (${reason}); evaluating in fp32`,
        },
        `warning: ${slug} does not evaluate in ${precision} with libtorch ${versions().torch} ` +
          `(${reason}); training in ${precision}, evaluating in fp32`,
      );
      ({ classifier, trainer } = await build(precision, true));
    }
  }
  const trainable = await classifier.parameterCount(true);
  reporter.emit(
    {
      event: 'model-start',
      model,
      featureDim: backbone.featureDim,
      trainableTensors: trainer.trainableNames.length,
      trainableParameters: trainable,
      precision: classifier.precision,
      fp32Evaluation: classifier.fp32Evaluation,
      memoryFormat: classifier.memoryFormat,
    },
    `\n== ${slug}: ${backbone.metadata.architecture}, ${backbone.featureDim} features, ` +
      `input ${backbone.inputSize} px, ` +
      `${classifier.precision}${options.precision === 'auto' ? ' (auto)' : ''}` +
      `${classifier.fp32Evaluation ? ' (evaluation fp32)' : ''}` +
      `${classifier.memoryFormat === 'channels_last' ? ' channels-last' : ''}, ` +
      `${unfrozen.length} backbone tensors unfrozen, ${trainable.toLocaleString('en-US')} trainable parameters` +
      (backbone.metadata.pretrained
        ? ''
        : ' (RANDOM backbone weights: export with --pretrained for real use)'),
  );
  const pipeline: PipelineOptions = {
    size: backbone.inputSize,
    crop: options.cropPx
      ? { size: options.cropPx, unit: 'px' }
      : options.cropMm
        ? { size: options.cropMm, unit: 'mm' }
        : null,
    scaling: options.scaling,
    mean: backbone.metadata.mean,
    std: backbone.metadata.std,
    flipProbability: options.flip,
    rotationDegrees: options.rotation,
  };
  const checkpointDir = path.join(options.output, 'trained_models');
  const resultsOut = path.join(options.output, 'results');
  const fitted = await trainer.fit({
    train: splits.train,
    val: splits.val,
    pipeline,
    epochs: options.numEpochs,
    batchSize: options.batchSize,
    seed: options.seed,
    checkpointDir,
    name: slug,
    selectBy: options.selectBy,
    skipBadSamples: options.skipBadSamples,
    signal,
    resume: options.resume,
    accumulationSteps: options.accumulationSteps,
    gradientClipNorm: options.clipGradNorm ?? null,
    earlyStoppingPatience: options.earlyStopping ?? null,
    schedule:
      options.lrSchedule === 'cosine'
        ? { type: 'cosine', warmupSteps: options.warmupSteps }
        : { type: 'constant' },
    metadata: { model, backbonePath: backbone.path, command: 'train', options: { ...options } },
    onEvent: (event) => {
      if (event.type === 'step') {
        reporter.progress(
          {
            event: 'step',
            model,
            epoch: event.epoch,
            step: event.step,
            steps: event.steps,
            loss: event.loss,
            samplesPerSecond: event.samplesPerSecond,
          },
          event.etaSeconds,
        );
      } else if (event.type === 'epoch') {
        const r = event.record;
        reporter.emit(
          { event: 'epoch', model, ...r },
          `epoch ${r.epoch}/${options.numEpochs}  ` +
            `train loss ${r.trainLoss.toFixed(4)} acc ${r.trainAccuracy.toFixed(3)}  ` +
            `val loss ${r.valLoss?.toFixed(4)}  val acc ${r.valAccuracy.toFixed(3)}  ` +
            `val macro F1 ${r.valMacroF1.toFixed(3)}  val score ${r.valScore.toFixed(4)}  ` +
            `(${r.seconds.toFixed(1)} s, ${r.samplesPerSecond.toFixed(1)} samples/s` +
            (r.lossScale
              ? `, loss scale ${r.lossScale.scale}, ${r.lossScale.skippedSteps} updates skipped)`
              : ')'),
        );
      } else if (event.type === 'features') {
        reporter.emit(
          { event: 'features', model, samples: event.samples, seconds: event.seconds, train: event.train },
          `backbone features computed once for ${event.samples} samples (${event.seconds.toFixed(1)} s): ` +
            `frozen backbone in eval mode; ${event.train ? 'training and validation run' : 'validation runs'} ` +
            'the head on them' +
            (event.train ? '' : ' (training images are augmented, so their features are recomputed)'),
        );
      } else if (event.type === 'checkpoint') {
        reporter.emit({ event: 'checkpoint', model, kind: event.kind, path: event.path, epoch: event.epoch });
      } else if (event.type === 'resumed') {
        reporter.emit(
          { event: 'resumed', model, epoch: event.epoch, step: event.step },
          `resuming ${slug} at epoch ${event.epoch}, step ${event.step}`,
        );
      } else if (event.type === 'interrupted') {
        reporter.emit(
          { event: 'interrupted', model, epoch: event.epoch, step: event.step, path: event.path },
          `interrupted: state saved to ${event.path}; run the same command with --resume to continue`,
        );
      }
    },
  });
  writeFileAtomic(
    path.join(resultsOut, `${slug}_history.json`),
    JSON.stringify(fitted.history, null, 2) + '\n',
  );
  const plotsOut = path.join(options.output, 'plots');
  plotTrainingCurves(
    path.join(plotsOut, `${slug}_training_curves.png`),
    `${slug} - training curves (seed ${options.seed})`,
    fitted.history,
  );
  if (fitted.interrupted) return null;
  await trainer.load(fitted.bestPath);
  const results: Record<string, Metrics> = {};
  for (const split of ['val', 'test'] as const) {
    const evaluated = await trainer.evaluateSamples(splits[split], fitted.cache, pipeline, {
      ...options,
      features: fitted.features,
    });
    results[split] = evaluated.metrics;
    const labels = evaluated.samples.map((x) => x.label as number);
    const studies = evaluated.samples.map((x) => x.studyId);
    const perLevel = perLevelMetrics(
      evaluated.probabilities,
      labels,
      studies,
      evaluated.samples.map((x) => x.level),
    );
    const bootstrap = bootstrapOverStudies(evaluated.probabilities, labels, studies, { seed: options.seed });
    writeFileAtomic(
      metricsFile(slug, split, options),
      JSON.stringify(
        {
          model,
          split,
          bestEpoch: fitted.bestEpoch,
          selectedBy: options.selectBy,
          precision: classifier.precision,
          evaluationPrecision: classifier.fp32Evaluation ? 'fp32' : classifier.precision,
          memoryFormat: classifier.memoryFormat,
          ...evaluated.metrics,
          bootstrap,
          perLevel,
        },
        null,
        2,
      ) + '\n',
    );
    plotConfusionMatrix(
      path.join(plotsOut, `${slug}_${split}_confusion.png`),
      `${slug} - ${split === 'val' ? 'validation' : 'test'} confusion matrix`,
      evaluated.metrics.confusion,
      SEVERITIES,
    );
    writeFileAtomic(
      path.join(resultsOut, `${slug}_${split}_metrics.csv`),
      metricsCsv(slug, split, evaluated.metrics, perLevel, bootstrap),
    );
    writeFileAtomic(
      path.join(resultsOut, `${slug}_${split}_predictions.csv`),
      predictionsCsv(evaluated.samples, evaluated.probabilities),
    );
  }
  const seconds = (Date.now() - started) / 1000;
  reporter.emit(
    { event: 'model-end', model, val: results.val, test: results.test, seconds },
    `best epoch ${fitted.bestEpoch} (validation ${options.selectBy}): ` +
      `test accuracy ${results.test.accuracy.toFixed(3)}, test macro F1 ${results.test.macro.f1.toFixed(3)}, ` +
      `test score ${results.test.score.total.toFixed(4)}  (${seconds.toFixed(0)} s)`,
  );
  return { val: results.val, test: results.test };
}

/** Majority-class and stratified-random baselines of a split, for honest comparison. */
function baselines(
  train: readonly Sample[],
  test: readonly Sample[],
  seed: number,
): { majority: Metrics; stratified: Metrics } {
  const counts = [0, 0, 0];
  for (const s of train) counts[s.label as number]++;
  const prior = counts.map((c) => c / Math.max(train.length, 1));
  const majorityClass = prior.indexOf(Math.max(...prior));
  const labels = test.map((s) => s.label as number);
  const studies = test.map((s) => s.studyId);
  const majority = new Float32Array(test.length * 3);
  const stratified = new Float32Array(test.length * 3);
  const rng = new SeededRandom(seed + 1);
  test.forEach((_, i) => {
    majority.set(
      prior.map((_, c) => (c === majorityClass ? 1 : 0)),
      3 * i,
    );
    const r = rng.next();
    const drawn = r < prior[0] ? 0 : r < prior[0] + prior[1] ? 1 : 2;
    stratified.set(
      [0, 1, 2].map((c) => (c === drawn ? 1 : 0)),
      3 * i,
    );
  });
  return {
    majority: computeMetrics(majority, labels, studies),
    stratified: computeMetrics(stratified, labels, studies),
  };
}

export function buildCommand(): Command {
  return new Command('train.js')
    .description(
      'Train and evaluate stenosis graders. With no --data or split CSVs, runs a quick preset on the embedded ' +
        `synthetic RSNA-format dataset (${QUICK_PRESET.syntheticStudies} studies, ` +
        `ResNet-18 at ${QUICK_PRESET.imageSize} px, ${QUICK_PRESET.numEpochs} epochs, ` +
        `batch ${QUICK_PRESET.batchSize}, crop ${QUICK_PRESET.cropMm} mm, cosine learning rate); ` +
        "explicit flags override it. Exit code 0 when every model trained, 3 when some failed (the others' " +
        'results are written), 1 when all failed or the run did, 2 for flags that contradict each other.\n' +
        'snake_case flags (--batch_size) work as well as kebab-case (--batch-size).',
    )
    .option('--data <dir>', 'RSNA-layout folder (train.csv, train_label_coordinates.csv, train_images/...)')
    .option(
      '--train-csv <file>',
      'reference-layout split CSV (image_path,row_id,level,severity); with --val-csv and --test-csv',
    )
    .option('--val-csv <file>', 'reference-layout validation CSV')
    .option('--test-csv <file>', 'reference-layout test CSV')
    .option(
      '--models <names...>',
      'backbones: vit swin beit efficientnet resnet152 convnext resnet18, or TorchScript paths',
      ['vit', 'swin', 'beit', 'efficientnet', 'resnet152', 'convnext'],
    )
    .option('--models-dir <dir>', 'folder of exported backbones (registry.json)', defaultModelsDir())
    .option('--batch-size <n>', 'batch size', parsePositiveInt, 32)
    .option('--num-epochs <n>', 'epochs', parsePositiveInt, 30)
    .option(
      '--learning-rate <lr>',
      `AdamW learning rate, in (0, ${LIMITS.learningRate.max}]`,
      positiveNumberUpTo(LIMITS.learningRate.max),
      1e-4,
    )
    .option(
      '--weight-decay <wd>',
      `AdamW weight decay, in [${LIMITS.weightDecay.min}, ${LIMITS.weightDecay.max}]`,
      numberInRange(LIMITS.weightDecay.min, LIMITS.weightDecay.max),
      0.02,
    )
    .option(
      '--level-embeddings <dim>',
      `level embedding dimension, in [${LIMITS.levelEmbedding.min}, ${LIMITS.levelEmbedding.max}]`,
      integerInRange(LIMITS.levelEmbedding),
      256,
    )
    .addOption(
      new Option(
        '--freeze-backbone <bool>',
        'freeze the backbone except the last n tensors (true/false, 1/0, yes/no)',
      )
        .argParser(parseBoolean)
        .default(true),
    )
    .option(
      '--unfreeze-last-n <n>',
      'parameter tensors left trainable at the end of a frozen backbone',
      parseNonNegativeInt,
      32,
    )
    .addOption(
      new Option(
        '--frozen-backbone-eval [bool]',
        'hold a fully frozen backbone (--unfreeze-last-n 0) in eval mode while training, as the reference does ' +
          'not; its features are then computed once and cached (training too when --flip 0 --rotation 0); ' +
          'alone, or true/false, 1/0, yes/no',
      )
        .argParser(parseBoolean)
        .default(false),
    )
    .option(
      '--class-weights <w,w,w>',
      'loss weights of normal/mild, moderate, severe (default: N / (3 n_c) from the training labels)',
      parseClassWeights,
    )
    .option('--dropout <p>', 'dropout of the head, in [0, 1)', numberInRange(0, 1, true), 0.1)
    .option('--output <dir>', 'output folder', 'outputs')
    .option('--device <device>', 'cpu, cuda or cuda:N', parseDevice, 'cpu')
    .option(
      '--threads <n>',
      `libtorch threads (default: all cores; at most 4 times the cores, here ${maxThreads()})`,
      parseThreads,
    )
    .option(
      '--seed <n>',
      'seed of splits, shuffles, augmentation and head initialization',
      parseNonNegativeInt,
      0,
    )
    .option(
      '--image-size <px>',
      `input size, in [${LIMITS.inputSize.min}, ${LIMITS.inputSize.max}] (default: the backbone's)`,
      integerInRange(LIMITS.inputSize),
    )
    .option(
      '--crop-mm <mm>',
      'crop a square of this many millimetres around the labelled level (PixelSpacing)',
      parsePositiveNumber,
    )
    .option('--crop-px <px>', 'crop a square of this many pixels around the labelled level', parsePositiveInt)
    .option('--rotation <degrees>', 'random rotation range for training, 0..180', numberInRange(0, 180), 10)
    .option('--flip <p>', 'horizontal flip probability for training, 0..1', numberInRange(0, 1), 0.5)
    .addOption(choiceOption('--scaling <kind>', 'intensity scaling', ['minmax', 'percentile'], 'minmax'))
    .option(
      '--synthetic-studies <n>',
      `studies of the generated dataset when no data is given, in [${LIMITS.syntheticStudies.min}, ` +
        `${LIMITS.syntheticStudies.max}]`,
      integerInRange(LIMITS.syntheticStudies),
      QUICK_PRESET.syntheticStudies,
    )
    .option('--skip-bad-samples', 'skip unreadable images (reported) instead of stopping', false)
    .addOption(
      choiceOption(
        '--select-by <metric>',
        'validation metric that picks the best checkpoint (score: lower is better)',
        ['macroF1', 'score'],
        'macroF1',
      ),
    )
    .addOption(
      choiceOption(
        '--precision <kind>',
        'backbone autocast: fp32, bf16 (AMX/AVX512-BF16 CPUs, GPUs), fp16 (CUDA only), ' +
          'auto (bf16 where the device computes it natively, else fp32 on a CPU and fp16 on a GPU)',
        ['fp32', 'bf16', 'fp16', 'auto'],
        'fp32',
      ),
    )
    .addOption(
      new Option(
        '--channels-last [bool]',
        'channels-last memory format for convolutional backbones (alone, or true/false, 1/0, yes/no)',
      )
        .argParser(parseBoolean)
        .default(false),
    )
    .option('--resume', 'continue an interrupted run (Ctrl-C saves its state) in the same --output', false)
    .addOption(
      choiceOption(
        '--lr-schedule <kind>',
        'learning-rate schedule (cosine: linear warm-up, then cosine decay to 0)',
        ['constant', 'cosine'],
        'constant',
      ),
    )
    .option('--warmup-steps <n>', 'warm-up optimizer steps of the cosine schedule', parseNonNegativeInt, 0)
    .option(
      '--early-stopping <epochs>',
      'stop after this many epochs without a better validation figure (default: off)',
      parsePositiveInt,
    )
    .option(
      '--clip-grad-norm <norm>',
      `clip the global gradient L2 norm, in (0, ${LIMITS.gradientClipNorm.max}] (default: off)`,
      positiveNumberUpTo(LIMITS.gradientClipNorm.max),
    )
    .option('--accumulation-steps <n>', 'batches accumulated into one optimizer step', parsePositiveInt, 1)
    .option(
      '--json',
      'print JSON-lines events (types: TrainEvent in lib/cli/train.ts) instead of text',
      false,
    );
}

/**
 * Flags that the run would ignore or that contradict each other, as one message naming them; null when there
 * are none. `given` holds the options given on the command line, `preset` whether the quick preset applies.
 */
export function conflictingFlags(
  options: TrainOptions,
  given: ReadonlySet<string>,
  preset: boolean,
): string | null {
  if (options.frozenBackboneEval && (!options.freezeBackbone || options.unfreezeLastN !== 0)) {
    const whose = given.has('unfreezeLastN') ? '' : preset ? " (the quick preset's)" : ' (the default)';
    const now = !options.freezeBackbone
      ? '--freeze-backbone false trains the whole backbone'
      : `--unfreeze-last-n ${options.unfreezeLastN}${whose} leaves backbone tensors trainable`;
    return (
      '--frozen-backbone-eval holds a fully frozen backbone in eval mode and needs --freeze-backbone true ' +
      `and --unfreeze-last-n 0; here ${now}`
    );
  }
  if (options.cropMm !== undefined && options.cropPx !== undefined && given.has('cropMm')) {
    return '--crop-mm and --crop-px both give the crop size; give one of them';
  }
  if (given.has('warmupSteps') && options.lrSchedule !== 'cosine') {
    return (
      `--warmup-steps is the warm-up of --lr-schedule cosine; with --lr-schedule ${options.lrSchedule} ` +
      'there is none (add --lr-schedule cosine, or leave --warmup-steps out)'
    );
  }
  if (given.has('syntheticStudies') && !preset) {
    return (
      `--synthetic-studies sizes the generated dataset, used only when no data is given; ` +
      `${options.data ? '--data' : '--train-csv/--val-csv/--test-csv'} gives the data`
    );
  }
  return null;
}

/** Runs the train command on argv (as process.argv); resolves to the exit code. */
export async function main(argv: readonly string[]): Promise<number> {
  const command = buildCommand();
  const exit = parseArgv(command, argv);
  if (exit !== null) return exit;
  const raw = command.opts() as TrainOptions;
  const given = new Set(Object.keys(raw).filter((key) => command.getOptionValueSource(key) === 'cli'));
  const preset = !raw.data && !raw.trainCsv;
  const options: TrainOptions = { ...raw };
  if (preset) {
    if (!given.has('models')) options.models = [...QUICK_PRESET.models];
    if (!given.has('numEpochs')) options.numEpochs = QUICK_PRESET.numEpochs;
    if (!given.has('batchSize')) options.batchSize = QUICK_PRESET.batchSize;
    if (!given.has('imageSize')) options.imageSize = QUICK_PRESET.imageSize;
    if (!given.has('unfreezeLastN')) options.unfreezeLastN = QUICK_PRESET.unfreezeLastN;
    if (!given.has('learningRate')) options.learningRate = QUICK_PRESET.learningRate;
    if (!given.has('cropMm') && !given.has('cropPx')) options.cropMm = QUICK_PRESET.cropMm;
    if (!given.has('lrSchedule')) options.lrSchedule = QUICK_PRESET.lrSchedule;
    if (!given.has('warmupSteps')) options.warmupSteps = QUICK_PRESET.warmupSteps;
  }
  if ((raw.trainCsv || raw.valCsv || raw.testCsv) && !(raw.trainCsv && raw.valCsv && raw.testCsv)) {
    process.stderr.write('error: --train-csv, --val-csv and --test-csv go together\n');
    return 2;
  }
  const conflict = conflictingFlags(options, given, preset);
  if (conflict !== null) {
    process.stderr.write(`error: ${conflict}\n`);
    return 2;
  }
  options.output = path.resolve(options.output);
  // Absolute, so that a resumed run started from another folder compares equal.
  for (const key of ['data', 'trainCsv', 'valCsv', 'testCsv'] as const) {
    const value = options[key];
    if (value) options[key] = path.resolve(value);
  }
  const outputStat = fs.statSync(options.output, { throwIfNoEntry: false });
  if (outputStat && !outputStat.isDirectory()) {
    process.stderr.write(
      `error: --output ${options.output} exists and is not a folder; give a folder for the results\n`,
    );
    return 2;
  }
  const reporter = new Reporter(options.json);
  const log = (line: string) => reporter.emit({ event: 'warning', message: line }, line);
  try {
    if (options.threads) setNumThreads(options.threads);
    // Checked before anything is read or written: a run refused here leaves the output folder as it was.
    checkDevice(options.device, '--device');
    if (options.precision === 'fp16' && options.device === 'cpu') {
      throw new StenosisError(
        'ERR_INVALID_ARG',
        '--precision fp16 needs a CUDA device (--device cuda); on the CPU use bf16, fp32 or auto',
      );
    }
    if (options.resume) {
      for (const model of options.models) {
        const source = resumeSource(modelSlug(model), options);
        if (source.kind !== 'start') await checkSameOptions(source.checkpoint, options);
      }
    }
    reporter.emit(
      { event: 'start', preset, options: { ...options }, torch: versions().torch, threads: getNumThreads() },
      (preset
        ? `quick preset: synthetic RSNA-format dataset, ${options.models.join(', ')} at ${options.imageSize} px, ` +
          `${options.numEpochs} epoch${options.numEpochs === 1 ? '' : 's'} ` +
          '(give --data for real data; the reference settings are ' +
          '--models vit swin beit efficientnet resnet152 convnext --num_epochs 30)\n'
        : '') +
        `libtorch ${versions().torch}, ${getNumThreads()} threads, device ${options.device}, output ${options.output}`,
    );
    let splits: Splits;
    const dataProblems: DataProblem[] = [];
    if (options.trainCsv) {
      splits = {
        train: readReferenceCsv(options.trainCsv, dataProblems),
        val: readReferenceCsv(options.valCsv as string, dataProblems),
        test: readReferenceCsv(options.testCsv as string, dataProblems),
      };
      if (dataProblems.length > 0 && !options.skipBadSamples) {
        throw new StenosisError(
          'ERR_DATA',
          `the split CSVs have ${dataProblems.length} bad row(s) (--skip-bad-samples leaves them out):\n` +
            describeProblems(dataProblems),
        );
      }
      const overlaps = findSplitOverlaps(splits);
      if (overlaps.length > 0) {
        reporter.emit(
          { event: 'warning', message: `${overlaps.length} row(s) appear in two splits` },
          `warning: ${overlaps.length} row(s) appear in two splits (evaluation data leaks into training):\n` +
            overlaps
              .slice(0, 5)
              .map((line) => `  - ${line}`)
              .join('\n') +
            (overlaps.length > 5 ? `\n  ... and ${overlaps.length - 5} more` : ''),
        );
      }
    } else {
      let folder = options.data;
      if (!folder) {
        folder = await ensureSyntheticDataset({ studies: options.syntheticStudies, seed: 0 }, (line) =>
          log(line),
        );
        ensureQuickBackbone(options.modelsDir, log);
      }
      const dataset = await readRsnaDataset(folder);
      dataProblems.push(...dataset.problems);
      reporter.emit(
        {
          event: 'dataset',
          source: dataset.folder,
          samples: dataset.samples.length,
          studies: dataset.studies.length,
          leftOut: dataset.labelled - dataset.samples.length,
          problems: countProblems(dataset.problems),
        },
        describeRsnaDataset(dataset),
      );
      splits = splitByStudy(dataset.samples, options.seed);
      const splitDir = path.join(options.output, 'splits');
      writeReferenceCsv(path.join(splitDir, 'train.csv'), splits.train);
      writeReferenceCsv(path.join(splitDir, 'val.csv'), splits.val);
      writeReferenceCsv(path.join(splitDir, 'test.csv'), splits.test);
    }
    // Validation pass: every image is decoded once, so that all unreadable files, and the samples that cannot be
    // cropped as asked (x/y outside the image, mm without PixelSpacing), are reported together.
    const crop: CropOptions | null = options.cropPx
      ? { size: options.cropPx, unit: 'px' }
      : options.cropMm
        ? { size: options.cropMm, unit: 'mm' }
        : null;
    const all = [...splits.train, ...splits.val, ...splits.test];
    const checked = await validateSamples(all, undefined, crop);
    dataProblems.push(...checked.problems);
    writeFileAtomic(
      path.join(options.output, 'results', 'data_problems.json'),
      JSON.stringify({ counts: countProblems(dataProblems), problems: dataProblems }, null, 2) + '\n',
    );
    if (checked.problems.length > 0) {
      const counts = countProblems(checked.problems);
      const what = (skipped: boolean) =>
        [
          [counts['unreadable-image'], skipped ? 'unreadable image(s)' : 'image(s) cannot be read'],
          [counts['no-pixel-spacing'], 'image(s) without the PixelSpacing a crop in mm needs'],
          [counts['bad-coordinate'], 'x/y outside the image'],
        ]
          .filter(([n]) => n)
          .map(([n, text]) => `${n} ${text}`)
          .join(', ');
      if (!options.skipBadSamples) {
        throw new StenosisError(
          'ERR_DATA',
          `${what(false)} (--skip-bad-samples leaves them out):\n` + describeProblems(checked.problems),
        );
      }
      const valid = new Set(checked.valid);
      splits = {
        train: splits.train.filter((s) => valid.has(s)),
        val: splits.val.filter((s) => valid.has(s)),
        test: splits.test.filter((s) => valid.has(s)),
      };
      reporter.emit(
        { event: 'warning', message: `skipped ${what(true)}` },
        `skipped ${what(true)} (${all.length - checked.valid.length} sample(s) left out), ` +
          'listed in results/data_problems.json:\n' +
          describeProblems(checked.problems, 5),
      );
    }
    if (splits.train.length === 0) {
      throw new StenosisError(
        'ERR_DATA',
        `no training sample is left${options.trainCsv ? ` from ${options.trainCsv}` : ''}: ` +
          'every row was left out (see results/data_problems.json)',
      );
    }
    const uncropped = [...splits.train, ...splits.val, ...splits.test].filter(
      (s) => s.x === null || s.y === null,
    );
    if (crop && uncropped.length > 0) {
      log(
        `${uncropped.length} sample(s) have no x/y (such as the fallback slice of a study without coordinates) ` +
          'and are used whole, uncropped',
      );
    }
    for (const [name, samples] of Object.entries(splits)) {
      if (samples.some((s: Sample) => s.label === null))
        throw new StenosisError('ERR_DATA', `the ${name} split has unlabelled samples`);
    }
    reporter.emit(
      { event: 'split', train: splits.train.length, val: splits.val.length, test: splits.test.length },
      `${options.trainCsv ? 'splits from the CSVs' : 'split by study'}: train ${splits.train.length}, ` +
        `val ${splits.val.length}, test ${splits.test.length} samples`,
    );
    for (const [name, list] of [
      ['validation', splits.val],
      ['test', splits.test],
    ] as const) {
      const absent = SEVERITIES.filter((_, c) => list.length > 0 && !list.some((s) => s.label === c));
      if (absent.length > 0) {
        log(
          `warning: the ${name} split holds no ${absent.join(' or ')} sample; macro F1 counts an absent class ` +
            `as 0 (at most ${((SEVERITIES.length - absent.length) / SEVERITIES.length).toFixed(2)} here): ` +
            'use more studies for figures that mean something',
        );
      }
    }
    const base = baselines(splits.train, splits.test, options.seed);
    reporter.emit(
      {
        event: 'baselines',
        samples: splits.test.length,
        majority: base.majority.macro.f1,
        stratified: base.stratified.macro.f1,
      },
      `baselines on test: majority class macro F1 ${base.majority.macro.f1.toFixed(3)}, ` +
        `stratified random macro F1 ${base.stratified.macro.f1.toFixed(3)}`,
    );
    const summary: string[] = ['model,split,accuracy,macro_f1,weighted_f1,score,status'];
    let failed = 0;
    // Ctrl-C: finish the current step, save a resumable checkpoint, exit; a second Ctrl-C exits at once.
    const controller = new AbortController();
    const onSigint = () => {
      // process.exit would run exit handlers that tear libtorch down under the step still running.
      if (controller.signal.aborted) loadAddon().exitNow(130);
      controller.abort();
      reporter.clearProgress();
      process.stderr.write('\nstopping after the current step (Ctrl-C again to quit at once)\n');
    };
    process.on('SIGINT', onSigint);
    let interrupted = false;
    const comparison: { model: string; accuracy: number; macroF1: number; score: number }[] = [];
    try {
      for (const model of options.models) {
        try {
          const result = await trainModel(model, splits, options, reporter, controller.signal);
          if (!result) {
            interrupted = true;
            break;
          }
          for (const [split, m] of [
            ['val', result.val],
            ['test', result.test],
          ] as const) {
            summary.push(
              [modelSlug(model), split, m.accuracy, m.macro.f1, m.weighted.f1, m.score.total, 'ok'].join(','),
            );
          }
          comparison.push({
            model: modelSlug(model),
            accuracy: result.test.accuracy,
            macroF1: result.test.macro.f1,
            score: result.test.score.total,
          });
        } catch (error) {
          failed++;
          reporter.clearProgress();
          const err = error as { code?: string; message?: string };
          reporter.emit(
            { event: 'model-failed', model, code: err.code ?? 'ERR', message: err.message ?? String(error) },
            `model ${model} failed: ${err.message ?? String(error)}`,
          );
          summary.push([modelSlug(model), '', '', '', '', '', `failed: ${err.code ?? 'error'}`].join(','));
        }
      }
    } finally {
      process.removeListener('SIGINT', onSigint);
    }
    if (interrupted) return 130;
    summary.push(
      ...['majority', 'stratified_random'].map((name) => {
        const m = name === 'majority' ? base.majority : base.stratified;
        return [`baseline_${name}`, 'test', m.accuracy, m.macro.f1, m.weighted.f1, m.score.total, 'ok'].join(
          ',',
        );
      }),
    );
    writeFileAtomic(path.join(options.output, 'results', 'summary.csv'), summary.join('\n') + '\n');
    plotModelComparison(path.join(options.output, 'plots', 'model_comparison.png'), comparison);
    reporter.emit(
      { event: 'end', output: options.output, models: options.models.length, failed },
      `results in ${path.join(options.output, 'results')}`,
    );
    // 3: some models failed, and the results of the others are written; 1: every model failed.
    return failed === 0 ? 0 : failed === options.models.length ? 1 : 3;
  } catch (error) {
    reporter.clearProgress();
    printError(error);
    return 1;
  }
}
