/**
 * lumbar-stenosis: train and evaluate lumbar spinal canal stenosis graders on native libtorch.
 */
export { StenosisError } from './errors';
export {
  Backbone,
  BACKBONE_NAMES,
  defaultModelsDir,
  readBackboneMetadata,
  resolveBackboneFile,
} from './model/backbone';
export type { BackboneLoadOptions, BackboneMetadata } from './model/backbone';
export { LevelEmbedding } from './model/level-embedding';
export type { LevelEmbeddingOptions } from './model/level-embedding';
export { StenosisClassifier, softmaxRows, PRECISIONS, MEMORY_FORMATS } from './model/classifier';
export type { StenosisClassifierOptions, NamedTensor, Precision, MemoryFormat } from './model/classifier';
export { LEVELS, SEVERITIES, levelIndex, severityIndex } from './model/levels';
export type { Level, Severity } from './model/levels';
export type { ImageBatch } from './model/tensors';
export { Trainer } from './train/trainer';
export type { TrainerOptions, EvalResult, CheckpointMetadata } from './train/trainer';
export { classWeightsFromLabels } from './train/class-weights';
export { setNumThreads, getNumThreads, cudaDeviceCount, versions, defaultNumThreads } from './runtime';
export type { DeviceSpec } from './runtime';
