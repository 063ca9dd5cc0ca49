// busi_infer._core: the runtime's Classifier, Model and image pre-processing for
// Python. The public package (busi_infer/__init__.py) re-exports it; the type
// stub (busi_infer/_core.pyi) documents the same API for editors and mypy.
//
// Arrays are read in place when their layout allows (uint8/uint16, pixels of a
// row contiguous, positive row stride) and copied otherwise. The GIL is released
// while an image is decoded, pre-processed and classified, so other Python
// threads (and other Classifier instances) run meanwhile; each instance holds a
// mutex because busi::Classifier keeps scratch buffers (classifier.hpp).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <pybind11/stl/filesystem.h>

#include <chrono>
#include <cstring>
#include <mutex>
#include <optional>
#include <variant>

#include "bindings.hpp"
#include "busi/classifier.hpp"
#include "busi/error.hpp"
#include "busi/image.hpp"
#include "busi/limits.hpp"
#include "busi/model.hpp"

namespace py = pybind11;

namespace {

// ---- numpy arrays as busi::ImageView --------------------------------------

enum class color_order { bgr, rgb };

color_order parse_color_order(const std::string& name) {
  if (name == "bgr") return color_order::bgr;
  if (name == "rgb") return color_order::rgb;
  throw busi::image_error("color_order '" + name + "' not supported (bgr, rgb)");
}

// A str, bytes or os.PathLike as a path; busi::error (not "Unable to cast")
// for anything else or a path the file system encoding cannot take.
std::filesystem::path as_path(const py::handle& item, const char* what) {
  try {
    return item.cast<std::filesystem::path>();
  } catch (const py::error_already_set&) {
  } catch (const py::cast_error&) {
  }
  PyErr_Clear();
  const std::string type = py::str(py::type::of(item).attr("__name__"));
  const std::string message =
      py::isinstance<py::str>(item) || py::hasattr(item, "__fspath__")
          ? std::string(what) + " path " + std::string(py::str(py::repr(item))) +
                " cannot be encoded for the file system (a lone surrogate?)"
          : std::string(what) + " must be a path (str, os.PathLike), not " + type;
  if (std::string_view(what) == "image") throw busi::image_error(message);
  throw busi::model_error(message);
}

// An image array prepared while holding the GIL and read after releasing it.
// `keep` owns the buffer `view` points into (the caller's array or a copy).
struct pixel_input {
  busi::ImageView view;
  py::array keep;
  bool swap_red_blue = false;  // color_order rgb: swapped into a private copy later
  bool copied = false;         // the layout forced a contiguous copy
};

pixel_input wrap_array(const py::array& array, color_order order) {
  const auto dtype = array.dtype();
  if (dtype.kind() != 'u' || (dtype.itemsize() != 1 && dtype.itemsize() != 2))
    throw busi::image_error("image array: dtype " + py::str(static_cast<py::handle>(dtype)).cast<std::string>() +
                            " not supported (uint8, uint16)");
  if (array.ndim() != 2 && array.ndim() != 3)
    throw busi::image_error("image array: " + std::to_string(array.ndim()) +
                            " dimensions not supported (HxW gray, HxWxC with C = 1, 3, 4)");
  const py::ssize_t item = dtype.itemsize();
  const py::ssize_t height = array.shape(0), width = array.shape(1);
  const py::ssize_t channels = array.ndim() == 3 ? array.shape(2) : 1;
  // Checked before any copy below (np.broadcast_to gives a huge array with no
  // memory behind it) and before the int conversions for busi::ImageView.
  const unsigned __int128 bytes =
      (unsigned __int128)height * (unsigned __int128)width * (unsigned __int128)channels * (unsigned __int128)item;
  if (bytes > busi::limits::kDecodeBytes)
    throw busi::image_error("image array: shape (" + std::to_string(height) + ", " + std::to_string(width) + ", " +
                            std::to_string(channels) + ") of " + std::to_string(item * 8) +
                            "-bit samples is too large (limit " + std::to_string(busi::limits::kDecodeBytes) +
                            " bytes)");

  // ImageView needs packed pixels within a row and a positive row stride; any
  // other layout (a column slice, a transposed or flipped view) is copied.
  const bool packed_row =
      (array.ndim() == 2 || array.strides(2) == item) && (width <= 1 || array.strides(1) == channels * item);
  const bool row_ok = height <= 1 || array.strides(0) >= width * channels * item;
  const bool aligned = reinterpret_cast<std::uintptr_t>(array.data()) % item == 0 && array.strides(0) % item == 0;
  // A byte-swapped (non-native) uint16 array would be misread: copy it too.
  const bool native = item == 1 || dtype.attr("isnative").cast<bool>();
  pixel_input in;
  in.keep = array;
  if (!native) {
    in.keep = py::array::ensure(array.attr("astype")(dtype.attr("newbyteorder")("=")), py::array::c_style);
    in.copied = true;
  } else if (!(packed_row && row_ok && aligned)) {
    in.keep = py::array::ensure(array, py::array::c_style);
    in.copied = true;
  }
  in.view.data = static_cast<const uint8_t*>(in.keep.data());
  in.view.height = static_cast<int>(height);
  in.view.width = static_cast<int>(width);
  in.view.channels = static_cast<int>(channels);
  in.view.bytes_per_channel = static_cast<int>(item);
  in.view.stride = static_cast<std::size_t>(height <= 1 ? width * channels * item : in.keep.strides(0));
  in.swap_red_blue = order == color_order::rgb && (channels == 3 || channels == 4);
  return in;
}

// Pre-processes an input (no GIL needed). An RGB(A) array becomes BGR(A) in a
// private copy first, since gray-area-v1 weighs the channels in OpenCV's order.
busi::Tensor8 preprocess_input(const pixel_input& in, int height, int width) {
  if (!in.swap_red_blue) return busi::preprocess(in.view, height, width);
  const int c = in.view.channels, bpc = in.view.bytes_per_channel;
  const std::size_t row_bytes = std::size_t(in.view.width) * c * bpc;
  std::vector<uint8_t> bgr(row_bytes * in.view.height);
  for (int y = 0; y < in.view.height; ++y) {
    const uint8_t* src = in.view.data + y * in.view.stride;
    uint8_t* dst = bgr.data() + y * row_bytes;
    for (std::size_t px = 0; px < row_bytes; px += std::size_t(c) * bpc) {
      std::copy_n(src + px, std::size_t(c) * bpc, dst + px);
      std::copy_n(src + px + 2 * bpc, bpc, dst + px);  // B <- R
      std::copy_n(src + px, bpc, dst + px + 2 * bpc);  // R <- B
    }
  }
  busi::ImageView view = in.view;
  view.data = bgr.data();
  view.stride = row_bytes;
  return busi::preprocess(view, height, width);
}

// A path (str or os.PathLike) or an image array, converted with the GIL held.
using image_input = std::variant<std::filesystem::path, pixel_input>;

image_input to_input(const py::handle& item, color_order order) {
  if (py::isinstance<py::array>(item)) return wrap_array(item.cast<py::array>(), order);
  if (py::isinstance<py::str>(item) || py::isinstance<py::bytes>(item) || py::hasattr(item, "__fspath__"))
    return as_path(item, "image");
  throw busi::image_error("expected an image path (str, os.PathLike) or a numpy array, got " +
                          std::string(py::str(py::type::of(item).attr("__name__"))));
}

busi::Tensor8 load_input(const image_input& input, const busi::Shape& shape) {
  if (const auto* path = std::get_if<std::filesystem::path>(&input))
    return busi::load_image(*path, shape.height, shape.width);
  return preprocess_input(std::get<pixel_input>(input), shape.height, shape.width);
}

py::array_t<uint8_t> to_numpy(busi::Tensor8&& tensor) {
  auto* owner = new busi::Tensor8(std::move(tensor));
  py::capsule free_owner(owner, [](void* p) { delete static_cast<busi::Tensor8*>(p); });
  return py::array_t<uint8_t>({owner->height, owner->width}, owner->pixels.data(), free_owner);
}

// ---- Classifier -------------------------------------------------------------

std::string kind_name(busi::ModelKind kind) { return kind == busi::ModelKind::quantized ? "quantized" : "float"; }

// The Python-facing classifier: one busi::Classifier behind a mutex, so two
// Python threads sharing an instance take turns instead of racing on its scratch
// buffers (the GIL is released while it runs, see the file comment).
class py_classifier {
 public:
  py_classifier(const std::string& backend, const py::object& model, const py::dict& settings) {
    busi::ClassifierOptions options;
    if (py::isinstance<busi::Model>(model))
      options.model = model.cast<std::shared_ptr<busi::Model>>();
    else if (py::isinstance<py::str>(model) || py::isinstance<py::bytes>(model) || py::hasattr(model, "__fspath__"))
      options.model_path = as_path(model, "model");
    else if (!model.is_none())
      throw busi::model_error("model must be a .bqnn path (str, os.PathLike), a Model or None, not " +
                              std::string(py::str(py::type::of(model).attr("__name__"))));
    for (const auto& [key, value] : settings) options.settings[py::str(key)] = py::str(value);
    py::gil_scoped_release no_gil;  // an fpga backend may wait for its device
    classifier_ = busi::make_classifier(backend, options);
  }

