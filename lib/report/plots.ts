import { writeFileAtomic } from '../data/atomic';
import { CAP_HEIGHT, textWidth, truncateText } from './font';
import { Raster, type Point, type Rgb } from './raster';
import type { EpochRecord } from '../train/fit';

/** The part of an epoch's record that the training curves draw. Missing or non-finite values are not drawn. */
export type CurveRecord = Pick<
  EpochRecord,
  'epoch' | 'trainLoss' | 'valLoss' | 'valAccuracy' | 'valMacroF1'
> & { [K in 'trainAccuracy' | 'trainMacroF1' | 'valScore']?: EpochRecord[K] | null };

/** The colours of the plotted series, exported so that tests and callers can find them in the images. */
export const PLOT_COLORS = {
  train: [31, 119, 180] as Rgb,
  validation: [255, 127, 14] as Rgb,
  score: [44, 160, 44] as Rgb,
  macroF1: [31, 119, 180] as Rgb,
  accuracy: [255, 127, 14] as Rgb,
} as const;

const INK: Rgb = [34, 34, 34];
const MUTED: Rgb = [102, 102, 102];
const AXIS: Rgb = [68, 68, 68];
const GRID: Rgb = [228, 228, 228];
const FRAME: Rgb = [190, 190, 190];
const WHITE: Rgb = [255, 255, 255];

/** Every label is drawn at twice the font's native size: 14-pixel capitals stay legible when a report is scaled. */
const SCALE = 2;
const TEXT_HEIGHT = CAP_HEIGHT * SCALE;
const LINE_HEIGHT = 22;

interface Box {
  left: number;
  top: number;
  width: number;
  height: number;
}

interface Scale {
  lo: number;
  hi: number;
  ticks: number[];
  decimals: number;
}

function finite(value: number | null | undefined): value is number {
  return typeof value === 'number' && Number.isFinite(value);
}

/** 1, 2 or 5 times a power of ten, the smallest such step not below raw. */
function niceStep(raw: number): number {
  if (!(raw > 0) || !Number.isFinite(raw)) return 1;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const normalized = raw / magnitude;
  // The tolerance keeps rounding noise (0.02 / 0.01 = 2.0000000000000004) from jumping to the next step.
  const tolerance = 1 + 1e-9;
  const factor =
    normalized <= tolerance ? 1 : normalized <= 2 * tolerance ? 2 : normalized <= 5 * tolerance ? 5 : 10;
  return factor * magnitude;
}

function decimalsFor(step: number): number {
  return Math.min(8, Math.max(0, -Math.floor(Math.log10(step) + 1e-9)));
}

/** A tick value as text: fixed decimals matching the step, exponent notation only for very large or small. */
function formatTick(value: number, decimals: number): string {
  const magnitude = Math.abs(value);
  if (magnitude !== 0 && (magnitude >= 1e6 || decimals > 5)) return value.toExponential(1);
  const text = value.toFixed(decimals);
  // Avoids "-0.00" for values that round to zero.
  return /^-0(\.0*)?$/.test(text) ? text.slice(1) : text;
}

/**
 * An axis range that covers the values with a little margin and ends on round ticks. All-equal values get a
 * non-zero range around them; non-negative data keeps the axis at or above zero, and fractions (accuracy, F1)
 * are kept inside [0, 1] when the data is.
 */
function niceScale(values: number[], options: { fraction?: boolean; includeZero?: boolean; ticks?: number }) {
  const data = values.filter(finite);
  let lo = data.length > 0 ? Math.min(...data) : 0;
  let hi = data.length > 0 ? Math.max(...data) : 1;
  const dataLo = lo;
  const dataHi = hi;
  if (options.includeZero) {
    lo = Math.min(lo, 0);
    hi = Math.max(hi, 0);
  }
  if (hi - lo <= 1e-12 * Math.max(1, Math.abs(hi))) {
    const spread = Math.abs(hi) > 0 ? Math.abs(hi) * 0.1 : 1;
    lo -= spread;
    hi += spread;
  } else {
    const pad = (hi - lo) * 0.06;
    if (!options.includeZero || lo < 0) lo -= pad;
    hi += pad;
  }
  // Losses, counts and fractions are never negative: the margin must not invent a negative axis for them.
  if (dataLo >= 0) lo = Math.max(lo, 0);
  if (options.fraction && dataHi <= 1) hi = Math.min(hi, 1);
  const step = niceStep((hi - lo) / (options.ticks ?? 5));
  lo = Math.floor(lo / step + 1e-9) * step;
  hi = Math.ceil(hi / step - 1e-9) * step;
  const decimals = decimalsFor(step);
  const ticks: number[] = [];
  for (let k = Math.round(lo / step); k <= Math.round(hi / step); k++) ticks.push(k * step);
  return { lo, hi, ticks, decimals } satisfies Scale;
}

