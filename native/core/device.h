// Device and numeric settings shared by the model and the trainer.
#pragma once

#include <torch/torch.h>

#include <string>

namespace stenosis {

// Parses "cpu", "cuda" or "cuda:N"; throws ERR_CUDA_UNAVAILABLE when CUDA is asked for but absent.
torch::Device ParseDevice(const std::string& spec);
std::string DeviceName(const torch::Device& device);

enum class Precision { kFloat32, kBFloat16, kFloat16 };
// "fp32", "bf16", "fp16", or "auto": PreferredPrecision(device).
Precision ParsePrecision(const std::string& name, const torch::Device& device);
std::string PrecisionName(Precision precision);
// The fastest autocast precision that the device computes natively: on the CPU bf16 where the processor has
// AVX512-BF16 or AMX-BF16 (as the kernel reports them), else fp32; on CUDA bf16 from compute capability 8.0
// (Ampere), else fp16.
Precision PreferredPrecision(const torch::Device& device);
bool CpuHasNativeBFloat16();
// Compute capability (major version) of CUDA device `index`, read from the driver; -1 when it cannot be read.
int CudaComputeCapabilityMajor(int index);

enum class MemoryFormat { kContiguous, kChannelsLast };
MemoryFormat ParseMemoryFormat(const std::string& name);
std::string MemoryFormatName(MemoryFormat format);

bool CudaAvailable();
int CudaDeviceCount();

}  // namespace stenosis
