#include "core/classifier.h"

#include <ATen/autocast_mode.h>
#include <torch/version.h>

#include "core/error.h"

namespace stenosis {
namespace {

// Enables autocast for one device type while in scope, restoring the previous settings after.
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
// libtorch 2.4 took the device type as an argument and deprecated the per-device functions.
class AutocastScope {
 public:
  AutocastScope(torch::DeviceType device_type, at::ScalarType dtype) : device_type_(device_type) {
    was_enabled_ = at::autocast::is_autocast_enabled(device_type_);
    previous_dtype_ = at::autocast::get_autocast_dtype(device_type_);
    at::autocast::set_autocast_dtype(device_type_, dtype);
    at::autocast::set_autocast_enabled(device_type_, true);
    at::autocast::increment_nesting();
  }
  ~AutocastScope() {
    if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
    at::autocast::set_autocast_enabled(device_type_, was_enabled_);
    at::autocast::set_autocast_dtype(device_type_, previous_dtype_);
  }

 private:
  torch::DeviceType device_type_;
  bool was_enabled_ = false;
  at::ScalarType previous_dtype_ = at::kFloat;
};
#else
class AutocastScope {
 public:
  AutocastScope(torch::DeviceType device_type, at::ScalarType dtype) : cuda_(device_type == torch::kCUDA) {
    if (cuda_) {
      was_enabled_ = at::autocast::is_enabled();
      previous_dtype_ = at::autocast::get_autocast_gpu_dtype();
      at::autocast::set_autocast_gpu_dtype(dtype);
      at::autocast::set_enabled(true);
    } else {
      was_enabled_ = at::autocast::is_cpu_enabled();
      previous_dtype_ = at::autocast::get_autocast_cpu_dtype();
      at::autocast::set_autocast_cpu_dtype(dtype);
      at::autocast::set_cpu_enabled(true);
    }
    at::autocast::increment_nesting();
  }
  ~AutocastScope() {
    if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
    if (cuda_) {
      at::autocast::set_enabled(was_enabled_);
      at::autocast::set_autocast_gpu_dtype(previous_dtype_);
    } else {
      at::autocast::set_cpu_enabled(was_enabled_);
      at::autocast::set_autocast_cpu_dtype(previous_dtype_);
    }
  }

