import {
  bootstrapOverStudies,
  competitionScore,
  computeMetrics,
  perLevelMetrics,
} from '../../lib/report/metrics';

describe('metrics', () => {
  test('confusion matrix, accuracy, per-class, macro and weighted F1', () => {
    // Predicted classes 0, 1, 1, 2 for true 0, 0, 1, 2.
    const probs = [0.8, 0.1, 0.1, 0.2, 0.7, 0.1, 0.1, 0.8, 0.1, 0.1, 0.1, 0.8];
    const m = computeMetrics(probs, [0, 0, 1, 2], ['a', 'a', 'b', 'b']);
    expect(m.confusion).toEqual([
      [1, 1, 0],
      [0, 1, 0],
      [0, 0, 1],
    ]);
    expect(m.accuracy).toBe(0.75);
    expect(m.perClass.normal_mild).toEqual({ precision: 1, recall: 0.5, f1: 2 / 3, support: 2 });
    expect(m.perClass.moderate.precision).toBe(0.5);
    expect(m.perClass.moderate.f1).toBeCloseTo(2 / 3, 12);
    expect(m.macro.f1).toBeCloseTo((2 / 3 + 2 / 3 + 1) / 3, 12);
    expect(m.weighted.f1).toBeCloseTo((2 * (2 / 3) + 2 / 3 + 1) / 4, 12);
  });

  test('competition score: weighted level log loss and the any-severe term', () => {
    const uniform = new Array(12).fill(1 / 3);
    const score = competitionScore(uniform, [0, 0, 1, 2], ['a', 'a', 'b', 'b']);
    expect(score.levelLoss).toBeCloseTo(Math.log(3), 12);
    // Study a: no severe, weight 1, loss -ln(2/3); study b: severe, weight 4, loss -ln(1/3).
    expect(score.anySevereLoss).toBeCloseTo((Math.log(1.5) + 4 * Math.log(3)) / 5, 12);
    expect(score.total).toBeCloseTo((score.levelLoss + score.anySevereLoss) / 2, 12);
  });

  test('rows are renormalized and clipped, so a zero probability gives a large finite loss', () => {
    const score = competitionScore([1, 0, 0, 2, 0, 0], [2, 0], ['a', 'a']);
    expect(Number.isFinite(score.total)).toBe(true);
    expect(score.levelLoss).toBeGreaterThan(20);
  });
});

describe('per-level metrics and bootstrap intervals', () => {
  test('per-level metrics split the samples by level', () => {
    const probs = [0.9, 0.05, 0.05, 0.1, 0.1, 0.8, 0.2, 0.7, 0.1];
    const byLevel = perLevelMetrics(probs, [0, 2, 0], ['a', 'a', 'b'], [0, 3, 3]);
    expect(byLevel['L1/L2'].samples).toBe(1);
    expect(byLevel['L1/L2'].accuracy).toBe(1);
    expect(byLevel['L4/L5'].samples).toBe(2);
    expect(byLevel['L4/L5'].accuracy).toBe(0.5);
    expect(byLevel['L2/L3'].samples).toBe(0);
  });

  test('the bootstrap interval brackets the estimate and is reproducible', () => {
    const n = 60;
    const labels = Array.from({ length: n }, (_, i) => (i % 10 === 0 ? 2 : i % 5 === 0 ? 1 : 0));
    const probs = labels.flatMap((l, i) =>
      i % 7 === 0 ? [1 / 3, 1 / 3, 1 / 3] : [0, 1, 2].map((c) => (c === l ? 0.8 : 0.1)),
    );
    const studies = labels.map((_, i) => `s${Math.floor(i / 5)}`);
    const a = bootstrapOverStudies(probs, labels, studies, { resamples: 200, seed: 1 });
    const b = bootstrapOverStudies(probs, labels, studies, { resamples: 200, seed: 1 });
    expect(a).toEqual(b);
    expect(a.macroF1.low).toBeLessThanOrEqual(a.macroF1.estimate);
    expect(a.macroF1.high).toBeGreaterThanOrEqual(a.macroF1.estimate);
    expect(a.macroF1.high).toBeGreaterThan(a.macroF1.low);
    expect(a.score.low).toBeLessThanOrEqual(a.score.high);
  });
});
