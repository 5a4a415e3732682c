// The benchmark harness end to end in its tiny mode: `node bench/run.js --tiny` runs the addon, Python PyTorch,
// stenosis-tool, both data pipelines, TensorFlow.js (CPU and WebAssembly backends) and onnxruntime-node, and
// writes a CSV, a JSON report and a PNG chart that hold every row with a finite positive ratio. No figure is
// compared with a threshold: they come from a shared, noisy machine.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { parse } from 'csv-parse/sync';
import { PNG } from 'pngjs';
import { MODELS, PYTHON, ROOT, tempDir } from '../helpers';

const ROWS = [
  'train-throughput',
  'napi-overhead',
  'event-loop-delay',
  'memory-peak',
  'memory-growth',
  'flops-fraction',
  'flops-fraction-python',
  'pipeline-first-epoch',
  'pipeline-cached-epoch',
  'tfjs-cpu-head-train',
  'tfjs-wasm-head-train',
  'tfjs-cpu-event-loop',
  'tfjs-wasm-event-loop',
  'tfjs-cpu-conv-train',
  'tfjs-wasm-forward',
  'onnxruntime-forward',
  'onnxruntime-forward-optimized',
  'bf16-vs-python-fp32',
  'bf16-vs-python-bf16',
  'bf16-vs-fp32-addon',
  'cached-features',
];

interface ReportRow {
  id: string;
  ratio: number;
  status: string;
  ours: { value: number };
  reference: { value: number };
}

describe('node bench/run.js --tiny', () => {
  const dir = tempDir('bench');
  const out = path.join(dir, 'out');
  let stdout = '';

  beforeAll(() => {
    stdout = execFileSync(
      process.execPath,
      [path.join(ROOT, 'bench', 'run.js'), '--tiny', '--out', out, '--models-dir', MODELS],
      {
        cwd: ROOT,
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'pipe'],
        // The synthetic studies go to a cache of the test's own, not the user's.
        env: { ...process.env, STENOSIS_PYTHON: PYTHON, STENOSIS_CACHE_DIR: path.join(dir, 'cache') },
      },
    );
  });

  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  test('prints a table with every row and how many repeats its medians are over', () => {
    expect(stdout).toMatch(/median of 2 interleaved repeats/);
    for (const title of [
      'train step vs PyTorch',
      'N-API overhead',
      'event-loop p99',
      'cached epoch',
      'head train step vs tfjs CPU',
      'train step vs tfjs CPU',
      'evaluate vs tfjs WebAssembly forward',
      'backbone forward vs onnxruntime',
    ])
      expect(stdout).toContain(title);
  });

  test('the JSON report holds every row with finite positive figures and the raw repeats', () => {
    const report = JSON.parse(fs.readFileSync(path.join(out, 'bench-tiny.json'), 'utf8'));
    expect(report).toMatchObject({ format: 'lumbar-stenosis-bench', mode: 'tiny' });
    expect(report.settings.repeats).toBe(2);
    const rows = report.rows as ReportRow[];
    expect(rows.map((r) => r.id)).toEqual(ROWS);
    for (const row of rows) {
      for (const value of [row.ratio, row.ours.value, row.reference.value]) {
        expect(Number.isFinite(value)).toBe(true);
        expect(value).toBeGreaterThan(0);
      }
      expect(['pass', 'miss', 'info']).toContain(row.status);
    }
    expect(report.raw.training[0].repeats).toHaveLength(2);
    expect(report.raw.pipeline.repeats).toHaveLength(2);
    expect(report.raw.training[0].flops.flops).toBeGreaterThan(0);
    const js = report.raw.jsBackends;
    expect(js.head.repeats).toHaveLength(2);
    expect(js.conv.train).toHaveLength(2);
    expect(js.conv.forward).toHaveLength(2);
    expect(js.onnx.repeats).toHaveLength(2);
    // The ONNX export reproduces the TorchScript features: the same weights on both sides of that row.
    expect(js.onnx.difference).toBeLessThan(1e-3);
    expect(js.onnx.optimizedDifference).toBeLessThan(1e-3);
    // ResNet-18 runs in bf16 in libtorch 1.13 on both sides: all four contenders timed, none failed.
    const [precision] = report.raw.precision;
    expect(precision.failures).toEqual({});
    expect(Object.keys(precision.repeats[0]).sort()).toEqual([
      'addon-bf16',
      'addon-fp32',
      'python-bf16',
      'python-fp32',
    ]);
    expect(report.raw.featureCache.repeats).toHaveLength(2);
  });

  test('the CSV has the same rows and ratios', () => {
    const rows = parse(fs.readFileSync(path.join(out, 'bench-tiny.csv'), 'utf8'), {
      columns: true,
    }) as Record<string, string>[];
    expect(rows.map((r) => r.row)).toEqual(ROWS);
    for (const row of rows) {
      const ratio = Number(row.ratio);
      expect(Number.isFinite(ratio)).toBe(true);
      expect(ratio).toBeGreaterThan(0);
      expect(row.mode).toBe('tiny');
    }
  });

  test('the chart is a PNG with a bar per row', () => {
    const png = PNG.sync.read(fs.readFileSync(path.join(out, 'bench-tiny.png')));
    expect(png.width).toBeGreaterThan(400);
    expect(png.height).toBeGreaterThan(ROWS.length * 20);
  });
});
