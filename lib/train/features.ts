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
import { invalidArgument } from '../errors';

/** A batch of cached features with the samples it holds, as batches() yields image batches. */
export interface PreparedFeatureBatch {
  batch: FeatureBatch & { levels: Int32Array; labels: Int32Array | undefined };
  samples: Sample[];
}

/** The pass that uses features: training, or evaluation (validation, test). */
export type FeaturePass = 'train' | 'eval';

/**
 * Backbone features per sample, computed once. Valid only while the backbone cannot change them: no trainable
 * backbone tensor and the backbone held in eval mode (see canCacheFeatures), and only for un-augmented images.
 *
 * Features are held per pass, as that pass computes them from images: a training pass at the classifier's
 * precision, an evaluation pass in fp32 when fp32Evaluation is set. When both passes compute the same features
 * (one precision), one copy serves both.
 */
export class FeatureCache {
  private readonly rows: Record<FeaturePass, Map<string, Float32Array>> = {
    train: new Map(),
    eval: new Map(),
  };

  constructor(readonly featureDim: number) {}

  /** Samples whose features are held, for either pass. */
  get size(): number {
    let size = this.rows.eval.size;
    for (const key of this.rows.train.keys()) if (!this.rows.eval.has(key)) size++;
    return size;
  }

  /** Whether the features of `sample` are held for `pass` (default 'eval'). */
  has(sample: Sample, pass: FeaturePass = 'eval'): boolean {
    return this.rows[pass].has(sampleKey(sample));
  }

  /**
   * Computes the features of the samples not held yet for `pass` (default 'eval'), from un-augmented images.
   * With skipBadSamples an unreadable image is recorded in the sample cache's problems and its sample left out.
   * @returns how many samples were computed.
   */
  async fill(
    classifier: StenosisClassifier,
    samples: readonly Sample[],
    cache: SampleCache,
    pipeline: PipelineOptions,
    options: { batchSize: number; skipBadSamples?: boolean; pass?: FeaturePass },
  ): Promise<number> {
    const pass = options.pass ?? 'eval';
    if (pass !== 'train' && pass !== 'eval') throw invalidArgument("'train' or 'eval'", 'pass', pass);
    const rows = this.rows[pass];
    // The other pass's rows too when both passes compute the same features: the backbone is held in eval mode
    // and training and evaluation run at one precision.
    const samePrecision = classifier.precision === 'fp32' || !classifier.fp32Evaluation;
    const shared = samePrecision && (await canCacheFeatures(classifier)) ? this.rows[other(pass)] : null;
    // Each image once, even when it appears twice in one call.
    const seen = new Set(rows.keys());
    const missing = samples.filter((sample) => {
      const key = sampleKey(sample);
      if (seen.has(key)) return false;
      seen.add(key);
      const row = shared?.get(key);
      if (row) rows.set(key, row);
      return row === undefined;
    });
    let computed = 0;
    for await (const { batch, samples: kept } of batches(missing, cache, pipeline, {
      batchSize: options.batchSize,
      train: false,
      skipBadSamples: options.skipBadSamples,
    })) {
      const features = await classifier.features(batch, { training: pass === 'train' });
      kept.forEach((sample, i) => {
        const key = sampleKey(sample);
        const row = features.slice(i * this.featureDim, (i + 1) * this.featureDim);
        rows.set(key, row);
        shared?.set(key, row);
      });
      computed += kept.length;
    }
    return computed;
  }

  /**
   * Feature batches of the samples in the order and grouping that batches() gives them, drawing the same random
   * numbers (so a run can switch between images and features without changing its shuffles). Training batches
   * (batchOptions.train) hold the training pass's features, the others the evaluation pass's. Samples without
   * features for that pass (unreadable images skipped by fill) are left out.
   */
  *batches(
    samples: readonly Sample[],
    pipeline: PipelineOptions,
    batchOptions: BatchOptions,
  ): Generator<PreparedFeatureBatch> {
    const rows = this.rows[batchOptions.train ? 'train' : 'eval'];
    const { groups } = planBatches(samples, pipeline, batchOptions);
    for (const group of groups) {
      const kept = group.filter((sample) => rows.has(sampleKey(sample)));
      if (kept.length === 0) continue;
      const features = new Float32Array(kept.length * this.featureDim);
      kept.forEach((sample, i) =>
        features.set(rows.get(sampleKey(sample)) as Float32Array, i * this.featureDim),
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
function other(pass: FeaturePass): FeaturePass {
  return pass === 'train' ? 'eval' : 'train';
}

export async function canCacheFeatures(classifier: StenosisClassifier): Promise<boolean> {
  return classifier.frozenBackboneEval && (await classifier.backbone.parameterCount(true)) === 0;
}
