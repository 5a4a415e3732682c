import { StenosisError } from '../errors';
import type { ImageBatch } from '../model/tensors';
import { readDicom } from './dicom';
import {
  augmentBatch,
  drawAugmentations,
  prepareBaseImage,
  type AugmentChoice,
  type IntensityScaling,
} from './preprocess';
import { SeededRandom } from './random';
import type { DataProblem, Sample } from './samples';
import { cropProblem } from './validate';

export interface CropOptions {
  /** Side of the square crop around the labelled point. */
  size: number;
  /** 'mm' uses the image's PixelSpacing; an image without one cannot be cropped in mm (an error, never pixels). */
  unit: 'px' | 'mm';
}

export interface PipelineOptions {
  /** Backbone input size. */
  size: number;
  crop: CropOptions | null;
  scaling: IntensityScaling;
  mean: readonly [number, number, number];
  std: readonly [number, number, number];
  /** Training augmentation. */
  flipProbability: number;
  rotationDegrees: number;
}

/**
 * Decoded, cropped and resized samples, kept in memory as 16-bit values so later epochs neither parse DICOM
 * again nor hold four bytes per pixel.
 */
export class SampleCache {
  private readonly cache = new Map<string, Uint16Array>();
  readonly problems: DataProblem[] = [];

  constructor(private readonly options: PipelineOptions) {}

  get size(): number {
    return this.cache.size;
  }

  /**
   * The sample's base image as kept: [size, size] 16-bit values v / 65535. Decodes and prepares it on first use;
   * every read gives the same values, so what the model sees does not depend on whether the sample was read
   * before in this process (a resumed run starts with an empty cache). Do not modify it.
   */
  async image(sample: Sample): Promise<Uint16Array> {
    const key = sampleKey(sample);
    const kept = this.cache.get(key);
    if (kept) return kept;
    const image = await readDicom(sample.imagePath);
    const { crop } = this.options;
    let box = null;
    if (crop && sample.x !== null && sample.y !== null) {
      const problem = cropProblem(sample, image, crop);
      if (problem)
        throw Object.assign(new StenosisError('ERR_DATA', problem.message), { problemKind: problem.kind });
      const spacing = crop.unit === 'mm' ? (image.pixelSpacing as [number, number]) : null;
      const width = spacing ? crop.size / spacing[1] : crop.size;
      const height = spacing ? crop.size / spacing[0] : crop.size;
      box = { x0: sample.x - width / 2, y0: sample.y - height / 2, width, height };
    }
    const frame = image.pixels.subarray(0, image.rows * image.columns);
    const base = await prepareBaseImage(frame, image.rows, image.columns, {
      size: this.options.size,
      crop: box,
      scaling: this.options.scaling,
    });
    // Plain loops: the callback forms of TypedArray.from are an order of magnitude slower here.
    const quantized = new Uint16Array(base.length);
    for (let i = 0; i < base.length; i++) quantized[i] = Math.round(base[i] * 65535);
    this.cache.set(key, quantized);
    return quantized;
  }
}

/** What identifies a sample's prepared image: its file and the labelled point the crop is centred on. */
export function sampleKey(sample: Sample): string {
  return `${sample.imagePath}|${sample.x}|${sample.y}`;
}

export interface BatchOptions {
  batchSize: number;
  /** Shuffle and augment (training) or keep order without augmentation (evaluation). */
  train: boolean;
  /** Generator for the shuffle and the augmentation draws; required when train is set. */
  rng?: SeededRandom;
  /** Skip samples whose image cannot be read (they are recorded in cache.problems) instead of failing. */
  skipBadSamples?: boolean;
}

export interface PreparedBatch {
  batch: ImageBatch & { labels: Int32Array | undefined };
  samples: Sample[];
}

/**
 * The samples of each batch and each image's augmentation, drawn up front and in order so that the stream of
 * random numbers depends neither on timing nor on whether images or cached features feed the model: training
 * shuffles, then draws a flip and a rotation per image (zero when augmentation is off or for evaluation).
 */
export function planBatches(
  samples: readonly Sample[],
  options: PipelineOptions,
  batchOptions: BatchOptions,
): { groups: Sample[][]; choices: AugmentChoice[][] } {
  const order = [...samples];
  if (batchOptions.train) {
    if (!batchOptions.rng)
      throw new StenosisError('ERR_INVALID_ARG', 'training batches need a seeded generator');
    batchOptions.rng.shuffle(order);
  }
  const groups: Sample[][] = [];
  for (let i = 0; i < order.length; i += batchOptions.batchSize)
    groups.push(order.slice(i, i + batchOptions.batchSize));
  const choices = groups.map((group) =>
    drawAugmentations(
      group.length,
      batchOptions.train ? options : { ...options, flipProbability: 0, rotationDegrees: 0 },
      batchOptions.rng ?? new SeededRandom(0),
    ),
  );
  return { groups, choices };
}

/**
 * Yields batches in order (training: a seeded shuffle, flips and rotations). The next batch is prepared while
 * the caller works on the current one: decoding and preprocessing run on the data thread, training on the
 * model thread.
 */
export async function* batches(
  samples: readonly Sample[],
  cache: SampleCache,
  options: PipelineOptions,
  batchOptions: BatchOptions,
): AsyncGenerator<PreparedBatch> {
  const { groups, choices } = planBatches(samples, options, batchOptions);
  const prepare = async (index: number): Promise<PreparedBatch | null> => {
    const group = groups[index];
    const kept: Sample[] = [];
    // The cache's 16-bit values go to the addon as they are; it converts them on the data thread.
    const images: Uint16Array[] = [];
    const keptChoices = [];
    for (const [i, sample] of group.entries()) {
      try {
        images.push(await cache.image(sample));
        kept.push(sample);
        keptChoices.push(choices[index][i]);
      } catch (error) {
        if (!batchOptions.skipBadSamples) throw error;
        cache.problems.push({
          kind: (error as { problemKind?: DataProblem['kind'] }).problemKind ?? 'unreadable-image',
          where: sample.imagePath,
          message: (error as Error).message,
        });
      }
    }
    if (kept.length === 0) return null;
    const labels = kept.every((s) => s.label !== null)
      ? Int32Array.from(kept, (s) => s.label as number)
      : undefined;
    return {
      batch: {
        images: await augmentBatch(images, options.size, keptChoices, options),
        shape: [kept.length, 3, options.size, options.size],
        levels: Int32Array.from(kept, (s) => s.level),
        labels,
      },
      samples: kept,
    };
  };
  let next = groups.length > 0 ? prepare(0) : null;
  for (let index = 0; index < groups.length; index++) {
    const current = await (next as Promise<PreparedBatch | null>);
    next = index + 1 < groups.length ? prepare(index + 1) : null;
    // Keep a failure of the prefetched batch from surfacing as an unhandled rejection before it is awaited.
    next?.catch(() => undefined);
    if (current) yield current;
  }
}
