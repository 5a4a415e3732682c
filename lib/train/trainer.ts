import {
  checkBoolean,
  checkInteger,
  checkKnownKeys,
  checkNumber,
  invalidArgument,
  isPlainObject,
  native,
  StenosisError,
} from '../errors';
import { loadAddon } from '../native/loader';
import type { NativeTrainer } from '../native/types';
import { StenosisClassifier, toNamedTensors, type NamedTensor } from '../model/classifier';
import { LEVELS, SEVERITIES } from '../model/levels';
import { checkBatch, checkModelBatch, type FeatureBatch, type ImageBatch } from '../model/tensors';
import { versions } from '../runtime';
import { classWeightsFromLabels } from './class-weights';
import type { FeatureCache } from './features';
import { evaluateSamples, fit, type EvaluationResult, type FitOptions, type FitResult } from './fit';
import type { SampleCache, PipelineOptions } from '../data/loader';
import type { Sample } from '../data/samples';
import { LIMITS } from '../limits';

export interface TrainerOptions {
  /** AdamW learning rate; default 1e-4. */
  learningRate?: number;
  /** AdamW decoupled weight decay; default 0.02 (the reference's documented command). */
  weightDecay?: number;
  /** AdamW betas; default [0.9, 0.999]. */
  betas?: readonly [number, number];
  /** AdamW epsilon; default 1e-8. */
  eps?: number;
  /** Cross-entropy weight per class (normal/mild, moderate, severe). Overrides trainingLabels. */
  classWeights?: readonly [number, number, number];
  /** Training split labels (0..2): weights are computed as N / (3 n_c). Without either, the loss is unweighted. */
  trainingLabels?: ArrayLike<number>;
  /**
   * Dynamic loss scaling, which fp16 needs so that small gradients do not flush to zero in half precision: the
   * loss is multiplied by a scale before back-propagation and the gradients divided by it before clipping and
   * the update; an update whose gradients hold inf or NaN is skipped and the scale halved, and after
   * `lossScaleGrowthInterval` updates without one it doubles. Default: on when the classifier runs in fp16.
   */
  dynamicLossScaling?: boolean;
  /** The scale dynamic loss scaling starts at, in [1, 2^128] (beyond, every fp32 loss overflows); default 2^16. */
  initialLossScale?: number;
  /** Updates in a row without an overflow after which the scale doubles; default 2000. */
  lossScaleGrowthInterval?: number;
}

/** Where dynamic loss scaling stands. */
export interface LossScaleState {
  /** The factor the loss is multiplied by (1 when dynamic loss scaling is off). */
  scale: number;
  /** Updates since the scale last changed. */
  goodSteps: number;
  /** Updates skipped because a gradient was not finite, since the trainer was created. */
  skippedSteps: number;
  /** Whether the last step() skipped its update. */
  lastStepSkipped: boolean;
}

export interface EvalResult {
  /** [batch, 3] row-major class probabilities. */
  probabilities: Float32Array;
  /** Weighted cross-entropy, when the batch had labels. */
  loss: number | null;
}

/** What a checkpoint records beside the tensors; `user` is whatever the caller passed to save(). */
export interface CheckpointMetadata {
  format: 'lumbar-stenosis-checkpoint';
  version: number;
  savedAt: string;
  classes: readonly string[];
  levels: readonly string[];
  backbone: StenosisClassifier['backbone']['metadata'];
  classifier: {
    embeddingDim: number;
    hiddenSizes: readonly [number, number];
    dropout: number;
    frozenBackboneEval: boolean;
    precision: string;
    fp32Evaluation?: boolean;
    memoryFormat: string;
  };
  trainer: {
    learningRate: number;
    weightDecay: number;
    betas: readonly [number, number];
    eps: number;
    classWeights: number[] | null;
    dynamicLossScaling?: boolean;
  };
  trainableTensors: string[];
  versions: ReturnType<typeof versions>;
  user: Record<string, unknown>;
}

/**
 * AdamW over exactly the classifier's trainable parameters, with class-weighted cross-entropy.
 * A training step is split into backward() and step() so that accumulation or a gradient all-reduce can go
 * between; trainStep() does both.
 */
export class Trainer {
  readonly classifier: StenosisClassifier;
  readonly learningRate: number;
  readonly weightDecay: number;
  readonly betas: readonly [number, number];
  readonly eps: number;
  /** The class weights in use, or null for an unweighted loss. */
  readonly classWeights: number[] | null;
  /** Whether the loss is scaled dynamically (see TrainerOptions.dynamicLossScaling). */
  readonly dynamicLossScaling: boolean;
  /** @internal */
  readonly native: NativeTrainer;
  private currentLearningRate: number;

