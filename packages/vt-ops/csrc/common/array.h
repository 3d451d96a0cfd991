// Helpers for arrays crossing the Python boundary through DLPack.
//
// Kernels never allocate: the Python layer passes inputs, outputs and
// workspaces (allocated with the caller's own array library) as C-contiguous
// nb::ndarray objects. These helpers check them and dispatch on dtype/device.
#pragma once

#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>

#include <cstdint>
#include <stdexcept>
#include <initializer_list>
#include <string>
#include <utility>

namespace vt_ops {

namespace nb = nanobind;

// Any dtype, any device, C-contiguous (the Python layer makes inputs contiguous).
using Array = nb::ndarray<nb::c_contig>;

enum class Device { CPU, CUDA };

inline void check_arg(bool ok, const std::string& message) {
  if (!ok) throw std::invalid_argument(message);
}

inline Device device_of(const Array& a, const char* name) {
  if (a.device_type() == nb::device::cpu::value) return Device::CPU;
  if (a.device_type() == nb::device::cuda::value) return Device::CUDA;
  throw std::invalid_argument(std::string(name) + ": only CPU and CUDA arrays are supported");
}

// The device shared by all arrays, e.g. common_device({{&a, "a"}, {&b, "b"}});
// raises naming the first array that is elsewhere.
inline Device common_device(std::initializer_list<std::pair<const Array*, const char*>> arrays) {
  const auto& first = *arrays.begin();
  const Device d = device_of(*first.first, first.second);
  for (const auto& [a, name] : arrays) {
    if (device_of(*a, name) != d || (d == Device::CUDA && a->device_id() != first.first->device_id()))
      throw std::invalid_argument(std::string(name) + " is on a different device than " +
                                  first.second);
  }
  return d;
}

template <class T>
bool has_dtype(const Array& a) {
  return a.dtype() == nb::dtype<T>();
}

// Calls f(T{}) with T = float or double matching a's dtype.
template <class F>
void dispatch_floating(const Array& a, const char* name, F&& f) {
  if (has_dtype<float>(a)) {
    f(float{});
  } else if (has_dtype<double>(a)) {
    f(double{});
  } else {
    throw nb::type_error((std::string(name) + ": expected float32 or float64").c_str());
  }
}

// Calls f(T{}) with T the integer type matching a's dtype (uint8, int8, int16,
// uint16, int32 or int64).
template <class F>
void dispatch_integer(const Array& a, const char* name, F&& f) {
  if (has_dtype<uint8_t>(a)) {
    f(uint8_t{});
  } else if (has_dtype<int8_t>(a)) {
    f(int8_t{});
  } else if (has_dtype<int16_t>(a)) {
    f(int16_t{});
  } else if (has_dtype<uint16_t>(a)) {
    f(uint16_t{});
  } else if (has_dtype<int32_t>(a)) {
    f(int32_t{});
  } else if (has_dtype<int64_t>(a)) {
    f(int64_t{});
  } else {
    throw nb::type_error(
        (std::string(name) + ": expected uint8, int8, int16, uint16, int32 or int64").c_str());
  }
}

inline void check_dtype_as(const Array& a, const char* name, const Array& ref,
                           const char* ref_name) {
  if (a.dtype() != ref.dtype())
    throw nb::type_error(
        (std::string(name) + " must have the same dtype as " + ref_name).c_str());
}

inline void check_shape(const Array& a, const char* name, std::initializer_list<int64_t> shape) {
  bool ok = a.ndim() == shape.size();
  size_t i = 0;
  for (int64_t s : shape) {
    if (!ok) break;
    ok = s < 0 || static_cast<int64_t>(a.shape(i)) == s;
    ++i;
  }
  if (!ok) {
    std::string want = "(";
    i = 0;
    for (int64_t s : shape) want += (i++ ? ", " : "") + (s < 0 ? std::string("*") : std::to_string(s));
    throw std::invalid_argument(std::string(name) + ": expected shape " + want + ")");
  }
}

template <class T>
const T* data_ptr(const Array& a) {
  return static_cast<const T*>(a.data());
}
template <class T>
T* mutable_ptr(const Array& a) {
  return static_cast<T*>(const_cast<void*>(a.data()));
}

}  // namespace vt_ops
