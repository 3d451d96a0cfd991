#include <nanobind/stl/string.h>

#include <stdexcept>
#include <string>
#include <vector>

#include "coco_mask/coco_mask.h"
#include "coco_mask/packed.h"
#include "common/parallel.h"
#include "common/pyobjects.h"
#include "common/registry.h"

namespace vt_ops {
namespace coco {
namespace {

// One parsed segmentation, decoded later without the GIL.
struct Source {
  enum Kind { kString, kCounts, kPolygons } kind = kCounts;
  const char* text = nullptr;  // kString: borrowed from the (alive) Python object
  size_t length = 0;
  std::vector<uint32_t> counts;                // kCounts
  std::vector<std::vector<double>> polygons;   // kPolygons
  int64_t h = 0, w = 0;
};

// Interned dict keys (created once, with the GIL held).
PyObject* key_object(const char* name) {
  PyObject* key = PyUnicode_InternFromString(name);
  if (key == nullptr) throw nb::python_error();
  return key;  // kept for the life of the process
}

template <class Where>
int64_t size_entry(PyObject* size, int i, Where&& where) {
  PyObject* item = PySequence_GetItem(size, i);
  if (item == nullptr) {
    PyErr_Clear();
    raise_value(where() + ": 'size' must be [height, width]");
  }
  int64_t v;
  try {
    v = number_as_int64(item, [&] { return where() + "['size']"; });
  } catch (...) {
    Py_DECREF(item);
    throw;
  }
  Py_DECREF(item);
  if (v < 0) raise_value(where() + ": 'size' must be non-negative");
  return v;
}

template <class Where>
void parse_rle_dict(PyObject* obj, Where&& where, Source& src) {
  static PyObject* counts_key = key_object("counts");
  static PyObject* size_key = key_object("size");
  PyObject* counts = PyDict_GetItemWithError(obj, counts_key);  // borrowed
  if (counts == nullptr && PyErr_Occurred()) throw nb::python_error();
  PyObject* size = PyDict_GetItemWithError(obj, size_key);
  if (size == nullptr && PyErr_Occurred()) throw nb::python_error();
  if (counts == nullptr || size == nullptr)
    raise_value(where() + ": an RLE dict needs the keys 'counts' and 'size'");
  if (!PySequence_Check(size) || PySequence_Size(size) != 2)
    raise_value(where() + ": 'size' must be [height, width]");
  src.h = size_entry(size, 0, where);
  src.w = size_entry(size, 1, where);
  check_mask_size(src.h, src.w, where() + "['size']");
  if (PyUnicode_Check(counts)) {
    Py_ssize_t n = 0;
    src.text = PyUnicode_AsUTF8AndSize(counts, &n);  // cached in the str object
    if (src.text == nullptr) {
      PyErr_Clear();
      raise_value(where() + ": 'counts' is not a valid string");
    }
    src.length = static_cast<size_t>(n);
    src.kind = Source::kString;
  } else if (PyBytes_Check(counts)) {
    src.text = PyBytes_AS_STRING(counts);
    src.length = static_cast<size_t>(PyBytes_GET_SIZE(counts));
    src.kind = Source::kString;
  } else {
    std::vector<double> values;
    append_doubles(counts, [&] { return where() + "['counts']"; }, values);
    src.counts.reserve(values.size());
    for (double v : values) {
      if (!(v >= 0) || v > 4294967295.0 || v != static_cast<double>(static_cast<int64_t>(v)))
        raise_value(where() + ": uncompressed RLE counts must be non-negative integers");
      src.counts.push_back(static_cast<uint32_t>(v));
    }
    src.kind = Source::kCounts;
  }
}

template <class Where>
void parse_polygons(PyObject* obj, Where&& where, Source& src) {
  PyObject* fast = PySequence_Fast(obj, "");
  const Py_ssize_t n = PySequence_Fast_GET_SIZE(fast);
  PyObject** items = PySequence_Fast_ITEMS(fast);
  try {
    for (Py_ssize_t j = 0; j < n; ++j) {
      src.polygons.emplace_back();
      append_doubles(items[j], [&] { return where() + "[" + std::to_string(j) + "]"; },
                     src.polygons.back());
    }
  } catch (...) {
    Py_DECREF(fast);
    throw;
  }
  Py_DECREF(fast);
  src.kind = Source::kPolygons;
}

void decode_source(const Source& src, std::vector<uint32_t>& out) {
  switch (src.kind) {
    case Source::kString:
      out.resize(rle_string_length(src.text, src.length));
      rle_from_string(src.text, src.length, out.data());
      break;
    case Source::kCounts:
      out = src.counts;
      break;
    case Source::kPolygons: {
      if (src.polygons.size() == 1) {
        const auto& p = src.polygons[0];
        rle_from_polygon(p.data(), static_cast<int64_t>(p.size() / 2), src.h, src.w, out);
        break;
      }
      std::vector<std::vector<uint32_t>> parts(src.polygons.size());
      std::vector<RleView> views(parts.size());
      for (size_t j = 0; j < parts.size(); ++j) {
        const auto& p = src.polygons[j];
        rle_from_polygon(p.data(), static_cast<int64_t>(p.size() / 2), src.h, src.w, parts[j]);
        views[j] = RleView{parts[j].data(), static_cast<int64_t>(parts[j].size()), src.h, src.w};
      }
      int64_t h = 0, w = 0;
      rle_merge(views.data(), static_cast<int64_t>(views.size()), false, out, h, w);
      break;
    }
  }
}

nb::tuple pack_results(std::vector<std::vector<uint32_t>>& per_item,
                       std::vector<int64_t>&& sizes) {
  const size_t n = per_item.size();
  std::vector<int64_t> offsets(n + 1, 0);
  for (size_t i = 0; i < n; ++i) offsets[i + 1] = offsets[i] + per_item[i].size();
  std::vector<uint32_t> counts(static_cast<size_t>(offsets[n]));
  parallel_for(0, static_cast<int64_t>(n), 256, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i)
      std::copy(per_item[i].begin(), per_item[i].end(), counts.begin() + offsets[i]);
  });
  const size_t total = counts.size();
  return nb::make_tuple(to_numpy(std::move(counts), {total}), to_numpy(std::move(offsets), {n + 1}),
                        to_numpy(std::move(sizes), {n, 2}));
}

// Segmentations (compressed / uncompressed RLE dicts, or lists of polygons rasterised at
// heights[i] x widths[i] and merged) -> packed counts, offsets, sizes. With `key`, objs are
// records holding the segmentation under that key; with `indices`, only those records are
// packed, in that order. Compressed strings are decoded straight into the packed array.
nb::tuple rle_pack_entry(nb::handle objs, const Array& heights, const Array& widths,
                         const std::string& name, const std::string& key,
                         const Array& indices, bool use_indices) {
  PyObject* fast = PySequence_Fast(objs.ptr(), "");
  if (fast == nullptr) {
    PyErr_Clear();
    raise_type(name + ": expected a list");
  }
  nb::object guard = nb::steal(fast);
  const Py_ssize_t size = PySequence_Fast_GET_SIZE(fast);
  PyObject** items = PySequence_Fast_ITEMS(fast);
  check_arg(indices.dtype() == nb::dtype<int64_t>() && indices.ndim() == 1,
            "indices must be a 1-d int64 array");
  const bool all = !use_indices;
  const int64_t n = all ? size : static_cast<int64_t>(indices.shape(0));
  const int64_t* idx = data_ptr<int64_t>(indices);
  const bool have_hw = heights.ndim() == 1 && static_cast<int64_t>(heights.shape(0)) == n;
  check_arg(heights.dtype() == nb::dtype<int64_t>() && widths.dtype() == nb::dtype<int64_t>(),
            "heights and widths must be int64");
  const int64_t* hs = data_ptr<int64_t>(heights);
  const int64_t* ws = data_ptr<int64_t>(widths);
  nb::object py_key = key.empty() ? nb::object() : nb::object(nb::str(key.c_str()));
  std::vector<Source> sources(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const int64_t item = all ? i : idx[i];
    if (item < 0 || item >= size) raise_value(name + ": index out of range");
    PyObject* obj = items[item];
    auto where = [&] {
      return name + "[" + std::to_string(item) + "]" + (key.empty() ? "" : "['" + key + "']");
    };
    if (!key.empty()) {
      if (!PyDict_Check(obj))
        raise_type(name + "[" + std::to_string(item) + "]: expected a dict, got " +
                   Py_TYPE(obj)->tp_name);
      obj = PyDict_GetItemWithError(obj, py_key.ptr());
      if (obj == nullptr) {
        if (PyErr_Occurred()) throw nb::python_error();
        raise_value(name + "[" + std::to_string(item) + "]: missing key '" + key + "'");
      }
    }
    if (PyDict_Check(obj)) {
      parse_rle_dict(obj, where, sources[i]);
    } else if (PyList_Check(obj) || PyTuple_Check(obj)) {
      if (!have_hw || hs[i] < 0 || ws[i] < 0)
        raise_value(where() + ": polygons need the image height and width");
      sources[i].h = hs[i];
      sources[i].w = ws[i];
      check_mask_size(hs[i], ws[i], where());
      parse_polygons(obj, where, sources[i]);
    } else {
      raise_type(where() + ": expected an RLE dict or a list of polygons, got " +
                 Py_TYPE(obj)->tp_name);
    }
  }
  auto fail = [&](int64_t i, const std::invalid_argument& err) {
    const int64_t item = all ? i : idx[i];
    throw std::invalid_argument(name + "[" + std::to_string(item) + "]: " + err.what());
  };
  std::vector<int64_t> offsets(static_cast<size_t>(n) + 1, 0), sizes(2 * static_cast<size_t>(n));
  std::unique_ptr<OwnedBuffer<uint32_t>> counts;
  {
    nb::gil_scoped_release release;
    // lengths (rasterising polygons on the way), then decoding into place
    parallel_for(0, n, 64, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        Source& src = sources[i];
        try {
          if (src.kind == Source::kPolygons) {
            decode_source(src, src.counts);
            src.kind = Source::kCounts;
          }
        } catch (const std::invalid_argument& err) {
          fail(i, err);
        }
        offsets[i + 1] = src.kind == Source::kString
                             ? static_cast<int64_t>(rle_string_length(src.text, src.length))
                             : static_cast<int64_t>(src.counts.size());
        sizes[2 * i] = src.h;
        sizes[2 * i + 1] = src.w;
      }
    });
    for (int64_t i = 0; i < n; ++i) offsets[i + 1] += offsets[i];
    counts = std::make_unique<OwnedBuffer<uint32_t>>(static_cast<size_t>(offsets[n]));
    uint32_t* dst = counts->data.get();
    parallel_for(0, n, 64, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        const Source& src = sources[i];
        try {
          if (src.kind == Source::kString)
            rle_from_string(src.text, src.length, dst + offsets[i]);
          else
            std::copy(src.counts.begin(), src.counts.end(), dst + offsets[i]);
        } catch (const std::invalid_argument& err) {
          fail(i, err);
        }
      }
    });
  }
  return nb::make_tuple(to_numpy(std::move(*counts)),
                        to_numpy(std::move(offsets), {static_cast<size_t>(n) + 1}),
                        to_numpy(std::move(sizes), {static_cast<size_t>(n), 2}));
}

