// Argument checks shared by the roi_align and roi_pool bindings (host only).
#pragma once

#include "common/array.h"
#include "roi_align/roi_align.h"

namespace vt_ops {

// Shapes of a ROI op from `features` (N x C x H x W: input or grad_input),
// `rois` (K x roi_width) and `pooled` (K x C x PH x PW: output or grad_output).
inline RoiAlignShape check_roi_shapes(const Array& features, const char* features_name,
                                      const Array& rois, int roi_width, const Array& pooled,
                                      const char* pooled_name) {
  check_shape(features, features_name, {-1, -1, -1, -1});
  check_shape(rois, "rois", {-1, roi_width});
  RoiAlignShape s;
  s.batch = features.shape(0);
  s.channels = features.shape(1);
  s.height = features.shape(2);
  s.width = features.shape(3);
  s.num_rois = rois.shape(0);
  check_shape(pooled, pooled_name, {s.num_rois, s.channels, -1, -1});
  check_arg(pooled.shape(2) > 0 && pooled.shape(3) > 0 && pooled.shape(2) < (size_t(1) << 30) &&
                pooled.shape(3) < (size_t(1) << 30),
            "output_size: expected positive sizes");
  s.pooled_h = static_cast<int>(pooled.shape(2));
  s.pooled_w = static_cast<int>(pooled.shape(3));
  check_arg(s.height < (int64_t(1) << 30) && s.width < (int64_t(1) << 30),
            std::string(features_name) + ": height and width must be below 2**30");
  check_dtype_as(rois, "rois", features, features_name);
  check_dtype_as(pooled, pooled_name, features, features_name);
  return s;
}

}  // namespace vt_ops
