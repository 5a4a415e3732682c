import {
  checkBoolean,
  checkInteger,
  checkKnownKeys,
  checkNumber,
  checkOneOf,
  invalidArgument,
  isPlainObject,
  native,
} from '../errors';
import { loadAddon } from '../native/loader';
import type { NativeClassifier, NativeNamedTensor } from '../native/types';
import { Backbone } from './backbone';
import { LevelEmbedding } from './level-embedding';
import { SEVERITIES } from './levels';
import { checkBatch, checkImages, type ImageBatch } from './tensors';

export const PRECISIONS = ['fp32', 'bf16', 'fp16'] as const;
export type Precision = (typeof PRECISIONS)[number];
/** What the precision option accepts: a precision, or 'auto' for preferredPrecision(device). */
export const PRECISION_OPTIONS = [...PRECISIONS, 'auto'] as const;
export type PrecisionOption = (typeof PRECISION_OPTIONS)[number];
export const MEMORY_FORMATS = ['contiguous', 'channels_last'] as const;
export type MemoryFormat = (typeof MEMORY_FORMATS)[number];

export interface StenosisClassifierOptions {
  backbone: Backbone;
  /** Default: a 256-d embedding. */
  levelEmbedding?: LevelEmbedding;
  /** Dropout after each hidden layer of the head; default 0.1 as in the reference. */
  dropout?: number;
  /** Hidden layer widths of the head; default [512, 256]. */
  hiddenSizes?: readonly [number, number];
  /** Keep a fully frozen backbone in eval mode while training (the reference keeps it in train mode). */
  frozenBackboneEval?: boolean;
  /**
   * Autocast dtype of the backbone; head, loss and optimizer stay fp32. 'auto' picks what the backbone's device
   * computes natively (see preferredPrecision); the classifier's `precision` says which. Default fp32.
   */
  precision?: PrecisionOption;
  /**
   * Evaluate (eval mode) in fp32 while training runs at `precision`: for backbones whose eval-mode path fails
   * at that precision in the linked libtorch (ViT-B/16's attention fast path under bf16 in 1.13). Default false.
   */
  fp32Evaluation?: boolean;
  /** channels_last can speed up convolutional backbones. Default contiguous. */
  memoryFormat?: MemoryFormat;
  /** Seed of the head's and embedding's initial weights. Default 0. */
  seed?: number;
}

/** A named tensor copied out of the model: row-major data of the given shape. */
export interface NamedTensor {
  name: string;
  shape: number[];
  data: Float32Array;
}

export function toNamedTensors(items: NativeNamedTensor[]): NamedTensor[] {
  return items.map((item) => ({
    name: item.name,
    shape: item.shape,
    data: item.data ?? new Float32Array(0),
  }));
}

/**
 * Backbone features concatenated with a level embedding, through an MLP head
 * (Linear, LayerNorm, GELU, Dropout, Linear, LayerNorm, GELU, Dropout, Linear) to logits over
 * normal/mild, moderate and severe.
 */
export class StenosisClassifier {
  /** @internal */
  readonly native: NativeClassifier;
  readonly backbone: Backbone;
  readonly levelEmbedding: LevelEmbedding;
  /** Class order of logits and probabilities. */
  readonly classes = SEVERITIES;
  readonly dropout: number;
  readonly hiddenSizes: readonly [number, number];
  readonly frozenBackboneEval: boolean;
  /** The precision in use ('auto' resolved). */
  readonly precision: Precision;
  readonly fp32Evaluation: boolean;
  readonly memoryFormat: MemoryFormat;
  readonly seed: number;

  private constructor(
    nativeClassifier: NativeClassifier,
    options: Required<StenosisClassifierOptions> & { precision: Precision },
  ) {
    this.native = nativeClassifier;
    this.backbone = options.backbone;
    this.levelEmbedding = options.levelEmbedding;
    this.dropout = options.dropout;
    this.hiddenSizes = options.hiddenSizes;
    this.frozenBackboneEval = options.frozenBackboneEval;
    this.precision = options.precision;
    this.fp32Evaluation = options.fp32Evaluation;
    this.memoryFormat = options.memoryFormat;
    this.seed = options.seed;
  }

