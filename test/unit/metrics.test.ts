import { competitionScore, computeMetrics } from '../../lib/report/metrics';

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
