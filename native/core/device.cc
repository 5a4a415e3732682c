#include "core/device.h"

#include <torch/cuda.h>

#include "core/error.h"

namespace stenosis {

bool CudaAvailable() { return torch::cuda::is_available(); }

int CudaDeviceCount() { return static_cast<int>(torch::cuda::device_count()); }

torch::Device ParseDevice(const std::string& spec) {
  if (spec == "cpu") return torch::Device(torch::kCPU);
  if (spec == "cuda" || spec.rfind("cuda:", 0) == 0) {
    int index = 0;
    if (spec.size() > 5) {
      const std::string digits = spec.substr(5);
      if (digits.empty() || digits.find_first_not_of("0123456789") != std::string::npos) {
        throw Error("ERR_INVALID_DEVICE", "device '" + spec + "' is not valid: expected cpu, cuda or cuda:N");
      }
      index = std::stoi(digits);
    }
    if (!CudaAvailable()) {
      throw Error("ERR_CUDA_UNAVAILABLE",
                  "device '" + spec +
                      "' was asked for but CUDA is not available: the linked libtorch was built without CUDA "
                      "or no GPU is visible. Use device 'cpu', or build against a CUDA libtorch (LIBTORCH).");
    }
    if (index >= CudaDeviceCount()) {
      throw Error("ERR_CUDA_UNAVAILABLE", "device '" + spec + "' does not exist: " +
                                              std::to_string(CudaDeviceCount()) + " CUDA device(s) visible");
    }
    return torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(index));
  }
  throw Error("ERR_INVALID_DEVICE", "device '" + spec + "' is not valid: expected cpu, cuda or cuda:N");
}

std::string DeviceName(const torch::Device& device) { return device.str(); }

Precision ParsePrecision(const std::string& name) {
  if (name == "fp32") return Precision::kFloat32;
  if (name == "bf16") return Precision::kBFloat16;
  if (name == "fp16") return Precision::kFloat16;
  throw Error("ERR_INVALID_ARG", "precision '" + name + "' is not valid: expected fp32, bf16 or fp16");
}

std::string PrecisionName(Precision precision) {
  switch (precision) {
    case Precision::kBFloat16:
      return "bf16";
    case Precision::kFloat16:
      return "fp16";
    default:
      return "fp32";
  }
}

MemoryFormat ParseMemoryFormat(const std::string& name) {
  if (name == "contiguous") return MemoryFormat::kContiguous;
  if (name == "channels_last") return MemoryFormat::kChannelsLast;
  throw Error("ERR_INVALID_ARG",
              "memory format '" + name + "' is not valid: expected contiguous or channels_last");
}

std::string MemoryFormatName(MemoryFormat format) {
  return format == MemoryFormat::kChannelsLast ? "channels_last" : "contiguous";
}

}  // namespace stenosis
