import fs from 'node:fs';
import path from 'node:path';
import { readCsvRows } from './csv';
import { StenosisError } from '../errors';
import { LEVELS, levelIndex, SEVERITIES, severityIndex } from '../model/levels';
import { SeededRandom } from './random';
import { parseCoordinates, rowIdOf, type DataProblem, type Sample } from './samples';
import { describeProblems } from './validate';
import { writeFileAtomic } from './atomic';

export interface Splits {
  train: Sample[];
  val: Sample[];
  test: Sample[];
}

/**
 * Splits samples by study (no study in two splits), stratified on each study's worst spinal severity, so that
 * the rare severe studies land in every split. Reproducible from the seed.
 */
export function splitByStudy(
  samples: readonly Sample[],
  seed: number,
  fractions: readonly [number, number, number] = [0.7, 0.15, 0.15],
): Splits {
  const total = fractions[0] + fractions[1] + fractions[2];
  if (fractions.some((f) => f < 0) || Math.abs(total - 1) > 1e-9) {
    throw new StenosisError(
      'ERR_INVALID_ARG',
      `split fractions must be >= 0 and sum to 1, got ${fractions.join('/')}`,
    );
  }
  const worst = new Map<string, number>();
  for (const sample of samples)
    worst.set(sample.studyId, Math.max(worst.get(sample.studyId) ?? 0, sample.label ?? 0));
  const rng = new SeededRandom(seed);
  const assignment = new Map<string, keyof Splits>();
  for (let severity = 0; severity < SEVERITIES.length; severity++) {
    const studies = rng.shuffle(
      [...worst]
        .filter(([, w]) => w === severity)
        .map(([study]) => study)
        .sort(),
    );
    const nVal = Math.round(studies.length * fractions[1]);
    const nTest = Math.round(studies.length * fractions[2]);
    studies.forEach((study, i) =>
      assignment.set(study, i < nVal ? 'val' : i < nVal + nTest ? 'test' : 'train'),
    );
  }
  const splits: Splits = { train: [], val: [], test: [] };
  for (const sample of samples) splits[assignment.get(sample.studyId) as keyof Splits].push(sample);
  return splits;
}

