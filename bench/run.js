#!/usr/bin/env node
// Benchmarks of the addon against Python PyTorch on the same libtorch, the C++ core without Node
// (stenosis-tool), the reference's per-sample Python data pipeline, and the JavaScript runtimes TensorFlow.js and
// onnxruntime-node (js_backends.js); see `node bench/run.js --help`.
//
// Benchmark machines are often shared and noisy, so nothing here compares against an absolute time: every row
// is a ratio of two figures measured in the same run, within the same repeat (contenders one after another, the
// order rotated from repeat to repeat; the addon and Python PyTorch alternate step by step), and the median over
// repeats is reported with the range of the per-repeat ratios.
'use strict';

const { execFile } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const {
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
  delayWindow,
  fmt,
  plural,
  threadCount,
  children,
  JsonProcess,
  stepServerArgs,
  CLASS_WEIGHTS,
  imageBatch,
} = require('./common');
const { benchJsBackends, jsBackendRows } = require('./js_backends');
const { benchPrecision, benchFeatureCache, fastPathRows } = require('./fast_path');

// What --only can pick: the rows against PyTorch and stenosis-tool (with memory and FLOP/s), the data pipeline,
// the JavaScript runtimes, and the fast path (bf16, cached features).
const GROUPS = ['training', 'pipeline', 'js', 'fast-path'];

const USAGE = `Usage: node bench/run.js [--tiny | --quick | --full] [options]

Modes (default --quick):
  --tiny     ResNet-18 at 32 px, batch 2, 2 repeats, 6 studies: a smoke test of the harness (about a minute)
  --quick    ResNet-18 at 128 px, batch 8, 7 repeats, 40 studies (several minutes on two cores)
  --full     ResNet-152 and ViT-B/16 at 224 px, batch 32, 5 repeats, 300 studies (an hour or more on a CPU)

Each mode also compares the addon, on one thread, with TensorFlow.js (CPU and WebAssembly backends) and
onnxruntime-node: head training on features, a ResNet-18 train step and forward, backbone inference
(bench/js_backends.js; sizes in MODES).

Options:
  --out DIR          output folder for bench-<mode>.{csv,json,png} (default bench-results)
  --repeats N        interleaved repeats (each contender once per repeat)
  --steps N          timed train steps per contender and repeat
  --warmup N         untimed train steps before timing (per process)
  --threads N        libtorch intra-op threads for every contender (default: the machine's cores; --tiny: 1)
  --models-dir DIR   exported backbones; missing ones are exported there (default: <cache>/bench-models)
  --data DIR         RSNA-layout folder for the data pipeline rows (default: the synthetic dataset, in the cache)
  --tool FILE        stenosis-tool binary (default build/stenosis-tool, then build-tool/stenosis-tool)
  --python FILE      Python with torch 1.13 and pydicom (default $STENOSIS_PYTHON or /usr/bin/python3)
  --only GROUPS      run only these row groups, comma-separated: training, pipeline, js, fast-path`;

const MODES = {
  tiny: {
    backbones: [{ name: 'resnet18', size: 32, batch: 2 }],
    repeats: 2,
    warmup: 2,
    steps: 3,
    studies: 6,
    pipeline: { size: 32, batch: 2 },
    idleSeconds: 0.3,
    mmRepeats: 2,
    // One head-training epoch of the cached-feature row: batches of the reference's size where it fits.
    cache: { batch: 4, batches: 2 },
    // Short windows need a finer timer to collect enough delay samples.
    monitorMs: 2,
    // One thread: on a busy machine a descheduled OpenMP thread stalls every parallel region of a tiny step,
    // which makes a two-thread smoke test many times slower without testing anything more.
    threads: 1,
    // A tfjs CPU train step of ResNet-18 takes seconds even at 16 px (its convolution weight gradient is a plain
    // JavaScript loop), so the tiny mode runs it once per repeat after one warm-up step.
    js: {
      head: { backbone: 'resnet18', batch: 8 },
      conv: { size: 16, batch: 2 },
      inference: { size: 32, batch: 2 },
      headSteps: 2,
      forwardSteps: 2,
      convRepeats: 2,
      convWarmup: 1,
    },
  },
  quick: {
    backbones: [{ name: 'resnet18', size: 128, batch: 8 }],
    repeats: 7,
    warmup: 3,
    steps: 5,
    studies: 40,
    pipeline: { size: 128, batch: 8 },
    idleSeconds: 1,
    mmRepeats: 3,
    cache: { batch: 32, batches: 4 },
    monitorMs: 10,
    js: {
      head: { backbone: 'resnet18', batch: 32 },
      // About 20 s per tfjs CPU step on two shared cores: three repeats keep the quick mode within minutes.
      conv: { size: 32, batch: 8 },
      inference: { size: 128, batch: 8 },
      headSteps: 5,
      forwardSteps: 3,
      convRepeats: 3,
      convWarmup: 1,
    },
  },
  full: {
    backbones: [
      { name: 'resnet152', size: 224, batch: 32 },
      { name: 'vit', size: 224, batch: 32 },
    ],
    repeats: 5,
    warmup: 2,
    steps: 3,
    studies: 300,
    pipeline: { size: 224, batch: 32 },
    idleSeconds: 2,
    mmRepeats: 3,
    cache: { batch: 32, batches: 2 },
    monitorMs: 10,
    js: {
      head: { backbone: 'resnet152', batch: 32 },
      conv: { size: 64, batch: 8 },
      inference: { size: 224, batch: 32 },
      headSteps: 5,
      forwardSteps: 3,
      convRepeats: 3,
      convWarmup: 1,
    },
  },
};

