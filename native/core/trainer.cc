#include "core/trainer.h"

#include <ATen/CPUGeneratorImpl.h>

#include <cstdio>
#include <mutex>
#include <sstream>
#include <string>
#include <type_traits>

#include "core/checkpoint.h"
#include "core/error.h"

namespace stenosis {
namespace {

void CheckLevelsAndLabels(int64_t batch, const torch::Tensor& levels, const torch::Tensor& labels) {
  if (levels.dim() != 1 || levels.size(0) != batch) {
    throw Error("ERR_INVALID_ARG",
                "levels must have shape [" + std::to_string(batch) + "], got " + c10::str(levels.sizes()));
  }
  if (levels.numel() > 0 &&
      (levels.min().item<int64_t>() < 0 || levels.max().item<int64_t>() >= kNumLevels)) {
    throw Error("ERR_INVALID_ARG", "levels must be in [0, 5) (L1/L2 .. L5/S1)");
  }
  if (labels.defined()) {
    if (labels.dim() != 1 || labels.size(0) != batch) {
      throw Error("ERR_INVALID_ARG",
                  "labels must have shape [" + std::to_string(batch) + "], got " + c10::str(labels.sizes()));
    }
    if (labels.numel() > 0 &&
        (labels.min().item<int64_t>() < 0 || labels.max().item<int64_t>() >= kNumClasses)) {
      throw Error("ERR_INVALID_ARG", "labels must be in [0, 3) (normal/mild, moderate, severe)");
    }
  }
}

// The optimizer's per-parameter state is keyed by the parameter's TensorImpl: printed as a string in
// libtorch 1.x (what c10::guts::to_string gave, since removed), the pointer itself in libtorch 2.x.
using OptimizerStateKey =
    std::decay_t<decltype(std::declval<const torch::optim::Optimizer&>().state())>::key_type;

template <typename Key = OptimizerStateKey>
Key StateKey(const torch::Tensor& param) {
  if constexpr (std::is_same_v<Key, std::string>) {
    std::ostringstream out;
    out << static_cast<const void*>(param.unsafeGetTensorImpl());
    return out.str();
  } else {
    return param.unsafeGetTensorImpl();
  }
}

constexpr double kSmallestLossScale = 1.0 / (1 << 24);
constexpr double kLargestLossScale = 340282366920938463463374607431768211456.0;  // 2^128

}  // namespace

Trainer::Trainer(std::shared_ptr<StenosisClassifier> model, TrainerOptions options)
    : model_(std::move(model)), options_(std::move(options)) {
  if (!options_.class_weights.empty()) {
    if (static_cast<int64_t>(options_.class_weights.size()) != kNumClasses) {
      throw Error("ERR_INVALID_ARG",
                  "class weights must hold 3 values, got " + std::to_string(options_.class_weights.size()));
    }
    class_weights_ = torch::tensor(options_.class_weights, torch::kFloat32).to(model_->device());
  }
  for (const auto& [name, tensor] : model_->NamedParameters(/*trainable_only=*/true)) {
    trainable_names_.push_back(name);
    trainable_.push_back(tensor);
  }
  if (trainable_.empty()) throw Error("ERR_INVALID_ARG", "the model has no trainable parameters");
  if (options_.dynamic_loss_scaling) {
    if (!(options_.initial_loss_scale >= 1 && options_.initial_loss_scale <= kLargestLossScale)) {
      throw Error("ERR_INVALID_ARG",
                  "initial loss scale must be in [1, 2^128] (beyond, every fp32 loss "
                  "overflows), got " +
                      std::to_string(options_.initial_loss_scale));
    }
    if (options_.loss_scale_growth_interval < 1) {
      throw Error("ERR_INVALID_ARG", "loss scale growth interval must be >= 1, got " +
                                         std::to_string(options_.loss_scale_growth_interval));
    }
    loss_scale_.scale = options_.initial_loss_scale;
  }
  optimizer_ =
      std::make_unique<torch::optim::AdamW>(trainable_, torch::optim::AdamWOptions(options_.learning_rate)
                                                            .betas({options_.beta1, options_.beta2})
                                                            .eps(options_.eps)
                                                            .weight_decay(options_.weight_decay));
}

void Trainer::CheckTrainableSetUnchanged() const {
  const auto now = model_->NamedParameters(/*trainable_only=*/true);
  if (now.size() != trainable_.size()) {
    throw Error("ERR_STATE", "the model's trainable parameters changed after the trainer was created (" +
                                 std::to_string(trainable_.size()) + " then, " + std::to_string(now.size()) +
                                 " now); create a new trainer after freezing or unfreezing");
  }
}

void Trainer::CheckBatch(const torch::Tensor& inputs, const torch::Tensor& levels,
                         const torch::Tensor& labels, Input input) const {
  if (input == Input::kImages) {
    if (inputs.dim() != 4 || inputs.size(1) != 3) {
      throw Error("ERR_INVALID_ARG",
                  "images must have shape [batch, 3, height, width], got " + c10::str(inputs.sizes()));
    }
  } else {
    const int64_t dim = model_->backbone().feature_dim();
    if (inputs.dim() != 2 || inputs.size(1) != dim) {
      throw Error("ERR_INVALID_ARG", "features must have shape [batch, " + std::to_string(dim) +
                                         "] (the backbone's feature dimension), got " +
                                         c10::str(inputs.sizes()));
    }
  }
  CheckLevelsAndLabels(inputs.size(0), levels, labels);
}

torch::Tensor Trainer::Logits(const torch::Tensor& inputs, const torch::Tensor& levels, Input input) {
  if (input == Input::kImages) return model_->Forward(inputs, levels);
  return model_->HeadForward(inputs.to(model_->device(), torch::kFloat32), levels);
}

bool Trainer::InferenceOnly() const {
  return inference_only_ || model_->backbone().optimized_for_inference();
}

void Trainer::CheckCanTrain(const char* call) const {
  if (inference_only_) {
    throw Error("ERR_STATE", std::string(call) +
                                 " refused: this trainer was set to inference only (its evaluations run in "
                                 "inference mode); create another trainer to train");
  }
  CheckNotOptimizedForInference("train");
}

void Trainer::SetInferenceOnly() {
  inference_only_ = true;
  // Gradients pending now could never be applied: step() is refused from here on.
  for (auto& p : trainable_) p.mutable_grad().reset();
  gradients_scaled_ = false;
  gradients_overflowed_ = false;
  backward_since_step_ = false;
}

void Trainer::SnapshotBuffers() {
  torch::NoGradGuard no_grad;
  snapshot_targets_.clear();
  size_t kept = 0;
  for (const auto& [name, buffer] : model_->NamedBuffers()) {
    // What a forward pass changes: floating statistics (batch-norm running mean and variance) and one-element
    // counters (num_batches_tracked). Larger integer buffers are index tables that no pass writes.
    if (!buffer.is_floating_point() && buffer.numel() != 1) continue;
    if (kept == buffer_snapshot_.size()) buffer_snapshot_.emplace_back();
    torch::Tensor& copy = buffer_snapshot_[kept++];
    if (!copy.defined() || !copy.sizes().equals(buffer.sizes()) || copy.dtype() != buffer.dtype() ||
        copy.device() != buffer.device()) {
      copy = torch::empty_like(buffer, torch::MemoryFormat::Contiguous);
    }
    copy.copy_(buffer);
    snapshot_targets_.push_back(buffer);
  }
  buffer_snapshot_.resize(kept);
}

void Trainer::RestoreBuffers() {
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < snapshot_targets_.size(); ++i) snapshot_targets_[i].copy_(buffer_snapshot_[i]);
}

