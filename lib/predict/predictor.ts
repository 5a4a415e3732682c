import fs from 'node:fs';
import path from 'node:path';
import { parse } from 'csv-parse/sync';
import { checkOneOf, native, StenosisError } from '../errors';
import { loadAddon } from '../native/loader';
import { Backbone } from '../model/backbone';
import { LevelEmbedding } from '../model/level-embedding';
import {
  MEMORY_FORMATS,
  PRECISION_OPTIONS,
  StenosisClassifier,
  type MemoryFormat,
  type Precision,
  type PrecisionOption,
} from '../model/classifier';
import { LEVELS, SEVERITIES, type Level } from '../model/levels';
import { Trainer, type CheckpointMetadata } from '../train/trainer';
import { evaluateSamples } from '../train/fit';
import { SampleCache, type PipelineOptions } from '../data/loader';
import { middleInstance } from '../data/rsna';
import { readDicomHeader } from '../data/dicom';
import { rowIdOf, type DataProblem, type Sample } from '../data/samples';
import type { DeviceSpec } from '../runtime';

/** Probabilities of one level of one study, in the competition's row format. */
export interface LevelPrediction {
  rowId: string;
  level: Level;
  normal_mild: number;
  moderate: number;
  severe: number;
  /** The image the prediction was made from. */
  imagePath: string;
}

export interface StudyPrediction {
  studyId: string;
  levels: LevelPrediction[];
}

export interface PredictorOptions {
  device?: DeviceSpec;
  /** The backbone file; default: the one recorded in the checkpoint. */
  backbone?: string;
  batchSize?: number;
  /**
   * Run the backbone through TorchScript's optimize_for_inference (Backbone.optimizeForInference). Measured on
   * the CPU at batch 8: ResNet-18 1.41x and ResNet-152 1.26x faster (batch norm folded into convolutions);
   * EfficientNetV2-M, ConvNeXt-Base, ViT-B/16, Swin-B and BEiT-Base 0.89x-0.99x, so it is off by default.
   */
  optimize?: boolean;
  /**
   * Autocast precision of the backbone. Default: the one the checkpoint's test metrics were computed at (its
   * evaluation precision: fp32 when it was trained with fp32Evaluation), except fp16 on the CPU, which libtorch
   * does not compute there: fp32 then, said in the warnings. fp16 asked for on the CPU is an ERR_INVALID_ARG.
   */
  precision?: PrecisionOption;
  /** Memory format of the backbone's weights and inputs. Default: the checkpoint's. */
  memoryFormat?: MemoryFormat;
}

const ID = /^\d+$/;
const SAGITTAL_T2 = /sagittal\s*t2/i;

/** Sagittal T2/STIR series of a study folder: from the descriptions CSV when given, else from DICOM headers. */
async function sagittalT2Series(studyFolder: string, described?: Map<string, string>): Promise<string[]> {
  const series = fs
    .readdirSync(studyFolder)
    .filter((name) => ID.test(name) && fs.statSync(path.join(studyFolder, name)).isDirectory())
    .sort((a, b) => (BigInt(a) < BigInt(b) ? -1 : 1));
  if (described && series.some((id) => described.has(id))) {
    return series.filter((id) => SAGITTAL_T2.test(described.get(id) ?? ''));
  }
  const found: string[] = [];
  for (const id of series) {
    const first = fs.readdirSync(path.join(studyFolder, id)).find((name) => name.endsWith('.dcm'));
    if (!first) continue;
    const header = await readDicomHeader(path.join(studyFolder, id, first));
    if (SAGITTAL_T2.test(header.seriesDescription ?? '')) found.push(id);
  }
  return found;
}

/**
 * A trained model loaded from a checkpoint, predicting the five levels of a study from its Sagittal T2/STIR
 * series (the first if there are several; its middle instance by position; uncropped, since there are no
 * coordinates at prediction time).
 */
