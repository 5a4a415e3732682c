// Optimisation of a StenosisClassifier: class-weighted cross-entropy and AdamW over the trainable parameters.
//
// A step is split in two (Backward, then Step) so that a gradient all-reduce or accumulation can slot in
// between.
#pragma once

#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

#include "core/classifier.h"

namespace stenosis {

struct TrainerOptions {
  double learning_rate = 1e-4;
  double weight_decay = 0.02;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  // One weight per class, in class order (normal/mild, moderate, severe). Empty means unweighted.
  std::vector<float> class_weights;
  // Dynamic loss scaling, which fp16 autocast needs so that small gradients do not flush to zero in half
  // precision: the loss is multiplied by the scale before back-propagation and the gradients divided by it
  // before clipping and the update; an update whose gradients hold inf or NaN is skipped and the scale
  // halved, and after growth_interval updates in a row without one the scale doubles.
  bool dynamic_loss_scaling = false;
  double initial_loss_scale = 65536.0;
  int64_t loss_scale_growth_interval = 2000;
};

// Where dynamic loss scaling stands (all zero but scale when it is off).
struct LossScaleState {
  double scale = 1.0;
  int64_t good_steps = 0;     // updates since the scale last changed
  int64_t skipped_steps = 0;  // updates skipped for non-finite gradients, in this trainer's life
  bool last_step_skipped = false;
};

// What a batch's first tensor holds: images [B, 3, S, S] for the whole model, or backbone features
// [B, feature_dim] for the embedding and head alone (features computed once for a frozen backbone).
enum class Input { kImages, kFeatures };

struct EvalOutput {
  torch::Tensor probabilities;  // [B, 3] on the CPU
  double loss = 0;              // weighted cross-entropy when labels were given
  bool has_loss = false;
};

class Trainer {
 public:
  // Collects the classifier's trainable parameters now: unfreeze before constructing the trainer.
  Trainer(std::shared_ptr<StenosisClassifier> model, TrainerOptions options);

  StenosisClassifier& model() { return *model_; }
  const TrainerOptions& options() const { return options_; }
  const std::vector<std::string>& trainable_names() const { return trainable_names_; }
  int64_t steps() const { return steps_; }

  // Zeroes gradients (unless accumulate), runs the model in train mode and back-propagates loss * loss_scale
  // (1 / k when k batches are accumulated into one step). Returns the unscaled loss. A feature batch needs a
  // backbone without trainable parameters. A loss that is not finite throws ERR_NUMERIC before anything is
  // back-propagated and with the buffers (batch-norm statistics) restored, so the model and the pending
  // gradients stay as they were.
  double Backward(const torch::Tensor& inputs, const torch::Tensor& levels, const torch::Tensor& labels,
                  bool accumulate = false, double loss_scale = 1.0, Input input = Input::kImages);
  // One forward and backward pass in train mode, then buffers and the CPU generator restored; its gradients
  // are discarded and those pending from Backward kept. Shows before training whether the model runs at its
  // precision. Returns the error message, empty on success.
  std::string TrialStep(const torch::Tensor& images, const torch::Tensor& levels,
                        const torch::Tensor& labels);
  // Rescales the gradients so that their global L2 norm is at most max_norm; returns the norm before (not
  // finite when dynamic loss scaling found an overflow: the next Step skips the update).
  double ClipGradients(double max_norm);
  // Predicted classes (arg-max) of the last Backward's batch, for running training metrics; empty before.
  std::vector<int32_t> LastPredictions() const { return last_predictions_; }
  // Applies one AdamW update with the gradients held now; with dynamic loss scaling, skips it when a gradient
  // is not finite (see LossScaleState) and throws ERR_NUMERIC once the scale has fallen below 2^-24.
  void Step();
  double TrainStep(const torch::Tensor& inputs, const torch::Tensor& levels, const torch::Tensor& labels,
                   Input input = Input::kImages);
  // From now on evaluations run in InferenceMode (lighter than no-grad: no version counters or view tracking)
  // and training (Backward, TrialStep, ClipGradients, Step, TrainStep) is refused with ERR_STATE: inference
  // tensors that TorchScript caches in a run could not be saved for backward by a later training step.
  // Pending gradients are dropped. A backbone optimized for inference is inference only already.
  void SetInferenceOnly();
  bool InferenceOnly() const;
  // Eval mode, no autograd (InferenceMode when inference only). Labels may be undefined.
  EvalOutput Evaluate(const torch::Tensor& inputs, const torch::Tensor& levels, const torch::Tensor& labels,
                      Input input = Input::kImages);
  torch::Tensor Loss(const torch::Tensor& logits, const torch::Tensor& labels) const;

  // Gradients of the trainable parameters, by name (undefined before the first backward), unscaled.
  NamedTensors Gradients();
  LossScaleState loss_scale() const { return loss_scale_; }
  void SetLearningRate(double learning_rate);

  // Whole trainable state: every model parameter and buffer, and the optimizer's per-parameter moments.
  void Save(const std::string& path, const std::string& metadata_json) const;
  // Restores a checkpoint written by Save; returns its metadata JSON. With weights_only the optimizer state
  // and step count are left as they are (for inference, or fine-tuning with a fresh optimizer).
  std::string Load(const std::string& path, bool weights_only = false);

 private:
  void CheckTrainableSetUnchanged() const;
  // A backbone optimized for inference has no parameters left: its model can neither train nor be saved.
  void CheckNotOptimizedForInference(const char* what) const;
  // ERR_STATE naming `call` when the trainer is inference only or its backbone optimized for inference.
  void CheckCanTrain(const char* call) const;
  // Copies the buffers a train-mode forward pass can change into buffer_snapshot_ (storage reused between
  // steps); RestoreBuffers writes them back.
  void SnapshotBuffers();
  void RestoreBuffers();
  void CheckBatch(const torch::Tensor& inputs, const torch::Tensor& levels, const torch::Tensor& labels,
                  Input input) const;
  torch::Tensor Logits(const torch::Tensor& inputs, const torch::Tensor& levels, Input input);
  // Divides gradients still multiplied by the loss scale by it, once, and notes whether any is not finite.
  void UnscaleGradients();

  std::shared_ptr<StenosisClassifier> model_;
  TrainerOptions options_;
  std::vector<std::string> trainable_names_;
  std::vector<torch::Tensor> trainable_;
  torch::Tensor class_weights_;
  std::unique_ptr<torch::optim::AdamW> optimizer_;
  int64_t steps_ = 0;
  std::vector<int32_t> last_predictions_;
  LossScaleState loss_scale_;
  bool inference_only_ = false;
  bool gradients_scaled_ = false;
  bool gradients_overflowed_ = false;
  bool backward_since_step_ = false;
  std::vector<torch::Tensor> buffer_snapshot_;
  std::vector<torch::Tensor> snapshot_targets_;
};

}  // namespace stenosis