  /**
   * Builds the head on the backbone's device. Freeze or unfreeze the backbone before creating a Trainer.
   * @throws StenosisError ERR_INVALID_ARG for an option out of range.
   */
  static async create(options: StenosisClassifierOptions): Promise<StenosisClassifier> {
    if (!isPlainObject(options)) throw invalidArgument('an options object', 'options', options);
    checkKnownKeys(options, 'StenosisClassifier options', [
      'backbone',
      'levelEmbedding',
      'dropout',
      'hiddenSizes',
      'frozenBackboneEval',
      'precision',
      'fp32Evaluation',
      'memoryFormat',
      'seed',
    ]);
    if (!(options.backbone instanceof Backbone))
      throw invalidArgument('a Backbone', 'backbone', options.backbone);
    const levelEmbedding = options.levelEmbedding ?? new LevelEmbedding();
    if (!(levelEmbedding instanceof LevelEmbedding)) {
      throw invalidArgument('a LevelEmbedding', 'levelEmbedding', options.levelEmbedding);
    }
    const hidden = options.hiddenSizes ?? [512, 256];
    if (!Array.isArray(hidden) || hidden.length !== 2) {
      throw invalidArgument('two hidden sizes [h1, h2]', 'hiddenSizes', hidden);
    }
    const resolved: Required<StenosisClassifierOptions> = {
      backbone: options.backbone,
      levelEmbedding,
      dropout: checkNumber(options.dropout ?? 0.1, 'dropout', 0, 1, true),
      hiddenSizes: [
        checkInteger(hidden[0], 'hiddenSizes[0]', 1),
        checkInteger(hidden[1], 'hiddenSizes[1]', 1),
      ],
      frozenBackboneEval: checkBoolean(options.frozenBackboneEval ?? false, 'frozenBackboneEval'),
      precision: checkOneOf(options.precision ?? 'fp32', 'precision', PRECISION_OPTIONS),
      fp32Evaluation: checkBoolean(options.fp32Evaluation ?? false, 'fp32Evaluation'),
      memoryFormat: checkOneOf(options.memoryFormat ?? 'contiguous', 'memoryFormat', MEMORY_FORMATS),
      seed: checkInteger(options.seed ?? 0, 'seed', 0),
    };
    const nativeClassifier = await native(
      loadAddon().createClassifier(resolved.backbone.native, {
        embeddingDim: levelEmbedding.dimension,
        hidden1: resolved.hiddenSizes[0],
        hidden2: resolved.hiddenSizes[1],
        dropout: resolved.dropout,
        frozenBackboneEval: resolved.frozenBackboneEval,
        precision: resolved.precision,
        fp32Evaluation: resolved.fp32Evaluation,
        memoryFormat: resolved.memoryFormat,
        seed: resolved.seed,
      }),
    );
    const precision = nativeClassifier.options().precision as Precision;
    return new StenosisClassifier(nativeClassifier, { ...resolved, precision });
  }

  /** Logits [batch, 3] (row-major) in the current mode, without autograd. */
  async forward(batch: ImageBatch): Promise<Float32Array> {
    const { images, shape, levels } = checkBatch(batch, 'batch', false);
    return native(this.native.forward(images, shape, levels));
  }

  /**
   * Backbone features [batch, featureDim] in the classifier's memory format, as a pass in the current mode
   * computes them, or with `training` as a training pass (at `precision`, autocast) or an evaluation pass (in
   * fp32 with fp32Evaluation) would; the mode is left as it was.
   */
  async features(
    batch: Pick<ImageBatch, 'images' | 'shape'>,
    options: { training?: boolean } = {},
  ): Promise<Float32Array> {
    const { images, shape } = checkImages(batch, 'batch');
    if (!isPlainObject(options)) throw invalidArgument('an options object', 'options', options);
    checkKnownKeys(options, 'features options', ['training']);
    const training = options.training === undefined ? undefined : checkBoolean(options.training, 'training');
    return native(this.native.features(images, shape, training));
  }

  /** Class probabilities [batch, 3] in eval mode (no dropout, batch-norm running statistics). */
  async predict(batch: ImageBatch): Promise<Float32Array> {
    const { images, shape, levels } = checkBatch(batch, 'batch', false);
    await native(this.native.setTraining(false));
    const logits = await native(this.native.forward(images, shape, levels));
    return softmaxRows(logits, this.classes.length);
  }

  /** Train or eval mode for the whole model (see frozenBackboneEval). */
  async setTraining(training: boolean): Promise<void> {
    await native(this.native.setTraining(checkBoolean(training, 'training')));
  }

  /** Copies of the parameters: 'backbone.*', 'embedding.weight', 'head.*' in registration order. */
  async parameters(trainableOnly = false): Promise<NamedTensor[]> {
    return toNamedTensors(await native(this.native.parameters(checkBoolean(trainableOnly, 'trainableOnly'))));
  }

  /** Number of scalar parameters (only trainable ones when asked). */
  async parameterCount(trainableOnly = false): Promise<number> {
    return native(this.native.parameterCount(checkBoolean(trainableOnly, 'trainableOnly')));
  }

  /** The level embedding table, [5, dimension] row-major. */
  async levelEmbeddingWeights(): Promise<Float32Array> {
    const found = (await this.parameters()).find((p) => p.name === 'embedding.weight');
    return found ? found.data : new Float32Array(0);
  }
}

/** Row-wise softmax of a [rows, columns] row-major matrix. */
export function softmaxRows(logits: Float32Array, columns: number): Float32Array {
  const out = new Float32Array(logits.length);
  for (let row = 0; row < logits.length; row += columns) {
    let max = -Infinity;
    for (let c = 0; c < columns; c++) max = Math.max(max, logits[row + c]);
    let sum = 0;
    for (let c = 0; c < columns; c++) sum += out[row + c] = Math.exp(logits[row + c] - max);
    for (let c = 0; c < columns; c++) out[row + c] /= sum;
  }
  return out;
}
