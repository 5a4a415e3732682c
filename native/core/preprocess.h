// Image preparation, batched on libtorch: crop around a level, intensity scaling, resize, then (per batch)
// random flip and rotation, grey to three channels and mean/std normalization.
//
// Two stages so that the costly, deterministic part is cached: PrepareBase runs once per sample (its output
// is kept by the caller between epochs); AugmentBatch runs for every batch with per-sample flip and angle
// chosen by the caller's seeded generator, so results do not depend on thread scheduling.
#pragma once

#include <torch/torch.h>

#include <array>
#include <vector>

namespace stenosis {

enum class IntensityScaling { kMinMax, kPercentile };

struct BaseOptions {
  int64_t size = 224;  // output side in pixels
  // Crop box in source pixels (x0, y0 top-left; may extend past the image: outside is filled with the
  // minimum). width <= 0 means no crop.
  double crop_x0 = 0, crop_y0 = 0, crop_width = 0, crop_height = 0;
  IntensityScaling scaling = IntensityScaling::kMinMax;
  double percentile_low = 0.5;    // percent, for kPercentile
  double percentile_high = 99.5;  // percent, for kPercentile
};

// grey: [rows, cols] float. Returns [size, size] float in [0, 1].
torch::Tensor PrepareBase(const torch::Tensor& grey, const BaseOptions& options);

struct AugmentOptions {
  std::array<float, 3> mean{0.485f, 0.456f, 0.406f};
  std::array<float, 3> std{0.229f, 0.224f, 0.225f};
};

// bases: [B, S, S] in [0, 1]; flips: B booleans (horizontal mirror); angles_degrees: B rotations.
// Returns [B, 3, S, S] normalized. Rotation is about the image centre (opposite signs turn opposite ways) and
// fills the corners with 0 (black) before normalization.
torch::Tensor AugmentBatch(const torch::Tensor& bases, const std::vector<bool>& flips,
                           const std::vector<float>& angles_degrees, const AugmentOptions& options);

}  // namespace stenosis