const MM_SIZE = 2048;
const IMAGENET_MEAN = [0.485, 0.456, 0.406];
const IMAGENET_STD = [0.229, 0.224, 0.225];
const ROTATION_DEGREES = 10;
const FLIP_PROBABILITY = 0.5;
// The reference pipeline's torch thread count: the loader prepares batches on a data thread with one intra-op
// thread, and Debian's torch starts with one too. Per-sample tensors are small, so a second thread buys nothing,
// while on a busy machine each of its parallel regions can wait for a descheduled thread (tens of times slower).
const PIPELINE_THREADS = 1;

function parseArgs(argv) {
  const options = {
    mode: 'quick',
    out: 'bench-results',
    repeats: null,
    steps: null,
    warmup: null,
    threads: null,
    modelsDir: null,
    data: null,
    tool: null,
    python: process.env.STENOSIS_PYTHON || '/usr/bin/python3',
    only: null,
  };
  const integer = (text, name, min) => {
    const value = Number(text);
    if (!Number.isInteger(value) || value < min) fail(`${name} needs an integer >= ${min}, got '${text}'`);
    return value;
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const value = () => {
      if (i + 1 >= argv.length) fail(`${arg} needs a value`);
      return argv[++i];
    };
    switch (arg) {
      case '--tiny':
      case '--quick':
      case '--full':
        options.mode = arg.slice(2);
        break;
      case '--out':
        options.out = value();
        break;
      case '--repeats':
        options.repeats = integer(value(), arg, 1);
        break;
      case '--steps':
        options.steps = integer(value(), arg, 1);
        break;
      case '--warmup':
        options.warmup = integer(value(), arg, 0);
        break;
      case '--threads':
        options.threads = integer(value(), arg, 1);
        break;
      case '--models-dir':
        options.modelsDir = path.resolve(value());
        break;
      case '--data':
        options.data = path.resolve(value());
        break;
      case '--tool':
        options.tool = path.resolve(value());
        break;
      case '--python':
        options.python = value();
        break;
      case '--only': {
        const groups = value().split(',');
        const unknown = groups.filter((group) => !GROUPS.includes(group));
        if (unknown.length > 0) fail(`--only: unknown group '${unknown[0]}' (groups: ${GROUPS.join(', ')})`);
        options.only = groups;
        break;
      }
      case '-h':
      case '--help':
        process.stdout.write(USAGE + '\n');
        process.exit(0);
        break;
      default:
        fail(`unknown option '${arg}'\n\n${USAGE}`);
    }
  }
  const mode = MODES[options.mode];
  return {
    ...mode,
    mode: options.mode,
    out: path.resolve(options.out),
    repeats: options.repeats ?? mode.repeats,
    steps: options.steps ?? mode.steps,
    warmup: options.warmup ?? mode.warmup,
    threads: options.threads ?? mode.threads ?? os.availableParallelism(),
    modelsDir: options.modelsDir,
    data: options.data,
    tool: options.tool,
    python: options.python,
    only: options.only,
  };
}

function loadLibrary() {
  try {
    return {
      lib: require('../dist/lib'),
      loader: require('../dist/lib/data/loader'),
      Raster: require('../dist/lib/report/raster').Raster,
      textWidth: require('../dist/lib/report/font').textWidth,
      writeFileAtomic: require('../dist/lib/data/atomic').writeFileAtomic,
    };
  } catch (error) {
    return fail(`lumbar-stenosis is not built (${error.message}). Run: npx tsc -p tsconfig.build.json`);
  }
}

/** Runs a program to completion and returns its stdout; rejects with its stderr when it fails. */
function runProgram(file, args) {
  return new Promise((resolve, reject) => {
    const child = execFile(file, args, { cwd: ROOT, maxBuffer: 16 << 20 }, (error, stdout, stderr) => {
      children.delete(child);
      if (error)
        reject(new Error(`${path.basename(file)} ${args.join(' ')} failed: ${stderr || error.message}`));
      else resolve(stdout);
    });
    children.add(child);
  });
}

