import fs from 'node:fs';
import path from 'node:path';
import { PNG } from 'pngjs';
import { drawText, textWidth, truncateText } from '../../lib/report/font';
import { Raster } from '../../lib/report/raster';
import {
  PLOT_COLORS,
  plotConfusionMatrix,
  plotModelComparison,
  plotTrainingCurves,
  type CurveRecord,
} from '../../lib/report/plots';
import { tempDir } from '../helpers';

const CLASSES = ['normal_mild', 'moderate', 'severe'] as const;

function history(epochs: number): CurveRecord[] {
  return Array.from({ length: epochs }, (_, i) => ({
    epoch: i + 1,
    trainLoss: 1.0 - 0.06 * i,
    valLoss: 0.95 - 0.04 * i,
    trainAccuracy: 0.6 + 0.03 * i,
    valAccuracy: 0.62 + 0.025 * i,
    trainMacroF1: 0.35 + 0.05 * i,
    valMacroF1: 0.33 + 0.04 * i,
    valScore: 1.05 - 0.04 * i,
  }));
}

function read(file: string): PNG {
  return PNG.sync.read(fs.readFileSync(file));
}

function colours(png: PNG): Set<number> {
  const seen = new Set<number>();
  for (let i = 0; i < png.data.length; i += 4)
    seen.add((png.data[i] << 16) | (png.data[i + 1] << 8) | png.data[i + 2]);
  return seen;
}

function hasColour(png: PNG, [r, g, b]: readonly number[]): boolean {
  return colours(png).has((r << 16) | (g << 8) | b);
}

