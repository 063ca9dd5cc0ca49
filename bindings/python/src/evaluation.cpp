// The evaluation harness for Python (busi/evaluation.hpp, power.hpp,
// dashboard.hpp): labelled folders pre-processed once and run on several
// backends, the report busi-eval writes (JSON, CSV, HTML dashboard), and the
// power meters, so a notebook on the board can measure watts around its own code.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <pybind11/stl/filesystem.h>

#include "bindings.hpp"
#include "busi/dashboard.hpp"
#include "busi/error.hpp"
#include "busi/evaluation.hpp"
#include "busi/power.hpp"

namespace py = pybind11;

namespace {

busi::PowerOptions power_options(const std::filesystem::path& sysfs_root) {
  busi::PowerOptions options;
  options.sysfs_root = sysfs_root;
  return options;
}

}  // namespace

void bind_evaluation(py::module_& m) {
  py::class_<busi::LabelledImages>(m, "LabelledImages",
                                   "Labelled images, decoded and pre-processed once (labels from folder names).")
      .def_readonly("class_names", &busi::LabelledImages::class_names)
      .def_readonly("unreadable", &busi::LabelledImages::unreadable,
                    "'<file>: <reason>' of each image that could not be decoded (skipped).")
      .def_property_readonly("files",
                             [](const busi::LabelledImages& self) {
                               std::vector<std::string> files;
                               for (const auto& f : self.files) files.push_back(f.string());
                               return files;
                             })
      .def_readonly("labels", &busi::LabelledImages::labels)
      .def("__len__", [](const busi::LabelledImages& self) { return self.inputs.size(); })
      .def(
          "input",
          [](const busi::LabelledImages& self, std::size_t i) {
            if (i >= self.inputs.size())
              throw py::index_error("image " + std::to_string(i) + " of " + std::to_string(self.inputs.size()));
            const auto& t = self.inputs[i];
            return py::array_t<uint8_t>({t.height, t.width}, t.pixels.data());  // a copy
          },
          py::arg("index"), "The pre-processed network input of image `index` (a copy).");

  m.def(
      "load_labelled_images",
      [](const std::vector<std::filesystem::path>& paths, const std::vector<std::string>& class_names, int height,
         int width) {
        py::gil_scoped_release no_gil;
        return busi::load_labelled_images(paths, class_names, height, width);
      },
      py::arg("paths"), py::arg("class_names") = std::vector<std::string>{"normal", "benign", "malignant"},
      py::arg("height") = 255, py::arg("width") = 255,
      "The images under `paths`, labelled by folder name and pre-processed once. Raises Error for a "
      "file under no class folder; an image that cannot be decoded is skipped and listed in .unreadable.");

  py::class_<busi::EnergyReading>(m, "EnergyReading", "Energy and mean power over a window; NaN without a source.")
      .def_readonly("source", &busi::EnergyReading::source)
      .def_readonly("estimate", &busi::EnergyReading::estimate,
                    "True when the figure is an estimate, not a measurement.")
      .def_readonly("seconds", &busi::EnergyReading::seconds)
      .def_readonly("joules", &busi::EnergyReading::joules)
      .def_readonly("watts", &busi::EnergyReading::watts)
      .def_readonly("note", &busi::EnergyReading::note, "Why the figure is missing, or caveats.")
      .def_property_readonly("available", &busi::EnergyReading::available)
      .def("__repr__", [](const busi::EnergyReading& e) {
        return "EnergyReading(source='" + e.source + "', watts=" + std::to_string(e.watts) +
               ", joules=" + std::to_string(e.joules) + (e.estimate ? ", estimate" : "") + ")";
      });

  py::class_<busi::PowerMeter>(m, "PowerMeter", "A power source (make_power_meter); start(), run something, stop().")
      .def_property_readonly("source", &busi::PowerMeter::source)
      .def("start", &busi::PowerMeter::start, py::call_guard<py::gil_scoped_release>())
      .def("stop", &busi::PowerMeter::stop, py::call_guard<py::gil_scoped_release>());
  m.def(
      "make_power_meter",
      [](const std::string& spec, const std::filesystem::path& sysfs_root) {
        return busi::make_power_meter(spec, power_options(sysfs_root));
      },
      py::arg("spec") = "auto", py::arg("sysfs_root") = "/",
      "A meter for a spec: none, auto, rapl, hwmon[:NAME], command:CMD, log:PATH, estimate:WATTS[:WHY], "
      "estimate-report:PATH. Raises Error for an unknown spec, DeviceError for an unreadable source.");
  m.def(
      "describe_power_sources",
      [](const std::filesystem::path& sysfs_root) { return busi::describe_power_sources(power_options(sysfs_root)); },
      py::arg("sysfs_root") = "/", "The sources `auto` would consider, readable or not and why.");

  py::class_<busi::MachineInfo>(m, "MachineInfo", "The machine a report was made on.")
      .def_readonly("cpu", &busi::MachineInfo::cpu)
      .def_readonly("cores", &busi::MachineInfo::cores)
      .def_readonly("kernel", &busi::MachineInfo::kernel)
      .def_readonly("host", &busi::MachineInfo::host);

  py::class_<busi::BackendRun>(m, "BackendRun", "One (backend, model) pass over the images.")
      .def_readonly("backend", &busi::BackendRun::backend)
      .def_readonly("description", &busi::BackendRun::description)
      .def_readonly("model_name", &busi::BackendRun::model_name)
      .def_readonly("model_path", &busi::BackendRun::model_path)
      .def_readonly("model_sha256", &busi::BackendRun::model_sha256)
      .def_readonly("precision", &busi::BackendRun::precision, "'w2a4', 'fp32', ...")
      .def_readonly("confusion", &busi::BackendRun::confusion)
      .def_readonly("predictions", &busi::BackendRun::predictions, "Class index per image, in the images' order.")
      .def_readonly("latencies_ms", &busi::BackendRun::latencies_ms, "classify() wall time per image.")
      .def_readonly("scores", &busi::BackendRun::scores, "Softmax scores per image; empty for a top-1 backend.")
      .def_readonly("seen", &busi::BackendRun::seen,
                    "Per image, whether the model was trained on it; empty when its package does not say.")
      .def_readonly("unseen", &busi::BackendRun::unseen,
                    "The confusion of the images the model was not trained on; None when its package does not say.")
      .def_readonly("verdicts", &busi::BackendRun::verdicts,
                    "Per image: 'refer', 'routine', 'unreadable' or 'unavailable'; empty in older reports.")
      .def_readonly("reasons", &busi::BackendRun::reasons, "Per image, why its verdict.")
      .def_readonly("p_abnormal", &busi::BackendRun::p_abnormal, "Per image, P(abnormal); NaN when unavailable.")
      .def_readonly("suspicious_malignancy", &busi::BackendRun::suspicious_malignancy)
      .def_readonly("latency", &busi::BackendRun::latency)
      .def_readonly("seconds", &busi::BackendRun::seconds)
      .def_readonly("throughput", &busi::BackendRun::throughput, "Images per second over the run.")
      .def_readonly("energy", &busi::BackendRun::energy)
      .def_property_readonly("joules_per_image", &busi::BackendRun::joules_per_image);

  py::class_<busi::EvaluationReport>(m, "EvaluationReport", "What busi-eval reports: machine, commit, runs.")
      .def_readonly("machine", &busi::EvaluationReport::machine)
      .def_readonly("commit", &busi::EvaluationReport::commit)
      .def_readonly("started_utc", &busi::EvaluationReport::started_utc)
      .def_readonly("inputs", &busi::EvaluationReport::inputs)
      .def_readonly("images", &busi::EvaluationReport::images)
      .def_readonly("files", &busi::EvaluationReport::files, "Per image, its path.")
      .def_readonly("labels", &busi::EvaluationReport::labels, "Per image, its true class index.")
      .def_readonly("unreadable", &busi::EvaluationReport::unreadable, "Images that could not be decoded, skipped.")
      .def_readonly("runs", &busi::EvaluationReport::runs)
      .def("to_json", &busi::report_json, py::arg("per_image") = false, "busi-eval's JSON report.")
      .def("to_csv", &busi::report_csv, "busi-eval's CSV: one row per run.")
      .def_static("from_json", &busi::parse_report_json, py::arg("text"), py::arg("origin") = "<string>",
                  "Reads to_json()'s output back; raises Error naming `origin`.");

  m.def(
      "evaluate",
      [](const py::object& images, std::vector<std::string> backends, const std::vector<std::filesystem::path>& models,
         const std::map<std::string, std::map<std::string, std::string>>& settings, const std::string& power,
         const std::map<std::string, std::string>& power_for, int warmup, const std::filesystem::path& sysfs_root) {
        if (backends.empty()) backends = busi::available_backends();
        if (backends.empty()) throw busi::error("evaluate: no backend compiled in");
        busi::EvaluationOptions options;
        options.backends = backends;
        options.models = models;
        options.settings = settings;
        options.power = power;
        options.backend_power = power_for;
        options.power_options = power_options(sysfs_root);
        options.warmup = warmup;
        if (py::isinstance<busi::LabelledImages>(images)) {
          const auto& labelled = images.cast<const busi::LabelledImages&>();
          py::gil_scoped_release no_gil;
          return busi::evaluate(labelled, options);
        }
        std::vector<std::filesystem::path> paths;
        if (py::isinstance<py::str>(images) || py::hasattr(images, "__fspath__"))
          paths.push_back(images.cast<std::filesystem::path>());
        else
          paths = images.cast<std::vector<std::filesystem::path>>();
        py::gil_scoped_release no_gil;
        // What busi-eval does: models first, then the images, labelled with the
        // class names and input size of the first model that will run.
        const auto plan = busi::plan_runs(options);
        const busi::Model& first = *plan.front().model;
        auto report = busi::evaluate(
            busi::load_labelled_images(paths, first.class_names, first.input.height, first.input.width), plan,
            options);
        for (const auto& p : paths) report.inputs.push_back(p.string());
        return report;
      },
      py::arg("images"), py::arg("backends") = std::vector<std::string>{},
      py::arg("models") = std::vector<std::filesystem::path>{},
      py::arg("settings") = std::map<std::string, std::map<std::string, std::string>>{}, py::arg("power") = "auto",
      py::arg("power_for") = std::map<std::string, std::string>{}, py::arg("warmup") = 1, py::arg("sysfs_root") = "/",
      "busi-eval from Python: `images` (a folder, a list of paths, or LabelledImages) on every backend "
      "(default: all compiled in) and every model of its kind, with the same pre-processed inputs. "
      "settings: {backend: {key: value}}; power / power_for: power source specs (busi-eval --power, --power-for).");

  m.def("render_dashboard", &busi::render_dashboard, py::arg("reports"), py::arg("title") = "busi-infer evaluation",
        "The self-contained HTML dashboard (busi-dashboard) of one or more reports.");
}