 private:
  bool cuda_;
  bool was_enabled_ = false;
  at::ScalarType previous_dtype_ = at::kFloat;
};
#endif

void AppendPrefixed(NamedTensors& out, const std::string& prefix, const NamedTensors& items) {
  for (const auto& [name, tensor] : items) out.emplace_back(prefix + name, tensor);
}

NamedTensors FromOrderedDict(const torch::OrderedDict<std::string, torch::Tensor>& dict,
                             bool trainable_only) {
  NamedTensors out;
  for (const auto& item : dict) {
    if (!trainable_only || item.value().requires_grad()) out.emplace_back(item.key(), item.value());
  }
  return out;
}

}  // namespace

LevelEmbeddingImpl::LevelEmbeddingImpl(int64_t dim) : dim_(dim) {
  if (dim < 1)
    throw Error("ERR_INVALID_ARG", "level embedding dimension must be >= 1, got " + std::to_string(dim));
  embedding_ = register_module("embedding", torch::nn::Embedding(kNumLevels, dim));
}

torch::Tensor LevelEmbeddingImpl::forward(const torch::Tensor& levels) { return embedding_->forward(levels); }

StenosisClassifier::StenosisClassifier(std::shared_ptr<Backbone> backbone, LevelEmbedding embedding,
                                       ClassifierOptions options)
    : backbone_(std::move(backbone)), embedding_(std::move(embedding)), options_(options) {
  const auto& head = options_.head;
  if (head.dropout < 0 || head.dropout >= 1) {
    throw Error("ERR_INVALID_ARG", "dropout must be in [0, 1), got " + std::to_string(head.dropout));
  }
  if (options_.precision == Precision::kFloat16 && device().is_cpu()) {
    throw Error("ERR_INVALID_ARG", "precision fp16 needs a CUDA device; use bf16 or fp32 on the CPU");
  }
  const int64_t in_features = backbone_->feature_dim() + embedding_->dim();
  head_ = torch::nn::Sequential(
      torch::nn::Linear(in_features, head.hidden1),
      torch::nn::LayerNorm(torch::nn::LayerNormOptions({head.hidden1})), torch::nn::GELU(),
      torch::nn::Dropout(head.dropout), torch::nn::Linear(head.hidden1, head.hidden2),
      torch::nn::LayerNorm(torch::nn::LayerNormOptions({head.hidden2})), torch::nn::GELU(),
      torch::nn::Dropout(head.dropout), torch::nn::Linear(head.hidden2, kNumClasses));
  embedding_->to(device());
  head_->to(device());
  backbone_->SetMemoryFormat(options_.memory_format);
  SetTraining(true);
}

void StenosisClassifier::SetTraining(bool training) {
  training_ = training;
  embedding_->train(training);
  head_->train(training);
  const bool fully_frozen = backbone_->ParameterCount(/*trainable_only=*/true) == 0;
  backbone_->SetTraining(training && !(fully_frozen && options_.frozen_backbone_eval));
}

torch::Tensor StenosisClassifier::Features(const torch::Tensor& images) {
  // On a GPU the batch goes through pinned memory, so the copy runs asynchronously and does not stall the
  // step.
  const bool pin = device().is_cuda() && images.device().is_cpu();
  torch::Tensor x = (pin ? images.pin_memory() : images).to(device(), torch::kFloat32, /*non_blocking=*/true);
  if (options_.memory_format == MemoryFormat::kChannelsLast) x = x.contiguous(at::MemoryFormat::ChannelsLast);
  if (options_.precision == Precision::kFloat32 || (!training_ && options_.fp32_evaluation)) {
    return backbone_->Forward(x);
  }
  const auto dtype = options_.precision == Precision::kBFloat16 ? at::kBFloat16 : at::kHalf;
  torch::Tensor features;
  {
    AutocastScope autocast(device().type(), dtype);
    features = backbone_->Forward(x);
  }
  return features.to(torch::kFloat32);
}

torch::Tensor StenosisClassifier::Features(const torch::Tensor& images, bool training) {
  const bool was_training = training_;
  if (training == was_training) return Features(images);
  SetTraining(training);
  torch::Tensor features;
  try {
    features = Features(images);
  } catch (...) {
    SetTraining(was_training);
    throw;
  }
  SetTraining(was_training);
  return features;
}

torch::Tensor StenosisClassifier::HeadForward(const torch::Tensor& features, const torch::Tensor& levels) {
  torch::Tensor level_ids = levels.to(device(), torch::kLong);
  torch::Tensor joined = torch::cat({features, embedding_->forward(level_ids)}, /*dim=*/1);
  return head_->forward(joined);
}

torch::Tensor StenosisClassifier::Forward(const torch::Tensor& images, const torch::Tensor& levels) {
  return HeadForward(Features(images), levels);
}

NamedTensors StenosisClassifier::NamedParameters(bool trainable_only) const {
  NamedTensors out;
  AppendPrefixed(out, "backbone.", backbone_->NamedParameters(trainable_only));
  NamedTensors embedding;
  for (const auto& [name, tensor] : FromOrderedDict(embedding_->named_parameters(), trainable_only)) {
    // The embedding table is exposed as "embedding.weight" (its inner module is an implementation detail).
    embedding.emplace_back(name.substr(name.find('.') + 1), tensor);
  }
  AppendPrefixed(out, "embedding.", embedding);
  AppendPrefixed(out, "head.", FromOrderedDict(head_->named_parameters(), trainable_only));
  return out;
}

NamedTensors StenosisClassifier::NamedBuffers() const {
  NamedTensors out;
  AppendPrefixed(out, "backbone.", backbone_->NamedBuffers());
  AppendPrefixed(out, "head.", FromOrderedDict(head_->named_buffers(), false));
  return out;
}

NamedTensors StenosisClassifier::StateDict() const {
  NamedTensors out = NamedParameters(false);
  NamedTensors buffers = NamedBuffers();
  out.insert(out.end(), buffers.begin(), buffers.end());
  return out;
}

int64_t StenosisClassifier::ParameterCount(bool trainable_only) const {
  int64_t total = 0;
  for (const auto& [name, tensor] : NamedParameters(trainable_only)) total += tensor.numel();
  return total;
}

}  // namespace stenosis
