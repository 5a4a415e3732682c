// Entry point of the addon: async factories for the wrapped core objects and process-wide settings.
#include <ATen/CPUGeneratorImpl.h>
#include <napi.h>
#include <torch/torch.h>

#include <cstdio>
#include <cstdlib>
#include <mutex>

#include "binding/common.h"
#include "binding/preprocess_binding.h"
#include "binding/wrappers.h"
#include "core/checkpoint.h"
#include "core/cpu_cache.h"
#include "core/device.h"

namespace stenosis::binding {
namespace {

double OptionNumber(const Napi::Object& options, const char* key) {
  Napi::Value value = options.Get(key);
  if (!value.IsNumber()) {
    throw MakeError(options.Env(), "ERR_INVALID_ARG", std::string("option ") + key + " must be a number");
  }
  return value.As<Napi::Number>().DoubleValue();
}

bool OptionBool(const Napi::Object& options, const char* key) {
  Napi::Value value = options.Get(key);
  if (!value.IsBoolean()) {
    throw MakeError(options.Env(), "ERR_INVALID_ARG", std::string("option ") + key + " must be a boolean");
  }
  return value.As<Napi::Boolean>().Value();
}

std::string OptionString(const Napi::Object& options, const char* key) {
  Napi::Value value = options.Get(key);
  if (!value.IsString()) {
    throw MakeError(options.Env(), "ERR_INVALID_ARG", std::string("option ") + key + " must be a string");
  }
  return value.As<Napi::String>().Utf8Value();
}

Napi::Object OptionsArg(const Napi::CallbackInfo& info, size_t index) {
  if (!info[index].IsObject()) throw MakeError(info.Env(), "ERR_INVALID_ARG", "options must be an object");
  return info[index].As<Napi::Object>();
}

// Runs `parse` on the engine thread (core parsers may query CUDA) and returns its value.
template <typename T>
T OnEngine(const std::function<T()>& parse) {
  T value;
  Engine::Instance().RunSync([&] { value = parse(); });
  return value;
}

Napi::Value LoadBackbone(const Napi::CallbackInfo& info) {
  const std::string path = StringArg(info, 0, "path");
  const std::string device_spec = StringArg(info, 1, "device");
  const auto input_size = static_cast<int64_t>(NumberArg(info, 2, "inputSize"));
  return Schedule<std::shared_ptr<Backbone>>(
      info.Env(),
      [path, device_spec, input_size] {
        return std::make_shared<Backbone>(path, ParseDevice(device_spec), input_size);
      },
      [](Napi::Env env, std::shared_ptr<Backbone>& backbone) -> Napi::Value {
        return BackboneWrap::NewInstance(env, backbone);
      });
}

Napi::Value CreateClassifier(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  AddonData* data = env.GetInstanceData<AddonData>();
  if (!info[0].IsObject() || !info[0].As<Napi::Object>().InstanceOf(data->backbone.Value())) {
    throw MakeError(env, "ERR_INVALID_ARG", "createClassifier expects a NativeBackbone");
  }
  std::shared_ptr<Backbone> backbone = BackboneWrap::Unwrap(info[0].As<Napi::Object>())->backbone();
  Napi::Object options = OptionsArg(info, 1);
  ClassifierOptions parsed;
  parsed.head.hidden1 = static_cast<int64_t>(OptionNumber(options, "hidden1"));
  parsed.head.hidden2 = static_cast<int64_t>(OptionNumber(options, "hidden2"));
  parsed.head.dropout = OptionNumber(options, "dropout");
  parsed.frozen_backbone_eval = OptionBool(options, "frozenBackboneEval");
  parsed.fp32_evaluation = OptionBool(options, "fp32Evaluation");
  const std::string precision = OptionString(options, "precision");
  const std::string memory_format = OptionString(options, "memoryFormat");
  const auto embedding_dim = static_cast<int64_t>(OptionNumber(options, "embeddingDim"));
  const auto seed = static_cast<uint64_t>(OptionNumber(options, "seed"));
  return Schedule<std::shared_ptr<StenosisClassifier>>(
      env,
      [backbone, parsed, precision, memory_format, embedding_dim, seed]() mutable {
        parsed.precision = ParsePrecision(precision, backbone->device());
        parsed.memory_format = ParseMemoryFormat(memory_format);
        // The head's initial weights come from this seed, so two runs with the same seed start equal.
        torch::manual_seed(seed);
        return std::make_shared<StenosisClassifier>(backbone, LevelEmbedding(embedding_dim), parsed);
      },
      [](Napi::Env env, std::shared_ptr<StenosisClassifier>& model) -> Napi::Value {
        return ClassifierWrap::NewInstance(env, model);
      });
}

Napi::Value CreateTrainer(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  AddonData* data = env.GetInstanceData<AddonData>();
  if (!info[0].IsObject() || !info[0].As<Napi::Object>().InstanceOf(data->classifier.Value())) {
    throw MakeError(env, "ERR_INVALID_ARG", "createTrainer expects a NativeClassifier");
  }
  std::shared_ptr<StenosisClassifier> model = ClassifierWrap::Unwrap(info[0].As<Napi::Object>())->model();
  Napi::Object options = OptionsArg(info, 1);
  TrainerOptions parsed;
  parsed.learning_rate = OptionNumber(options, "learningRate");
  parsed.weight_decay = OptionNumber(options, "weightDecay");
  parsed.beta1 = OptionNumber(options, "beta1");
  parsed.beta2 = OptionNumber(options, "beta2");
  parsed.eps = OptionNumber(options, "eps");
  parsed.dynamic_loss_scaling = OptionBool(options, "dynamicLossScaling");
  parsed.initial_loss_scale = OptionNumber(options, "initialLossScale");
  parsed.loss_scale_growth_interval = static_cast<int64_t>(OptionNumber(options, "lossScaleGrowthInterval"));
  Napi::Value weights = options.Get("classWeights");
  if (weights.IsArray()) {
    Napi::Array array = weights.As<Napi::Array>();
    for (uint32_t i = 0; i < array.Length(); ++i) {
      parsed.class_weights.push_back(array.Get(i).As<Napi::Number>().FloatValue());
    }
  }
  return Schedule<std::shared_ptr<Trainer>>(
      env, [model, parsed] { return std::make_shared<Trainer>(model, parsed); },
      [](Napi::Env env, std::shared_ptr<Trainer>& trainer) -> Napi::Value {
        return TrainerWrap::NewInstance(env, trainer);
      });
}

Napi::Value SetNumThreads(const Napi::CallbackInfo& info) {
  const double threads = NumberArg(info, 0, "threads");
  try {
    Engine::Instance().SetNumThreads(static_cast<int>(threads));
  } catch (const Error& e) {
    throw MakeError(info.Env(), e.code(), e.what());
  }
  return info.Env().Undefined();
}

Napi::Value GetNumThreads(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), Engine::Instance().NumThreads());
}

