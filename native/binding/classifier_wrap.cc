#include "binding/common.h"
#include "binding/wrappers.h"

namespace stenosis::binding {

Napi::Function ClassifierWrap::Define(Napi::Env env) {
  return DefineClass(env, "NativeClassifier",
                     {
                         InstanceMethod<&ClassifierWrap::Forward>("forward"),
                         InstanceMethod<&ClassifierWrap::Features>("features"),
                         InstanceMethod<&ClassifierWrap::SetTraining>("setTraining"),
                         InstanceMethod<&ClassifierWrap::Parameters>("parameters"),
                         InstanceMethod<&ClassifierWrap::ParameterCount>("parameterCount"),
                         InstanceMethod<&ClassifierWrap::Options>("options"),
                     });
}

Napi::Object ClassifierWrap::NewInstance(Napi::Env env, std::shared_ptr<StenosisClassifier> model) {
  auto* holder = new std::shared_ptr<StenosisClassifier>(std::move(model));
  auto external = Napi::External<std::shared_ptr<StenosisClassifier>>::New(
      env, holder, [](Napi::Env, std::shared_ptr<StenosisClassifier>* p) { delete p; });
  return env.GetInstanceData<AddonData>()->classifier.New({external});
}

ClassifierWrap::ClassifierWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ClassifierWrap>(info) {
  if (info.Length() != 1 || !info[0].IsExternal()) {
    throw MakeError(info.Env(), "ERR_INVALID_ARG",
                    "NativeClassifier is made by createClassifier(), not with new");
  }
  model_ = *info[0].As<Napi::External<std::shared_ptr<StenosisClassifier>>>().Data();
}

Napi::Value ClassifierWrap::Forward(const Napi::CallbackInfo& info) {
  auto model = model_;
  torch::Tensor images = ImagesFromJs(info[0], info[1]);
  torch::Tensor levels = IndicesFromJs(info[2], "levels");
  return Schedule<torch::Tensor>(
      info.Env(),
      [model, images, levels] {
        // No autograd, but not InferenceMode: TorchScript caches tensors made in a run, and inference tensors
        // reused by a later training run cannot be saved for backward (seen with Swin-B).
        torch::NoGradGuard no_grad;
        return model->Forward(images, levels).to(torch::kCPU).contiguous();
      },
      [](Napi::Env env, torch::Tensor& logits) -> Napi::Value { return ToFloat32Array(env, logits); });
}

Napi::Value ClassifierWrap::Features(const Napi::CallbackInfo& info) {
  auto model = model_;
  torch::Tensor images = ImagesFromJs(info[0], info[1]);
  // The pass (training or evaluation) whose features are wanted; the current mode's when not given.
  std::optional<bool> training;
  if (info.Length() > 2 && !info[2].IsUndefined()) training = BoolArg(info, 2, "training");
  return Schedule<torch::Tensor>(
      info.Env(),
      [model, images, training] {
        // No autograd, but not InferenceMode: TorchScript caches tensors made in a run, and inference tensors
        // reused by a later training run cannot be saved for backward (seen with Swin-B).
        torch::NoGradGuard no_grad;
        torch::Tensor features = training ? model->Features(images, *training) : model->Features(images);
        return features.to(torch::kCPU, torch::kFloat32).contiguous();
      },
      [](Napi::Env env, torch::Tensor& features) -> Napi::Value { return ToFloat32Array(env, features); });
}

Napi::Value ClassifierWrap::SetTraining(const Napi::CallbackInfo& info) {
  auto model = model_;
  const bool training = BoolArg(info, 0, "training");
  return ScheduleVoid(info.Env(), [model, training] { model->SetTraining(training); });
}

Napi::Value ClassifierWrap::Parameters(const Napi::CallbackInfo& info) {
  auto model = model_;
  const bool trainable_only = BoolArg(info, 0, "trainableOnly");
  return Schedule<NamedTensors>(
      info.Env(), [model, trainable_only] { return CopyForJs(model->NamedParameters(trainable_only)); },
      NamedTensorsToJs);
}

Napi::Value ClassifierWrap::ParameterCount(const Napi::CallbackInfo& info) {
  auto model = model_;
  const bool trainable_only = BoolArg(info, 0, "trainableOnly");
  return Schedule<int64_t>(
      info.Env(), [model, trainable_only] { return model->ParameterCount(trainable_only); },
      [](Napi::Env env, int64_t& count) { return Napi::Number::New(env, static_cast<double>(count)); });
}

Napi::Value ClassifierWrap::Options(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const ClassifierOptions& options = model_->options();
  Napi::Object out = Napi::Object::New(env);
  out.Set("embeddingDim", static_cast<double>(model_->embedding()->dim()));
  out.Set("hidden1", static_cast<double>(options.head.hidden1));
  out.Set("hidden2", static_cast<double>(options.head.hidden2));
  out.Set("dropout", options.head.dropout);
  out.Set("frozenBackboneEval", options.frozen_backbone_eval);
  out.Set("fp32Evaluation", options.fp32_evaluation);
  out.Set("precision", PrecisionName(options.precision));
  out.Set("memoryFormat", MemoryFormatName(options.memory_format));
  out.Set("device", model_->device().str());
  return out;
}

}  // namespace stenosis::binding
