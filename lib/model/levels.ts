import { StenosisError } from '../errors';

/** The five lumbar levels in model order: index i is the level embedding's row i. */
export const LEVELS = ['L1/L2', 'L2/L3', 'L3/L4', 'L4/L5', 'L5/S1'] as const;
export type Level = (typeof LEVELS)[number];

/** The three severity classes in model order: index i is logit / probability column i. */
export const SEVERITIES = ['normal_mild', 'moderate', 'severe'] as const;
export type Severity = (typeof SEVERITIES)[number];

const LEVEL_ALIASES = new Map<string, number>();
LEVELS.forEach((level, index) => {
  LEVEL_ALIASES.set(level.toLowerCase(), index);
  LEVEL_ALIASES.set(level.toLowerCase().replace('/', '_'), index);
});

const SEVERITY_ALIASES = new Map<string, number>([
  ['normal_mild', 0],
  ['normal/mild', 0],
  ['moderate', 1],
  ['severe', 2],
]);

/** Level index (0..4) of 'L1/L2', 'l1_l2' or an index; throws ERR_UNKNOWN_LEVEL naming `where` otherwise. */
export function levelIndex(level: string | number, where = 'level'): number {
  if (typeof level === 'number') {
    if (Number.isInteger(level) && level >= 0 && level < LEVELS.length) return level;
  } else if (typeof level === 'string') {
    const index = LEVEL_ALIASES.get(level.trim().toLowerCase());
    if (index !== undefined) return index;
  }
  throw new StenosisError(
    'ERR_UNKNOWN_LEVEL',
    `Unknown level ${JSON.stringify(level)} in ${where}: ` +
      `expected one of ${LEVELS.join(', ')} (or l1_l2 .. l5_s1, or 0..4)`,
  );
}

/** Severity index (0..2) of 'normal_mild', 'Normal/Mild', 'moderate', 'severe' or an index. */
export function severityIndex(severity: string | number, where = 'severity'): number {
  if (typeof severity === 'number') {
    if (Number.isInteger(severity) && severity >= 0 && severity < SEVERITIES.length) return severity;
  } else if (typeof severity === 'string') {
    const index = SEVERITY_ALIASES.get(severity.trim().toLowerCase());
    if (index !== undefined) return index;
  }
  throw new StenosisError(
    'ERR_UNKNOWN_SEVERITY',
    `Unknown severity ${JSON.stringify(severity)} in ${where}: expected one of ${SEVERITIES.join(', ')} (or 0..2)`,
  );
}
