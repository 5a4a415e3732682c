// Reading the RSNA layout: every row that cannot become a sample is reported with its file and row, and a study
// without coordinates falls back to the middle instance of its first Sagittal T2/STIR series that has images.
import fs from 'node:fs';
import path from 'node:path';
import { parse } from 'csv-parse/sync';
import { orderInstances, readDicomHeader } from '../../lib/data/dicom';
import { describeRsnaDataset, readRsnaDataset } from '../../lib/data/rsna';
import { levelIndex } from '../../lib/model/levels';
import { generateSyntheticDataset } from '../../lib/data/synthetic';
import { LEVEL_SLUGS, rowIdOf, type DataProblem } from '../../lib/data/samples';
import { tempDir } from '../helpers';

type Row = Record<string, string>;

const readRows = (file: string) => parse(fs.readFileSync(file, 'utf8'), { columns: true }) as Row[];

function writeRows(file: string, rows: Row[]): void {
  const header = Object.keys(rows[0]);
  const lines = [header.join(','), ...rows.map((row) => header.map((key) => row[key]).join(','))];
  fs.writeFileSync(file, lines.join('\n') + '\n');
}

const spinal = (slug: string) => `spinal_canal_stenosis_${slug}`;

describe('RSNA layout reader', () => {
  const data = path.join(tempDir('rsna'), 'data');
  let labels: Row[];
  let coordinates: Row[];
  let descriptions: Row[];

  beforeAll(async () => {
    await generateSyntheticDataset(data, { studies: 12, seed: 3, imageSize: 64 });
    labels = readRows(path.join(data, 'train.csv'));
    coordinates = readRows(path.join(data, 'train_label_coordinates.csv'));
    descriptions = readRows(path.join(data, 'train_series_descriptions.csv'));
  });

  afterAll(() => fs.rmSync(path.dirname(data), { recursive: true, force: true }));

  test('the generated dataset reads whole: only its labelled but unannotated levels are reported', async () => {
    const dataset = await readRsnaDataset(data);
    const kinds = new Set(dataset.problems.map((p) => p.kind));
    expect([...kinds].filter((k) => k !== 'missing-label' && k !== 'missing-coordinate')).toEqual([]);
    const labelled = labels.flatMap((row) =>
      LEVEL_SLUGS.flatMap((slug, level) => (row[spinal(slug)] ? [rowIdOf(row.study_id, level)] : [])),
    );
    const reported = dataset.problems.filter((p) => p.kind === 'missing-coordinate').length;
    expect(dataset.samples.length).toBe(labelled.length - reported);
    expect(dataset.samples.every((s) => fs.existsSync(s.imagePath) && s.x !== null && s.y !== null)).toBe(
      true,
    );
  });

  test('each bad row is named with its file, row and what was expected; the rest still reads', async () => {
    const bad = tempDir('rsna-bad');
    try {
      fs.cpSync(data, bad, { recursive: true });
      const train = labels.map((row) => ({ ...row }));
      const coords = coordinates.map((row) => ({ ...row }));
      const series = descriptions.map((row) => ({ ...row }));
      // Studies with all five spinal levels labelled and annotated, so that each change below is the only problem.
      const complete = train
        .map((row) => row.study_id)
        .filter(
          (id) =>
            LEVEL_SLUGS.every((slug) => train.find((r) => r.study_id === id)![spinal(slug)]) &&
            coords.filter((c) => c.study_id === id).length === 5,
        );
      expect(complete.length).toBeGreaterThanOrEqual(6);
      const [a, b, c, d, e, f] = complete;
      const trainRow = (id: string) => train.findIndex((row) => row.study_id === id) + 2;
      const t2Of = (id: string) =>
        series.find((s) => s.study_id === id && /sagittal t2/i.test(s.series_description))!.series_id;

      train.find((row) => row.study_id === a)![spinal('l1_l2')] = '';
      train.find((row) => row.study_id === a)![spinal('l2_l3')] = 'Very Severe';
      // b: an unknown level and a second row for a level it already has.
      const bRows = coords.filter((row) => row.study_id === b);
      coords.push({ ...bRows[0], level: 'L6/S2' }, { ...bRows[1] });
      // c: one annotated level loses its coordinate; another points at an instance that does not exist.
      const cRows = coords.filter((row) => row.study_id === c);
      coords.splice(coords.indexOf(cRows[0]), 1);
      cRows[1].instance_number = '9999';
      const slugOf = (level: string) => level.toLowerCase().replace('/', '_');
      // d: no coordinates at all, and a listed Sagittal T2 series without a folder before the real one.
      // e: no coordinates, and no Sagittal T2 series listed. f: no coordinates and its T2 folder emptied.
      const dT2 = t2Of(d);
      const kept = coords.filter((row) => row.study_id !== d && row.study_id !== e && row.study_id !== f);
      series.splice(
        series.findIndex((s) => s.study_id === d),
        0,
        {
          study_id: d,
          series_id: '424242',
          series_description: 'Sagittal T2/STIR',
        },
      );
      const ghostRow = series.findIndex((s) => s.series_id === '424242') + 2;
      const withoutE = series.filter((s) => !(s.study_id === e && /sagittal t2/i.test(s.series_description)));
      const fFolder = path.join(bad, 'train_images', f, t2Of(f));
      for (const name of fs.readdirSync(fFolder)) fs.rmSync(path.join(fFolder, name));
      const fT2Row =
        withoutE.findIndex((s) => s.study_id === f && /sagittal t2/i.test(s.series_description)) + 2;
      // The train.csv rows after the last study: a repeated study and an id that is not digits.
      train.push({ ...train[train.length - 1] }, { ...train[0], study_id: '12a' });
      writeRows(path.join(bad, 'train.csv'), train);
      writeRows(path.join(bad, 'train_label_coordinates.csv'), kept);
      writeRows(path.join(bad, 'train_series_descriptions.csv'), withoutE);
      const unknownLevelAt = kept.findIndex((row) => row.level === 'L6/S2') + 2;
      const duplicateAt = unknownLevelAt + 1;
      const missingImageAt = kept.indexOf(cRows[1]) + 2;

      const dataset = await readRsnaDataset(bad);
      const find = (kind: DataProblem['kind'], where: string) =>
        dataset.problems.find((p) => p.kind === kind && p.where === where);
      expect(find('missing-label', `train.csv row ${trainRow(a)} (${spinal('l1_l2')})`)?.message).toContain(
        a,
      );
      expect(find('unknown-severity', `train.csv row ${trainRow(a)} (${spinal('l2_l3')})`)?.message).toMatch(
        /Very Severe/,
      );
      expect(find('unknown-level', `train_label_coordinates.csv row ${unknownLevelAt}`)?.message).toMatch(
        /L6\/S2/,
      );
      expect(find('duplicate-row', `train_label_coordinates.csv row ${duplicateAt}`)?.message).toContain(b);
      expect(
        find('missing-coordinate', `train.csv row ${trainRow(c)} (${spinal(slugOf(cRows[0].level))})`),
      ).toBeDefined();
      expect(find('missing-image', `train_label_coordinates.csv row ${missingImageAt}`)?.message).toContain(
        path.join(bad, 'train_images', c, cRows[1].series_id, '9999.dcm'),
      );
      expect(find('missing-image', `train_series_descriptions.csv row ${ghostRow}`)?.message).toMatch(
        /424242 does not exist/,
      );
      expect(find('missing-image', `train.csv row ${trainRow(e)}`)?.message).toMatch(
        /lists no Sagittal T2\/STIR series/,
      );
      expect(find('missing-image', `train_series_descriptions.csv row ${fT2Row}`)?.message).toMatch(
        /has no \.dcm files/,
      );
      expect(find('missing-image', `train.csv row ${trainRow(f)}`)?.message).toMatch(
        /none of its Sagittal T2/,
      );
      expect(find('duplicate-row', `train.csv row ${train.length}`)).toBeDefined();
      expect(find('bad-path', `train.csv row ${train.length + 1}`)?.message).toContain('12a');

      // d falls back past the missing series to the middle instance of its real one, uncropped, all five levels.
      const dSamples = dataset.samples.filter((s) => s.studyId === d);
      expect(dSamples.map((s) => s.level)).toEqual([0, 1, 2, 3, 4]);
      expect(new Set(dSamples.map((s) => s.imagePath)).size).toBe(1);
      expect(path.dirname(dSamples[0].imagePath)).toBe(path.join(bad, 'train_images', d, dT2));
      expect(dSamples.every((s) => s.x === null && s.y === null)).toBe(true);
      expect(dataset.samples.some((s) => s.studyId === e || s.studyId === f)).toBe(false);
      expect(dataset.studies).not.toContain('12a');
    } finally {
      fs.rmSync(bad, { recursive: true, force: true });
    }
  });

  test('unreadable files of a fallback series are reported and left out of its ordering', async () => {
    const bad = tempDir('rsna-unreadable');
    try {
      fs.cpSync(data, bad, { recursive: true });
      const series = descriptions.map((row) => ({ ...row }));
      const t2Of = (id: string) =>
        series.find((s) => s.study_id === id && /sagittal t2/i.test(s.series_description))!.series_id;
      const [g, h] = labels
        .map((row) => row.study_id)
        .filter((id) => LEVEL_SLUGS.every((slug) => labels.find((r) => r.study_id === id)![spinal(slug)]));
      // g and h lose their coordinates, so each falls back to its first Sagittal T2/STIR series.
      const kept = coordinates.filter((row) => row.study_id !== g && row.study_id !== h);
      // g: one file of its series is not DICOM, another is truncated.
      const gFolder = path.join(bad, 'train_images', g, t2Of(g));
      const gFiles = fs.readdirSync(gFolder).map((name) => path.join(gFolder, name));
      const gBroken = [gFiles[0], gFiles[gFiles.length - 1]];
      fs.writeFileSync(gBroken[0], 'this is not a DICOM file\n');
      fs.writeFileSync(gBroken[1], fs.readFileSync(gBroken[1]).subarray(0, 100));
      const gReadable = gFiles.filter((file) => !gBroken.includes(file));
      const ordered = orderInstances(
        await Promise.all(gReadable.map(async (file) => ({ file, header: await readDicomHeader(file) }))),
      );
      const gMiddle = ordered[Math.floor((ordered.length - 1) / 2)].file;
      // h: every file of its first series unreadable; a second Sagittal T2/STIR series (a copy) is listed after it.
      const hFolder = path.join(bad, 'train_images', h, t2Of(h));
      const hCopy = path.join(bad, 'train_images', h, '777777');
      fs.cpSync(hFolder, hCopy, { recursive: true });
      for (const name of fs.readdirSync(hFolder)) fs.writeFileSync(path.join(hFolder, name), Buffer.alloc(0));
      const hRow = series.findIndex((s) => s.series_id === t2Of(h)) + 2;
      series.splice(hRow - 1, 0, {
        study_id: h,
        series_id: '777777',
        series_description: 'Sagittal T2/STIR',
      });
      writeRows(path.join(bad, 'train_label_coordinates.csv'), kept);
      writeRows(path.join(bad, 'train_series_descriptions.csv'), series);

      const dataset = await readRsnaDataset(bad);
      for (const file of gBroken) {
        const problem = dataset.problems.find((p) => p.kind === 'unreadable-image' && p.where === file);
        expect(problem?.message).toMatch(new RegExp(`study ${g}`));
      }
      const gSamples = dataset.samples.filter((s) => s.studyId === g);
      expect(gSamples.map((s) => s.level)).toEqual([0, 1, 2, 3, 4]);
      expect(gSamples.every((s) => s.imagePath === gMiddle)).toBe(true);

      for (const name of fs.readdirSync(hFolder)) {
        const where = path.join(hFolder, name);
        expect(
          dataset.problems.find((p) => p.kind === 'unreadable-image' && p.where === where),
        ).toBeDefined();
      }
      expect(
        dataset.problems.find(
          (p) => p.kind === 'missing-image' && p.where === `train_series_descriptions.csv row ${hRow}`,
        )?.message,
      ).toMatch(/has no readable \.dcm files/);
      const hSamples = dataset.samples.filter((s) => s.studyId === h);
      expect(hSamples.map((s) => s.level)).toEqual([0, 1, 2, 3, 4]);
      expect(hSamples.every((s) => path.dirname(s.imagePath) === hCopy)).toBe(true);
    } finally {
      fs.rmSync(bad, { recursive: true, force: true });
    }
  });

  test('empty x and y are no coordinate; other x/y that are not two numbers >= 0 are bad rows', async () => {
    const bad = tempDir('rsna-xy');
    try {
      fs.cpSync(data, bad, { recursive: true });
      const coords = coordinates.map((row) => ({ ...row }));
      const spinalRows = coords.filter((row) => /spinal/i.test(row.condition));
      const cells: [string, string][] = [
        ['', ''],
        ['abc', '10'],
        ['-3', '10'],
        ['1e999', '10'],
        ['12', ''],
        ['0x10', '10'],
        ['Infinity', '5'],
      ];
      const changed = cells.map(([x, y], i) => {
        const row = spinalRows[i * 7];
        row.x = x;
        row.y = y;
        return { row, line: coords.indexOf(row) + 2, x, y };
      });
      writeRows(path.join(bad, 'train_label_coordinates.csv'), coords);
      const dataset = await readRsnaDataset(bad);
      const sampleOf = (row: Row) =>
        dataset.samples.find((s) => s.rowId === rowIdOf(row.study_id, levelIndex(row.level, 'test')));
      const [empty, ...wrong] = changed;
      expect(sampleOf(empty.row)).toMatchObject({ x: null, y: null });
      expect(dataset.problems.some((p) => p.where === `train_label_coordinates.csv row ${empty.line}`)).toBe(
        false,
      );
      for (const { row, line, x } of wrong) {
        const problem = dataset.problems.find((p) => p.where === `train_label_coordinates.csv row ${line}`);
        expect(problem?.kind).toBe('bad-row');
        expect(problem?.message).toContain(JSON.stringify(x));
        // The bad row still stands for its level: no missing-coordinate report, no fallback image.
        expect(sampleOf(row)).toBeUndefined();
      }
      expect(dataset.problems.filter((p) => p.kind === 'bad-row')).toHaveLength(wrong.length);
    } finally {
      fs.rmSync(bad, { recursive: true, force: true });
    }
  });

  test('coordinate rows of a study absent from train.csv are reported; the summary counts the rest', async () => {
    const bad = tempDir('rsna-summary');
    try {
      fs.cpSync(data, bad, { recursive: true });
      const coords = coordinates.map((row) => ({ ...row }));
      const series = descriptions.map((row) => ({ ...row }));
      // A study annotated in every level loses its coordinates and gets a listed series without a folder first:
      // a problem that drops nothing, since its real series is used next.
      const d = labels
        .map((row) => row.study_id)
        .find(
          (id) =>
            LEVEL_SLUGS.every((slug) => labels.find((r) => r.study_id === id)![spinal(slug)]) &&
            coords.filter((c) => c.study_id === id && /spinal/i.test(c.condition)).length === 5,
        )!;
      const kept = coords.filter((row) => row.study_id !== d);
      series.splice(
        series.findIndex((s) => s.study_id === d),
        0,
        { study_id: d, series_id: '424242', series_description: 'Sagittal T2/STIR' },
      );
      kept.push({ ...kept[0], study_id: '123456789', level: 'L3/L4' });
      writeRows(path.join(bad, 'train_label_coordinates.csv'), kept);
      writeRows(path.join(bad, 'train_series_descriptions.csv'), series);

      const dataset = await readRsnaDataset(bad);
      const orphan = dataset.problems.find(
        (p) => p.where === `train_label_coordinates.csv row ${kept.length + 1}`,
      );
      expect(orphan).toEqual({
        kind: 'missing-label',
        where: `train_label_coordinates.csv row ${kept.length + 1}`,
        message: 'study 123456789 is not in train.csv, so its L3/L4 coordinate has no label',
      });
      const labelled = labels.reduce(
        (n, row) => n + LEVEL_SLUGS.filter((slug) => row[spinal(slug)]).length,
        0,
      );
      expect(dataset.labelled).toBe(labelled);
      // Here only a labelled level without a coordinate row drops a sample.
      const dropped = dataset.problems.filter((p) => p.kind === 'missing-coordinate').length;
      expect(dataset.samples).toHaveLength(labelled - dropped);
      expect(dataset.samples.filter((s) => s.studyId === d)).toHaveLength(5);
      const line = describeRsnaDataset(dataset);
      expect(line).toContain(
        `: ${dataset.samples.length} samples from ${dataset.studies.length} studies, ` +
          `${dropped} of ${labelled} labelled level(s) left out; problems reported: `,
      );
      expect(line).toMatch(/\b1 missing-image\b/);
      expect(line).not.toMatch(/not used/);
    } finally {
      fs.rmSync(bad, { recursive: true, force: true });
    }
  });
});
