// Packed RLE arrays crossing the Python boundary: counts (uint32), offsets (int64, n + 1),
// sizes (int64, n x 2).
#pragma once

#include <cstdint>
#include <string>

#include "coco_mask/coco_mask.h"
#include "common/array.h"

namespace vt_ops {
namespace coco {

// Masks hold fewer than 2**32 pixels: run lengths, areas and the column arithmetic of
// the kernels are uint32, as in pycocotools.
inline void check_mask_size(int64_t h, int64_t w, const std::string& what) {
  check_arg(h >= 0 && w >= 0 && (h == 0 || w <= int64_t(UINT32_MAX) / h),
            what + ": height and width must be non-negative with height * width < 2**32, got " +
                std::to_string(h) + " x " + std::to_string(w));
}

inline PackedRles packed_view(const Array& counts, const Array& offsets, const Array& sizes,
                              const char* name = "rles") {
  const std::string n(name);
  check_arg(counts.ndim() == 1 && counts.dtype() == nb::dtype<uint32_t>(),
            n + ": counts must be a 1-d uint32 array");
  check_arg(offsets.ndim() == 1 && offsets.shape(0) >= 1 && offsets.dtype() == nb::dtype<int64_t>(),
            n + ": offsets must be a 1-d int64 array of length n + 1");
  const int64_t count = static_cast<int64_t>(offsets.shape(0)) - 1;
  check_arg(sizes.dtype() == nb::dtype<int64_t>(), n + ": sizes must be int64");
  check_shape(sizes, (n + ".sizes").c_str(), {count, 2});
  for (const Array* a : {&counts, &offsets, &sizes})
    check_arg(device_of(*a, name) == Device::CPU, n + ": RLE arrays must be on the CPU");
  PackedRles r{data_ptr<uint32_t>(counts), data_ptr<int64_t>(offsets), data_ptr<int64_t>(sizes),
               count};
  const int64_t total = static_cast<int64_t>(counts.shape(0));
  check_arg(r.offsets[0] == 0 && r.offsets[count] == total, n + ": offsets do not match counts");
  for (int64_t i = 0; i < count; ++i) {
    check_arg(r.offsets[i] <= r.offsets[i + 1], n + ": offsets must be non-decreasing");
    check_mask_size(r.sizes[2 * i], r.sizes[2 * i + 1], n + ".sizes");
    // Runs past the end of the mask would index outside it in every kernel.
    uint64_t pixels = 0;
    for (int64_t j = r.offsets[i]; j < r.offsets[i + 1]; ++j) pixels += r.counts[j];
    check_arg(pixels <= static_cast<uint64_t>(r.sizes[2 * i] * r.sizes[2 * i + 1]),
              n + "[" + std::to_string(i) +
                  "]: Invalid RLE mask representation, the counts exceed height * width (" +
                  std::to_string(pixels) + " > " + std::to_string(r.sizes[2 * i]) + " x " +
                  std::to_string(r.sizes[2 * i + 1]) + ")");
  }
  return r;
}

}  // namespace coco
}  // namespace vt_ops
