#include "busi/dashboard.hpp"

#include <algorithm>
#include <cmath>
#include <iomanip>
#include <map>
#include <sstream>

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

struct Row {
  std::string label, backend, precision;
  std::string machine;  // set when several reports share the page
  const BackendRun* run;
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
                      const std::string& log_unit) {
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
          << "</title></rect><text class=\"value\" x=\"" << label_width + w + 6 << "\" y=\"" << y + 16 << "\">"
          << escape(texts[i]) << "</text>";
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
    html << "<td>" << percent_text(cm.recall(int(t))) << "</td></tr>\n";
  }
  html << "</table><p>accuracy " << percent_text(cm.accuracy()) << " &middot; normal-vs-abnormal sensitivity "
       << percent_text(rates.sensitivity()) << ", specificity " << percent_text(rates.specificity()) << "</p></div>\n";
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
      rows.push_back({label, run.backend, run.precision, machine, &run});
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
  html << "<th>sensitivity</th><th>specificity</th><th>p50</th><th>p90</th><th>p99</th><th>img/s</th><th>watts</th>"
          "<th>energy / image</th><th class=\"text\">power source</th></tr>\n";
  for (const auto& r : rows) {
    const auto& run = *r.run;
    const auto rates = run.confusion.normal_vs_abnormal();
    html << "<tr data-backend=\"" << escape(r.backend) << "\"><td class=\"text\">"
         << escape(r.machine.empty() ? r.backend : r.backend + " @ " + r.machine) << "</td><td class=\"text\">"
         << escape(run.precision) << "</td><td class=\"text\" title=\"sha256 " << escape(run.model_sha256) << "\">"
         << escape(run.model_name) << "</td><td>" << run.confusion.total() << "</td><td>"
         << percent_text(run.confusion.accuracy()) << "</td>";
    for (std::size_t c = 0; c < run.confusion.num_classes(); ++c)
      html << "<td>" << percent_text(run.confusion.recall(int(c))) << "</td>";
    html << "<td>" << percent_text(rates.sensitivity()) << "</td><td>" << percent_text(rates.specificity()) << "</td><td>"
         << millis(run.latency.p50_ms) << "</td><td>" << millis(run.latency.p90_ms) << "</td><td>"
         << millis(run.latency.p99_ms) << "</td><td>" << (std::isnan(run.throughput) ? "n/a" : fixed(run.throughput, 1))
         << "</td><td>" << (run.energy.available() ? fixed(run.energy.watts, 2) + " W" : "n/a") << "</td><td>"
         << energy_text(run.joules_per_image()) << "</td><td class=\"text\">"
         << (run.energy.estimate ? "<span class=\"estimate\">estimate</span> " : "") << escape(run.energy.source)
         << (run.energy.available() ? "" : " (" + escape(run.energy.note) + ")") << "</td></tr>\n";
  }
  html << "</table>\n";

  std::vector<double> accuracy, latency, energy;
  std::vector<std::string> accuracy_text, latency_text, energy_label;
  for (const auto& r : rows) {
    const auto& run = *r.run;
    accuracy.push_back(run.confusion.accuracy());
    accuracy_text.push_back(percent_text(run.confusion.accuracy()));
    latency.push_back(run.latency.p50_ms);
    latency_text.push_back(millis(run.latency.p50_ms) + " (p99 " + millis(run.latency.p99_ms) + ")");
    energy.push_back(run.joules_per_image());
    energy_label.push_back(run.energy.available()
                               ? energy_text(run.joules_per_image()) + (run.energy.estimate ? " (estimate)" : "")
                               : "n/a: no power source");
  }
  html << "<h2>Per backend and bit width</h2>\n"
       << bar_chart("accuracy", "Accuracy", rows, accuracy, accuracy_text, "")
       << bar_chart("latency", "Latency per image, p50 (log scale)", rows, latency, latency_text, "ms")
       << bar_chart("energy", "Energy per image (log scale)", rows, energy, energy_label, "J")
       << "<h2>Accuracy against latency</h2>\n"
       << pareto_chart(rows) << "<h2>Confusion matrices</h2>\n<div class=\"confusions\">\n";
  for (const auto& r : rows) html << confusion_table(r);
  html << "</div>\n<p class=\"meta\">Energy per image = the run's energy divided by its images, measured over the "
          "whole run by the named source; figures marked <span class=\"estimate\">estimate</span> are a fixed "
          "power figure (e.g. an overlay's Vivado power report) times the run's time, not a measurement. "
          "Rates with no image to count are n/a.</p>\n</body></html>\n";
  return html.str();
}

}  // namespace busi
