import {
  batches,
  planBatches,
  sampleKey,
  type BatchOptions,
  type PipelineOptions,
  type SampleCache,
} from '../data/loader';
import type { Sample } from '../data/samples';
import type { StenosisClassifier } from '../model/classifier';
import type { FeatureBatch } from '../model/tensors';

/** A batch of cached features with the samples it holds, as batches() yields image batches. */
export interface PreparedFeatureBatch {
  batch: FeatureBatch & { levels: Int32Array; labels: Int32Array | undefined };
  samples: Sample[];
}

/**
 * Backbone features per sample, computed once. Valid only while the backbone cannot change them: no trainable
 * backbone tensor and the backbone held in eval mode (see canCacheFeatures), and only for un-augmented images.
 */
export class FeatureCache {
  private readonly rows = new Map<string, Float32Array>();

  constructor(readonly featureDim: number) {}

  /** Samples whose features are held. */
  get size(): number {
    return this.rows.size;
  }

  has(sample: Sample): boolean {
    return this.rows.has(sampleKey(sample));
  }

  /**
   * Computes the features of the samples not held yet, from un-augmented images. With skipBadSamples an
   * unreadable image is recorded in the sample cache's problems and its sample left out.
   * @returns how many samples were computed.
   */
  async fill(
    classifier: StenosisClassifier,
    samples: readonly Sample[],
    cache: SampleCache,
    pipeline: PipelineOptions,
    options: { batchSize: number; skipBadSamples?: boolean },
  ): Promise<number> {
    // Each image once, even when it appears twice in one call.
    const seen = new Set(this.rows.keys());
    const missing = samples.filter((sample) => {
      const key = sampleKey(sample);
      if (seen.has(key)) return false;
      seen.add(key);
      return true;
    });
    let computed = 0;
    for await (const { batch, samples: kept } of batches(missing, cache, pipeline, {
      batchSize: options.batchSize,
      train: false,
      skipBadSamples: options.skipBadSamples,
    })) {
      const features = await classifier.features(batch);
      kept.forEach((sample, i) => {
        this.rows.set(sampleKey(sample), features.slice(i * this.featureDim, (i + 1) * this.featureDim));
      });
      computed += kept.length;
    }
    return computed;
  }

  /**
   * Feature batches of the samples in the order and grouping that batches() gives them, drawing the same random
   * numbers (so a run can switch between images and features without changing its shuffles). Samples without
   * features (unreadable images skipped by fill) are left out.
   */
  *batches(
    samples: readonly Sample[],
    pipeline: PipelineOptions,
    batchOptions: BatchOptions,
  ): Generator<PreparedFeatureBatch> {
    const { groups } = planBatches(samples, pipeline, batchOptions);
    for (const group of groups) {
      const kept = group.filter((sample) => this.has(sample));
      if (kept.length === 0) continue;
      const features = new Float32Array(kept.length * this.featureDim);
      kept.forEach((sample, i) =>
        features.set(this.rows.get(sampleKey(sample)) as Float32Array, i * this.featureDim),
      );
      yield {
        batch: {
          features,
          shape: [kept.length, this.featureDim],
          levels: Int32Array.from(kept, (s) => s.level),
          labels: kept.every((s) => s.label !== null)
            ? Int32Array.from(kept, (s) => s.label as number)
            : undefined,
        },
        samples: kept,
      };
    }
  }
}

/**
 * Whether a classifier's features can be cached: its backbone has no trainable tensor and is held in eval mode
 * while training (frozenBackboneEval). The reference keeps a frozen backbone in train mode, where batch
 * statistics and stochastic depth change the features at every pass.
 */
export async function canCacheFeatures(classifier: StenosisClassifier): Promise<boolean> {
  return classifier.frozenBackboneEval && (await classifier.backbone.parameterCount(true)) === 0;
}
