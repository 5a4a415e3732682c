/**
 * A generator of synthetic sagittal lumbar MRI in the RSNA 2024 Lumbar Spine Degenerative Classification
 * layout (train.csv, train_label_coordinates.csv, train_series_descriptions.csv and
 * train_images/<study>/<series>/<instance>.dcm), used as the package's embedded default dataset.
 *
 * Spinal canal stenosis shows only through geometry: at each disc level the bright CSF band of the canal is
 * narrowed to a fraction of its normal width drawn from CANAL_NARROWING for that level's label. Nothing else
 * (tags, file names, gain, noise, disc signal) depends on the labels, so a model can only learn the grades by
 * looking at the canal.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { checkInteger, checkKnownKeys, invalidArgument, isPlainObject, StenosisError } from '../errors';
import { LEVELS, SEVERITIES, type Severity } from '../model/levels';
import { LEVEL_SLUGS } from './samples';
import { LIMITS } from '../limits';

// dcmjs ships no type declarations; this is the small part of its API used here.
interface DcmjsElement {
  vr: string;
  Value: unknown[];
}
interface DcmjsModule {
  data: {
    DicomDict: new (meta: Record<string, DcmjsElement>) => {
      dict: Record<string, DcmjsElement>;
      write(): ArrayBuffer;
    };
  };
}
const dcmjs = require('dcmjs') as DcmjsModule;

/** Options of generateSyntheticDataset and ensureSyntheticDataset. */
export interface SyntheticOptions {
  /** Number of studies (default 300). */
  studies?: number;
  /** Seed of every random choice: the same seed gives byte-identical files (default 0). */
  seed?: number;
  /** Rows and columns of the Sagittal T2/STIR images (default 256; below 128 severe canals are sub-pixel). */
  imageSize?: number;
}

/** What generateSyntheticDataset wrote. */
export interface SyntheticSummary {
  folder: string;
  studies: number;
  /** Files of the dataset: the DICOMs and the three CSVs (not the completion marker). */
  files: number;
  /** Total size of those files. */
  bytes: number;
  seconds: number;
  /** Spinal canal labels of train.csv: level (L1/L2 ..) -> normal_mild, moderate, severe, missing. */
  labelCounts: Record<string, Record<string, number>>;
}

/** The completion marker's content: the summary without the timing, so that it is deterministic too. */
export type SyntheticInfo = Omit<SyntheticSummary, 'seconds'>;

/**
 * Canal width at the disc relative to the normal width of the same canal, per class: a level's narrowed width
 * is the study's normal width times a ratio drawn uniformly from its class's range.
 *
 * - normal_mild [0.80, 1.00]: at most a slight dip (mild stenosis is graded together with normal).
 * - moderate [0.45, 0.65]: the CSF band visibly pinched to about half.
 * - severe [0.12, 0.30]: the CSF band almost obliterated, a thread or nothing left.
 *
 * These follow the usual reading (mild below a third of narrowing, moderate a third to two thirds, severe
 * beyond) with gaps between the classes, so the classes are separable yet each has spread.
 */
export const CANAL_NARROWING: Record<Severity, [number, number]> = {
  normal_mild: [0.8, 1.0],
  moderate: [0.45, 0.65],
  severe: [0.12, 0.3],
};

const VERSION = 1;
const MARKER = 'synthetic-dataset.json';
const MARKER_FORMAT = 'lumbar-stenosis synthetic';
const DEFAULT_STUDIES = 300;
const DEFAULT_IMAGE_SIZE = 256;

const CONDITIONS = [
  'spinal_canal_stenosis',
  'left_neural_foraminal_narrowing',
  'right_neural_foraminal_narrowing',
  'left_subarticular_stenosis',
  'right_subarticular_stenosis',
] as const;
const RSNA_SEVERITY = ['Normal/Mild', 'Moderate', 'Severe'] as const;
const T2 = 'Sagittal T2/STIR';
const T1 = 'Sagittal T1';
const AXIAL = 'Axial T2';

// Marginal probabilities of moderate and severe canal stenosis per level (L1/L2 .. L5/S1). They average to
// 7.5 % moderate and 5 % severe, severe being most common at L4/L5 and rarest at L1/L2 and L5/S1.
const P_MODERATE = [0.035, 0.07, 0.1, 0.125, 0.045];
const P_SEVERE = [0.015, 0.04, 0.07, 0.11, 0.015];
// Correlation of the per-level latent variables within a study: degeneration tends to affect several levels.
const STUDY_CORRELATION = 0.5;
const P_MISSING_LABEL = 0.015;
const P_STUDY_MISSING_COORDINATE = 0.02;
// The unused conditions: plausible, mostly Normal/Mild, more often abnormal at the lower levels.
const OTHER_CONDITIONS: { moderate: number[]; severe: number[]; missing: number[] }[] = [
  { moderate: [0.03, 0.06, 0.12, 0.2, 0.2], severe: [0.005, 0.01, 0.03, 0.06, 0.07], missing: [0.02] },
  { moderate: [0.03, 0.06, 0.12, 0.2, 0.2], severe: [0.005, 0.01, 0.03, 0.06, 0.07], missing: [0.02] },
  { moderate: [0.04, 0.08, 0.15, 0.25, 0.15], severe: [0.01, 0.02, 0.06, 0.12, 0.06], missing: [0.1, 0.03] },
  { moderate: [0.04, 0.08, 0.15, 0.25, 0.15], severe: [0.01, 0.02, 0.06, 0.12, 0.06], missing: [0.1, 0.03] },
];

// A fixed UID root of the 2.25.<decimal> form; study, series and instance numbers are appended to it.
const UID_ROOT = '2.25.190361592826447731';
const MR_IMAGE_STORAGE = '1.2.840.10008.5.1.4.1.1.4';
const EXPLICIT_VR_LITTLE_ENDIAN = '1.2.840.10008.1.2.1';

// ---------------------------------------------------------------------------------------------------------
// Randomness

function mix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/**
 * sfc32, keyed by a list of integers: each (seed, study, purpose) gets an independent stream, so a study's
 * content does not depend on how many studies are generated or in which order.
 */
class Rng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;
  private spare = NaN;

  constructor(...keys: number[]) {
    let h = 0x9e3779b9;
    for (const key of keys) h = mix32(h ^ mix32((key >>> 0) + 0x7f4a7c15));
    this.a = mix32(h ^ 0x1b873593);
    this.b = mix32(this.a ^ 0xcc9e2d51);
    this.c = mix32(this.b ^ 0xe6546b64);
    this.d = 1;
    for (let i = 0; i < 12; i++) this.next();
  }

  next(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return t >>> 0;
  }

  /** Uniform in [0, 1), 53 bits. */
  float(): number {
    return ((this.next() >>> 5) * 67108864 + (this.next() >>> 6)) / 9007199254740992;
  }

  uniform(low: number, high: number): number {
    return low + (high - low) * this.float();
  }

  /** Uniform integer in [low, high]. */
  int(low: number, high: number): number {
    return low + Math.floor(this.float() * (high - low + 1));
  }

  chance(p: number): boolean {
    return this.float() < p;
  }

  normal(): number {
    if (!Number.isNaN(this.spare)) {
      const value = this.spare;
      this.spare = NaN;
      return value;
    }
    const radius = Math.sqrt(-2 * Math.log(1 - this.float()));
    const angle = 2 * Math.PI * this.float();
    this.spare = radius * Math.sin(angle);
    return radius * Math.cos(angle);
  }
}

