// Packed RLE arrays crossing the Python boundary: counts (uint32), offsets (int64, n + 1),
// sizes (int64, n x 2).
#pragma once

#include "coco_mask/coco_mask.h"
#include "common/array.h"

namespace vt_ops {
namespace coco {

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
  for (int64_t i = 0; i < count; ++i)
    check_arg(r.offsets[i] <= r.offsets[i + 1], n + ": offsets must be non-decreasing");
  return r;
}

}  // namespace coco
}  // namespace vt_ops