/**
 * Integer ticks for epochs, on a range padded a little beyond the first and last epoch so their markers stay
 * clear of the frame; a single epoch gets a range of one around it, so its points sit in the middle.
 */
function epochScale(epochs: number[]): Scale {
  if (epochs.length === 0) return { lo: 0, hi: 1, ticks: [0, 1], decimals: 0 };
  const first = Math.min(...epochs);
  const last = Math.max(...epochs);
  const pad = last === first ? 0.5 : (last - first) * 0.04;
  const step = Math.max(1, niceStep((last - first) / 8));
  const ticks: number[] = [];
  for (let t = Math.ceil(first / step - 1e-9) * step; t <= last + 1e-9; t += step) ticks.push(t);
  return { lo: first - pad, hi: last + pad, ticks, decimals: 0 };
}

function project(value: number, scale: Scale, start: number, length: number): number {
  return start + ((value - scale.lo) / (scale.hi - scale.lo)) * length;
}

function drawCentered(r: Raster, cx: number, y: number, text: string, color: Rgb, bold = false): void {
  r.text(Math.round(cx - textWidth(text, SCALE) / 2), y, text, color, { scale: SCALE, bold });
}

/** The figure title, centred on cx if it fits there inside the image, else on the image. */
function drawTitle(r: Raster, title: string, cx = r.width / 2): void {
  const text = truncateText(title, r.width - 24, SCALE);
  const half = textWidth(text, SCALE) / 2;
  const fits = cx - half >= 12 && cx + half <= r.width - 12;
  drawCentered(r, fits ? cx : r.width / 2, 14, text, INK, true);
}

/**
 * Splits a label into at most maxLines lines no wider than maxWidth, breaking after '_', '-', '/', '.' or
 * spaces (an underscore or space at a break is dropped), and ends the last line with an ellipsis if the label
 * still does not fit.
 */
function wrapLabel(label: string, maxWidth: number, maxLines = 2): string[] {
  if (textWidth(label, SCALE) <= maxWidth) return [label];
  const tokens = label.match(/[^_\-/. ]+[_\-/. ]*|[_\-/. ]+/g) ?? [label];
  const lines: string[] = [];
  let current = '';
  for (const token of tokens) {
    const candidate = current + token;
    if (current === '' || textWidth(candidate.replace(/[_ ]+$/, ''), SCALE) <= maxWidth) current = candidate;
    else {
      lines.push(current);
      current = token;
    }
  }
  lines.push(current);
  const kept = lines.slice(0, maxLines);
  if (lines.length > maxLines) kept[maxLines - 1] = lines.slice(maxLines - 1).join('');
  return kept.map((line, i) => {
    const trimmed = line.replace(/[_ ]+$/, '');
    const text = truncateText(trimmed, maxWidth, SCALE);
    // A label cut into more lines than allowed must show that something is missing.
    return i === kept.length - 1 && lines.length > maxLines && text === trimmed
      ? truncateText(trimmed + '\u2026', maxWidth, SCALE)
      : text;
  });
}