  std::string backend() const { return classifier_->backend(); }
  void set_referral_sensitivity(double sensitivity) {
    std::lock_guard lock(mutex_);
    classifier_->set_referral_sensitivity(sensitivity);
  }
  std::string describe() const { return classifier_->describe(); }
  // The Model lives as long as the classifier; Python keeps the classifier alive.
  const busi::Model& model() const { return classifier_->model(); }

  busi::Prediction classify(const py::handle& image, color_order order) {
    auto input = to_input(image, order);
    py::gil_scoped_release no_gil;
    // Decoding and pre-processing touch no classifier state: only inference takes turns.
    const auto tensor = load_input(input, classifier_->model().input);
    std::lock_guard lock(mutex_);
    return classifier_->classify(tensor);
  }

  std::vector<busi::Prediction> classify_batch(const py::iterable& images, color_order order) {
    std::vector<image_input> inputs;
    for (const auto& item : images) inputs.push_back(to_input(item, order));
    py::gil_scoped_release no_gil;
    std::vector<busi::Tensor8> tensors;
    tensors.reserve(inputs.size());
    for (const auto& input : inputs) tensors.push_back(load_input(input, classifier_->model().input));
    std::lock_guard lock(mutex_);
    return classifier_->classify_batch(tensors);
  }

  // The C++ side of benchmarks/python_overhead.py: classify_pixels() on an
  // in-memory image `repeats` times, timed in C++ with no Python in the loop.
  // Returns the seconds of each call.
  std::vector<double> time_classify_pixels(const py::array& image, int repeats) {
    const auto input = wrap_array(image, color_order::bgr);
    py::gil_scoped_release no_gil;
    std::lock_guard lock(mutex_);
    std::vector<double> seconds;
    seconds.reserve(repeats);
    for (int i = 0; i < repeats; ++i) {
      const auto start = std::chrono::steady_clock::now();
      classifier_->classify_pixels(input.view);
      seconds.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    }
    return seconds;
  }

