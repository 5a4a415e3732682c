// Reading reference-layout CSVs: x and y are both empty (no coordinate) or two numbers >= 0; anything else is a
// bad row naming the file, the row and the value.
import fs from 'node:fs';
import path from 'node:path';
import { findSplitOverlaps, readReferenceCsv } from '../../lib/data/splits';
import type { DataProblem } from '../../lib/data/samples';
import { tempDir } from '../helpers';

describe('reference CSV reader', () => {
  const dir = tempDir('splits');
  const image = path.join(dir, 'a.dcm');

  beforeAll(() => fs.writeFileSync(image, 'not read here'));
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  test('x and y: both empty is no coordinate, a bad or half coordinate is a bad row', () => {
    const file = path.join(dir, 'train.csv');
    const rows = [
      ['1_a', '10', '20'],
      ['1_b', '', ''],
      ['1_c', 'abc', '20'],
      ['1_d', '-1', '20'],
      ['1_e', '10', ''],
      ['1_f', '1e999', '20'],
    ];
    fs.writeFileSync(
      file,
      [
        'image_path,row_id,level,severity,x,y',
        ...rows.map(([id, x, y]) => `a.dcm,${id},L1/L2,moderate,${x},${y}`),
      ].join('\n') + '\n',
    );
    const problems: DataProblem[] = [];
    const samples = readReferenceCsv(file, problems);
    expect(samples.map((s) => [s.rowId, s.x, s.y])).toEqual([
      ['1_a', 10, 20],
      ['1_b', null, null],
    ]);
    expect(problems.map((p) => [p.kind, p.where])).toEqual(
      [4, 5, 6, 7].map((line) => ['bad-row', `${file} row ${line}`]),
    );
    expect(problems[0].message).toContain('"abc"');
    expect(problems[1].message).toContain('"-1"');
    expect(problems[2].message).toMatch(/y is empty but x is "10"/);
    expect(problems[3].message).toContain('"1e999"');
    expect(() => readReferenceCsv(file)).toThrow(/4 bad row\(s\)/);
  });

  test('an empty or header-only CSV is an error naming the file', () => {
    for (const content of ['', 'image_path,row_id,level,severity\n']) {
      const file = path.join(dir, 'empty.csv');
      fs.writeFileSync(file, content);
      expect(() => readReferenceCsv(file, [])).toThrow(`${file} has no rows`);
    }
  });

  test('the same image_path or row_id in two splits is named with both files and rows', () => {
    const other = path.join(dir, 'b.dcm');
    fs.writeFileSync(other, 'not read here');
    const write = (name: string, lines: string[]) => {
      const file = path.join(dir, name);
      fs.writeFileSync(file, ['image_path,row_id,level,severity', ...lines].join('\n') + '\n');
      return file;
    };
    const train = write('t.csv', ['a.dcm,1_a,L1/L2,moderate', 'b.dcm,2_a,L1/L2,severe']);
    const val = write('v.csv', ['b.dcm,3_a,L1/L2,moderate']);
    const test = write('s.csv', ['a.dcm,1_a,L1/L2,moderate', 'a.dcm,4_a,L2/L3,moderate']);
    const splits = {
      train: readReferenceCsv(train),
      val: readReferenceCsv(val),
      test: readReferenceCsv(test),
    };
    expect(findSplitOverlaps(splits)).toEqual([
      `${train} row 3 and ${val} row 2 have the same image_path ${other}: the train and val splits overlap`,
      `${train} row 2 and ${test} row 2 have the same row_id 1_a and image_path ${image}: ` +
        'the train and test splits overlap',
      `${train} row 2 and ${test} row 3 have the same image_path ${image}: the train and test splits overlap`,
    ]);
    expect(findSplitOverlaps({ train: splits.train, val: [], test: [] })).toEqual([]);
  });
});