  private constructor(
    classifier: StenosisClassifier,
    nativeTrainer: NativeTrainer,
    options: Required<
      Omit<TrainerOptions, 'trainingLabels' | 'classWeights' | 'initialLossScale' | 'lossScaleGrowthInterval'>
    > & {
      classWeights: number[] | null;
    },
  ) {
    this.classifier = classifier;
    this.native = nativeTrainer;
    this.learningRate = options.learningRate;
    this.currentLearningRate = options.learningRate;
    this.weightDecay = options.weightDecay;
    this.betas = options.betas;
    this.eps = options.eps;
    this.classWeights = options.classWeights;
    this.dynamicLossScaling = options.dynamicLossScaling;
  }

  /**
   * Creates the optimizer over the parameters that are trainable now.
   * @throws StenosisError ERR_MISSING_CLASS when weights are computed from labels that lack a class.
   */
  static async create(classifier: StenosisClassifier, options: TrainerOptions = {}): Promise<Trainer> {
    if (!(classifier instanceof StenosisClassifier))
      throw invalidArgument('a StenosisClassifier', 'classifier', classifier);
    if (!isPlainObject(options)) throw invalidArgument('an options object', 'options', options);
    checkKnownKeys(options, 'Trainer options', [
      'learningRate',
      'weightDecay',
      'betas',
      'eps',
      'classWeights',
      'trainingLabels',
      'dynamicLossScaling',
      'initialLossScale',
      'lossScaleGrowthInterval',
    ]);
    const betas = options.betas ?? [0.9, 0.999];
    if (!Array.isArray(betas) || betas.length !== 2)
      throw invalidArgument('two betas [beta1, beta2]', 'betas', betas);
    let classWeights: number[] | null = null;
    if (options.classWeights !== undefined) {
      const weights = options.classWeights;
      if (!Array.isArray(weights) || weights.length !== SEVERITIES.length) {
        throw invalidArgument('three class weights', 'classWeights', weights);
      }
      classWeights = weights.map((w, i) =>
        checkNumber(w, `classWeights[${i}]`, LIMITS.classWeight.min, LIMITS.classWeight.max),
      );
      if (classWeights.every((w) => w === 0))
        throw invalidArgument('at least one positive weight', 'classWeights', weights);
    } else if (options.trainingLabels !== undefined) {
      classWeights = classWeightsFromLabels(options.trainingLabels);
    }
    const resolved = {
      learningRate: checkNumber(
        options.learningRate ?? 1e-4,
        'learningRate',
        LIMITS.learningRate.min,
        LIMITS.learningRate.max,
      ),
      weightDecay: checkNumber(
        options.weightDecay ?? 0.02,
        'weightDecay',
        LIMITS.weightDecay.min,
        LIMITS.weightDecay.max,
      ),
      betas: [
        checkNumber(betas[0], 'betas[0]', 0, 1, true),
        checkNumber(betas[1], 'betas[1]', 0, 1, true),
      ] as const,
      eps: checkNumber(options.eps ?? 1e-8, 'eps', 0, 1),
      classWeights,
      dynamicLossScaling: checkBoolean(
        options.dynamicLossScaling ?? classifier.precision === 'fp16',
        'dynamicLossScaling',
      ),
    };
    if (!resolved.dynamicLossScaling) {
      // Without dynamic loss scaling these would be ignored: say so instead.
      for (const name of ['initialLossScale', 'lossScaleGrowthInterval'] as const) {
        if (options[name] !== undefined) {
          throw new StenosisError(
            'ERR_INVALID_ARG',
            `${name} applies to dynamic loss scaling, which is off (it is on by default in fp16 only): ` +
              `set dynamicLossScaling: true or leave ${name} out`,
          );
        }
      }
    }
    const initialLossScale = checkNumber(options.initialLossScale ?? 65536, 'initialLossScale', 1, 2 ** 128);
    const lossScaleGrowthInterval = checkInteger(
      options.lossScaleGrowthInterval ?? 2000,
      'lossScaleGrowthInterval',
      1,
    );
    if (resolved.learningRate === 0) throw invalidArgument('a positive number', 'learningRate', 0);
    const nativeTrainer = await native(
      loadAddon().createTrainer(classifier.native, {
        learningRate: resolved.learningRate,
        weightDecay: resolved.weightDecay,
        beta1: resolved.betas[0],
        beta2: resolved.betas[1],
        eps: resolved.eps,
        classWeights,
        dynamicLossScaling: resolved.dynamicLossScaling,
        initialLossScale,
        lossScaleGrowthInterval,
      }),
    );
    return new Trainer(classifier, nativeTrainer, resolved);
  }