 private:
  std::unique_ptr<busi::Classifier> classifier_;
  std::mutex mutex_;
};

// Classifier.model: a shared handle that keeps the Python classifier (and so its
// Model) alive, so it can be passed on as Classifier(model=...). Model is only
// exposed read-only, which makes dropping the const here harmless.
std::shared_ptr<busi::Model> classifier_model(const py::object& self) {
  const busi::Model& model = self.cast<const py_classifier&>().model();
  std::shared_ptr<void> keep_self(self.inc_ref().ptr(), [](void* object) {
    py::gil_scoped_acquire gil;
    Py_DECREF(static_cast<PyObject*>(object));
  });
  return {keep_self, const_cast<busi::Model*>(&model)};
}

std::string prediction_repr(const busi::Prediction& p) {
  std::string scores;
  for (std::size_t i = 0; i < p.scores.size(); ++i)
    scores += (i ? ", " : "") + std::string(py::str(py::float_(p.scores[i])));
  return "Prediction(class_index=" + std::to_string(p.class_index) + ", class_name='" + p.class_name + "', scores=[" +
         scores + "], verdict='" + busi::verdict_name(p.verdict) + "')";
}

// ---- exceptions ---------------------------------------------------------------

// busi::error and its subclasses become busi_infer.Error (a RuntimeError) and
// its subclasses with the C++ message unchanged; busi::device_error becomes
// DeviceError, also an OSError carrying its errno (device_error always has one).
void register_errors(py::module_& m) {
  static py::handle error, model_error, image_error, device_error;
  error = PyErr_NewExceptionWithDoc("busi_infer.Error", "Base of every error busi-infer raises on purpose.",
                                    PyExc_RuntimeError, nullptr);
  model_error =
      PyErr_NewExceptionWithDoc("busi_infer.ModelError", "A model package that cannot be used.", error.ptr(), nullptr);
  image_error = PyErr_NewExceptionWithDoc("busi_infer.ImageError", "An image that cannot be decoded or pre-processed.",
                                          error.ptr(), nullptr);
  const py::tuple device_bases = py::make_tuple(error, py::handle(PyExc_OSError));
  device_error =
      PyErr_NewExceptionWithDoc("busi_infer.DeviceError", "A device, driver or OS resource failed (errno in .errno).",
                                device_bases.ptr(), nullptr);
  m.attr("Error") = error;
  m.attr("ModelError") = model_error;
  m.attr("ImageError") = image_error;
  m.attr("DeviceError") = device_error;

  // Messages carry file names, which need not be UTF-8: undecodable bytes come
  // back as os.fsdecode gives them (surrogateescape) instead of an empty message.
  static const auto text = [](const char* what) {
    PyObject* s = PyUnicode_DecodeUTF8(what, Py_ssize_t(std::strlen(what)), "surrogateescape");
    if (!s) throw py::error_already_set();
    return py::reinterpret_steal<py::object>(s);
  };
  static const auto raise = [](const py::handle& type, const char* what) {
    PyErr_SetObject(type.ptr(), py::reinterpret_borrow<py::object>(type)(text(what)).ptr());
  };
  py::register_exception_translator([](std::exception_ptr thrown) {
    try {
      if (thrown) std::rethrow_exception(thrown);
    } catch (const busi::device_error& e) {
      // Built from the message alone so str() is the C++ message, not "[Errno n] ...".
      py::object exc = py::reinterpret_borrow<py::object>(device_error)(text(e.what()));
      exc.attr("errno") = e.code().value();  // never 0: device_error maps 0 to EIO
      PyErr_SetObject(device_error.ptr(), exc.ptr());
    } catch (const busi::model_error& e) {
      raise(model_error, e.what());
    } catch (const busi::image_error& e) {
      raise(image_error, e.what());
    } catch (const busi::error& e) {
      raise(error, e.what());
    }
  });
}

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "busi-infer runtime bindings (private; import busi_infer instead).";
  m.attr("__version__") = BUSI_VERSION;
  register_errors(m);

