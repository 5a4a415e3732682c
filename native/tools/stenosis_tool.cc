// stenosis-tool: the core without Node, for smoke tests and benchmarks where Node is absent (e.g. a CUDA
// host).
//
//   stenosis-tool smoke --backbone resnet18.pt [--device cpu] [--batch 4] [--steps 3] [--threads N]
//   stenosis-tool bench --backbone resnet152.pt [--batch 32] [--steps 10] [--warmup 2] [--unfreeze 32]
//                       [--precision fp32|bf16|fp16|auto] [--memory-format contiguous|channels_last] [--size
//                       224]
//
// bench prints one JSON line: images per second of full train steps (median over steps after warm-up), and
// the caching CPU allocator's counters (core/cpu_cache.h; STENOSIS_CPU_CACHE_MB=0 turns it off).
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <iostream>
#include <map>
#include <set>
#include <string>

#include "core/backbone.h"
#include "core/classifier.h"
#include "core/cpu_cache.h"
#include "core/engine.h"
#include "core/error.h"
#include "core/trainer.h"

namespace {

constexpr const char* kUsage =
    "usage: stenosis-tool smoke|bench --backbone FILE.pt [--device cpu|cuda|cuda:N] [--threads N]\n"
    "                     [--batch N] [--steps N] [--warmup N] [--unfreeze N] [--size PX] [--seed N]\n"
    "                     [--precision fp32|bf16|fp16|auto] [--memory-format contiguous|channels_last]\n"
    "smoke trains a few steps and prints the losses; bench prints one JSON line of images per second.\n";

const std::set<std::string> kFlags = {"backbone", "device", "threads", "batch",     "steps",        "warmup",
                                      "unfreeze", "size",   "seed",    "precision", "memory-format"};

struct Args {
  std::string command;
  std::map<std::string, std::string> flags;

