// The scoring side of busi_infer: busi/metrics.hpp (confusion matrix, recall,
// normal-vs-abnormal sensitivity/specificity, latency percentiles, folder
// labels), the same code busi-infer and busi-eval report with.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <pybind11/stl/filesystem.h>

#include "bindings.hpp"
#include "busi/metrics.hpp"

namespace py = pybind11;

void bind_metrics(py::module_& m) {
  py::class_<busi::BinaryRates>(m, "BinaryRates",
                                "Normal versus abnormal counts (positive = abnormal: benign or malignant).")
      .def_readonly("true_positive", &busi::BinaryRates::true_positive, "Abnormal predicted abnormal.")
      .def_readonly("false_negative", &busi::BinaryRates::false_negative, "Abnormal predicted normal.")
      .def_readonly("true_negative", &busi::BinaryRates::true_negative, "Normal predicted normal.")
      .def_readonly("false_positive", &busi::BinaryRates::false_positive, "Normal predicted abnormal.")
      .def_property_readonly("sensitivity", &busi::BinaryRates::sensitivity,
                             "TP / (TP + FN); NaN without abnormal images.")
      .def_property_readonly("specificity", &busi::BinaryRates::specificity,
                             "TN / (TN + FP); NaN without normal images.");

  py::class_<busi::ConfusionMatrix>(
      m, "ConfusionMatrix", "Counts of (true class, predicted class); rows true, columns predicted, model class order.")
      .def(py::init<std::vector<std::string>>(), py::arg("class_names"))
      .def("add", &busi::ConfusionMatrix::add, py::arg("true_class"), py::arg("predicted_class"),
           "Counts one image; raises Error for a class index out of range.")
      .def(
          "add_all",
          [](busi::ConfusionMatrix& self, const std::vector<int>& true_classes, const std::vector<int>& predicted) {
            if (true_classes.size() != predicted.size())
              throw py::value_error("add_all: " + std::to_string(true_classes.size()) + " true classes but " +
                                    std::to_string(predicted.size()) + " predictions");
            for (std::size_t i = 0; i < predicted.size(); ++i) self.add(true_classes[i], predicted[i]);
          },
          py::arg("true_classes"), py::arg("predicted_classes"), "Counts many images (two equally long sequences).")
      .def_property_readonly("class_names", &busi::ConfusionMatrix::class_names)
      .def("count", &busi::ConfusionMatrix::count, py::arg("true_class"), py::arg("predicted_class"))
      .def_property_readonly("total", &busi::ConfusionMatrix::total)
      .def_property_readonly("correct", &busi::ConfusionMatrix::correct)
      .def("class_total", &busi::ConfusionMatrix::class_total, py::arg("true_class"))
      .def_property_readonly("accuracy", &busi::ConfusionMatrix::accuracy, "correct / total; NaN when empty.")
      .def("recall", &busi::ConfusionMatrix::recall, py::arg("true_class"), "NaN when the class has no image.")
      .def("precision", &busi::ConfusionMatrix::precision, py::arg("predicted_class"), "NaN when never predicted.")
      .def("recalls", &busi::ConfusionMatrix::recalls)
      .def("normal_vs_abnormal", &busi::ConfusionMatrix::normal_vs_abnormal, py::arg("negative") = "normal")
      .def(
          "to_numpy",
          [](const busi::ConfusionMatrix& self) {
            const auto n = static_cast<py::ssize_t>(self.num_classes());
            py::array_t<int64_t> counts({n, n});
            auto view = counts.mutable_unchecked<2>();
            for (py::ssize_t t = 0; t < n; ++t)
              for (py::ssize_t p = 0; p < n; ++p) view(t, p) = static_cast<int64_t>(self.count(int(t), int(p)));
            return counts;
          },
          "The counts as an int64 array [true][predicted].")
      .def("to_text", &busi::ConfusionMatrix::to_text, "A fixed-width table with per-class recall.")
      .def("__str__", &busi::ConfusionMatrix::to_text);

  py::class_<busi::LatencySummary>(m, "LatencySummary", "Latency statistics in milliseconds.")
      .def_readonly("count", &busi::LatencySummary::count)
      .def_readonly("mean_ms", &busi::LatencySummary::mean_ms)
      .def_readonly("min_ms", &busi::LatencySummary::min_ms)
      .def_readonly("max_ms", &busi::LatencySummary::max_ms)
      .def_readonly("p50_ms", &busi::LatencySummary::p50_ms)
      .def_readonly("p90_ms", &busi::LatencySummary::p90_ms)
      .def_readonly("p99_ms", &busi::LatencySummary::p99_ms)
      .def("__repr__", [](const busi::LatencySummary& s) {
        return "LatencySummary(count=" + std::to_string(s.count) + ", p50_ms=" + std::to_string(s.p50_ms) +
               ", p90_ms=" + std::to_string(s.p90_ms) + ", p99_ms=" + std::to_string(s.p99_ms) + ")";
      });

  py::class_<busi::RocCurve>(m, "RocCurve", "A ROC curve from the strictest threshold down, with its AUC.")
      .def_readonly("thresholds", &busi::RocCurve::thresholds, "inf first, then each distinct score, descending.")
      .def_readonly("false_positive_rate", &busi::RocCurve::false_positive_rate)
      .def_readonly("true_positive_rate", &busi::RocCurve::true_positive_rate)
      .def_readonly("auc", &busi::RocCurve::auc, "Area under the curve (ties count one half); NaN with one class.")
      .def_property_readonly(
          "auc_interval", [](const busi::RocCurve& r) { return py::make_tuple(r.auc_interval.low, r.auc_interval.high); },
          "Hanley and McNeil's 95% interval (low, high).");
  m.def(
      "wilson_interval",
      [](std::size_t successes, std::size_t trials) {
        const auto ci = busi::wilson_interval(successes, trials);
        return py::make_tuple(ci.low, ci.high);
      },
      py::arg("successes"), py::arg("trials"), "Wilson's 95% interval (low, high) of successes / trials; NaN for 0 trials.");
  m.def("roc_curve", &busi::roc_curve, py::arg("scores"), py::arg("positive"),
        "The ROC curve of a score (higher = positive) against a list of booleans.");
  m.def("percentile", &busi::percentile, py::arg("values"), py::arg("p"),
        "p in [0, 100], linear between the nearest order statistics (numpy's default).");
  m.def("summarize_latencies", &busi::summarize_latencies, py::arg("milliseconds"));
  m.def("label_from_path", &busi::label_from_path, py::arg("image"), py::arg("class_names"),
        "The class named by the nearest enclosing folder of an image; -1 when none does.");
}
