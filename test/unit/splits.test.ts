// Reading reference-layout CSVs: x and y are both empty (no coordinate) or two numbers >= 0; anything else is a
// bad row naming the file, the row and the value.
import fs from 'node:fs';
import path from 'node:path';
import { readReferenceCsv } from '../../lib/data/splits';
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
});