function lastJsonLine(text, what) {
  const line = text
    .trim()
    .split('\n')
    .reverse()
    .find((l) => l.startsWith('{'));
  if (!line) throw new Error(`${what} printed no JSON line:\n${text}`);
  return JSON.parse(line);
}

function findTool(config) {
  if (config.tool) {
    if (!fs.existsSync(config.tool)) fail(`--tool ${config.tool} does not exist`);
    return config.tool;
  }
  const candidates = [
    path.join(ROOT, 'build', 'stenosis-tool'),
    path.join(ROOT, 'build-tool', 'stenosis-tool'),
  ];
  const found = candidates.find((file) => fs.existsSync(file));
  if (!found) {
    fail(
      'stenosis-tool is not built. Build it with: npm run build:native, or ' +
        'cmake -S . -B build-tool -DSTENOSIS_BUILD_ADDON=OFF && cmake --build build-tool -j2',
    );
  }
  return found;
}

/** Peak resident memory since the last reset, where Linux lets a process reset it (/proc/self/clear_refs). */
const peakRss = {
  reset() {
    try {
      fs.writeFileSync('/proc/self/clear_refs', '5');
      return true;
    } catch {
      return false;
    }
  },
  megabytes() {
    try {
      const match = /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync('/proc/self/status', 'utf8'));
      if (match) return Number(match[1]) / 1024;
    } catch {
      // Not Linux: fall back to the process-lifetime peak below.
    }
    return process.resourceUsage().maxRSS / 1024;
  },
};

async function addonSteps(trainer, batch, steps, rss) {
  const seconds = [];
  for (let i = 0; i < steps; i++) {
    const start = process.hrtime.bigint();
    await trainer.trainStep(batch);
    seconds.push(elapsedSeconds(start));
    rss?.push(process.memoryUsage.rss() / 2 ** 20);
  }
  return seconds;
}

/** Rows 1, 2, 3, 5 and 6 for one backbone: the addon, Python PyTorch and stenosis-tool, interleaved. */
async function benchTraining(config, library, spec, tool) {
  const { lib } = library;
  const label = `${spec.name} ${spec.size}px b${spec.batch}`;
  const file = ensureBackbone(config, spec.name);
  log(`${label}: starting the Python side (${config.warmup} warm-up steps)`);
  const python = new JsonProcess(config.python, stepServerArgs(config, file, spec), 'scripts/bench_step.py');
  try {
    const pythonInfo = await python.next();

    log(`${label}: loading the addon's model (${config.warmup} warm-up steps)`);
    const resetWorked = peakRss.reset();
    const backbone = await lib.Backbone.load(file, { inputSize: spec.size });
    const unfrozen = await backbone.unfreezeLast(UNFREEZE);
    const classifier = await lib.StenosisClassifier.create({
      backbone,
      levelEmbedding: new lib.LevelEmbedding({ dimension: EMBEDDING }),
      dropout: DROPOUT,
      seed: 0,
    });
    const trainer = await lib.Trainer.create(classifier, {
      learningRate: LEARNING_RATE,
      weightDecay: WEIGHT_DECAY,
      classWeights: CLASS_WEIGHTS,
    });
    const { batch: n, size } = spec;
    const batch = imageBatch(spec, 1);
    await addonSteps(trainer, batch, config.warmup);

    const toolArgs = ['bench', '--backbone', file, '--batch', String(n), '--size', String(size)]
      .concat(['--threads', String(config.threads), '--unfreeze', String(UNFREEZE)])
      .concat(['--steps', String(config.steps), '--warmup', String(config.warmup), '--seed', '0']);
    let pythonMaxRssMb = 0;
    const pythonStep = async () => {
      const reply = await python.request({ cmd: 'steps', steps: 1 });
      pythonMaxRssMb = reply.maxRssMb;
      return reply.stepSeconds[0];
    };
    const rss = [];
    const repeats = [];
    for (let r = 0; r < config.repeats; r++) {
      const repeat = {};
      for (const contender of rotate(['pair', 'addon', 'tool', 'idle', 'mm'], r)) {
        await sleep(SETTLE_MS);
        if (contender === 'pair') {
          // The addon and Python alternate step by step: on a shared machine the load changes within seconds,
          // and single alternating steps see nearly the same load where two blocks of steps would not.
          const addon = [];
          const pythonSeconds = [];
          for (let i = 0; i < config.steps; i++) {
            const pythonFirst = (i + r) % 2 === 1;
            if (pythonFirst) pythonSeconds.push(await pythonStep());
            addon.push(...(await addonSteps(trainer, batch, 1, rss)));
            if (!pythonFirst) pythonSeconds.push(await pythonStep());
          }
          repeat.pairAddon = median(addon);
          repeat.pairAddonSteps = addon;
          repeat.python = median(pythonSeconds);
          repeat.pythonSteps = pythonSeconds;
        } else if (contender === 'addon') {
          // A block of steps, like the tool's, with the event-loop monitor on throughout.
          let seconds = [];
          repeat.training = await delayWindow(config.monitorMs, async () => {
            seconds = await addonSteps(trainer, batch, config.steps, rss);
          });
          repeat.addon = median(seconds);
          repeat.addonSteps = seconds;
        } else if (contender === 'tool') {
          const reply = lastJsonLine(await runProgram(tool, toolArgs), 'stenosis-tool bench');
          repeat.tool = reply.medianStepSeconds;
        } else if (contender === 'idle') {
          repeat.idle = await delayWindow(config.monitorMs, () => sleep(config.idleSeconds * 1000));
        } else {
          const reply = await python.request({ cmd: 'mm', size: MM_SIZE, repeats: config.mmRepeats });
          repeat.mmFlopsPerSecond = reply.flopsPerSecond;
        }
      }
      log(
        `${label}: repeat ${r + 1}/${config.repeats}: addon ${(n / repeat.pairAddon).toFixed(2)} img/s ` +
          `alternating with PyTorch ${(n / repeat.python).toFixed(2)}; addon ${(n / repeat.addon).toFixed(2)} ` +
          `in a block, tool ${(n / repeat.tool).toFixed(2)}`,
      );
      repeats.push(repeat);
    }
    const addonPeakMb = peakRss.megabytes();
    const pythonPeakMb = pythonMaxRssMb;
    log(`${label}: counting the FLOPs of one step (torch.profiler)`);
    const flops = await python.request({ cmd: 'flops' });
    return {
      label,
      spec,
      file,
      unfrozenTensors: unfrozen.length,
      pythonInfo,
      repeats,
      rss,
      addonPeakMb,
      peakMethod: resetWorked ? 'VmHWM after reset' : 'maxRSS since process start',
      pythonPeakMb,
      flops,
    };
  } finally {
    await python.close();
  }
}

