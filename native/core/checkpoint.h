// Checkpoint file format, version 1.
//
// A file written by torch.save's zip format (torch::pickle_save), so Python reads it with torch.load. It
// holds one dict:
//   "format"    "lumbar-stenosis-checkpoint"
//   "version"   1
//   "metadata"  JSON text chosen by the caller (backbone, options, class order, metrics, versions)
//   "model"     {name: tensor} every parameter and buffer of the classifier ("backbone.*",
//   "embedding.weight",
//               "head.*"), on the CPU
//   "optimizer" {"kind": "adamw", "steps": int, "lr": float,
//                "state": {name: {"step": int, "exp_avg": tensor, "exp_avg_sq": tensor}}}
//   "extra"     {str: str} reserved for later additions (sampler position, RNG states); readers ignore
//               keys they do not know
// Files are written to a temporary name beside the target and renamed, so a crash never leaves half a file.
#pragma once

#include <torch/torch.h>

#include <map>
#include <string>
#include <vector>

#include "core/backbone.h"

namespace stenosis {

constexpr const char* kCheckpointFormat = "lumbar-stenosis-checkpoint";
constexpr int64_t kCheckpointVersion = 1;

struct OptimizerMoment {
  std::string name;
  int64_t step = 0;
  torch::Tensor exp_avg;
  torch::Tensor exp_avg_sq;
};

struct CheckpointContents {
  std::string metadata_json = "{}";
  NamedTensors model;
  std::vector<OptimizerMoment> optimizer;
  int64_t steps = 0;
  double learning_rate = 0;
  std::map<std::string, std::string> extra;
};

void WriteCheckpoint(const std::string& path, const CheckpointContents& contents);
CheckpointContents ReadCheckpoint(const std::string& path);

// Writes bytes to path through a temporary file and a rename.
void WriteFileAtomically(const std::string& path, const std::vector<char>& bytes);

}  // namespace stenosis
