#include "core/preprocess.h"

#include <cmath>

#include "core/error.h"

namespace stenosis {
namespace {

namespace F = torch::nn::functional;

constexpr double kPi = 3.14159265358979323846;

// Crops [y0, y0 + h) x [x0, x0 + w) (rounded to whole pixels), padding with `fill` where the box leaves the
// image.
torch::Tensor CropWithPadding(const torch::Tensor& image, const BaseOptions& o, float fill) {
  const int64_t rows = image.size(0), cols = image.size(1);
  const int64_t x0 = std::llround(o.crop_x0), y0 = std::llround(o.crop_y0);
  const int64_t w = std::max<int64_t>(1, std::llround(o.crop_width));
  const int64_t h = std::max<int64_t>(1, std::llround(o.crop_height));
  torch::Tensor out = torch::full({h, w}, fill, image.options());
  const int64_t sx0 = std::max<int64_t>(0, x0), sy0 = std::max<int64_t>(0, y0);
  const int64_t sx1 = std::min<int64_t>(cols, x0 + w), sy1 = std::min<int64_t>(rows, y0 + h);
  if (sx1 > sx0 && sy1 > sy0) {
    out.slice(0, sy0 - y0, sy1 - y0)
        .slice(1, sx0 - x0, sx1 - x0)
        .copy_(image.slice(0, sy0, sy1).slice(1, sx0, sx1));
  }
  return out;
}

}  // namespace

torch::Tensor PrepareBase(const torch::Tensor& grey, const BaseOptions& options) {
  if (grey.dim() != 2 || grey.size(0) < 1 || grey.size(1) < 1) {
    throw Error("ERR_INVALID_ARG", "an image must be [rows, cols], got " + c10::str(grey.sizes()));
  }
  if (options.size < 8 || options.size > 4096) {
    throw Error("ERR_INVALID_ARG", "image size must be in [8, 4096], got " + std::to_string(options.size));
  }
  torch::NoGradGuard no_grad;
  torch::Tensor image = grey.to(torch::kFloat32);
  // Intensity range from the region the model will see: the crop when there is one.
  torch::Tensor region = image;
  if (options.crop_width > 0 && options.crop_height > 0) {
    region = CropWithPadding(image, options, image.min().item<float>());
  }
  float low, high;
  if (options.scaling == IntensityScaling::kPercentile) {
    torch::Tensor flat = region.flatten();
    torch::Tensor q = torch::quantile(
        flat,
        torch::tensor({options.percentile_low / 100.0, options.percentile_high / 100.0}, torch::kFloat32));
    low = q[0].item<float>();
    high = q[1].item<float>();
  } else {
    low = region.min().item<float>();
    high = region.max().item<float>();
  }
  torch::Tensor scaled = high > low ? ((region - low) / (high - low)).clamp(0, 1) : torch::zeros_like(region);
  // Antialiased bilinear, as PIL-style resizing of the reference pipeline does.
  torch::Tensor resized = F::interpolate(scaled.unsqueeze(0).unsqueeze(0),
                                         F::InterpolateFuncOptions()
                                             .size(std::vector<int64_t>{options.size, options.size})
                                             .mode(torch::kBilinear)
                                             .align_corners(false)
                                             .antialias(true));
  return resized.squeeze(0).squeeze(0).clamp(0, 1).contiguous();
}

torch::Tensor AugmentBatch(const torch::Tensor& bases, const std::vector<bool>& flips,
                           const std::vector<float>& angles_degrees, const AugmentOptions& options) {
  if (bases.dim() != 3)
    throw Error("ERR_INVALID_ARG", "bases must be [batch, size, size], got " + c10::str(bases.sizes()));
  const int64_t batch = bases.size(0);
  if (static_cast<int64_t>(flips.size()) != batch || static_cast<int64_t>(angles_degrees.size()) != batch) {
    throw Error("ERR_INVALID_ARG", "one flip and one angle per image are needed");
  }
  torch::NoGradGuard no_grad;
  torch::Tensor x = bases.to(torch::kFloat32).unsqueeze(1);  // [B, 1, S, S]
  bool any_transform = false;
  for (int64_t i = 0; i < batch; ++i) any_transform = any_transform || flips[i] || angles_degrees[i] != 0.0f;
  if (any_transform) {
    // Output-to-input sampling matrix per image: rotation by the angle composed with an optional mirror in x.
    torch::Tensor theta = torch::zeros({batch, 2, 3}, torch::kFloat32);
    auto t = theta.accessor<float, 3>();
    for (int64_t i = 0; i < batch; ++i) {
      const double a = angles_degrees[i] * kPi / 180.0;
      const float sx = flips[i] ? -1.0f : 1.0f;
      t[i][0][0] = static_cast<float>(std::cos(a)) * sx;
      t[i][0][1] = static_cast<float>(-std::sin(a));
      t[i][1][0] = static_cast<float>(std::sin(a)) * sx;
      t[i][1][1] = static_cast<float>(std::cos(a));
    }
    torch::Tensor grid = F::affine_grid(theta, x.sizes(), /*align_corners=*/false);
    x = F::grid_sample(
        x, grid,
        F::GridSampleFuncOptions().mode(torch::kBilinear).padding_mode(torch::kZeros).align_corners(false));
  }
  torch::Tensor mean =
      torch::tensor(std::vector<float>(options.mean.begin(), options.mean.end())).view({1, 3, 1, 1});
  torch::Tensor std =
      torch::tensor(std::vector<float>(options.std.begin(), options.std.end())).view({1, 3, 1, 1});
  return ((x.expand({batch, 3, x.size(2), x.size(3)}) - mean) / std).contiguous();
}

}  // namespace stenosis
