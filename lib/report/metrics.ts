import { SeededRandom } from '../data/random';
import { LEVELS, SEVERITIES } from '../model/levels';

export interface ClassMetrics {
  precision: number;
  recall: number;
  f1: number;
  support: number;
}

export interface Metrics {
  samples: number;
  accuracy: number;
  perClass: Record<string, ClassMetrics>;
  macro: { precision: number; recall: number; f1: number };
  weighted: { precision: number; recall: number; f1: number };
  /** confusion[true][predicted], class order normal_mild, moderate, severe. */
  confusion: number[][];
  /** The competition's score restricted to spinal canal stenosis (lower is better). */
  score: { total: number; levelLoss: number; anySevereLoss: number };
}

const CLASS_WEIGHTS = [1, 2, 4];
const EPS = 1e-15;

function argmax(row: ArrayLike<number>): number {
  let best = 0;
  for (let c = 1; c < row.length; c++) if (row[c] > row[best]) best = c;
  return best;
}

/** Renormalizes each row to sum to one, then clips to [1e-15, 1 - 1e-15], as the competition's metric does. */
function clippedRows(probabilities: Float32Array | number[], n: number): number[][] {
  const rows: number[][] = [];
  for (let i = 0; i < n; i++) {
    const row = [probabilities[3 * i], probabilities[3 * i + 1], probabilities[3 * i + 2]];
    const sum = row[0] + row[1] + row[2];
    rows.push(row.map((p) => Math.min(1 - EPS, Math.max(EPS, sum > 0 ? p / sum : 1 / 3))));
  }
  return rows;
}

/**
 * The competition's sample-weighted log loss for spinal canal stenosis: the mean of (a) the log loss over
 * labelled level rows with weights 1, 2, 4 by true class (sum of w * loss over sum of w) and (b) the "any
 * severe" term, a binary log loss per study whose prediction is the highest severe probability over its levels,
 * weighted by the study's highest row weight.
 */
export function competitionScore(
  probabilities: Float32Array | number[],
  labels: readonly number[],
  studies: readonly string[],
): { total: number; levelLoss: number; anySevereLoss: number } {
  const rows = clippedRows(probabilities, labels.length);
  let weighted = 0;
  let weights = 0;
  const perStudy = new Map<string, { severe: number; maxP: number; weight: number }>();
  labels.forEach((label, i) => {
    const w = CLASS_WEIGHTS[label];
    weighted += -w * Math.log(rows[i][label]);
    weights += w;
    const entry = perStudy.get(studies[i]) ?? { severe: 0, maxP: 0, weight: 0 };
    entry.severe = Math.max(entry.severe, label === 2 ? 1 : 0);
    entry.maxP = Math.max(entry.maxP, rows[i][2]);
    entry.weight = Math.max(entry.weight, w);
    perStudy.set(studies[i], entry);
  });
  let anyWeighted = 0;
  let anyWeights = 0;
  for (const { severe, maxP, weight } of perStudy.values()) {
    const p = Math.min(1 - EPS, Math.max(EPS, maxP));
    anyWeighted += -weight * (severe ? Math.log(p) : Math.log(1 - p));
    anyWeights += weight;
  }
  const levelLoss = weights > 0 ? weighted / weights : NaN;
  const anySevereLoss = anyWeights > 0 ? anyWeighted / anyWeights : NaN;
  return { total: (levelLoss + anySevereLoss) / 2, levelLoss, anySevereLoss };
}