/** Gridlines, axis lines, ticks and their numbers for a plot area. */
function drawAxes(r: Raster, box: Box, x: Scale | null, y: Scale): void {
  const bottom = box.top + box.height;
  const right = box.left + box.width;
  for (const t of y.ticks) {
    const py = Math.round(project(t, y, bottom, -box.height));
    if (py < box.top - 0.5 || py > bottom + 0.5) continue;
    r.hline(box.left, right, py, GRID);
    r.hline(box.left - 6, box.left - 1, py, AXIS);
    const label = formatTick(t, y.decimals);
    r.text(box.left - 10 - textWidth(label, SCALE), py - TEXT_HEIGHT / 2, label, INK, { scale: SCALE });
  }
  if (x) {
    for (const t of x.ticks) {
      const px = Math.round(project(t, x, box.left, box.width));
      r.vline(px, box.top, bottom, GRID);
      r.vline(px, bottom + 1, bottom + 6, AXIS);
      drawCentered(r, px, bottom + 12, formatTick(t, x.decimals), INK);
    }
  }
  r.strokeRect(box.left, box.top, box.width + 1, box.height + 1, FRAME);
  r.vline(box.left, box.top, bottom, AXIS, 2);
  r.hline(box.left, right, bottom, AXIS, 2);
}

function tickLabelWidth(scale: Scale): number {
  return Math.max(...scale.ticks.map((t) => textWidth(formatTick(t, scale.decimals), SCALE)));
}

interface Series {
  label: string;
  color: Rgb;
  points: { x: number; y: number }[];
}

interface LegendEntry {
  label: string;
  color: Rgb;
}

/**
 * A one-line legend centred on cx, outside the plot areas so that it can never hide data: a short line with a
 * marker for curves, a filled box for bars.
 */
function drawKey(r: Raster, cx: number, top: number, entries: LegendEntry[], swatch: 'line' | 'box'): void {
  const itemWidth = (e: LegendEntry) => 28 + 8 + textWidth(e.label, SCALE);
  const gap = 28;
  const total = entries.reduce((sum, e) => sum + itemWidth(e), 0) + gap * (entries.length - 1);
  let x = Math.round(cx - total / 2);
  for (const entry of entries) {
    const mid = top + TEXT_HEIGHT / 2;
    if (swatch === 'line') {
      r.line(x + 1, mid, x + 27, mid, entry.color, 3);
      r.fillCircle(x + 14, mid, 4, entry.color);
    } else r.fillRect(x + 5, top, 18, TEXT_HEIGHT, entry.color);
    r.text(x + 36, top, entry.label, INK, { scale: SCALE });
    x += itemWidth(entry) + gap;
  }
}

/** One panel of the training curves: title, axes, one line with markers per series, broken at missing values. */
function drawCurvePanel(
  r: Raster,
  area: Box,
  title: string,
  x: Scale,
  series: Series[],
  fraction: boolean,
): void {
  const y = niceScale(
    series.flatMap((s) => s.points.map((p) => p.y)),
    { fraction },
  );
  const left = area.left + tickLabelWidth(y) + 18;
  const box: Box = { left, top: area.top, width: area.left + area.width - left, height: area.height };
  drawCentered(r, box.left + box.width / 2, area.top - 28, title, INK, true);
  drawAxes(r, box, x, y);
  drawCentered(r, box.left + box.width / 2, box.top + box.height + 36, 'Epoch', MUTED);
  const bottom = box.top + box.height;
  for (const s of series) {
    const pixels = s.points.map((p) => ({
      x: project(p.x, x, box.left, box.width),
      y: project(p.y, y, bottom, -box.height),
    }));
    const runs: Point[][] = [];
    let run: Point[] = [];
    pixels.forEach((p, i) => {
      if (finite(s.points[i].y)) run.push(p);
      else if (run.length > 0) {
        runs.push(run);
        run = [];
      }
    });
    if (run.length > 0) runs.push(run);
    const markers = s.points.length <= 40;
    for (const part of runs) {
      r.polyline(part, s.color, 2.5);
      // Markers show where the measurements are; a lone point between gaps would otherwise be invisible.
      if (markers || part.length === 1) for (const p of part) r.fillCircle(p.x, p.y, 4, s.color);
    }
  }
  if (!series.some((s) => s.points.some((p) => finite(p.y))))
    drawCentered(r, box.left + box.width / 2, box.top + box.height / 2 - TEXT_HEIGHT / 2, 'no data', MUTED);
}

/** Draws and writes one image atomically, so a reader never sees half a PNG. */
function save(file: string, raster: Raster): void {
  writeFileAtomic(file, raster.encodePng());
}

/**
 * Three panels side by side (loss, accuracy, macro F1) with train and validation curves, axes with ticks and
 * numbers, legend, title. The validation competition score, when recorded, joins the loss panel (it is a
 * weighted log loss on the same scale).
 */