/** Row 4: the library's loader (first epoch decodes, later ones are cached) against the reference pipeline. */
async function benchPipeline(config, library) {
  const { lib, loader } = library;
  let folder = config.data;
  if (!folder) {
    folder = await lib.ensureSyntheticDataset({ studies: config.studies, seed: 0 }, log);
  }
  const dataset = await lib.readRsnaDataset(folder);
  // The reference's loader collates labels, so it takes labelled samples only; both sides read the same list.
  const samples = dataset.samples.filter((s) => s.label !== null);
  if (samples.length === 0) fail(`no labelled samples in ${folder}`);
  const { size, batch: batchSize } = config.pipeline;
  const pipeline = {
    size,
    // The reference resizes whole slices; no crop, so that both sides do the same work.
    crop: null,
    scaling: 'minmax',
    mean: IMAGENET_MEAN,
    std: IMAGENET_STD,
    flipProbability: FLIP_PROBABILITY,
    rotationDegrees: ROTATION_DEGREES,
  };
  const temp = fs.mkdtempSync(path.join(os.tmpdir(), 'stenosis-bench-'));
  const list = path.join(temp, 'samples.json');
  fs.writeFileSync(
    list,
    JSON.stringify(samples.map((s) => ({ imagePath: s.imagePath, level: s.level, label: s.label }))),
  );
  const python = new JsonProcess(
    config.python,
    [path.join(ROOT, 'scripts', 'bench_pipeline.py'), '--serve', '--samples', list]
      .concat(['--size', String(size), '--batch', String(batchSize), '--threads', String(PIPELINE_THREADS)])
      .concat(['--flip', String(FLIP_PROBABILITY), '--rotation', String(ROTATION_DEGREES)]),
    'scripts/bench_pipeline.py',
  );
  const epoch = async (cache, seed) => {
    const start = process.hrtime.bigint();
    let count = 0;
    const rng = new lib.SeededRandom(seed);
    for await (const { batch } of loader.batches(samples, cache, pipeline, { batchSize, train: true, rng })) {
      count += batch.shape[0];
    }
    return count / elapsedSeconds(start);
  };
  try {
    await python.next();
    log(`data pipeline: ${samples.length} samples from ${folder}; warm-up epochs`);
    // Warm-up: the files into the page cache, the code paths JIT-compiled; the warm cache serves later epochs.
    await python.request({ cmd: 'epoch' });
    await epoch(new loader.SampleCache(pipeline), 0);
    const warm = new loader.SampleCache(pipeline);
    await epoch(warm, 0);
    const repeats = [];
    for (let r = 0; r < config.repeats; r++) {
      const repeat = {};
      for (const contender of rotate(['first', 'cached', 'python'], r)) {
        await sleep(SETTLE_MS);
        if (contender === 'first') repeat.first = await epoch(new loader.SampleCache(pipeline), r + 1);
        else if (contender === 'cached') repeat.cached = await epoch(warm, r + 1);
        else repeat.python = (await python.request({ cmd: 'epoch' })).samplesPerSecond;
      }
      log(
        `data pipeline: repeat ${r + 1}/${config.repeats}: first epoch ${repeat.first.toFixed(0)} samples/s, ` +
          `cached ${repeat.cached.toFixed(0)}, reference ${repeat.python.toFixed(0)}`,
      );
      repeats.push(repeat);
    }
    return { folder, samples: samples.length, size, batchSize, repeats };
  } finally {
    await python.close();
    fs.rmSync(temp, { recursive: true, force: true });
  }
}

