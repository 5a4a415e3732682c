// Device and numeric settings shared by the model and the trainer.
#pragma once

#include <torch/torch.h>

#include <string>

namespace stenosis {

// Parses "cpu", "cuda" or "cuda:N"; throws ERR_CUDA_UNAVAILABLE when CUDA is asked for but absent.
torch::Device ParseDevice(const std::string& spec);
std::string DeviceName(const torch::Device& device);

enum class Precision { kFloat32, kBFloat16, kFloat16 };
Precision ParsePrecision(const std::string& name);
std::string PrecisionName(Precision precision);

enum class MemoryFormat { kContiguous, kChannelsLast };
MemoryFormat ParseMemoryFormat(const std::string& name);
std::string MemoryFormatName(MemoryFormat format);

bool CudaAvailable();
int CudaDeviceCount();

}  // namespace stenosis
