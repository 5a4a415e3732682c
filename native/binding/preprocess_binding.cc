// Data preparation on the data engine's thread, so that the next batch is prepared while the model engine
// trains on the current one.
#include "binding/preprocess_binding.h"

#include <cmath>
#include <cstring>

#include "binding/common.h"
#include "core/preprocess.h"

namespace stenosis::binding {
namespace {

Napi::Float32Array TypedFloats(const Napi::Value& value, const char* name) {
  if (!value.IsTypedArray() || value.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array) {
    throw MakeError(value.Env(), "ERR_INVALID_ARG", std::string(name) + " must be a Float32Array");
  }
  return value.As<Napi::Float32Array>();
}

double Field(const Napi::Object& options, const char* key, double fallback) {
  Napi::Value value = options.Get(key);
  return value.IsNumber() ? value.As<Napi::Number>().DoubleValue() : fallback;
}

std::array<float, 3> Triple(const Napi::Object& options, const char* key) {
  Napi::Value value = options.Get(key);
  if (!value.IsArray() || value.As<Napi::Array>().Length() != 3) {
    throw MakeError(options.Env(), "ERR_INVALID_ARG", std::string(key) + " must be an array of 3 numbers");
  }
  Napi::Array array = value.As<Napi::Array>();
  return {array.Get(0u).As<Napi::Number>().FloatValue(), array.Get(1u).As<Napi::Number>().FloatValue(),
          array.Get(2u).As<Napi::Number>().FloatValue()};
}

torch::Tensor CopyFloats(const Napi::Float32Array& array, std::vector<int64_t> sizes) {
  torch::Tensor tensor = torch::empty(sizes, torch::kFloat32);
  std::memcpy(tensor.data_ptr<float>(), array.Data(), sizeof(float) * array.ElementLength());
  return tensor;
}

// prepareBase(pixels: Float32Array, rows, cols, {size, cropX0, cropY0, cropWidth, cropHeight, scaling,
//             percentileLow, percentileHigh}) -> Promise<Float32Array [size * size]>
Napi::Value PrepareBaseJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Float32Array pixels = TypedFloats(info[0], "pixels");
  const auto rows = static_cast<int64_t>(NumberArg(info, 1, "rows"));
  const auto cols = static_cast<int64_t>(NumberArg(info, 2, "cols"));
  if (rows < 1 || cols < 1 || static_cast<int64_t>(pixels.ElementLength()) != rows * cols) {
    throw MakeError(env, "ERR_INVALID_ARG", "pixels must hold rows * cols values");
  }
  if (!info[3].IsObject()) throw MakeError(env, "ERR_INVALID_ARG", "options must be an object");
  Napi::Object options = info[3].As<Napi::Object>();
  BaseOptions parsed;
  parsed.size = static_cast<int64_t>(Field(options, "size", 224));
  parsed.crop_x0 = Field(options, "cropX0", 0);
  parsed.crop_y0 = Field(options, "cropY0", 0);
  parsed.crop_width = Field(options, "cropWidth", 0);
  parsed.crop_height = Field(options, "cropHeight", 0);
  Napi::Value scaling = options.Get("scaling");
  parsed.scaling = scaling.IsString() && scaling.As<Napi::String>().Utf8Value() == "percentile"
                       ? IntensityScaling::kPercentile
                       : IntensityScaling::kMinMax;
  parsed.percentile_low = Field(options, "percentileLow", 0.5);
  parsed.percentile_high = Field(options, "percentileHigh", 99.5);
  torch::Tensor grey = CopyFloats(pixels, {rows, cols});
  return Schedule<torch::Tensor>(
      env, [grey, parsed] { return PrepareBase(grey, parsed); },
      [](Napi::Env env, torch::Tensor& base) -> Napi::Value { return ToFloat32Array(env, base); },
      Engine::Data());
}

// The stacked base images, copied out of JavaScript: a Float32Array as floats, a Uint16Array (the sample
// cache's 16-bit values) as its raw bits in an int16 tensor, converted by BasesToFloat on the data thread.
torch::Tensor BasesFromJs(const Napi::Value& value, const std::vector<int64_t>& sizes) {
  const auto type = value.IsTypedArray() ? value.As<Napi::TypedArray>().TypedArrayType() : napi_int8_array;
  if (type != napi_uint16_array && type != napi_float32_array) {
    throw MakeError(value.Env(), "ERR_INVALID_ARG", "bases must be a Float32Array or a Uint16Array");
  }
  const Napi::TypedArray array = value.As<Napi::TypedArray>();
  if (static_cast<int64_t>(array.ElementLength()) != sizes[0] * sizes[1] * sizes[2]) {
    throw MakeError(value.Env(), "ERR_INVALID_ARG", "bases must hold batch * size * size values");
  }
  torch::Tensor tensor = torch::empty(sizes, type == napi_uint16_array ? torch::kInt16 : torch::kFloat32);
  std::memcpy(tensor.data_ptr(), static_cast<const uint8_t*>(array.ArrayBuffer().Data()) + array.ByteOffset(),
              array.ByteLength());
  return tensor;
}

// Floats in [0, 1]: 16-bit values as value / 65535, rounded to float as JavaScript's `q / 65535` stored in a
// Float32Array would be.
torch::Tensor BasesToFloat(const torch::Tensor& bases) {
  if (bases.scalar_type() == torch::kFloat32) return bases;
  torch::Tensor out = torch::empty(bases.sizes(), torch::kFloat32);
  const auto* in = reinterpret_cast<const uint16_t*>(bases.data_ptr<int16_t>());
  float* values = out.data_ptr<float>();
  for (int64_t i = 0; i < bases.numel(); ++i) values[i] = static_cast<float>(in[i] / 65535.0);
  return out;
}

// augmentBatch(bases: Float32Array | Uint16Array [B * S * S], batch, size, flips: Uint8Array,
//              anglesDegrees: Float32Array, {mean, std}) -> Promise<Float32Array [B * 3 * S * S]>
Napi::Value AugmentBatchJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const auto batch = static_cast<int64_t>(NumberArg(info, 1, "batch"));
  const auto size = static_cast<int64_t>(NumberArg(info, 2, "size"));
  if (batch < 1 || size < 1) throw MakeError(env, "ERR_INVALID_ARG", "batch and size must be positive");
  if (!info[3].IsTypedArray() || info[3].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
    throw MakeError(env, "ERR_INVALID_ARG", "flips must be a Uint8Array");
  }
  Napi::Uint8Array flip_array = info[3].As<Napi::Uint8Array>();
  Napi::Float32Array angle_array = TypedFloats(info[4], "anglesDegrees");
  if (static_cast<int64_t>(flip_array.ElementLength()) != batch ||
      static_cast<int64_t>(angle_array.ElementLength()) != batch) {
    throw MakeError(env, "ERR_INVALID_ARG", "flips and anglesDegrees need one value per image");
  }
  if (!info[5].IsObject()) throw MakeError(env, "ERR_INVALID_ARG", "options must be an object");
  AugmentOptions options;
  options.mean = Triple(info[5].As<Napi::Object>(), "mean");
  options.std = Triple(info[5].As<Napi::Object>(), "std");
  std::vector<bool> flips(batch);
  std::vector<float> angles(batch);
  for (int64_t i = 0; i < batch; ++i) {
    flips[i] = flip_array.Data()[i] != 0;
    angles[i] = angle_array.Data()[i];
    if (!std::isfinite(angles[i]))
      throw MakeError(env, "ERR_INVALID_ARG", "anglesDegrees must be finite numbers");
  }
  torch::Tensor tensor = BasesFromJs(info[0], {batch, size, size});
  return Schedule<torch::Tensor>(
      env,
      [tensor, flips, angles, options] { return AugmentBatch(BasesToFloat(tensor), flips, angles, options); },
      [](Napi::Env env, torch::Tensor& out) -> Napi::Value { return ToFloat32ArrayShared(env, out); },
      Engine::Data());
}

}  // namespace

void RegisterPreprocessing(Napi::Env env, Napi::Object exports) {
  exports.Set("prepareBase", Napi::Function::New(env, PrepareBaseJs));
  exports.Set("augmentBatch", Napi::Function::New(env, AugmentBatchJs));
}

}  // namespace stenosis::binding
