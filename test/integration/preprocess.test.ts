import { augmentBatch, drawAugmentations, prepareBaseImage } from '../../lib/data/preprocess';
import fs from 'node:fs';
import path from 'node:path';
import { SeededRandom } from '../../lib/data/random';
import { maxAbsDiff, runPython, seededValues, tempDir } from '../helpers';

const IDENTITY = { mean: [0, 0, 0] as const, std: [1, 1, 1] as const };

/** A rows x cols image whose value is 3 * x + 1000 * y: asymmetric in both directions. */
function ramp(rows: number, cols: number): Float32Array {
  const out = new Float32Array(rows * cols);
  for (let y = 0; y < rows; y++) for (let x = 0; x < cols; x++) out[y * cols + x] = 3 * x + 1000 * y;
  return out;
}

describe('native preprocessing', () => {
  test('min-max scaling maps the (cropped) range to [0, 1] and resizing keeps orientation', async () => {
    const base = await prepareBaseImage(ramp(40, 60), 40, 60, { size: 16 });
    expect(base).toHaveLength(256);
    expect(Math.min(...base)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...base)).toBeLessThanOrEqual(1);
    expect(base[0]).toBeLessThan(0.05);
    expect(base[255]).toBeGreaterThan(0.95);
    // Rows dominate the ramp: down the first column rises much more than along the first row.
    expect(base[15 * 16] - base[0]).toBeGreaterThan(base[15] - base[0]);
  });

  test('a crop sees only its box, padded with the minimum where it leaves the image', async () => {
    const image = ramp(40, 60);
    const inside = await prepareBaseImage(image, 40, 60, {
      size: 10,
      crop: { x0: 20, y0: 10, width: 10, height: 10 },
    });
    // Same values as cropping by hand then min-max scaling (the resize is the identity at equal size).
    const hand = new Float32Array(100);
    for (let y = 0; y < 10; y++)
      for (let x = 0; x < 10; x++) hand[y * 10 + x] = image[(y + 10) * 60 + x + 20];
    const lo = Math.min(...hand);
    const hi = Math.max(...hand);
    expect(
      maxAbsDiff(
        inside,
        hand.map((v) => (v - lo) / (hi - lo)),
      ),
    ).toBeLessThan(1e-5);
    const outside = await prepareBaseImage(image, 40, 60, {
      size: 8,
      crop: { x0: -8, y0: -8, width: 16, height: 16 },
    });
    expect(outside[0]).toBe(0); // padding takes the minimum, which scales to 0
  });

  test('percentile scaling clips outliers', async () => {
    const image = new Float32Array(100 * 100).map((_, i) => i % 100);
    image[0] = 1e6;
    const minmax = await prepareBaseImage(image, 100, 100, { size: 100 });
    const clipped = await prepareBaseImage(image, 100, 100, {
      size: 100,
      scaling: 'percentile',
      percentiles: [1, 99],
    });
    expect(minmax[50]).toBeLessThan(0.01);
    expect(clipped[50]).toBeGreaterThan(0.45);
  });

  test('flip mirrors, 90 degree rotations permute, normalization applies per channel', async () => {
    const size = 8;
    const base = new Float32Array(size * size).map((_, i) => (i % size) / size + Math.floor(i / size) / 100);
    const [plain, flipped, rotated] = await Promise.all([
      augmentBatch([base], size, [{ flip: false, angleDegrees: 0 }], IDENTITY),
      augmentBatch([base], size, [{ flip: true, angleDegrees: 0 }], IDENTITY),
      augmentBatch([base], size, [{ flip: false, angleDegrees: 90 }], IDENTITY),
    ]);
    expect(plain).toHaveLength(3 * size * size);
    expect(maxAbsDiff(plain.subarray(0, 64), base)).toBeLessThan(1e-6);
    for (let y = 0; y < size; y++) {
      for (let x = 0; x < size; x++) {
        expect(flipped[y * size + x]).toBeCloseTo(base[y * size + (size - 1 - x)], 5);
      }
    }
    // A quarter turn maps rows to columns: the set of values is preserved exactly.
    const sorted = (a: Float32Array) => Array.from(a.subarray(0, 64)).sort((p, q) => p - q);
    expect(maxAbsDiff(sorted(rotated), sorted(base))).toBeLessThan(1e-5);
    expect(maxAbsDiff(rotated.subarray(0, 64), base)).toBeGreaterThan(0.1);
    const normalized = await augmentBatch([base], size, [{ flip: false, angleDegrees: 0 }], {
      mean: [0.5, 0.4, 0.3],
      std: [0.5, 0.25, 0.1],
    });
    expect(normalized[64 + 3]).toBeCloseTo((base[3] - 0.4) / 0.25, 5);
    expect(normalized[128 + 3]).toBeCloseTo((base[3] - 0.3) / 0.1, 5);
  });

  test('flip and rotation match torch affine_grid + grid_sample (bilinear, zero padding)', async () => {
    const size = 24;
    const bases = [0, 1, 2, 3].map((i) => seededValues(size * size, 40 + i).map((v) => Math.abs(v) % 1));
    const choices = [
      { flip: true, angleDegrees: 0 },
      { flip: false, angleDegrees: 9.5 },
      { flip: true, angleDegrees: -7.25 },
      { flip: false, angleDegrees: 33 },
    ];
    const ours = await augmentBatch(bases, size, choices, IDENTITY);
    const dir = tempDir('augment');
    const input = path.join(dir, 'bases.f32');
    fs.writeFileSync(input, Buffer.from(Float32Array.from(bases.flatMap((b) => Array.from(b))).buffer));
    const script = `
import math, sys, numpy, torch
import torch.nn.functional as F
x = torch.from_numpy(numpy.fromfile(sys.argv[1], dtype=numpy.float32)).view(4, 1, ${size}, ${size})
theta = torch.zeros(4, 2, 3)
for i, (flip, angle) in enumerate(${JSON.stringify(choices.map((c) => [c.flip ? -1 : 1, c.angleDegrees]))}):
    a = angle * math.pi / 180
    theta[i] = torch.tensor([[math.cos(a) * flip, -math.sin(a), 0], [math.sin(a) * flip, math.cos(a), 0]])
grid = F.affine_grid(theta, list(x.shape), align_corners=False)
y = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
sys.stdout.write(",".join("%.8g" % v for v in y.flatten().tolist()))
`;
    const reference = Float32Array.from(runPython(['-c', script, input]).split(',').map(Number));
    for (let i = 0; i < 4; i++) {
      const plane = ours.subarray(i * 3 * size * size, (i * 3 + 1) * size * size);
      expect(maxAbsDiff(plane, reference.subarray(i * size * size, (i + 1) * size * size))).toBeLessThan(
        1e-5,
      );
    }
    // 16-bit bases (the sample cache's) give what their float values give.
    const quantized = bases.map((b) => Uint16Array.from(b, (v) => Math.round(v * 65535)));
    const fromQuantized = await augmentBatch(quantized, size, choices, IDENTITY);
    const dequantized = quantized.map((q) => Float32Array.from(q, (v) => v / 65535));
    expect(maxAbsDiff(fromQuantized, await augmentBatch(dequantized, size, choices, IDENTITY))).toBe(0);
    await expect(
      augmentBatch([bases[0]], size, [{ flip: false, angleDegrees: Number.NaN }], IDENTITY),
    ).rejects.toThrow(/anglesDegrees must be finite/);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('augmentation draws are reproducible from a seed, with the asked flip rate and rotation range', () => {
    const options = { flipProbability: 0.5, rotationDegrees: 15, ...IDENTITY };
    const a = drawAugmentations(4000, options, new SeededRandom(42));
    const b = drawAugmentations(4000, options, new SeededRandom(42));
    const c = drawAugmentations(4000, options, new SeededRandom(43));
    expect(a).toEqual(b);
    expect(a).not.toEqual(c);
    const flipRate = a.filter((d) => d.flip).length / a.length;
    expect(flipRate).toBeGreaterThan(0.46);
    expect(flipRate).toBeLessThan(0.54);
    const angles = a.map((d) => d.angleDegrees);
    expect(Math.max(...angles)).toBeLessThanOrEqual(15);
    expect(Math.min(...angles)).toBeGreaterThanOrEqual(-15);
    expect(Math.max(...angles)).toBeGreaterThan(14);
    expect(Math.min(...angles)).toBeLessThan(-14);
    const evaluation = drawAugmentations(
      100,
      { ...options, flipProbability: 0, rotationDegrees: 0 },
      new SeededRandom(1),
    );
    expect(evaluation.every((d) => !d.flip && d.angleDegrees === 0)).toBe(true);
  });
});