  /** Names of the tensors the optimizer updates, in order. */
  get trainableNames(): string[] {
    return this.native.trainableNames();
  }

  /** The learning rate in use now (see setLearningRate). */
  get currentLearningRateValue(): number {
    return this.currentLearningRate;
  }

  /**
   * Forward and backward pass in train mode; gradients are zeroed first unless `accumulate` is set, and the
   * loss is scaled by `lossScale` before back-propagation (1 / k when accumulating k batches). A FeatureBatch
   * trains the level embedding and head alone, and needs a backbone without trainable tensors.
   * @returns the weighted cross-entropy loss of the batch.
   * @throws StenosisError ERR_NUMERIC when the loss is not finite: nothing is back-propagated and the batch-norm
   * statistics are restored, so the model and the pending gradients stay as they were.
   * @throws StenosisError ERR_STATE after setInferenceOnly().
   */
  async backward(
    batch: ImageBatch | FeatureBatch,
    options: { accumulate?: boolean; lossScale?: number } = {},
  ): Promise<number> {
    const { input, data, shape, levels, labels } = this.checked(batch, true);
    const accumulate = checkBoolean(options.accumulate ?? false, 'accumulate');
    const lossScale = checkNumber(options.lossScale ?? 1, 'lossScale', 0, 1e6);
    if (lossScale === 0) throw invalidArgument('a number > 0', 'lossScale', 0);
    return native(
      this.native.backward(data, shape, levels, labels as Int32Array, accumulate, lossScale, input),
    );
  }

  /**
   * One forward and backward pass in train mode, as training runs, that leaves no trace: buffers (batch-norm
   * statistics) and the random generator are restored, its gradients discarded and those pending from
   * backward() kept. Shows before training whether the model runs at its precision (some backbones fail under
   * bf16 in libtorch 1.13).
   * @returns null when it ran, else the error message.
   * @throws StenosisError ERR_STATE after setInferenceOnly().
   */
  async trialStep(batch: ImageBatch): Promise<string | null> {
    const { images, shape, levels, labels } = checkBatch(batch, 'batch', true);
    const failure = await native(this.native.trialStep(images, shape, levels, labels as Int32Array));
    return failure === '' ? null : failure;
  }

  /**
   * Rescales the gradients so that their global L2 norm is at most maxNorm.
   * @returns the norm before clipping.
   * @throws StenosisError ERR_STATE after setInferenceOnly().
   */
  async clipGradients(maxNorm: number): Promise<number> {
    checkNumber(maxNorm, 'maxNorm', LIMITS.gradientClipNorm.min, LIMITS.gradientClipNorm.max);
    if (maxNorm === 0) throw invalidArgument('a positive number', 'maxNorm', 0);
    return native(this.native.clipGradients(maxNorm));
  }

  /** Predicted classes (arg-max, train mode) of the last training batch, for running training metrics. */
  async lastPredictions(): Promise<Int32Array> {
    return native(this.native.lastPredictions());
  }

  /**
   * One AdamW update with the gradients held now. With dynamic loss scaling, an update whose gradients are not
   * finite is skipped (see lossScale()).
   * @throws StenosisError ERR_NUMERIC when gradients stay non-finite down to a loss scale of 2^-24.
   * @throws StenosisError ERR_STATE after setInferenceOnly().
   */
  async step(): Promise<void> {
    await native(this.native.step());
  }

  /**
   * backward() then step().
   * @returns the loss.
   * @throws StenosisError ERR_NUMERIC when the loss is not finite, with the model left as it was and no step taken.
   */
  async trainStep(batch: ImageBatch | FeatureBatch): Promise<number> {
    const { input, data, shape, levels, labels } = this.checked(batch, true);
    return native(this.native.trainStep(data, shape, levels, labels as Int32Array, input));
  }

  /**
   * From now on evaluate() runs in libtorch's inference mode (no autograd bookkeeping at all) and backward(),
   * trainStep(), trialStep(), clipGradients() and step() are refused with ERR_STATE: inference tensors that
   * TorchScript caches during a run could not be saved for backward by a later training step. Pending gradients
   * are dropped. StenosisPredictor sets it; a trainer whose backbone was optimized for inference is inference
   * only already.
   */
  async setInferenceOnly(): Promise<void> {
    await native(this.native.setInferenceOnly());
  }

  /**
   * Class probabilities in eval mode without autograd (inference mode after setInferenceOnly()); the loss too
   * when the batch has labels.
   */
  async evaluate(batch: ImageBatch | FeatureBatch): Promise<EvalResult> {
    const { input, data, shape, levels, labels } = this.checked(batch, false);
    return native(this.native.evaluate(data, shape, levels, labels, input));
  }