function csvField(value: string): string {
  return /[",\n]/.test(value) ? `"${value.replace(/"/g, '""')}"` : value;
}

/**
 * Writes samples as a reference-layout CSV (image_path,row_id,level,severity[,x,y]) so a run can be repeated;
 * image paths are absolute, since the images usually live outside the output folder.
 */
export function writeReferenceCsv(file: string, samples: readonly Sample[]): void {
  const lines = ['image_path,row_id,level,severity,x,y'];
  for (const s of samples) {
    lines.push(
      [
        csvField(s.imagePath),
        s.rowId,
        LEVELS[s.level],
        s.label === null ? '' : SEVERITIES[s.label],
        s.x ?? '',
        s.y ?? '',
      ].join(','),
    );
  }
  writeFileAtomic(file, lines.join('\n') + '\n');
}

/**
 * Reads a reference-layout CSV: image_path,row_id,level,severity (optional x,y); levels L1/L2 .. L5/S1,
 * severities normal_mild, moderate, severe; relative image paths resolve against the CSV's folder and must stay
 * inside it. Every bad row is reported (not only the first); with `problems` given they are collected there and
 * the good rows returned, otherwise the first batch of problems is thrown as one error.
 */
export function readReferenceCsv(file: string, problems?: DataProblem[]): Sample[] {
  const rows = readCsvRows(file, ['image_path', 'row_id', 'level', 'severity'], 'a split CSV');
  if (rows.length === 0) {
    throw new StenosisError(
      'ERR_DATA',
      `${file} has no rows (it is empty or holds only a header); expected image_path,row_id,level,severity rows`,
    );
  }
  const folder = path.dirname(path.resolve(file));
  const found: DataProblem[] = [];
  const samples: Sample[] = [];
  const seen = new Map<string, number>();
  rows.forEach((row, index) => {
    const where = `${file} row ${index + 2}`;
    try {
      const level = levelIndex(row.level, where);
      const label = row.severity ? severityIndex(row.severity, where) : null;
      const imagePath = path.resolve(folder, row.image_path);
      // A relative path must stay inside the CSV's folder; an absolute one says explicitly where the image is.
      const relative = path.relative(folder, imagePath);
      if (!path.isAbsolute(row.image_path) && (relative.startsWith('..') || path.isAbsolute(relative))) {
        found.push({
          kind: 'bad-path',
          where,
          message: `image_path ${row.image_path} leaves the CSV's folder ${folder}`,
        });
        return;
      }
      if (seen.has(row.row_id)) {
        found.push({
          kind: 'duplicate-row',
          where,
          message: `row_id ${row.row_id} already appears at row ${seen.get(row.row_id)}`,
        });
        return;
      }
      seen.set(row.row_id, index + 2);
      if (!fs.existsSync(imagePath)) {
        found.push({ kind: 'missing-image', where, message: `${imagePath} does not exist` });
        return;
      }
      const point = parseCoordinates(row.x, row.y);
      if ('error' in point) {
        found.push({ kind: 'bad-row', where, message: `${point.error} (row_id ${row.row_id})` });
        return;
      }
      const studyId = row.row_id.split('_')[0] || row.row_id;
      samples.push({
        rowId: row.row_id || rowIdOf(studyId, level),
        studyId,
        seriesId: null,
        instanceNumber: null,
        imagePath,
        level,
        label,
        x: point.x,
        y: point.y,
        source: where,
      });
    } catch (error) {
      const code = (error as StenosisError).code;
      found.push({
        kind:
          code === 'ERR_UNKNOWN_LEVEL'
            ? 'unknown-level'
            : code === 'ERR_UNKNOWN_SEVERITY'
              ? 'unknown-severity'
              : 'bad-row',
        where,
        message: (error as Error).message,
      });
    }
  });
  if (problems) {
    problems.push(...found);
  } else if (found.length > 0) {
    throw new StenosisError(
      'ERR_DATA',
      `${file} has ${found.length} bad row(s):\n${describeProblems(found)}`,
    );
  }
  return samples;
}

/**
 * Rows that appear in more than one split (the same image_path or the same row_id), which leak evaluation data
 * into training: one message per pair of rows, naming both files and rows.
 */
export function findSplitOverlaps(splits: Splits): string[] {
  const messages: string[] = [];
  const names = ['train', 'val', 'test'] as const;
  const where = (sample: Sample, split: string) => sample.source ?? `the ${split} split`;
  for (let a = 0; a < names.length; a++) {
    for (let b = a + 1; b < names.length; b++) {
      const byImage = new Map<string, Sample[]>();
      const byRow = new Map<string, Sample[]>();
      for (const sample of splits[names[a]]) {
        byImage.set(sample.imagePath, [...(byImage.get(sample.imagePath) ?? []), sample]);
        byRow.set(sample.rowId, [...(byRow.get(sample.rowId) ?? []), sample]);
      }
      for (const sample of splits[names[b]]) {
        const seen = new Set<Sample>();
        for (const other of [...(byRow.get(sample.rowId) ?? []), ...(byImage.get(sample.imagePath) ?? [])]) {
          if (seen.has(other)) continue;
          seen.add(other);
          const same = [
            other.rowId === sample.rowId ? `row_id ${sample.rowId}` : '',
            other.imagePath === sample.imagePath ? `image_path ${sample.imagePath}` : '',
          ].filter(Boolean);
          messages.push(
            `${where(other, names[a])} and ${where(sample, names[b])} have the same ${same.join(' and ')}: ` +
              `the ${names[a]} and ${names[b]} splits overlap`,
          );
        }
      }
    }
  }
  return messages;
}
