#include "core/preprocess.h"

#include <cmath>
#include <vector>

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
  const torch::Tensor x = bases.to(torch::kFloat32).contiguous();
  const int64_t height = x.size(1);
  const int64_t width = x.size(2);
  const int64_t area = height * width;
  torch::Tensor out = torch::empty({batch, 3, height, width}, torch::kFloat32);
  const float* in = x.data_ptr<float>();
  float* dst = out.data_ptr<float>();
  std::vector<float> sampled(area);
  for (int64_t b = 0; b < batch; ++b) {
    const float* image = in + b * area;
    const float* source = image;
    if (flips[b] || angles_degrees[b] != 0.0f) {
      // One fused pass of what affine_grid + grid_sample (bilinear, zero padding, align_corners=false)
      // compute, without their [S, S, 2] grid: each output pixel centre, in normalized coordinates, is
      // rotated by the angle (mirrored in x first when flipped) and the input is sampled there; outside it
      // reads 0 (black).
      const double a = angles_degrees[b] * kPi / 180.0;
      const double mirror = flips[b] ? -1.0 : 1.0;
      const double t00 = std::cos(a) * mirror, t01 = -std::sin(a);
      const double t10 = std::sin(a) * mirror, t11 = std::cos(a);
      // Source position of output pixel (i, j): origin + j * step_x + i * step_y, in input pixels.
      // (grid_sample's unnormalization of the rotated normalized coordinates, expanded.)
      const double step_xx = t00, step_xy = t10 * height / width;
      const double step_yx = t01 * width / height, step_yy = t11;
      const double x_origin =
          ((t00 * (1.0 / width - 1.0) + t01 * (1.0 / height - 1.0) + 1.0) * width - 1.0) / 2.0;
      const double y_origin =
          ((t10 * (1.0 / width - 1.0) + t11 * (1.0 / height - 1.0) + 1.0) * height - 1.0) / 2.0;
      for (int64_t i = 0; i < height; ++i) {
        for (int64_t j = 0; j < width; ++j) {
          const double sx = x_origin + j * step_xx + i * step_yx;
          const double sy = y_origin + j * step_xy + i * step_yy;
          // floor() without a libm call (no SSE4.1 rounding instruction in the baseline x86-64 build).
          int64_t x0 = static_cast<int64_t>(sx), y0 = static_cast<int64_t>(sy);
          x0 -= sx < x0;
          y0 -= sy < y0;
          const double wx = sx - x0, wy = sy - y0;
          double top, bottom;
          if (x0 >= 0 && y0 >= 0 && x0 + 1 < width && y0 + 1 < height) {
            const float* p = image + y0 * width + x0;
            top = p[0] + (p[1] - static_cast<double>(p[0])) * wx;
            bottom = p[width] + (p[width + 1] - static_cast<double>(p[width])) * wx;
          } else {
            auto at = [&](int64_t yy, int64_t xx) -> double {
              return yy >= 0 && yy < height && xx >= 0 && xx < width ? image[yy * width + xx] : 0.0;
            };
            top = at(y0, x0) + (at(y0, x0 + 1) - at(y0, x0)) * wx;
            bottom = at(y0 + 1, x0) + (at(y0 + 1, x0 + 1) - at(y0 + 1, x0)) * wx;
          }
          sampled[i * width + j] = static_cast<float>(top + (bottom - top) * wy);
        }
      }
      source = sampled.data();
    }
    // (x - mean) / std per channel, straight into the output.
    for (int c = 0; c < 3; ++c) {
      const float mean = options.mean[c];
      const float std = options.std[c];
      float* plane = dst + (b * 3 + c) * area;
      for (int64_t k = 0; k < area; ++k) plane[k] = (source[k] - mean) / std;
    }
  }
  return out;
}

}  // namespace stenosis