function goalStatus(ratio, goal) {
  // A contender that cannot run (e.g. a backbone that fails under bf16) leaves its row without a ratio.
  if (!Number.isFinite(ratio)) return 'n/a';
  if (!goal) return 'info';
  return ratio >= goal.min ? 'pass' : 'miss';
}

/** The table's rows: every figure paired with the one it is compared with in the same run. */
function buildRows(config, trainings, pipelineResult, jsResult, fastPath) {
  const rows = [];
  // A row's ratio is the median of its per-repeat ratios (each from figures of the same repeat); the range shows
  // how much the repeats disagreed, which on a busy machine says more than any single figure.
  const add = (row) => {
    const ratio = median(row.perRepeat);
    const range = [Math.min(...row.perRepeat), Math.max(...row.perRepeat)];
    rows.push({ ...row, ratio, range, status: goalStatus(ratio, row.goal) });
  };
  for (const t of trainings) {
    const { label, repeats } = t;
    const n = t.spec.batch;
    const ips = (key) => median(repeats.map((r) => n / r[key]));
    // Two step timings of the same repeats as images/s, and their per-repeat ratio.
    const imagesPerSecond = (ours, oursKey, reference, referenceKey) => ({
      ours: { label: ours, value: ips(oursKey), unit: 'img/s' },
      reference: { label: reference, value: ips(referenceKey), unit: 'img/s' },
      perRepeat: repeats.map((r) => r[referenceKey] / r[oursKey]),
    });
    add({
      id: 'train-throughput',
      group: label,
      title: 'train step vs PyTorch',
      ...imagesPerSecond('addon', 'pairAddon', 'PyTorch', 'python'),
      ratioDefinition: 'addon images/s / Python PyTorch images/s, steps alternating one by one',
      goal: { min: 1, text: '>= 1.00' },
      note:
        `steps alternate addon / PyTorch one by one; same TorchScript backbone, last ${UNFREEZE} tensors ` +
        `trained, ${threadCount(config.threads)}`,
    });
    const overhead = median(repeats.map((r) => r.tool / r.addon));
    add({
      id: 'napi-overhead',
      group: label,
      title: 'N-API overhead',
      ...imagesPerSecond('addon', 'addon', 'stenosis-tool', 'tool'),
      ratioDefinition: 'addon images/s / stenosis-tool bench images/s',
      goal: { min: 0.97, text: '>= 0.97' },
      note:
        `overhead ${((1 - overhead) * 100).toFixed(1)}% (goal < 3%); ` +
        `a block of ${plural(config.steps, 'addon step')} ` +
        `against a stenosis-tool process (${config.warmup} warm-up + ${plural(config.steps, 'step')})`,
    });
    const delay = (kind, key) => median(repeats.map((r) => r[kind][key]));
    add({
      id: 'event-loop-delay',
      group: label,
      title: 'event-loop p99 train/idle',
      ours: { label: 'training p99', value: delay('training', 'p99'), unit: 'ms' },
      reference: { label: 'idle p99', value: delay('idle', 'p99'), unit: 'ms' },
      perRepeat: repeats.map((r) => r.training.p99 / r.idle.p99),
      ratioDefinition: 'p99 event-loop delay while the addon trains / p99 while idle',
      goal: null,
      note:
        `training p50/p99/max ${fmt(delay('training', 'p50'))}/${fmt(delay('training', 'p99'))}/` +
        `${fmt(Math.max(...repeats.map((r) => r.training.max)))} ms, idle ${fmt(delay('idle', 'p50'))}/` +
        `${fmt(delay('idle', 'p99'))}/${fmt(Math.max(...repeats.map((r) => r.idle.max)))} ms ` +
        `(monitorEventLoopDelay, ${config.monitorMs} ms timer, interval included)`,
    });
    add({
      id: 'memory-peak',
      group: label,
      title: 'peak RSS vs PyTorch',
      ours: { label: 'addon', value: t.addonPeakMb, unit: 'MB' },
      reference: { label: 'PyTorch', value: t.pythonPeakMb, unit: 'MB' },
      perRepeat: [t.addonPeakMb / t.pythonPeakMb],
      ratioDefinition: 'peak RSS of the Node process (model loaded, training) / of the Python process',
      goal: null,
      note: `Node: ${t.peakMethod}; Python: ru_maxrss`,
    });
    const third = Math.max(1, Math.floor(t.rss.length / 3));
    const first = mean(t.rss.slice(0, third));
    const last = mean(t.rss.slice(-third));
    add({
      id: 'memory-growth',
      group: label,
      title: 'RSS last/first third',
      ours: { label: 'last third', value: last, unit: 'MB' },
      reference: { label: 'first third', value: first, unit: 'MB' },
      perRepeat: [last / first],
      ratioDefinition: 'mean RSS after the last third of the timed steps / after the first third',
      goal: null,
      note: `growth ${(last - first).toFixed(1)} MB over ${t.rss.length} timed steps`,
    });
    const stepFlops = t.flops.flops;
    const peak = median(repeats.map((r) => r.mmFlopsPerSecond));
    for (const [key, who] of [
      ['pairAddon', 'addon'],
      ['python', 'PyTorch'],
    ]) {
      add({
        id: key === 'pairAddon' ? 'flops-fraction' : 'flops-fraction-python',
        group: label,
        title: `FLOP/s / mm peak (${who})`,
        ours: { label: who, value: median(repeats.map((r) => stepFlops / r[key] / 1e9)), unit: 'GFLOP/s' },
        reference: { label: `mm ${MM_SIZE}`, value: peak / 1e9, unit: 'GFLOP/s' },
        perRepeat: repeats.map((r) => stepFlops / r[key] / r.mmFlopsPerSecond),
        ratioDefinition: `achieved FLOP/s of a train step / fp32 torch.mm ${MM_SIZE}x${MM_SIZE} FLOP/s`,
        goal: null,
        note: `${fmt(stepFlops / 1e9)} GFLOP/step: profiler with_flops + convolution gradients from autograd`,
      });
    }
  }
  if (pipelineResult) {
    const p = pipelineResult;
    const pick = (key) => median(p.repeats.map((r) => r[key]));
    const common = `${p.samples} samples, ${p.size} px, batch ${p.batchSize}`;
    add({
      id: 'pipeline-first-epoch',
      group: 'data pipeline',
      title: 'first epoch (decode)',
      ours: { label: 'loader', value: pick('first'), unit: 'samples/s' },
      reference: { label: 'reference', value: pick('python'), unit: 'samples/s' },
      perRepeat: p.repeats.map((r) => r.first / r.python),
      ratioDefinition: 'SampleCache + batches samples/s (empty cache) / reference pipeline samples/s',
      goal: null,
      note:
        `${common}; DICOM decode, min-max, resize, flip/rotate, normalize (files in page cache); ` +
        `reference with ${threadCount(PIPELINE_THREADS)}, like the loader's data thread`,
    });
    add({
      id: 'pipeline-cached-epoch',
      group: 'data pipeline',
      title: 'cached epoch',
      ours: { label: 'loader', value: pick('cached'), unit: 'samples/s' },
      reference: { label: 'reference', value: pick('python'), unit: 'samples/s' },
      perRepeat: p.repeats.map((r) => r.cached / r.python),
      ratioDefinition: 'SampleCache + batches samples/s (warm cache) / reference pipeline samples/s',
      goal: { min: 3, text: '>= 3.00' },
      note: `${common}; the reference decodes every epoch`,
    });
  }
  if (jsResult) for (const row of jsBackendRows(jsResult)) add(row);
  for (const row of fastPathRows(config, fastPath.precision, fastPath.cache)) add(row);
  return rows;
}

