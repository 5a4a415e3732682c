// The benchmark's JavaScript-runtime rows: the addon against TensorFlow.js on its CPU backend (pure JavaScript)
// and its WebAssembly backend, training the same head on precomputed features and the same ResNet-18, and
// against onnxruntime-node running the same weights; plus the event-loop delay while each trains.
//
// Every contender here runs on one thread. tfjs's CPU and WebAssembly backends compute on Node's main thread
// only (the multi-threaded WebAssembly build needs Web Workers, which tfjs does not use in Node), so the addon
// and onnxruntime get one thread as well: the ratios compare implementations, not core counts. It also keeps
// them readable on a shared machine, where a two-thread libtorch step can wait tens of milliseconds in every
// parallel region for a descheduled thread.
'use strict';

const fs = require('node:fs');
const path = require('node:path');
const { spawnSync } = require('node:child_process');
const {
  ROOT,
  EMBEDDING,
  LEARNING_RATE,
  WEIGHT_DECAY,
  DROPOUT,
  SETTLE_MS,
  fail,
  log,
  sleep,
  median,
  elapsedSeconds,
  rotate,
  ensureBackbone,
  normalValues,
  delayWindow,
  fmt,
  plural,
} = require('./common');
const models = require('./tfjs_models');

const JS_THREADS = 1;
// The weights of the head comparison; the same on every side, whatever labels a batch holds.
const HEAD_CLASS_WEIGHTS = [1, 2, 4];
// StenosisClassifier's default hidden widths and the addon's AdamW defaults (lib/train/trainer.ts).
const HIDDEN = [512, 256];
const BETAS = [0.9, 0.999];
const EPSILON = 1e-8;
// An ONNX export must reproduce the TorchScript features within this, relative to their largest magnitude.
const ONNX_TOLERANCE = 1e-3;

function loadRuntimes() {
  try {
    const tf = require('@tensorflow/tfjs');
    require('@tensorflow/tfjs-backend-wasm');
    const ort = require('onnxruntime-node');
    // Production mode skips tfjs's per-op debug checks, as a user timing tfjs would; it also silences the
    // suggestion to install tfjs-node, which this comparison leaves out on purpose (it is libtensorflow, not
    // JavaScript).
    tf.enableProdMode();
    return { tf, ort };
  } catch (error) {
    return fail(
      `the JavaScript backends are not installed (${error.message}). They are devDependencies of this ` +
        'repository: run npm install (or npm ci) in it',
    );
  }
}

