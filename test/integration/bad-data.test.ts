// Bad input: every unreadable image or bad row is reported at once, naming the file or row; --skip-bad-samples
// leaves them out and says which.
import fs from 'node:fs';
import path from 'node:path';
import { parse } from 'csv-parse/sync';
import { main } from '../../lib/cli/train';
import { generateSyntheticDataset } from '../../lib/data/synthetic';
import { MODELS, RESNET18, runCaptured, tempDir } from '../helpers';

type Row = Record<string, string>;

function run(argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return runCaptured(main, ['node', 'train.js', ...argv]);
}

describe('bad data', () => {
  const dir = tempDir('bad-data');
  const data = path.join(dir, 'data');
  const common = ['--models', RESNET18, '--models-dir', MODELS, '--num_epochs', '1', '--image_size', '32'];
  let broken: string[];

  beforeAll(async () => {
    await generateSyntheticDataset(data, { studies: 30, seed: 4, imageSize: 128 });
    const coordinates = parse(fs.readFileSync(path.join(data, 'train_label_coordinates.csv'), 'utf8'), {
      columns: true,
    }) as Row[];
    const files = [
      ...new Set(
        coordinates.map((c) =>
          path.join(data, 'train_images', c.study_id, c.series_id, `${c.instance_number}.dcm`),
        ),
      ),
    ];
    broken = files.slice(0, 3);
    fs.writeFileSync(broken[0], fs.readFileSync(broken[0]).subarray(0, 700)); // truncated
    fs.writeFileSync(broken[1], 'this is not a DICOM file\n'); // not DICOM
    fs.writeFileSync(broken[2], Buffer.alloc(0)); // empty
  });

  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  test('all unreadable images are listed in one error that names each file', async () => {
    const { code, stderr } = await run(['--data', data, '--output', path.join(dir, 'out1'), ...common]);
    expect(code).toBe(1);
    expect(stderr).toMatch(/3 image\(s\) cannot be read \(--skip-bad-samples leaves them out\)/);
    for (const file of broken) expect(stderr).toContain(file);
  });

  test('--skip-bad-samples trains on the rest and records what it left out', async () => {
    const out = path.join(dir, 'out2');
    const { code, stdout, stderr } = await run([
      '--data',
      data,
      '--output',
      out,
      '--skip-bad-samples',
      ...common,
    ]);
    expect(stderr).toBe('');
    expect(code).toBe(0);
    expect(stdout).toMatch(/skipped 3 unreadable image\(s\)/);
    const report = JSON.parse(fs.readFileSync(path.join(out, 'results', 'data_problems.json'), 'utf8'));
    expect(report.counts['unreadable-image']).toBe(3);
    expect(report.problems.map((p: { where: string }) => p.where)).toEqual(expect.arrayContaining(broken));
  });

  test('bad rows of reference-layout CSVs are all reported with their row numbers', async () => {
    // The CSVs sit above the data folder, so that their relative image paths stay inside their folder.
    const csvDir = dir;
    const image = path.relative(csvDir, broken[0].replace(/\d+\.dcm$/, ''));
    const good = fs
      .readdirSync(path.join(csvDir, image))
      .find((f) => !broken.includes(path.join(csvDir, image, f)));
    const header = 'image_path,row_id,level,severity';
    const ok = `${path.join(image, good as string)}`;
    fs.writeFileSync(
      path.join(csvDir, 'train.csv'),
      [
        header,
        `${ok},1_a,L1/L2,normal_mild`,
        `${ok},1_b,L9/L9,moderate`,
        `${ok},1_c,L2/L3,terrible`,
        `../../etc/passwd,1_d,L3/L4,severe`,
        `${ok},1_a,L4/L5,severe`,
      ].join('\n'),
    );
    fs.writeFileSync(path.join(csvDir, 'val.csv'), `${header}\n${ok},2_a,L1/L2,normal_mild\n`);
    fs.writeFileSync(path.join(csvDir, 'test.csv'), `${header}\n${ok},3_a,L1/L2,normal_mild\n`);
    const { code, stderr } = await run(
      ['--train_csv', 'train.csv', '--val_csv', 'val.csv', '--test_csv', 'test.csv']
        .map((a) => (a.endsWith('.csv') ? path.join(csvDir, a) : a))
        .concat(['--output', path.join(dir, 'out3'), ...common]),
    );
    expect(code).toBe(1);
    expect(stderr).toMatch(/4 bad row\(s\)/);
    expect(stderr).toMatch(/train\.csv row 3: Unknown level "L9\/L9"/);
    expect(stderr).toMatch(/train\.csv row 4: Unknown severity "terrible"/);
    expect(stderr).toMatch(/train\.csv row 5: image_path \.\.\/\.\.\/etc\/passwd leaves the CSV's folder/);
    expect(stderr).toMatch(/train\.csv row 6: row_id 1_a already appears at row 2/);
  });

  test('a header-only --train_csv is an error naming the file', async () => {
    const header = 'image_path,row_id,level,severity';
    const csvDir = path.join(dir, 'empty');
    fs.mkdirSync(csvDir, { recursive: true });
    for (const name of ['train.csv', 'val.csv', 'test.csv'])
      fs.writeFileSync(path.join(csvDir, name), `${header}\n`);
    const { code, stderr } = await run(
      ['--train_csv', 'train.csv', '--val_csv', 'val.csv', '--test_csv', 'test.csv']
        .map((a) => (a.endsWith('.csv') ? path.join(csvDir, a) : a))
        .concat(['--output', path.join(dir, 'out4'), ...common]),
    );
    expect(code).toBe(1);
    expect(stderr).toContain(`${path.join(csvDir, 'train.csv')} has no rows`);
  });
});