/** Inverse of the standard normal CDF (Acklam's rational approximation, relative error below 1.2e-9). */
function normalQuantile(p: number): number {
  const a = [
    -39.69683028665376, 220.9460984245205, -275.9285104469687, 138.357751867269, -30.66479806614716,
    2.506628274631,
  ];
  const b = [
    -54.47609879822406, 161.5858368580409, -155.6989798598866, 66.80131188771972, -13.28068155288572,
  ];
  const c = [
    -0.007784894002430293, -0.3223964580411365, -2.400758277161838, -2.549732539343734, 4.374664141464968,
    2.938163982698783,
  ];
  const d = [0.007784695709041462, 0.3224671290700398, 2.445134137142996, 3.754408661907416];
  const tail = (q: number) =>
    (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
    ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
  if (p < 0.02425) return tail(Math.sqrt(-2 * Math.log(p)));
  if (p > 1 - 0.02425) return -tail(Math.sqrt(-2 * Math.log(1 - p)));
  const q = p - 0.5;
  const r = q * q;
  return (
    ((((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q) /
    (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1)
  );
}

// ---------------------------------------------------------------------------------------------------------
// Labels

interface StudyLabels {
  /** True canal severity index (0..2) per level: drawn even where the label is missing, for the anatomy. */
  canal: number[];
  /** train.csv cells per condition (CONDITIONS order) and level: a severity index or -1 for missing. */
  cells: number[][];
  /** Levels whose train.csv label has no coordinate row. */
  noCoordinate: boolean[];
}

/** Severity index from a latent standard normal value and the marginal probabilities of the two grades. */
function grade(latent: number, moderate: number, severe: number): number {
  if (latent > normalQuantile(1 - severe)) return 2;
  if (latent > normalQuantile(1 - severe - moderate)) return 1;
  return 0;
}

/**
 * Labels of one study from a Gaussian latent model: each level's latent value shares a study factor with the
 * others (correlation STUDY_CORRELATION), and thresholds at the level's quantiles keep the marginals exact.
 */
function sampleLabels(rng: Rng): StudyLabels {
  const study = rng.normal();
  const latent = LEVELS.map(
    () => Math.sqrt(STUDY_CORRELATION) * study + Math.sqrt(1 - STUDY_CORRELATION) * rng.normal(),
  );
  const canal = latent.map((value, level) => grade(value, P_MODERATE[level], P_SEVERE[level]));
  const cells = [canal.map((severity) => (rng.chance(P_MISSING_LABEL) ? -1 : severity))];
  for (const other of OTHER_CONDITIONS) {
    cells.push(
      latent.map((value, level) => {
        const missing = other.missing[Math.min(level, other.missing.length - 1)];
        const severity = grade(0.6 * value + 0.8 * rng.normal(), other.moderate[level], other.severe[level]);
        return rng.chance(missing) ? -1 : severity;
      }),
    );
  }
  const noCoordinate = LEVELS.map(() => false);
  if (rng.chance(P_STUDY_MISSING_COORDINATE)) {
    const labelled = LEVELS.map((_, level) => level).filter((level) => cells[0][level] >= 0);
    if (labelled.length > 0) noCoordinate[labelled[rng.int(0, labelled.length - 1)]] = true;
  }
  return { canal, cells, noCoordinate };
}

// ---------------------------------------------------------------------------------------------------------
// Anatomy

// Vertebrae from the top: T10, T11, T12, L1..L5, S1 (the sacrum). Disc d lies between vertebrae d and d + 1,
// so the labelled level l (L1/L2 = 0) is disc l + 3.
const VERTEBRAE = 9;
const FIRST_LUMBAR = 3;
const SACRUM = 8;

/** One study's anatomy and acquisition, in pixels of its Sagittal T2 image unless named otherwise. */
interface Anatomy {
  size: number;
  /** Lumbar vertebral body height. */
  height: number;
  cx: number;
  cy: number;
  cosT: number;
  sinT: number;
  // Lordosis: horizontal offset of the posterior vertebral wall as a function of the along-spine position u.
  kappa: number;
  apex: number;
  halfLength: number;
  sacralTop: number;
  sacralCurve: number;
  top: Float64Array;
  bottom: Float64Array;
  topSlope: Float64Array;
  bottomSlope: Float64Array;
  depth: Float64Array;
  // Per disc: canal ratio at the disc, share of the narrowing from the front, vertical spread, T2 nucleus.
  ratio: Float64Array;
  anterior: Float64Array;
  spread: Float64Array;
  nucleus: Float64Array;
  gap: number;
  canal: number;
  canalPhase: number;
  flavum: number;
  conus: number;
  roots: number[];
  rim: number;
  spinousLength: number;
  spinousHalf: number;
  spinousCos: number;
  spinousSin: number;
  fatStart: number;
  skin: number;
  aortaMm: number;
  canalHalfMm: number;
  // Acquisition (mm unless noted).
  pixelMm: number;
  sliceThickness: number;
  sliceSpacing: number;
  midlineX: number;
  originY: number;
  originZ: number;
  fieldStrength: string;
  // curve() and canalWidth() sampled every quarter pixel from tableStart: the renderer needs both at every
  // pixel, and both are smooth enough for linear interpolation.
  tableStart: number;
  curveTable: Float64Array;
  widthTable: Float64Array;
}

function sampleAnatomy(rng: Rng, size: number, canal: number[]): Anatomy {
  // Body size varies by study; every length scales with the matrix so that the field of view stays the same.
  const bodyScale = rng.uniform(0.88, 1.08);
  const scale = bodyScale * (size / DEFAULT_IMAGE_SIZE);
  const depthL3 = 34.5 * scale;
  const height = 0.76 * depthL3;
  const depthFactor = [0.86, 0.88, 0.9, 0.93, 0.96, 1.0, 1.02, 1.03, 1.0];
  const heightFactor = [0.92, 0.94, 0.95, 0.98, 1.0, 1.02, 1.02, 0.96, 1.0];
  const discFactor = [0.7, 0.72, 0.8, 0.9, 1.0, 1.05, 1.1, 1.0];
  const heights = heightFactor.map((f) => f * height * rng.uniform(0.95, 1.05));
  const discs = discFactor.map((f) => 0.34 * f * height * rng.uniform(0.85, 1.15));
  const depth = new Float64Array(depthFactor.map((f) => f * depthL3 * rng.uniform(0.97, 1.03)));

  // u = 0 halfway between the top of L1 and the top of S1, so that the labelled levels sit mid-image.
  let lumbar = 0;
  for (let k = FIRST_LUMBAR; k < SACRUM; k++) lumbar += heights[k] + discs[k];
  const top = new Float64Array(VERTEBRAE);
  const bottom = new Float64Array(VERTEBRAE);
  top[FIRST_LUMBAR] = -lumbar / 2;
  for (let k = FIRST_LUMBAR; k < VERTEBRAE; k++) {
    if (k > FIRST_LUMBAR) top[k] = bottom[k - 1] + discs[k - 1];
    bottom[k] = top[k] + (k === SACRUM ? 2.4 * height : heights[k]);
  }
  for (let k = FIRST_LUMBAR - 1; k >= 0; k--) {
    bottom[k] = top[k + 1] - discs[k];
    top[k] = bottom[k] - heights[k];
  }

  const theta = (rng.uniform(-10, 10) * Math.PI) / 180;
  const anatomy: Anatomy = {
    size,
    height,
    cx: size * rng.uniform(0.53, 0.6),
    cy: size * rng.uniform(0.47, 0.53),
    cosT: Math.cos(theta),
    sinT: Math.sin(theta),
    kappa: size * rng.uniform(0.02, 0.07),
    apex: (top[6] + bottom[5]) / 2 + rng.uniform(-0.3, 0.3) * height,
    halfLength: lumbar / 2,
    sacralTop: top[SACRUM],
    sacralCurve: rng.uniform(0.45, 0.85) / (4 * height),
    top,
    bottom,
    topSlope: new Float64Array(VERTEBRAE),
    bottomSlope: new Float64Array(VERTEBRAE),
    depth,
    ratio: new Float64Array(VERTEBRAE - 1),
    anterior: new Float64Array(VERTEBRAE - 1),
    spread: new Float64Array(VERTEBRAE - 1),
    nucleus: new Float64Array(VERTEBRAE - 1),
    gap: 0.009 * size * bodyScale + 0.4,
    canal: 0.43 * depthL3 * rng.uniform(0.85, 1.15),
    canalPhase: rng.uniform(0, 2 * Math.PI),
    flavum: 0.012 * size * rng.uniform(0.85, 1.2),
    conus: rng.uniform(top[FIRST_LUMBAR] + 0.3 * height, bottom[FIRST_LUMBAR] + 0.3 * height),
    roots: [rng.uniform(0.2, 0.35), rng.uniform(0.45, 0.55), rng.uniform(0.65, 0.8)],
    rim: Math.max(0.8, 0.0055 * size),
    spinousLength: depthL3 * rng.uniform(0.85, 1.1),
    spinousHalf: 0.3 * height * rng.uniform(0.9, 1.1),
    spinousCos: 0,
    spinousSin: 0,
    fatStart: 0,
    skin: 0,
    aortaMm: rng.uniform(-3, 9),
    canalHalfMm: rng.uniform(7.5, 9),
    pixelMm: rng.uniform(0.6, 0.9) * (DEFAULT_IMAGE_SIZE / size),
    sliceThickness: rng.uniform(3.5, 4.5),
    sliceSpacing: 0,
    midlineX: rng.uniform(-6, 6),
    originY: 0,
    originZ: rng.uniform(-40, 40),
    fieldStrength: rng.chance(0.6) ? '1.5' : '3',
    tableStart: -2 * size,
    curveTable: new Float64Array(16 * size + 2),
    widthTable: new Float64Array(16 * size + 2),
  };
  const tilt = (rng.uniform(12, 28) * Math.PI) / 180;
  anatomy.spinousCos = Math.cos(tilt);
  anatomy.spinousSin = Math.sin(tilt);
  anatomy.fatStart = anatomy.gap + anatomy.canal + anatomy.flavum + anatomy.spinousLength + 0.02 * size;
  anatomy.skin = anatomy.fatStart + size * rng.uniform(0.03, 0.11);
  anatomy.sliceSpacing = anatomy.sliceThickness + rng.uniform(0.3, 0.6);
  anatomy.originY = -anatomy.pixelMm * size * rng.uniform(0.45, 0.55);

  // Endplates are perpendicular to the curved spine axis; the top of S1 tilts further (the sacral slope),
  // which makes L5/S1 the wedge-shaped disc it is.
  for (let k = 0; k < VERTEBRAE; k++) {
    anatomy.topSlope[k] = curveSlope(anatomy, top[k]) + (k === SACRUM ? rng.uniform(0.15, 0.35) : 0);
    anatomy.bottomSlope[k] = curveSlope(anatomy, bottom[k]);
  }
  for (let i = 0; i < anatomy.curveTable.length; i++) {
    anatomy.curveTable[i] = curve(anatomy, anatomy.tableStart + i / 4);
    anatomy.widthTable[i] = canalWidth(anatomy, anatomy.tableStart + i / 4);
  }
  for (let d = 0; d < VERTEBRAE - 1; d++) {
    const level = d - FIRST_LUMBAR;
    // Unlabelled thoracic discs get a normal canal; the labelled ones follow their (true) grade.
    const [low, high] = CANAL_NARROWING[SEVERITIES[level >= 0 ? canal[level] : 0]];
    anatomy.ratio[d] = rng.uniform(low, high);
    anatomy.anterior[d] = rng.uniform(0.55, 0.8);
    anatomy.spread[d] = discs[d] * rng.uniform(0.5, 0.7) + 0.6;
    anatomy.nucleus[d] = rng.uniform(0.45, 0.85);
  }
  return anatomy;
}

/** Posterior offset of the spine axis at u: a lordotic arc that straightens above L1 and bends back at S1. */
function curve(a: Anatomy, u: number): number {
  const t = (u - a.apex) / a.halfLength;
  const g = t >= -1 ? t * t : t >= -2 ? 1 - 2 * (t + 1) - (t + 1) * (t + 1) : 2;
  const sacral = u > a.sacralTop ? a.sacralCurve * (u - a.sacralTop) * (u - a.sacralTop) : 0;
  return a.kappa * g + sacral;
}

function curveSlope(a: Anatomy, u: number): number {
  const t = (u - a.apex) / a.halfLength;
  const g = t >= -1 ? 2 * t : t >= -2 ? -2 - 2 * (t + 1) : 0;
  const sacral = u > a.sacralTop ? 2 * a.sacralCurve * (u - a.sacralTop) : 0;
  return (a.kappa * g) / a.halfLength + sacral;
}

/** Normal canal width (before narrowing) at u: slowly varying along the spine. */
function canalWidth(a: Anatomy, u: number): number {
  return a.canal * (1 + 0.05 * Math.sin(u / a.height + a.canalPhase));
}

/** Linear interpolation in one of an anatomy's quarter-pixel tables. */
function lookup(a: Anatomy, table: Float64Array, u: number): number {
  const t = Math.min(Math.max((u - a.tableStart) * 4, 0), table.length - 2);
  const i = Math.floor(t);
  return table[i] + (table[i + 1] - table[i]) * (t - i);
}

/** Along-spine position of disc d's mid-plane at posterior offset v. */
function discCenter(a: Anatomy, d: number, v: number): number {
  return (a.bottom[d] - v * a.bottomSlope[d] + a.top[d + 1] - v * a.topSlope[d + 1]) / 2;
}

/** Image position (x right, y down, T2 pixels) of the spine coordinates (u, v). */
function toImage(a: Anatomy, u: number, v: number): [number, number] {
  const p = v + curve(a, u);
  return [a.cx + a.cosT * p - a.sinT * u, a.cy + a.sinT * p + a.cosT * u];
}

/** Canal centre at labelled level l in the annotated slice: the point the coordinate row names. */
function canalPoint(a: Anatomy, level: number): [number, number] {
  const d = level + FIRST_LUMBAR;
  // The narrowing takes more from the front than from the back, which moves the remaining canal's centre
  // backwards; the disc plane is tilted, so where it crosses that centre depends on it: two fixed-point
  // steps settle it.
  let u = discCenter(a, d, a.gap + a.canal / 2);
  let v = 0;
  for (let step = 0; step < 2; step++) {
    const width = canalWidth(a, u);
    v = a.gap + width / 2 + ((2 * a.anterior[d] - 1) * width * (1 - a.ratio[d])) / 2;
    u = discCenter(a, d, v);
  }
  return toImage(a, u, v);
}

// ---------------------------------------------------------------------------------------------------------
// Rendering

/** Relative signal of each tissue in one contrast. */
interface Palette {
  fat: number;
  muscle: number;
  abdomen: number;
  bowel: number;
  interspinous: number;
  skin: number;
  marrow: number;
  cortex: number;
  annulus: number;
  nucleusScale: number;
  nucleusBase: number;
  csf: number;
  cord: number;
  root: number;
  ligament: number;
  epiduralFat: number;
  aorta: number;
  nerve: number;
}

const T2_PALETTE: Palette = {
  fat: 0.6,
  muscle: 0.2,
  abdomen: 0.3,
  bowel: 0.62,
  interspinous: 0.27,
  skin: 0.35,
  marrow: 0.42,
  cortex: 0.07,
  annulus: 0.2,
  nucleusScale: 1,
  nucleusBase: 0,
  csf: 0.95,
  cord: 0.42,
  root: 0.6,
  ligament: 0.1,
  epiduralFat: 0.5,
  aorta: 0.06,
  nerve: 0.26,
};

// T1: fat and marrow bright, CSF and discs dark.
const T1_PALETTE: Palette = {
  fat: 0.85,
  muscle: 0.3,
  abdomen: 0.38,
  bowel: 0.3,
  interspinous: 0.45,
  skin: 0.45,
  marrow: 0.62,
  cortex: 0.07,
  annulus: 0.3,
  nucleusScale: 0.1,
  nucleusBase: 0.28,
  csf: 0.15,
  cord: 0.36,
  root: 0.26,
  ligament: 0.12,
  epiduralFat: 0.75,
  aorta: 0.1,
  nerve: 0.35,
};

/** A study's own contrast: every tissue's signal scaled by up to 12 %, as sequences and scanners differ. */
function jitter(palette: Palette, rng: Rng): Palette {
  const out = { ...palette };
  for (const key of Object.keys(out) as (keyof Palette)[]) out[key] *= rng.uniform(0.88, 1.12);
  return out;
}

/** Smooth random field in [-1, 1] on a size x size grid: bilinear value noise with `cells` cells a side. */
function valueNoise(rng: Rng, size: number, cells: number): Float32Array {
  const grid = new Float32Array((cells + 2) * (cells + 2));
  for (let i = 0; i < grid.length; i++) grid[i] = rng.float() * 2 - 1;
  const out = new Float32Array(size * size);
  const step = cells / size;
  for (let j = 0; j < size; j++) {
    const gy = j * step;
    const y0 = Math.floor(gy);
    let fy = gy - y0;
    fy = fy * fy * (3 - 2 * fy);
    for (let i = 0; i < size; i++) {
      const gx = i * step;
      const x0 = Math.floor(gx);
      let fx = gx - x0;
      fx = fx * fx * (3 - 2 * fx);
      const g = y0 * (cells + 2) + x0;
      const top = grid[g] + (grid[g + 1] - grid[g]) * fx;
      const bottom = grid[g + cells + 2] + (grid[g + cells + 3] - grid[g + cells + 2]) * fx;
      out[j * size + i] = top + (bottom - top) * fy;
    }
  }
  return out;
}

/** Coverage of a pixel by a shape from its signed distance (pixels, negative inside): a 1-pixel ramp. */
function cover(distance: number): number {
  return distance <= -0.5 ? 1 : distance >= 0.5 ? 0 : 0.5 - distance;
}

/** Signed distance to an axis-aligned rounded rectangle centred at the origin. */
function roundedBox(x: number, y: number, halfX: number, halfY: number, radius: number): number {
  const qx = Math.abs(x) - halfX + radius;
  const qy = Math.abs(y) - halfY + radius;
  const outside = Math.sqrt(Math.max(qx, 0) ** 2 + Math.max(qy, 0) ** 2);
  return outside + Math.min(Math.max(qx, qy), 0) - radius;
}

/** Euclidean norm of (x, y); Math.hypot is several times slower in the per-pixel loops. */
function norm(x: number, y: number): number {
  return Math.sqrt(x * x + y * y);
}

function clamp01(x: number): number {
  return x < 0 ? 0 : x > 1 ? 1 : x;
}

/** Smooth fields shared by all slices of one study at one matrix size: abdominal contents, fat texture. */
interface Fields {
  coarse: Float32Array;
  blobs: Float32Array;
}

function studyFields(rng: Rng, size: number): Fields {
  return { coarse: valueNoise(rng, size, 6), blobs: valueNoise(rng, size, 12) };
}

/**
 * Relative signal (about 0..1) of a sagittal slice `lateralMm` from the canal's midline, `size` pixels a side
 * covering the same field of view as the T2 image. Structures are painted back to front, each with a
 * one-pixel soft edge so that nothing aliases.
 */
function renderSagittal(
  a: Anatomy,
  palette: Palette,
  lateralMm: number,
  size: number,
  fields: Fields,
  rng: Rng,
): Float32Array {
  const out = new Float32Array(size * size);
  const fine = valueNoise(rng, size, Math.max(8, Math.round(size / 9)));
  const { coarse, blobs } = fields;
  const x = Math.abs(lateralMm);
  // How much of each midline or lateral structure this slice cuts (partial volume included).
  const canalShare = Math.sqrt(clamp01(1 - (x / a.canalHalfMm) ** 2));
  const canalSignal = 0.55 + 0.45 * canalShare;
  const spinous = clamp01(1 - (x - 2.5) / 3);
  const pedicle = clamp01((x - 7) / 4);
  const facet = clamp01((x - 6) / 5);
  const aorta = clamp01(1 - Math.abs(lateralMm - a.aortaMm) / 11);
  const depthShare = Math.max(0.7, 1 - 0.12 * (x / 14) ** 2);
  const scale = a.size / size;
  const rim = a.rim;
  const skinThickness = 0.008 * a.size;
  const front = -a.depth[5] - 0.02 * a.size;
  const aortaRadius = 0.28 * a.depth[5];
  const P = palette;

  for (let j = 0; j < size; j++) {
    const Y = (j + 0.5) * scale - 0.5;
    for (let i = 0; i < size; i++) {
      const X = (i + 0.5) * scale - 0.5;
      const index = j * size + i;
      const dx = X - a.cx;
      const dy = Y - a.cy;
      const u = -a.sinT * dx + a.cosT * dy;
      const v = a.cosT * dx + a.sinT * dy - lookup(a, a.curveTable, u);
      const texture = fine[index];
      const width = lookup(a, a.widthTable, u);
      const posterior = a.gap + width + a.flavum;

      // Soft tissue: abdomen in front, muscle and interspinous ligaments behind, then fat, skin and air.
      let I: number;
      if (v < front - 2 * aortaRadius) {
        const bowel = clamp01((blobs[index] - 0.5) * 5);
        I = P.abdomen * (1 + 0.3 * coarse[index] + 0.1 * texture) * (1 - bowel) + P.bowel * bowel;
      } else if (v < posterior) {
        I = P.muscle * (1 + 0.15 * texture);
      } else {
        // Behind the arch: interspinous ligament and fat on the midline, paraspinal muscle laterally.
        const midline = spinous * clamp01((v - posterior) / (0.5 * a.spinousLength));
        I = (P.muscle * (1 - spinous) + P.interspinous * spinous) * (1 - midline) + P.fat * 0.8 * midline;
        I *= 1 + 0.15 * texture;
      }
      if (v > a.fatStart - 1) {
        const fat = cover(a.fatStart - v);
        I += (P.fat * (1 + 0.06 * texture + 0.04 * coarse[index]) - I) * fat;
      }
      const skin = a.skin + 0.012 * a.size * coarse[index];
      if (v > skin - skinThickness - 1) {
        I += (P.skin - I) * cover(skin - skinThickness - v);
        I *= cover(v - skin);
      }

      // The nearest disc decides which vertebra this pixel belongs to.
      let d = 0;
      let best = Infinity;
      for (let k = 0; k < VERTEBRAE - 1; k++) {
        const distance = Math.abs(u - discCenter(a, k, v));
        if (distance > best) break;
        best = distance;
        d = k;
      }
      const discMid = discCenter(a, d, v);
      const k = u < discMid ? d : d + 1;

      // Aorta: a flow void in front of the vertebral bodies, down to its bifurcation at L4.
      if (aorta > 0 && v < front + 1) {
        // It fades out over half a vertebra where it divides into the iliac arteries.
        const end = clamp01((a.top[6] + 0.7 * a.height - u) / (0.6 * a.height));
        const inside = cover(Math.abs(v - front + aortaRadius) - aortaRadius * (0.6 + 0.4 * end)) * end;
        I += (P.aorta - I) * inside * aorta;
      }

      // Posterior elements: tapering spinous processes on the midline, the facet column laterally.
      if (v > posterior - 2 && v < a.fatStart + 2) {
        if (spinous > 0 && k < SACRUM) {
          const cu = a.top[k] + 0.55 * (a.bottom[k] - a.top[k]);
          const cv = posterior + a.spinousLength / 2 - 1;
          const along = (v - cv) * a.spinousCos + (u - cu) * a.spinousSin;
          const across = -(v - cv) * a.spinousSin + (u - cu) * a.spinousCos;
          const half = a.spinousHalf * (1 - 0.35 * clamp01(along / a.spinousLength + 0.5));
          const distance = roundedBox(along, across, a.spinousLength / 2, half, 0.7 * half);
          const bone = distance < -1.6 * rim ? P.marrow * (0.8 + 0.15 * texture) : P.cortex;
          I += (bone - I) * cover(distance) * spinous;
        } else if (spinous > 0 && u > a.top[SACRUM] + 0.3 * a.height) {
          // The back wall of the sacral canal.
          const distance = Math.abs(v - posterior - 0.15 * a.spinousLength) - 0.15 * a.spinousLength;
          const bone = distance < -rim ? P.marrow * (0.8 + 0.15 * texture) : P.cortex;
          I += (bone - I) * cover(distance) * spinous;
        }
        if (facet > 0) {
          const halfColumn = 0.22 * a.depth[5];
          const distance = Math.abs(v - posterior - halfColumn + 1) - halfColumn;
          const joint = Math.abs(u - discMid + 0.5 * (v - posterior)) < 0.7 + 0.1 * rim;
          const bone = joint ? P.ligament : distance < -rim ? P.marrow * (0.9 + 0.15 * texture) : P.cortex;
          I += (bone - I) * cover(distance) * facet;
        }
      }

      // Canal zone between the vertebral bodies and the posterior elements.
      if (v > -1 && v < posterior + 1) {
        const bump = Math.exp(-0.5 * ((u - discMid) / a.spread[d]) ** 2);
        const narrowing = width * (1 - a.ratio[d]) * bump;
        const anterior = a.gap + a.anterior[d] * narrowing;
        const back = a.gap + width - (1 - a.anterior[d]) * narrowing;
        const middle = (anterior + back) / 2;
        const half = ((back - anterior) / 2) * canalShare;
        // In front: posterior longitudinal ligament, or the bulging annulus at a disc; behind: flavum.
        let zone = v < anterior ? P.ligament + (P.annulus - P.ligament) * bump : P.ligament;
        if (canalShare < 1 && v >= anterior && v <= back) zone = P.epiduralFat * (1 + 0.1 * texture);
        // The thecal sac ends at about S2.
        const sacralEnd = clamp01((a.sacralTop + 1.5 * a.height - u) / (0.8 * a.height));
        const csfShare = half > 0 ? cover(Math.abs(v - middle) - half) * sacralEnd : 0;
        if (csfShare > 0) {
          let fluid = P.csf * canalSignal;
          if (u < a.conus) {
            // The cord tapers to the conus tip.
            const taper = clamp01((a.conus - u) / (0.8 * a.height));
            const cordHalf = 0.3 * taper * canalShare * a.canal;
            fluid += (P.cord - fluid) * cover(Math.abs(v - middle) - cordHalf);
          } else {
            // Cauda equina roots at fixed fractions of the canal, so they crowd where it narrows.
            const t = (v - (middle - half)) / Math.max(2 * half, 1e-6);
            for (const root of a.roots) {
              fluid += (P.root * canalSignal - fluid) * 0.6 * clamp01(1 - Math.abs(t - root) * 2 * half);
            }
          }
          zone += (fluid - zone) * csfShare;
        }
        if (pedicle > 0) {
          // Lateral slices: a foramen of fat with its exiting root under each pedicle.
          const above = u < a.top[k] + 0.3 * (a.bottom[k] - a.top[k]) ? k - 1 : k;
          const rootU = above >= 0 ? a.top[above] + 0.75 * (a.bottom[above] - a.top[above]) : -1e9;
          const nerve = norm((u - rootU) / 1.4, v - 0.45 * posterior) - 0.1 * a.depth[5];
          let lateral = P.fat * (1 + 0.08 * texture);
          lateral += (P.nerve - lateral) * cover(nerve);
          zone += (lateral - zone) * pedicle;
        }
        I += (zone - I) * cover(-v) * cover(v - posterior);
      }

      // Disc: annulus with a brighter nucleus, filling the space between the two endplates.
      const bodyDepth = a.depth[k] * depthShare;
      if (v < 2 && v > -bodyDepth - 3) {
        const upper = a.bottom[d] - v * a.bottomSlope[d];
        const lower = a.top[d + 1] - v * a.topSlope[d + 1];
        const discDepth = ((a.depth[d] + a.depth[d + 1]) / 2) * depthShare;
        if (u > upper - 2 && u < lower + 2) {
          const distance = Math.max(upper - u, u - lower, -discDepth - 0.8 - v, v - a.gap + 0.6);
          const height = lower - upper;
          const nucleus = norm(
            (u - discMid) / (0.36 * height + 0.3),
            (v + 0.5 * discDepth) / (0.36 * discDepth),
          );
          const bright = P.nucleusBase + P.nucleusScale * a.nucleus[d];
          const tissue = P.annulus + (bright - P.annulus) * clamp01((1.15 - nucleus) * 2.5);
          I += (tissue - I) * cover(distance);
        }

        // Vertebral body: marrow inside a dark cortical rim; S1 continues as the tapering sacrum.
        const bodyTop = a.top[k] - v * a.topSlope[k];
        let distance: number;
        let halfHeight = a.height;
        if (k === SACRUM) {
          const down = u - bodyTop;
          const wall = -bodyDepth * (1 - 0.35 * clamp01(down / (2 * a.height)));
          distance = Math.max(-down, wall - v, v);
          // The S1/S2 fusion line: a faint remnant disc.
          if (Math.abs(down - 0.95 * a.height) < 0.8 && distance < -rim) distance = -rim * 0.5;
        } else {
          const bodyBottom = a.bottom[k] - v * a.bottomSlope[k];
          halfHeight = (bodyBottom - bodyTop) / 2;
          const along = u - (bodyTop + bodyBottom) / 2;
          distance = roundedBox(along, v + bodyDepth / 2, halfHeight, bodyDepth / 2, 0.25 * halfHeight);
          // The basivertebral vein's notch in the middle of the back wall.
          const notch = Math.max(Math.abs(along) - 0.12 * halfHeight, -v - 0.1 * bodyDepth);
          if (notch < 0 && distance < 0) distance = Math.max(distance, -notch - rim);
        }
        if (distance < 0.5) {
          const bone = distance < -rim ? P.marrow * (1 + 0.12 * texture) : P.cortex;
          I += (bone - I) * cover(distance);
        }

        // Lateral slices: the pedicle joins the upper half of the body to the facet column.
        if (pedicle > 0 && k < SACRUM) {
          const pedicleTop = a.top[k] + 0.05 * 2 * halfHeight;
          const pedicleBottom = a.top[k] + 0.55 * 2 * halfHeight;
          const vertical = Math.max(pedicleTop - u, u - pedicleBottom);
          const inPedicle = Math.max(vertical, -2 * rim - v);
          const bone = vertical < -rim ? P.marrow * (1 + 0.12 * texture) : P.cortex;
          I += (bone - I) * cover(inPedicle) * pedicle;
        }
      } else if (pedicle > 0 && k < SACRUM && v >= 2 && v < posterior + rim) {
        const pedicleTop = a.top[k] + 0.05 * (a.bottom[k] - a.top[k]);
        const pedicleBottom = a.top[k] + 0.55 * (a.bottom[k] - a.top[k]);
        const vertical = Math.max(pedicleTop - u, u - pedicleBottom);
        const bone = vertical < -rim ? P.marrow * (1 + 0.12 * texture) : P.cortex;
        I += (bone - I) * cover(vertical) * pedicle;
      }
      out[index] = I;
    }
  }
  return out;
}

/** Relative signal of a simple axial slice through a disc level whose canal keeps `ratio` of its depth. */
function renderAxial(palette: Palette, ratio: number, size: number, rng: Rng): Float32Array {
  const out = new Float32Array(size * size);
  const fine = valueNoise(rng, size, Math.max(6, Math.round(size / 8)));
  const P = palette;
  const s = size;
  const cx = s * rng.uniform(0.47, 0.53);
  const bodyY = s * rng.uniform(0.4, 0.46);
  const bodyHalfX = 0.17 * s;
  const bodyHalfY = 0.12 * s;
  const canalDepth = 0.11 * s * rng.uniform(0.85, 1.15);
  const canalY = bodyY + bodyHalfY + 0.01 * s + (canalDepth * ratio) / 2;
  for (let j = 0; j < s; j++) {
    for (let i = 0; i < s; i++) {
      const index = j * s + i;
      const x = i - cx;
      const y = j - s * 0.5;
      const texture = fine[index];
      const outline = norm(x / (0.47 * s), y / (0.36 * s)) - 1;
      let I = outline > -0.08 ? P.fat : P.muscle * (1 + 0.15 * texture);
      // Abdominal contents in front of a curved line through the front of the disc and the psoas.
      const abdomen = j - bodyY + 0.09 * s - 0.2 * s * (x / (0.47 * s)) ** 2;
      if (abdomen < 0 && outline < -0.08) I = P.abdomen * (1 + 0.3 * texture);
      // Psoas muscles beside the disc, paraspinal muscles behind the arch.
      for (const side of [-1, 1]) {
        const psoas = norm((x - side * 0.25 * s) / (0.08 * s), (j - bodyY) / (0.09 * s)) - 1;
        I += (P.muscle - I) * clamp01(-psoas * 6);
        const paraspinal = norm((x - side * 0.12 * s) / (0.1 * s), (j - canalY - 0.17 * s) / (0.1 * s)) - 1;
        I += (P.muscle * (1 + 0.15 * texture) - I) * clamp01(-paraspinal * 6);
      }
      const disc = norm(x / bodyHalfX, (j - bodyY) / bodyHalfY) - 1;
      const nucleus = norm(x / (0.55 * bodyHalfX), (j - bodyY) / (0.5 * bodyHalfY)) - 1;
      I += (P.annulus - I) * clamp01(-disc * 8);
      I += (P.nucleusBase + P.nucleusScale * 0.7 - I) * clamp01(-nucleus * 4);
      // Neural arch: lamina around the canal and the spinous process behind it.
      const arch = norm(x / (0.16 * s), (j - canalY) / (0.11 * s)) - 1;
      const archBand = Math.abs(arch + 0.05) - 0.18;
      if (j > canalY - 0.02 * s) I += (P.marrow - I) * clamp01(-archBand * 10);
      const spine = Math.max(Math.abs(x) - 0.02 * s, Math.abs(j - canalY - 0.18 * s) - 0.1 * s);
      I += (P.marrow - I) * cover(spine);
      const canal = norm(x / (0.09 * s), (j - canalY) / Math.max((canalDepth * ratio) / 2, 0.5)) - 1;
      I += (P.csf - I) * clamp01(-canal * 6);
      if (outline > 0) I *= clamp01(1 - outline * 40);
      out[index] = I;
    }
  }
  return out;
}

// Standard normal quantiles at 4096 evenly spaced probabilities: image noise drawn by table look-up is
// several times faster than Box-Muller and indistinguishable at these noise levels.
const GAUSSIAN = Float64Array.from({ length: 4096 }, (_, i) => normalQuantile((i + 0.5) / 4096));

/** Acquisition: coil shading, gain, Rician noise (magnitude of complex Gaussian noise), quantisation. */
function acquire(signal: Float32Array, size: number, rng: Rng, gain: number, noise: number, max: number) {
  const out = new Uint16Array(size * size);
  const slopeX = rng.uniform(0.1, 0.5);
  const slopeY = rng.uniform(-0.2, 0.2);
  const curvature = rng.uniform(-0.6, 0);
  const sigma = noise * gain;
  // The coil shading is separable: brighter towards the back (the spine coil) and the middle rows.
  const columns = Float64Array.from({ length: size }, (_, i) => gain * Math.exp(slopeX * (i / size - 0.5)));
  for (let j = 0; j < size; j++) {
    const y = j / size - 0.5;
    const row = Math.exp(slopeY * y + curvature * y * y);
    for (let i = 0; i < size; i++) {
      const bits = rng.next();
      const real = signal[j * size + i] * columns[i] * row + sigma * GAUSSIAN[bits & 4095];
      const imaginary = sigma * GAUSSIAN[(bits >>> 12) & 4095];
      out[j * size + i] = Math.min(max, Math.round(Math.sqrt(real * real + imaginary * imaginary)));
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// DICOM

/** A DS (decimal string) value: at most 6 decimals and no exponent, within DICOM's 16 characters. */
function ds(value: number): string {
  return String(Number(value.toFixed(6)));
}

interface ImageHeader {
  studyId: number;
  seriesId: number;
  seriesNumber: number;
  description: string;
  instance: number;
  size: number;
  pixelMm: number;
  thickness: number;
  spacing: number;
  position: [number, number, number];
  orientation: number[];
  sliceLocation: number;
  bitsStored: number;
  windowCenter: number;
  windowWidth: number;
  repetitionMs: number;
  echoMs: number;
  fieldStrength: string;
}

/** A DICOM Part 10 file (explicit VR little endian, MR Image Storage) written by dcmjs. */
function dicomFile(h: ImageHeader, pixels: Uint16Array): Buffer {
  const study = `${UID_ROOT}.${h.studyId}`;
  const series = `${study}.${h.seriesId}`;
  const sop = `${series}.${h.instance}`;
  const e = (vr: string, ...Value: unknown[]): DcmjsElement => ({ vr, Value });
  const file = new dcmjs.data.DicomDict({
    '00020001': e('OB', new Uint8Array([0, 1]).buffer),
    '00020002': e('UI', MR_IMAGE_STORAGE),
    '00020003': e('UI', sop),
    '00020010': e('UI', EXPLICIT_VR_LITTLE_ENDIAN),
    '00020012': e('UI', UID_ROOT),
    '00020013': e('SH', 'LUMBAR_SYNTH_1'),
  });
  file.dict = {
    '00080008': e('CS', 'ORIGINAL', 'PRIMARY'),
    '00080016': e('UI', MR_IMAGE_STORAGE),
    '00080018': e('UI', sop),
    '00080060': e('CS', 'MR'),
    '00080070': e('LO', 'lumbar-stenosis synthetic'),
    '0008103E': e('LO', h.description),
    '00100010': e('PN', String(h.studyId)),
    '00100020': e('LO', String(h.studyId)),
    '00180015': e('CS', 'LSPINE'),
    '00180020': e('CS', 'SE'),
    '00180050': e('DS', ds(h.thickness)),
    '00180080': e('DS', ds(h.repetitionMs)),
    '00180081': e('DS', ds(h.echoMs)),
    '00180087': e('DS', h.fieldStrength),
    '00180088': e('DS', ds(h.spacing)),
    '00185100': e('CS', 'HFS'),
    '0020000D': e('UI', study),
    '0020000E': e('UI', series),
    '00200011': e('IS', String(h.seriesNumber)),
    '00200013': e('IS', String(h.instance)),
    '00200032': e('DS', ...h.position.map(ds)),
    '00200037': e('DS', ...h.orientation.map(ds)),
    '00200052': e('UI', `${study}.1`),
    '00201041': e('DS', ds(h.sliceLocation)),
    '00280002': e('US', 1),
    '00280004': e('CS', 'MONOCHROME2'),
    '00280010': e('US', h.size),
    '00280011': e('US', h.size),
    '00280030': e('DS', ds(h.pixelMm), ds(h.pixelMm)),
    '00280100': e('US', 16),
    '00280101': e('US', h.bitsStored),
    '00280102': e('US', h.bitsStored - 1),
    '00280103': e('US', 0),
    '00281050': e('DS', ds(h.windowCenter)),
    '00281051': e('DS', ds(h.windowWidth)),
    '7FE00010': e('OW', pixels.buffer.slice(pixels.byteOffset, pixels.byteOffset + pixels.byteLength)),
  };
  return Buffer.from(file.write());
}

// ---------------------------------------------------------------------------------------------------------
// Studies

interface SeriesPlan {
  id: number;
  description: string;
}

interface StudyPlan {
  index: number;
  studyId: number;
  series: SeriesPlan[];
}

interface StudyOutput {
  files: { relative: string; data: Uint8Array }[];
  labels: StudyLabels;
  t2SeriesId: number;
  annotatedInstance: number;
  points: [number, number][];
}

/** Instance numbers of a series: they start at 1 or later and sometimes skip one, as in the real data. */
function instanceNumbers(rng: Rng, count: number): number[] {
  let next = rng.chance(0.6) ? 1 : rng.int(2, 40);
  const gap = rng.chance(0.15) ? rng.int(1, count - 1) : -1;
  return Array.from({ length: count }, (_, k) => {
    if (k === gap) next++;
    return next++;
  });
}

/** Gain of a series: the brightest tissue lands between a sixth and two thirds of the stored range. */
function seriesGain(rng: Rng, bitsStored: number): number {
  return bitsStored === 12 ? rng.uniform(700, 2600) : rng.uniform(2000, 20000);
}

/**
 * Everything one study contributes: its DICOM files, labels, annotated instance and labelled points. A pure
 * function of (seed, study index), so any thread can render any study.
 */
function renderStudy(plan: StudyPlan, seedWords: number[], size: number): StudyOutput {
  const labels = sampleLabels(new Rng(...seedWords, plan.index, 2));
  const rng = new Rng(...seedWords, plan.index, 3);
  const pixelRng = new Rng(...seedWords, plan.index, 4);
  const a = sampleAnatomy(rng, size, labels.canal);
  const files: StudyOutput['files'] = [];
  const bitsStored = rng.chance(0.7) ? 12 : 16;
  const max = 2 ** bitsStored - 1;
  const seriesNumbers = [rng.int(1, 3), rng.int(4, 6), rng.int(7, 10)];
  const t2Size = size;
  const t1Size = Math.round((size * 5) / 8);
  const axialSize = Math.round(size / 2);

  const bySeries = new Map(plan.series.map((s) => [s.description, s]));
  const points = LEVELS.map((_, level) => canalPoint(a, level)).map(([x, y]): [number, number] => [
    x + rng.uniform(-0.5, 0.5) * (size / DEFAULT_IMAGE_SIZE),
    y + rng.uniform(-0.5, 0.5) * (size / DEFAULT_IMAGE_SIZE),
  ]);
  let annotatedInstance = 0;

  // Sagittal series: T2 with 5 slices whose midline slice is not always the middle file, T1 with 3.
  const sagittal: [string, number, number, Palette, number, number][] = [
    [T2, 5, t2Size, jitter(T2_PALETTE, rng), rng.uniform(3000, 4500), rng.uniform(85, 120)],
    [T1, 3, t1Size, jitter(T1_PALETTE, rng), rng.uniform(400, 700), rng.uniform(8, 15)],
  ];
  for (const [description, count, imageSize, palette, repetitionMs, echoMs] of sagittal) {
    const series = bySeries.get(description)!;
    const centre = count === 5 ? [1, 2, 2, 2, 3][rng.int(0, 4)] : 1;
    const offset = rng.uniform(-0.2, 0.2) * a.sliceSpacing;
    const instances = instanceNumbers(rng, count);
    const gain = seriesGain(rng, bitsStored);
    const noise = rng.uniform(0.015, 0.05);
    const pixelMm = a.pixelMm * (t2Size / imageSize);
    const fields = studyFields(pixelRng, imageSize);
    // The same field of view whatever the matrix: the first pixel centre moves with the pixel size.
    const shift = (0.5 * (t2Size / imageSize) - 0.5) * a.pixelMm;
    for (let k = 0; k < count; k++) {
      const lateral = (k - centre) * a.sliceSpacing + offset;
      const signal = renderSagittal(a, palette, lateral, imageSize, fields, pixelRng);
      const pixels = acquire(signal, imageSize, pixelRng, gain, noise, max);
      const x = a.midlineX + lateral;
      if (description === T2 && k === centre) annotatedInstance = instances[k];
      files.push({
        relative: path.join(String(plan.studyId), String(series.id), `${instances[k]}.dcm`),
        data: dicomFile(
          {
            studyId: plan.studyId,
            seriesId: series.id,
            seriesNumber: seriesNumbers[description === T2 ? 1 : 0],
            description,
            instance: instances[k],
            size: imageSize,
            pixelMm,
            thickness: a.sliceThickness,
            spacing: a.sliceSpacing,
            position: [x, a.originY + shift, a.originZ - shift],
            orientation: [0, 1, 0, 0, 0, -1],
            sliceLocation: x,
            bitsStored,
            windowCenter: Math.round(0.45 * gain),
            windowWidth: Math.round(0.9 * gain),
            repetitionMs,
            echoMs,
            fieldStrength: a.fieldStrength,
          },
          pixels,
        ),
      });
    }
  }

  // Axial T2: one small slice through each of the three lowest disc levels, head to feet.
  const axial = bySeries.get(AXIAL)!;
  const axialInstances = instanceNumbers(rng, 3);
  const axialGain = seriesGain(rng, bitsStored);
  const axialNoise = rng.uniform(0.015, 0.05);
  const axialMm = a.pixelMm * (t2Size / axialSize) * rng.uniform(0.9, 1.2);
  const axialPalette = jitter(T2_PALETTE, rng);
  for (let k = 0; k < 3; k++) {
    const level = 2 + k;
    const z = a.originZ - points[level][1] * a.pixelMm;
    const signal = renderAxial(axialPalette, a.ratio[level + FIRST_LUMBAR], axialSize, pixelRng);
    const pixels = acquire(signal, axialSize, pixelRng, axialGain, axialNoise, max);
    files.push({
      relative: path.join(String(plan.studyId), String(axial.id), `${axialInstances[k]}.dcm`),
      data: dicomFile(
        {
          studyId: plan.studyId,
          seriesId: axial.id,
          seriesNumber: seriesNumbers[2],
          description: AXIAL,
          instance: axialInstances[k],
          size: axialSize,
          pixelMm: axialMm,
          thickness: a.sliceThickness,
          spacing: a.sliceThickness,
          position: [a.midlineX - (axialMm * axialSize) / 2, a.originY, z],
          orientation: [1, 0, 0, 0, 1, 0],
          sliceLocation: z,
          bitsStored,
          windowCenter: Math.round(0.45 * axialGain),
          windowWidth: Math.round(0.9 * axialGain),
          repetitionMs: rng.uniform(3000, 5000),
          echoMs: rng.uniform(85, 120),
          fieldStrength: a.fieldStrength,
        },
        pixels,
      ),
    });
  }
  return { files, labels, t2SeriesId: bySeries.get(T2)!.id, annotatedInstance, points };
}

const WORKER_KIND = 'lumbar-stenosis synthetic renderer';

interface StudyJob {
  plan: StudyPlan;
  seedWords: number[];
  size: number;
}

/**
 * Render worker threads: $STENOSIS_SYNTHETIC_THREADS when set (0 renders in this thread), else one per core
 * up to 4 when there are several cores. Every study has its own random streams, so the files do not depend
 * on the thread count.
 */
function renderThreads(studies: number): number {
  const fromEnv = process.env.STENOSIS_SYNTHETIC_THREADS;
  if (fromEnv !== undefined && fromEnv !== '') {
    return checkInteger(Number(fromEnv), 'STENOSIS_SYNTHETIC_THREADS', 0, 64);
  }
  const threads = Math.min(4, os.availableParallelism(), Math.ceil(studies / 4));
  // Loaded from TypeScript source (ts-jest), this thread runs inside a vm context where V8 does not optimise
  // Math-heavy loops (tens of times slower): a worker renders outside it even on one core.
  if (__filename.endsWith('.ts')) return Math.max(threads, 1);
  return threads > 1 ? threads : 0;
}

/**
 * A worker thread running this module: the compiled file itself, or, from TypeScript source, a script that
 * first makes require() transpile .ts files with the typescript package (a development dependency, present
 * wherever the source is run directly). Undefined when neither is possible.
 */
function startWorker(): Worker | undefined {
  const workerData = { kind: WORKER_KIND };
  if (__filename.endsWith('.js')) return new Worker(__filename, { workerData });
  let typescript: string;
  try {
    typescript = require.resolve('typescript');
  } catch {
    return undefined;
  }
  const source = `
    const fs = require('node:fs');
    const ts = require(${JSON.stringify(typescript)});
    require.extensions['.ts'] = (module, filename) => {
      const { outputText } = ts.transpileModule(fs.readFileSync(filename, 'utf8'), {
        fileName: filename,
        compilerOptions: {
          module: ts.ModuleKind.CommonJS,
          target: ts.ScriptTarget.ES2022,
          esModuleInterop: true,
        },
      });
      module._compile(outputText, filename);
    };
    require(${JSON.stringify(__filename)});
  `;
  return new Worker(source, { eval: true, workerData });
}

/**
 * Renders every study, in worker threads where worthwhile, handing each to `done` (at most one per thread
 * at a time, so that memory stays bounded).
 */
async function renderStudies(
  plans: StudyPlan[],
  seedWords: number[],
  size: number,
  done: (position: number, study: StudyOutput) => Promise<void>,
): Promise<void> {
  const threads = renderThreads(plans.length);
  const workers: Worker[] = [];
  for (let i = 0; i < threads; i++) {
    const worker = startWorker();
    if (!worker) break;
    // Errors reach the pending render's listener; this one keeps an idle thread's failure from throwing.
    worker.on('error', () => {});
    workers.push(worker);
  }
  if (workers.length === 0) {
    for (let position = 0; position < plans.length; position++) {
      await done(position, renderStudy(plans[position], seedWords, size));
    }
    return;
  }
  let next = 0;
  const render = (worker: Worker, job: StudyJob) =>
    new Promise<StudyOutput>((resolve, reject) => {
      const settle = () => {
        worker.off('message', onMessage);
        worker.off('error', onError);
        worker.off('exit', onExit);
      };
      const onMessage = (output: StudyOutput) => {
        settle();
        resolve(output);
      };
      const onError = (error: Error) => {
        settle();
        reject(error);
      };
      const onExit = (code: number) => {
        settle();
        reject(
          new StenosisError(
            'ERR_SYNTHETIC_WORKER',
            `A synthetic-data render thread exited with code ${code}`,
          ),
        );
      };
      worker.on('message', onMessage);
      worker.on('error', onError);
      worker.on('exit', onExit);
      worker.postMessage(job);
    });
  try {
    await Promise.all(
      workers.map(async (worker) => {
        while (next < plans.length) {
          const position = next++;
          await done(position, await render(worker, { plan: plans[position], seedWords, size }));
        }
      }),
    );
  } finally {
    await Promise.all(workers.map((worker) => worker.terminate()));
  }
}

// In a render thread: render the studies the main thread sends, one message per study.
if (!isMainThread && parentPort && (workerData as { kind?: unknown } | null)?.kind === WORKER_KIND) {
  const port = parentPort;
  port.on('message', (job: StudyJob) => port.postMessage(renderStudy(job.plan, job.seedWords, job.size)));
}

function checkOptions(options: SyntheticOptions | undefined, name: string): Required<SyntheticOptions> {
  if (options === undefined) options = {};
  if (!isPlainObject(options)) throw invalidArgument('an options object', name, options);
  checkKnownKeys(options, name, ['studies', 'seed', 'imageSize']);
  return {
    studies: checkInteger(
      options.studies ?? DEFAULT_STUDIES,
      `${name}.studies`,
      LIMITS.syntheticStudies.min,
      LIMITS.syntheticStudies.max,
    ),
    seed: checkInteger(options.seed ?? 0, `${name}.seed`, 0),
    imageSize: checkInteger(options.imageSize ?? DEFAULT_IMAGE_SIZE, `${name}.imageSize`, 64, 1024),
  };
}

function csvText(rows: (string | number)[][]): string {
  return rows.map((row) => row.join(',')).join('\n') + '\n';
}

function coordinate(value: number): string {
  return String(Number(value.toFixed(3)));
}

/**
 * Writes a synthetic RSNA-layout dataset into `folder` (created; it must not exist or be empty) and returns
 * what it wrote. A completion marker is written last. Deterministic: the same options give byte-identical
 * files. Studies render in up to 4 worker threads ($STENOSIS_SYNTHETIC_THREADS sets the count, 0 renders in
 * this one).
 * @throws StenosisError ERR_INVALID_ARG for bad options, ERR_SYNTHETIC_FOLDER when the folder holds files.
 */
export async function generateSyntheticDataset(
  folder: string,
  options?: SyntheticOptions,
): Promise<SyntheticSummary> {
  const started = process.hrtime.bigint();
  if (typeof folder !== 'string' || folder === '') throw invalidArgument('a folder path', 'folder', folder);
  const { studies, seed, imageSize } = checkOptions(options, 'options');
  folder = path.resolve(folder);
  if (fs.existsSync(folder) && fs.readdirSync(folder).length > 0) {
    throw new StenosisError(
      'ERR_SYNTHETIC_FOLDER',
      `Cannot generate the synthetic dataset into ${folder}: the folder is not empty`,
    );
  }
  const seedWords = [seed >>> 0, Math.floor(seed / 2 ** 32) >>> 0];

  // Competition-like identifiers: unique random integers, study and series alike.
  const idRng = new Rng(...seedWords, 0xffffffff, 1);
  const used = new Set<number>();
  const uniqueId = (low: number) => {
    for (;;) {
      const id = idRng.int(low, 4294967000);
      if (!used.has(id)) {
        used.add(id);
        return id;
      }
    }
  };
  const plans: StudyPlan[] = [];
  for (let index = 0; index < studies; index++) {
    const studyId = uniqueId(4000000);
    const descriptions = [T2, T1, AXIAL];
    // The series are listed in a random order per study, as in the real train_series_descriptions.csv.
    for (let i = descriptions.length - 1; i > 0; i--) {
      const j = idRng.int(0, i);
      [descriptions[i], descriptions[j]] = [descriptions[j], descriptions[i]];
    }
    plans.push({
      index,
      studyId,
      series: descriptions.map((description) => ({ id: uniqueId(1000000), description })),
    });
  }
  plans.sort((x, y) => x.studyId - y.studyId);

  const images = path.join(folder, 'train_images');
  fs.mkdirSync(images, { recursive: true });
  const train: (string | number)[][] = [
    ['study_id', ...CONDITIONS.flatMap((condition) => LEVEL_SLUGS.map((level) => `${condition}_${level}`))],
  ];
  const coordinates: (string | number)[][] = [
    ['study_id', 'series_id', 'instance_number', 'condition', 'level', 'x', 'y'],
  ];
  const descriptions: (string | number)[][] = [['study_id', 'series_id', 'series_description']];
  const labelCounts: Record<string, Record<string, number>> = {};
  for (const level of LEVELS) labelCounts[level] = { normal_mild: 0, moderate: 0, severe: 0, missing: 0 };
  let files = 0;
  let bytes = 0;

  const outputs: StudyOutput[] = new Array(plans.length);
  try {
    await renderStudies(plans, seedWords, imageSize, async (position, study) => {
      const folders = new Set(study.files.map((file) => path.dirname(path.join(images, file.relative))));
      for (const dir of folders) fs.mkdirSync(dir, { recursive: true });
      await Promise.all(
        study.files.map((file) => fs.promises.writeFile(path.join(images, file.relative), file.data)),
      );
      files += study.files.length;
      for (const file of study.files) bytes += file.data.length;
      // Keep what the CSVs need, not the pixels.
      outputs[position] = { ...study, files: [] };
    });
  } catch (error) {
    fs.rmSync(images, { recursive: true, force: true });
    throw error;
  }

  plans.forEach((plan, position) => {
    const study = outputs[position];
    const cells = study.labels.cells;
    train.push([plan.studyId, ...cells.flatMap((row) => row.map((s) => (s < 0 ? '' : RSNA_SEVERITY[s])))]);
    LEVELS.forEach((level, l) => {
      const severity = cells[0][l];
      labelCounts[level][severity < 0 ? 'missing' : SEVERITIES[severity]]++;
      if (severity < 0 || study.labels.noCoordinate[l]) return;
      const [x, y] = study.points[l];
      coordinates.push([
        plan.studyId,
        study.t2SeriesId,
        study.annotatedInstance,
        'Spinal Canal Stenosis',
        level,
        coordinate(x),
        coordinate(y),
      ]);
    });
    for (const series of plan.series) descriptions.push([plan.studyId, series.id, series.description]);
  });

  for (const [name, rows] of [
    ['train.csv', train],
    ['train_label_coordinates.csv', coordinates],
    ['train_series_descriptions.csv', descriptions],
  ] as const) {
    const text = csvText(rows);
    await fs.promises.writeFile(path.join(folder, name), text);
    files++;
    bytes += Buffer.byteLength(text);
  }
  // The marker holds no path or time, so that it is as deterministic as the rest.
  const marker: Marker = {
    format: MARKER_FORMAT,
    version: VERSION,
    studies,
    seed,
    imageSize,
    files,
    bytes,
    labelCounts,
  };
  await fs.promises.writeFile(path.join(folder, MARKER), JSON.stringify(marker, null, 2) + '\n');
  return {
    folder,
    studies,
    files,
    bytes,
    seconds: Number(process.hrtime.bigint() - started) / 1e9,
    labelCounts,
  };
}

interface Marker {
  format: string;
  version: number;
  studies: number;
  seed: number;
  imageSize: number;
  files: number;
  bytes: number;
  labelCounts: Record<string, Record<string, number>>;
}

/** The completion marker of a dataset of this generator version in `folder`, or undefined. */
function readMarker(folder: string): Marker | undefined {
  try {
    const marker = JSON.parse(fs.readFileSync(path.join(folder, MARKER), 'utf8')) as Partial<Marker>;
    if (marker.format !== MARKER_FORMAT || marker.version !== VERSION) return undefined;
    for (const key of ['studies', 'seed', 'imageSize', 'files', 'bytes'] as const) {
      if (typeof marker[key] !== 'number') return undefined;
    }
    return isPlainObject(marker.labelCounts) ? (marker as Marker) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The summary stored by a complete synthetic dataset in `folder` (without the timing), or undefined when the
 * folder holds no complete dataset of this generator version (missing, partial, or written by another
 * version).
 */
export function readSyntheticSummary(folder: string): SyntheticInfo | undefined {
  const marker = readMarker(folder);
  if (!marker) return undefined;
  const { studies, files, bytes, labelCounts } = marker;
  return { folder: path.resolve(folder), studies, files, bytes, labelCounts };
}

/**
 * The default cache folder: $STENOSIS_CACHE_DIR or $XDG_CACHE_HOME/lumbar-stenosis or
 * ~/.cache/lumbar-stenosis; dataset under synthetic-<studies>-<seed>-v1 (with -<size>px before -v1 for a
 * non-default imageSize).
 */
export function defaultSyntheticFolder(options?: SyntheticOptions): string {
  const { studies, seed, imageSize } = checkOptions(options, 'options');
  const cache =
    process.env.STENOSIS_CACHE_DIR ||
    path.join(process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache'), 'lumbar-stenosis');
  // A non-default image size gets its own folder so that it never reuses the default one.
  const size = imageSize === DEFAULT_IMAGE_SIZE ? '' : `-${imageSize}px`;
  return path.resolve(cache, `synthetic-${studies}-${seed}${size}-v${VERSION}`);
}

/**
 * Generates into the default folder unless it is already complete (a marker file written last); returns the
 * folder. Concurrent-safe enough: generates into a temporary sibling folder and renames it into place, so a
 * crash never leaves a partial dataset under the final name and a race only wastes work.
 */
export async function ensureSyntheticDataset(
  options?: SyntheticOptions,
  log?: (line: string) => void,
): Promise<string> {
  const folder = defaultSyntheticFolder(options);
  const { studies, seed, imageSize } = checkOptions(options, 'options');
  const complete = () => {
    const marker = readMarker(folder);
    return marker?.studies === studies && marker.seed === seed && marker.imageSize === imageSize;
  };
  if (complete()) return folder;
  if (fs.existsSync(folder)) {
    // A rename never leaves a partial dataset here, so this is someone else's folder: leave it alone.
    throw new StenosisError(
      'ERR_SYNTHETIC_FOLDER',
      `${folder} exists but holds no complete synthetic dataset of these options (see its ${MARKER}); ` +
        'delete it to regenerate',
    );
  }
  fs.mkdirSync(path.dirname(folder), { recursive: true });
  const temp = `${folder}.tmp-${process.pid}-${Date.now().toString(36)}`;
  log?.(`Generating the synthetic dataset (${studies} studies) into ${folder}`);
  try {
    const summary = await generateSyntheticDataset(temp, options);
    try {
      fs.renameSync(temp, folder);
    } catch (error) {
      // Another process finished first: use its copy.
      if (!complete()) throw error;
    }
    const megabytes = (summary.bytes / 1e6).toFixed(1);
    log?.(`Generated ${summary.files} files, ${megabytes} MB in ${summary.seconds.toFixed(1)} s`);
  } finally {
    fs.rmSync(temp, { recursive: true, force: true });
  }
  return folder;
}
