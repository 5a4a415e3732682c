/**
 * Ranges of the numeric options that the library checks, in one place, so that the command line refuses an
 * out-of-range flag when it is parsed (naming the flag) rather than after a run has written its splits.
 * The library checks against these; test/integration/cli-options.test.ts calls it at each bound.
 */
export const LIMITS = {
  /** Backbone.load's inputSize (pixels). */
  inputSize: { min: 16, max: 4096 },
  /** Trainer.create's learningRate. */
  learningRate: { min: 0, max: 10 },
  /** Trainer.create's weightDecay. */
  weightDecay: { min: 0, max: 10 },
  /** Trainer.create's classWeights, each. */
  classWeight: { min: 0, max: 1e6 },
  /** Trainer.clipGradients's maxNorm. */
  gradientClipNorm: { min: 0, max: 1e9 },
  /** LevelEmbedding's dimension. */
  levelEmbedding: { min: 1, max: 65536 },
  /** The synthetic dataset's number of studies. */
  syntheticStudies: { min: 1, max: 100000 },
  /** setNumThreads. */
  threads: { min: 1, max: 1024 },
} as const;
