#include "binding/common.h"
#include "binding/wrappers.h"

namespace stenosis::binding {

Napi::Function BackboneWrap::Define(Napi::Env env) {
  return DefineClass(env, "NativeBackbone",
                     {
                         InstanceAccessor<&BackboneWrap::FeatureDim>("featureDim"),
                         InstanceAccessor<&BackboneWrap::InputSize>("inputSize"),
                         InstanceAccessor<&BackboneWrap::Path>("path"),
                         InstanceAccessor<&BackboneWrap::Device>("device"),
                         InstanceMethod<&BackboneWrap::Freeze>("freeze"),
                         InstanceMethod<&BackboneWrap::UnfreezeLast>("unfreezeLast"),
                         InstanceMethod<&BackboneWrap::UnfreezeLastBlocks>("unfreezeLastBlocks"),
                         InstanceMethod<&BackboneWrap::ParameterNames>("parameterNames"),
                         InstanceMethod<&BackboneWrap::ParameterCount>("parameterCount"),
                         InstanceMethod<&BackboneWrap::SetTraining>("setTraining"),
                         InstanceMethod<&BackboneWrap::IsTraining>("isTraining"),
                         InstanceMethod<&BackboneWrap::Features>("features"),
                         InstanceMethod<&BackboneWrap::OptimizeForInference>("optimizeForInference"),
                     });
}

Napi::Object BackboneWrap::NewInstance(Napi::Env env, std::shared_ptr<Backbone> backbone) {
  auto* holder = new std::shared_ptr<Backbone>(std::move(backbone));
  auto external = Napi::External<std::shared_ptr<Backbone>>::New(
      env, holder, [](Napi::Env, std::shared_ptr<Backbone>* p) { delete p; });
  return env.GetInstanceData<AddonData>()->backbone.New({external});
}

BackboneWrap::BackboneWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<BackboneWrap>(info) {
  if (info.Length() != 1 || !info[0].IsExternal()) {
    throw MakeError(info.Env(), "ERR_INVALID_ARG", "NativeBackbone is made by loadBackbone(), not with new");
  }
  backbone_ = *info[0].As<Napi::External<std::shared_ptr<Backbone>>>().Data();
}

Napi::Value BackboneWrap::FeatureDim(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(backbone_->feature_dim()));
}

Napi::Value BackboneWrap::InputSize(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(backbone_->input_size()));
}

Napi::Value BackboneWrap::Path(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), backbone_->path());
}

Napi::Value BackboneWrap::Device(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), backbone_->device().str());
}

Napi::Value BackboneWrap::Freeze(const Napi::CallbackInfo& info) {
  auto backbone = backbone_;
  return ScheduleVoid(info.Env(), [backbone] { backbone->Freeze(); });
}

Napi::Value BackboneWrap::OptimizeForInference(const Napi::CallbackInfo& info) {
  auto backbone = backbone_;
  return ScheduleVoid(info.Env(), [backbone] { backbone->OptimizeForInference(); });
}

Napi::Value BackboneWrap::UnfreezeLast(const Napi::CallbackInfo& info) {
  auto backbone = backbone_;
  const auto n = static_cast<int64_t>(NumberArg(info, 0, "n"));
  return Schedule<std::vector<std::string>>(
      info.Env(), [backbone, n] { return backbone->UnfreezeLast(n); }, StringsToJs);
}

Napi::Value BackboneWrap::UnfreezeLastBlocks(const Napi::CallbackInfo& info) {
  auto backbone = backbone_;
  const auto n = static_cast<int64_t>(NumberArg(info, 0, "n"));
  return Schedule<std::vector<std::string>>(
      info.Env(), [backbone, n] { return backbone->UnfreezeLastBlocks(n); }, StringsToJs);
}

Napi::Value BackboneWrap::ParameterNames(const Napi::CallbackInfo& info) {
  auto backbone = backbone_;
  const bool trainable_only = BoolArg(info, 0, "trainableOnly");
  return Schedule<std::vector<std::string>>(
      info.Env(),
      [backbone, trainable_only] {
        std::vector<std::string> names;
        for (const auto& [name, tensor] : backbone->NamedParameters(trainable_only)) names.push_back(name);
        return names;
      },
      StringsToJs);
}

Napi::Value BackboneWrap::ParameterCount(const Napi::CallbackInfo& info) {
  auto backbone = backbone_;
  const bool trainable_only = BoolArg(info, 0, "trainableOnly");
  return Schedule<int64_t>(
      info.Env(), [backbone, trainable_only] { return backbone->ParameterCount(trainable_only); },
      [](Napi::Env env, int64_t& count) { return Napi::Number::New(env, static_cast<double>(count)); });
}

Napi::Value BackboneWrap::SetTraining(const Napi::CallbackInfo& info) {
  auto backbone = backbone_;
  const bool training = BoolArg(info, 0, "training");
  return ScheduleVoid(info.Env(), [backbone, training] { backbone->SetTraining(training); });
}

Napi::Value BackboneWrap::IsTraining(const Napi::CallbackInfo& info) {
  auto backbone = backbone_;
  return Schedule<bool>(
      info.Env(), [backbone] { return backbone->IsTraining(); },
      [](Napi::Env env, bool& training) { return Napi::Boolean::New(env, training); });
}

Napi::Value BackboneWrap::Features(const Napi::CallbackInfo& info) {
  auto backbone = backbone_;
  torch::Tensor images = ImagesFromJs(info[0], info[1]);
  return Schedule<torch::Tensor>(
      info.Env(),
      [backbone, images] {
        // No autograd, but not InferenceMode: TorchScript caches tensors made in a run, and inference tensors
        // reused by a later training run cannot be saved for backward (seen with Swin-B).
        torch::NoGradGuard no_grad;
        return backbone->Forward(images.to(backbone->device())).to(torch::kCPU, torch::kFloat32).contiguous();
      },
      [](Napi::Env env, torch::Tensor& features) -> Napi::Value { return ToFloat32Array(env, features); });
}

}  // namespace stenosis::binding
