#include "core/backbone.h"

#include <filesystem>
#include <fstream>
#include <set>

#include "core/error.h"

namespace stenosis {
namespace {

// True when the file starts like a zip archive, which every TorchScript file is.
bool LooksLikeZip(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  char magic[4] = {0, 0, 0, 0};
  in.read(magic, 4);
  return in.gcount() == 4 && magic[0] == 'P' && magic[1] == 'K';
}

}  // namespace

Backbone::Backbone(const std::string& path, const torch::Device& device, int64_t input_size)
    : path_(path), device_(device), input_size_(input_size) {
  namespace fs = std::filesystem;
  if (!fs::exists(path)) throw Error("ERR_MODEL_FILE", "backbone file '" + path + "' does not exist");
  if (fs::is_directory(path)) throw Error("ERR_MODEL_FILE", "backbone file '" + path + "' is a folder");
  if (!LooksLikeZip(path)) {
    throw Error("ERR_MODEL_FILE", "backbone file '" + path +
                                      "' is not a TorchScript model (expected a zip archive written by "
                                      "torch.jit.save; export one with scripts/export_backbones.py)");
  }
  if (input_size < 16 || input_size > 4096) {
    throw Error("ERR_INVALID_ARG",
                "input size must be between 16 and 4096 pixels, got " + std::to_string(input_size));
  }
  try {
    module_ = torch::jit::load(path, device);
  } catch (const std::exception& e) {
    throw Error("ERR_MODEL_FILE", "backbone file '" + path +
                                      "' could not be loaded as TorchScript: " + DescribeException(e) +
                                      " (a file exported by a newer torch than the linked libtorch " +
                                      TORCH_VERSION + " may use operators it does not know)");
  }
  module_.eval();
  torch::Tensor probe;
  try {
    torch::NoGradGuard no_grad;
    probe = Forward(torch::zeros({1, 3, input_size, input_size}, torch::TensorOptions().device(device)));
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    throw Error("ERR_MODEL_FILE", "backbone '" + path + "' failed on a [1, 3, " + std::to_string(input_size) +
                                      ", " + std::to_string(input_size) + "] input: " + DescribeException(e));
  }
  if (probe.dim() != 2 || probe.size(0) != 1) {
    throw Error("ERR_MODEL_FILE", "backbone '" + path + "' returned a tensor of shape " +
                                      c10::str(probe.sizes()) +
                                      "; expected [batch, features] pooled features (export with the "
                                      "classification layer replaced by identity)");
  }
  feature_dim_ = probe.size(1);
  module_.train();
}

void Backbone::Freeze() {
  for (const auto& p : module_.parameters(/*recurse=*/true)) p.set_requires_grad(false);
}

std::vector<std::string> Backbone::UnfreezeLast(int64_t n) {
  if (n < 0) throw Error("ERR_INVALID_ARG", "unfreezeLast expects n >= 0, got " + std::to_string(n));
  Freeze();
  NamedTensors params = NamedParameters(/*trainable_only=*/false);
  const int64_t count = static_cast<int64_t>(params.size());
  std::vector<std::string> names;
  for (int64_t i = std::max<int64_t>(0, count - n); i < count; ++i) {
    params[i].second.set_requires_grad(true);
    names.push_back(params[i].first);
  }
  return names;
}

std::vector<std::string> Backbone::UnfreezeLastBlocks(int64_t n) {
  if (n < 0) throw Error("ERR_INVALID_ARG", "unfreezeLastBlocks expects n >= 0, got " + std::to_string(n));
  Freeze();
  NamedTensors params = NamedParameters(/*trainable_only=*/false);
  // Block key: the first two components of the module path ("layer4.2.conv1.weight" -> "layer4.2").
  auto block_of = [](const std::string& name) {
    const auto first = name.find('.');
    if (first == std::string::npos) return name;
    const auto second = name.find('.', first + 1);
    if (second == std::string::npos) return name.substr(0, first);
    return name.substr(0, second);
  };
  std::vector<std::string> blocks;
  for (const auto& [name, tensor] : params) {
    const std::string block = block_of(name);
    if (blocks.empty() || blocks.back() != block) blocks.push_back(block);
  }
  std::set<std::string> chosen;
  for (int64_t i = std::max<int64_t>(0, static_cast<int64_t>(blocks.size()) - n);
       i < static_cast<int64_t>(blocks.size()); ++i) {
    chosen.insert(blocks[i]);
  }
  std::vector<std::string> names;
  for (auto& [name, tensor] : params) {
    if (chosen.count(block_of(name))) {
      tensor.set_requires_grad(true);
      names.push_back(name);
    }
  }
  return names;
}

NamedTensors Backbone::NamedParameters(bool trainable_only) const {
  NamedTensors out;
  for (const auto& item : module_.named_parameters(/*recurse=*/true)) {
    if (!trainable_only || item.value.requires_grad()) out.emplace_back(item.name, item.value);
  }
  return out;
}

NamedTensors Backbone::NamedBuffers() const {
  NamedTensors out;
  for (const auto& item : module_.named_buffers(/*recurse=*/true)) out.emplace_back(item.name, item.value);
  return out;
}

int64_t Backbone::ParameterCount(bool trainable_only) const {
  int64_t total = 0;
  for (const auto& [name, tensor] : NamedParameters(trainable_only)) total += tensor.numel();
  return total;
}

int64_t Backbone::ParameterTensorCount() const { return static_cast<int64_t>(NamedParameters(false).size()); }

void Backbone::SetTraining(bool training) {
  // An optimized module has no training attribute left to set, and stays in eval mode.
  if (!optimized_for_inference_) module_.train(training);
}

void Backbone::OptimizeForInference() {
  if (optimized_for_inference_) return;
  module_.eval();
  module_ = torch::jit::optimize_for_inference(module_);
  optimized_for_inference_ = true;
}

bool Backbone::IsTraining() const { return !optimized_for_inference_ && module_.is_training(); }

void Backbone::SetMemoryFormat(MemoryFormat format) {
  const auto target =
      format == MemoryFormat::kChannelsLast ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous;
  torch::NoGradGuard no_grad;
  for (const auto& [name, tensor] : NamedParameters(false)) {
    if (tensor.dim() == 4) tensor.set_data(tensor.contiguous(target));
  }
  for (const auto& [name, tensor] : NamedBuffers()) {
    if (tensor.dim() == 4) tensor.set_data(tensor.contiguous(target));
  }
}

torch::Tensor Backbone::Forward(const torch::Tensor& images) {
  std::vector<torch::jit::IValue> inputs{images};
  torch::jit::IValue output = module_.forward(inputs);
  if (output.isTensor()) return output.toTensor();
  // Some exports return (features, ...) tuples; the pooled features come first.
  if (output.isTuple() && !output.toTupleRef().elements().empty() &&
      output.toTupleRef().elements()[0].isTensor()) {
    return output.toTupleRef().elements()[0].toTensor();
  }
  throw Error("ERR_MODEL_FILE",
              "backbone '" + path_ + "' returned " + output.tagKind() + ", expected a tensor");
}

}  // namespace stenosis
