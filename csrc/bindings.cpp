// The only file that knows Python. Everything arrives as plain integers (data pointers, sizes, dtype
// codes, streams); the Python layer has already checked devices, dtypes, shapes and layouts.
//
// No torch headers: the module works with every torch version and imports without a GPU. The one
// place it touches Python tensors is TensorTable.gather_grads (p.grad, g.data_ptr() and a few checks,
// through the C functions behind torch's public Python attributes), because doing that loop in Python
// costs ~0.25 us per tensor, which is most of a small step.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <stdexcept>
#include <string>
#include <vector>

#include "cpu/adam_cpu.h"
#include "cpu/bandwidth_probe.h"
#include "adam_modes.h"
#include "launch_table_writer.h"
#include "moment_quantization.h"
#include "tensor_table.h"

#ifdef FUSEDADAM_WITH_CUDA
#include "cuda/adam_cuda.h"
#include "cuda/cuda_runtime.h"
#endif

namespace py = pybind11;
using namespace fusedadam;

namespace {

template <typename T>
T* as_pointer(uintptr_t address) {
  return reinterpret_cast<T*>(address);
}

// Direct calls into torch's attribute implementations for the gather loop. Going through
// PyObject_GetAttr / PyObject_CallMethod costs a type lookup plus an instance-__dict__ probe per call
// (tensors have a __dict__); calling the C function behind torch._C.TensorBase's descriptor skips
// both. Only used for exact torch.Tensor / nn.Parameter objects, which override none of these.
class TensorAccess {
 public:
  explicit TensorAccess(PyObject* tensor_base) {
    grad_ = getset(tensor_base, "grad");
    layout_ = getset(tensor_base, "layout");
    dtype_ = getset(tensor_base, "dtype");
    shape_ = getset(tensor_base, "shape");
    data_ptr_ = noargs_method(tensor_base, "data_ptr");
  }

  // New references, or nullptr with the Python error cleared.
  PyObject* grad(PyObject* t) const { return get(grad_, t); }
  PyObject* layout(PyObject* t) const { return get(layout_, t); }
  PyObject* dtype(PyObject* t) const { return get(dtype_, t); }
  PyObject* shape(PyObject* t) const { return get(shape_, t); }

  // t.data_ptr(); 0 (error cleared) if it cannot be read.
  uintptr_t data_ptr(PyObject* t) const {
    PyObject* result = data_ptr_ ? data_ptr_->ml_meth(t, nullptr) : nullptr;
    if (!result) {
      PyErr_Clear();
      return 0;
    }
    const uintptr_t address = static_cast<uintptr_t>(PyLong_AsUnsignedLongLong(result));
    Py_DECREF(result);
    if (PyErr_Occurred()) {
      PyErr_Clear();
      return 0;
    }
    return address;
  }

 private:
  static PyGetSetDef* getset(PyObject* type, const char* name) {
    PyObject* descr = PyDict_GetItemString(reinterpret_cast<PyTypeObject*>(type)->tp_dict, name);
    if (!descr || Py_TYPE(descr) != &PyGetSetDescr_Type) throw std::runtime_error(std::string("torch.Tensor.") + name + " is not a C getter");
    return reinterpret_cast<PyGetSetDescrObject*>(descr)->d_getset;
  }
  static PyMethodDef* noargs_method(PyObject* type, const char* name) {
    PyObject* descr = PyDict_GetItemString(reinterpret_cast<PyTypeObject*>(type)->tp_dict, name);
    if (!descr || Py_TYPE(descr) != &PyMethodDescr_Type) throw std::runtime_error(std::string("torch.Tensor.") + name + " is not a C method");
    PyMethodDef* def = reinterpret_cast<PyMethodDescrObject*>(descr)->d_method;
    if ((def->ml_flags & METH_NOARGS) == 0) throw std::runtime_error(std::string("torch.Tensor.") + name + " takes arguments");
    return def;
  }
  static PyObject* get(PyGetSetDef* def, PyObject* t) {
    PyObject* value = def->get(t, def->closure);
    if (!value) PyErr_Clear();
    return value;
  }