// Packed RLEs -> [{'size': [h, w], 'counts': bytes}, ...] (pycocotools' compressed form).
nb::list rle_unpack_entry(const Array& counts, const Array& offsets, const Array& sizes) {
  const PackedRles rles = packed_view(counts, offsets, sizes);
  std::vector<std::string> strings(static_cast<size_t>(rles.n));
  {
    nb::gil_scoped_release release;
    parallel_for(0, rles.n, 256, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        const RleView r = rles[i];
        rle_to_string(r.cnts, r.m, strings[i]);
      }
    });
  }
  nb::list out;
  for (int64_t i = 0; i < rles.n; ++i) {
    nb::dict d;
    nb::list size;
    size.append(rles.sizes[2 * i]);
    size.append(rles.sizes[2 * i + 1]);
    d["size"] = size;
    d["counts"] = nb::bytes(strings[i].data(), strings[i].size());
    out.append(d);
  }
  return out;
}

// masks (uint8, N x W x H: each mask in column-major order) -> packed RLEs.
nb::tuple rle_encode_entry(const Array& masks) {
  check_arg(masks.ndim() == 3 && masks.dtype() == nb::dtype<uint8_t>(),
            "masks: expected a uint8 array of shape (N, W, H)");
  check_arg(device_of(masks, "masks") == Device::CPU, "masks: expected a CPU array");
  const int64_t n = masks.shape(0), w = masks.shape(1), h = masks.shape(2);
  const uint8_t* data = data_ptr<uint8_t>(masks);
  std::vector<std::vector<uint32_t>> per_item(static_cast<size_t>(n));
  std::vector<int64_t> sizes(2 * static_cast<size_t>(n));
  {
    nb::gil_scoped_release release;
    parallel_for(0, n, 1, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        rle_encode(data + i * h * w, h, w, per_item[i]);
        sizes[2 * i] = h;
        sizes[2 * i + 1] = w;
      }
    });
  }
  return pack_results(per_item, std::move(sizes));
}