export class StenosisPredictor {
  /**
   * Said when the checkpoint's model was trained on crops around labelled levels: prediction has no
   * coordinates and reads whole slices, which such a model has not seen, so its probabilities mean little.
   */
  readonly warnings: string[] = [];

  private constructor(
    private readonly trainer: Trainer,
    private readonly pipeline: PipelineOptions,
    private readonly cache: SampleCache,
    private readonly batchSize: number,
    /** The checkpoint's metadata. */
    readonly metadata: CheckpointMetadata,
  ) {}

  /** The backbone's autocast precision in use ('auto' resolved). */
  get precision(): Precision {
    return this.trainer.classifier.precision;
  }

  /** The memory format of the backbone's weights and inputs. */
  get memoryFormat(): MemoryFormat {
    return this.trainer.classifier.memoryFormat;
  }

  /**
   * Rebuilds the model recorded in a checkpoint and loads its weights.
   * @throws StenosisError ERR_CHECKPOINT (missing or damaged), ERR_MODEL_FILE (backbone not found).
   */
  static async load(checkpoint: string, options: PredictorOptions = {}): Promise<StenosisPredictor> {
    if (!fs.existsSync(checkpoint))
      throw new StenosisError('ERR_CHECKPOINT', `checkpoint ${checkpoint} does not exist`);
    const metadata = JSON.parse(
      await native(loadAddon().readCheckpointMetadata(checkpoint)),
    ) as CheckpointMetadata;
    const user = (metadata.user ?? {}) as { backbonePath?: string; pipeline?: PipelineOptions };
    // An existing file is the file, whatever its name (Backbone.load takes a bare name for a registry entry).
    const given = options.backbone;
    const backbonePath =
      given !== undefined && fs.statSync(given, { throwIfNoEntry: false })?.isFile()
        ? path.resolve(given)
        : (given ?? user.backbonePath);
    if (!backbonePath) {
      throw new StenosisError(
        'ERR_MODEL_FILE',
        `checkpoint ${checkpoint} does not record its backbone file: pass the backbone (--backbone FILE.pt)`,
      );
    }
    const pipeline: PipelineOptions = {
      size: user.pipeline?.size ?? metadata.backbone.inputSize,
      crop: null,
      scaling: user.pipeline?.scaling ?? 'minmax',
      mean: metadata.backbone.mean,
      std: metadata.backbone.std,
      flipProbability: 0,
      rotationDegrees: 0,
    };
    const device = options.device ?? 'cpu';
    const onCpu = device === 'cpu';
    const notes: string[] = [];
    const recorded = metadata.classifier;
    // The precision the checkpoint's model was evaluated at (its test metrics), as the prediction's default.
    const evaluated = recorded.fp32Evaluation ? 'fp32' : ((recorded.precision ?? 'fp32') as Precision);
    let precision: PrecisionOption;
    if (options.precision !== undefined) {
      precision = checkOneOf(options.precision, 'precision', PRECISION_OPTIONS);
      if (precision === 'fp16' && onCpu) {
        throw new StenosisError(
          'ERR_INVALID_ARG',
          'precision fp16 needs a CUDA device (--device cuda); on the CPU use bf16, fp32 or auto',
        );
      }
    } else if (evaluated === 'fp16' && onCpu) {
      precision = 'fp32';
      notes.push(
        `${checkpoint} was evaluated in fp16, which the CPU does not compute: predicting in fp32, so ` +
          'probabilities may differ slightly from its recorded metrics',
      );
    } else {
      precision = evaluated;
    }
    const memoryFormat = checkOneOf(
      options.memoryFormat ?? recorded.memoryFormat ?? 'contiguous',
      'memoryFormat',
      MEMORY_FORMATS,
    );
    const backbone = await Backbone.load(backbonePath, { device, inputSize: pipeline.size });
    await backbone.freeze();
    const classifier = await StenosisClassifier.create({
      backbone,
      levelEmbedding: new LevelEmbedding({ dimension: metadata.classifier.embeddingDim }),
      hiddenSizes: metadata.classifier.hiddenSizes,
      dropout: metadata.classifier.dropout,
      precision,
      memoryFormat,
    });
    const trainer = await Trainer.create(classifier);
    await trainer.load(checkpoint, { weightsOnly: true });
    await trainer.setInferenceOnly();
    // A backbone the optimizer cannot handle runs as it was loaded, said in the warnings.
    const optimized = options.optimize
      ? await backbone.optimizeForInference().then(
          () => null,
          (error: Error) => error.message,
        )
      : null;
    const predictor = new StenosisPredictor(
      trainer,
      pipeline,
      new SampleCache(pipeline),
      options.batchSize ?? 16,
      metadata,
    );
    predictor.warnings.push(...notes);
    if (optimized !== null) {
      predictor.warnings.push(`the backbone runs unoptimized (optimize_for_inference failed: ${optimized})`);
    }
    const crop = user.pipeline?.crop;
    if (crop) {
      predictor.warnings.push(
        `${checkpoint} was trained on ${crop.size} ${crop.unit} crops around each labelled level, but prediction ` +
          'reads whole middle slices (there are no coordinates at prediction time): expect unreliable ' +
          'probabilities; train without --crop-mm/--crop-px for a model to predict with',
      );
    }
    return predictor;
  }