  private checked(batch: ImageBatch | FeatureBatch, requireLabels: boolean) {
    return checkModelBatch(batch, 'batch', requireLabels, this.classifier.backbone.featureDim);
  }

  /** Copies of the gradients of the trainable tensors (empty data before the first backward). */
  async gradients(): Promise<NamedTensor[]> {
    return toNamedTensors(await native(this.native.gradients()));
  }

  /** Where dynamic loss scaling stands: the scale, and how many updates it skipped. */
  async lossScale(): Promise<LossScaleState> {
    return native(this.native.lossScale());
  }

  /** Number of step() calls, including updates that dynamic loss scaling skipped (restored by load). */
  async steps(): Promise<number> {
    return native(this.native.steps());
  }

  /** Changes the learning rate of every parameter group (for schedules). */
  async setLearningRate(learningRate: number): Promise<void> {
    checkNumber(learningRate, 'learningRate', LIMITS.learningRate.min, LIMITS.learningRate.max);
    if (learningRate === 0) throw invalidArgument('a positive number', 'learningRate', 0);
    await native(this.native.setLearningRate(learningRate));
    this.currentLearningRate = learningRate;
  }

  /**
   * Trains over epochs of DICOM samples: seeded shuffles and augmentation, validation after each epoch, best
   * and last checkpoints, progress as typed events, cancellable through an AbortSignal (then resumable).
   */
  async fit(options: FitOptions): Promise<FitResult> {
    return fit(this, options);
  }

  /** Probabilities and metrics of labelled samples (eval mode, no augmentation; from cached features if given). */
  async evaluateSamples(
    samples: readonly Sample[],
    cache: SampleCache,
    pipeline: PipelineOptions,
    options: { batchSize: number; skipBadSamples?: boolean; features?: FeatureCache | null },
  ): Promise<EvaluationResult> {
    return evaluateSamples(this, samples, cache, pipeline, options);
  }

  /** The metadata a checkpoint of this trainer records. */
  checkpointMetadata(user: Record<string, unknown> = {}): CheckpointMetadata {
    const c = this.classifier;
    return {
      format: 'lumbar-stenosis-checkpoint',
      version: loadAddon().versions.checkpointFormat,
      savedAt: new Date().toISOString(),
      classes: SEVERITIES,
      levels: LEVELS,
      backbone: c.backbone.metadata,
      classifier: {
        embeddingDim: c.levelEmbedding.dimension,
        hiddenSizes: c.hiddenSizes,
        dropout: c.dropout,
        frozenBackboneEval: c.frozenBackboneEval,
        precision: c.precision,
        fp32Evaluation: c.fp32Evaluation,
        memoryFormat: c.memoryFormat,
      },
      trainer: {
        learningRate: this.currentLearningRate,
        weightDecay: this.weightDecay,
        betas: this.betas,
        eps: this.eps,
        classWeights: this.classWeights,
        dynamicLossScaling: this.dynamicLossScaling,
      },
      trainableTensors: this.trainableNames,
      versions: versions(),
      user,
    };
  }

  /**
   * Writes model (all parameters and buffers) and optimizer state to `path` (torch.save format, readable with
   * Python's torch.load), through a temporary file and a rename.
   */
  async save(path: string, user: Record<string, unknown> = {}): Promise<void> {
    if (typeof path !== 'string' || path.length === 0) throw invalidArgument('a file path', 'path', path);
    if (!isPlainObject(user)) throw invalidArgument('an object', 'metadata', user);
    await native(this.native.save(path, JSON.stringify(this.checkpointMetadata(user))));
  }

  /**
   * Restores a checkpoint written by save() into this model and optimizer (only the model with weightsOnly,
   * e.g. for prediction).
   * @throws StenosisError ERR_CHECKPOINT when the file is missing, damaged or from a different model.
   */
  async load(path: string, options: { weightsOnly?: boolean } = {}): Promise<CheckpointMetadata> {
    if (typeof path !== 'string' || path.length === 0) throw invalidArgument('a file path', 'path', path);
    const weightsOnly = checkBoolean(options.weightsOnly ?? false, 'weightsOnly');
    const json = await native(this.native.load(path, weightsOnly));
    let metadata: CheckpointMetadata;
    try {
      metadata = JSON.parse(json) as CheckpointMetadata;
    } catch {
      throw new StenosisError('ERR_CHECKPOINT', `Checkpoint ${path} has metadata that is not valid JSON`);
    }
    this.currentLearningRate = metadata.trainer?.learningRate ?? this.currentLearningRate;
    return metadata;
  }
}
