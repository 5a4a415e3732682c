/**
 * The raw surface of the compiled addon (build/Release/stenosis.node). Arguments are validated by the public
 * classes before they reach these functions; nothing here is part of the public API.
 */

export interface NativeNamedTensor {
  name: string;
  shape: number[];
  /** Null where the tensor is undefined (a gradient before the first backward pass). */
  data: Float32Array | null;
}

export interface NativeBackbone {
  readonly featureDim: number;
  readonly inputSize: number;
  readonly path: string;
  readonly device: string;
  freeze(): Promise<void>;
  optimizeForInference(): Promise<void>;
  unfreezeLast(n: number): Promise<string[]>;
  unfreezeLastBlocks(n: number): Promise<string[]>;
  parameterNames(trainableOnly: boolean): Promise<string[]>;
  parameterCount(trainableOnly: boolean): Promise<number>;
  setTraining(training: boolean): Promise<void>;
  isTraining(): Promise<boolean>;
  features(images: Float32Array, shape: number[]): Promise<Float32Array>;
}

export interface NativeClassifierOptions {
  embeddingDim: number;
  hidden1: number;
  hidden2: number;
  dropout: number;
  frozenBackboneEval: boolean;
  precision: string;
  fp32Evaluation: boolean;
  memoryFormat: string;
  seed: number;
}

export interface NativeClassifier {
  forward(images: Float32Array, shape: number[], levels: Int32Array): Promise<Float32Array>;
  features(images: Float32Array, shape: number[], training?: boolean): Promise<Float32Array>;
  setTraining(training: boolean): Promise<void>;
  parameters(trainableOnly: boolean): Promise<NativeNamedTensor[]>;
  parameterCount(trainableOnly: boolean): Promise<number>;
  options(): NativeClassifierOptions & { device: string };
}

export interface NativeTrainerOptions {
  learningRate: number;
  weightDecay: number;
  beta1: number;
  beta2: number;
  eps: number;
  classWeights: number[] | null;
  dynamicLossScaling: boolean;
  initialLossScale: number;
  lossScaleGrowthInterval: number;
}

export interface NativeEvalOutput {
  probabilities: Float32Array;
  loss: number | null;
}

/** What a trainer method's data holds: images [B, 3, S, S], or backbone features [B, featureDim]. */
export type NativeInput = 'images' | 'features';

export interface NativeTrainer {
  backward(
    data: Float32Array,
    shape: number[],
    levels: Int32Array,
    labels: Int32Array,
    accumulate: boolean,
    lossScale: number,
    input: NativeInput,
  ): Promise<number>;
  step(): Promise<void>;
  setInferenceOnly(): Promise<void>;
  clipGradients(maxNorm: number): Promise<number>;
  lastPredictions(): Promise<Int32Array>;
  trialStep(images: Float32Array, shape: number[], levels: Int32Array, labels: Int32Array): Promise<string>;
  trainStep(
    data: Float32Array,
    shape: number[],
    levels: Int32Array,
    labels: Int32Array,
    input: NativeInput,
  ): Promise<number>;
  evaluate(
    data: Float32Array,
    shape: number[],
    levels: Int32Array,
    labels: Int32Array | null,
    input: NativeInput,
  ): Promise<NativeEvalOutput>;
  gradients(): Promise<NativeNamedTensor[]>;
  trainableNames(): string[];
  steps(): Promise<number>;
  lossScale(): Promise<{ scale: number; goodSteps: number; skippedSteps: number; lastStepSkipped: boolean }>;
  setLearningRate(learningRate: number): Promise<void>;
  save(path: string, metadataJson: string): Promise<void>;
  load(path: string, weightsOnly: boolean): Promise<string>;
}

export interface NativeBaseOptions {
  size: number;
  cropX0: number;
  cropY0: number;
  cropWidth: number;
  cropHeight: number;
  scaling: 'minmax' | 'percentile';
  percentileLow: number;
  percentileHigh: number;
}

export interface NativeAddon {
  readCheckpointMetadata(path: string): Promise<string>;
  getRngState(): Promise<Uint8Array>;
  setRngState(state: Uint8Array): Promise<void>;
  /** Ends the process at once (no exit handlers): for a second Ctrl-C while a native step runs. */
  exitNow(code: number): never;
  prepareBase(
    pixels: Float32Array,
    rows: number,
    cols: number,
    options: NativeBaseOptions,
  ): Promise<Float32Array>;
  augmentBatch(
    bases: Float32Array | Uint16Array,
    batch: number,
    size: number,
    flips: Uint8Array,
    anglesDegrees: Float32Array,
    options: { mean: number[]; std: number[] },
  ): Promise<Float32Array>;
  loadBackbone(path: string, device: string, inputSize: number): Promise<NativeBackbone>;
  createClassifier(backbone: NativeBackbone, options: NativeClassifierOptions): Promise<NativeClassifier>;
  createTrainer(classifier: NativeClassifier, options: NativeTrainerOptions): Promise<NativeTrainer>;
  setNumThreads(threads: number): void;
  getNumThreads(): number;
  cudaDeviceCount(): number;
  preferredPrecision(device: string): string;
  cpuCacheStats(): CpuCacheStats;
  setCpuCacheLimit(bytes: number): void;
  versions: { torch: string; cudaBuild: boolean; checkpointFormat: number };
}

/** The caching CPU allocator's state (native/core/cpu_cache.h). */
export interface CpuCacheStats {
  /** Whether it is libtorch's CPU allocator in this process (it is from the addon's load on). */
  installed: boolean;
  /** Most free bytes it keeps for reuse; 0 keeps none. */
  limitBytes: number;
  /** Free bytes it keeps now, and in how many blocks. */
  cachedBytes: number;
  blocks: number;
  /** Allocations of at least 1 MiB served from kept blocks, and those that went to the system. */
  hits: number;
  misses: number;
}
