// The addon's model rebuilt in TensorFlow.js ops, for the pure-JavaScript rows of the benchmark: the stenosis
// head (level embedding, Linear-LayerNorm-GELU-Dropout twice, Linear to three classes) and a torchvision-layout
// ResNet-18 feature extractor, with class-weighted cross-entropy and AdamW-style training.
//
// Ops rather than tfjs-layers: one dependency fewer, and every shape, padding and initialisation stays visible
// for comparison with the C++ model (native/core/classifier.cc) and torchvision's ResNet.
'use strict';

const LEVELS = 5;
const CLASSES = 3;
// torch.nn.LayerNorm and BatchNorm2d defaults.
const LAYER_NORM_EPSILON = 1e-5;
const BATCH_NORM_EPSILON = 1e-5;
const BATCH_NORM_MOMENTUM = 0.1;
// ResNet-18's four stages: output channels and the stride of the first block; two basic blocks each.
const RESNET18_STAGES = [
  [64, 1],
  [128, 2],
  [256, 2],
  [512, 2],
];
const RESNET18_FEATURES = 512;

/** torch.nn.Linear's default initialisation range, U(-1/sqrt(fan_in), 1/sqrt(fan_in)), for weight and bias. */
function linear(tf, inFeatures, outFeatures, seed) {
  const bound = 1 / Math.sqrt(inFeatures);
  return {
    weight: tf.variable(tf.randomUniform([inFeatures, outFeatures], -bound, bound, 'float32', seed)),
    bias: tf.variable(tf.randomUniform([outFeatures], -bound, bound, 'float32', seed + 1)),
  };
}

function layerNormParams(tf, size) {
  return { gamma: tf.variable(tf.ones([size])), beta: tf.variable(tf.zeros([size])) };
}

/**
 * The head and level embedding of StenosisClassifier for features of `featureDim` values.
 * @param hidden the two hidden widths (the classifier's default is [512, 256]).
 */
function createHead(tf, { featureDim, embedding, hidden, seed }) {
  return {
    embedding: tf.variable(tf.randomNormal([LEVELS, embedding], 0, 1, 'float32', seed)),
    fc1: linear(tf, featureDim + embedding, hidden[0], seed + 10),
    norm1: layerNormParams(tf, hidden[0]),
    fc2: linear(tf, hidden[0], hidden[1], seed + 20),
    norm2: layerNormParams(tf, hidden[1]),
    fc3: linear(tf, hidden[1], CLASSES, seed + 30),
  };
}

function dense(tf, x, p) {
  return tf.add(tf.matMul(x, p.weight), p.bias);
}

function layerNorm(tf, x, p) {
  const { mean, variance } = tf.moments(x, -1, true);
  return tf.add(
    tf.mul(tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, LAYER_NORM_EPSILON))), p.gamma),
    p.beta,
  );
}

/** torch.nn.GELU's default, the exact erf form (tfjs has no GELU op). */
function gelu(tf, x) {
  return tf.mul(tf.mul(x, 0.5), tf.add(tf.erf(tf.mul(x, Math.SQRT1_2)), 1));
}

/**
 * Logits [B, 3] of features [B, featureDim] and one-hot levels [B, 5]. The embedding lookup is a product with the
 * one-hot rows, the same values as a gather: the WebAssembly backend has no kernel for a gather's gradient
 * (UnsortedSegmentSum), and both backends run the same ops.
 */
function headLogits(tf, head, features, levelsOneHot, { training, dropout }) {
  const drop = (x) => (training && dropout > 0 ? tf.dropout(x, dropout) : x);
  let x = tf.concat([features, tf.matMul(levelsOneHot, head.embedding)], 1);
  x = drop(gelu(tf, layerNorm(tf, dense(tf, x, head.fc1), head.norm1)));
  x = drop(gelu(tf, layerNorm(tf, dense(tf, x, head.fc2), head.norm2)));
  return dense(tf, x, head.fc3);
}

/** torch.nn.CrossEntropyLoss(weight): the weighted mean, sum(w_i * nll_i) / sum(w_i). */
function weightedCrossEntropy(tf, logits, labelsOneHot, sampleWeights) {
  const picked = tf.sum(tf.mul(tf.logSoftmax(logits), labelsOneHot), 1);
  return tf.div(tf.neg(tf.sum(tf.mul(picked, sampleWeights))), tf.sum(sampleWeights));
}

/** A convolution kernel [k, k, in, out] (tfjs's NHWC layout) with torchvision's kaiming-normal (fan out). */
function convParams(tf, k, inChannels, outChannels, seed) {
  const std = Math.sqrt(2 / (outChannels * k * k));
  return { kernel: tf.variable(tf.randomNormal([k, k, inChannels, outChannels], 0, std, 'float32', seed)) };
}

function batchNormParams(tf, channels) {
  return {
    gamma: tf.variable(tf.ones([channels])),
    beta: tf.variable(tf.zeros([channels])),
    runningMean: tf.variable(tf.zeros([channels]), false),
    runningVariance: tf.variable(tf.ones([channels]), false),
  };
}

