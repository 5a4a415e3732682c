// Shared binding helpers: running core work on the engine thread behind a Promise, and converting between JS
// typed arrays and tensors. Arguments arrive already validated by the TypeScript layer; the checks here only
// keep a wrong call from crashing the process.
#pragma once

#include <napi.h>
#include <torch/torch.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/backbone.h"
#include "core/engine.h"
#include "core/error.h"

namespace stenosis::binding {

struct Unit {};

Napi::Error MakeError(Napi::Env env, const std::string& code, const std::string& message);

// Runs work() on the engine's thread (the model engine unless another is given); resolves the returned
// Promise with done(env, result) on the JS thread, or rejects it with an Error carrying the core's code.
// Nothing in work() may touch JS values.
template <typename Result>
Napi::Promise Schedule(Napi::Env env, std::function<Result()> work,
                       std::function<Napi::Value(Napi::Env, Result&)> done,
                       Engine& engine = Engine::Instance()) {
  struct Job {
    explicit Job(Napi::Env env) : deferred(Napi::Promise::Deferred::New(env)) {}
    Napi::Promise::Deferred deferred;
    Napi::ThreadSafeFunction tsfn;
    std::optional<Result> result;
    std::string error_code;
    std::string error_message;
  };
  auto job = std::make_shared<Job>(env);
  job->tsfn = Napi::ThreadSafeFunction::New(env, Napi::Function(), "lumbar-stenosis-job", 0, 1);
  engine.Submit([job, work = std::move(work), done = std::move(done)]() {
    try {
      job->result.emplace(work());
    } catch (const Error& e) {
      job->error_code = e.code();
      job->error_message = e.what();
    } catch (const std::exception& e) {
      job->error_code = "ERR_NATIVE";
      job->error_message = DescribeException(e);
    } catch (...) {
      job->error_code = "ERR_NATIVE";
      job->error_message = "unknown native error";
    }
    job->tsfn.BlockingCall([job, done](Napi::Env env, Napi::Function) {
      Napi::HandleScope scope(env);
      if (!job->error_code.empty()) {
        job->deferred.Reject(MakeError(env, job->error_code, job->error_message).Value());
        return;
      }
      try {
        job->deferred.Resolve(done(env, *job->result));
      } catch (const Napi::Error& e) {
        job->deferred.Reject(e.Value());
      } catch (const std::exception& e) {
        job->deferred.Reject(MakeError(env, "ERR_NATIVE", DescribeException(e)).Value());
      }
    });
    job->tsfn.Release();
  });
  return job->deferred.Promise();
}

inline Napi::Value Undefined(Napi::Env env, Unit&) { return env.Undefined(); }

// Schedule for work without a result: the Promise resolves to undefined.
inline Napi::Promise ScheduleVoid(Napi::Env env, std::function<void()> work,
                                  Engine& engine = Engine::Instance()) {
  return Schedule<Unit>(
      env,
      [work = std::move(work)] {
        work();
        return Unit{};
      },
      Undefined, engine);
}

// Copies a Float32Array of the given shape into a new CPU tensor.
torch::Tensor ImagesFromJs(const Napi::Value& data, const Napi::Value& shape);
// Copies an Int32Array into a new int64 CPU tensor; undefined/null gives an undefined tensor.
torch::Tensor IndicesFromJs(const Napi::Value& data, const char* what);

Napi::Float32Array ToFloat32Array(Napi::Env env, const torch::Tensor& tensor);
// The same values without a copy: the Float32Array views the (CPU, float, contiguous) tensor's memory and
// keeps the tensor alive until it is collected. For large results made for JavaScript alone (an augmented
// batch): it spares the main thread a zeroed allocation and a copy.
Napi::Float32Array ToFloat32ArrayShared(Napi::Env env, const torch::Tensor& tensor);
Napi::Array ToShape(Napi::Env env, const torch::Tensor& tensor);
// [{name, shape, data}] with data copied to Float32Array (null for an undefined tensor, e.g. no gradient
// yet).
Napi::Array NamedTensorsToJs(Napi::Env env, const NamedTensors& tensors);
// Detached CPU float copies, so that the JS thread can read them while the engine goes on.
NamedTensors CopyForJs(const NamedTensors& tensors);
Napi::Array StringsToJs(Napi::Env env, const std::vector<std::string>& strings);

std::string StringArg(const Napi::CallbackInfo& info, size_t index, const char* name);
double NumberArg(const Napi::CallbackInfo& info, size_t index, const char* name);
bool BoolArg(const Napi::CallbackInfo& info, size_t index, const char* name);

}  // namespace stenosis::binding
