// Samples that cannot be cropped as asked are reported before training and refused at crop time, never cropped
// silently wrong: x/y outside the image (an all-background crop) and a crop in mm on an image without PixelSpacing
// (which used to fall back to pixels).
import fs from 'node:fs';
import path from 'node:path';
import { readRsnaDataset } from '../../lib/data/rsna';
import { generateSyntheticDataset } from '../../lib/data/synthetic';
import { readDicom } from '../../lib/data/dicom';
import { SampleCache, type CropOptions } from '../../lib/data/loader';
import { validateSamples } from '../../lib/data/validate';
import type { Sample } from '../../lib/data/samples';
import { smallPipeline, tempDir } from '../helpers';

describe('crop checks', () => {
  const dir = tempDir('validate');
  const data = path.join(dir, 'data');
  let samples: Sample[];
  let spacingless: string;

  beforeAll(async () => {
    await generateSyntheticDataset(data, { studies: 4, seed: 5, imageSize: 64 });
    samples = (await readRsnaDataset(data)).samples.filter((s) => s.x !== null);
    // A copy of one image whose PixelSpacing (0028,0030) tag is renamed to (0028,0031), so it has none.
    const bytes = fs.readFileSync(samples[0].imagePath);
    const tag = bytes.indexOf(Buffer.from([0x28, 0x00, 0x30, 0x00, 0x44, 0x53]));
    expect(tag).toBeGreaterThan(0);
    bytes[tag + 2] = 0x31;
    spacingless = path.join(dir, 'no-spacing.dcm');
    fs.writeFileSync(spacingless, bytes);
    expect((await readDicom(spacingless)).pixelSpacing).toBeNull();
  });

  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  const px: CropOptions = { size: 20, unit: 'px' };
  const mm: CropOptions = { size: 20, unit: 'mm' };

  test('x/y outside the image is reported with the file, row, coordinate and image size', async () => {
    const outside = { ...samples[1], x: 1e9 };
    const list = [samples[0], outside, samples[2]];
    const checked = await validateSamples(list, undefined, px);
    expect(checked.valid).toEqual([samples[0], samples[2]]);
    expect(checked.problems).toHaveLength(1);
    const [problem] = checked.problems;
    expect(problem.kind).toBe('bad-coordinate');
    expect(problem.where).toMatch(/^train_label_coordinates\.csv row \d+$/);
    expect(problem.where).toBe(outside.source);
    expect(problem.message).toContain(`x=1000000000, y=${outside.y} lies outside ${outside.imagePath}`);
    expect(problem.message).toMatch(/\(64 columns x 64 rows\)/);
    // Without a crop the coordinate is not used, and the sample is fine.
    expect((await validateSamples(list)).problems).toEqual([]);
  });

  test('a crop in mm on an image without PixelSpacing is reported, not cropped in pixels', async () => {
    const sample = { ...samples[0], imagePath: spacingless };
    const checked = await validateSamples([sample, samples[1]], undefined, mm);
    expect(checked.valid).toEqual([samples[1]]);
    expect(checked.problems).toEqual([
      {
        kind: 'no-pixel-spacing',
        where: spacingless,
        message: expect.stringContaining('crop in mm needs PixelSpacing (0028,0030); use --crop_px'),
      },
    ]);
    expect((await validateSamples([sample], undefined, px)).problems).toEqual([]);
  });

  test('the sample cache refuses both instead of cropping wrong', async () => {
    const cache = new SampleCache({ ...smallPipeline(false), crop: mm });
    await expect(cache.image({ ...samples[0], imagePath: spacingless })).rejects.toThrow(
      /no PixelSpacing: crop in mm needs PixelSpacing \(0028,0030\); use --crop_px/,
    );
    await expect(cache.image({ ...samples[1], y: 1e9 })).rejects.toThrow(/lies outside/);
    expect((await cache.image(samples[0])).length).toBe(48 * 48);
    const pxCache = new SampleCache({ ...smallPipeline(false), crop: px });
    expect((await pxCache.image({ ...samples[0], imagePath: spacingless })).length).toBe(48 * 48);
  });
});