  PyGetSetDef* grad_ = nullptr;
  PyGetSetDef* layout_ = nullptr;
  PyGetSetDef* dtype_ = nullptr;
  PyGetSetDef* shape_ = nullptr;
  PyMethodDef* data_ptr_ = nullptr;
};

PyObject* interned_is_contiguous() {
  static PyObject* name = PyUnicode_InternFromString("is_contiguous");
  return name;
}
PyObject* interned_stride() {
  static PyObject* name = PyUnicode_InternFromString("stride");
  return name;
}

// True when `value` (a new reference, or nullptr) is `expected`; consumes `value`.
bool is_and_release(PyObject* value, PyObject* expected) {
  const bool same = value != nullptr && value == expected;
  Py_XDECREF(value);
  return same;
}

// A TensorTable plus what the per-step gradient gather needs from Python: the parameters in table
// order, their layouts, the torch dtype and layout objects to compare against (never imported here).
struct PyTensorTable {
  TensorTable table;
  py::list params;
  py::list param_shapes;  // tuples
  py::list param_strides;
  std::vector<char> param_contiguous;
  py::object torch_dtype;
  py::object strided_layout;
  TensorAccess access;
  // A weak reference to each gradient that passed the layout checks: the same object next step skips
  // them. Weak, so a gradient dropped by zero_grad() is freed as torch.optim.Adam would free it.
  std::vector<py::object> checked_grads;
  std::vector<const void*> scratch_grads;
  // Bumped whenever a gradient address in the table changes: device backends upload their launch
  // table again only then.
  uint64_t grad_version = 0;
};

// Calls f with exp_avg's map (signed) or exp_avg_sq's, after checking the element count.
template <typename F>
void with_moment_map(bool is_signed, int64_t numel, F&& f) {
  if (numel < 0) throw std::invalid_argument("numel must be >= 0");
  if (is_signed) {
    f(quantization::SignedMap{});
  } else {
    f(quantization::UnsignedMap{});
  }
}

void check_dtype_code(int dtype, DType largest = DType::kBFloat16) {
  if (dtype < 0 || dtype > static_cast<int>(largest)) throw std::invalid_argument("unknown dtype code");
}

// Throws std::invalid_argument unless the kernels have this storage combination (adam_modes.h).
void check_precision(int param_dtype, int state_dtype, int param_update) {
  check_dtype_code(param_dtype);
  check_dtype_code(state_dtype, DType::kMoment8Bit);
  if (param_update < 0 || param_update > static_cast<int>(ParamUpdate::kKahanSummation)) {
    throw std::invalid_argument("unknown param_update code");
  }
  dispatch_precision(static_cast<DType>(param_dtype), static_cast<DType>(state_dtype),
                     static_cast<ParamUpdate>(param_update), [](auto) {});
}

PyTensorTable make_table(int dtype, int state_dtype, int param_update, bool step_is_double, const std::vector<int64_t>& numels,
                         const std::vector<uintptr_t>& params, const std::vector<uintptr_t>& exp_avgs,
                         const std::vector<uintptr_t>& exp_avg_sqs, const std::vector<uintptr_t>& max_exp_avg_sqs,
                         const std::vector<uintptr_t>& masters, const std::vector<uintptr_t>& compensations,
                         const std::vector<uintptr_t>& exp_avg_absmaxes,
                         const std::vector<uintptr_t>& exp_avg_sq_absmaxes,
                         const std::vector<uintptr_t>& max_exp_avg_sq_absmaxes, const std::vector<uint32_t>& salts, const std::vector<uintptr_t>& steps,
                         py::list param_objects, py::list param_shapes, py::list param_strides,
                         const std::vector<bool>& param_contiguous,
                         py::object torch_dtype, py::object strided_layout, py::object tensor_base) {
  check_precision(dtype, state_dtype, param_update);
  const size_t n = numels.size();
  const bool quantized = static_cast<DType>(state_dtype) == DType::kMoment8Bit;
  const auto update = static_cast<ParamUpdate>(param_update);
  const bool needs_masters = update == ParamUpdate::kMasterWeights;
  const bool needs_compensations = update == ParamUpdate::kKahanSummation;
  if (params.size() != n || exp_avgs.size() != n || exp_avg_sqs.size() != n || steps.size() != n ||
      salts.size() != n || !(max_exp_avg_sqs.empty() || max_exp_avg_sqs.size() == n) ||
      masters.size() != (needs_masters ? n : 0) || compensations.size() != (needs_compensations ? n : 0) ||
      py::len(param_objects) != n || py::len(param_shapes) != n || py::len(param_strides) != n ||
      param_contiguous.size() != n || exp_avg_absmaxes.size() != (quantized ? n : 0) ||
      exp_avg_sq_absmaxes.size() != (quantized ? n : 0) ||
      max_exp_avg_sq_absmaxes.size() != (quantized ? max_exp_avg_sqs.size() : 0)) {
    throw std::invalid_argument("TensorTable: every list must have one entry per tensor (masters only with master "
                                "weights, compensations only with Kahan summation, absmaxes only with 8-bit moments)");
  }
  PyTensorTable result{TensorTable{}, param_objects, param_shapes, param_strides,
                       std::vector<char>(param_contiguous.begin(), param_contiguous.end()), torch_dtype,
                       strided_layout, TensorAccess(tensor_base.ptr()), std::vector<py::object>(n),
                       std::vector<const void*>(n)};
  TensorTable& table = result.table;
  table.param_dtype = static_cast<DType>(dtype);
  table.state_dtype = static_cast<DType>(state_dtype);
  table.param_update = update;
  table.step_is_double = step_is_double;
  table.tensors.resize(n);
  table.first_element.resize(n + 1);
  table.first_element[0] = 0;
  for (size_t i = 0; i < n; ++i) {
    if (numels[i] < 0) throw std::invalid_argument("TensorTable: negative numel");
    table.tensors[i] = TensorSlot{as_pointer<void>(params[i]),        nullptr,
                                  as_pointer<void>(exp_avgs[i]),      as_pointer<void>(exp_avg_sqs[i]),
                                  max_exp_avg_sqs.empty() ? nullptr : as_pointer<void>(max_exp_avg_sqs[i]),
                                  as_pointer<void>(steps[i]),         numels[i],
                                  needs_masters ? as_pointer<float>(masters[i]) : nullptr,
                                  needs_compensations ? as_pointer<void>(compensations[i]) : nullptr,
                                  salts[i]};
    if (quantized) {
      table.tensors[i].exp_avg_absmax = as_pointer<float>(exp_avg_absmaxes[i]);
      table.tensors[i].exp_avg_sq_absmax = as_pointer<float>(exp_avg_sq_absmaxes[i]);
      if (!max_exp_avg_sq_absmaxes.empty()) table.tensors[i].max_exp_avg_sq_absmax = as_pointer<float>(max_exp_avg_sq_absmaxes[i]);
    }
    table.first_element[i + 1] = table.first_element[i] + numels[i];
  }
  return result;
}

// True when `value` (a new reference, or nullptr) equals `expected`; consumes `value`.
bool equals_and_release(PyObject* value, PyObject* expected) {
  if (!value) return false;
  const int equal = PyObject_RichCompareBool(value, expected, Py_EQ);
  Py_DECREF(value);
  if (equal < 0) PyErr_Clear();
  return equal == 1;
}

bool grad_layout_matches(PyObject* grad, bool param_contiguous, PyObject* param_strides) {
  if (param_contiguous) {
    PyObject* result = PyObject_CallMethodNoArgs(grad, interned_is_contiguous());
    if (!result) {
      PyErr_Clear();
      return false;
    }
    const bool contiguous = result == Py_True;
    Py_DECREF(result);
    return contiguous;
  }
  PyObject* strides = PyObject_CallMethodNoArgs(grad, interned_stride());
  if (!strides) {
    PyErr_Clear();
    return false;
  }
  const int equal = PyObject_RichCompareBool(strides, param_strides, Py_EQ);
  Py_DECREF(strides);
  if (equal < 0) PyErr_Clear();
  return equal == 1;
}

// The object a weak reference points to (borrowed), or nullptr when it is dead or unset.
PyObject* weak_target(const py::object& ref) {
  if (!ref) return nullptr;
#if PY_VERSION_HEX >= 0x030D0000
  PyObject* target = nullptr;
  if (PyWeakref_GetRef(ref.ptr(), &target) != 1) return nullptr;
  Py_DECREF(target);  // still alive: the caller holds a strong reference to the same object
  return target;
#else
  PyObject* target = PyWeakref_GetObject(ref.ptr());
  return target == Py_None ? nullptr : target;
#endif
}

// Reads every parameter's gradient pointer for this step, and checks that every address and extent the table holds
// still belongs to the tensor it came from. Returns -1 when the table is ready to run, else the index of the first
// tensor the Python layer must look at (no grad, a sparse or mismatched grad, or a parameter whose storage was
// replaced); the table is only written when every tensor passed. (State tensors are checked in Python: the
// optimizer's state dicts count their own changes.)
//
// Each torch attribute call costs ~60-90 ns (torch's own per-call bookkeeping), which is most of a small step, so the
// common case is kept to three: p.grad, g.data_ptr() and p.data_ptr() (a parameter given new storage, by p.data = ...,
// set_ or a growing resize_, has another address; the old storage stays alive in the Python table, so a kernel never
// writes freed memory even before the check). When the gradient is the object checked at an earlier step (a weak
// reference says so) and still has the same address, nothing else about it can have changed; otherwise its layout,
// dtype, shape and strides are checked again against the parameter's.
long gather_grads(PyTensorTable& self) {
  TensorTable& table = self.table;
  const size_t n = table.tensors.size();
  PyObject* params = self.params.ptr();
  const TensorAccess& access = self.access;
  for (size_t i = 0; i < n; ++i) {
    PyObject* param = PyList_GET_ITEM(params, i);
    if (access.data_ptr(param) != reinterpret_cast<uintptr_t>(table.tensors[i].param)) return static_cast<long>(i);
    PyObject* grad = access.grad(param);
    if (!grad) return static_cast<long>(i);
    if (grad == Py_None) {
      Py_DECREF(grad);
      return static_cast<long>(i);
    }
    const bool seen = weak_target(self.checked_grads[i]) == grad;
    const uintptr_t address = access.data_ptr(grad);
    bool usable = address != 0 || table.tensors[i].numel == 0;
    if (usable && !(seen && address == reinterpret_cast<uintptr_t>(table.tensors[i].grad))) {
      usable = is_and_release(access.layout(grad), self.strided_layout.ptr()) &&
               is_and_release(access.dtype(grad), self.torch_dtype.ptr()) &&
               equals_and_release(access.shape(grad), PyList_GET_ITEM(self.param_shapes.ptr(), i)) &&
               grad_layout_matches(grad, self.param_contiguous[i] != 0,
                                   PyList_GET_ITEM(self.param_strides.ptr(), i));
      if (usable && !seen) {
        PyObject* ref = PyWeakref_NewRef(grad, nullptr);
        if (ref) {
          self.checked_grads[i] = py::reinterpret_steal<py::object>(ref);
        } else {
          PyErr_Clear();
        }
      }
    }
    Py_DECREF(grad);
    if (!usable) return static_cast<long>(i);
    self.scratch_grads[i] = reinterpret_cast<const void*>(address);
  }
  bool moved = false;
  for (size_t i = 0; i < n; ++i) {
    moved |= table.tensors[i].grad != self.scratch_grads[i];
    table.tensors[i].grad = self.scratch_grads[i];
  }
  self.grad_version += moved;
  return -1;
}

void set_grads(PyTensorTable& self, const std::vector<uintptr_t>& grads) {
  TensorTable& table = self.table;
  if (grads.size() != table.tensors.size()) throw std::invalid_argument("set_grads: one pointer per tensor");
  bool moved = false;
  for (size_t i = 0; i < grads.size(); ++i) {
    moved |= table.tensors[i].grad != as_pointer<const void>(grads[i]);
    table.tensors[i].grad = as_pointer<const void>(grads[i]);
  }
  self.grad_version += moved;
}

void check_chunk_size(int64_t chunk_size) {
  // Chunk starts must keep 16-byte vector accesses aligned for every dtype.
  if (chunk_size <= 0 || chunk_size % 64 != 0) throw std::invalid_argument("chunk_size must be a positive multiple of 64");
}

py::tuple write_launch_table(const PyTensorTable& self, uintptr_t address, int64_t words, int64_t chunk_size) {
  check_chunk_size(chunk_size);
  if (words != launch_table::num_words(self.table, chunk_size)) {
    throw std::invalid_argument("write_launch_table: the buffer does not have launch_table_words(chunk_size) words");
  }
  if (self.table.quantized() && chunk_size % quantization::kBlock != 0) {
    // A block's absmax is written by the one program that steps the block.
    throw std::invalid_argument("write_launch_table: 8-bit moments need chunk_size a multiple of " +
                                std::to_string(quantization::kBlock));
  }
  for (const auto& t : self.table.tensors) {
    if (t.numel > 0 && t.grad == nullptr) throw std::invalid_argument("write_launch_table: a gradient pointer is unset");
  }
  const launch_table::Written written = launch_table::write(self.table, chunk_size, as_pointer<int64_t>(address));
  return py::make_tuple(written.num_chunks, written.aligned16);
}

void check_weight_decay_mode(int weight_decay_mode) {
  if (weight_decay_mode < 0 || weight_decay_mode > static_cast<int>(WeightDecay::kDecoupled)) {
    throw std::invalid_argument("unknown weight_decay_mode");
  }
}

void adam_step_cpu(const PyTensorTable& self, double lr, double beta1, double beta2, double eps,
                   double weight_decay, int weight_decay_mode, bool amsgrad, bool maximize, uint64_t seed,
                   int num_threads) {
  const TensorTable& table = self.table;
  check_weight_decay_mode(weight_decay_mode);
  for (const auto& t : table.tensors) {
    if (t.numel > 0 && t.grad == nullptr) throw std::invalid_argument("adam_step_cpu: a gradient pointer is unset");
    if (amsgrad && t.numel > 0 && t.max_exp_avg_sq == nullptr) throw std::invalid_argument("amsgrad needs max_exp_avg_sq");
    const bool absmax_missing = t.exp_avg_absmax == nullptr || t.exp_avg_sq_absmax == nullptr ||
                                (amsgrad && t.max_exp_avg_sq_absmax == nullptr);
    if (table.quantized() && t.numel > 0 && absmax_missing) {
      throw std::invalid_argument("adam_step_cpu: 8-bit moments need every moment's absmax");
    }
  }
  const AdamHyperparameters hp{lr, beta1, beta2, eps, weight_decay, static_cast<WeightDecay>(weight_decay_mode),
                               amsgrad, maximize, seed};
  py::gil_scoped_release release;
  cpu::adam_step(table, hp, num_threads);
}

// Pointers are integers (0 for "none"): the device backends pass tensors' data_ptr().
#define ADAM_STEP_CUDA_ARGS                                                                                    \
  py::arg("device"), py::arg("stream"), py::arg("table"), py::arg("num_tensors"), py::arg("num_chunks"),        \
      py::arg("chunk_size"), py::arg("dtype"), py::arg("state_dtype"), py::arg("param_update"), py::arg("steps"), \
      py::arg("done_counter"), py::arg("lr"), py::arg("lr_on_device"), py::arg("beta1"), py::arg("beta2"),       \
      py::arg("beta1_on_device"), py::arg("beta2_on_device"), py::arg("eps"), py::arg("weight_decay"),          \
      py::arg("weight_decay_mode"), py::arg("amsgrad"), py::arg("maximize"), py::arg("seed"),                   \
      py::arg("grad_scale"), py::arg("found_inf")
#define ADAM_STEP_CUDA_SIGNATURE                                                                                \
  int device, uintptr_t stream, uintptr_t table, int64_t num_tensors, int64_t num_chunks, int64_t chunk_size,   \
      int dtype, int state_dtype, int param_update, uintptr_t steps, uintptr_t done_counter, double lr,         \
      uintptr_t lr_on_device, double beta1, double beta2, uintptr_t beta1_on_device, uintptr_t beta2_on_device, \
      double eps, double weight_decay, int weight_decay_mode, bool amsgrad, bool maximize, uint64_t seed,        \
      uintptr_t grad_scale, uintptr_t found_inf
#define ADAM_STEP_CUDA_VALUES                                                                                   \
  device, stream, table, num_tensors, num_chunks, chunk_size, dtype, state_dtype, param_update, steps,          \
      done_counter, lr, lr_on_device, beta1, beta2, beta1_on_device, beta2_on_device, eps, weight_decay,        \
      weight_decay_mode, amsgrad, maximize, seed, grad_scale, found_inf

#ifdef FUSEDADAM_WITH_CUDA
cuda::AdamLaunchParams launch_params(ADAM_STEP_CUDA_SIGNATURE) {
  check_precision(dtype, state_dtype, param_update);
  check_weight_decay_mode(weight_decay_mode);
  return cuda::AdamLaunchParams{device, stream, as_pointer<const int64_t>(table), num_tensors, num_chunks, chunk_size,
                                static_cast<DType>(dtype), static_cast<DType>(state_dtype),
                                static_cast<ParamUpdate>(param_update), as_pointer<float>(steps),
                                as_pointer<unsigned int>(done_counter), lr, as_pointer<const float>(lr_on_device),
                                beta1, beta2, as_pointer<const float>(beta1_on_device),
                                as_pointer<const float>(beta2_on_device), eps, weight_decay,
                                static_cast<WeightDecay>(weight_decay_mode), amsgrad, maximize, seed,
                                as_pointer<const float>(grad_scale), as_pointer<const float>(found_inf)};
}
#endif

[[noreturn]] void no_cuda() {
  throw std::runtime_error(
      "fusedadam was built without CUDA (nvcc was not found or FUSEDADAM_NO_CUDA=1); rebuild on a machine with "
      "the CUDA toolkit: pip install --no-build-isolation .");
}

}  // namespace