/** The ONNX copy of a TorchScript backbone, exported with scripts/export_onnx.py when missing or older. */
function ensureOnnx(config, torchScriptFile) {
  const file = torchScriptFile.replace(/\.pt$/, '') + '.onnx';
  if (fs.existsSync(file) && fs.statSync(file).mtimeMs >= fs.statSync(torchScriptFile).mtimeMs) return file;
  log(`exporting ${path.basename(file)} from ${path.basename(torchScriptFile)} (once)`);
  const result = spawnSync(
    config.python,
    [path.join(ROOT, 'scripts', 'export_onnx.py'), '--backbone', torchScriptFile, '--out', file],
    { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8' },
  );
  if (result.status !== 0) {
    fail(`exporting ${file} with ${config.python} failed:\n${result.stderr || result.error?.message || ''}`);
  }
  return file;
}

/** The level and label pattern of every batch in the benchmark, and the per-sample loss weights. */
function batchLabels(n) {
  const levels = Int32Array.from({ length: n }, (_, i) => i % models.LEVELS);
  const labels = Int32Array.from({ length: n }, (_, i) => i % models.CLASSES);
  return { levels, labels };
}

/** One-hot levels and labels and the per-sample class weights, as tfjs tensors on the active backend. */
function tfjsTargets(tf, n) {
  const { levels, labels } = batchLabels(n);
  return {
    levels: tf.oneHot(tf.tensor1d(levels, 'int32'), models.LEVELS).cast('float32'),
    labels: tf.oneHot(tf.tensor1d(labels, 'int32'), models.CLASSES).cast('float32'),
    weights: tf.tensor1d(Array.from(labels, (c) => HEAD_CLASS_WEIGHTS[c])),
  };
}

const optimizerSettings = {
  learningRate: LEARNING_RATE,
  weightDecay: WEIGHT_DECAY,
  betas: BETAS,
  eps: EPSILON,
};

async function useBackend(tf, name) {
  if (tf.getBackend() !== name && !(await tf.setBackend(name)))
    fail(`tfjs could not start its ${name} backend`);
  await tf.ready();
}

/** A contender that trains the tfjs head on fixed features [n, featureDim] on one backend. */
async function tfjsHeadContender(tf, backend, { featureDim, batch }) {
  await useBackend(tf, backend);
  const head = models.createHead(tf, { featureDim, embedding: EMBEDDING, hidden: HIDDEN, seed: 1 });
  const features = tf.tensor2d(normalValues(batch * featureDim, 11), [batch, featureDim]);
  const targets = tfjsTargets(tf, batch);
  const variables = models.trainableVariables(head);
  const loss = () =>
    models.weightedCrossEntropy(
      tf,
      models.headLogits(tf, head, features, targets.levels, { training: true, dropout: DROPOUT }),
      targets.labels,
      targets.weights,
    );
  const step = models.adamWStep(tf, variables, loss, optimizerSettings);
  return {
    name: `tfjs-${backend}`,
    enter: () => useBackend(tf, backend),
    step: async () => step(),
    parameters: models.parameterCount(variables),
  };
}

/** The tfjs ResNet-18 and head with fixed NHWC images and targets, as the conv contenders use them. */
function tfjsResnet(tf, { size, batch }) {
  return {
    net: models.createResnet18(tf, 100),
    head: models.createHead(tf, {
      featureDim: models.RESNET18_FEATURES,
      embedding: EMBEDDING,
      hidden: HIDDEN,
      seed: 2,
    }),
    images: tf.tensor4d(normalValues(batch * 3 * size * size, 12), [batch, size, size, 3]),
    targets: tfjsTargets(tf, batch),
  };
}

/** A contender that trains the whole tfjs ResNet-18 and head on fixed NHWC images (CPU backend). */
async function tfjsConvContender(tf, backend, { size, batch }) {
  await useBackend(tf, backend);
  const { net, head, images, targets } = tfjsResnet(tf, { size, batch });
  const variables = models.trainableVariables(net).concat(models.trainableVariables(head));
  const state = { training: true, statistics: [] };
  const loss = () => {
    const features = models.resnet18Features(tf, net, images, state);
    const logits = models.headLogits(tf, head, features, targets.levels, {
      training: true,
      dropout: DROPOUT,
    });
    return models.weightedCrossEntropy(tf, logits, targets.labels, targets.weights);
  };
  const step = models.adamWStep(tf, variables, loss, {
    ...optimizerSettings,
    afterGradients: () => models.updateRunningStatistics(tf, state),
  });
  return {
    name: `tfjs-${backend}-train`,
    enter: () => useBackend(tf, backend),
    step: async () => step(),
    backboneParameters: models.parameterCount(models.trainableVariables(net)),
    parameters: models.parameterCount(variables),
  };
}

/** A contender that runs the tfjs ResNet-18 and head forward in inference mode, to class probabilities. */
async function tfjsForwardContender(tf, backend, { size, batch }) {
  await useBackend(tf, backend);
  const { net, head, images, targets } = tfjsResnet(tf, { size, batch });
  const state = { training: false, statistics: [] };
  const forward = () => {
    const probabilities = tf.tidy(() =>
      tf.softmax(
        models.headLogits(tf, head, models.resnet18Features(tf, net, images, state), targets.levels, {
          training: false,
          dropout: DROPOUT,
        }),
      ),
    );
    probabilities.dataSync();
    probabilities.dispose();
  };
  return {
    name: `tfjs-${backend}-forward`,
    enter: () => useBackend(tf, backend),
    step: async () => forward(),
  };
}

/** The addon's classifier and trainer on a backbone file, with the head settings of the tfjs side. */
async function addonTrainer(lib, file, inputSize, trainBackbone) {
  const backbone = await lib.Backbone.load(file, { inputSize });
  const names = await backbone.parameterNames();
  if (trainBackbone) await backbone.unfreezeLast(names.length);
  else await backbone.freeze();
  const classifier = await lib.StenosisClassifier.create({
    backbone,
    levelEmbedding: new lib.LevelEmbedding({ dimension: EMBEDDING }),
    hiddenSizes: HIDDEN,
    dropout: DROPOUT,
    seed: 0,
  });
  const trainer = await lib.Trainer.create(classifier, {
    learningRate: LEARNING_RATE,
    weightDecay: WEIGHT_DECAY,
    betas: BETAS,
    eps: EPSILON,
    classWeights: HEAD_CLASS_WEIGHTS,
  });
  return { backbone, trainer, backboneParameters: await backbone.parameterCount(true) };
}

/**
 * Steps of one contender, each timed alone. A macrotask turn after each step lets the event-loop monitor's
 * timer fire, so a step that blocks the main thread is seen as one delay of about its length.
 */
async function timedSteps(step, count) {
  const seconds = [];
  for (let i = 0; i < count; i++) {
    const start = process.hrtime.bigint();
    await step();
    seconds.push(elapsedSeconds(start));
    await new Promise((resolve) => setImmediate(resolve));
  }
  return seconds;
}

/**
 * Warm-up, then interleaved repeats: in every repeat each contender runs a block of `steps` steps under an
 * event-loop monitor, the order rotated from repeat to repeat.
 * @returns per repeat, per contender: median step seconds, the step times and the delay window.
 */
async function interleave(label, contenders, { repeats, steps, monitorMs }) {
  for (const contender of contenders) {
    await contender.enter?.();
    await timedSteps(contender.step, contender.warmup);
  }
  const out = [];
  for (let r = 0; r < repeats; r++) {
    const repeat = {};
    for (const contender of rotate(contenders, r)) {
      await sleep(SETTLE_MS);
      await contender.enter?.();
      let seconds = [];
      // The monitor's timer must fire once before the steps (its first firing only starts the clock) and once
      // after them (a blocking step is recorded when the timer next runs): a short idle wait on both sides.
      const delay = await delayWindow(monitorMs, async () => {
        await sleep(3 * monitorMs);
        seconds = await timedSteps(contender.step, steps);
        await sleep(3 * monitorMs);
      });
      repeat[contender.name] = { seconds: median(seconds), steps: seconds, delay };
    }
    log(
      `${label}: repeat ${r + 1}/${repeats}: ` +
        contenders.map((c) => `${c.name} ${fmt(repeat[c.name].seconds * 1000)} ms`).join(', '),
    );
    out.push(repeat);
  }
  return out;
}

function maxRelativeDifference(a, b) {
  let difference = 0;
  let magnitude = 0;
  for (let i = 0; i < a.length; i++) {
    difference = Math.max(difference, Math.abs(a[i] - b[i]));
    magnitude = Math.max(magnitude, Math.abs(b[i]));
  }
  return difference / Math.max(magnitude, 1e-12);
}

/** Head training on precomputed features: the addon against tfjs CPU and WebAssembly. */
async function benchHead(config, library, tf, spec) {
  const { lib } = library;
  const file = ensureBackbone(config, spec.backbone);
  const { backbone, trainer } = await addonTrainer(lib, file, undefined, false);
  const featureDim = backbone.featureDim;
  const { batch } = spec;
  const label = `head ${featureDim} features b${batch}`;
  log(`${label}: building the tfjs heads`);
  const featureBatch = {
    features: normalValues(batch * featureDim, 11),
    shape: [batch, featureDim],
    ...batchLabels(batch),
  };
  const addon = { name: 'addon', step: () => trainer.trainStep(featureBatch), warmup: config.warmup };
  const cpu = { ...(await tfjsHeadContender(tf, 'cpu', { featureDim, batch })), warmup: config.warmup };
  const wasm = { ...(await tfjsHeadContender(tf, 'wasm', { featureDim, batch })), warmup: config.warmup };
  const repeats = await interleave(label, [addon, cpu, wasm], {
    repeats: config.repeats,
    steps: config.js.headSteps,
    monitorMs: config.monitorMs,
  });
  return { label, featureDim, batch, backbone: file, parameters: cpu.parameters, repeats };
}

/** ResNet-18 train steps, the whole network trained on both sides: the addon against tfjs CPU. */
async function benchConvTraining(config, library, tf, spec) {
  const { lib } = library;
  const file = ensureBackbone(config, 'resnet18');
  const { size, batch } = spec;
  const label = `resnet18 ${size}px b${batch}`;
  const { trainer, backboneParameters } = await addonTrainer(lib, file, size, true);
  const imageBatch = {
    images: normalValues(batch * 3 * size * size, 12),
    shape: [batch, 3, size, size],
    ...batchLabels(batch),
  };
  log(`${label}: building the tfjs ResNet-18 (a tfjs CPU train step takes seconds)`);
  const cpu = await tfjsConvContender(tf, 'cpu', spec);
  if (cpu.backboneParameters !== backboneParameters) {
    fail(
      `the tfjs ResNet-18 has ${cpu.backboneParameters} parameters, the TorchScript one ${backboneParameters}`,
    );
  }
  const contenders = [
    { name: 'addon-train', step: () => trainer.trainStep(imageBatch), warmup: config.warmup },
    { ...cpu, warmup: config.js.convWarmup },
  ];
  const train = await interleave(`${label} train`, contenders, {
    repeats: config.js.convRepeats,
    steps: 1,
    monitorMs: config.monitorMs,
  });
  // The WebAssembly backend has no Conv2DBackpropFilter kernel, so it cannot train a convolution: its forward
  // pass is compared with the addon's evaluate (eval mode, no autograd) instead.
  const { levels } = batchLabels(batch);
  const evalBatch = { images: imageBatch.images, shape: imageBatch.shape, levels };
  const wasm = await tfjsForwardContender(tf, 'wasm', spec);
  const forward = await interleave(
    `${label} forward`,
    [
      { name: 'addon-evaluate', step: () => trainer.evaluate(evalBatch), warmup: config.warmup },
      { ...wasm, warmup: config.warmup },
    ],
    { repeats: config.repeats, steps: config.js.forwardSteps, monitorMs: config.monitorMs },
  );
  const wasmConvGradient = Boolean(tf.getKernel('Conv2DBackpropFilter', 'wasm'));
  return {
    label,
    size,
    batch,
    backbone: file,
    backboneParameters,
    parameters: cpu.parameters,
    train,
    forward,
    wasmConvGradient,
  };
}

/** Backbone inference on the same weights: the addon's TorchScript file against its ONNX export. */
async function benchOnnx(config, library, ort, spec) {
  const { lib } = library;
  const file = ensureBackbone(config, 'resnet18');
  const onnxFile = ensureOnnx(config, file);
  const { size, batch } = spec;
  const label = `resnet18 ${size}px b${batch} inference`;
  const backbone = await lib.Backbone.load(file, { inputSize: size });
  await backbone.freeze();
  await backbone.setTraining(false);
  const session = await ort.InferenceSession.create(onnxFile, {
    intraOpNumThreads: JS_THREADS,
    interOpNumThreads: 1,
    graphOptimizationLevel: 'all',
  });
  try {
    const images = normalValues(batch * 3 * size * size, 13);
    const input = { images: new ort.Tensor('float32', images, [batch, 3, size, size]) };
    const addonFeatures = await backbone.features({ images, shape: [batch, 3, size, size] });
    const ortFeatures = (await session.run(input)).features.data;
    const difference = maxRelativeDifference(ortFeatures, addonFeatures);
    if (!(difference <= ONNX_TOLERANCE)) {
      fail(`${onnxFile} does not reproduce ${file}: features differ by ${difference} of their largest value`);
    }
    // The same weights as StenosisPredictor runs them: folded into the graph by optimize_for_inference.
    const optimized = await lib.Backbone.load(file, { inputSize: size });
    await optimized.optimizeForInference();
    const optimizedDifference = maxRelativeDifference(
      await optimized.features({ images, shape: [batch, 3, size, size] }),
      addonFeatures,
    );
    const repeats = await interleave(
      label,
      [
        {
          name: 'addon-features',
          step: () => backbone.features({ images, shape: [batch, 3, size, size] }),
          warmup: config.warmup,
        },
        {
          name: 'addon-optimized',
          step: () => optimized.features({ images, shape: [batch, 3, size, size] }),
          warmup: config.warmup,
        },
        { name: 'onnxruntime', step: () => session.run(input), warmup: config.warmup },
      ],
      { repeats: config.repeats, steps: config.js.forwardSteps, monitorMs: config.monitorMs },
    );
    return {
      label,
      size,
      batch,
      backbone: file,
      onnx: onnxFile,
      difference,
      optimizedDifference,
      ortVersion: ort.env.versions?.common,
      repeats,
    };
  } finally {
    await session.release();
  }
}

/**
 * All JavaScript-runtime measurements, on one thread each (see the top of this file); the addon's thread count
 * is restored afterwards.
 */
async function benchJsBackends(config, library) {
  const { lib } = library;
  const { tf, ort } = loadRuntimes();
  lib.setNumThreads(JS_THREADS);
  try {
    const head = await benchHead(config, library, tf, config.js.head);
    const conv = await benchConvTraining(config, library, tf, config.js.conv);
    const onnx = await benchOnnx(config, library, ort, config.js.inference);
    return { threads: JS_THREADS, tfjs: tf.version.tfjs, head, conv, onnx };
  } finally {
    tf.disposeVariables();
    lib.setNumThreads(config.threads);
  }
}

/** Per-repeat figures of one contender: batch / median step seconds, or median milliseconds. */
function perRepeat(repeats, name, pick) {
  return repeats.map((r) => pick(r[name]));
}

/**
 * The rows of benchJsBackends' result, for run.js's table: each pairs the addon (ours) with a JavaScript runtime
 * (reference), figures of the same repeats.
 */
function jsBackendRows(result) {
  const rows = [];
  const threads = plural(result.threads, 'thread');
  const optimizer =
    'tfjs: tf.train.adam plus the decoupled decay p *= 1 - lr wd applied by hand (tfjs has no AdamW), ' +
    'addon: AdamW';
  // Throughput rows: images/s of each side, the ratio addon / other from the step times of the same repeat.
  const throughput = (repeats, batch, ours, reference) => ({
    ours: {
      label: ours.label,
      value: median(perRepeat(repeats, ours.name, (c) => batch / c.seconds)),
      unit: 'img/s',
    },
    reference: {
      label: reference.label,
      value: median(perRepeat(repeats, reference.name, (c) => batch / c.seconds)),
      unit: 'img/s',
    },
    perRepeat: repeats.map((r) => r[reference.name].seconds / r[ours.name].seconds),
  });
  // Latency rows: milliseconds per batch; the ratio other / addon, so that above 1 means the addon is faster.
  const latency = (repeats, ours, reference) => ({
    ours: {
      label: ours.label,
      value: median(perRepeat(repeats, ours.name, (c) => c.seconds * 1000)),
      unit: 'ms',
    },
    reference: {
      label: reference.label,
      value: median(perRepeat(repeats, reference.name, (c) => c.seconds * 1000)),
      unit: 'ms',
    },
    perRepeat: repeats.map((r) => r[reference.name].seconds / r[ours.name].seconds),
  });

  const { head } = result;
  const headCommon =
    `${head.featureDim} features + ${EMBEDDING}-d level embedding, head ${HIDDEN.join('/')}, ` +
    `${head.parameters} parameters, batch ${head.batch}, dropout ${DROPOUT}, class weights ` +
    `${HEAD_CLASS_WEIGHTS.join('/')}; ${optimizer}; embedding as one-hot x table on tfjs; ${threads}`;
  for (const [backend, title] of [
    ['cpu', 'CPU (pure JS)'],
    ['wasm', 'WebAssembly'],
  ]) {
    const name = `tfjs-${backend}`;
    rows.push({
      id: `tfjs-${backend}-head-train`,
      group: head.label,
      title: `head train step vs tfjs ${title}`,
      ...throughput(
        head.repeats,
        head.batch,
        { name: 'addon', label: 'addon' },
        { name, label: `tfjs ${backend}` },
      ),
      ratioDefinition: `addon head-step images/s / tfjs ${backend} backend head-step images/s`,
      goal: backend === 'cpu' ? { min: 10, text: '>= 10.0' } : null,
      note: `the addon trains on a feature batch (Trainer.trainStep({ features })); ${headCommon}`,
    });
  }
  const delay = (name, key) => median(perRepeat(head.repeats, name, (c) => c.delay[key]));
  for (const backend of ['cpu', 'wasm']) {
    const name = `tfjs-${backend}`;
    rows.push({
      id: `tfjs-${backend}-event-loop`,
      group: head.label,
      title: `event-loop p99 tfjs ${backend}/addon`,
      ours: { label: 'addon p99', value: delay('addon', 'p99'), unit: 'ms' },
      reference: { label: `tfjs ${backend} p99`, value: delay(name, 'p99'), unit: 'ms' },
      perRepeat: head.repeats.map((r) => r[name].delay.p99 / r.addon.delay.p99),
      ratioDefinition: `p99 event-loop delay while tfjs ${backend} trains the head / while the addon trains it`,
      goal: null,
      note:
        `p50/p99/max: tfjs ${backend} ${fmt(delay(name, 'p50'))}/${fmt(delay(name, 'p99'))}/` +
        `${fmt(delay(name, 'max'))} ms, addon ${fmt(delay('addon', 'p50'))}/${fmt(delay('addon', 'p99'))}/` +
        `${fmt(delay('addon', 'max'))} ms; tfjs computes on the main thread, the addon on its engine thread ` +
        '(monitorEventLoopDelay, timer interval included)',
    });
  }

  const { conv } = result;
  const convCommon =
    `${conv.size} px, batch ${conv.batch}; the whole ResNet-18 (${conv.backboneParameters} parameters, ` +
    `torchvision layout, random weights) + embedding + head trained on both sides, batch norm in train mode; ` +
    `tfjs NHWC, addon NCHW; ${threads}`;
  rows.push({
    id: 'tfjs-cpu-conv-train',
    group: conv.label,
    title: 'train step vs tfjs CPU (pure JS)',
    ...throughput(
      conv.train,
      conv.batch,
      { name: 'addon-train', label: 'addon' },
      {
        name: 'tfjs-cpu-train',
        label: 'tfjs cpu',
      },
    ),
    ratioDefinition: 'addon train-step images/s / tfjs cpu backend train-step images/s',
    goal: { min: 10, text: '>= 10.0' },
    note: `${convCommon}; ${optimizer}; ${plural(conv.train.length, 'repeat')} of one step each`,
  });
  rows.push({
    id: 'tfjs-wasm-forward',
    group: conv.label,
    title: 'evaluate vs tfjs WebAssembly forward',
    ...latency(
      conv.forward,
      { name: 'addon-evaluate', label: 'addon' },
      {
        name: 'tfjs-wasm-forward',
        label: 'tfjs wasm',
      },
    ),
    ratioDefinition: 'tfjs wasm forward ms / addon evaluate ms (eval mode, no autograd, to probabilities)',
    goal: null,
    note:
      `no train step: tfjs-backend-wasm ${result.tfjs} ${conv.wasmConvGradient ? 'has' : 'lacks'} the ` +
      `Conv2DBackpropFilter kernel (convolution weight gradients), so forward passes are compared; ` +
      `ResNet-18 + head, ${conv.size} px, batch ${conv.batch}, ${threads}`,
  });

  const { onnx } = result;
  const onnxRow = latency(
    onnx.repeats,
    { name: 'addon-features', label: 'addon' },
    {
      name: 'onnxruntime',
      label: 'onnxruntime',
    },
  );
  const faster = onnxRow.ours.value <= onnxRow.reference.value ? 'the addon' : 'onnxruntime-node';
  const factor =
    Math.max(onnxRow.ours.value, onnxRow.reference.value) /
    Math.min(onnxRow.ours.value, onnxRow.reference.value);
  rows.push({
    id: 'onnxruntime-forward',
    group: onnx.label,
    title: 'backbone forward vs onnxruntime',
    ...onnxRow,
    ratioDefinition: 'onnxruntime-node forward ms / addon Backbone.features ms, same weights and batch',
    goal: null,
    note:
      `${faster} is faster (${fmt(factor)}x); ResNet-18 features of ${onnx.batch} images at ${onnx.size} px, ` +
      `eval mode; the TorchScript file and its ONNX export (scripts/export_onnx.py) agree within ` +
      `${onnx.difference.toExponential(1)} of the largest feature; onnxruntime-node ${onnx.ortVersion}, ` +
      `graph optimization 'all'; ${threads}`,
  });
  const optimizedRow = latency(
    onnx.repeats,
    { name: 'addon-optimized', label: 'addon optimized' },
    { name: 'onnxruntime', label: 'onnxruntime' },
  );
  rows.push({
    id: 'onnxruntime-forward-optimized',
    group: onnx.label,
    title: 'optimized forward vs onnxruntime',
    ...optimizedRow,
    ratioDefinition: 'onnxruntime-node forward ms / addon ms after Backbone.optimizeForInference()',
    goal: null,
    note:
      `what StenosisPredictor runs: TorchScript optimize_for_inference (weights folded, batch norm merged into ` +
      `convolutions); features within ${onnx.optimizedDifference.toExponential(1)} of the unoptimized ones; ` +
      `same batch and ${threads}`,
  });
  return rows;
}

module.exports = { benchJsBackends, jsBackendRows };