// The caching CPU allocator's limit and counters (core/cpu_cache.h).
Napi::Value CpuCacheStatsJs(const Napi::CallbackInfo& info) {
  const CpuCacheStats stats = GetCpuCacheStats();
  Napi::Object result = Napi::Object::New(info.Env());
  result.Set("installed", stats.installed);
  result.Set("limitBytes", static_cast<double>(stats.limit_bytes));
  result.Set("cachedBytes", static_cast<double>(stats.cached_bytes));
  result.Set("blocks", static_cast<double>(stats.blocks));
  result.Set("hits", static_cast<double>(stats.hits));
  result.Set("misses", static_cast<double>(stats.misses));
  return result;
}

Napi::Value SetCpuCacheLimitJs(const Napi::CallbackInfo& info) {
  const double bytes = NumberArg(info, 0, "bytes");
  SetCpuCacheLimit(static_cast<size_t>(bytes));
  return info.Env().Undefined();
}

Napi::Value CudaDeviceCountJs(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), OnEngine<int>([] { return CudaAvailable() ? CudaDeviceCount() : 0; }));
}

Napi::Value PreferredPrecisionJs(const Napi::CallbackInfo& info) {
  const std::string device_spec = StringArg(info, 0, "device");
  return Napi::String::New(info.Env(), OnEngine<std::string>([device_spec] {
                             return PrecisionName(PreferredPrecision(ParseDevice(device_spec)));
                           }));
}