function formatTable(config, rows, context) {
  const header = ['row', 'ours', 'reference', 'ratio', 'repeat range', 'goal', 'status'];
  const cells = rows.map((row) => [
    `${row.group}: ${row.title}`,
    `${row.ours.label} ${fmt(row.ours.value)} ${row.ours.unit}`,
    `${row.reference.label} ${fmt(row.reference.value)} ${row.reference.unit}`,
    fmt(row.ratio, 3),
    row.perRepeat.length > 1 ? `${fmt(row.range[0], 3)}..${fmt(row.range[1], 3)}` : '-',
    row.goal ? row.goal.text : '-',
    row.status,
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i].length)));
  const line = (c) =>
    c
      .map((text, i) => (i === 3 ? text.padStart(widths[i]) : text.padEnd(widths[i])))
      .join('  ')
      .trimEnd();
  const out = [
    `lumbar-stenosis benchmark (${config.mode}): median of ${plural(config.repeats, 'interleaved repeat')} ` +
      `(contender order rotated each repeat) after ${plural(config.warmup, 'warm-up step')} per process; ` +
      `${plural(config.steps, 'timed step')} per contender and repeat; ${threadCount(config.threads)}; ` +
      `libtorch ${context.torch}`,
    `machine: ${context.cpus} x ${context.cpuModel}; load average ${context.loadBefore} at start, ` +
      `${context.loadAfter} at end`,
    ...(context.busy
      ? [
          `warning: the load average exceeded the ${context.cpus} cores: other processes competed for them, ` +
            'so the ratios carry much noise (see the repeat range); rerun on a quiet machine or with --threads 1',
        ]
      : []),
    '',
    line(header),
    line(widths.map((w) => '-'.repeat(w))),
    ...cells.map(line),
    '',
    'notes:',
    ...rows.map((row) => `  ${row.group}: ${row.title}: ${row.note}`),
  ];
  return out.join('\n');
}