/** Accuracy, per-class, macro and weighted precision/recall/F1, confusion matrix and competition score. */
export function computeMetrics(
  probabilities: Float32Array | number[],
  labels: readonly number[],
  studies: readonly string[],
): Metrics {
  const k = SEVERITIES.length;
  const n = labels.length;
  const confusion = Array.from({ length: k }, () => new Array<number>(k).fill(0));
  let correct = 0;
  for (let i = 0; i < n; i++) {
    const predicted = argmax([probabilities[3 * i], probabilities[3 * i + 1], probabilities[3 * i + 2]]);
    confusion[labels[i]][predicted]++;
    if (predicted === labels[i]) correct++;
  }
  const perClass: Record<string, ClassMetrics> = {};
  const macro = { precision: 0, recall: 0, f1: 0 };
  const weighted = { precision: 0, recall: 0, f1: 0 };
  for (let c = 0; c < k; c++) {
    const tp = confusion[c][c];
    const predictedC = confusion.reduce((sum, row) => sum + row[c], 0);
    const support = confusion[c].reduce((a, b) => a + b, 0);
    const precision = predictedC > 0 ? tp / predictedC : 0;
    const recall = support > 0 ? tp / support : 0;
    const f1 = precision + recall > 0 ? (2 * precision * recall) / (precision + recall) : 0;
    perClass[SEVERITIES[c]] = { precision, recall, f1, support };
    macro.precision += precision / k;
    macro.recall += recall / k;
    macro.f1 += f1 / k;
    if (n > 0) {
      weighted.precision += (precision * support) / n;
      weighted.recall += (recall * support) / n;
      weighted.f1 += (f1 * support) / n;
    }
  }
  return {
    samples: n,
    accuracy: n > 0 ? correct / n : 0,
    perClass,
    macro,
    weighted,
    confusion,
    score: competitionScore(probabilities, labels, studies),
  };
}

/** Metrics restricted to each lumbar level (L1/L2 .. L5/S1). */
export function perLevelMetrics(
  probabilities: Float32Array | number[],
  labels: readonly number[],
  studies: readonly string[],
  levels: readonly number[],
): Record<string, Metrics> {
  const out: Record<string, Metrics> = {};
  for (let level = 0; level < LEVELS.length; level++) {
    const index = levels.flatMap((l, i) => (l === level ? [i] : []));
    out[LEVELS[level]] = computeMetrics(
      index.flatMap((i) => [probabilities[3 * i], probabilities[3 * i + 1], probabilities[3 * i + 2]]),
      index.map((i) => labels[i]),
      index.map((i) => studies[i]),
    );
  }
  return out;
}

export interface ConfidenceInterval {
  estimate: number;
  low: number;
  high: number;
  /** Confidence level, e.g. 0.95. */
  level: number;
  resamples: number;
}

/**
 * Percentile bootstrap over studies (all levels of a study are drawn together, since they are not independent)
 * for macro F1 and the competition score: severe cases are few, so point estimates alone mislead.
 */
export function bootstrapOverStudies(
  probabilities: Float32Array | number[],
  labels: readonly number[],
  studies: readonly string[],
  options: { resamples?: number; level?: number; seed?: number } = {},
): { macroF1: ConfidenceInterval; score: ConfidenceInterval } {
  const resamples = options.resamples ?? 1000;
  const level = options.level ?? 0.95;
  const rng = new SeededRandom(options.seed ?? 0);
  const byStudy = new Map<string, number[]>();
  studies.forEach((study, i) => byStudy.set(study, [...(byStudy.get(study) ?? []), i]));
  const groups = [...byStudy.values()];
  const f1s: number[] = [];
  const scores: number[] = [];
  for (let r = 0; r < resamples && groups.length > 0; r++) {
    const p: number[] = [];
    const l: number[] = [];
    const s: string[] = [];
    for (let g = 0; g < groups.length; g++) {
      const pick = Math.floor(rng.next() * groups.length);
      for (const i of groups[pick]) {
        p.push(probabilities[3 * i], probabilities[3 * i + 1], probabilities[3 * i + 2]);
        l.push(labels[i]);
        // A study drawn twice counts as two studies in the any-severe term.
        s.push(`${studies[i]}#${g}`);
      }
    }
    const m = computeMetrics(p, l, s);
    f1s.push(m.macro.f1);
    scores.push(m.score.total);
  }
  const full = computeMetrics(probabilities, labels, studies);
  const interval = (values: number[], estimate: number): ConfidenceInterval => {
    const sorted = [...values].sort((a, b) => a - b);
    const at = (q: number) =>
      sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] : NaN;
    return { estimate, low: at((1 - level) / 2), high: at(1 - (1 - level) / 2), level, resamples };
  };
  return { macroF1: interval(f1s, full.macro.f1), score: interval(scores, full.score.total) };
}
