import fs from 'node:fs';
import path from 'node:path';
import { LEVELS, levelIndex, severityIndex } from '../model/levels';
import { readCsvRows, type CsvRow } from './csv';
import { orderInstances, readDicomHeader, type DicomHeader } from './dicom';
import {
  countProblems,
  LEVEL_SLUGS,
  parseCoordinates,
  rowIdOf,
  type DataProblem,
  type Sample,
} from './samples';

/** A dataset read from the RSNA 2024 lumbar spine layout, restricted to spinal canal stenosis. */
export interface RsnaDataset {
  folder: string;
  samples: Sample[];
  problems: DataProblem[];
  /** Studies with at least one sample. */
  studies: string[];
  /** Labelled (non-empty) spinal level cells of train.csv; those that did not become a sample were left out. */
  labelled: number;
}

/**
 * One line on what was read: samples, studies, how many labelled levels were left out, and the problems by kind
 * (a problem need not drop a sample: a listed series without a folder is one, when the next series is used).
 */
export function describeRsnaDataset(dataset: RsnaDataset): string {
  const counts = countProblems(dataset.problems);
  const leftOut = dataset.labelled - dataset.samples.length;
  return (
    `dataset ${dataset.folder}: ${dataset.samples.length} samples from ${dataset.studies.length} studies, ` +
    `${leftOut} of ${dataset.labelled} labelled level(s) left out` +
    (dataset.problems.length
      ? `; problems reported: ${Object.entries(counts)
          .map(([kind, n]) => `${n} ${kind}`)
          .join(', ')}`
      : '')
  );
}

type Row = CsvRow;

function readCsv(file: string, required: readonly string[]): Row[] {
  return readCsvRows(file, required, 'an RSNA layout folder');
}

const ID = /^\d+$/;
const SPINAL = new Set(['spinal canal stenosis', 'spinal_canal_stenosis']);

/** Sagittal T2/STIR series of a study with their rows (1-based, header = 1), in the descriptions file's order. */
function sagittalT2Series(descriptions: Row[], studyId: string): { seriesId: string; line: number }[] {
  return descriptions.flatMap((row, index) =>
    row.study_id === studyId && /sagittal\s*t2/i.test(row.series_description ?? '')
      ? [{ seriesId: row.series_id, line: index + 2 }]
      : [],
  );
}

/**
 * The middle instance by position of a series folder (files are ordered by DICOM position and instance
 * number, never by file-name string order). With `unreadable` given, files whose header cannot be read are
 * collected there and left out of the ordering (the middle of the readable ones is returned, null when none is);
 * without it the first such file throws.
 */
export async function middleInstance(
  seriesFolder: string,
  unreadable?: { file: string; message: string }[],
): Promise<{ file: string; header: DicomHeader } | null> {
  if (!fs.existsSync(seriesFolder)) return null;
  const files = fs.readdirSync(seriesFolder).filter((name) => name.endsWith('.dcm'));
  if (files.length === 0) return null;
  type Read = { file: string; header: DicomHeader } | { file: string; message: string };
  const read = await Promise.all(
    files.map(async (name): Promise<Read> => {
      const file = path.join(seriesFolder, name);
      try {
        return { file, header: await readDicomHeader(file) };
      } catch (error) {
        if (!unreadable) throw error;
        return { file, message: (error as Error).message };
      }
    }),
  );
  const items: { file: string; header: DicomHeader }[] = [];
  for (const item of read) {
    if ('header' in item) items.push(item);
    else unreadable?.push(item);
  }
  if (items.length === 0) return null;
  const ordered = orderInstances(items);
  return ordered[Math.floor((ordered.length - 1) / 2)];
}

/**
 * Reads an RSNA-layout folder (train.csv, train_label_coordinates.csv, train_series_descriptions.csv,
 * train_images/<study>/<series>/<instance>.dcm) into one sample per study and labelled spinal level: the annotated
 * instance with its x/y. A study with no coordinate rows at all gets, per level, the middle instance of its first
 * Sagittal T2/STIR series, uncropped. Rows without a label, coordinate or image are reported, not dropped silently.
 */