void Trainer::CheckNotOptimizedForInference(const char* what) const {
  if (model_->backbone().optimized_for_inference()) {
    throw Error("ERR_STATE", std::string("the backbone was optimized for inference, so its model cannot ") +
                                 what + "; load the backbone again to train");
  }
}

torch::Tensor Trainer::Loss(const torch::Tensor& logits, const torch::Tensor& labels) const {
  auto options = torch::nn::functional::CrossEntropyFuncOptions();
  if (class_weights_.defined()) options.weight(class_weights_);
  return torch::nn::functional::cross_entropy(logits, labels.to(logits.device(), torch::kLong), options);
}

double Trainer::Backward(const torch::Tensor& inputs, const torch::Tensor& levels,
                         const torch::Tensor& labels, bool accumulate, double loss_scale, Input input) {
  if (!labels.defined()) throw Error("ERR_INVALID_ARG", "a training step needs labels");
  if (!(loss_scale > 0) || !std::isfinite(loss_scale)) {
    throw Error("ERR_INVALID_ARG",
                "loss scale must be a finite number > 0, got " + std::to_string(loss_scale));
  }
  CheckBatch(inputs, levels, labels, input);
  CheckTrainableSetUnchanged();
  CheckCanTrain("backward()");
  if (input == Input::kFeatures) {
    const int64_t trainable = model_->backbone().ParameterCount(/*trainable_only=*/true);
    if (trainable > 0) {
      throw Error("ERR_STATE",
                  "a feature batch trains the head alone, but " + std::to_string(trainable) +
                      " backbone parameters are trainable; train on images, or freeze the backbone");
    }
  }
  if (accumulate && options_.dynamic_loss_scaling && !gradients_scaled_ && !gradients_overflowed_) {
    // Gradients already divided by the scale would be mixed with scaled ones.
    bool any = false;
    for (const auto& p : trainable_) any = any || p.grad().defined();
    if (any && !backward_since_step_) {
      throw Error("ERR_STATE",
                  "accumulate right after step() would add to the gradients of the step already taken; "
                  "the first backward pass of a step takes accumulate false");
    }
    if (any) {
      throw Error("ERR_STATE",
                  "cannot accumulate into gradients that were already unscaled (clipped or read); "
                  "clip and read gradients after the last backward pass of a step");
    }
  }
  if (!model_->IsTraining()) model_->SetTraining(true);
  // A train-mode forward pass updates batch-norm running statistics. A pass that fails, or whose loss is not
  // finite, restores them and back-propagates nothing, so the model and the gradients pending stay as they
  // were (a NaN in the statistics would poison every later evaluation). Feature batches run the head alone,
  // which has no buffers.
  const bool images = input == Input::kImages;
  if (images) SnapshotBuffers();
  torch::Tensor loss;
  torch::Tensor predicted;
  double value = 0;
  try {
    torch::Tensor logits = Logits(inputs, levels, input);
    loss = Loss(logits, labels);
    // Both copies to the CPU wait for the forward pass, once (the backward pass is queued after).
    predicted = logits.detach().argmax(/*dim=*/1).to(torch::kCPU, torch::kInt).contiguous();
    value = loss.item<double>();
  } catch (...) {
    if (images) RestoreBuffers();
    throw;
  }
  if (!std::isfinite(value)) {
    if (images) RestoreBuffers();
    throw Error("ERR_NUMERIC", "the training loss is " + std::to_string(value) +
                                   " (not finite); lower the learning rate or check the inputs");
  }
  if (!accumulate) {
    optimizer_->zero_grad();
    gradients_scaled_ = false;
    gradients_overflowed_ = false;
  }
  backward_since_step_ = true;
  last_predictions_.assign(predicted.data_ptr<int32_t>(), predicted.data_ptr<int32_t>() + predicted.numel());
  const double scale = options_.dynamic_loss_scaling ? loss_scale * loss_scale_.scale : loss_scale;
  if (scale == 1.0) {
    loss.backward();
  } else {
    (loss * scale).backward();
  }
  if (options_.dynamic_loss_scaling) gradients_scaled_ = true;
  return value;
}

