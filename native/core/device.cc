#include "core/device.h"

#include <dlfcn.h>
#include <torch/cuda.h>

#include <fstream>
#include <sstream>

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
#ifdef STENOSIS_WITH_CUDA
      const std::string why =
          "the linked libtorch has CUDA but sees no GPU (check the NVIDIA driver and CUDA_VISIBLE_DEVICES). "
          "Use device 'cpu' on this machine.";
#else
      const std::string why =
          "the linked libtorch was built without CUDA. Use device 'cpu', or build against a CUDA libtorch "
          "(LIBTORCH).";
#endif
      throw Error("ERR_CUDA_UNAVAILABLE",
                  "device '" + spec + "' was asked for but CUDA is not available: " + why);
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

Precision ParsePrecision(const std::string& name, const torch::Device& device) {
  if (name == "fp32") return Precision::kFloat32;
  if (name == "bf16") return Precision::kBFloat16;
  if (name == "fp16") return Precision::kFloat16;
  if (name == "auto") return PreferredPrecision(device);
  throw Error("ERR_INVALID_ARG", "precision '" + name + "' is not valid: expected fp32, bf16, fp16 or auto");
}

bool CpuHasNativeBFloat16() {
  static const bool has = [] {
    // The kernel lists a feature among the flags only where the processor has it and the OS enabled its
    // state.
    std::ifstream cpuinfo("/proc/cpuinfo");
    std::string line;
    while (std::getline(cpuinfo, line)) {
      if (line.rfind("flags", 0) != 0) continue;
      std::istringstream flags(line.substr(line.find(':') + 1));
      std::string flag;
      while (flags >> flag) {
        if (flag == "avx512_bf16" || flag == "amx_bf16") return true;
      }
      return false;
    }
    return false;
  }();
  return has;
}

int CudaComputeCapabilityMajor(int index) {
  // Through the driver library, which any CUDA libtorch loads, so that this builds without the CUDA headers.
  void* driver = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
  if (driver == nullptr) return -1;
  using InitFn = int (*)(unsigned int);
  using DeviceGetFn = int (*)(int*, int);
  using AttributeFn = int (*)(int*, int, int);
  const auto init = reinterpret_cast<InitFn>(dlsym(driver, "cuInit"));
  const auto device_get = reinterpret_cast<DeviceGetFn>(dlsym(driver, "cuDeviceGet"));
  const auto attribute = reinterpret_cast<AttributeFn>(dlsym(driver, "cuDeviceGetAttribute"));
  constexpr int kComputeCapabilityMajor = 75;  // CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR
  int device = 0;
  int major = -1;
  if (init == nullptr || device_get == nullptr || attribute == nullptr || init(0) != 0 ||
      device_get(&device, index) != 0 || attribute(&major, kComputeCapabilityMajor, device) != 0) {
    major = -1;
  }
  dlclose(driver);
  return major;
}

Precision PreferredPrecision(const torch::Device& device) {
  if (device.is_cuda()) {
    const int index = device.has_index() ? device.index() : 0;
    return CudaComputeCapabilityMajor(index) >= 8 ? Precision::kBFloat16 : Precision::kFloat16;
  }
  return CpuHasNativeBFloat16() ? Precision::kBFloat16 : Precision::kFloat32;
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