PYBIND11_MODULE(_C, m) {
  m.doc() = "fusedadam native kernels (torch-free: raw pointers in, errors out)";

  py::class_<PyTensorTable>(m, "TensorTable")
      .def(py::init(&make_table), py::arg("dtype"), py::arg("state_dtype"), py::arg("param_update"), py::arg("step_is_double"),
           py::arg("numels"), py::arg("params"), py::arg("exp_avgs"), py::arg("exp_avg_sqs"),
           py::arg("max_exp_avg_sqs"), py::arg("masters"), py::arg("compensations"),
           py::arg("exp_avg_absmaxes"), py::arg("exp_avg_sq_absmaxes"), py::arg("max_exp_avg_sq_absmaxes"), py::arg("salts"), py::arg("steps"), py::arg("param_objects"),
           py::arg("param_shapes"), py::arg("param_strides"), py::arg("param_contiguous"), py::arg("torch_dtype"),
           py::arg("strided_layout"),
           py::arg("tensor_base"))
      .def_property_readonly("num_tensors", [](const PyTensorTable& t) { return t.table.tensors.size(); })
      .def_property_readonly("total_numel", [](const PyTensorTable& t) { return t.table.total_numel(); })
      .def_property_readonly("grad_version", [](const PyTensorTable& t) { return t.grad_version; })
      .def("gather_grads", &gather_grads)
      .def("set_grads", &set_grads, py::arg("grads"))
      .def("launch_table_words",
           [](const PyTensorTable& t, int64_t chunk_size) {
             check_chunk_size(chunk_size);
             return launch_table::num_words(t.table, chunk_size);
           },
           py::arg("chunk_size"))
      .def("write_launch_table", &write_launch_table, py::arg("address"), py::arg("words"), py::arg("chunk_size"),
           "Writes the launch table (csrc/launch_table.h) to host memory; returns (num_chunks, aligned16).");

  py::module_ layout = m.def_submodule("launch_table", "column indices of csrc/launch_table.h");
  {
    using namespace launch_table;
    const std::pair<const char*, int> columns[] = {
        {"TENSOR_COLUMNS", kTensorColumns}, {"PARAM", kParam}, {"GRAD", kGrad}, {"EXP_AVG", kExpAvg},
        {"EXP_AVG_SQ", kExpAvgSq}, {"MAX_EXP_AVG_SQ", kMaxExpAvgSq}, {"NUMEL", kNumel}, {"MASTER", kMaster},
        {"COMPENSATION", kCompensation}, {"SALT", kSalt}, {"EXP_AVG_ABSMAX", kExpAvgAbsmax},
        {"EXP_AVG_SQ_ABSMAX", kExpAvgSqAbsmax}, {"MAX_EXP_AVG_SQ_ABSMAX", kMaxExpAvgSqAbsmax},
        {"CHUNK_COLUMNS", kChunkColumns},
        {"TENSOR_INDEX", kTensorIndex}, {"FIRST_ELEMENT", kFirstElement}};
    for (const auto& [name, value] : columns) layout.attr(name) = value;
  }

  m.def("adam_step_cpu", &adam_step_cpu, py::arg("table"), py::arg("lr"), py::arg("beta1"), py::arg("beta2"),
        py::arg("eps"), py::arg("weight_decay"), py::arg("weight_decay_mode"), py::arg("amsgrad"),
        py::arg("maximize"), py::arg("seed"), py::arg("num_threads"));

  m.def(
      "bandwidth_probe_cpu",
      [](uintptr_t a, uintptr_t b, uintptr_t c, uintptr_t d, int64_t words, int num_threads) {
        py::gil_scoped_release release;
        cpu::bandwidth_probe(as_pointer<uint32_t>(a), as_pointer<uint32_t>(b), as_pointer<uint32_t>(c),
                             as_pointer<const uint32_t>(d), words, num_threads);
      },
      py::arg("a"), py::arg("b"), py::arg("c"), py::arg("d"), py::arg("words"), py::arg("num_threads"));

  // The 8-bit maps of the moments (moment_quantization.h) on raw fp32 and uint8 buffers, for the tests that hold them
  // to fusedadam/quantization.py code for code.
  m.def(
      "quantize_moments",
      [](uintptr_t values, int64_t numel, bool is_signed, uintptr_t codes, uintptr_t absmax) {
        with_moment_map(is_signed, numel, [&](auto map) {
          quantization::quantize_span<decltype(map)>(as_pointer<const float>(values), numel, as_pointer<uint8_t>(codes),
                                                     as_pointer<float>(absmax));
        });
      },
      py::arg("values"), py::arg("numel"), py::arg("signed"), py::arg("codes"), py::arg("absmax"));
  m.def(
      "dequantize_moments",
      [](uintptr_t codes, uintptr_t absmax, int64_t numel, bool is_signed, uintptr_t values) {
        with_moment_map(is_signed, numel, [&](auto map) {
          quantization::dequantize_span<decltype(map)>(as_pointer<const uint8_t>(codes),
                                                       as_pointer<const float>(absmax), numel,
                                                       as_pointer<float>(values));
        });
      },
      py::arg("codes"), py::arg("absmax"), py::arg("numel"), py::arg("signed"), py::arg("values"));
  m.def("quantization_block", []() { return quantization::kBlock; });

  m.def("cpu_selected_isa", &cpu::selected_isa);
  m.def("cpu_compiled_isas", &cpu::compiled_isas);
  m.def("cpu_runnable_isas", &cpu::runnable_isas);

#ifdef FUSEDADAM_WITH_CUDA
  m.attr("has_cuda") = true;
  m.def("cuda_device_count", &cuda::device_count);
  m.def("cuda_driver_version", &cuda::driver_version);
  m.def("cuda_runtime_version", &cuda::runtime_version);
  m.def("cuda_compiled_archs", &cuda::compiled_archs);
  m.def("cuda_device_name", &cuda::device_name, py::arg("device"));
  m.def("cuda_stream_is_capturing", &cuda::stream_is_capturing, py::arg("device"), py::arg("stream"));
  m.def("cuda_has_primary_context", &cuda::primary_context_active, py::arg("device"));
  m.def(
      "adam_step_cuda",
      [](ADAM_STEP_CUDA_SIGNATURE) {
        const cuda::AdamLaunchParams params = launch_params(ADAM_STEP_CUDA_VALUES);
        py::gil_scoped_release release;
        cuda::adam_step(params);
      },
      ADAM_STEP_CUDA_ARGS);
  m.def(
      "adam_step_cuda_host",
      [](ADAM_STEP_CUDA_SIGNATURE, int64_t sms, int64_t blocks_per_sm, uint64_t order_seed) {
        const cuda::AdamLaunchParams params = launch_params(ADAM_STEP_CUDA_VALUES);
        cuda::ExecutionTally tally;
        {
          py::gil_scoped_release release;
          tally = cuda::adam_step_on_host(params, cuda::HostGrid{sms, blocks_per_sm, order_seed});
        }
        py::dict counts;
        counts["blocks"] = tally.blocks;
        counts["chunks"] = tally.chunks;
        counts["packed_elements"] = tally.packed_elements;
        counts["unaligned_pack_arrays"] = tally.unaligned_pack_arrays;
        counts["scalar_elements"] = tally.scalar_elements;
        counts["coefficient_computations"] = tally.coefficient_computations;
        counts["rounding_key_computations"] = tally.rounding_key_computations;
        counts["quantized_blocks"] = tally.quantized_blocks;
        counts["last_blocks"] = tally.last_blocks;
        counts["skipped_launches"] = tally.skipped_launches;
        return counts;
      },
      ADAM_STEP_CUDA_ARGS, py::arg("sms"), py::arg("blocks_per_sm"), py::arg("order_seed"),
      "The CUDA kernel's own code run on the host over host memory (a testing tool): every block of the grid a GPU "
      "with `sms` SMs holding `blocks_per_sm` blocks would get, in an order drawn from `order_seed`, every thread of "
      "each. Returns what the launcher counted.");
  m.def(
      "bandwidth_probe_cuda",
      [](int device, uintptr_t stream, uintptr_t a, uintptr_t b, uintptr_t c, uintptr_t d, int64_t words) {
        py::gil_scoped_release release;
        cuda::bandwidth_probe(device, stream, as_pointer<uint32_t>(a), as_pointer<uint32_t>(b),
                              as_pointer<uint32_t>(c), as_pointer<const uint32_t>(d), words);
      },
      py::arg("device"), py::arg("stream"), py::arg("a"), py::arg("b"), py::arg("c"), py::arg("d"),
      py::arg("words"));
#else
  m.attr("has_cuda") = false;
  m.def(
      "adam_step_cuda", [](ADAM_STEP_CUDA_SIGNATURE) { no_cuda(); }, ADAM_STEP_CUDA_ARGS);
  m.def(
      "adam_step_cuda_host",
      [](ADAM_STEP_CUDA_SIGNATURE, int64_t, int64_t, uint64_t) -> py::dict { no_cuda(); }, ADAM_STEP_CUDA_ARGS,
      py::arg("sms"), py::arg("blocks_per_sm"), py::arg("order_seed"));
  m.def("cuda_device_count", []() -> int { no_cuda(); });
  m.def("cuda_driver_version", []() -> int { return 0; });
  m.def("cuda_runtime_version", []() -> int { no_cuda(); });
  m.def("cuda_compiled_archs", []() { return std::string(); });
  m.def("cuda_device_name", [](int) -> std::string { no_cuda(); }, py::arg("device"));
  m.def("cuda_stream_is_capturing", [](int, uintptr_t) -> bool { no_cuda(); }, py::arg("device"), py::arg("stream"));
  m.def("cuda_has_primary_context", [](int) -> bool { no_cuda(); }, py::arg("device"));
  m.def(
      "bandwidth_probe_cuda",
      [](int, uintptr_t, uintptr_t, uintptr_t, uintptr_t, uintptr_t, int64_t) { no_cuda(); }, py::arg("device"),
      py::arg("stream"), py::arg("a"), py::arg("b"), py::arg("c"), py::arg("d"), py::arg("words"));
#endif
}