std::string Trainer::TrialStep(const torch::Tensor& images, const torch::Tensor& levels,
                               const torch::Tensor& labels) {
  CheckBatch(images, levels, labels, Input::kImages);
  CheckCanTrain("trialStep()");
  // Train mode, as training will run: some backbones fail at a precision in one mode only (ViT-B/16's
  // attention takes a bf16-incompatible fast path in eval mode in libtorch 1.13). Buffers (batch-norm
  // statistics) and the CPU generator (dropout) are restored after, and the gradients are computed apart from
  // the ones a backward() left pending, so the trial leaves no trace.
  const bool was_training = model_->IsTraining();
  SnapshotBuffers();
  at::Generator generator = at::detail::getDefaultCPUGenerator();
  torch::Tensor generator_state;
  {
    std::lock_guard<std::mutex> lock(generator.mutex());
    generator_state = generator.get_state();
  }
  model_->SetTraining(true);
  std::string failure;
  try {
    torch::Tensor loss = Loss(model_->Forward(images, levels), labels);
    std::vector<torch::Tensor> differentiated;
    for (const auto& p : trainable_) {
      if (p.requires_grad()) differentiated.push_back(p);
    }
    // Returned, not accumulated into the parameters' .grad.
    torch::autograd::grad({loss}, differentiated, /*grad_outputs=*/{}, /*retain_graph=*/false,
                          /*create_graph=*/false, /*allow_unused=*/true);
    if (!std::isfinite(loss.item<double>())) failure = "the loss is not finite";
  } catch (const std::exception& e) {
    failure = DescribeException(e);
  }
  RestoreBuffers();
  {
    std::lock_guard<std::mutex> lock(generator.mutex());
    generator.set_state(generator_state);
  }
  model_->SetTraining(was_training);
  return failure;
}