  private async samplesOfStudy(studyFolder: string, described?: Map<string, string>): Promise<Sample[]> {
    const studyId = path.basename(path.resolve(studyFolder));
    if (!fs.existsSync(studyFolder))
      throw new StenosisError('ERR_DATA', `study folder ${studyFolder} does not exist`);
    const series = await sagittalT2Series(studyFolder, described);
    if (series.length === 0) {
      throw new StenosisError('ERR_DATA', `study ${studyId} (${studyFolder}) has no Sagittal T2/STIR series`);
    }
    const middle = await middleInstance(path.join(studyFolder, series[0]));
    if (!middle)
      throw new StenosisError('ERR_DATA', `series ${path.join(studyFolder, series[0])} has no .dcm files`);
    return LEVELS.map((_, level) => ({
      rowId: rowIdOf(studyId, level),
      studyId,
      seriesId: series[0],
      instanceNumber: middle.header.instanceNumber,
      imagePath: middle.file,
      level,
      label: null,
      x: null,
      y: null,
    }));
  }

  private async predictSamples(samples: Sample[], problems?: DataProblem[]): Promise<StudyPrediction[]> {
    const known = this.cache.problems.length;
    const { probabilities, samples: done } = await evaluateSamples(
      this.trainer,
      samples,
      this.cache,
      this.pipeline,
      { batchSize: this.batchSize, skipBadSamples: problems !== undefined },
    );
    if (problems) {
      // The five rows of a study share one image: one problem per unreadable file.
      const unreadable = new Map(this.cache.problems.slice(known).map((p) => [p.where, p]));
      problems.push(...unreadable.values());
    }
    const byStudy = new Map<string, LevelPrediction[]>();
    done.forEach((s, i) => {
      const row: LevelPrediction = {
        rowId: s.rowId,
        level: LEVELS[s.level],
        normal_mild: probabilities[3 * i],
        moderate: probabilities[3 * i + 1],
        severe: probabilities[3 * i + 2],
        imagePath: s.imagePath,
      };
      byStudy.set(s.studyId, [...(byStudy.get(s.studyId) ?? []), row]);
    });
    return [...byStudy].map(([studyId, levels]) => ({ studyId, levels }));
  }

  /** The five levels' probabilities of one study folder (<study_id>/<series_id>/<instance>.dcm). */
  async predictStudy(studyFolder: string): Promise<StudyPrediction> {
    const [prediction] = await this.predictSamples(await this.samplesOfStudy(studyFolder));
    return prediction;
  }