describe('plots', () => {
  let dir: string;
  beforeAll(() => {
    dir = tempDir('plots');
  });
  afterAll(() => {
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('training curves: size, several colours, train and validation curve colours', () => {
    const file = path.join(dir, 'curves.png');
    plotTrainingCurves(file, 'resnet18 training', history(8));
    const png = read(file);
    expect([png.width, png.height]).toEqual([1200, 400]);
    expect(colours(png).size).toBeGreaterThan(20);
    expect(hasColour(png, PLOT_COLORS.train)).toBe(true);
    expect(hasColour(png, PLOT_COLORS.validation)).toBe(true);
    expect(hasColour(png, PLOT_COLORS.score)).toBe(true);
    // Corners stay white background.
    expect(Array.from(png.data.subarray(0, 4))).toEqual([255, 255, 255, 255]);
    // Written atomically: nothing but the PNG is left in the folder.
    expect(fs.readdirSync(dir).filter((f) => f.startsWith('.'))).toEqual([]);
  });

  test('training curves: one epoch, null and NaN values, flat and missing series do not throw', () => {
    const one = path.join(dir, 'one.png');
    plotTrainingCurves(one, 'one epoch', history(1));
    expect(hasColour(read(one), PLOT_COLORS.validation)).toBe(true);

    const edge = history(6).map((h, i) => ({
      ...h,
      valLoss: i % 2 === 0 ? null : h.valLoss,
      trainLoss: i === 3 ? NaN : h.trainLoss,
      valAccuracy: 0.5,
      valMacroF1: i === 2 ? Infinity : 0,
      trainAccuracy: null,
      trainMacroF1: undefined,
      valScore: undefined,
    }));
    const file = path.join(dir, 'edge.png');
    plotTrainingCurves(file, 'x'.repeat(300), edge);
    const png = read(file);
    expect([png.width, png.height]).toEqual([1200, 400]);
    expect(hasColour(png, PLOT_COLORS.validation)).toBe(true);
    expect(hasColour(png, PLOT_COLORS.score)).toBe(false);

    plotTrainingCurves(path.join(dir, 'empty.png'), '', []);
    const allNull = history(3).map((h) => ({ ...h, valLoss: null, valAccuracy: NaN, valMacroF1: NaN }));
    plotTrainingCurves(path.join(dir, 'all-null.png'), 'no validation', allNull);
    expect(colours(read(path.join(dir, 'all-null.png'))).size).toBeGreaterThan(5);
  });

  test('confusion matrix: size, heat-map colours, empty rows and ragged input', () => {
    const file = path.join(dir, 'confusion.png');
    plotConfusionMatrix(
      file,
      'test confusion',
      [
        [180, 10, 3],
        [6, 12, 2],
        [1, 2, 5],
      ],
      CLASSES,
    );
    const png = read(file);
    expect([png.width, png.height]).toEqual([500, 450]);
    // Nine cells with distinct shares, plus text, frame and background.
    expect(colours(png).size).toBeGreaterThan(8);
    // The 93% cell is close to the darkest blue of the colour map.
    const darkBlue = [...colours(png)].some((c) => (c & 0xff) > 90 && c >> 16 < 40 && ((c >> 8) & 0xff) < 80);
    expect(darkBlue).toBe(true);

    const zeros = path.join(dir, 'zeros.png');
    plotConfusionMatrix(
      zeros,
      'empty row',
      [
        [5, 0, 0],
        [0, 0, 0],
        [NaN, 1, -2],
      ],
      CLASSES,
    );
    expect(read(zeros).width).toBe(500);
    plotConfusionMatrix(path.join(dir, 'all-zero.png'), 'nothing', [], CLASSES);
    plotConfusionMatrix(path.join(dir, 'no-classes.png'), 'no names', [[1, 2], [3]], []);
  });

  test('model comparison: width grows with models, bar colours, empty and awkward rows', () => {
    const rows = [
      { model: 'resnet18', accuracy: 0.842, macroF1: 0.613, score: 0.712 },
      { model: 'efficientnet_b0', accuracy: 0.861, macroF1: 0.658, score: 0.655 },
      {
        model: 'convnext_tiny_in22k_ft_in1k_384_with_a_very_long_name',
        accuracy: 0.855,
        macroF1: 0.641,
        score: 0.69,
      },
    ];
    const three = path.join(dir, 'three.png');
    plotModelComparison(three, rows);
    const png = read(three);
    // Three bar colours, text, grid and background.
    expect(colours(png).size).toBeGreaterThan(5);
    for (const colour of [PLOT_COLORS.macroF1, PLOT_COLORS.accuracy, PLOT_COLORS.score])
      expect(hasColour(png, colour)).toBe(true);

    const one = path.join(dir, 'one-model.png');
    plotModelComparison(one, rows.slice(0, 1));
    const six = path.join(dir, 'six.png');
    plotModelComparison(six, [...rows, ...rows]);
    expect(read(six).width).toBeGreaterThan(png.width);
    expect(png.width).toBeGreaterThanOrEqual(read(one).width);

    const empty = path.join(dir, 'none.png');
    plotModelComparison(empty, []);
    expect(colours(read(empty)).size).toBeGreaterThan(2);
    plotModelComparison(path.join(dir, 'odd.png'), [
      { model: '', accuracy: NaN, macroF1: 1, score: 0 },
      { model: 'x'.repeat(200), accuracy: 1, macroF1: 0, score: Infinity },
      { model: 'same', accuracy: 0.5, macroF1: 0.5, score: 0.5 },
    ]);
  });

  test('raster and font: text lands where expected, rotated text and truncation', () => {
    const r = new Raster(40, 30);
    expect(r.text(2, 2, 'Hi', [0, 0, 0], { scale: 2 })).toBe(textWidth('Hi', 2));
    // 'H' has ink in its top-left pixel; at scale 2 that is a 2x2 block.
    expect(r.pixel(2, 2)).toEqual([0, 0, 0]);
    expect(r.pixel(3, 3)).toEqual([0, 0, 0]);
    expect(r.pixel(0, 0)).toEqual([255, 255, 255]);
    const v = new Raster(20, 40);
    drawText(v, 0, 0, 'L', [255, 0, 0], { vertical: true });
    // An upright 'L' has a full left column; rotated counter-clockwise it becomes the bottom row.
    for (let x = 0; x < 7; x++) expect(v.pixel(x, 4)).toEqual([255, 0, 0]);
    expect(truncateText('efficientnet_b0', textWidth('efficient', 1), 1)).toBe('efficien\u2026');
    expect(textWidth(truncateText('a'.repeat(50), 100, 2), 2)).toBeLessThanOrEqual(100);
    r.line(0, 20, 39, 20, [10, 20, 30], 2);
    expect(r.pixel(20, 20)).toEqual([10, 20, 30]);
    expect(r.encodePng().subarray(1, 4).toString()).toBe('PNG');
  });
});