void Trainer::UnscaleGradients() {
  if (!gradients_scaled_) return;
  gradients_scaled_ = false;
  torch::NoGradGuard no_grad;
  const double inverse = 1.0 / loss_scale_.scale;
  std::vector<torch::Tensor> finite;
  for (const auto& p : trainable_) {
    torch::Tensor grad = p.grad();
    if (!grad.defined()) continue;
    grad.mul_(inverse);
    finite.push_back(grad.isfinite().all());
  }
  // One synchronisation for all tensors.
  gradients_overflowed_ = !finite.empty() && !torch::stack(finite).all().item<bool>();
}

double Trainer::ClipGradients(double max_norm) {
  if (!(max_norm > 0)) throw Error("ERR_INVALID_ARG", "max gradient norm must be > 0");
  CheckCanTrain("clipGradients()");
  UnscaleGradients();
  std::vector<torch::Tensor> with_grad;
  for (const auto& p : trainable_) {
    if (p.grad().defined()) with_grad.push_back(p);
  }
  if (with_grad.empty()) return 0;
  return torch::nn::utils::clip_grad_norm_(with_grad, max_norm);
}

void Trainer::Step() {
  CheckCanTrain("step()");
  UnscaleGradients();
  ++steps_;
  const bool fresh = backward_since_step_;
  backward_since_step_ = false;
  if (!options_.dynamic_loss_scaling) {
    optimizer_->step();
    return;
  }
  if (!fresh) {
    // No backward pass since the last step: nothing to count towards the scale's growth.
    optimizer_->step();
    return;
  }
  loss_scale_.last_step_skipped = gradients_overflowed_;
  if (gradients_overflowed_) {
    ++loss_scale_.skipped_steps;
    loss_scale_.good_steps = 0;
    loss_scale_.scale *= 0.5;
    gradients_overflowed_ = false;
    optimizer_->zero_grad();
    if (loss_scale_.scale < kSmallestLossScale) {
      throw Error("ERR_NUMERIC", "the gradients are not finite at every loss scale down to 2^-24 (" +
                                     std::to_string(loss_scale_.skipped_steps) +
                                     " updates skipped): the model diverged; lower the learning rate or "
                                     "check the inputs");
    }
    return;
  }
  optimizer_->step();
  if (++loss_scale_.good_steps >= options_.loss_scale_growth_interval) {
    loss_scale_.scale *= 2;
    loss_scale_.good_steps = 0;
  }
}

