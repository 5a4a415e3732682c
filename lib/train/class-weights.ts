import { StenosisError } from '../errors';
import { SEVERITIES } from '../model/levels';

/**
 * Inverse-frequency class weights of a training split: w_c = N / (3 n_c).
 * @throws StenosisError ERR_MISSING_CLASS when a class has no sample (pass explicit weights instead).
 */
export function classWeightsFromLabels(labels: ArrayLike<number>): number[] {
  const counts = new Array<number>(SEVERITIES.length).fill(0);
  for (let i = 0; i < labels.length; i++) {
    const label = labels[i];
    if (!Number.isInteger(label) || label < 0 || label >= SEVERITIES.length) {
      throw new StenosisError(
        'ERR_UNKNOWN_SEVERITY',
        `Label ${label} at index ${i} is not a class index 0..2`,
      );
    }
    counts[label]++;
  }
  const missing = SEVERITIES.filter((_, c) => counts[c] === 0);
  if (missing.length > 0) {
    throw new StenosisError(
      'ERR_MISSING_CLASS',
      `The training labels have no sample of ${missing.join(', ')} (counts: ` +
        `${SEVERITIES.map((s, c) => `${s} ${counts[c]}`).join(', ')}); inverse-frequency weights are undefined. ` +
        `Give class weights explicitly (classWeights; --class-weights 1,2,4 on the command line) or use a split ` +
        'that holds every class.',
    );
  }
  const total = labels.length;
  return counts.map((count) => total / (SEVERITIES.length * count));
}
