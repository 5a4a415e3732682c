// A TorchScript image backbone: [batch, 3, size, size] images in, [batch, features] pooled features out.
#pragma once

#include <torch/script.h>
#include <torch/torch.h>

#include <string>
#include <utility>
#include <vector>

#include "core/device.h"

namespace stenosis {

using NamedTensors = std::vector<std::pair<std::string, torch::Tensor>>;

class Backbone {
 public:
  // Loads a TorchScript file onto device and probes its feature dimension with one [1, 3, size, size] pass.
  Backbone(const std::string& path, const torch::Device& device, int64_t input_size);

  const std::string& path() const { return path_; }
  const torch::Device& device() const { return device_; }
  int64_t feature_dim() const { return feature_dim_; }
  int64_t input_size() const { return input_size_; }

  // Clears requires_grad on every parameter; the module's train/eval mode is left as it is.
  void Freeze();
  // Freezes everything, then unfreezes the last n tensors of the parameter list in registration order (the
  // reference implementation's "last n layers"). n larger than the list unfreezes all. Returns their names.
  std::vector<std::string> UnfreezeLast(int64_t n);
  // Unfreezes the parameters of the last n top-level blocks: a block is a distinct module path two levels
  // deep (e.g. "layer4.2" or "encoder.layers"), in registration order. Returns the unfrozen tensor names.
  std::vector<std::string> UnfreezeLastBlocks(int64_t n);

  NamedTensors NamedParameters(bool trainable_only) const;
  NamedTensors NamedBuffers() const;
  int64_t ParameterCount(bool trainable_only) const;
  int64_t ParameterTensorCount() const;

  void SetTraining(bool training);
  bool IsTraining() const;
  // Converts 4-d parameters and buffers to the given memory format (channels-last speeds up convolutions).
  void SetMemoryFormat(MemoryFormat format);

  torch::Tensor Forward(const torch::Tensor& images);

  // Eval mode, then torch::jit::optimize_for_inference: parameters folded into the graph as constants, batch
  // norm merged into convolutions, operators fused. For inference only: afterwards the backbone has no
  // parameters (nothing to train or save) and stays in eval mode.
  void OptimizeForInference();
  bool optimized_for_inference() const { return optimized_for_inference_; }

 private:
  std::string path_;
  torch::Device device_;
  int64_t input_size_;
  int64_t feature_dim_ = 0;
  torch::jit::Module module_;
  bool optimized_for_inference_ = false;
};

}  // namespace stenosis
