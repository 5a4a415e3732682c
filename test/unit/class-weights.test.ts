import { classWeightsFromLabels, softmaxRows } from '../../lib';

describe('class weights from training labels', () => {
  test('w_c = N / (3 n_c)', () => {
    // 6 normal/mild, 3 moderate, 1 severe: N = 10
    const labels = [0, 0, 0, 0, 0, 0, 1, 1, 1, 2];
    const weights = classWeightsFromLabels(labels);
    expect(weights[0]).toBeCloseTo(10 / 18, 12);
    expect(weights[1]).toBeCloseTo(10 / 9, 12);
    expect(weights[2]).toBeCloseTo(10 / 3, 12);
    // Balanced data gives unit weights.
    expect(classWeightsFromLabels(new Int32Array([0, 1, 2, 2, 1, 0]))).toEqual([1, 1, 1]);
  });

  test('a class absent from the training split is an error naming it', () => {
    expect(() => classWeightsFromLabels([0, 0, 1])).toThrow(
      /no sample of severe \(counts: normal_mild 2, moderate 1, severe 0\)/,
    );
  });

  test('labels outside 0..2 are rejected', () => {
    expect(() => classWeightsFromLabels([0, 1, 3])).toThrow(/Label 3 at index 2/);
  });
});

describe('softmaxRows', () => {
  test('rows sum to one and keep the arg-max', () => {
    const probs = softmaxRows(new Float32Array([1, 2, 3, 1000, 0, -1000]), 3);
    expect(probs[0] + probs[1] + probs[2]).toBeCloseTo(1, 6);
    expect(probs[2]).toBeGreaterThan(probs[1]);
    expect(probs[3]).toBeCloseTo(1, 6);
    expect(Number.isNaN(probs[5])).toBe(false);
  });
});