void rle_decode_entry(const Array& counts, const Array& offsets, const Array& sizes,
                      const Array& out) {
  const PackedRles rles = packed_view(counts, offsets, sizes);
  check_arg(out.ndim() == 3 && out.dtype() == nb::dtype<uint8_t>() &&
                static_cast<int64_t>(out.shape(0)) == rles.n,
            "out: expected a uint8 array of shape (N, W, H)");
  const int64_t w = out.shape(1), h = out.shape(2);
  for (int64_t i = 0; i < rles.n; ++i)
    check_arg(rles.sizes[2 * i] == h && rles.sizes[2 * i + 1] == w,
              "rles: every mask must have the same size to decode them together");
  uint8_t* data = mutable_ptr<uint8_t>(out);
  bool ok = true;
  {
    nb::gil_scoped_release release;
    std::vector<char> item_ok(static_cast<size_t>(rles.n), 1);
    parallel_for(0, rles.n, 1, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) item_ok[i] = rle_decode(rles[i], data + i * h * w);
    });
    for (char v : item_ok) ok = ok && v;
  }
  if (!ok) raise_value("Invalid RLE mask representation: the counts exceed height * width");
}

void rle_area_entry(const Array& counts, const Array& offsets, const Array& sizes,
                    const Array& out) {
  const PackedRles rles = packed_view(counts, offsets, sizes);
  check_arg(out.dtype() == nb::dtype<uint32_t>(), "out must be uint32");
  check_shape(out, "out", {rles.n});
  uint32_t* o = mutable_ptr<uint32_t>(out);
  nb::gil_scoped_release release;
  parallel_for(0, rles.n, 1024, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) o[i] = rle_area(rles[i]);
  });
}