double Trainer::TrainStep(const torch::Tensor& inputs, const torch::Tensor& levels,
                          const torch::Tensor& labels, Input input) {
  CheckCanTrain("trainStep()");
  const double loss = Backward(inputs, levels, labels, /*accumulate=*/false, /*loss_scale=*/1.0, input);
  Step();
  return loss;
}

EvalOutput Trainer::Evaluate(const torch::Tensor& inputs, const torch::Tensor& levels,
                             const torch::Tensor& labels, Input input) {
  CheckBatch(inputs, levels, labels, input);
  const bool was_training = model_->IsTraining();
  model_->SetTraining(false);
  EvalOutput out;
  const auto run = [&] {
    torch::Tensor logits = Logits(inputs, levels, input);
    out.probabilities = torch::softmax(logits, /*dim=*/1).to(torch::kCPU).contiguous();
    if (labels.defined()) {
      out.loss = Loss(logits, labels).item<double>();
      out.has_loss = true;
    }
  };
  if (InferenceOnly()) {
    c10::InferenceMode inference;
    run();
  } else {
    // No autograd, but not InferenceMode while the model may still train: TorchScript caches tensors made in
    // a run, and inference tensors reused by a later training run cannot be saved for backward (seen with
    // Swin-B).
    torch::NoGradGuard no_grad;
    run();
  }
  if (was_training) model_->SetTraining(true);
  return out;
}

NamedTensors Trainer::Gradients() {
  UnscaleGradients();
  NamedTensors out;
  for (size_t i = 0; i < trainable_.size(); ++i) out.emplace_back(trainable_names_[i], trainable_[i].grad());
  return out;
}

void Trainer::SetLearningRate(double learning_rate) {
  if (!(learning_rate > 0)) throw Error("ERR_INVALID_ARG", "learning rate must be > 0");
  options_.learning_rate = learning_rate;
  for (auto& group : optimizer_->param_groups()) {
    static_cast<torch::optim::AdamWOptions&>(group.options()).lr(learning_rate);
  }
}

void Trainer::Save(const std::string& path, const std::string& metadata_json) const {
  CheckNotOptimizedForInference("be saved");
  CheckpointContents contents;
  contents.metadata_json = metadata_json;
  contents.model = model_->StateDict();
  contents.steps = steps_;
  contents.learning_rate = options_.learning_rate;
  if (options_.dynamic_loss_scaling) {
    char scale[32];
    std::snprintf(scale, sizeof(scale), "%.17g", loss_scale_.scale);  // round-trips through std::stod
    contents.extra["loss_scale"] = scale;
    contents.extra["loss_scale_good_steps"] = std::to_string(loss_scale_.good_steps);
  }
  const auto& state = optimizer_->state();
  for (size_t i = 0; i < trainable_.size(); ++i) {
    const auto key = StateKey(trainable_[i]);
    auto found = state.find(key);
    if (found == state.end()) continue;
    const auto& adam = static_cast<const torch::optim::AdamWParamState&>(*found->second);
    contents.optimizer.push_back({trainable_names_[i], adam.step(), adam.exp_avg(), adam.exp_avg_sq()});
  }
  WriteCheckpoint(path, contents);
}

