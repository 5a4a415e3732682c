import { checkInteger, checkNumber, checkOneOf, native } from '../errors';
import { loadAddon } from '../native/loader';
import { SeededRandom } from './random';

/** How pixel intensities are mapped to [0, 1] before resizing. */
export const INTENSITY_SCALINGS = ['minmax', 'percentile'] as const;
export type IntensityScaling = (typeof INTENSITY_SCALINGS)[number];

export interface CropBox {
  /** Top-left corner and size in source pixels; the box may leave the image (padded with the minimum). */
  x0: number;
  y0: number;
  width: number;
  height: number;
}

export interface BaseImageOptions {
  /** Output side in pixels (the backbone's input size). */
  size: number;
  crop?: CropBox | null;
  /** min-max over the (cropped) image as the reference does, or a percentile clip. Default minmax. */
  scaling?: IntensityScaling;
  /** Percentiles for 'percentile' scaling; default [0.5, 99.5]. */
  percentiles?: readonly [number, number];
}

export interface AugmentOptions {
  /** Probability of a horizontal flip per image; 0 for evaluation. */
  flipProbability: number;
  /** Rotation drawn uniformly from [-rotationDegrees, rotationDegrees]; 0 for evaluation. */
  rotationDegrees: number;
  /** Per-channel normalization (the backbone's, ImageNet by default). */
  mean: readonly [number, number, number];
  std: readonly [number, number, number];
}

/**
 * Crop, intensity scaling and antialiased resize of one grey image to [size, size] values in [0, 1], on the
 * native data thread. The result is what the sample cache keeps between epochs.
 */
export async function prepareBaseImage(
  pixels: Float32Array,
  rows: number,
  columns: number,
  options: BaseImageOptions,
): Promise<Float32Array> {
  checkInteger(rows, 'rows', 1);
  checkInteger(columns, 'columns', 1);
  const size = checkInteger(options.size, 'size', 8, 4096);
  const scaling = checkOneOf(options.scaling ?? 'minmax', 'scaling', INTENSITY_SCALINGS);
  const [low, high] = options.percentiles ?? [0.5, 99.5];
  checkNumber(low, 'percentiles[0]', 0, 100);
  checkNumber(high, 'percentiles[1]', low, 100);
  const crop = options.crop;
  return native(
    loadAddon().prepareBase(pixels, rows, columns, {
      size,
      cropX0: crop?.x0 ?? 0,
      cropY0: crop?.y0 ?? 0,
      cropWidth: crop?.width ?? 0,
      cropHeight: crop?.height ?? 0,
      scaling,
      percentileLow: low,
      percentileHigh: high,
    }),
  );
}

/** The augmentation drawn for one image. */
export interface AugmentChoice {
  flip: boolean;
  angleDegrees: number;
}

/** Draws flip and rotation per image from the seeded generator (two draws per image, always). */
export function drawAugmentations(
  count: number,
  options: AugmentOptions,
  rng: SeededRandom,
): AugmentChoice[] {
  checkNumber(options.flipProbability, 'flipProbability', 0, 1);
  checkNumber(options.rotationDegrees, 'rotationDegrees', 0, 180);
  const out: AugmentChoice[] = [];
  for (let i = 0; i < count; i++) {
    const flip = rng.next() < options.flipProbability;
    const angle = rng.uniform(-options.rotationDegrees, options.rotationDegrees);
    out.push({ flip, angleDegrees: options.rotationDegrees > 0 ? angle : 0 });
  }
  return out;
}

/**
 * Stacks base images into a [batch, 3, size, size] normalized batch, applying each image's flip and rotation,
 * on the native data thread. Bases are floats in [0, 1], or the sample cache's 16-bit values (v / 65535), which
 * the addon converts without a JavaScript pass over them.
 */
export async function augmentBatch(
  bases: readonly Float32Array[] | readonly Uint16Array[],
  size: number,
  choices: readonly AugmentChoice[],
  options: Pick<AugmentOptions, 'mean' | 'std'>,
): Promise<Float32Array> {
  const area = size * size;
  const quantized = bases.length > 0 && bases[0] instanceof Uint16Array;
  const stacked = quantized ? new Uint16Array(bases.length * area) : new Float32Array(bases.length * area);
  bases.forEach((base: Float32Array | Uint16Array, i: number) => {
    if (base instanceof Uint16Array !== quantized)
      throw new TypeError('bases must be all Float32Array or all Uint16Array');
    if (base.length !== area)
      throw new RangeError(`base image ${i} has ${base.length} values, expected ${area}`);
    stacked.set(base, i * area);
  });
  const flips = Uint8Array.from(choices, (c) => (c.flip ? 1 : 0));
  const angles = Float32Array.from(choices, (c) => c.angleDegrees);
  return native(
    loadAddon().augmentBatch(stacked, bases.length, size, flips, angles, {
      mean: [...options.mean],
      std: [...options.std],
    }),
  );
}