export function plotTrainingCurves(file: string, title: string, history: CurveRecord[]): void {
  const width = 1200;
  const height = 400;
  const r = new Raster(width, height);
  drawTitle(r, title);
  const records = history.filter((h) => finite(h.epoch)).sort((a, b) => a.epoch - b.epoch);
  const x = epochScale(records.map((h) => h.epoch));
  const series = (
    label: string,
    color: Rgb,
    pick: (h: CurveRecord) => number | null | undefined,
  ): Series => ({
    label,
    color,
    points: records.map((h) => {
      const value = pick(h);
      return { x: h.epoch, y: finite(value) ? value : NaN };
    }),
  });
  const present = (s: Series) => s.points.some((p) => finite(p.y));
  const panels: { title: string; fraction: boolean; series: Series[] }[] = [
    {
      title: 'Loss',
      fraction: false,
      series: [
        series('train', PLOT_COLORS.train, (h) => h.trainLoss),
        series('val', PLOT_COLORS.validation, (h) => h.valLoss),
        series('val score', PLOT_COLORS.score, (h) => h.valScore),
      ],
    },
    {
      title: 'Accuracy',
      fraction: true,
      series: [
        series('train', PLOT_COLORS.train, (h) => h.trainAccuracy),
        series('val', PLOT_COLORS.validation, (h) => h.valAccuracy),
      ],
    },
    {
      title: 'Macro F1',
      fraction: true,
      series: [
        series('train', PLOT_COLORS.train, (h) => h.trainMacroF1),
        series('val', PLOT_COLORS.validation, (h) => h.valMacroF1),
      ],
    },
  ];
  // One legend for all panels: a series is listed if any panel has a value for it.
  const key = new Map<string, Rgb>();
  for (const panel of panels) for (const s of panel.series.filter(present)) key.set(s.label, s.color);
  drawKey(
    r,
    width / 2,
    42,
    [...key].map(([label, color]) => ({ label, color })),
    'line',
  );
  const panelWidth = width / panels.length;
  panels.forEach((panel, i) => {
    // Series that were never recorded (train accuracy, the score) are left out.
    const shown = panel.series.filter(present);
    const area: Box = {
      left: i * panelWidth + 12,
      top: 100,
      width: panelWidth - 36,
      height: height - 100 - 58,
    };
    drawCurvePanel(r, area, panel.title, x, shown, panel.fraction);
  });
  save(file, r);
}

/** matplotlib's "Blues" colour map at five stops, interpolated linearly. */
function blues(t: number): Rgb {
  const stops: Rgb[] = [
    [247, 251, 255],
    [198, 219, 239],
    [107, 174, 214],
    [33, 113, 181],
    [8, 48, 107],
  ];
  const v = Math.min(1, Math.max(0, finite(t) ? t : 0)) * (stops.length - 1);
  const i = Math.min(stops.length - 2, Math.floor(v));
  const f = v - i;
  return [0, 1, 2].map((k) =>
    Math.round(stops[i][k] + (stops[i + 1][k] - stops[i][k]) * f),
  ) as unknown as Rgb;
}

/**
 * A 3x3 confusion matrix heat map with counts and row-normalized percentages in each cell, axis labels
 * (true/predicted, class names) and a title.
 */
