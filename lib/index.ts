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
export {
  StenosisClassifier,
  softmaxRows,
  PRECISIONS,
  PRECISION_OPTIONS,
  MEMORY_FORMATS,
} from './model/classifier';
export type {
  StenosisClassifierOptions,
  NamedTensor,
  Precision,
  PrecisionOption,
  MemoryFormat,
} from './model/classifier';
export { LEVELS, SEVERITIES, levelIndex, severityIndex } from './model/levels';
export type { Level, Severity } from './model/levels';
export type { FeatureBatch, ImageBatch } from './model/tensors';
export { Trainer } from './train/trainer';
export type { TrainerOptions, EvalResult, CheckpointMetadata, LossScaleState } from './train/trainer';
export { classWeightsFromLabels } from './train/class-weights';
export {
  setNumThreads,
  getNumThreads,
  cudaDeviceCount,
  preferredPrecision,
  versions,
  defaultNumThreads,
  cpuCacheStats,
  setCpuCacheLimit,
} from './runtime';
export type { CpuCacheStats } from './native/types';
export type { DeviceSpec } from './runtime';
export { readDicom, readDicomHeader, decodeDicom, orderInstances } from './data/dicom';
export type { DicomImage, DicomHeader } from './data/dicom';
export { readRsnaDataset } from './data/rsna';
export type { RsnaDataset } from './data/rsna';
export { splitByStudy, readReferenceCsv, writeReferenceCsv } from './data/splits';
export type { Splits } from './data/splits';
export type { Sample, DataProblem } from './data/samples';
export { SampleCache } from './data/loader';
export type { PipelineOptions, CropOptions } from './data/loader';
export { SeededRandom } from './data/random';
export {
  generateSyntheticDataset,
  ensureSyntheticDataset,
  defaultSyntheticFolder,
  CANAL_NARROWING,
} from './data/synthetic';
export type { SyntheticOptions, SyntheticSummary } from './data/synthetic';
export { fit, evaluateSamples, scheduledLearningRate } from './train/fit';
export { FeatureCache, canCacheFeatures } from './train/features';
export type { FeaturePass, PreparedFeatureBatch } from './train/features';
export type {
  FitOptions,
  FitResult,
  FitEvent,
  EpochRecord,
  EvaluationResult,
  LearningRateSchedule,
  SelectionMetric,
} from './train/fit';
export { computeMetrics, competitionScore, perLevelMetrics, bootstrapOverStudies } from './report/metrics';
export type { Metrics, ClassMetrics, ConfidenceInterval } from './report/metrics';
export { StenosisPredictor, submissionCsv } from './predict/predictor';
export type { StudyPrediction, LevelPrediction, PredictorOptions } from './predict/predictor';