export async function readRsnaDataset(folder: string): Promise<RsnaDataset> {
  const root = path.resolve(folder);
  const labelColumns = LEVEL_SLUGS.map((slug) => `spinal_canal_stenosis_${slug}`);
  const labels = readCsv(path.join(root, 'train.csv'), ['study_id', ...labelColumns]);
  const coordinates = readCsv(path.join(root, 'train_label_coordinates.csv'), [
    'study_id',
    'series_id',
    'instance_number',
    'condition',
    'level',
    'x',
    'y',
  ]);
  const descriptionsFile = path.join(root, 'train_series_descriptions.csv');
  const hasDescriptions = fs.existsSync(descriptionsFile);
  const descriptions = hasDescriptions
    ? readCsv(descriptionsFile, ['study_id', 'series_id', 'series_description'])
    : [];
  const problems: DataProblem[] = [];

  /**
   * The fallback image of a study without coordinates: the middle instance of the readable files of its first
   * Sagittal T2/STIR series that has any. Unreadable files are reported and left out of the ordering; a listed
   * series without a folder or readable files is reported (and the next one tried); a study with none gets one
   * problem saying why, instead of each level's rows vanishing without a reason.
   */
  async function fallbackImage(studyId: string, where: string) {
    const listed = sagittalT2Series(descriptions, studyId);
    for (const { seriesId, line } of listed) {
      const seriesWhere = `train_series_descriptions.csv row ${line}`;
      if (!ID.test(seriesId)) {
        problems.push({
          kind: 'bad-path',
          where: seriesWhere,
          message: `series_id must be digits, got ${seriesId}`,
        });
        continue;
      }
      const folder = path.join(root, 'train_images', studyId, seriesId);
      const unreadable: { file: string; message: string }[] = [];
      const middle = await middleInstance(folder, unreadable);
      for (const { file, message } of unreadable) {
        problems.push({
          kind: 'unreadable-image',
          where: file,
          message: `${message} (study ${studyId}, Sagittal T2/STIR series ${seriesId}: left out of its ordering)`,
        });
      }
      if (middle) return middle;
      const state = !fs.existsSync(folder)
        ? 'does not exist'
        : unreadable.length > 0
          ? `has no readable .dcm files (${unreadable.length} unreadable)`
          : 'has no .dcm files';
      problems.push({
        kind: 'missing-image',
        where: seriesWhere,
        message: `${folder} ${state} (study ${studyId})`,
      });
    }
    const why = !hasDescriptions
      ? 'train_series_descriptions.csv is absent'
      : listed.length === 0
        ? 'train_series_descriptions.csv lists no Sagittal T2/STIR series for it'
        : 'none of its Sagittal T2/STIR series has readable images';
    problems.push({
      kind: 'missing-image',
      where,
      message: `study ${studyId} has no coordinate rows and no image to fall back on: ${why}`,
    });
    return null;
  }
  const coordinateFile = 'train_label_coordinates.csv';

  // study -> level -> coordinate row
  const byStudy = new Map<
    string,
    Map<number, { row: Row; line: number; point: { x: number | null; y: number | null } | null }>
  >();
  coordinates.forEach((row, index) => {
    const line = index + 2;
    if (!SPINAL.has((row.condition ?? '').trim().toLowerCase())) return;
    const where = `${coordinateFile} row ${line}`;
    let level: number;
    try {
      level = levelIndex(row.level, where);
    } catch (error) {
      problems.push({ kind: 'unknown-level', where, message: (error as Error).message });
      return;
    }
    if (!ID.test(row.study_id) || !ID.test(row.series_id) || !ID.test(row.instance_number)) {
      problems.push({
        kind: 'bad-path',
        where,
        message:
          'study_id, series_id and instance_number must be digits (they name folders and files), ' +
          `got ${row.study_id}, ${row.series_id}, ${row.instance_number}`,
      });
      return;
    }
    const levels = byStudy.get(row.study_id) ?? new Map();
    if (levels.has(level)) {
      problems.push({
        kind: 'duplicate-row',
        where,
        message: `study ${row.study_id} ${LEVELS[level]} already has a coordinate at row ${levels.get(level).line}`,
      });
      return;
    }
    // A bad x/y is reported here; the row still stands for its level (no fallback, no second report).
    const point = parseCoordinates(row.x, row.y);
    if ('error' in point) {
      problems.push({
        kind: 'bad-row',
        where,
        message: `${point.error} (study ${row.study_id} ${LEVELS[level]}; the sample is left out)`,
      });
    }
    levels.set(level, { row, line, point: 'error' in point ? null : point });
    byStudy.set(row.study_id, levels);
  });

  const samples: Sample[] = [];
  const seenStudies = new Set<string>();
  let labelled = 0;
  for (const [index, row] of labels.entries()) {
    const line = index + 2;
    const studyId = row.study_id;
    const where = `train.csv row ${line}`;
    labelled += labelColumns.filter((column) => row[column]).length;
    if (!ID.test(studyId)) {
      problems.push({
        kind: 'bad-path',
        where,
        message: `study_id must be digits, got ${JSON.stringify(studyId)}`,
      });
      continue;
    }
    if (seenStudies.has(studyId)) {
      problems.push({
        kind: 'duplicate-row',
        where,
        message: `study ${studyId} appears more than once in train.csv`,
      });
      continue;
    }
    seenStudies.add(studyId);
    const studyCoordinates = byStudy.get(studyId);
    let fallback: { file: string; header: DicomHeader } | null | undefined;
    for (let level = 0; level < LEVELS.length; level++) {
      const value = row[labelColumns[level]];
      const levelWhere = `${where} (${labelColumns[level]})`;
      if (!value) {
        problems.push({
          kind: 'missing-label',
          where: levelWhere,
          message: `study ${studyId} ${LEVELS[level]} has no label`,
        });
        continue;
      }
      let label: number;
      try {
        label = severityIndex(value, levelWhere);
      } catch (error) {
        problems.push({ kind: 'unknown-severity', where: levelWhere, message: (error as Error).message });
        continue;
      }
      const coordinate = studyCoordinates?.get(level);
      if (coordinate) {
        const { row: c, line: cLine, point } = coordinate;
        if (!point) continue; // its bad x/y is reported with its row
        const imagePath = path.join(root, 'train_images', studyId, c.series_id, `${c.instance_number}.dcm`);
        if (!fs.existsSync(imagePath)) {
          problems.push({
            kind: 'missing-image',
            where: `${coordinateFile} row ${cLine}`,
            message: `${imagePath} does not exist (study ${studyId} ${LEVELS[level]})`,
          });
          continue;
        }
        samples.push({
          rowId: rowIdOf(studyId, level),
          studyId,
          seriesId: c.series_id,
          instanceNumber: Number(c.instance_number),
          imagePath,
          level,
          label,
          x: point.x,
          y: point.y,
          source: `${coordinateFile} row ${cLine}`,
        });
        continue;
      }
      if (studyCoordinates) {
        problems.push({
          kind: 'missing-coordinate',
          where: levelWhere,
          message: `study ${studyId} ${LEVELS[level]} is labelled but has no coordinate row`,
        });
        continue;
      }
      // No coordinates for the whole study: the middle Sagittal T2/STIR instance, uncropped.
      if (fallback === undefined) fallback = await fallbackImage(studyId, where);
      if (!fallback) continue;
      samples.push({
        rowId: rowIdOf(studyId, level),
        studyId,
        seriesId: path.basename(path.dirname(fallback.file)),
        instanceNumber: fallback.header.instanceNumber,
        imagePath: fallback.file,
        level,
        label,
        x: null,
        y: null,
        source: where,
      });
    }
  }
  // Coordinate rows of studies that train.csv does not list have no label to train on.
  for (const [studyId, levels] of byStudy) {
    if (seenStudies.has(studyId)) continue;
    for (const [level, { line }] of levels) {
      problems.push({
        kind: 'missing-label',
        where: `${coordinateFile} row ${line}`,
        message: `study ${studyId} is not in train.csv, so its ${LEVELS[level]} coordinate has no label`,
      });
    }
  }
  const studies = [...new Set(samples.map((s) => s.studyId))];
  return { folder: root, samples, problems, studies, labelled };
}
