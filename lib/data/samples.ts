/** One training or evaluation example: one image of one study at one lumbar level. */
export interface Sample {
  /** Competition-style row id: <study_id>_spinal_canal_stenosis_<l1_l2 .. l5_s1>. */
  rowId: string;
  studyId: string;
  seriesId: string | null;
  instanceNumber: number | null;
  /** Absolute path of the DICOM file. */
  imagePath: string;
  /** 0..4 for L1/L2 .. L5/S1. */
  level: number;
  /** 0..2 for normal/mild, moderate, severe; null when unlabelled (prediction only). */
  label: number | null;
  /** Labelled canal centre in pixels of the image, when known (crops are centred there). */
  x: number | null;
  y: number | null;
  /** The file and row the sample was read from (e.g. `train_label_coordinates.csv row 7`), for problem reports. */
  source?: string;
}

/** A problem found while reading a dataset: the file or row, and what was expected. */
export interface DataProblem {
  kind:
    | 'missing-label'
    | 'missing-coordinate'
    | 'missing-image'
    | 'unknown-level'
    | 'unknown-severity'
    | 'duplicate-row'
    | 'bad-path'
    | 'bad-row'
    | 'unreadable-image'
    /** A crop was asked for and the sample's x/y lies outside its image. */
    | 'bad-coordinate'
    /** A crop in millimetres was asked for and the image has no (usable) PixelSpacing. */
    | 'no-pixel-spacing'
    /** A study folder prediction cannot use (no Sagittal T2/STIR series, no instances, unreadable headers). */
    | 'bad-study';
  where: string;
  message: string;
}

/** Problem counts by kind, for reports. */
export function countProblems(problems: readonly DataProblem[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const problem of problems) counts[problem.kind] = (counts[problem.kind] ?? 0) + 1;
  return counts;
}

export const LEVEL_SLUGS = ['l1_l2', 'l2_l3', 'l3_l4', 'l4_l5', 'l5_s1'] as const;

export function rowIdOf(studyId: string, level: number): string {
  return `${studyId}_spinal_canal_stenosis_${LEVEL_SLUGS[level]}`;
}

const DECIMAL = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;

/**
 * A row's x and y cells as pixel coordinates: both empty (or absent) is no coordinate (null, null), the sample
 * then used uncropped; otherwise both must be finite decimal numbers >= 0. Returns the reason when they are not.
 */
export function parseCoordinates(
  x: string | undefined,
  y: string | undefined,
): { x: number | null; y: number | null } | { error: string } {
  const cells = [(x ?? '').trim(), (y ?? '').trim()];
  if (!cells[0] && !cells[1]) return { x: null, y: null };
  const values: number[] = [];
  for (const [i, cell] of cells.entries()) {
    const name = i === 0 ? 'x' : 'y';
    const other = i === 0 ? 'y' : 'x';
    if (!cell)
      return {
        error: `${name} is empty but ${other} is ${JSON.stringify(cells[1 - i])}: give both or neither`,
      };
    const value = DECIMAL.test(cell) ? Number(cell) : NaN;
    if (!Number.isFinite(value) || value < 0)
      return { error: `${name} must be a finite number of pixels >= 0, got ${JSON.stringify(cell)}` };
    values.push(value);
  }
  return { x: values[0], y: values[1] };
}
