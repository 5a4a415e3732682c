import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { ImageBatch } from '../lib';
import type { PipelineOptions } from '../lib/data/loader';

export const ROOT = path.resolve(__dirname, '..');
export const MODELS = path.join(ROOT, 'test', '.cache', 'models');
export const RESNET18 = path.join(MODELS, 'resnet18.pt');
/** Debian's interpreter, which has python3-torch (the first python3 on PATH may not). */
export const PYTHON = process.env.STENOSIS_PYTHON ?? '/usr/bin/python3';

/** The small pipeline of the fit() tests: 48 px, 60 mm crops, ImageNet normalization; augmented or not. */
export function smallPipeline(augment: boolean): PipelineOptions {
  return {
    size: 48,
    crop: { size: 60, unit: 'mm' },
    scaling: 'minmax',
    mean: [0.485, 0.456, 0.406],
    std: [0.229, 0.224, 0.225],
    flipProbability: augment ? 0.5 : 0,
    rotationDegrees: augment ? 10 : 0,
  };
}

export function tempDir(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `stenosis-${prefix}-`));
}

/** Deterministic uniform values in [-1, 1) from a 32-bit LCG, so tests do not depend on Math.random. */
export function seededValues(count: number, seed: number): Float32Array {
  const out = new Float32Array(count);
  let state = seed >>> 0 || 1;
  for (let i = 0; i < count; i++) {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    out[i] = state / 2 ** 31 - 1;
  }
  return out;
}

export function makeBatch(
  size: number,
  batch: number,
  seed: number,
): ImageBatch & { labels: number[]; levels: number[] } {
  const levels = Array.from({ length: batch }, (_, i) => i % 5);
  const labels = Array.from({ length: batch }, (_, i) => i % 3);
  return {
    images: seededValues(batch * 3 * size * size, seed),
    shape: [batch, 3, size, size],
    levels,
    labels,
  };
}

export function runPython(args: string[]): string {
  return execFileSync(PYTHON, args, { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length mismatch: ${a.length} vs ${b.length}`);
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i] - b[i]));
  return max;
}

export function maxAbs(a: ArrayLike<number>): number {
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i]));
  return max;
}

/** Bitwise equality of two float arrays (jest's toEqual walks typed arrays element by element, slowly). */
export function sameBits(a: Float32Array, b: Float32Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(
    Buffer.from(b.buffer, b.byteOffset, b.byteLength),
  );
}

/** Runs a command's main() with stdout and stderr captured; resolves to its exit code and what it wrote. */
export async function runCaptured(
  main: (argv: readonly string[]) => Promise<number>,
  argv: readonly string[],
): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const writeOut = process.stdout.write.bind(process.stdout);
  const writeErr = process.stderr.write.bind(process.stderr);
  process.stdout.write = ((chunk: string) => ((stdout += chunk), true)) as typeof process.stdout.write;
  process.stderr.write = ((chunk: string) => ((stderr += chunk), true)) as typeof process.stderr.write;
  try {
    const code = await main(argv);
    return { code, stdout, stderr };
  } finally {
    process.stdout.write = writeOut;
    process.stderr.write = writeErr;
  }
}
