import fs from 'node:fs';
import path from 'node:path';
import { parse } from 'csv-parse/sync';
import { parseDicom, type DataSet } from 'dicom-parser';
import {
  CANAL_NARROWING,
  defaultSyntheticFolder,
  ensureSyntheticDataset,
  generateSyntheticDataset,
  readSyntheticSummary,
  type SyntheticOptions,
  type SyntheticSummary,
} from '../../lib/data/synthetic';
import { LEVELS, SEVERITIES } from '../../lib/model/levels';
import { runPython, tempDir } from '../helpers';

// The competition's column names, spelled out here rather than imported, so that the test checks the
// generator's output against the format itself.
const CONDITIONS = [
  'spinal_canal_stenosis',
  'left_neural_foraminal_narrowing',
  'right_neural_foraminal_narrowing',
  'left_subarticular_stenosis',
  'right_subarticular_stenosis',
];
const SLUGS = ['l1_l2', 'l2_l3', 'l3_l4', 'l4_l5', 'l5_s1'];
const TRAIN_HEADER = ['study_id', ...CONDITIONS.flatMap((c) => SLUGS.map((s) => `${c}_${s}`))];
const COORDINATE_HEADER = ['study_id', 'series_id', 'instance_number', 'condition', 'level', 'x', 'y'];
const DESCRIPTION_HEADER = ['study_id', 'series_id', 'series_description'];
const RSNA_SEVERITIES = ['Normal/Mild', 'Moderate', 'Severe'];
const TINY = { studies: 12, seed: 5, imageSize: 128 };

/** A CSV as rows of cells, header included. */
function readCsv(file: string): string[][] {
  return parse(fs.readFileSync(file, 'utf8'), { relax_column_count: false }) as string[][];
}

function records(file: string): Record<string, string>[] {
  const [header, ...rows] = readCsv(file);
  return rows.map((row) => Object.fromEntries(header.map((name, i) => [name, row[i]])));
}

/** Every file under `folder`, relative, sorted. */
function listFiles(folder: string): string[] {
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) walk(full);
      else out.push(path.relative(folder, full));
    }
  };
  walk(folder);
  return out.sort();
}

function readImage(file: string): { data: DataSet; pixels: Uint16Array; rows: number; columns: number } {
  const bytes = fs.readFileSync(file);
  const data = parseDicom(bytes);
  const rows = data.uint16('x00280010')!;
  const columns = data.uint16('x00280011')!;
  const element = data.elements.x7fe00010;
  const pixels = new Uint16Array(rows * columns);
  for (let i = 0; i < pixels.length; i++) pixels[i] = bytes.readUInt16LE(element.dataOffset + 2 * i);
  return { data, pixels, rows, columns };
}

/** Index 0..4 of a coordinate row's level. */
function levelOf(row: Record<string, string>): number {
  return (LEVELS as readonly string[]).indexOf(row.level);
}

/** A study's spinal canal label at a level: Normal/Mild, Moderate, Severe or '' (missing). */
function spinalLabel(labels: Record<string, string>, level: number): string {
  return labels[`spinal_canal_stenosis_${SLUGS[level]}`];
}

function mean(values: number[]): number {
  return values.reduce((a, b) => a + b, 0) / values.length;
}

function correlation(a: number[], b: number[]): number {
  const ma = mean(a);
  const mb = mean(b);
  let num = 0;
  let da = 0;
  let db = 0;
  for (let i = 0; i < a.length; i++) {
    num += (a[i] - ma) * (b[i] - mb);
    da += (a[i] - ma) ** 2;
    db += (b[i] - mb) ** 2;
  }
  return num / Math.sqrt(da * db);
}

/**
 * Width in pixels of the bright run through (x, y) along the image row, bright meaning above half of `csf`;
 * 0 when (x, y) itself is not bright (a closed canal).
 */
function brightRun(image: ReturnType<typeof readImage>, x: number, y: number, csf: number): number {
  const row = Math.round(y) * image.columns;
  const at = (i: number) => (i >= 0 && i < image.columns ? image.pixels[row + i] : 0);
  let best = 0;
  // The labelled point may sit a pixel off the narrow remainder of a canal: try its neighbours too.
  for (const start of [Math.round(x) - 1, Math.round(x), Math.round(x) + 1]) {
    if (at(start) < csf / 2) continue;
    let left = start;
    let right = start;
    while (at(left - 1) >= csf / 2) left--;
    while (at(right + 1) >= csf / 2) right++;
    best = Math.max(best, right - left + 1);
  }
  return best;
}