function csvCell(value) {
  const text = value === null || value === undefined ? '' : String(value);
  return /[",\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

function toCsv(config, rows) {
  const header = ['mode', 'group', 'row', 'title', 'ours_label', 'ours', 'ours_unit']
    .concat(['reference_label', 'reference', 'reference_unit', 'ratio', 'ratio_min', 'ratio_max'])
    .concat(['ratio_definition', 'goal', 'status', 'repeats', 'note']);
  const lines = rows.map((row) =>
    [config.mode, row.group, row.id, row.title, row.ours.label, row.ours.value, row.ours.unit]
      .concat([row.reference.label, row.reference.value, row.reference.unit, row.ratio, ...row.range])
      .concat([row.ratioDefinition, row.goal ? row.goal.text : '', row.status, config.repeats, row.note])
      .map(csvCell)
      .join(','),
  );
  return [header.join(','), ...lines].join('\n') + '\n';
}

const COLORS = {
  pass: [46, 139, 87],
  miss: [205, 60, 60],
  info: [90, 115, 160],
  ink: [30, 30, 30],
  grid: [215, 215, 215],
  one: [120, 120, 120],
  paper: [255, 255, 255],
  'n/a': [170, 170, 170],
};

/** Horizontal bars of every row's ratio, green pass, red miss, blue for rows without a goal; goals as ticks. */
function drawChart(library, config, rows) {
  const { Raster, textWidth } = library;
  const scale = 2;
  const rowHeight = 34;
  const labels = rows.map((row) => `${row.group}: ${row.title}`);
  const left = 24 + Math.max(...labels.map((l) => textWidth(l, scale))) + 16;
  const plotWidth = 560;
  const top = 70;
  const width = left + plotWidth + 150;
  const height = top + rows.length * rowHeight + 50;
  const r = new Raster(width, height);
  r.text(
    24,
    20,
    `lumbar-stenosis benchmark (${config.mode}): ratios (log scale), median of ${config.repeats} repeats`,
    COLORS.ink,
    {
      scale,
      bold: true,
    },
  );
  const finite = rows.map((row) => row.ratio).filter((value) => Number.isFinite(value) && value > 0);
  const goals = rows.map((row) => (row.goal ? row.goal.min : 1));
  // A log axis: the ratios run from below 1 (PyTorch, memory) to the hundreds (the JavaScript backends), and
  // on a linear one every bar near 1 would be a sliver.
  const low = Math.min(0.5, ...finite, ...goals) / 1.5;
  const high = Math.max(1.2, ...finite, ...goals) * 1.5;
  const span = Math.log(high / low);
  const x = (value) => left + (Math.log(Math.min(Math.max(value, low), high) / low) / span) * plotWidth;
  const bottom = top + rows.length * rowHeight;
  const multiples = span / Math.LN10 > 3.5 ? [1] : [1, 2, 5];
  for (let decade = 10 ** Math.floor(Math.log10(low)); decade <= high; decade *= 10) {
    for (const tick of multiples.map((m) => m * decade).filter((t) => t >= low && t <= high)) {
      const px = Math.round(x(tick));
      r.vline(px, top - 6, bottom, COLORS.grid);
      const text = String(Number(tick.toPrecision(1)));
      r.text(px - textWidth(text, scale) / 2, bottom + 10, text, COLORS.ink, { scale });
    }
  }
  r.vline(Math.round(x(1)), top - 6, bottom, COLORS.one, 2);
  rows.forEach((row, i) => {
    const y = top + i * rowHeight;
    r.text(24, y + 10, labels[i], COLORS.ink, { scale });
    const value = Number.isFinite(row.ratio) ? Math.max(low, row.ratio) : low;
    r.fillRect(left, y + 6, x(value) - left, rowHeight - 12, COLORS[row.status]);
    if (row.goal) r.vline(Math.round(x(row.goal.min)), y + 2, y + rowHeight - 3, COLORS.ink, 3);
    const text = `${fmt(row.ratio, 3)} ${row.status}`;
    // A white box behind the value keeps it readable where it crosses a grid line.
    r.fillRect(x(value) + 5, y + 7, textWidth(text, scale) + 6, 7 * scale + 6, COLORS.paper);
    r.text(x(value) + 8, y + 10, text, COLORS.ink, { scale });
  });
  r.line(left, bottom, left + plotWidth, bottom, COLORS.ink, 2);
  return r.encodePng();
}

async function main(argv) {
  const config = parseArgs(argv);
  const library = loadLibrary();
  const { lib } = library;
  config.modelsDir ??= path.join(path.dirname(lib.defaultSyntheticFolder()), 'bench-models');
  const tool = findTool(config);
  lib.setNumThreads(config.threads);
  const started = process.hrtime.bigint();
  const loadBefore = os.loadavg()[0].toFixed(2);
  log(
    `mode ${config.mode}: ${config.repeats} repeats, ${threadCount(config.threads)}, output in ${config.out}`,
  );

  const wanted = (group) => !config.only || config.only.includes(group);
  const trainings = [];
  if (wanted('training')) {
    for (const spec of config.backbones) trainings.push(await benchTraining(config, library, spec, tool));
  }
  const pipelineResult = wanted('pipeline') ? await benchPipeline(config, library) : null;
  const jsResult = wanted('js') ? await benchJsBackends(config, library) : null;
  const fastPath = { precision: [], cache: null };
  if (wanted('fast-path')) {
    const first = config.backbones[0];
    fastPath.cache = await benchFeatureCache(
      config,
      library,
      { ...first, batch: config.cache.batch },
      config.cache.batches,
    );
    for (const spec of config.backbones) fastPath.precision.push(await benchPrecision(config, library, spec));
  }

  const context = {
    torch: lib.versions().torch,
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model ?? 'unknown CPU',
    loadBefore,
    loadAfter: os.loadavg()[0].toFixed(2),
    busy: false,
  };
  // The load at the end includes this benchmark's own threads.
  context.busy =
    Number(context.loadBefore) > context.cpus || Number(context.loadAfter) > context.cpus + config.threads;
  const rows = buildRows(config, trainings, pipelineResult, jsResult, fastPath);
  const table = formatTable(config, rows, context);
  process.stdout.write(table + '\n');

  const base = path.join(config.out, `bench-${config.mode}`);
  const { writeFileAtomic } = library;
  writeFileAtomic(`${base}.csv`, toCsv(config, rows));
  const report = {
    format: 'lumbar-stenosis-bench',
    version: 1,
    mode: config.mode,
    date: new Date().toISOString(),
    seconds: elapsedSeconds(started),
    settings: {
      repeats: config.repeats,
      warmup: config.warmup,
      steps: config.steps,
      threads: config.threads,
      unfreezeLast: UNFREEZE,
      embedding: EMBEDDING,
      learningRate: LEARNING_RATE,
      weightDecay: WEIGHT_DECAY,
      dropout: DROPOUT,
      classWeights: CLASS_WEIGHTS,
      mmSize: MM_SIZE,
      eventLoopResolutionMs: config.monitorMs,
      idleSeconds: config.idleSeconds,
      jsBackends: config.js,
      tool,
      python: config.python,
      modelsDir: config.modelsDir,
    },
    machine: { ...context, node: process.version, platform: `${os.platform()} ${os.release()}` },
    rows,
    raw: {
      training: trainings.map((t) => ({
        label: t.label,
        backbone: t.file,
        ...t.spec,
        unfrozenTensors: t.unfrozenTensors,
        python: t.pythonInfo,
        flops: t.flops,
        repeats: t.repeats,
        rssMb: t.rss,
      })),
      pipeline: pipelineResult,
      jsBackends: jsResult,
      precision: fastPath.precision,
      featureCache: fastPath.cache,
    },
    table,
  };
  writeFileAtomic(`${base}.json`, JSON.stringify(report, null, 2) + '\n');
  writeFileAtomic(`${base}.png`, drawChart(library, config, rows));
  log(`wrote ${base}.csv, ${base}.json and ${base}.png in ${report.seconds.toFixed(0)} s`);
}

function stopChildren() {
  for (const child of children) child.kill();
}

process.once('SIGINT', () => {
  stopChildren();
  process.exit(130);
});

main(process.argv.slice(2)).then(
  () => process.exit(0),
  (error) => {
    stopChildren();
    process.stderr.write(`bench: ${error instanceof UsageError ? error.message : (error.stack ?? error)}\n`);
    process.exit(error instanceof UsageError ? 2 : 1);
  },
);