/** torchvision's resnet18 with its classifier replaced by identity: 512 pooled features per image. */
function createResnet18(tf, seed) {
  let next = seed;
  const conv = (k, cin, cout) => convParams(tf, k, cin, cout, next++);
  const model = { stem: { conv: conv(7, 3, 64), bn: batchNormParams(tf, 64) }, stages: [] };
  let inChannels = 64;
  for (const [channels, stride] of RESNET18_STAGES) {
    const blocks = [];
    for (let b = 0; b < 2; b++) {
      const blockStride = b === 0 ? stride : 1;
      const block = {
        stride: blockStride,
        conv1: conv(3, inChannels, channels),
        bn1: batchNormParams(tf, channels),
        conv2: conv(3, channels, channels),
        bn2: batchNormParams(tf, channels),
        down: null,
      };
      if (blockStride !== 1 || inChannels !== channels) {
        block.down = { conv: conv(1, inChannels, channels), bn: batchNormParams(tf, channels) };
      }
      blocks.push(block);
      inChannels = channels;
    }
    model.stages.push(blocks);
  }
  return model;
}

/**
 * Batch norm in train mode normalizes with the batch's statistics and queues them for the running averages,
 * which are updated after the gradient pass (a variable must not change while the tape still reads it).
 */
function batchNorm(tf, x, p, state) {
  if (!state.training)
    return tf.batchNorm(x, p.runningMean, p.runningVariance, p.beta, p.gamma, BATCH_NORM_EPSILON);
  const { mean, variance } = tf.moments(x, [0, 1, 2]);
  state.statistics.push({ p, mean: tf.keep(mean), variance: tf.keep(variance), count: x.size / x.shape[3] });
  return tf.batchNorm(x, mean, variance, p.beta, p.gamma, BATCH_NORM_EPSILON);
}

/** Pooled features [B, 512] of NHWC images; torch's symmetric paddings given as numbers. */
function resnet18Features(tf, model, images, state) {
  const convBn = (x, c, bn, stride, pad) => batchNorm(tf, tf.conv2d(x, c.kernel, stride, pad), bn, state);
  let x = tf.relu(convBn(images, model.stem.conv, model.stem.bn, 2, 3));
  x = tf.maxPool(x, 3, 2, 1);
  for (const blocks of model.stages) {
    for (const block of blocks) {
      const out = convBn(
        tf.relu(convBn(x, block.conv1, block.bn1, block.stride, 1)),
        block.conv2,
        block.bn2,
        1,
        1,
      );
      const identity = block.down ? convBn(x, block.down.conv, block.down.bn, block.stride, 0) : x;
      x = tf.relu(tf.add(out, identity));
    }
  }
  return tf.mean(x, [1, 2]);
}

/** Folds the batch statistics of the last train-mode pass into the running averages, as torch does. */
function updateRunningStatistics(tf, state) {
  tf.tidy(() => {
    for (const { p, mean, variance, count } of state.statistics) {
      // torch keeps the unbiased variance in running_var.
      const unbiased = tf.mul(variance, count / Math.max(1, count - 1));
      p.runningMean.assign(
        tf.add(tf.mul(p.runningMean, 1 - BATCH_NORM_MOMENTUM), tf.mul(mean, BATCH_NORM_MOMENTUM)),
      );
      p.runningVariance.assign(
        tf.add(tf.mul(p.runningVariance, 1 - BATCH_NORM_MOMENTUM), tf.mul(unbiased, BATCH_NORM_MOMENTUM)),
      );
    }
  });
  for (const { mean, variance } of state.statistics) tf.dispose([mean, variance]);
  state.statistics = [];
}

/** Every trainable variable in a model object, in a fixed order. */
function trainableVariables(model) {
  const out = [];
  const visit = (value) => {
    if (value === null || typeof value !== 'object') return;
    if (typeof value.assign === 'function' && 'trainable' in value) {
      if (value.trainable) out.push(value);
      return;
    }
    for (const item of Array.isArray(value) ? value : Object.values(value)) visit(item);
  };
  visit(model);
  return out;
}

/**
 * A train step over `variables`: gradients of `loss()`, then torch.optim.AdamW's update, which tfjs lacks:
 * tf.train.adam's update after the decoupled decay p <- p (1 - lr wd) applied by hand, on the weights the
 * gradients were taken at (the order AdamW uses).
 * @returns a function that runs one step and returns the loss.
 */
function adamWStep(tf, variables, loss, { learningRate, weightDecay, betas, eps, afterGradients }) {
  const optimizer = tf.train.adam(learningRate, betas[0], betas[1], eps);
  const decay = 1 - learningRate * weightDecay;
  return () => {
    const { value, grads } = tf.variableGrads(loss, variables);
    afterGradients?.();
    tf.tidy(() => {
      for (const v of variables) v.assign(tf.mul(v, decay));
    });
    optimizer.applyGradients(grads);
    tf.dispose(grads);
    const result = value.dataSync()[0];
    value.dispose();
    return result;
  };
}

function parameterCount(variables) {
  return variables.reduce((total, v) => total + v.size, 0);
}

module.exports = {
  LEVELS,
  CLASSES,
  RESNET18_FEATURES,
  createHead,
  headLogits,
  weightedCrossEntropy,
  createResnet18,
  resnet18Features,
  updateRunningStatistics,
  trainableVariables,
  adamWStep,
  parameterCount,
};