std::string Trainer::Load(const std::string& path, bool weights_only) {
  CheckpointContents contents = ReadCheckpoint(path);
  // The loss scale (written by Save as decimal text) is checked before anything is changed.
  const bool restore_scale =
      !weights_only && options_.dynamic_loss_scaling && contents.extra.count("loss_scale");
  LossScaleState restored_scale = loss_scale_;
  if (restore_scale) {
    const std::string& scale_text = contents.extra["loss_scale"];
    const std::string& good_text = contents.extra["loss_scale_good_steps"];
    double scale = 0;
    int64_t good_steps = -1;
    try {
      size_t used_scale = 0;
      size_t used_good = 0;
      scale = std::stod(scale_text, &used_scale);
      good_steps = std::stoll(good_text, &used_good);
      if (used_scale != scale_text.size() || used_good != good_text.size()) good_steps = -1;
    } catch (const std::exception&) {
      good_steps = -1;
    }
    if (!(scale >= kSmallestLossScale && scale <= kLargestLossScale) || good_steps < 0) {
      throw Error("ERR_CHECKPOINT", "checkpoint '" + path + "' has a damaged loss scale ('" + scale_text +
                                        "', good steps '" + good_text + "'): expected a number in [2^-24, " +
                                        "2^128] and a whole number >= 0");
    }
    restored_scale.scale = scale;
    restored_scale.good_steps = good_steps;
  }
  // Model tensors: every name must exist here with the same shape; extra or missing names are an error.
  NamedTensors state = model_->StateDict();
  std::map<std::string, torch::Tensor> targets(state.begin(), state.end());
  std::map<std::string, torch::Tensor> loaded(contents.model.begin(), contents.model.end());
  for (const auto& [name, target] : targets) {
    if (!loaded.count(name)) {
      throw Error("ERR_CHECKPOINT", "checkpoint '" + path + "' has no tensor '" + name +
                                        "': it was saved from a different model");
    }
  }
  for (const auto& [name, tensor] : loaded) {
    auto target = targets.find(name);
    if (target == targets.end()) {
      throw Error("ERR_CHECKPOINT",
                  "checkpoint '" + path + "' holds tensor '" + name +
                      "' that this model does not have: it was saved from a different model");
    }
    if (!target->second.sizes().equals(tensor.sizes())) {
      throw Error("ERR_CHECKPOINT", "checkpoint '" + path + "' tensor '" + name + "' has shape " +
                                        c10::str(tensor.sizes()) + ", this model expects " +
                                        c10::str(target->second.sizes()));
    }
  }
  {
    torch::NoGradGuard no_grad;
    for (const auto& [name, tensor] : loaded) targets[name].copy_(tensor);
  }
  // Gradients pending from before the load belong to other weights (and, scaled, to another scale).
  optimizer_->zero_grad();
  gradients_scaled_ = false;
  gradients_overflowed_ = false;
  backward_since_step_ = false;
  if (weights_only) return contents.metadata_json;
  std::map<std::string, size_t> index;
  for (size_t i = 0; i < trainable_names_.size(); ++i) index[trainable_names_[i]] = i;
  auto& state_map = optimizer_->state();
  state_map.clear();
  for (const auto& moment : contents.optimizer) {
    auto found = index.find(moment.name);
    if (found == index.end()) {
      throw Error("ERR_CHECKPOINT",
                  "checkpoint '" + path + "' has optimizer state for '" + moment.name +
                      "', which is not trainable here: unfreeze the same tensors as when it "
                      "was saved");
    }
    const torch::Tensor& param = trainable_[found->second];
    auto adam = std::make_unique<torch::optim::AdamWParamState>();
    adam->step(moment.step);
    adam->exp_avg(moment.exp_avg.to(param.device()).clone());
    adam->exp_avg_sq(moment.exp_avg_sq.to(param.device()).clone());
    state_map[StateKey(param)] = std::move(adam);
  }
  steps_ = contents.steps;
  SetLearningRate(contents.learning_rate);
  if (restore_scale) loss_scale_ = restored_scale;
  return contents.metadata_json;
}

}  // namespace stenosis