  m.def("available_backends", &busi::available_backends,
        "The backends compiled into this build, e.g. ['cpu_int', 'cpu_ref', 'fpga'].");

  py::class_<busi::Prediction>(m, "Prediction", "One classification result.")
      .def_readonly("class_index", &busi::Prediction::class_index, "Index into the model's class names.")
      .def_readonly("class_name", &busi::Prediction::class_name, "'normal', 'benign' or 'malignant'.")
      .def_readonly("scores", &busi::Prediction::scores,
                    "Softmax scores, one per class; empty when the backend reports only the top-1.")
      .def_readonly("logits", &busi::Prediction::logits, "Raw int32 logits of integer backends; empty otherwise.")
      .def_property_readonly(
          "verdict", [](const busi::Prediction& p) { return std::string(busi::verdict_name(p.verdict)); },
          "'refer', 'routine', 'unreadable' (the gate refused the image) or 'unavailable' (no scores or no "
          "calibration to decide on).")
      .def_readonly("reason", &busi::Prediction::reason, "One sentence saying why the verdict is what it is.")
      .def_readonly("p_abnormal", &busi::Prediction::p_abnormal,
                    "P(benign) + P(malignant) of the calibrated scores; nan when unavailable.")
      .def_readonly("suspicious_malignancy", &busi::Prediction::suspicious_malignancy,
                    "P(malignant) reached the package's 'suspicious' threshold.")
      .def_readonly("ood_score", &busi::Prediction::ood_score,
                    "The out-of-distribution score (docs/safety.md); nan when not computed.")
      .def("__repr__", &prediction_repr);

  py::class_<busi::Model, std::shared_ptr<busi::Model>>(
      m, "Model", "A validated .bqnn model package; immutable, shareable between classifiers and threads.")
      .def_static(
          "load",
          [](const py::object& file) {
            const auto path = as_path(file, "model");
            py::gil_scoped_release no_gil;
            return std::make_shared<busi::Model>(busi::Model::load(path));
          },
          py::arg("path"), "Reads and validates a .bqnn file; raises ModelError naming the file and the problem.")
      .def_readonly("name", &busi::Model::name)
      .def_property_readonly(
          "kind", [](const busi::Model& model) { return kind_name(model.kind); }, "'quantized' or 'float'.")
      .def_readonly("class_names", &busi::Model::class_names)
      .def_property_readonly(
          "input_shape",
          [](const busi::Model& model) {
            return py::make_tuple(model.input.channels, model.input.height, model.input.width);
          },
          "(channels, height, width) of the network input.")
      .def_readonly("preprocess", &busi::Model::preprocess, "The pre-processing method, e.g. 'gray-area-v1'.")
      .def_property_readonly("num_layers", [](const busi::Model& model) { return model.layers.size(); })
      .def_readonly("provenance_json", &busi::Model::provenance_json, "Training provenance as JSON text.")
      .def_property_readonly(
          "seen_images",
          [](const busi::Model& model) -> std::optional<std::size_t> {
            if (!model.seen_images) return std::nullopt;
            return model.seen_images->size();
          },
          "How many images the package records the model was trained on; None when it records none.")
      .def(
          "has_seen",
          [](const busi::Model& model, const py::handle& image, const std::string& order) {
            auto input = to_input(image, parse_color_order(order));
            py::gil_scoped_release no_gil;
            return model.has_seen(load_input(input, model.input));
          },
          py::arg("image"), py::arg("color_order") = "bgr",
          "Whether the model was trained on this image (a path or an array, pre-processed as classify() does); "
          "False when the package records no training images.")
      .def_property_readonly(
          "source", [](const busi::Model& model) { return model.source.string(); },
          "The file it was loaded from ('' when built in memory).")
      .def("__repr__", [](const busi::Model& model) {
        return "Model(name='" + model.name + "', kind='" + kind_name(model.kind) + "', source='" +
               model.source.string() + "')";
      });

