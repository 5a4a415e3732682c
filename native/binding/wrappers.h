// ObjectWrap classes over the core. Instances are made only by the addon's async factories (loadBackbone,
// createClassifier, createTrainer), which pass the new core object in through an External.
#pragma once

#include <napi.h>

#include <memory>

#include "core/backbone.h"
#include "core/classifier.h"
#include "core/trainer.h"

namespace stenosis::binding {

struct AddonData {
  Napi::FunctionReference backbone;
  Napi::FunctionReference classifier;
  Napi::FunctionReference trainer;
};

class BackboneWrap : public Napi::ObjectWrap<BackboneWrap> {
 public:
  static Napi::Function Define(Napi::Env env);
  static Napi::Object NewInstance(Napi::Env env, std::shared_ptr<Backbone> backbone);
  explicit BackboneWrap(const Napi::CallbackInfo& info);
  const std::shared_ptr<Backbone>& backbone() const { return backbone_; }

 private:
  Napi::Value FeatureDim(const Napi::CallbackInfo& info);
  Napi::Value InputSize(const Napi::CallbackInfo& info);
  Napi::Value Path(const Napi::CallbackInfo& info);
  Napi::Value Device(const Napi::CallbackInfo& info);
  Napi::Value Freeze(const Napi::CallbackInfo& info);
  Napi::Value UnfreezeLast(const Napi::CallbackInfo& info);
  Napi::Value UnfreezeLastBlocks(const Napi::CallbackInfo& info);
  Napi::Value ParameterNames(const Napi::CallbackInfo& info);
  Napi::Value ParameterCount(const Napi::CallbackInfo& info);
  Napi::Value SetTraining(const Napi::CallbackInfo& info);
  Napi::Value IsTraining(const Napi::CallbackInfo& info);
  Napi::Value Features(const Napi::CallbackInfo& info);
  Napi::Value OptimizeForInference(const Napi::CallbackInfo& info);

  std::shared_ptr<Backbone> backbone_;
};

class ClassifierWrap : public Napi::ObjectWrap<ClassifierWrap> {
 public:
  static Napi::Function Define(Napi::Env env);
  static Napi::Object NewInstance(Napi::Env env, std::shared_ptr<StenosisClassifier> model);
  explicit ClassifierWrap(const Napi::CallbackInfo& info);
  const std::shared_ptr<StenosisClassifier>& model() const { return model_; }

 private:
  Napi::Value Forward(const Napi::CallbackInfo& info);
  Napi::Value Features(const Napi::CallbackInfo& info);
  Napi::Value SetTraining(const Napi::CallbackInfo& info);
  Napi::Value Parameters(const Napi::CallbackInfo& info);
  Napi::Value ParameterCount(const Napi::CallbackInfo& info);
  Napi::Value Options(const Napi::CallbackInfo& info);

  std::shared_ptr<StenosisClassifier> model_;
};

class TrainerWrap : public Napi::ObjectWrap<TrainerWrap> {
 public:
  static Napi::Function Define(Napi::Env env);
  static Napi::Object NewInstance(Napi::Env env, std::shared_ptr<Trainer> trainer);
  explicit TrainerWrap(const Napi::CallbackInfo& info);

 private:
  Napi::Value Backward(const Napi::CallbackInfo& info);
  Napi::Value Step(const Napi::CallbackInfo& info);
  Napi::Value ClipGradients(const Napi::CallbackInfo& info);
  Napi::Value TrialStep(const Napi::CallbackInfo& info);
  Napi::Value LastPredictions(const Napi::CallbackInfo& info);
  Napi::Value TrainStep(const Napi::CallbackInfo& info);
  Napi::Value Evaluate(const Napi::CallbackInfo& info);
  Napi::Value Gradients(const Napi::CallbackInfo& info);
  Napi::Value TrainableNames(const Napi::CallbackInfo& info);
  Napi::Value Steps(const Napi::CallbackInfo& info);
  Napi::Value LossScale(const Napi::CallbackInfo& info);
  Napi::Value SetInferenceOnly(const Napi::CallbackInfo& info);
  Napi::Value SetLearningRate(const Napi::CallbackInfo& info);
  Napi::Value Save(const Napi::CallbackInfo& info);
  Napi::Value Load(const Napi::CallbackInfo& info);

  std::shared_ptr<Trainer> trainer_;
};

}  // namespace stenosis::binding