function median3x3(image: ReturnType<typeof readImage>, x: number, y: number): number {
  const values: number[] = [];
  for (let dy = -1; dy <= 1; dy++)
    for (let dx = -1; dx <= 1; dx++)
      values.push(image.pixels[(Math.round(y) + dy) * image.columns + Math.round(x) + dx]);
  return values.sort((a, b) => a - b)[4];
}

describe('synthetic RSNA-layout dataset', () => {
  let tiny: string;
  let tinySummary: SyntheticSummary;
  let twin: string;
  let other: string;
  let medium: string;

  beforeAll(async () => {
    tiny = path.join(tempDir('synthetic'), 'tiny');
    tinySummary = await generateSyntheticDataset(tiny, TINY);
    twin = path.join(tempDir('synthetic'), 'twin');
    await generateSyntheticDataset(twin, TINY);
    other = path.join(tempDir('synthetic'), 'other');
    await generateSyntheticDataset(other, { ...TINY, studies: 3, seed: 6 });
    medium = path.join(tempDir('synthetic'), 'medium');
    await generateSyntheticDataset(medium, { studies: 64, seed: 1, imageSize: 128 });
  });

  afterAll(() => {
    for (const folder of [tiny, twin, other, medium])
      if (folder) fs.rmSync(path.dirname(folder), { recursive: true, force: true });
  });

  test('narrowing ratios are ordered, disjoint ranges within (0, 1]', () => {
    const [normal, moderate, severe] = SEVERITIES.map((s) => CANAL_NARROWING[s]);
    for (const [low, high] of [normal, moderate, severe])
      expect(0 < low && low < high && high <= 1).toBe(true);
    expect(severe[1]).toBeLessThan(moderate[0]);
    expect(moderate[1]).toBeLessThan(normal[0]);
  });

  test('the three CSVs have the exact RSNA headers and consistent rows', () => {
    const train = readCsv(path.join(tiny, 'train.csv'));
    expect(train[0]).toEqual(TRAIN_HEADER);
    expect(train).toHaveLength(TINY.studies + 1);
    for (const row of train.slice(1)) {
      expect(row[0]).toMatch(/^\d+$/);
      for (const cell of row.slice(1)) expect(['', ...RSNA_SEVERITIES]).toContain(cell);
    }
    expect(readCsv(path.join(tiny, 'train_label_coordinates.csv'))[0]).toEqual(COORDINATE_HEADER);
    const descriptions = readCsv(path.join(tiny, 'train_series_descriptions.csv'));
    expect(descriptions[0]).toEqual(DESCRIPTION_HEADER);
    expect(descriptions).toHaveLength(3 * TINY.studies + 1);
    for (const study of train.slice(1).map((row) => row[0])) {
      const kinds = descriptions.filter((row) => row[0] === study).map((row) => row[2]);
      expect(kinds.sort()).toEqual(['Axial T2', 'Sagittal T1', 'Sagittal T2/STIR']);
    }

    // The summary matches what is on disk and in train.csv.
    const files = listFiles(tiny).filter((file) => file !== 'synthetic-dataset.json');
    expect(tinySummary.files).toBe(files.length);
    expect(tinySummary.bytes).toBe(
      files.reduce((sum, file) => sum + fs.statSync(path.join(tiny, file)).size, 0),
    );
    expect(tinySummary.studies).toBe(TINY.studies);
    LEVELS.forEach((level, l) => {
      const column = train.slice(1).map((row) => row[1 + l]);
      expect(tinySummary.labelCounts[level]).toEqual({
        normal_mild: column.filter((c) => c === 'Normal/Mild').length,
        moderate: column.filter((c) => c === 'Moderate').length,
        severe: column.filter((c) => c === 'Severe').length,
        missing: column.filter((c) => c === '').length,
      });
    });
    expect(readSyntheticSummary(tiny)).toEqual({ ...tinySummary, seconds: undefined, folder: tiny });
  });

  test('every coordinate row points at an existing Sagittal T2/STIR instance of a labelled level', () => {
    const labels = new Map(records(path.join(tiny, 'train.csv')).map((row) => [row.study_id, row]));
    const series = new Map(
      records(path.join(tiny, 'train_series_descriptions.csv')).map((r) => [
        r.series_id,
        r.series_description,
      ]),
    );
    const coordinates = records(path.join(tiny, 'train_label_coordinates.csv'));
    expect(coordinates.length).toBeGreaterThan(3 * TINY.studies);
    for (const row of coordinates) {
      const file = path.join(tiny, 'train_images', row.study_id, row.series_id, `${row.instance_number}.dcm`);
      expect(fs.existsSync(file)).toBe(true);
      expect(series.get(row.series_id)).toBe('Sagittal T2/STIR');
      expect(row.condition).toBe('Spinal Canal Stenosis');
      expect(LEVELS).toContain(row.level);
      expect(RSNA_SEVERITIES).toContain(spinalLabel(labels.get(row.study_id)!, levelOf(row)));
      for (const value of [Number(row.x), Number(row.y)])
        expect(value > 0 && value < TINY.imageSize).toBe(true);
    }
    // Within a study the levels run from head to feet.
    for (const study of labels.keys()) {
      const ys = coordinates.filter((row) => row.study_id === study).map((row) => Number(row.y));
      expect([...ys].sort((a, b) => a - b)).toEqual(ys);
    }
  });

  test('files are DICOM Part 10 MR images with consistent tags and no label anywhere', () => {
    const descriptions = new Map(
      records(path.join(tiny, 'train_series_descriptions.csv')).map((r) => [
        r.series_id,
        r.series_description,
      ]),
    );
    const files = listFiles(path.join(tiny, 'train_images'));
    expect(files).toHaveLength(11 * TINY.studies);
    const sagittalX = new Map<string, Set<number>>();
    for (const relative of files) {
      const [, seriesId, name] = relative.split(path.sep);
      const bytes = fs.readFileSync(path.join(tiny, 'train_images', relative));
      expect(bytes.subarray(0, 128).every((b) => b === 0)).toBe(true);
      expect(bytes.toString('latin1', 128, 132)).toBe('DICM');
      // Labels must not leak through any tag.
      expect(bytes.toString('latin1')).not.toMatch(/normal|mild|moderate|severe/i);
      const { data, rows, columns } = readImage(path.join(tiny, 'train_images', relative));
      expect(data.string('x00020010')).toBe('1.2.840.10008.1.2.1');
      expect(data.string('x00080060')).toBe('MR');
      expect(data.string('x00280004')).toBe('MONOCHROME2');
      expect(data.uint16('x00280100')).toBe(16);
      expect([12, 16]).toContain(data.uint16('x00280101'));
      expect(data.uint16('x00280103')).toBe(0);
      expect(data.elements.x7fe00010.length).toBe(rows * columns * 2);
      expect(data.intString('x00200013')).toBe(Number(name.replace('.dcm', '')));
      expect(data.string('x0008103e')).toBe(descriptions.get(seriesId));
      expect(data.floatString('x00180050')).toBeGreaterThan(0);
      for (const tag of ['x0020000d', 'x0020000e', 'x00080018'])
        expect(data.string(tag)).toMatch(/^2\.25\.\d+/);
      const orientation = [0, 1, 2, 3, 4, 5].map((i) => Math.round(data.floatString('x00200037', i)!));
      const spacing = data.floatString('x00280030', 0)!;
      if (descriptions.get(seriesId) === 'Sagittal T2/STIR') {
        expect(rows).toBe(TINY.imageSize);
        expect(columns).toBe(TINY.imageSize);
        // 0.6 .. 0.9 mm at the default 256 pixels, the same field of view at other sizes.
        expect(spacing * (TINY.imageSize / 256)).toBeGreaterThanOrEqual(0.6);
        expect(spacing * (TINY.imageSize / 256)).toBeLessThanOrEqual(0.9);
      }
      if (descriptions.get(seriesId)!.startsWith('Sagittal')) {
        expect(orientation).toEqual([0, 1, 0, 0, 0, -1]);
        const xs = sagittalX.get(seriesId) ?? new Set<number>();
        xs.add(data.floatString('x00200032', 0)!);
        sagittalX.set(seriesId, xs);
      } else {
        expect(orientation).toEqual([1, 0, 0, 0, 1, 0]);
      }
    }
    // Sagittal slices sit at different x positions: 5 per T2 series, 3 per T1 series.
    expect([...sagittalX.values()].map((xs) => xs.size).sort()).toEqual(
      [...Array(TINY.studies).fill(3), ...Array(TINY.studies).fill(5)].sort(),
    );
  });

  test('the same seed gives byte-identical files, another seed different ones', () => {
    const files = listFiles(tiny);
    expect(listFiles(twin)).toEqual(files);
    const sample = [
      'train.csv',
      'train_label_coordinates.csv',
      'train_series_descriptions.csv',
      'synthetic-dataset.json',
      ...files.filter((file) => file.endsWith('.dcm')).filter((_, i) => i % 7 === 0),
    ];
    for (const file of sample) {
      expect(fs.readFileSync(path.join(twin, file)).equals(fs.readFileSync(path.join(tiny, file)))).toBe(
        true,
      );
    }
    for (const csv of ['train.csv', 'train_label_coordinates.csv', 'train_series_descriptions.csv']) {
      expect(fs.readFileSync(path.join(other, csv)).equals(fs.readFileSync(path.join(tiny, csv)))).toBe(
        false,
      );
    }
    const firstOther = readImage(
      path.join(
        other,
        listFiles(other).find((f) => f.endsWith('.dcm'))!,
      ),
    );
    const firstTiny = readImage(
      path.join(
        tiny,
        files.find((f) => f.endsWith('.dcm'))!,
      ),
    );
    expect(Buffer.from(firstOther.pixels.buffer).equals(Buffer.from(firstTiny.pixels.buffer))).toBe(false);
  });

  test('the files do not depend on the number of render threads', async () => {
    const inThread = path.join(path.dirname(other), 'in-thread');
    const saved = process.env.STENOSIS_SYNTHETIC_THREADS;
    process.env.STENOSIS_SYNTHETIC_THREADS = '0';
    try {
      await generateSyntheticDataset(inThread, { ...TINY, studies: 3, seed: 6 });
    } finally {
      if (saved === undefined) delete process.env.STENOSIS_SYNTHETIC_THREADS;
      else process.env.STENOSIS_SYNTHETIC_THREADS = saved;
    }
    const files = listFiles(other);
    expect(listFiles(inThread)).toEqual(files);
    for (const file of files) {
      expect(fs.readFileSync(path.join(inThread, file)).equals(fs.readFileSync(path.join(other, file)))).toBe(
        true,
      );
    }
  });

  test('severity shows in the canal width at the labelled point, not in global intensity', () => {
    const labels = new Map(records(path.join(medium, 'train.csv')).map((row) => [row.study_id, row]));
    const coordinates = records(path.join(medium, 'train_label_coordinates.csv'));
    const ratios: number[][] = [[], [], []];
    const imageMeans: number[] = [];
    const burdens: number[] = [];
    for (const study of labels.keys()) {
      const rows = coordinates.filter((row) => row.study_id === study);
      if (rows.length < 2) continue;
      const first = rows[0];
      const image = readImage(
        path.join(medium, 'train_images', study, first.series_id, `${first.instance_number}.dcm`),
      );
      imageMeans.push(mean(Array.from(image.pixels)));
      burdens.push(
        LEVELS.reduce(
          (sum, _, level) =>
            sum + Math.max(0, RSNA_SEVERITIES.indexOf(spinalLabel(labels.get(study)!, level))),
          0,
        ),
      );
      for (const [i, row] of rows.entries()) {
        // Reference: the canal halfway to the next (or previous) labelled level, in the middle of a body.
        const neighbour = rows[i + 1] ?? rows[i - 1];
        if (Math.abs(levelOf(neighbour) - levelOf(row)) !== 1) continue;
        const [x, y] = [Number(row.x), Number(row.y)];
        const [mx, my] = [(x + Number(neighbour.x)) / 2, (y + Number(neighbour.y)) / 2];
        const csf = median3x3(image, mx, my);
        const normalWidth = brightRun(image, mx, my, csf);
        if (normalWidth < 3) continue;
        const severity = RSNA_SEVERITIES.indexOf(spinalLabel(labels.get(study)!, levelOf(row)));
        ratios[severity].push(brightRun(image, x, y, csf) / normalWidth);
      }
    }
    const [normal, moderate, severe] = ratios.map(mean);
    expect(ratios[1].length).toBeGreaterThanOrEqual(5);
    expect(ratios[2].length).toBeGreaterThanOrEqual(5);
    expect(normal).toBeGreaterThan(0.7);
    expect(moderate).toBeLessThan(normal - 0.15);
    expect(severe).toBeLessThan(moderate - 0.1);
    expect(severe).toBeLessThan(0.35);
    // Global intensity does not follow the study's total grade (a weak check: |r| stays small).
    expect(imageMeans.length).toBeGreaterThan(55);
    expect(Math.abs(correlation(imageMeans, burdens))).toBeLessThan(0.3);
  });

  test('scripts/check_synthetic.py reads it with pydicom and writes PNGs', () => {
    const out = path.join(path.dirname(tiny), 'png');
    const output = runPython(['scripts/check_synthetic.py', tiny, '--out', out, '--sample', '30']);
    expect(output).toMatch(/\bOK\b/);
    const pngs = fs.readdirSync(out).filter((name) => name.endsWith('.png'));
    expect(pngs.some((name) => name.startsWith('normal_'))).toBe(true);
    for (const name of pngs)
      expect(fs.readFileSync(path.join(out, name)).subarray(1, 4).toString()).toBe('PNG');
  });

  test('ensureSyntheticDataset generates once into the cache folder, then reuses it', async () => {
    const cache = tempDir('synthetic-cache');
    const saved = process.env.STENOSIS_CACHE_DIR;
    process.env.STENOSIS_CACHE_DIR = cache;
    try {
      expect(defaultSyntheticFolder()).toBe(path.join(cache, 'synthetic-300-0-v1'));
      const options = { studies: 2, seed: 3, imageSize: 64 };
      expect(defaultSyntheticFolder(options)).toBe(path.join(cache, 'synthetic-2-3-64px-v1'));
      const lines: string[] = [];
      const folder = await ensureSyntheticDataset(options, (line) => lines.push(line));
      expect(folder).toBe(defaultSyntheticFolder(options));
      expect(lines.length).toBeGreaterThan(0);
      expect(readSyntheticSummary(folder)?.studies).toBe(2);
      const marker = fs.statSync(path.join(folder, 'synthetic-dataset.json')).mtimeMs;
      const again: string[] = [];
      expect(await ensureSyntheticDataset(options, (line) => again.push(line))).toBe(folder);
      expect(again).toEqual([]);
      expect(fs.statSync(path.join(folder, 'synthetic-dataset.json')).mtimeMs).toBe(marker);
      // No temporary siblings are left behind.
      expect(fs.readdirSync(cache)).toEqual(['synthetic-2-3-64px-v1']);
    } finally {
      if (saved === undefined) delete process.env.STENOSIS_CACHE_DIR;
      else process.env.STENOSIS_CACHE_DIR = saved;
      fs.rmSync(cache, { recursive: true, force: true });
    }
  });

  test('bad options and non-empty folders are refused with StenosisErrors', async () => {
    const folder = tempDir('synthetic-bad');
    try {
      await expect(generateSyntheticDataset(path.join(folder, 'a'), { studies: 0 })).rejects.toMatchObject({
        code: 'ERR_INVALID_ARG',
      });
      await expect(
        generateSyntheticDataset(path.join(folder, 'a'), { images: 3 } as unknown as SyntheticOptions),
      ).rejects.toMatchObject({
        code: 'ERR_INVALID_ARG',
        message: expect.stringMatching(/Unknown option 'images'/),
      });
      fs.writeFileSync(path.join(folder, 'keep.txt'), 'mine');
      await expect(generateSyntheticDataset(folder, { studies: 1 })).rejects.toMatchObject({
        code: 'ERR_SYNTHETIC_FOLDER',
      });
      expect(fs.readdirSync(folder)).toEqual(['keep.txt']);
    } finally {
      fs.rmSync(folder, { recursive: true, force: true });
    }
  });
});
