// The stenosis model: backbone features concatenated with a learned embedding of the lumbar level, then an
// MLP head (Linear, LayerNorm, GELU, Dropout twice, then Linear to the three severities).
#pragma once

#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

#include "core/backbone.h"
#include "core/device.h"

namespace stenosis {

constexpr int64_t kNumLevels = 5;   // L1/L2 .. L5/S1
constexpr int64_t kNumClasses = 3;  // normal/mild, moderate, severe

class LevelEmbeddingImpl : public torch::nn::Module {
 public:
  explicit LevelEmbeddingImpl(int64_t dim);
  torch::Tensor forward(const torch::Tensor& levels);
  int64_t dim() const { return dim_; }

 private:
  int64_t dim_;
  torch::nn::Embedding embedding_{nullptr};
};
TORCH_MODULE(LevelEmbedding);

struct HeadOptions {
  int64_t hidden1 = 512;
  int64_t hidden2 = 256;
  double dropout = 0.1;
};

struct ClassifierOptions {
  HeadOptions head;
  // Keep a fully frozen backbone in eval mode while training (the reference keeps it in train mode).
  bool frozen_backbone_eval = false;
  Precision precision = Precision::kFloat32;
  // Evaluation (eval mode) in fp32 while training runs at `precision`: for backbones whose eval-mode path
  // fails at that precision in the linked libtorch.
  bool fp32_evaluation = false;
  MemoryFormat memory_format = MemoryFormat::kContiguous;
};

class StenosisClassifier {
 public:
  StenosisClassifier(std::shared_ptr<Backbone> backbone, LevelEmbedding embedding, ClassifierOptions options);

  Backbone& backbone() { return *backbone_; }
  LevelEmbedding& embedding() { return embedding_; }
  const ClassifierOptions& options() const { return options_; }
  const torch::Device& device() const { return backbone_->device(); }

  // Train mode for the head and embedding; for the backbone too, unless it is fully frozen and
  // frozen_backbone_eval is set.
  void SetTraining(bool training);
  bool IsTraining() const { return training_; }

  // Backbone features in the current mode: at `precision` in train mode, in fp32 in eval mode with
  // fp32_evaluation.
  torch::Tensor Features(const torch::Tensor& images);
  // Features as a training pass (training true) or an evaluation pass computes them, whatever the current
  // mode, which is left as it was.
  torch::Tensor Features(const torch::Tensor& images, bool training);
  // images [B, 3, S, S] float, levels [B] int64 in [0, 5): logits [B, 3] (fp32).
  torch::Tensor Forward(const torch::Tensor& images, const torch::Tensor& levels);
  torch::Tensor HeadForward(const torch::Tensor& features, const torch::Tensor& levels);

  // "backbone.<name>", "embedding.weight", "head.<i>.<name>" in registration order.
  NamedTensors NamedParameters(bool trainable_only) const;
  NamedTensors NamedBuffers() const;
  // Parameters and buffers: everything a checkpoint must hold to restore the model.
  NamedTensors StateDict() const;
  int64_t ParameterCount(bool trainable_only) const;

 private:
  std::shared_ptr<Backbone> backbone_;
  LevelEmbedding embedding_;
  torch::nn::Sequential head_;
  ClassifierOptions options_;
  bool training_ = true;
};

}  // namespace stenosis
