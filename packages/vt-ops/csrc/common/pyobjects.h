// Helpers for kernels that read Python containers (COCO annotation records) and
// return variable-length results.
//
// Variable-length CPU results (RLE counts) cannot be preallocated by the Python
// layer without a second pass over the data, so these kernels hand a
// std::vector to numpy instead; they are CPU-only and never touch a GPU
// allocator.
#pragma once

#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

namespace vt_ops {

namespace nb = nanobind;

template <class T>
using NumpyArray = nb::ndarray<nb::numpy, T>;

// A numpy array owning the vector's memory.
template <class T>
NumpyArray<T> to_numpy(std::vector<T>&& values, std::initializer_list<size_t> shape) {
  auto* heap = new std::vector<T>(std::move(values));
  if (heap->empty()) heap->reserve(1);  // a valid data pointer for empty arrays
  nb::capsule owner(heap, [](void* p) noexcept { delete static_cast<std::vector<T>*>(p); });
  return NumpyArray<T>(heap->data(), shape, owner);
}

// A numpy array owning an uninitialised buffer of n values (no zero-fill of large outputs).
template <class T>
struct OwnedBuffer {
  std::unique_ptr<T[]> data;
  size_t size = 0;
  explicit OwnedBuffer(size_t n) : data(new T[n > 0 ? n : 1]), size(n) {}
};

template <class T>
NumpyArray<T> to_numpy(OwnedBuffer<T>&& buffer) {
  T* raw = buffer.data.release();
  nb::capsule owner(raw, [](void* p) noexcept { delete[] static_cast<T*>(p); });
  return NumpyArray<T>(raw, {buffer.size}, owner);
}

[[noreturn]] inline void raise_value(const std::string& message) {
  throw nb::value_error(message.c_str());
}
[[noreturn]] inline void raise_type(const std::string& message) {
  throw nb::type_error(message.c_str());
}

// The float value of a Python number (int, float, numpy scalar); TypeError otherwise.
// `where` (a callable returning the value's name) is only called on error.
template <class Where>
double number_as_double(PyObject* obj, Where&& where) {
  if (PyFloat_CheckExact(obj)) return PyFloat_AS_DOUBLE(obj);
  const double v = PyFloat_AsDouble(obj);
  if (v == -1.0 && PyErr_Occurred()) {
    PyErr_Clear();
    raise_type(where() + ": expected a number, got " + Py_TYPE(obj)->tp_name);
  }
  return v;
}

// The integer value of a Python int (or an object with __index__); TypeError otherwise.
template <class Where>
int64_t number_as_int64(PyObject* obj, Where&& where) {
  if (PyFloat_Check(obj)) raise_type(where() + ": expected an integer, got float");
  const long long v = PyLong_AsLongLong(obj);
  if (v == -1 && PyErr_Occurred()) {
    PyErr_Clear();
    raise_type(where() + ": expected an integer, got " + Py_TYPE(obj)->tp_name);
  }
  return static_cast<int64_t>(v);
}

// A sequence of numbers as doubles, appended to out; returns how many.
template <class Where>
size_t append_doubles(PyObject* seq, Where&& where, std::vector<double>& out) {
  PyObject* fast = PySequence_Fast(seq, "");
  if (fast == nullptr) {
    PyErr_Clear();
    raise_type(where() + ": expected a sequence of numbers, got " + Py_TYPE(seq)->tp_name);
  }
  const Py_ssize_t n = PySequence_Fast_GET_SIZE(fast);
  PyObject** items = PySequence_Fast_ITEMS(fast);
  try {
    for (Py_ssize_t i = 0; i < n; ++i) out.push_back(number_as_double(items[i], where));
  } catch (...) {
    Py_DECREF(fast);
    throw;
  }
  Py_DECREF(fast);
  return static_cast<size_t>(n);
}

}  // namespace vt_ops
