'use strict';
// The fast-path rows of the benchmark:
//   - precision: the addon's train step in fp32 and bf16 against Python PyTorch's fp32 step and its bf16 step
//     written as the PyTorch documentation shows (torch.autocast), four contenders alternating step by step;
//   - cached features: an epoch of head training on features computed once, against the same epoch recomputing
//     them through the frozen backbone (eval mode) at every batch.
const {
  UNFREEZE,
  EMBEDDING,
  LEARNING_RATE,
  WEIGHT_DECAY,
  DROPOUT,
  CLASS_WEIGHTS,
  SETTLE_MS,
  JsonProcess,
  log,
  sleep,
  median,
  elapsedSeconds,
  rotate,
  ensureBackbone,
  imageBatch,
  stepServerArgs,
  threadCount,
} = require('./common');

// The goals for the addon's bf16 step against Python's fp32 step, measured at 224 px, batch 32.
const BF16_GOALS = { resnet152: 2.5, vit: 3 };

async function stepSeconds(trainer, batch) {
  const start = process.hrtime.bigint();
  await trainer.trainStep(batch);
  return elapsedSeconds(start);
}

function firstLine(message) {
  return (
    String(message)
      .split('\n')
      .map((line) => line.trim())
      .filter(Boolean)
      .pop() ?? ''
  );
}

/** The addon's model at a precision, or the reason it cannot train at it (the CLI's trial step). */
async function addonTrainer(lib, file, spec, precision, batch) {
  const backbone = await lib.Backbone.load(file, { inputSize: spec.size });
  await backbone.unfreezeLast(UNFREEZE);
  const classifier = await lib.StenosisClassifier.create({
    backbone,
    levelEmbedding: new lib.LevelEmbedding({ dimension: EMBEDDING }),
    dropout: DROPOUT,
    seed: 0,
    precision,
    // What --channels-last does: convolutional backbones only.
    memoryFormat: precision === 'bf16' && backbone.metadata.convolutional ? 'channels_last' : 'contiguous',
  });
  const trainer = await lib.Trainer.create(classifier, {
    learningRate: LEARNING_RATE,
    weightDecay: WEIGHT_DECAY,
    classWeights: CLASS_WEIGHTS,
  });
  if (precision !== 'fp32') {
    const failure = await trainer.trialStep(batch);
    if (failure) return { failure: firstLine(failure) };
  }
  return { trainer, channelsLast: classifier.memoryFormat === 'channels_last' };
}

/** fp32 and bf16 train steps of the addon and of Python PyTorch on one backbone, alternating step by step. */
async function benchPrecision(config, library, spec) {
  const { lib } = library;
  const label = `${spec.name} ${spec.size}px b${spec.batch}`;
  const file = ensureBackbone(config, spec.name);
  const batch = imageBatch(spec, 3);
  const contenders = {};
  const failures = {};
  let channelsLast = false;
  const pythons = [];
  try {
    for (const precision of ['fp32', 'bf16']) {
      log(`${label}: ${precision} steps, addon and PyTorch (${config.warmup} warm-up steps each)`);
      const python = new JsonProcess(
        config.python,
        stepServerArgs(config, file, spec, precision),
        `scripts/bench_step.py --precision ${precision}`,
      );
      pythons.push(python);
      try {
        await python.next();
        contenders[`python-${precision}`] = async () =>
          (await python.request({ cmd: 'steps', steps: 1 })).stepSeconds[0];
      } catch (error) {
        failures[`python-${precision}`] = firstLine(error.message);
      }
      const addon = await addonTrainer(lib, file, spec, precision, batch);
      if (addon.failure) {
        failures[`addon-${precision}`] = addon.failure;
        continue;
      }
      for (let i = 0; i < config.warmup; i++) await addon.trainer.trainStep(batch);
      contenders[`addon-${precision}`] = () => stepSeconds(addon.trainer, batch);
      if (precision === 'bf16') channelsLast = addon.channelsLast;
    }
    const names = Object.keys(contenders);
    const repeats = [];
    for (let r = 0; r < config.repeats; r++) {
      await sleep(SETTLE_MS);
      const seconds = Object.fromEntries(names.map((name) => [name, []]));
      for (let i = 0; i < config.steps; i++) {
        for (const name of rotate(names, r + i)) seconds[name].push(await contenders[name]());
      }
      repeats.push(Object.fromEntries(names.map((name) => [name, median(seconds[name])])));
      log(
        `${label}: repeat ${r + 1}/${config.repeats}: ` +
          names.map((name) => `${name} ${(spec.batch / repeats[r][name]).toFixed(2)} img/s`).join(', '),
      );
    }
    return { label, spec, file, repeats, failures, channelsLast };
  } finally {
    for (const python of pythons) await python.close();
  }
}

/**
 * One epoch of head training on cached features against the same epoch through the frozen backbone held in eval
 * mode (nothing of it trainable), which recomputes the features at every batch. The features are computed once
 * before the timing, as fit() does; that pass costs one recomputing epoch's forward passes.
 */
