#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <string>
#include <vector>

#include "coco_mask/packed.h"
#include "coco_match/coco_match.h"
#include "common/array.h"
#include "common/pyobjects.h"
#include "common/registry.h"

namespace vt_ops {
namespace coco {
namespace {

void check_cpu(const Array& a, const char* name) {
  check_arg(device_of(a, name) == Device::CPU, std::string(name) + ": expected a CPU array");
}

template <class T>
const T* typed(const Array& a, const char* name, std::initializer_list<int64_t> shape) {
  check_cpu(a, name);
  if (a.dtype() != nb::dtype<T>())
    throw nb::type_error((std::string(name) + ": unexpected dtype").c_str());
  check_shape(a, name, shape);
  return data_ptr<T>(a);
}

// Checks the three offset arrays of `num_groups` groups against the array lengths.
Groups make_groups(const Array& dt_off, const Array& gt_off, const Array& iou_off, int64_t num_dt,
                   int64_t num_gt, int64_t num_ious) {
  check_arg(dt_off.ndim() == 1 && dt_off.shape(0) >= 1, "dt_offsets: expected (num_groups + 1,)");
  const int64_t n = static_cast<int64_t>(dt_off.shape(0)) - 1;
  Groups g{typed<int64_t>(dt_off, "dt_offsets", {n + 1}),
           typed<int64_t>(gt_off, "gt_offsets", {n + 1}),
           typed<int64_t>(iou_off, "iou_offsets", {n + 1}), n};
  check_arg(g.dt_off[0] == 0 && g.gt_off[0] == 0 && g.iou_off[0] == 0,
            "offsets must start at 0");
  for (int64_t i = 0; i < n; ++i) {
    const int64_t nd = g.dt_off[i + 1] - g.dt_off[i], ng = g.gt_off[i + 1] - g.gt_off[i];
    check_arg(nd >= 0 && ng >= 0 && g.iou_off[i + 1] - g.iou_off[i] == nd * ng,
              "offsets: group sizes are inconsistent");
  }
  check_arg(g.dt_off[n] == num_dt && g.gt_off[n] == num_gt && g.iou_off[n] == num_ious,
            "offsets do not cover the detections, ground truths and overlaps");
  return g;
}

void group_order_entry(const Array& img, const Array& cat, const Array& score, int64_t n_img,
                       int64_t n_cat, bool use_cats, const Array& order) {
  const int64_t n = img.shape(0);
  const int64_t* ip = typed<int64_t>(img, "image_positions", {n});
  const int64_t* cp = typed<int64_t>(cat, "category_positions", {n});
  const double* sp = typed<double>(score, "scores", {n});
  int64_t* op = const_cast<int64_t*>(typed<int64_t>(order, "order", {n}));
  for (int64_t i = 0; i < n; ++i)
    check_arg(ip[i] >= 0 && ip[i] < n_img && cp[i] >= 0 && cp[i] < n_cat,
              "image and category positions must lie in [0, n_img) and [0, n_cat)");
  nb::gil_scoped_release release;
  group_order(ip, cp, sp, n, n_img, n_cat, use_cats, op);
}

void grouped_box_iou_entry(const Array& dt, const Array& gt, const Array& crowd,
                           const Array& dt_off, const Array& gt_off, const Array& iou_off,
                           const Array& out) {
  const double* d = typed<double>(dt, "dt", {-1, 4});
  const int64_t nd = dt.shape(0), ng = gt.shape(0);
  const double* g = typed<double>(gt, "gt", {-1, 4});
  const uint8_t* c = typed<uint8_t>(crowd, "iscrowd", {ng});
  double* o = const_cast<double*>(typed<double>(out, "out", {-1}));
  const Groups groups = make_groups(dt_off, gt_off, iou_off, nd, ng, out.shape(0));
  nb::gil_scoped_release release;
  grouped_box_iou(d, g, c, groups, o);
}

void grouped_rle_iou_entry(const Array& dt_counts, const Array& dt_offsets, const Array& dt_sizes,
                           const Array& dt_box, const Array& gt_counts, const Array& gt_offsets,
                           const Array& gt_sizes, const Array& gt_box, const Array& crowd,
                           const Array& dt_off, const Array& gt_off, const Array& iou_off,
                           const Array& out) {
  const PackedRles dt = packed_view(dt_counts, dt_offsets, dt_sizes, "dt");
  const PackedRles gt = packed_view(gt_counts, gt_offsets, gt_sizes, "gt");
  const double* db = typed<double>(dt_box, "dt_boxes", {dt.n, 4});
  const double* gb = typed<double>(gt_box, "gt_boxes", {gt.n, 4});
  const uint8_t* c = typed<uint8_t>(crowd, "iscrowd", {gt.n});
  double* o = const_cast<double*>(typed<double>(out, "out", {-1}));
  const Groups groups = make_groups(dt_off, gt_off, iou_off, dt.n, gt.n, out.shape(0));
  nb::gil_scoped_release release;
  grouped_rle_iou(dt, db, gt, gb, c, groups, o);
}

void grouped_oks_entry(const Array& dt, const Array& gt, const Array& gt_box, const Array& gt_area,
                       const Array& sigmas, const Array& dt_off, const Array& gt_off,
                       const Array& iou_off, const Array& out) {
  const double* s = typed<double>(sigmas, "sigmas", {-1});
  const int64_t k = sigmas.shape(0);
  const double* d = typed<double>(dt, "dt", {-1, 3 * k});
  const double* g = typed<double>(gt, "gt", {-1, 3 * k});
  const int64_t nd = dt.shape(0), ng = gt.shape(0);
  const double* gb = typed<double>(gt_box, "gt_boxes", {ng, 4});
  const double* ga = typed<double>(gt_area, "gt_areas", {ng});
  double* o = const_cast<double*>(typed<double>(out, "out", {-1}));
  const Groups groups = make_groups(dt_off, gt_off, iou_off, nd, ng, out.shape(0));
  nb::gil_scoped_release release;
  grouped_oks(d, g, gb, ga, s, k, groups, o);
}

void match_entry(const Array& ious, const Array& dt_off, const Array& gt_off, const Array& iou_off,
                 const Array& gt_ignore, const Array& gt_crowd, const Array& gt_area,
                 const Array& gt_zero_id, const Array& dt_area, const Array& area_rng,
                 const Array& iou_thrs, const Array& dt_state, const Array& npig) {
  const int64_t ng = gt_area.shape(0), nd = dt_area.shape(0);
  MatchInputs in{};
  in.ious = typed<double>(ious, "ious", {-1});
  in.gt_ignore = typed<uint8_t>(gt_ignore, "gt_ignore", {ng});
  in.gt_crowd = typed<uint8_t>(gt_crowd, "gt_crowd", {ng});
  in.gt_area = typed<double>(gt_area, "gt_area", {ng});
  in.gt_zero_id = typed<uint8_t>(gt_zero_id, "gt_zero_id", {ng});
  in.dt_area = typed<double>(dt_area, "dt_area", {nd});
  in.area_rng = typed<double>(area_rng, "area_ranges", {-1, 2});
  in.num_areas = area_rng.shape(0);
  in.iou_thrs = typed<double>(iou_thrs, "iou_thresholds", {-1});
  in.num_thrs = iou_thrs.shape(0);
  in.num_dt = nd;
  const Groups groups = make_groups(dt_off, gt_off, iou_off, nd, ng, ious.shape(0));
  int8_t* state = const_cast<int8_t*>(
      typed<int8_t>(dt_state, "dt_state", {nd, in.num_areas, in.num_thrs}));
  int64_t* np = const_cast<int64_t*>(typed<int64_t>(npig, "npig", {in.num_areas, groups.n}));
  nb::gil_scoped_release release;
  match(in, groups, state, np);
}

void accumulate_entry(const Array& dt_scores, const Array& dt_rank, const Array& dt_state,
                      const Array& cat_off, const Array& npig, const Array& rec_thrs,
                      const Array& max_dets, const Array& precision, const Array& recall,
                      const Array& scores) {
  AccumulateInputs in{};
  in.num_dt = dt_scores.shape(0);
  in.dt_scores = typed<double>(dt_scores, "dt_scores", {in.num_dt});
  in.dt_rank = typed<int64_t>(dt_rank, "dt_rank", {in.num_dt});
  check_arg(dt_state.ndim() == 3, "dt_state: expected (D, A, T)");
  in.num_areas = dt_state.shape(1);
  in.num_thrs = dt_state.shape(2);
  in.dt_state = typed<int8_t>(dt_state, "dt_state", {in.num_dt, in.num_areas, in.num_thrs});
  check_arg(cat_off.ndim() == 1 && cat_off.shape(0) >= 1, "cat_offsets: expected (K + 1,)");
  in.num_cats = static_cast<int64_t>(cat_off.shape(0)) - 1;
  in.cat_off = typed<int64_t>(cat_off, "cat_offsets", {in.num_cats + 1});
  check_arg(in.cat_off[0] == 0 && in.cat_off[in.num_cats] == in.num_dt,
            "cat_offsets must cover the detections");
  for (int64_t k = 0; k < in.num_cats; ++k)
    check_arg(in.cat_off[k] <= in.cat_off[k + 1], "cat_offsets must be non-decreasing");
  in.npig = typed<int64_t>(npig, "npig", {in.num_areas, in.num_cats});
  in.rec_thrs = typed<double>(rec_thrs, "rec_thresholds", {-1});
  in.num_rec = rec_thrs.shape(0);
  in.max_dets = typed<int64_t>(max_dets, "max_dets", {-1});
  in.num_max_dets = max_dets.shape(0);
  const int64_t T = in.num_thrs, R = in.num_rec, K = in.num_cats, A = in.num_areas,
                M = in.num_max_dets;
  double* p = const_cast<double*>(typed<double>(precision, "precision", {K, A, M, T, R}));
  double* r = const_cast<double*>(typed<double>(recall, "recall", {K, A, M, T}));
  double* s = const_cast<double*>(typed<double>(scores, "scores", {K, A, M, T, R}));
  nb::gil_scoped_release release;
  accumulate(in, p, r, s);
}

// Fills outs[f][i] (float64 or int64, shape (N,) or (N, W)) from records[i][keys[f]];
// a missing key takes defaults[f] when it is not None.
void records_fields_entry(nb::handle records, const std::vector<std::string>& keys,
                          const std::vector<Array>& outs, nb::list defaults,
                          const std::string& name) {
  check_arg(keys.size() == outs.size() && keys.size() == defaults.size(),
            "keys, outs and defaults must have the same length");
  PyObject* fast = PySequence_Fast(records.ptr(), "");
  if (fast == nullptr) {
    PyErr_Clear();
    raise_type(name + ": expected a list of dicts");
  }
  nb::object guard = nb::steal(fast);
  const Py_ssize_t n = PySequence_Fast_GET_SIZE(fast);
  PyObject** items = PySequence_Fast_ITEMS(fast);
  const size_t nf = keys.size();
  std::vector<nb::object> py_keys(nf);
  std::vector<int64_t> widths(nf);
  std::vector<bool> is_int(nf);
  std::vector<double> default_values(nf);
  std::vector<bool> has_default(nf);
  for (size_t f = 0; f < nf; ++f) {
    py_keys[f] = nb::str(keys[f].c_str());
    const Array& out = outs[f];
    check_cpu(out, "out");
    check_arg(out.ndim() >= 1 && out.ndim() <= 2 && static_cast<Py_ssize_t>(out.shape(0)) == n,
              "outs: expected arrays of shape (N,) or (N, W)");
    widths[f] = out.ndim() == 2 ? static_cast<int64_t>(out.shape(1)) : 0;
    is_int[f] = out.dtype() == nb::dtype<int64_t>();
    check_arg(is_int[f] || out.dtype() == nb::dtype<double>(), "outs must be float64 or int64");
    has_default[f] = !defaults[f].is_none();
    if (has_default[f]) default_values[f] = nb::cast<double>(defaults[f]);
  }
  std::vector<double> values;
  for (Py_ssize_t i = 0; i < n; ++i) {
    PyObject* rec = items[i];
    if (!PyDict_Check(rec))
      raise_type(name + "[" + std::to_string(i) + "]: expected a dict, got " +
                 Py_TYPE(rec)->tp_name);
    for (size_t f = 0; f < nf; ++f) {
      PyObject* value = PyDict_GetItemWithError(rec, py_keys[f].ptr());
      if (value == nullptr && PyErr_Occurred()) throw nb::python_error();
      const Array& out = outs[f];
      const int64_t w = widths[f];
      if (value == nullptr) {
        if (!has_default[f])
          raise_value(name + "[" + std::to_string(i) + "]: missing key '" + keys[f] + "'");
        for (int64_t c = 0; c < std::max<int64_t>(w, 1); ++c) {
          if (is_int[f])
            mutable_ptr<int64_t>(out)[i * std::max<int64_t>(w, 1) + c] =
                static_cast<int64_t>(default_values[f]);
          else
            mutable_ptr<double>(out)[i * std::max<int64_t>(w, 1) + c] = default_values[f];
        }
        continue;
      }
      auto where = [&] { return name + "[" + std::to_string(i) + "]['" + keys[f] + "']"; };
      if (w == 0) {
        if (is_int[f])
          mutable_ptr<int64_t>(out)[i] = number_as_int64(value, where);
        else
          mutable_ptr<double>(out)[i] = number_as_double(value, where);
        continue;
      }
      values.clear();
      const size_t got = append_doubles(value, where, values);
      if (static_cast<int64_t>(got) != w)
        raise_value(where() + ": expected " + std::to_string(w) + " numbers, got " +
                    std::to_string(got));
      for (int64_t c = 0; c < w; ++c) {
        if (is_int[f])
          mutable_ptr<int64_t>(out)[i * w + c] = static_cast<int64_t>(values[c]);
        else
          mutable_ptr<double>(out)[i * w + c] = values[c];
      }
    }
  }
}

void bind(nb::module_& m) {
  m.def("coco_group_order", &group_order_entry, nb::arg("image_positions"),
        nb::arg("category_positions"), nb::arg("scores"), nb::arg("n_img"), nb::arg("n_cat"),
        nb::arg("use_cats"), nb::arg("order").noconvert());
  m.def("coco_grouped_box_iou", &grouped_box_iou_entry, nb::arg("dt"), nb::arg("gt"),
        nb::arg("iscrowd"), nb::arg("dt_offsets"), nb::arg("gt_offsets"),
        nb::arg("iou_offsets"), nb::arg("out").noconvert());
  m.def("coco_grouped_rle_iou", &grouped_rle_iou_entry, nb::arg("dt_counts"),
        nb::arg("dt_rle_offsets"), nb::arg("dt_sizes"), nb::arg("dt_boxes"),
        nb::arg("gt_counts"), nb::arg("gt_rle_offsets"), nb::arg("gt_sizes"),
        nb::arg("gt_boxes"), nb::arg("iscrowd"), nb::arg("dt_offsets"), nb::arg("gt_offsets"),
        nb::arg("iou_offsets"), nb::arg("out").noconvert());
  m.def("coco_grouped_oks", &grouped_oks_entry, nb::arg("dt"), nb::arg("gt"),
        nb::arg("gt_boxes"), nb::arg("gt_areas"), nb::arg("sigmas"), nb::arg("dt_offsets"),
        nb::arg("gt_offsets"), nb::arg("iou_offsets"), nb::arg("out").noconvert());
  m.def("coco_match", &match_entry, nb::arg("ious"), nb::arg("dt_offsets"),
        nb::arg("gt_offsets"), nb::arg("iou_offsets"), nb::arg("gt_ignore"),
        nb::arg("gt_crowd"), nb::arg("gt_area"), nb::arg("gt_zero_id"), nb::arg("dt_area"),
        nb::arg("area_ranges"), nb::arg("iou_thresholds"), nb::arg("dt_state").noconvert(),
        nb::arg("npig").noconvert());
  m.def("coco_accumulate", &accumulate_entry, nb::arg("dt_scores"), nb::arg("dt_rank"),
        nb::arg("dt_state"), nb::arg("cat_offsets"), nb::arg("npig"),
        nb::arg("rec_thresholds"), nb::arg("max_dets"), nb::arg("precision").noconvert(),
        nb::arg("recall").noconvert(), nb::arg("scores").noconvert());
  m.def("records_fields", &records_fields_entry, nb::arg("records"), nb::arg("keys"),
        nb::arg("outs"), nb::arg("defaults"), nb::arg("name"));
}

}  // namespace

VT_OPS_REGISTER_BINDING(coco_match, bind);

}  // namespace coco
}  // namespace vt_ops
