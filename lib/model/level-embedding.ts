import { checkInteger, checkKnownKeys, invalidArgument, isPlainObject } from '../errors';
import { LEVELS, levelIndex, type Level } from './levels';
import { LIMITS } from '../limits';

export interface LevelEmbeddingOptions {
  /** Length of the learned vector per level; 256 as in the reference's documented command. */
  dimension?: number;
}

/**
 * The learned embedding of the lumbar level (one row per level, L1/L2 .. L5/S1), concatenated with the backbone
 * features before the head. Its weights live in the classifier it is given to
 * (`classifier.levelEmbeddingWeights()`).
 */
export class LevelEmbedding {
  /** Rows of the table: the five lumbar levels. */
  static readonly levels: readonly Level[] = LEVELS;
  readonly dimension: number;

  constructor(options: LevelEmbeddingOptions = {}) {
    if (!isPlainObject(options)) throw invalidArgument('an options object', 'options', options);
    checkKnownKeys(options, 'LevelEmbedding options', ['dimension']);
    this.dimension = checkInteger(
      options.dimension ?? 256,
      'dimension',
      LIMITS.levelEmbedding.min,
      LIMITS.levelEmbedding.max,
    );
  }

  /** Number of levels (rows). */
  get numLevels(): number {
    return LEVELS.length;
  }

  /** Row index of a level ('L4/L5', 'l4_l5' or 3). */
  static indexOf(level: Level | string | number): number {
    return levelIndex(level);
  }
}
