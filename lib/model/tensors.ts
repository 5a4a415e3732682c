import { types } from 'node:util';
import { invalidArgument, isPlainObject } from '../errors';
import { levelIndex, severityIndex, type Level, type Severity } from './levels';

/** A batch of preprocessed images, [batch, 3, height, width] row-major, with their levels and labels. */
export interface ImageBatch {
  images: Float32Array;
  shape: readonly [number, number, number, number];
  /** Level per image: 'L1/L2' .. 'L5/S1' or 0..4. */
  levels: Int32Array | ReadonlyArray<Level | number | string>;
  /** Severity per image: 'normal_mild', 'moderate', 'severe' or 0..2. */
  labels?: Int32Array | ReadonlyArray<Severity | number | string>;
}

/**
 * Backbone features [batch, featureDim] row-major (as StenosisClassifier.features returns them) with their levels
 * and labels: a trainer trains or evaluates the level embedding and head alone on them, as when the features of
 * a frozen backbone are computed once and reused every epoch.
 */
export interface FeatureBatch {
  features: Float32Array;
  shape: readonly [number, number];
  levels: ImageBatch['levels'];
  labels?: ImageBatch['labels'];
}

export interface CheckedBatch {
  images: Float32Array;
  shape: number[];
  levels: Int32Array;
  labels: Int32Array | null;
}

export function checkImages(batch: unknown, name: string): { images: Float32Array; shape: number[] } {
  if (!isPlainObject(batch)) throw invalidArgument('an object with images and shape', name, batch);
  const { images, shape } = batch as { images: unknown; shape: unknown };
  // util.types checks work across realms (vm contexts, test runners), unlike instanceof.
  if (!types.isFloat32Array(images)) throw invalidArgument('a Float32Array', `${name}.images`, images);
  const dims = Array.isArray(shape) ? shape : [];
  const validShape = dims.length === 4 && dims.every((d) => Number.isInteger(d) && d > 0) && dims[1] === 3;
  if (!validShape)
    throw invalidArgument('a shape [batch, 3, height, width] of positive integers', `${name}.shape`, shape);
  const expected = dims.reduce((a: number, b: number) => a * b, 1);
  if (images.length !== expected) {
    throw invalidArgument(`${expected} values for shape [${dims.join(', ')}]`, `${name}.images`, images);
  }
  return { images, shape: [...dims] };
}

function indices(
  values: unknown,
  name: string,
  count: number,
  toIndex: (value: string | number, where: string) => number,
): Int32Array {
  if (!types.isInt32Array(values) && !Array.isArray(values)) {
    throw invalidArgument(`an Int32Array or array of ${count} values`, name, values);
  }
  if (values.length !== count) throw invalidArgument(`${count} values (one per image)`, name, values);
  const out = new Int32Array(count);
  for (let i = 0; i < count; i++) out[i] = toIndex(values[i] as string | number, `${name}[${i}]`);
  return out;
}

/** Validates a batch and converts levels and labels to index arrays. */
export function checkBatch(batch: unknown, name: string, requireLabels: boolean): CheckedBatch {
  const { images, shape } = checkImages(batch, name);
  return { images, shape, ...checkLabelled(batch, name, shape[0], requireLabels) };
}

function checkLabelled(
  batch: unknown,
  name: string,
  count: number,
  requireLabels: boolean,
): { levels: Int32Array; labels: Int32Array | null } {
  const raw = batch as { levels?: unknown; labels?: unknown };
  const levels = indices(raw.levels, `${name}.levels`, count, levelIndex);
  if (raw.labels === undefined || raw.labels === null) {
    if (requireLabels) throw invalidArgument('labels (one severity per image)', `${name}.labels`, raw.labels);
    return { levels, labels: null };
  }
  return { levels, labels: indices(raw.labels, `${name}.labels`, count, severityIndex) };
}

/** A trainer's input, validated: images for the whole model, or features for the head alone. */
export interface CheckedModelBatch {
  input: 'images' | 'features';
  data: Float32Array;
  shape: number[];
  levels: Int32Array;
  labels: Int32Array | null;
}

/** Validates an ImageBatch or a FeatureBatch (told apart by `features`); features must have featureDim columns. */
export function checkModelBatch(
  batch: unknown,
  name: string,
  requireLabels: boolean,
  featureDim: number,
): CheckedModelBatch {
  if (!isPlainObject(batch) || !('features' in (batch as object))) {
    const { images, ...rest } = checkBatch(batch, name, requireLabels);
    return { input: 'images', data: images, ...rest };
  }
  const { features, shape } = batch as { features: unknown; shape: unknown };
  if (!types.isFloat32Array(features)) throw invalidArgument('a Float32Array', `${name}.features`, features);
  const dims = Array.isArray(shape) ? shape : [];
  if (dims.length !== 2 || !Number.isInteger(dims[0]) || dims[0] < 1 || dims[1] !== featureDim) {
    throw invalidArgument(
      `a shape [batch, ${featureDim}] (the backbone's feature dimension)`,
      `${name}.shape`,
      shape,
    );
  }
  if (features.length !== dims[0] * featureDim) {
    throw invalidArgument(
      `${dims[0] * featureDim} values for shape [${dims.join(', ')}]`,
      `${name}.features`,
      features,
    );
  }
  const { levels, labels } = checkLabelled(batch, name, dims[0], requireLabels);
  return { input: 'features', data: features, shape: [...dims], levels, labels };
}
