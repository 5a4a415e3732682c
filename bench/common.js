// Settings and helpers shared by the benchmark's modules (run.js and js_backends.js).
'use strict';

const { spawn, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const readline = require('node:readline');
const { monitorEventLoopDelay } = require('node:perf_hooks');

const ROOT = path.resolve(__dirname, '..');

// The reference's model settings, used by every contender.
const UNFREEZE = 32;
const EMBEDDING = 256;
const LEARNING_RATE = 1e-4;
const WEIGHT_DECAY = 0.02;
const DROPOUT = 0.1;
// A pause between contenders, so that one's OpenMP threads have stopped spinning before the next starts.
const SETTLE_MS = 100;

class UsageError extends Error {}

function fail(message) {
  throw new UsageError(message);
}

function log(message) {
  process.stderr.write(`[bench] ${message}\n`);
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const n = sorted.length;
  if (n === 0) return NaN;
  return n % 2 ? sorted[(n - 1) / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
}

function mean(values) {
  return values.reduce((a, b) => a + b, 0) / values.length;
}

function elapsedSeconds(start) {
  return Number(process.hrtime.bigint() - start) / 1e9;
}

/** Rotates the contender order by the repeat index, so that no contender always runs first or after another. */
function rotate(items, by) {
  const k = by % items.length;
  return items.slice(k).concat(items.slice(0, k));
}

/** The backbone file, exported with scripts/export_backbones.py on first use. */
function ensureBackbone(config, name) {
  const file = path.join(config.modelsDir, `${name}.pt`);
  if (fs.existsSync(file) && fs.existsSync(path.join(config.modelsDir, `${name}.json`))) return file;
  log(`exporting ${name} into ${config.modelsDir} (once)`);
  fs.mkdirSync(config.modelsDir, { recursive: true });
  const result = spawnSync(
    config.python,
    [path.join(ROOT, 'scripts', 'export_backbones.py'), name, '--out', config.modelsDir],
    { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8' },
  );
  if (result.status !== 0) {
    fail(`exporting ${name} with ${config.python} failed:\n${result.stderr || result.error?.message || ''}`);
  }
  return file;
}

/** Standard normal values from a fixed-seed LCG (Box-Muller), the same every run. */
function normalValues(count, seed) {
  const out = new Float32Array(count);
  let state = seed >>> 0 || 1;
  const uniform = () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return (state + 1) / 4294967297;
  };
  for (let i = 0; i < count; i += 2) {
    const r = Math.sqrt(-2 * Math.log(uniform()));
    const theta = 2 * Math.PI * uniform();
    out[i] = r * Math.cos(theta);
    if (i + 1 < count) out[i + 1] = r * Math.sin(theta);
  }
  return out;
}

/** Event-loop delay of one window. A fresh monitor per window: a re-enabled one records the gap as a delay. */
async function delayWindow(resolutionMs, work) {
  const monitor = monitorEventLoopDelay({ resolution: resolutionMs });
  monitor.enable();
  try {
    await work();
  } finally {
    monitor.disable();
  }
  return {
    count: monitor.count,
    p50: monitor.percentile(50) / 1e6,
    p99: monitor.percentile(99) / 1e6,
    max: monitor.max / 1e6,
  };
}

function fmt(value, digits = 2) {
  if (!Number.isFinite(value)) return String(value);
  const magnitude = Math.abs(value);
  if (magnitude >= 1000) return value.toFixed(0);
  if (magnitude >= 100) return value.toFixed(1);
  return value.toFixed(digits);
}

function plural(n, word) {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

function threadCount(n) {
  return plural(n, 'thread');
}

// N / (3 n_c) for the class balance of the synthetic dataset (about 88 % / 7.5 % / 5 %), fixed so that every
// contender weights the loss alike whatever labels a small batch holds.
const CLASS_WEIGHTS = [1 / (3 * 0.875), 1 / (3 * 0.075), 1 / (3 * 0.05)];
/** Arguments of scripts/bench_step.py --serve: the benchmark's model and settings at a backbone's size and batch. */
function stepServerArgs(config, file, spec, precision = 'fp32') {
  return [path.join(ROOT, 'scripts', 'bench_step.py'), '--serve', '--backbone', file]
    .concat(['--size', String(spec.size), '--batch', String(spec.batch), '--threads', String(config.threads)])
    .concat(['--unfreeze', String(UNFREEZE), '--embedding', String(EMBEDDING), '--lr', String(LEARNING_RATE)])
    .concat(['--weight-decay', String(WEIGHT_DECAY), '--dropout', String(DROPOUT)])
    .concat(['--class-weights', ...CLASS_WEIGHTS.map(String), '--warmup', String(config.warmup)])
    .concat(['--precision', precision]);
}

/** A training batch of standard-normal images at a backbone's size, levels 0..4 and labels 0..2 in turn. */
function imageBatch(spec, seed) {
  const { batch: n, size } = spec;
  return {
    images: normalValues(n * 3 * size * size, seed),
    shape: [n, 3, size, size],
    levels: Int32Array.from({ length: n }, (_, i) => i % 5),
    labels: Int32Array.from({ length: n }, (_, i) => i % 3),
  };
}

// Child processes still running, stopped when the benchmark ends early.
const children = new Set();

/** A long-lived Python process that answers one JSON line per JSON command (scripts/bench_*.py --serve). */
class JsonProcess {
  constructor(command, args, label) {
    this.label = label;
    this.stderr = '';
    this.queue = [];
    this.waiting = [];
    this.failure = null;
    this.child = spawn(command, args, { cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'] });
    children.add(this.child);
    this.exited = new Promise((resolve) => this.child.once('close', resolve));
    this.child.stderr.on('data', (chunk) => {
      this.stderr = (this.stderr + chunk).slice(-4000);
    });
    // Replies are whole JSON lines; anything else a library prints on stdout is not a reply.
    readline.createInterface({ input: this.child.stdout }).on('line', (line) => {
      if (!line.startsWith('{')) return;
      let reply;
      try {
        reply = JSON.parse(line);
      } catch {
        return;
      }
      const waiter = this.waiting.shift();
      if (waiter) this.settle(waiter, reply);
      else this.queue.push(reply);
    });
    const end = (why) => {
      children.delete(this.child);
      this.failure ??= new Error(`${label} ${why}${this.stderr ? `:\n${this.stderr.trim()}` : ''}`);
      for (const waiter of this.waiting.splice(0)) waiter.reject(this.failure);
    };
    this.child.once('error', (error) => end(`could not start (${error.message})`));
    this.child.once('close', (code, signal) => end(`exited (${signal ?? `code ${code}`})`));
    // A reply can only come while it runs; writes after it ended are reported through the waiting promise.
    this.child.stdin.on('error', () => undefined);
  }

  settle(waiter, reply) {
    if (reply.error) waiter.reject(new Error(`${this.label}: ${reply.error}`));
    else waiter.resolve(reply);
  }

  next() {
    return new Promise((resolve, reject) => {
      const waiter = { resolve, reject };
      if (this.queue.length > 0) this.settle(waiter, this.queue.shift());
      else if (this.failure) reject(this.failure);
      else this.waiting.push(waiter);
    });
  }

  request(command) {
    const reply = this.next();
    if (!this.failure) this.child.stdin.write(JSON.stringify(command) + '\n');
    return reply;
  }

  async close() {
    if (!this.failure) this.child.stdin.end(JSON.stringify({ cmd: 'quit' }) + '\n');
    await this.exited;
  }
}

module.exports = {
  imageBatch,
  children,
  JsonProcess,
  stepServerArgs,
  CLASS_WEIGHTS,
  ROOT,
  UNFREEZE,
  EMBEDDING,
  LEARNING_RATE,
  WEIGHT_DECAY,
  DROPOUT,
  SETTLE_MS,
  UsageError,
  fail,
  log,
  sleep,
  median,
  mean,
  elapsedSeconds,
  rotate,
  ensureBackbone,
  normalValues,
  delayWindow,
  fmt,
  plural,
  threadCount,
};
