#include "binding/common.h"
#include "binding/wrappers.h"

namespace stenosis::binding {
namespace {

struct Batch {
  torch::Tensor inputs;
  torch::Tensor levels;
  torch::Tensor labels;
  Input input = Input::kImages;
};

// (data, shape, levels, labels) starting at argument `first`; with `kind` ("images" or "features") at
// argument `kind_at` when the method takes one.
Batch BatchFromJs(const Napi::CallbackInfo& info, size_t first, size_t kind_at = 0) {
  Input input = Input::kImages;
  if (kind_at > 0) {
    const std::string kind = StringArg(info, kind_at, "input");
    if (kind == "features") {
      input = Input::kFeatures;
    } else if (kind != "images") {
      throw MakeError(info.Env(), "ERR_INVALID_ARG",
                      "input must be 'images' or 'features', got '" + kind + "'");
    }
  }
  return {ImagesFromJs(info[first], info[first + 1]), IndicesFromJs(info[first + 2], "levels"),
          IndicesFromJs(info[first + 3], "labels"), input};
}

Napi::Value LossToJs(Napi::Env env, double& loss) { return Napi::Number::New(env, loss); }

}  // namespace

Napi::Function TrainerWrap::Define(Napi::Env env) {
  return DefineClass(env, "NativeTrainer",
                     {
                         InstanceMethod<&TrainerWrap::Backward>("backward"),
                         InstanceMethod<&TrainerWrap::Step>("step"),
                         InstanceMethod<&TrainerWrap::ClipGradients>("clipGradients"),
                         InstanceMethod<&TrainerWrap::TrialStep>("trialStep"),
                         InstanceMethod<&TrainerWrap::LastPredictions>("lastPredictions"),
                         InstanceMethod<&TrainerWrap::TrainStep>("trainStep"),
                         InstanceMethod<&TrainerWrap::Evaluate>("evaluate"),
                         InstanceMethod<&TrainerWrap::Gradients>("gradients"),
                         InstanceMethod<&TrainerWrap::TrainableNames>("trainableNames"),
                         InstanceMethod<&TrainerWrap::Steps>("steps"),
                         InstanceMethod<&TrainerWrap::LossScale>("lossScale"),
                         InstanceMethod<&TrainerWrap::SetInferenceOnly>("setInferenceOnly"),
                         InstanceMethod<&TrainerWrap::SetLearningRate>("setLearningRate"),
                         InstanceMethod<&TrainerWrap::Save>("save"),
                         InstanceMethod<&TrainerWrap::Load>("load"),
                     });
}

Napi::Object TrainerWrap::NewInstance(Napi::Env env, std::shared_ptr<Trainer> trainer) {
  auto* holder = new std::shared_ptr<Trainer>(std::move(trainer));
  auto external = Napi::External<std::shared_ptr<Trainer>>::New(
      env, holder, [](Napi::Env, std::shared_ptr<Trainer>* p) { delete p; });
  return env.GetInstanceData<AddonData>()->trainer.New({external});
}

TrainerWrap::TrainerWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<TrainerWrap>(info) {
  if (info.Length() != 1 || !info[0].IsExternal()) {
    throw MakeError(info.Env(), "ERR_INVALID_ARG", "NativeTrainer is made by createTrainer(), not with new");
  }
  trainer_ = *info[0].As<Napi::External<std::shared_ptr<Trainer>>>().Data();
}

Napi::Value TrainerWrap::Backward(const Napi::CallbackInfo& info) {
  auto trainer = trainer_;
  Batch batch = BatchFromJs(info, 0, 6);
  const bool accumulate = BoolArg(info, 4, "accumulate");
  const double loss_scale = NumberArg(info, 5, "lossScale");
  return Schedule<double>(
      info.Env(),
      [trainer, batch, accumulate, loss_scale] {
        return trainer->Backward(batch.inputs, batch.levels, batch.labels, accumulate, loss_scale,
                                 batch.input);
      },
      LossToJs);
}

Napi::Value TrainerWrap::Step(const Napi::CallbackInfo& info) {
  auto trainer = trainer_;
  return ScheduleVoid(info.Env(), [trainer] { trainer->Step(); });
}

Napi::Value TrainerWrap::ClipGradients(const Napi::CallbackInfo& info) {
  auto trainer = trainer_;
  const double max_norm = NumberArg(info, 0, "maxNorm");
  return Schedule<double>(
      info.Env(), [trainer, max_norm] { return trainer->ClipGradients(max_norm); }, LossToJs);
}

Napi::Value TrainerWrap::TrialStep(const Napi::CallbackInfo& info) {
  auto trainer = trainer_;
  Batch batch = BatchFromJs(info, 0);
  return Schedule<std::string>(
      info.Env(), [trainer, batch] { return trainer->TrialStep(batch.inputs, batch.levels, batch.labels); },
      [](Napi::Env env, std::string& failure) -> Napi::Value { return Napi::String::New(env, failure); });
}

Napi::Value TrainerWrap::LastPredictions(const Napi::CallbackInfo& info) {
  auto trainer = trainer_;
  return Schedule<std::vector<int32_t>>(
      info.Env(), [trainer] { return trainer->LastPredictions(); },
      [](Napi::Env env, std::vector<int32_t>& predicted) -> Napi::Value {
        Napi::Int32Array out = Napi::Int32Array::New(env, predicted.size());
        std::copy(predicted.begin(), predicted.end(), out.Data());
        return out;
      });
}

Napi::Value TrainerWrap::TrainStep(const Napi::CallbackInfo& info) {
  auto trainer = trainer_;
  Batch batch = BatchFromJs(info, 0, 4);
  return Schedule<double>(
      info.Env(),
      [trainer, batch] { return trainer->TrainStep(batch.inputs, batch.levels, batch.labels, batch.input); },
      LossToJs);
}

Napi::Value TrainerWrap::Evaluate(const Napi::CallbackInfo& info) {
  auto trainer = trainer_;
  Batch batch = BatchFromJs(info, 0, 4);
  return Schedule<EvalOutput>(
      info.Env(),
      [trainer, batch] { return trainer->Evaluate(batch.inputs, batch.levels, batch.labels, batch.input); },
      [](Napi::Env env, EvalOutput& out) -> Napi::Value {
        Napi::Object result = Napi::Object::New(env);
        result.Set("probabilities", ToFloat32Array(env, out.probabilities));
        result.Set("loss", out.has_loss ? Napi::Value(Napi::Number::New(env, out.loss)) : env.Null());
        return result;
      });
}

Napi::Value TrainerWrap::Gradients(const Napi::CallbackInfo& info) {
  auto trainer = trainer_;
  return Schedule<NamedTensors>(
      info.Env(), [trainer] { return CopyForJs(trainer->Gradients()); }, NamedTensorsToJs);
}

Napi::Value TrainerWrap::TrainableNames(const Napi::CallbackInfo& info) {
  return StringsToJs(info.Env(), trainer_->trainable_names());
}

Napi::Value TrainerWrap::Steps(const Napi::CallbackInfo& info) {
  auto trainer = trainer_;
  return Schedule<int64_t>(
      info.Env(), [trainer] { return trainer->steps(); },
      [](Napi::Env env, int64_t& steps) { return Napi::Number::New(env, static_cast<double>(steps)); });
}

Napi::Value TrainerWrap::LossScale(const Napi::CallbackInfo& info) {
  auto trainer = trainer_;
  return Schedule<LossScaleState>(
      info.Env(), [trainer] { return trainer->loss_scale(); },
      [](Napi::Env env, LossScaleState& state) -> Napi::Value {
        Napi::Object out = Napi::Object::New(env);
        out.Set("scale", state.scale);
        out.Set("goodSteps", static_cast<double>(state.good_steps));
        out.Set("skippedSteps", static_cast<double>(state.skipped_steps));
        out.Set("lastStepSkipped", state.last_step_skipped);
        return out;
      });
}

Napi::Value TrainerWrap::SetInferenceOnly(const Napi::CallbackInfo& info) {
  auto trainer = trainer_;
  return ScheduleVoid(info.Env(), [trainer] { trainer->SetInferenceOnly(); });
}

Napi::Value TrainerWrap::SetLearningRate(const Napi::CallbackInfo& info) {
  auto trainer = trainer_;
  const double learning_rate = NumberArg(info, 0, "learningRate");
  return ScheduleVoid(info.Env(), [trainer, learning_rate] { trainer->SetLearningRate(learning_rate); });
}

Napi::Value TrainerWrap::Save(const Napi::CallbackInfo& info) {
  auto trainer = trainer_;
  const std::string path = StringArg(info, 0, "path");
  const std::string metadata = StringArg(info, 1, "metadata");
  return ScheduleVoid(info.Env(), [trainer, path, metadata] { trainer->Save(path, metadata); });
}

Napi::Value TrainerWrap::Load(const Napi::CallbackInfo& info) {
  auto trainer = trainer_;
  const std::string path = StringArg(info, 0, "path");
  const bool weights_only = BoolArg(info, 1, "weightsOnly");
  return Schedule<std::string>(
      info.Env(), [trainer, path, weights_only] { return trainer->Load(path, weights_only); },
      [](Napi::Env env, std::string& metadata) -> Napi::Value { return Napi::String::New(env, metadata); });
}

}  // namespace stenosis::binding