void rle_to_bbox_entry(const Array& counts, const Array& offsets, const Array& sizes,
                       const Array& out) {
  const PackedRles rles = packed_view(counts, offsets, sizes);
  check_arg(out.dtype() == nb::dtype<double>(), "out must be float64");
  check_shape(out, "out", {rles.n, 4});
  double* o = mutable_ptr<double>(out);
  nb::gil_scoped_release release;
  parallel_for(0, rles.n, 1024, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) rle_to_bbox(rles[i], o + 4 * i);
  });
}

nb::tuple rle_merge_entry(const Array& counts, const Array& offsets, const Array& sizes,
                          bool intersect) {
  const PackedRles rles = packed_view(counts, offsets, sizes);
  std::vector<RleView> views(static_cast<size_t>(rles.n));
  for (int64_t i = 0; i < rles.n; ++i) views[i] = rles[i];
  std::vector<std::vector<uint32_t>> merged(1);
  int64_t h = 0, w = 0;
  {
    nb::gil_scoped_release release;
    rle_merge(views.data(), rles.n, intersect, merged[0], h, w);
  }
  return pack_results(merged, std::vector<int64_t>{h, w});
}

// (x, y, w, h) boxes -> packed RLEs of height x width masks (pycocotools' frBbox).
nb::tuple rle_from_bbox_entry(const Array& boxes, int64_t height, int64_t width) {
  check_arg(boxes.dtype() == nb::dtype<double>(), "boxes must be float64");
  check_shape(boxes, "boxes", {-1, 4});
  check_mask_size(height, width, "boxes");
  const int64_t n = boxes.shape(0);
  const double* bb = data_ptr<double>(boxes);
  std::vector<std::vector<uint32_t>> per_item(static_cast<size_t>(n));
  std::vector<int64_t> sizes(2 * static_cast<size_t>(n));
  {
    nb::gil_scoped_release release;
    parallel_for(0, n, 64, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        rle_from_bbox(bb + 4 * i, height, width, per_item[i]);
        sizes[2 * i] = height;
        sizes[2 * i + 1] = width;
      }
    });
  }
  return pack_results(per_item, std::move(sizes));
}

void bind(nb::module_& m) {
  m.def("rle_pack", &rle_pack_entry, nb::arg("objs"), nb::arg("heights"), nb::arg("widths"),
        nb::arg("name"), nb::arg("key"), nb::arg("indices"), nb::arg("use_indices"),
        "Segmentations (RLE dicts or polygon lists) -> (counts, offsets, sizes).");
  m.def("rle_unpack", &rle_unpack_entry, nb::arg("counts"), nb::arg("offsets"),
        nb::arg("sizes"), "Packed RLEs -> list of compressed RLE dicts.");
  m.def("rle_encode", &rle_encode_entry, nb::arg("masks"),
        "uint8 masks (N, W, H) -> packed RLEs.");
  m.def("rle_decode", &rle_decode_entry, nb::arg("counts"), nb::arg("offsets"),
        nb::arg("sizes"), nb::arg("out").noconvert(), "Packed RLEs -> uint8 masks (N, W, H).");
  m.def("rle_area", &rle_area_entry, nb::arg("counts"), nb::arg("offsets"), nb::arg("sizes"),
        nb::arg("out").noconvert());
  m.def("rle_to_bbox", &rle_to_bbox_entry, nb::arg("counts"), nb::arg("offsets"),
        nb::arg("sizes"), nb::arg("out").noconvert());
  m.def("rle_merge", &rle_merge_entry, nb::arg("counts"), nb::arg("offsets"), nb::arg("sizes"),
        nb::arg("intersect"));
  m.def("rle_from_bbox", &rle_from_bbox_entry, nb::arg("boxes"), nb::arg("height"),
        nb::arg("width"));
}

}  // namespace

VT_OPS_REGISTER_BINDING(coco_mask, bind);

}  // namespace coco
}  // namespace vt_ops