  /**
   * Every study of a dataset folder: test_images/ (or train_images/) with the matching
   * *_series_descriptions.csv when present. With `skipBadStudies`, a study that cannot be read (no Sagittal
   * T2/STIR series, no instance, an unreadable or corrupt DICOM file) and an entry that is not a study folder
   * named by its numeric id are left out and recorded in `problems` instead of failing the whole dataset.
   */
  async predictDataset(
    folder: string,
    onStudy?: (done: number, total: number) => void,
    options: { skipBadStudies?: boolean; problems?: DataProblem[] } = {},
  ): Promise<StudyPrediction[]> {
    const problems = options.skipBadStudies ? (options.problems ?? []) : undefined;
    const imagesDir = ['test_images', 'train_images']
      .map((name) => path.join(folder, name))
      .find((d) => fs.existsSync(d));
    if (!imagesDir)
      throw new StenosisError('ERR_DATA', `${folder} has neither test_images/ nor train_images/`);
    const prefix = path.basename(imagesDir).replace('_images', '');
    const csv = path.join(folder, `${prefix}_series_descriptions.csv`);
    const descriptions = new Map<string, Map<string, string>>();
    if (fs.existsSync(csv)) {
      const rows = parse(fs.readFileSync(csv, 'utf8'), {
        columns: true,
        skip_empty_lines: true,
        trim: true,
      }) as Record<string, string>[];
      for (const row of rows) {
        const study = descriptions.get(row.study_id) ?? new Map<string, string>();
        study.set(row.series_id, row.series_description);
        descriptions.set(row.study_id, study);
      }
    }
    // Every entry but hidden files must be a study folder named by its numeric id: anything else is named, not
    // passed over in silence.
    const studies: string[] = [];
    for (const entry of fs.readdirSync(imagesDir, { withFileTypes: true })) {
      if (entry.name.startsWith('.')) continue;
      const where = path.join(imagesDir, entry.name);
      const problem = !entry.isDirectory()
        ? `${where} is not a study folder (expected ${path.basename(imagesDir)}/<study_id>/<series_id>/*.dcm)`
        : !ID.test(entry.name)
          ? `study folder ${where} is not named by a numeric study id`
          : null;
      if (problem === null) studies.push(entry.name);
      else if (problems) problems.push({ kind: 'bad-study', where, message: problem });
      else
        throw new StenosisError('ERR_DATA', `${problem} (skipBadStudies, --skip_bad_samples, leaves it out)`);
    }
    if (studies.length === 0 && (problems ?? []).length === 0)
      throw new StenosisError('ERR_DATA', `${imagesDir} holds no study folders`);
    studies.sort((a, b) => (BigInt(a) < BigInt(b) ? -1 : BigInt(a) > BigInt(b) ? 1 : 0));
    const samples: Sample[] = [];
    for (const [i, study] of studies.entries()) {
      const studyFolder = path.join(imagesDir, study);
      try {
        samples.push(...(await this.samplesOfStudy(studyFolder, descriptions.get(study))));
      } catch (error) {
        // Only what the data can cause (a StenosisError naming it) is skipped; anything else still stops the run.
        if (!problems || !(error instanceof StenosisError)) throw error;
        problems.push({ kind: 'bad-study', where: studyFolder, message: error.message });
      }
      onStudy?.(i + 1, studies.length);
    }
    return this.predictSamples(samples, problems);
  }
}

/** The competition's submission CSV: row_id,normal_mild,moderate,severe with five rows per study. */
export function submissionCsv(predictions: readonly StudyPrediction[]): string {
  const lines = [`row_id,${SEVERITIES.join(',')}`];
  for (const study of predictions) {
    for (const level of study.levels) {
      lines.push([level.rowId, level.normal_mild, level.moderate, level.severe].map(String).join(','));
    }
  }
  return lines.join('\n') + '\n';
}
