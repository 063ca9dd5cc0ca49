#include "busi/dashboard.hpp"

#include <zlib.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <filesystem>
#include <iomanip>
#include <map>
#include <optional>
#include <sstream>

#include "busi/image.hpp"
#include "busi/pipeline.hpp"

namespace busi {
namespace {

constexpr int chart_width = 760, label_width = 250, value_width = 170, row_height = 26, top = 28;

std::string escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string fixed(double v, int digits) {
  std::ostringstream s;
  s << std::fixed << std::setprecision(digits) << v;
  return s.str();
}


// Milliseconds with three significant digits (0.712 ms, 12.4 ms, 318 ms).
std::string millis(double ms) {
  if (std::isnan(ms)) return "n/a";
  const int digits = ms >= 100 ? 0 : ms >= 10 ? 1 : ms >= 1 ? 2 : 3;
  return fixed(ms, digits) + " ms";
}

std::string energy_text(double joules) {
  if (std::isnan(joules)) return "n/a";
  return joules >= 1 ? fixed(joules, 2) + " J" : fixed(joules * 1e3, joules >= 0.1 ? 0 : 2) + " mJ";
}

std::string color_of(const std::string& backend) {
  static const std::map<std::string, std::string> colors = {
      {"cpu_int", "#1f77b4"}, {"cpu_ref", "#ff7f0e"}, {"fpga", "#2ca02c"}};
  const auto it = colors.find(backend);
  return it == colors.end() ? "#7f7f7f" : it->second;
}

// "73.1% (62.3-81.7)": a rate and its Wilson 95% interval, or "n/a".
std::string rate_ci(std::size_t k, std::size_t n) {
  if (n == 0) return "n/a";
  const Interval ci = wilson_interval(k, n);
  return percent_text(double(k) / double(n)) + " <span class=\"ci\">(" + fixed(100 * ci.low, 1) + "-" +
         fixed(100 * ci.high, 1) + ")</span>";
}

struct Row {
  std::string label, backend, precision;
  std::string machine;  // set when several reports share the page
  const BackendRun* run;
  const EvaluationReport* report;
};

// Maps a value to x on a log10 axis covering [lo, hi] decades.
struct LogAxis {
  double lo_decade, hi_decade;
  LogAxis(double lo, double hi) {
    // At least a third of a decade below the smallest value, so no bar is a sliver.
    lo_decade = std::floor(std::log10(lo) - 0.3);
    hi_decade = std::max(std::ceil(std::log10(hi)), lo_decade + 1);
  }
  double fraction(double v) const { return (std::log10(v) - lo_decade) / (hi_decade - lo_decade); }
};

std::string axis_label(double decade, const std::string& unit) {
  const double v = std::pow(10.0, decade);
  std::ostringstream s;
  s << v << " " << unit;
  return s.str();
}

// Horizontal bars, one row per run: label, bar, value text. `log_unit` non-empty
// selects a log axis (latency and energy span decades between CPU and board).
std::string bar_chart(const std::string& id, const std::string& title, const std::vector<Row>& rows,
                      const std::vector<double>& values, const std::vector<std::string>& texts,
                      const std::string& log_unit, const std::vector<Interval>& intervals = {}) {
  const int plot = chart_width - label_width - value_width;
  const int height = top + int(rows.size()) * row_height + 24;
  std::ostringstream svg;
  svg << "<figure><figcaption>" << escape(title) << "</figcaption>\n<svg data-chart=\"" << id << "\" width=\""
      << chart_width << "\" height=\"" << height << "\" viewBox=\"0 0 " << chart_width << " " << height
      << "\" role=\"img\">\n";
  double lo = INFINITY, hi = 0;
  for (double v : values)
    if (!std::isnan(v) && v > 0) lo = std::min(lo, v), hi = std::max(hi, v);
  const bool any = hi > 0;
  const LogAxis axis(any ? lo : 1, any ? hi : 10);
  const auto x_of = [&](double v) {
    const double f = log_unit.empty() ? v : axis.fraction(v);
    return label_width + std::clamp(f, 0.0, 1.0) * plot;
  };
  // Grid: 0-100% for rates, decades for log axes.
  if (log_unit.empty()) {
    for (int p = 0; p <= 100; p += 25)
      svg << "<line class=\"grid\" x1=\"" << x_of(p / 100.0) << "\" y1=\"" << top - 6 << "\" x2=\"" << x_of(p / 100.0)
          << "\" y2=\"" << height - 20 << "\"/><text class=\"tick\" x=\"" << x_of(p / 100.0) << "\" y=\"" << height - 6
          << "\">" << p << "%</text>\n";
  } else if (any) {
    for (double d = axis.lo_decade; d <= axis.hi_decade; ++d) {
      const double x = label_width + (d - axis.lo_decade) / (axis.hi_decade - axis.lo_decade) * plot;
      svg << "<line class=\"grid\" x1=\"" << x << "\" y1=\"" << top - 6 << "\" x2=\"" << x << "\" y2=\"" << height - 20
          << "\"/><text class=\"tick\" x=\"" << x << "\" y=\"" << height - 6 << "\">" << escape(axis_label(d, log_unit))
          << "</text>\n";
    }
  }
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const int y = top + int(i) * row_height;
    svg << "<g class=\"bar\" data-backend=\"" << escape(rows[i].backend) << "\" data-precision=\""
        << escape(rows[i].precision) << "\">"
        << "<text class=\"label\" x=\"" << label_width - 8 << "\" y=\"" << y + 16 << "\">" << escape(rows[i].label)
        << "</text>";
    const double v = values[i];
    if (!std::isnan(v) && (log_unit.empty() || v > 0)) {
      const double w = std::max(1.0, x_of(v) - label_width);
      svg << "<rect x=\"" << label_width << "\" y=\"" << y + 4 << "\" width=\"" << w << "\" height=\"" << row_height - 8
          << "\" fill=\"" << color_of(rows[i].backend) << "\"><title>" << escape(texts[i])
          << "</title></rect>";
      double text_x = label_width + w + 6;
      if (i < intervals.size() && !std::isnan(intervals[i].low)) {  // the 95% interval as a whisker
        const double lo = x_of(intervals[i].low), hi = x_of(intervals[i].high);
        svg << "<path class=\"whisker\" d=\"M" << lo << " " << y + 13 << "H" << hi << "M" << lo << " " << y + 8 << "V"
            << y + 18 << "M" << hi << " " << y + 8 << "V" << y + 18 << "\"/>";
        text_x = std::max(text_x, hi + 6);
      }
      svg << "<text class=\"value\" x=\"" << text_x << "\" y=\"" << y + 16 << "\">" << escape(texts[i]) << "</text>";
    } else {
      svg << "<text class=\"value na\" x=\"" << label_width + 6 << "\" y=\"" << y + 16 << "\">" << escape(texts[i])
          << "</text>";
    }
    svg << "</g>\n";
  }
  svg << "</svg></figure>\n";
  return svg.str();
}

// Accuracy (y) against p50 latency (x, log): the runs no other run beats on
// both are the Pareto front, joined by a line and drawn filled.
std::string pareto_chart(const std::vector<Row>& rows) {
  const int width = chart_width, height = 360, left = 60, right = 40, bottom = 40, plot_w = width - left - right,
            plot_h = height - top - bottom;
  double lo = INFINITY, hi = 0, acc_lo = 1, acc_hi = 0;
  for (const auto& r : rows) {
    lo = std::min(lo, r.run->latency.p50_ms), hi = std::max(hi, r.run->latency.p50_ms);
    const double a = r.run->confusion.accuracy();
    if (!std::isnan(a)) acc_lo = std::min(acc_lo, a), acc_hi = std::max(acc_hi, a);
  }
  if (rows.empty() || !(lo > 0)) return "";
  const LogAxis axis(lo, hi);
  acc_lo = std::max(0.0, std::floor(acc_lo * 10 - 0.5) / 10);
  acc_hi = std::min(1.0, std::ceil(acc_hi * 10 + 0.5) / 10);
  const auto px = [&](double ms) { return left + axis.fraction(ms) * plot_w; };
  const auto py = [&](double a) { return top + (1 - (a - acc_lo) / (acc_hi - acc_lo)) * plot_h; };

  std::vector<const Row*> order;
  for (const auto& r : rows)
    if (!std::isnan(r.run->confusion.accuracy())) order.push_back(&r);
  std::sort(order.begin(), order.end(), [](const Row* a, const Row* b) {
    return a->run->latency.p50_ms < b->run->latency.p50_ms ||
           (a->run->latency.p50_ms == b->run->latency.p50_ms &&
            a->run->confusion.accuracy() > b->run->confusion.accuracy());
  });
  std::vector<const Row*> front;
  double best = -1;
  for (const Row* r : order)
    if (r->run->confusion.accuracy() > best) front.push_back(r), best = r->run->confusion.accuracy();

  std::ostringstream svg;
  svg << "<figure><figcaption>Accuracy against latency (p50, log scale): the Pareto front is the line</figcaption>\n"
      << "<svg data-chart=\"pareto\" width=\"" << width << "\" height=\"" << height << "\" viewBox=\"0 0 " << width
      << " " << height << "\" role=\"img\">\n";
  for (double d = axis.lo_decade; d <= axis.hi_decade; ++d) {
    const double x = left + (d - axis.lo_decade) / (axis.hi_decade - axis.lo_decade) * plot_w;
    svg << "<line class=\"grid\" x1=\"" << x << "\" y1=\"" << top << "\" x2=\"" << x << "\" y2=\"" << top + plot_h
        << "\"/><text class=\"tick\" x=\"" << x << "\" y=\"" << height - 20 << "\">" << escape(axis_label(d, "ms"))
        << "</text>\n";
  }
  for (double a = acc_lo; a <= acc_hi + 1e-9; a += 0.1)
    svg << "<line class=\"grid\" x1=\"" << left << "\" y1=\"" << py(a) << "\" x2=\"" << left + plot_w << "\" y2=\""
        << py(a) << "\"/><text class=\"tick ytick\" x=\"" << left - 6 << "\" y=\"" << py(a) + 4 << "\">"
        << fixed(100 * a, 0) << "%</text>\n";
  svg << "<text class=\"tick\" x=\"" << left + plot_w / 2 << "\" y=\"" << height - 4
      << "\">latency per image (p50)</text>\n";
  if (front.size() > 1) {
    svg << "<polyline class=\"front\" points=\"";
    for (const Row* r : front) svg << px(r->run->latency.p50_ms) << "," << py(r->run->confusion.accuracy()) << " ";
    svg << "\"/>\n";
  }
  for (const auto& r : rows) {
    const double a = r.run->confusion.accuracy();
    if (std::isnan(a)) continue;
    const bool on_front = std::find(front.begin(), front.end(), &r) != front.end();
    const double x = px(r.run->latency.p50_ms), y = py(a);
    svg << "<g class=\"point\" data-backend=\"" << escape(r.backend) << "\" data-front=\"" << (on_front ? 1 : 0)
        << "\"><circle cx=\"" << x << "\" cy=\"" << y << "\" r=\"6\" stroke=\"" << color_of(r.backend) << "\" fill=\""
        << (on_front ? color_of(r.backend) : "white") << "\"><title>" << escape(r.label) << ": " << percent_text(a) << ", "
        << millis(r.run->latency.p50_ms) << "</title></circle><text class=\"plabel\" x=\"" << x + 9 << "\" y=\""
        << y - 8 << "\">" << escape(r.label) << "</text></g>\n";
  }
  svg << "</svg></figure>\n";
  return svg.str();
}

std::string confusion_table(const Row& row) {
  const auto& cm = row.run->confusion;
  const auto rates = cm.normal_vs_abnormal();
  std::ostringstream html;
  html << "<div class=\"confusion\" data-backend=\"" << escape(row.backend) << "\"><h3>" << escape(row.label)
       << "</h3><table><tr><th>true \\ predicted</th>";
  for (const auto& c : cm.class_names()) html << "<th>" << escape(c) << "</th>";
  html << "<th>recall</th></tr>\n";
  for (std::size_t t = 0; t < cm.num_classes(); ++t) {
    html << "<tr><th>" << escape(cm.class_names()[t]) << "</th>";
    const double total = double(cm.class_total(int(t)));
    for (std::size_t p = 0; p < cm.num_classes(); ++p) {
      const std::size_t n = cm.count(int(t), int(p));
      const double share = total > 0 ? double(n) / total : 0;
      html << "<td style=\"background: rgba(31,119,180," << fixed(0.08 + 0.8 * share, 2) << ")\">" << n << "</td>";
    }
    html << "<td>" << rate_ci(cm.count(int(t), int(t)), cm.class_total(int(t))) << "</td></tr>\n";
  }
  html << "</table><p>accuracy " << rate_ci(cm.correct(), cm.total()) << " &middot; normal-vs-abnormal sensitivity "
       << rate_ci(rates.true_positive, rates.true_positive + rates.false_negative) << ", specificity "
       << rate_ci(rates.true_negative, rates.true_negative + rates.false_positive) << "</p></div>\n";
  return html.str();
}

// ---- What clinicians read: ROC curves, reliability, the referral, a gallery.
// They need per-image results (busi-eval --per-image); a report without them
// gets a line saying so instead of a chart.

// The images of one run the clinical charts count: those with scores, and,
// when the package says which images the model was trained on, only the others.
struct ImageSet {
  std::vector<std::size_t> index;
  std::string what;  // "the 78 images the model never saw", ...
};

int class_index_of(const BackendRun& run, const std::string& name) {
  const auto& names = run.confusion.class_names();
  const auto it = std::find(names.begin(), names.end(), name);
  return it == names.end() ? -1 : int(it - names.begin());
}

bool has_per_image_scores(const EvaluationReport& report, const BackendRun& run) {
  return !report.labels.empty() && run.scores.size() == report.labels.size() &&
         std::all_of(run.scores.begin(), run.scores.end(),
                     [&](const auto& s) { return s.size() == run.confusion.num_classes(); });
}

bool refused(const BackendRun& run, std::size_t i) { return i < run.verdicts.size() && run.verdicts[i] == "unreadable"; }

ImageSet counted_images(const EvaluationReport& report, const BackendRun& run) {
  ImageSet set;
  const bool by_seen = run.seen.size() == report.labels.size();
  std::size_t refusals = 0;
  for (std::size_t i = 0; i < report.labels.size(); ++i) {
    if (by_seen && run.seen[i]) continue;
    if (refused(run, i)) {
      ++refusals;
      continue;
    }
    set.index.push_back(i);
  }
  set.what = "the " + std::to_string(set.index.size()) + " images " +
             (by_seen ? "the model never saw" : "of the report (the package does not say which it was trained on)") +
             (refusals ? ", " + std::to_string(refusals) + " refused as unreadable left out" : "");
  return set;
}

// P(abnormal) of image i: the backend's own when the report has it, else
// 1 - P(normal) from the scores.
double p_abnormal_of(const BackendRun& run, std::size_t i, int normal) {
  if (i < run.p_abnormal.size() && !std::isnan(run.p_abnormal[i])) return run.p_abnormal[i];
  return 1.0 - run.scores[i][std::size_t(normal)];
}

constexpr int plot_size = 260, plot_margin = 40;

std::string unit_axes(const std::string& x_label, const std::string& y_label) {
  std::ostringstream svg;
  const int m = plot_margin, p = plot_size;
  for (int t = 0; t <= 100; t += 25) {
    const double x = m + p * t / 100.0, y = m + p - p * t / 100.0;
    svg << "<line class=\"grid\" x1=\"" << x << "\" y1=\"" << m << "\" x2=\"" << x << "\" y2=\"" << m + p
        << "\"/><line class=\"grid\" x1=\"" << m << "\" y1=\"" << y << "\" x2=\"" << m + p << "\" y2=\"" << y
        << "\"/><text class=\"tick\" x=\"" << x << "\" y=\"" << m + p + 14 << "\">" << t / 100.0
        << "</text><text class=\"tick ytick\" x=\"" << m - 4 << "\" y=\"" << y + 4 << "\">" << t / 100.0 << "</text>\n";
  }
  svg << "<line class=\"chance\" x1=\"" << m << "\" y1=\"" << m + p << "\" x2=\"" << m + p << "\" y2=\"" << m
      << "\"/><text class=\"tick\" x=\"" << m + p / 2 << "\" y=\"" << m + p + 30 << "\">" << escape(x_label)
      << "</text><text class=\"tick\" transform=\"translate(12 " << m + p / 2 << ") rotate(-90)\">" << escape(y_label)
      << "</text>\n";
  return svg.str();
}

double to_x(double v) { return plot_margin + plot_size * v; }
double to_y(double v) { return plot_margin + plot_size * (1 - v); }

// One ROC curve; `point`, when given, marks an operating point (FPR, TPR).
std::string roc_chart(const std::string& id, const std::string& title, const std::string& backend,
                      const std::vector<double>& scores, const std::vector<bool>& positive,
                      const std::optional<std::pair<double, double>>& point, const std::string& point_label) {
  const RocCurve roc = roc_curve(scores, positive);
  const std::size_t positives = std::size_t(std::count(positive.begin(), positive.end(), true));
  std::ostringstream svg;
  const int size = plot_size + 2 * plot_margin;
  svg << "<figure class=\"small\"><figcaption>" << escape(title) << ": AUC "
      << (std::isnan(roc.auc) ? std::string("n/a (one class only)")
                              : fixed(roc.auc, 3) + " (95% CI " + fixed(roc.auc_interval.low, 3) + "-" +
                                    fixed(roc.auc_interval.high, 3) + ")")
      << ", " << positives << " positive / " << positive.size() - positives << " negative</figcaption>\n<svg data-chart=\""
      << id << "\" data-auc=\"" << (std::isnan(roc.auc) ? std::string("") : fixed(roc.auc, 4)) << "\" width=\"" << size
      << "\" height=\"" << size << "\" viewBox=\"0 0 " << size << " " << size << "\" role=\"img\">\n"
      << unit_axes("1 - specificity", "sensitivity");
  if (!std::isnan(roc.auc)) {
    svg << "<polyline class=\"roc\" stroke=\"" << color_of(backend) << "\" points=\"";
    for (std::size_t k = 0; k < roc.thresholds.size(); ++k)
      svg << to_x(roc.false_positive_rate[k]) << "," << to_y(roc.true_positive_rate[k]) << " ";
    svg << to_x(1) << "," << to_y(1) << "\"/>\n";
  }
  if (point)
    svg << "<circle class=\"operating-point\" cx=\"" << to_x(point->first) << "\" cy=\"" << to_y(point->second)
        << "\" r=\"5\"><title>" << escape(point_label) << "</title></circle>\n";
  svg << "</svg></figure>\n";
  return svg.str();
}

// Reliability: the top score's confidence in ten bins against how often the
// top class was right, each bin with its Wilson interval and count; the
// expected calibration error (ECE) is the count-weighted mean gap.
std::string reliability_chart(const std::string& id, const EvaluationReport& report, const BackendRun& run,
                              const ImageSet& set) {
  constexpr int bins = 10;
  std::array<std::size_t, bins> count{}, right{};
  std::array<double, bins> confidence{};
  for (std::size_t i : set.index) {
    const auto& s = run.scores[i];
    const auto top = std::max_element(s.begin(), s.end());
    const int b = std::min(bins - 1, int(*top * bins));
    ++count[b];
    confidence[b] += *top;
    right[b] += int(top - s.begin()) == report.labels[i];
  }
  double ece = 0;
  for (int b = 0; b < bins; ++b)
    if (count[b]) ece += std::abs(double(right[b]) - confidence[b]) / double(set.index.size());
  std::ostringstream svg;
  const int size = plot_size + 2 * plot_margin;
  svg << "<figure class=\"small\"><figcaption>Reliability: expected calibration error " << fixed(ece, 3)
      << "</figcaption>\n<svg data-chart=\"" << id << "\" data-ece=\"" << fixed(ece, 4) << "\" width=\"" << size
      << "\" height=\"" << size << "\" viewBox=\"0 0 " << size << " " << size << "\" role=\"img\">\n"
      << unit_axes("confidence (top score)", "share correct");
  for (int b = 0; b < bins; ++b) {
    if (!count[b]) continue;
    const double conf = confidence[b] / double(count[b]), acc = double(right[b]) / double(count[b]);
    const Interval ci = wilson_interval(right[b], count[b]);
    svg << "<g class=\"bin\"><path class=\"whisker\" d=\"M" << to_x(conf) << " " << to_y(ci.low) << "V" << to_y(ci.high)
        << "\"/><circle cx=\"" << to_x(conf) << "\" cy=\"" << to_y(acc) << "\" r=\"" << 3 + std::min(5.0, std::sqrt(double(count[b])) / 2)
        << "\" fill=\"" << color_of(run.backend) << "\"><title>" << count[b] << " images, confidence " << fixed(conf, 2)
        << ", correct " << right[b] << " (" << percent_text(acc) << ", 95% CI " << fixed(100 * ci.low, 1) << "-"
        << fixed(100 * ci.high, 1) << "%)</title></circle></g>\n";
  }
  svg << "</svg></figure>\n";
  return svg.str();
}

// The referral's operating point from the per-image verdicts, or why there is none.
struct Referral {
  std::string html;
  std::optional<std::pair<double, double>> point;  // (1 - specificity, sensitivity)
  std::string label;
};

Referral referral_of(const EvaluationReport& report, const BackendRun& run, const ImageSet& set, int normal) {
  Referral r;
  if (run.verdicts.size() != report.labels.size()) {
    r.html = "<p class=\"meta\" data-referral=\"none\">No referral verdicts in this report (written before result "
             "schema 3, or without --per-image): no operating point.</p>\n";
    return r;
  }
  std::size_t tp = 0, fn = 0, tn = 0, fp = 0, unavailable = 0, unreadable = 0;
  for (std::size_t i = 0; i < report.labels.size(); ++i)
    if (refused(run, i)) ++unreadable;
  for (std::size_t i : set.index) {
    const std::string& v = run.verdicts[i];
    if (v != "refer" && v != "routine") {
      ++unavailable;
      continue;
    }
    const bool abnormal = report.labels[i] != normal, referred = v == "refer";
    (abnormal ? (referred ? tp : fn) : (referred ? fp : tn))++;
  }
  if (tp + fn + tn + fp == 0) {
    r.html = "<p class=\"meta\" data-referral=\"unavailable\">The backend gave no referral verdict (" +
             std::to_string(unavailable) +
             " images \"unavailable\": a top-1 overlay reports a class index only and cannot refer).</p>\n";
    return r;
  }
  const double sens = tp + fn ? double(tp) / double(tp + fn) : NAN, spec = tn + fp ? double(tn) / double(tn + fp) : NAN;
  if (!std::isnan(sens) && !std::isnan(spec)) r.point = std::make_pair(1 - spec, sens);
  r.label = "referral: sensitivity " + percent_text(sens) + ", specificity " + percent_text(spec);
  std::ostringstream html;
  html << "<table data-table=\"referral\"><tr><th class=\"text\">referral on " << escape(set.what)
       << "</th><th>referred</th><th>rate (95% CI)</th></tr>\n<tr><td class=\"text\">abnormal (benign or malignant) "
          "referred: sensitivity</td><td>"
       << tp << " / " << tp + fn << "</td><td>" << rate_ci(tp, tp + fn)
       << "</td></tr>\n<tr><td class=\"text\">normal kept routine: specificity</td><td>" << tn << " / " << tn + fp
       << "</td><td>" << rate_ci(tn, tn + fp) << "</td></tr>\n<tr><td class=\"text\">refused as unreadable (all images)</td><td>"
       << unreadable << " / " << report.labels.size() << "</td><td>" << rate_ci(unreadable, report.labels.size())
       << "</td></tr>\n</table>\n";
  r.html = html.str();
  return r;
}

// ---- Thumbnails: the pixels the network saw (gray-area-v1) at 96x96, as an
// inline PNG (zlib is already linked; nothing is fetched by the page).

void append_chunk(std::string& png, const char* type, const std::string& data) {
  const uint32_t n = uint32_t(data.size());
  for (int s = 24; s >= 0; s -= 8) png += char(n >> s);
  std::string body = std::string(type, 4) + data;
  png += body;
  const uint32_t crc = uint32_t(crc32(0, reinterpret_cast<const Bytef*>(body.data()), uInt(body.size())));
  for (int s = 24; s >= 0; s -= 8) png += char(crc >> s);
}

std::string png_gray(const Tensor8& t) {
  std::string raw;
  for (int y = 0; y < t.height; ++y) {
    raw += '\0';  // filter: none
    raw.append(reinterpret_cast<const char*>(t.pixels.data()) + std::size_t(y) * t.width, std::size_t(t.width));
  }
  uLongf size = compressBound(uLong(raw.size()));
  std::string deflated(size, '\0');
  compress2(reinterpret_cast<Bytef*>(deflated.data()), &size, reinterpret_cast<const Bytef*>(raw.data()),
            uLong(raw.size()), 9);
  deflated.resize(size);
  std::string header;
  for (int v : {t.width, t.height})
    for (int s = 24; s >= 0; s -= 8) header += char(uint32_t(v) >> s);
  header += std::string("\x08\x00\x00\x00\x00", 5);  // 8-bit gray, deflate, no filter method, no interlace
  std::string png = "\x89PNG\r\n\x1a\n";
  append_chunk(png, "IHDR", header);
  append_chunk(png, "IDAT", deflated);
  append_chunk(png, "IEND", "");
  return png;
}

std::string base64(const std::string& bytes) {
  static const char* const digits = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  for (std::size_t i = 0; i < bytes.size(); i += 3) {
    uint32_t v = uint32_t(uint8_t(bytes[i])) << 16;
    if (i + 1 < bytes.size()) v |= uint32_t(uint8_t(bytes[i + 1])) << 8;
    if (i + 2 < bytes.size()) v |= uint8_t(bytes[i + 2]);
    const std::size_t n = std::min<std::size_t>(3, bytes.size() - i);
    out += digits[(v >> 18) & 63];
    out += digits[(v >> 12) & 63];
    out += n > 1 ? digits[(v >> 6) & 63] : '=';
    out += n > 2 ? digits[v & 63] : '=';
  }
  return out;
}

constexpr std::size_t gallery_limit = 60;

// The misclassified and refused images of a run, as thumbnails with their
// scores; never-seen images first, then the most confident mistakes.
std::string gallery(const EvaluationReport& report, const BackendRun& run, std::map<std::string, std::string>& thumbs) {
  if (report.files.size() != report.labels.size() || run.predictions.size() != report.labels.size()) return "";
  std::vector<std::size_t> shown;
  for (std::size_t i = 0; i < report.labels.size(); ++i)
    if (refused(run, i) || run.predictions[i] != report.labels[i]) shown.push_back(i);
  const auto seen = [&](std::size_t i) { return i < run.seen.size() && run.seen[i]; };
  const auto confidence = [&](std::size_t i) {
    return i < run.scores.size() && !run.scores[i].empty() ? *std::max_element(run.scores[i].begin(), run.scores[i].end())
                                                          : 0.0f;
  };
  std::stable_sort(shown.begin(), shown.end(), [&](std::size_t a, std::size_t b) {
    return seen(a) != seen(b) ? seen(b) : confidence(a) > confidence(b);
  });
  const std::size_t total = shown.size();
  if (shown.size() > gallery_limit) shown.resize(gallery_limit);
  const auto& names = run.confusion.class_names();
  std::ostringstream html;
  html << "<p class=\"meta\">" << total << " misclassified or refused" << (total > shown.size() ? ", the first " + std::to_string(shown.size()) + " shown" : "")
       << " (never-seen images first, then the most confident mistakes)</p>\n<div class=\"gallery\">\n";
  for (std::size_t i : shown) {
    const std::string& file = report.files[i];
    auto it = thumbs.find(file);
    if (it == thumbs.end()) {
      std::string uri;
      try {
        uri = "data:image/png;base64," + base64(png_gray(load_image(file, 96, 96)));
      } catch (const std::exception&) {
        uri = "";  // not readable from here: the caption still names it
      }
      it = thumbs.emplace(file, uri).first;
    }
    const bool refusal = refused(run, i);
    html << "<figure class=\"thumb\" data-kind=\"" << (refusal ? "refused" : "misclassified") << "\">";
    if (!it->second.empty())
      html << "<img src=\"" << it->second << "\" width=\"96\" height=\"96\" alt=\"" << escape(file) << "\">";
    else
      html << "<div class=\"missing\">not readable here</div>";
    html << "<figcaption title=\"" << escape(file) << "\">" << escape(std::filesystem::path(file).filename().string())
         << "<br>true " << escape(names[std::size_t(report.labels[i])]) << ", "
         << (refusal ? std::string("<b>refused</b>") : "said <b>" + escape(names[std::size_t(run.predictions[i])]) + "</b>");
    if (i < run.scores.size())
      for (std::size_t c = 0; c < run.scores[i].size(); ++c) html << "<br>" << escape(names[c]) << " " << fixed(run.scores[i][c], 2);
    if (seen(i)) html << "<br><i>trained on</i>";
    html << "</figcaption></figure>\n";
  }
  html << "</div>\n";
  return html.str();
}

// The clinical section of one run.
std::string clinical_section(const EvaluationReport& report, const Row& row, std::map<std::string, std::string>& thumbs) {
  const BackendRun& run = *row.run;
  std::ostringstream html;
  html << "<div class=\"clinical\" data-backend=\"" << escape(row.backend) << "\"><h3>" << escape(row.label) << "</h3>\n";
  const int normal = class_index_of(run, "normal"), benign = class_index_of(run, "benign"),
            malignant = class_index_of(run, "malignant");
  if (!has_per_image_scores(report, run) || normal < 0) {
    html << "<p class=\"meta\" data-clinical=\"none\">No per-image scores in this report (busi-eval --per-image "
            "writes them; a top-1 backend has none), so no ROC curve, reliability diagram or referral point.</p>\n";
  } else {
    const ImageSet set = counted_images(report, run);
    html << "<p class=\"meta\">Counted on " << escape(set.what) << ".</p>\n";
    std::vector<double> abnormal_score, malignant_score;
    std::vector<bool> abnormal_truth, malignant_truth;
    for (std::size_t i : set.index) {
      abnormal_score.push_back(p_abnormal_of(run, i, normal));
      abnormal_truth.push_back(report.labels[i] != normal);
      if (benign >= 0 && malignant >= 0 && (report.labels[i] == benign || report.labels[i] == malignant)) {
        malignant_score.push_back(run.scores[i][std::size_t(malignant)]);
        malignant_truth.push_back(report.labels[i] == malignant);
      }
    }
    const Referral referral = referral_of(report, run, set, normal);
    html << "<div class=\"charts\">"
         << roc_chart("roc-abnormal", "Abnormal vs normal, by P(abnormal)", run.backend, abnormal_score, abnormal_truth,
                      referral.point, referral.label);
    if (!malignant_score.empty())
      html << roc_chart("roc-malignant", "Malignant vs benign, by P(malignant)", run.backend, malignant_score,
                        malignant_truth, std::nullopt, "");
    html << reliability_chart("reliability", report, run, set) << "</div>\n" << referral.html;
  }
  html << gallery(report, run, thumbs) << "</div>\n";
  return html.str();
}

const char* const page_style = R"(
body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #222; max-width: 1100px; }
h1 { font-size: 22px; } h2 { font-size: 18px; margin-top: 32px; } h3 { font-size: 14px; margin: 4px 0; }
table { border-collapse: collapse; margin: 8px 0; }
th, td { border: 1px solid #ccc; padding: 3px 6px; text-align: right; white-space: nowrap; }
table[data-table="summary"] { font-size: 12px; }
th { background: #f4f4f4; }
td.text, th.text { text-align: left; }
figure { margin: 12px 0; } figcaption { font-weight: 600; margin-bottom: 4px; }
svg text { font: 12px system-ui, sans-serif; fill: #222; }
svg text.label { text-anchor: end; } svg text.tick { text-anchor: middle; fill: #666; font-size: 11px; }
svg text.ytick { text-anchor: end; } svg text.na { fill: #999; font-style: italic; }
svg line.grid { stroke: #e3e3e3; } svg polyline.front { fill: none; stroke: #444; stroke-dasharray: 4 3; }
.confusions { display: flex; flex-wrap: wrap; gap: 24px; }
.estimate { color: #a05a00; font-weight: 600; } .meta { color: #555; }
.ci { color: #777; font-size: 11px; } svg path.whisker { stroke: #333; fill: none; }
svg line.chance { stroke: #bbb; stroke-dasharray: 3 3; } svg polyline.roc { fill: none; stroke-width: 2; }
svg circle.operating-point { fill: #d62728; stroke: white; stroke-width: 1.5; }
.charts { display: flex; flex-wrap: wrap; gap: 16px; } figure.small { margin: 4px 0; } figure.small figcaption { font-size: 12px; max-width: 340px; }
.gallery { display: flex; flex-wrap: wrap; gap: 8px; }
figure.thumb { margin: 0; width: 110px; } figure.thumb figcaption { font-size: 10px; font-weight: normal; } figure.thumb img { display: block; image-rendering: pixelated; }
figure.thumb[data-kind="refused"] img { outline: 3px solid #d62728; } .missing { width: 96px; height: 96px; background: #eee; }
)";

}  // namespace

std::string render_dashboard(const std::vector<EvaluationReport>& reports, const std::string& title) {
  std::vector<Row> rows;
  for (const auto& report : reports)
    for (const auto& run : report.runs) {
      const std::string machine = reports.size() < 2            ? ""
                                  : report.machine.host.empty() ? report.machine.cpu
                                                                : report.machine.host;
      const std::string label = run.backend + " " + run.precision + (machine.empty() ? "" : " @ " + machine);
      rows.push_back({label, run.backend, run.precision, machine, &run, &report});
    }

  std::ostringstream html;
  html << "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>" << escape(title)
       << "</title>\n<style>" << page_style << "</style></head><body>\n<h1>" << escape(title) << "</h1>\n";
  for (const auto& report : reports) {
    std::string inputs;
    for (const auto& i : report.inputs) inputs += (inputs.empty() ? "" : ", ") + i;
    html << "<p class=\"meta\" data-machine>" << escape(report.machine.cpu) << " (" << report.machine.cores
         << " cores, " << escape(report.machine.kernel) << ") &middot; commit <code>" << escape(report.commit)
         << "</code> &middot; " << escape(report.started_utc) << " &middot; " << report.images << " images"
         << (inputs.empty() ? "" : " from " + escape(inputs)) << "</p>\n";
  }

  html << "<h2>Summary</h2>\n<table data-table=\"summary\"><tr><th class=\"text\">backend</th><th "
          "class=\"text\">precision</th><th class=\"text\">model</th><th>images</th><th>accuracy</th>";
  const std::vector<std::string> classes =
      rows.empty() ? std::vector<std::string>{} : rows.front().run->confusion.class_names();
  for (const auto& c : classes) html << "<th>recall " << escape(c) << "</th>";
  const bool any_unseen = std::any_of(rows.begin(), rows.end(), [](const Row& r) { return bool(r.run->unseen); });
  if (any_unseen) html << "<th>accuracy on images never trained on</th>";
  html << "<th>sensitivity</th><th>specificity</th><th>p50</th><th>p90</th><th>p99</th><th>img/s</th><th>watts</th>"
          "<th>energy / image</th><th class=\"text\">power source</th></tr>\n";
  for (const auto& r : rows) {
    const auto& run = *r.run;
    const auto rates = run.confusion.normal_vs_abnormal();
    html << "<tr data-backend=\"" << escape(r.backend) << "\"><td class=\"text\">"
         << escape(r.machine.empty() ? r.backend : r.backend + " @ " + r.machine) << "</td><td class=\"text\">"
         << escape(run.precision) << "</td><td class=\"text\" title=\"sha256 " << escape(run.model_sha256) << "\">"
         << escape(run.model_name) << "</td><td>" << run.confusion.total() << "</td><td>"
         << rate_ci(run.confusion.correct(), run.confusion.total()) << "</td>";
    for (std::size_t c = 0; c < run.confusion.num_classes(); ++c)
      html << "<td>" << rate_ci(run.confusion.count(int(c), int(c)), run.confusion.class_total(int(c))) << "</td>";
    if (any_unseen)
      html << "<td data-unseen>"
           << (run.unseen ? rate_ci(run.unseen->correct(), run.unseen->total()) + " of " +
                                std::to_string(run.unseen->total())
                          : std::string("n/a: the package does not say"))
           << "</td>";
    html << "<td>" << rate_ci(rates.true_positive, rates.true_positive + rates.false_negative) << "</td><td>"
         << rate_ci(rates.true_negative, rates.true_negative + rates.false_positive) << "</td><td>"
         << millis(run.latency.p50_ms) << "</td><td>" << millis(run.latency.p90_ms) << "</td><td>"
         << millis(run.latency.p99_ms) << "</td><td>" << (std::isnan(run.throughput) ? "n/a" : fixed(run.throughput, 1))
         << "</td><td>" << (run.energy.available() ? fixed(run.energy.watts, 2) + " W" : "n/a") << "</td><td>"
         << energy_text(run.joules_per_image()) << "</td><td class=\"text\">"
         << (run.energy.estimate ? "<span class=\"estimate\">estimate</span> " : "") << escape(run.energy.source)
         << (run.energy.available() ? "" : " (" + escape(run.energy.note) + ")") << "</td></tr>\n";
  }
  html << "</table>\n";

  std::vector<double> accuracy, latency, energy;
  std::vector<Interval> accuracy_ci;
  std::vector<std::string> accuracy_text, latency_text, energy_label;
  for (const auto& r : rows) {
    const auto& run = *r.run;
    accuracy.push_back(run.confusion.accuracy());
    accuracy_ci.push_back(wilson_interval(run.confusion.correct(), run.confusion.total()));
    accuracy_text.push_back(percent_text(run.confusion.accuracy()));
    latency.push_back(run.latency.p50_ms);
    latency_text.push_back(millis(run.latency.p50_ms) + " (p99 " + millis(run.latency.p99_ms) + ")");
    energy.push_back(run.joules_per_image());
    energy_label.push_back(run.energy.available()
                               ? energy_text(run.joules_per_image()) + (run.energy.estimate ? " (estimate)" : "")
                               : "n/a: no power source");
  }
  html << "<h2>Per backend and bit width</h2>\n"
       << bar_chart("accuracy", "Accuracy, with its 95% confidence interval", rows, accuracy, accuracy_text, "",
                    accuracy_ci)
       << bar_chart("latency", "Latency per image, p50 (log scale)", rows, latency, latency_text, "ms")
       << bar_chart("energy", "Energy per image (log scale)", rows, energy, energy_label, "J")
       << "<h2>Accuracy against latency</h2>\n"
       << pareto_chart(rows) << "<h2>Confusion matrices</h2>\n<div class=\"confusions\">\n";
  for (const auto& r : rows) html << confusion_table(r);
  html << "</div>\n<h2>For clinicians: ROC, calibration, referral, mistakes</h2>\n";
  std::map<std::string, std::string> thumbs;  // one thumbnail per file, shared by the runs
  for (const auto& r : rows) html << clinical_section(*r.report, r, thumbs);
  html << "<p class=\"meta\">Energy per image = the run's energy divided by its images, measured over the "
          "whole run by the named source; figures marked <span class=\"estimate\">estimate</span> are a fixed "
          "power figure (e.g. an overlay's Vivado power report) times the run's time, not a measurement. "
          "Rates with no image to count are n/a. Intervals in parentheses are 95% (Wilson's score interval for "
          "rates, Hanley and McNeil's for an AUC). ROC curves, reliability and the referral count the images the "
          "model was never trained on when its package records them, and leave out images refused as "
          "unreadable.</p>\n</body></html>\n";
  return html.str();
}

}  // namespace busi