  py::class_<py_classifier>(m, "Classifier", "A model running on one backend.")
      .def(py::init([](const std::string& backend, const py::object& model, const py::kwargs& settings) {
             return std::make_unique<py_classifier>(backend, model, settings);
           }),
           py::arg("backend") = "cpu_int", py::arg("model") = py::none(),
           "Classifier(backend='cpu_int', model=None, **settings): model is a .bqnn path, a Model, or None "
           "for the backend's default package; settings are backend options as strings (isa='avx2', "
           "overlay=..., device_root=...).")
      .def_property_readonly("backend", &py_classifier::backend)
      .def("describe", &py_classifier::describe, "One line on how it runs (ISA, device, clock, ...).")
      .def_property_readonly("model", &classifier_model, "The Model it runs.")
      .def_property_readonly("class_names", [](const py_classifier& self) { return self.model().class_names; })
      .def(
          "classify",
          [](py_classifier& self, const py::handle& image, const std::string& order) {
            return self.classify(image, parse_color_order(order));
          },
          py::arg("image"), py::arg("color_order") = "bgr",
          "Classifies an image file path or a uint8/uint16 array (HxW gray, HxWx3 BGR, HxWx4 BGRA; "
          "color_order='rgb' for RGB(A) arrays). The GIL is released meanwhile.")
      .def(
          "classify_batch",
          [](py_classifier& self, const py::iterable& images, const std::string& order) {
            return self.classify_batch(images, parse_color_order(order));
          },
          py::arg("images"), py::arg("color_order") = "bgr",
          "Classifies a list of paths and/or arrays in one call; returns one Prediction each.")
      .def("set_referral_sensitivity", &py_classifier::set_referral_sensitivity, py::arg("sensitivity"),
           "Refer at this sensitivity from now on, re-chosen from the model's stored referral curve (what "
           "busi-infer --referral-sensitivity does). Raises Error when the curve does not reach it.")
      .def("__repr__",
           [](const py_classifier& self) {
             return "Classifier(backend='" + self.backend() + "', model='" + self.model().name + "')";
           })
      .def("_time_classify_pixels", &py_classifier::time_classify_pixels, py::arg("image"), py::arg("repeats"));

  m.def(
      "preprocess",
      [](const py::array& image, int height, int width, const std::string& order) {
        auto input = wrap_array(image, parse_color_order(order));
        py::gil_scoped_release no_gil;
        auto tensor = preprocess_input(input, height, width);
        py::gil_scoped_acquire gil;
        return to_numpy(std::move(tensor));
      },
      py::arg("image"), py::arg("height") = 255, py::arg("width") = 255, py::arg("color_order") = "bgr",
      "gray-area-v1 (docs/preprocessing.md): the height x width uint8 array the network sees.");
  m.def(
      "load_image",
      [](const py::object& file, int height, int width) {
        const auto path = as_path(file, "image");
        py::gil_scoped_release no_gil;
        auto tensor = busi::load_image(path, height, width);
        py::gil_scoped_acquire gil;
        return to_numpy(std::move(tensor));
      },
      py::arg("path"), py::arg("height") = 255, py::arg("width") = 255,
      "Decodes an image file and pre-processes it with gray-area-v1.");
  m.def(
      "collect_images",
      [](const std::filesystem::path& root) {
        std::vector<std::string> files;
        for (const auto& file : busi::collect_images(root)) files.push_back(file.string());
        return files;
      },
      py::arg("root"), "The image files under a folder (recursively, sorted), or the path itself for a file.");
  bind_metrics(m);
  bind_evaluation(m);
  m.def(
      "_wraps_without_copy", [](const py::array& image) { return !wrap_array(image, color_order::bgr).copied; },
      py::arg("image"), "Whether classify() reads this array in place (for the tests).");
}