// The CPU generator's state (dropout, random init): saved with a resumable checkpoint so that a resumed run
// draws the same numbers as an uninterrupted one.
Napi::Value GetRngState(const Napi::CallbackInfo& info) {
  return Schedule<std::vector<uint8_t>>(
      info.Env(),
      [] {
        at::Generator generator = at::detail::getDefaultCPUGenerator();
        std::lock_guard<std::mutex> lock(generator.mutex());
        at::Tensor state = generator.get_state().contiguous();
        const auto* bytes = state.data_ptr<uint8_t>();
        return std::vector<uint8_t>(bytes, bytes + state.numel());
      },
      [](Napi::Env env, std::vector<uint8_t>& bytes) -> Napi::Value {
        Napi::Uint8Array out = Napi::Uint8Array::New(env, bytes.size());
        std::copy(bytes.begin(), bytes.end(), out.Data());
        return out;
      });
}

Napi::Value SetRngState(const Napi::CallbackInfo& info) {
  if (!info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
    throw MakeError(info.Env(), "ERR_INVALID_ARG", "state must be a Uint8Array");
  }
  Napi::Uint8Array array = info[0].As<Napi::Uint8Array>();
  at::Tensor state = torch::empty({static_cast<int64_t>(array.ElementLength())}, torch::kUInt8);
  std::copy(array.Data(), array.Data() + array.ElementLength(), state.data_ptr<uint8_t>());
  return ScheduleVoid(info.Env(), [state] {
    at::Generator generator = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(generator.mutex());
    try {
      generator.set_state(state);
    } catch (const std::exception& e) {
      throw Error("ERR_CHECKPOINT", "the saved random generator state is not valid: " + DescribeException(e));
    }
  });
}

// The metadata JSON of a checkpoint, to rebuild its model before loading the tensors into it.
Napi::Value ReadCheckpointMetadata(const Napi::CallbackInfo& info) {
  const std::string path = StringArg(info, 0, "path");
  return Schedule<std::string>(
      info.Env(), [path] { return ReadCheckpoint(path).metadata_json; },
      [](Napi::Env env, std::string& metadata) -> Napi::Value { return Napi::String::New(env, metadata); });
}

// Ends the process at once, without static destructors or atexit handlers: run while the engine threads are
// inside a step (a second Ctrl-C), those would tear libtorch down under them and crash.
Napi::Value ExitNow(const Napi::CallbackInfo& info) {
  const int code = NumberArg(info, 0, "code");
  std::fflush(nullptr);
  std::_Exit(code);
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  try {
    InstallCpuCache();
  } catch (const Error& e) {
    throw MakeError(env, e.code(), e.what());
  }
  auto* data = new AddonData();
  data->backbone = Napi::Persistent(BackboneWrap::Define(env));
  data->classifier = Napi::Persistent(ClassifierWrap::Define(env));
  data->trainer = Napi::Persistent(TrainerWrap::Define(env));
  env.SetInstanceData(data);

  exports.Set("loadBackbone", Napi::Function::New(env, LoadBackbone));
  exports.Set("createClassifier", Napi::Function::New(env, CreateClassifier));
  exports.Set("createTrainer", Napi::Function::New(env, CreateTrainer));
  exports.Set("setNumThreads", Napi::Function::New(env, SetNumThreads));
  exports.Set("getNumThreads", Napi::Function::New(env, GetNumThreads));
  exports.Set("cudaDeviceCount", Napi::Function::New(env, CudaDeviceCountJs));
  exports.Set("preferredPrecision", Napi::Function::New(env, PreferredPrecisionJs));
  exports.Set("cpuCacheStats", Napi::Function::New(env, CpuCacheStatsJs));
  exports.Set("setCpuCacheLimit", Napi::Function::New(env, SetCpuCacheLimitJs));
  exports.Set("readCheckpointMetadata", Napi::Function::New(env, ReadCheckpointMetadata));
  exports.Set("getRngState", Napi::Function::New(env, GetRngState));
  exports.Set("setRngState", Napi::Function::New(env, SetRngState));
  exports.Set("exitNow", Napi::Function::New(env, ExitNow));
  RegisterPreprocessing(env, exports);
  Napi::Object versions = Napi::Object::New(env);
  versions.Set("torch", TORCH_VERSION);
#ifdef STENOSIS_WITH_CUDA
  versions.Set("cudaBuild", true);
#else
  versions.Set("cudaBuild", false);
#endif
  versions.Set("checkpointFormat", static_cast<double>(kCheckpointVersion));
  exports.Set("versions", versions);
  return exports;
}

}  // namespace
}  // namespace stenosis::binding

static Napi::Object InitAddon(Napi::Env env, Napi::Object exports) {
  return stenosis::binding::Init(env, exports);
}

NODE_API_MODULE(lumbar_stenosis, InitAddon)
