#include "binding/common.h"

#include <cstring>
#include <memory>

namespace stenosis::binding {

Napi::Error MakeError(Napi::Env env, const std::string& code, const std::string& message) {
  Napi::Error error = Napi::Error::New(env, message);
  error.Set("code", Napi::String::New(env, code));
  return error;
}

torch::Tensor ImagesFromJs(const Napi::Value& data, const Napi::Value& shape) {
  Napi::Env env = data.Env();
  if (!data.IsTypedArray() || data.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array) {
    throw MakeError(env, "ERR_INVALID_ARG", "images must be a Float32Array");
  }
  if (!shape.IsArray()) throw MakeError(env, "ERR_INVALID_ARG", "image shape must be an array");
  Napi::Array dims = shape.As<Napi::Array>();
  std::vector<int64_t> sizes;
  int64_t count = 1;
  for (uint32_t i = 0; i < dims.Length(); ++i) {
    const int64_t dim = dims.Get(i).As<Napi::Number>().Int64Value();
    if (dim < 0) throw MakeError(env, "ERR_INVALID_ARG", "image shape has a negative dimension");
    sizes.push_back(dim);
    count *= dim;
  }
  Napi::Float32Array array = data.As<Napi::Float32Array>();
  if (static_cast<int64_t>(array.ElementLength()) != count) {
    throw MakeError(env, "ERR_INVALID_ARG",
                    "images hold " + std::to_string(array.ElementLength()) + " values but the shape " +
                        c10::str(c10::IntArrayRef(sizes)) + " needs " + std::to_string(count));
  }
  torch::Tensor tensor = torch::empty(sizes, torch::kFloat32);
  if (count > 0) std::memcpy(tensor.data_ptr<float>(), array.Data(), sizeof(float) * count);
  return tensor;
}

torch::Tensor IndicesFromJs(const Napi::Value& data, const char* what) {
  Napi::Env env = data.Env();
  if (data.IsUndefined() || data.IsNull()) return torch::Tensor();
  if (!data.IsTypedArray() || data.As<Napi::TypedArray>().TypedArrayType() != napi_int32_array) {
    throw MakeError(env, "ERR_INVALID_ARG", std::string(what) + " must be an Int32Array");
  }
  Napi::Int32Array array = data.As<Napi::Int32Array>();
  const int64_t n = static_cast<int64_t>(array.ElementLength());
  torch::Tensor tensor = torch::empty({n}, torch::kLong);
  auto* out = tensor.data_ptr<int64_t>();
  const int32_t* in = array.Data();
  for (int64_t i = 0; i < n; ++i) out[i] = in[i];
  return tensor;
}

Napi::Float32Array ToFloat32Array(Napi::Env env, const torch::Tensor& tensor) {
  torch::Tensor cpu = tensor.detach().to(torch::kCPU, torch::kFloat32).contiguous();
  Napi::Float32Array array = Napi::Float32Array::New(env, cpu.numel());
  if (cpu.numel() > 0) std::memcpy(array.Data(), cpu.data_ptr<float>(), sizeof(float) * cpu.numel());
  return array;
}

Napi::Float32Array ToFloat32ArrayShared(Napi::Env env, const torch::Tensor& tensor) {
  torch::Tensor cpu = tensor.detach().to(torch::kCPU, torch::kFloat32).contiguous();
  if (cpu.numel() == 0) return Napi::Float32Array::New(env, 0);
  const int64_t bytes = static_cast<int64_t>(sizeof(float) * cpu.numel());
  auto owner = std::make_unique<torch::Tensor>(cpu);
  Napi::ArrayBuffer buffer;
  try {
    buffer = Napi::ArrayBuffer::New(
        env, owner->data_ptr<float>(), bytes,
        [](Napi::Env env, void*, torch::Tensor* kept) {
          Napi::MemoryManagement::AdjustExternalMemory(env,
                                                       -static_cast<int64_t>(sizeof(float) * kept->numel()));
          delete kept;
        },
        owner.get());
  } catch (const Napi::Error&) {
    // A runtime that refuses external buffers (e.g. one with V8's memory sandbox): copy instead.
    return ToFloat32Array(env, cpu);
  }
  owner.release();  // the finalizer owns it now
  // Tells V8's collector about the memory it now keeps alive, so that dropped batches are collected promptly.
  Napi::MemoryManagement::AdjustExternalMemory(env, bytes);
  return Napi::Float32Array::New(env, cpu.numel(), buffer, 0);
}

Napi::Array ToShape(Napi::Env env, const torch::Tensor& tensor) {
  Napi::Array shape = Napi::Array::New(env, tensor.dim());
  for (int64_t i = 0; i < tensor.dim(); ++i)
    shape.Set(i, Napi::Number::New(env, static_cast<double>(tensor.size(i))));
  return shape;
}

NamedTensors CopyForJs(const NamedTensors& tensors) {
  NamedTensors out;
  for (const auto& [name, tensor] : tensors) {
    out.emplace_back(name,
                     tensor.defined() ? tensor.detach().to(torch::kCPU, torch::kFloat32).clone() : tensor);
  }
  return out;
}

Napi::Array NamedTensorsToJs(Napi::Env env, const NamedTensors& tensors) {
  Napi::Array out = Napi::Array::New(env, tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i) {
    Napi::Object item = Napi::Object::New(env);
    item.Set("name", tensors[i].first);
    const torch::Tensor& tensor = tensors[i].second;
    item.Set("shape", tensor.defined() ? ToShape(env, tensor) : Napi::Array::New(env));
    item.Set("data", tensor.defined() ? Napi::Value(ToFloat32Array(env, tensor)) : env.Null());
    out.Set(i, item);
  }
  return out;
}

Napi::Array StringsToJs(Napi::Env env, const std::vector<std::string>& strings) {
  Napi::Array out = Napi::Array::New(env, strings.size());
  for (size_t i = 0; i < strings.size(); ++i) out.Set(i, strings[i]);
  return out;
}

std::string StringArg(const Napi::CallbackInfo& info, size_t index, const char* name) {
  if (!info[index].IsString())
    throw MakeError(info.Env(), "ERR_INVALID_ARG", std::string(name) + " must be a string");
  return info[index].As<Napi::String>().Utf8Value();
}

double NumberArg(const Napi::CallbackInfo& info, size_t index, const char* name) {
  if (!info[index].IsNumber())
    throw MakeError(info.Env(), "ERR_INVALID_ARG", std::string(name) + " must be a number");
  return info[index].As<Napi::Number>().DoubleValue();
}

bool BoolArg(const Napi::CallbackInfo& info, size_t index, const char* name) {
  if (!info[index].IsBoolean()) {
    throw MakeError(info.Env(), "ERR_INVALID_ARG", std::string(name) + " must be a boolean");
  }
  return info[index].As<Napi::Boolean>().Value();
}

}  // namespace stenosis::binding