export function plotConfusionMatrix(
  file: string,
  title: string,
  confusion: number[][],
  classes: readonly string[],
): void {
  const width = 500;
  const height = 450;
  const r = new Raster(width, height);
  const n = Math.max(classes.length, confusion.length, 1);
  const names = Array.from({ length: n }, (_, i) => classes[i] ?? String(i));
  const count = (t: number, p: number): number => {
    const value = confusion[t]?.[p];
    return finite(value) && value > 0 ? value : 0;
  };

  const rowLabelWidth = Math.min(140, Math.max(...names.map((name) => textWidth(name, SCALE))));
  const top = 56;
  const gridLeftMin = 16 + TEXT_HEIGHT + 14 + rowLabelWidth + 10;
  const cell = Math.floor(Math.min((width - gridLeftMin - 20) / n, (height - top - 84) / n));
  const grid = cell * n;
  const left = gridLeftMin + Math.floor((width - 20 - gridLeftMin - grid) / 2);
  // Over the matrix rather than the whole image, as far as the image allows.
  drawTitle(r, title, left + grid / 2);

  for (let t = 0; t < n; t++) {
    const total = names.reduce((sum, _, p) => sum + count(t, p), 0);
    for (let p = 0; p < n; p++) {
      const value = count(t, p);
      // An empty row has no share to show: it stays at the lightest colour and prints a dash.
      const share = total > 0 ? value / total : 0;
      const x = left + p * cell;
      const y = top + t * cell;
      r.fillRect(x, y, cell, cell, blues(share));
      const ink = share > 0.5 ? WHITE : INK;
      const countText = truncateText(String(value), cell - 8, SCALE);
      const shareText = truncateText(total > 0 ? `${(100 * share).toFixed(1)}%` : '-', cell - 8, SCALE);
      const block = TEXT_HEIGHT * 2 + 8;
      drawCentered(r, x + cell / 2, y + (cell - block) / 2, countText, ink, true);
      drawCentered(r, x + cell / 2, y + (cell - block) / 2 + TEXT_HEIGHT + 8, shareText, ink);
    }
  }
  // White gaps between cells read better than dark grid lines on a heat map.
  for (let k = 1; k < n; k++) {
    r.vline(left + k * cell - 1, top, top + grid - 1, WHITE, 2);
    r.hline(left, left + grid - 1, top + k * cell - 1, WHITE, 2);
  }
  r.strokeRect(left - 1, top - 1, grid + 2, grid + 2, AXIS);

  names.forEach((name, t) => {
    const lines = wrapLabel(name, rowLabelWidth);
    const y0 = top + t * cell + cell / 2 - (lines.length * LINE_HEIGHT - (LINE_HEIGHT - TEXT_HEIGHT)) / 2;
    lines.forEach((line, k) =>
      r.text(left - 10 - textWidth(line, SCALE), y0 + k * LINE_HEIGHT, line, INK, { scale: SCALE }),
    );
  });
  let below = 0;
  names.forEach((name, p) => {
    const lines = wrapLabel(name, cell - 4);
    below = Math.max(below, lines.length);
    lines.forEach((line, k) =>
      drawCentered(r, left + p * cell + cell / 2, top + grid + 10 + k * LINE_HEIGHT, line, INK),
    );
  });
  drawCentered(r, left + grid / 2, top + grid + 16 + below * LINE_HEIGHT, 'Predicted', INK, true);
  const trueWidth = textWidth('True', SCALE);
  r.text(left - rowLabelWidth - 24 - TEXT_HEIGHT, top + grid / 2 - trueWidth / 2, 'True', INK, {
    scale: SCALE,
    bold: true,
    vertical: true,
  });
  save(file, r);
}

/** Vertical bars with the value printed above each; a non-finite value prints "n/a" and draws no bar. */
function drawBar(
  r: Raster,
  x: number,
  barWidth: number,
  value: number,
  y: Scale,
  box: Box,
  color: Rgb,
  bold: boolean,
): void {
  const bottom = box.top + box.height;
  const base = project(Math.max(y.lo, Math.min(y.hi, 0)), y, bottom, -box.height);
  if (!finite(value)) {
    drawCentered(r, x + barWidth / 2, base - TEXT_HEIGHT - 6, 'n/a', MUTED);
    return;
  }
  const tip = project(Math.max(y.lo, Math.min(y.hi, value)), y, bottom, -box.height);
  r.fillRect(x, Math.min(base, tip), barWidth, Math.max(1, Math.abs(base - tip)), color);
  const label = value.toFixed(3);
  const labelY = value >= 0 ? Math.min(base, tip) - TEXT_HEIGHT - 6 : Math.max(base, tip) + 6;
  drawCentered(r, x + barWidth / 2, labelY, label, INK, bold);
}

/**
 * Grouped bars comparing models on test macro F1, accuracy and (separately scaled, lower is better) competition
 * score; values printed on the bars.
 */