  std::string Get(const std::string& key, const std::string& fallback) const {
    auto found = flags.find(key);
    return found == flags.end() ? fallback : found->second;
  }
  // The flag's value as a whole number >= min, or fallback when the flag is absent.
  int64_t GetInt(const std::string& key, int64_t fallback, int64_t min) const {
    auto found = flags.find(key);
    if (found == flags.end()) return fallback;
    const std::string& text = found->second;
    size_t used = 0;
    int64_t value = min - 1;
    try {
      value = std::stoll(text, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used == 0 || used != text.size() || value < min) {
      throw stenosis::Error("ERR_USAGE", "--" + key + " expects a whole number >= " + std::to_string(min) +
                                             " (at most " + std::to_string(INT64_MAX) + "), got '" + text +
                                             "'");
    }
    return value;
  }
};

Args Parse(int argc, char** argv) {
  Args args;
  if (argc < 2) throw stenosis::Error("ERR_USAGE", "missing command: expected smoke or bench");
  args.command = argv[1];
  for (int i = 2; i < argc; ++i) {
    std::string key = argv[i];
    if (key.rfind("--", 0) != 0 || i + 1 >= argc) {
      throw stenosis::Error("ERR_USAGE", "expected --flag value pairs, got '" + key + "'");
    }
    if (!kFlags.count(key.substr(2))) throw stenosis::Error("ERR_USAGE", "unknown flag '" + key + "'");
    args.flags[key.substr(2)] = argv[++i];
  }
  return args;
}

double Median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  const size_t n = values.size();
  return n % 2 ? values[n / 2] : 0.5 * (values[n / 2 - 1] + values[n / 2]);
}

int Run(const Args& args) {
  if (args.command != "smoke" && args.command != "bench") {
    throw stenosis::Error("ERR_USAGE", "unknown command '" + args.command + "': expected smoke or bench");
  }
  const bool bench = args.command == "bench";
  const std::string backbone_path = args.Get("backbone", "");
  if (backbone_path.empty()) throw stenosis::Error("ERR_USAGE", "--backbone FILE.pt is required");
  const int64_t threads = args.GetInt("threads", stenosis::DefaultNumThreads(), 1);
  at::set_num_threads(static_cast<int>(threads));
  stenosis::InstallCpuCache();
  torch::manual_seed(args.GetInt("seed", 0, 0));

  const torch::Device device = stenosis::ParseDevice(args.Get("device", "cpu"));
  const int64_t size = args.GetInt("size", 224, 1);
  const int64_t batch = args.GetInt("batch", bench ? 32 : 4, 1);
  const int64_t steps = args.GetInt("steps", bench ? 10 : 3, 1);
  const int64_t warmup = args.GetInt("warmup", bench ? 2 : 0, 0);

  auto backbone = std::make_shared<stenosis::Backbone>(backbone_path, device, size);
  const auto unfrozen = backbone->UnfreezeLast(args.GetInt("unfreeze", 32, 0));
  stenosis::ClassifierOptions options;
  options.precision = stenosis::ParsePrecision(args.Get("precision", "fp32"), device);
  options.memory_format = stenosis::ParseMemoryFormat(args.Get("memory-format", "contiguous"));
  auto model =
      std::make_shared<stenosis::StenosisClassifier>(backbone, stenosis::LevelEmbedding(256), options);
  stenosis::TrainerOptions trainer_options;
  // As the library does: fp16 gradients need dynamic loss scaling.
  trainer_options.dynamic_loss_scaling = options.precision == stenosis::Precision::kFloat16;
  stenosis::Trainer trainer(model, trainer_options);

  torch::Tensor images = torch::randn({batch, 3, size, size});
  torch::Tensor levels = torch::randint(0, stenosis::kNumLevels, {batch}, torch::kLong);
  torch::Tensor labels = torch::randint(0, stenosis::kNumClasses, {batch}, torch::kLong);

  std::vector<double> seconds;
  double loss = 0;
  for (int64_t i = 0; i < warmup + steps; ++i) {
    const auto start = std::chrono::steady_clock::now();
    loss = trainer.TrainStep(images, levels, labels);
    if (device.is_cuda()) torch::cuda::synchronize();
    const std::chrono::duration<double> elapsed = std::chrono::steady_clock::now() - start;
    if (i >= warmup) seconds.push_back(elapsed.count());
    if (!bench)
      std::printf("step %lld loss %.6f (%.3f s)\n", static_cast<long long>(i + 1), loss, elapsed.count());
  }
  const double median = Median(seconds);
  const stenosis::CpuCacheStats cache = stenosis::GetCpuCacheStats();
  std::printf(
      "{\"tool\":\"stenosis-tool\",\"command\":\"%s\",\"backbone\":\"%s\",\"device\":\"%s\",\"threads\":%lld,"
      "\"precision\":\"%s\",\"memoryFormat\":\"%s\",\"batch\":%lld,\"size\":%lld,\"steps\":%lld,"
      "\"featureDim\":%lld,\"unfrozenTensors\":%zu,\"trainableParameters\":%lld,\"medianStepSeconds\":%.6f,"
      "\"imagesPerSecond\":%.3f,\"lastLoss\":%.6f,\"cpuCacheLimitMb\":%zu,\"cpuCacheHits\":%llu,"
      "\"cpuCacheMisses\":%llu,\"torch\":\"%s\"}\n",
      args.command.c_str(), backbone_path.c_str(), device.str().c_str(), static_cast<long long>(threads),
      stenosis::PrecisionName(options.precision).c_str(), args.Get("memory-format", "contiguous").c_str(),
      static_cast<long long>(batch), static_cast<long long>(size), static_cast<long long>(steps),
      static_cast<long long>(backbone->feature_dim()), unfrozen.size(),
      static_cast<long long>(model->ParameterCount(true)), median, batch / median, loss,
      cache.limit_bytes >> 20, static_cast<unsigned long long>(cache.hits),
      static_cast<unsigned long long>(cache.misses), TORCH_VERSION);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    if (std::string(argv[i]) == "--help" || std::string(argv[i]) == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    }
  }
  try {
    return Run(Parse(argc, argv));
  } catch (const stenosis::Error& e) {
    std::fprintf(stderr, "stenosis-tool: %s (%s)\n", e.what(), e.code().c_str());
    if (e.code() == "ERR_USAGE") std::fputs(kUsage, stderr);
    return e.code() == "ERR_USAGE" ? 2 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "stenosis-tool: %s\n", stenosis::DescribeException(e).c_str());
    return 1;
  }
}