async function benchFeatureCache(config, library, spec, batches) {
  const { lib } = library;
  const label = `${spec.name} ${spec.size}px b${spec.batch}`;
  const file = ensureBackbone(config, spec.name);
  const backbone = await lib.Backbone.load(file, { inputSize: spec.size });
  await backbone.freeze();
  const classifier = await lib.StenosisClassifier.create({
    backbone,
    levelEmbedding: new lib.LevelEmbedding({ dimension: EMBEDDING }),
    dropout: DROPOUT,
    seed: 0,
    frozenBackboneEval: true,
  });
  const trainer = await lib.Trainer.create(classifier, {
    learningRate: LEARNING_RATE,
    weightDecay: WEIGHT_DECAY,
    classWeights: CLASS_WEIGHTS,
  });
  const images = Array.from({ length: batches }, (_, i) => imageBatch(spec, 10 + i));
  const started = process.hrtime.bigint();
  const features = [];
  for (const batch of images) {
    features.push({
      features: await classifier.features(batch),
      shape: [spec.batch, backbone.featureDim],
      levels: batch.levels,
      labels: batch.labels,
    });
  }
  const featureSeconds = elapsedSeconds(started);
  const epoch = async (list) => {
    const start = process.hrtime.bigint();
    for (const batch of list) await trainer.trainStep(batch);
    return elapsedSeconds(start);
  };
  await epoch(images.slice(0, 1));
  await epoch(features);
  const repeats = [];
  for (let r = 0; r < config.repeats; r++) {
    await sleep(SETTLE_MS);
    const repeat = {};
    for (const kind of rotate(['recompute', 'cached'], r)) {
      repeat[kind] = await epoch(kind === 'cached' ? features : images);
    }
    repeats.push(repeat);
  }
  log(
    `${label}: cached-feature epoch ${median(repeats.map((r) => r.recompute / r.cached)).toFixed(1)}x faster`,
  );
  return { label, spec, batches, featureDim: backbone.featureDim, featureSeconds, repeats };
}

/** The rows of benchPrecision and benchFeatureCache results, in bench/run.js's row format. */
function fastPathRows(config, precisionResults, cacheResult) {
  const rows = [];
  for (const p of precisionResults) {
    const n = p.spec.batch;
    const has = (name) => p.repeats.length > 0 && name in p.repeats[0];
    const ips = (name) => median(p.repeats.map((r) => n / r[name]));
    const figure = (name, who) => ({ label: who, value: has(name) ? ips(name) : NaN, unit: 'img/s' });
    const common = `last ${UNFREEZE} tensors trained, ${threadCount(config.threads)}, steps alternating`;
    const unavailable = (names) =>
      names
        .filter((name) => p.failures[name])
        .map((name) => `${name} fails: ${p.failures[name]}`)
        .join('; ');
    const pair = (id, title, ours, reference, goal, definition, note) => {
      const missing = unavailable([ours[0], reference[0]]);
      rows.push({
        id,
        group: p.label,
        title,
        ours: figure(ours[0], ours[1]),
        reference: figure(reference[0], reference[1]),
        perRepeat: missing ? [NaN] : p.repeats.map((r) => r[reference[0]] / r[ours[0]]),
        ratioDefinition: definition,
        goal,
        note: missing || note,
      });
    };
    const bf16Goal = config.mode === 'full' ? BF16_GOALS[p.spec.name] : undefined;
    const layout = p.channelsLast ? 'autocast + channels-last' : 'autocast';
    pair(
      'bf16-vs-python-fp32',
      'addon bf16 vs PyTorch fp32',
      ['addon-bf16', 'addon bf16'],
      ['python-fp32', 'PyTorch fp32'],
      bf16Goal ? { min: bf16Goal, text: `>= ${bf16Goal.toFixed(2)}` } : null,
      'addon bf16 images/s / Python fp32 images/s',
      `addon: backbone under bf16 ${layout}; PyTorch: the plain fp32 loop; ${common}`,
    );
    pair(
      'bf16-vs-python-bf16',
      'addon bf16 vs PyTorch bf16',
      ['addon-bf16', 'addon bf16'],
      ['python-bf16', 'PyTorch bf16'],
      { min: 1, text: '>= 1.00' },
      'addon bf16 images/s / Python bf16 images/s',
      `PyTorch: torch.autocast('cpu', bfloat16) around the backbone; addon: ${layout}; ${common}`,
    );
    pair(
      'bf16-vs-fp32-addon',
      'addon bf16 vs addon fp32',
      ['addon-bf16', 'addon bf16'],
      ['addon-fp32', 'addon fp32'],
      null,
      'addon bf16 images/s / addon fp32 images/s',
      `what --precision bf16${p.channelsLast ? ' --channels-last' : ''} buys; ${common}`,
    );
  }
  if (cacheResult) {
    const c = cacheResult;
    const samples = c.batches * c.spec.batch;
    const perSecond = (kind) => median(c.repeats.map((r) => samples / r[kind]));
    rows.push({
      id: 'cached-features',
      group: c.label,
      title: 'head epoch: cached vs recomputed',
      ours: { label: 'cached', value: perSecond('cached'), unit: 'samples/s' },
      reference: { label: 'recomputed', value: perSecond('recompute'), unit: 'samples/s' },
      perRepeat: c.repeats.map((r) => r.recompute / r.cached),
      ratioDefinition:
        'epoch seconds recomputing features through the frozen eval-mode backbone / on cached features',
      goal: { min: 20, text: '>= 20.0' },
      note:
        `${samples} samples an epoch, ${c.featureDim} features, head + embedding trained; computing the cache ` +
        `once took ${c.featureSeconds.toFixed(2)} s (not in either epoch)`,
    });
  }
  return rows;
}

module.exports = { benchPrecision, benchFeatureCache, fastPathRows };