export function plotModelComparison(
  file: string,
  rows: { model: string; accuracy: number; macroF1: number; score: number }[],
): void {
  const models = Math.max(1, rows.length);
  // Both panels give each model the same width, so a model's groups line up and its name wraps the same way.
  const group = 170;
  const height = 460;
  const plotTop = 124;
  const plotHeight = height - plotTop - 74;

  const fractionScale = niceScale(rows.flatMap((row) => [row.accuracy, row.macroF1]).concat([0, 1]), {
    includeZero: true,
    fraction: true,
    ticks: 5,
  });
  // Room above the tallest bar for its printed value.
  const fractions: Scale = {
    ...fractionScale,
    hi: fractionScale.hi + (fractionScale.hi - fractionScale.lo) * 0.1,
  };
  const scoreScale = niceScale(
    rows.map((row) => row.score),
    { includeZero: true, ticks: 5 },
  );
  const scores: Scale = { ...scoreScale, hi: scoreScale.hi + (scoreScale.hi - scoreScale.lo) * 0.1 };

  const leftMargin = (s: Scale) => tickLabelWidth(s) + 22;
  const leftPlot = Math.max(300, models * group);
  const rightPlot = Math.max(260, models * group);
  const leftPanel = leftMargin(fractions) + leftPlot + 24;
  const rightPanel = leftMargin(scores) + rightPlot + 24;
  const width = leftPanel + rightPanel + 16;
  const r = new Raster(width, height);
  drawTitle(r, 'Model comparison on the test set');

  const panels = [
    {
      box: { left: 16 + leftMargin(fractions), top: plotTop, width: leftPlot, height: plotHeight },
      scale: fractions,
      title: 'Accuracy and macro F1',
      hint: '(higher is better)',
    },
    {
      box: { left: 16 + leftPanel + leftMargin(scores), top: plotTop, width: rightPlot, height: plotHeight },
      scale: scores,
      title: 'Competition score',
      hint: '(lower is better)',
    },
  ];
  for (const panel of panels) {
    const { box } = panel;
    drawCentered(r, box.left + box.width / 2, 48, panel.title, INK, true);
    drawCentered(r, box.left + box.width / 2, 70, panel.hint, MUTED);
    drawAxes(r, box, null, panel.scale);
  }
  drawKey(
    r,
    panels[0].box.left + panels[0].box.width / 2,
    94,
    [
      { label: 'macro F1', color: PLOT_COLORS.macroF1 },
      { label: 'accuracy', color: PLOT_COLORS.accuracy },
    ],
    'box',
  );
  if (rows.length === 0)
    for (const panel of panels)
      drawCentered(r, panel.box.left + panel.box.width / 2, plotTop + plotHeight / 2, 'no models', MUTED);

  // Each panel draws, for every model, a group of bars side by side with the model's name under the group.
  // The best value of each metric (over the models, finite values only) is printed in bold.
  type Metric = 'macroF1' | 'accuracy' | 'score';
  const bestOf = (metric: Metric, pick: (...values: number[]) => number) =>
    pick(...rows.map((row) => row[metric]).filter(finite));
  const groups: {
    panel: (typeof panels)[number];
    bars: { metric: Metric; color: Rgb; best: number }[];
    bar: number;
  }[] = [
    {
      panel: panels[0],
      bar: 60,
      bars: [
        { metric: 'macroF1', color: PLOT_COLORS.macroF1, best: bestOf('macroF1', Math.max) },
        { metric: 'accuracy', color: PLOT_COLORS.accuracy, best: bestOf('accuracy', Math.max) },
      ],
    },
    {
      panel: panels[1],
      bar: 64,
      bars: [{ metric: 'score', color: PLOT_COLORS.score, best: bestOf('score', Math.min) }],
    },
  ];
  const gap = 8;
  const several = rows.length > 1;
  for (const { panel, bars, bar } of groups) {
    rows.forEach((row, i) => {
      const groupLeft = panel.box.left + (panel.box.width - rows.length * group) / 2 + i * group;
      const x0 = groupLeft + (group - bars.length * bar - (bars.length - 1) * gap) / 2;
      bars.forEach(({ metric, color, best }, k) =>
        drawBar(
          r,
          x0 + k * (bar + gap),
          bar,
          row[metric],
          panel.scale,
          panel.box,
          color,
          several && row[metric] === best,
        ),
      );
      wrapLabel(row.model, group - 12).forEach((line, k) =>
        drawCentered(r, groupLeft + group / 2, plotTop + plotHeight + 14 + k * LINE_HEIGHT, line, INK),
      );
    });
  }
  save(file, r);
}
