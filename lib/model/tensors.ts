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
  const raw = batch as { levels?: unknown; labels?: unknown };
  const levels = indices(raw.levels, `${name}.levels`, shape[0], levelIndex);
  if (raw.labels === undefined || raw.labels === null) {
    if (requireLabels) throw invalidArgument('labels (one severity per image)', `${name}.labels`, raw.labels);
    return { images, shape, levels, labels: null };
  }
  return { images, shape, levels, labels: indices(raw.labels, `${name}.labels`, shape[0], severityIndex) };
}
