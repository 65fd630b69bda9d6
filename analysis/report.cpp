#include "analysis/report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <sstream>

#include "tensor/io/atomic_file.h"
#include "tensor/io/image.h"

namespace cortex::analysis {
namespace {

constexpr int kW = 420, kH = 300;                        // plot size in SVG units
constexpr int kL = 48, kR = 12, kT = 14, kB = 36;        // margins: left (axis labels), right, top, bottom
constexpr size_t kMaxScatter = 5000;                     // points drawn (evenly strided beyond this)

std::string num(double v, int prec = 3) {
  char b[32];
  std::snprintf(b, sizeof b, "%.*g", prec, v);
  return b;
}

// Maps [lo, hi] to plot pixels.
struct Axis {
  double lo, hi;
  int a, b;  // pixel positions of lo and hi
  double operator()(double v) const { return a + (v - lo) / (hi - lo) * (b - a); }
};

void frame(std::ostringstream& o, const Axis& x, const Axis& y, const std::string& xl, const std::string& yl) {
  o << "<line x1='" << kL << "' y1='" << kH - kB << "' x2='" << kW - kR << "' y2='" << kH - kB
    << "' stroke='#333'/><line x1='" << kL << "' y1='" << kT << "' x2='" << kL << "' y2='" << kH - kB
    << "' stroke='#333'/>";
  for (int i = 0; i <= 4; ++i) {
    const double vx = x.lo + (x.hi - x.lo) * i / 4, vy = y.lo + (y.hi - y.lo) * i / 4;
    o << "<text x='" << x(vx) << "' y='" << kH - kB + 14 << "' font-size='10' text-anchor='middle'>" << num(vx, 2)
      << "</text><text x='" << kL - 4 << "' y='" << y(vy) + 3 << "' font-size='10' text-anchor='end'>" << num(vy, 2)
      << "</text>";
  }
  o << "<text x='" << (kL + kW - kR) / 2 << "' y='" << kH - 4 << "' font-size='11' text-anchor='middle'>" << html_escape(xl)
    << "</text><text x='12' y='" << (kT + kH - kB) / 2 << "' font-size='11' text-anchor='middle' transform='rotate(-90 12 "
    << (kT + kH - kB) / 2 << ")'>" << html_escape(yl) << "</text>";
}

std::string svg_open(int w = kW, int h = kH) {
  std::ostringstream o;
  o << "<svg xmlns='http://www.w3.org/2000/svg' width='" << w << "' height='" << h << "' viewBox='0 0 " << w << " "
    << h << "'>";
  return o.str();
}

// Colour-blind-safe (Paul Tol's bright scheme), for groups of points and series of bars.
const char* const kPalette[] = {"#4477aa", "#ee6677", "#228833", "#ccbb44", "#66ccee", "#aa3377", "#bbbbbb"};
const char* colour(size_t i) { return kPalette[i % (sizeof kPalette / sizeof *kPalette)]; }

std::vector<double> finite(const std::vector<double>& v) {
  std::vector<double> o;
  for (double x : v)
    if (std::isfinite(x)) o.push_back(x);
  return o;
}

std::string histogram(const std::vector<double>& r) {
  const std::vector<double> v = finite(r);
  const double lo = std::min(-0.2, v.empty() ? 0.0 : *std::min_element(v.begin(), v.end()));
  const double hi = 1.0;
  constexpr int kBins = 30;
  std::vector<int64_t> count(kBins, 0);
  for (double x : v) count[std::clamp(static_cast<int>((x - lo) / (hi - lo) * kBins), 0, kBins - 1)]++;
  const int64_t top = std::max<int64_t>(1, *std::max_element(count.begin(), count.end()));
  Axis ax{lo, hi, kL, kW - kR}, ay{0, static_cast<double>(top), kH - kB, kT};
  std::ostringstream o;
  o << svg_open();
  for (int b = 0; b < kBins; ++b) {
    const double x0 = ax(lo + (hi - lo) * b / kBins), x1 = ax(lo + (hi - lo) * (b + 1) / kBins);
    o << "<rect x='" << x0 << "' y='" << ay(count[b]) << "' width='" << std::max(0.5, x1 - x0 - 1) << "' height='"
      << ay(0) - ay(count[b]) << "' fill='#4477aa'/>";
  }
  o << "<line x1='" << ax(0) << "' y1='" << kT << "' x2='" << ax(0) << "' y2='" << kH - kB
    << "' stroke='#999' stroke-dasharray='3 3'/>";
  frame(o, ax, ay, "Pearson r", "voxels");
  o << "</svg>";
  return o.str();
}

std::string scatter(const std::vector<double>& r, const std::vector<double>& nc) {
  Axis ax{0, 1, kL, kW - kR}, ay{std::min(-0.2, 0.0), 1, kH - kB, kT};
  std::ostringstream o;
  o << svg_open();
  o << "<line x1='" << ax(0) << "' y1='" << ay(0) << "' x2='" << ax(1) << "' y2='" << ay(1)
    << "' stroke='#cc3311' stroke-dasharray='4 3'/>";
  const size_t step = std::max<size_t>(1, (r.size() + kMaxScatter - 1) / kMaxScatter);
  for (size_t i = 0; i < r.size(); i += step) {
    if (!std::isfinite(r[i]) || !std::isfinite(nc[i])) continue;
    const double c = std::sqrt(std::clamp(nc[i], 0.0, 1.0));
    o << "<circle cx='" << num(ax(c), 4) << "' cy='" << num(ay(std::clamp(r[i], ay.lo, 1.0)), 4)
      << "' r='1.6' fill='#4477aa' fill-opacity='0.45'/>";
  }
  frame(o, ax, ay, "noise ceiling (sqrt NC)", "Pearson r");
  o << "</svg>";
  return o.str();
}

std::string roi_bars(const std::vector<double>& r, const std::vector<std::string>& roi) {
  std::map<std::string, std::pair<double, int64_t>> acc;  // sorted by name
  for (size_t i = 0; i < r.size(); ++i)
    if (std::isfinite(r[i])) {
      acc[roi[i]].first += r[i];
      acc[roi[i]].second += 1;
    }
  const int n = std::max<int>(1, static_cast<int>(acc.size()));
  double top = 0.1;
  for (auto& [k, v] : acc) top = std::max(top, v.first / static_cast<double>(v.second));
  Axis ay{0, top, kH - kB, kT};
  std::ostringstream o;
  o << svg_open();
  int i = 0;
  const double slot = static_cast<double>(kW - kL - kR) / n;
  for (auto& [name, v] : acc) {
    const double m = v.first / static_cast<double>(v.second);
    const double x = kL + slot * i + slot * 0.15;
    const double y = ay(std::max(0.0, m));
    o << "<rect x='" << x << "' y='" << y << "' width='" << slot * 0.7 << "' height='" << ay(0) - y
      << "' fill='#228833'><title>" << html_escape(name) << ": mean r " << num(m) << " over " << v.second
      << " voxels</title></rect><text x='" << x + slot * 0.35 << "' y='" << kH - kB + 14
      << "' font-size='10' text-anchor='middle'>" << html_escape(name) << "</text>";
    ++i;
  }
  o << "<line x1='" << kL << "' y1='" << kH - kB << "' x2='" << kW - kR << "' y2='" << kH - kB << "' stroke='#333'/>";
  for (int t = 0; t <= 4; ++t)
    o << "<text x='" << kL - 4 << "' y='" << ay(top * t / 4) + 3 << "' font-size='10' text-anchor='end'>"
      << num(top * t / 4, 2) << "</text>";
  o << "</svg>";
  return o.str();
}

// (H, W) float map -> grey PNG, min..max stretched to 0..255 (a constant map is mid-grey).
std::vector<uint8_t> map_png(const std::string& caption, const Tensor& m) {
  CORTEX_CHECK(m.defined() && m.dim() == 2 && m.numel() > 0, "report: image '", caption,
               "' must be a non-empty (H, W) map, found ", m.defined() ? shape_str(m.shape()) : "undefined");
  const std::vector<double> v = m.to(DType::Float64).contiguous().to_vector<double>();
  double lo = INFINITY, hi = -INFINITY;
  for (double x : v)
    if (std::isfinite(x)) lo = std::min(lo, x), hi = std::max(hi, x);
  std::vector<uint8_t> px(v.size(), 128);
  if (hi > lo)
    for (size_t i = 0; i < v.size(); ++i)
      px[i] = std::isfinite(v[i]) ? static_cast<uint8_t>(std::lround((v[i] - lo) / (hi - lo) * 255.0)) : 0;
  return io::encode_png(from_vector(px, m.shape(), DType::UInt8));
}

}  // namespace

std::string svg_scatter(const ScatterPlot& p) {
  CORTEX_CHECK(p.x.size() == p.y.size(), "report: scatter of ", p.x.size(), " x values but ", p.y.size(), " y values");
  CORTEX_CHECK(p.group.empty() || p.group.size() == p.x.size(), "report: scatter of ", p.x.size(), " points but ",
               p.group.size(), " group indices");
  CORTEX_CHECK(p.xhi > p.xlo && p.yhi > p.ylo, "report: scatter ranges must be increasing, found x [", p.xlo, ", ",
               p.xhi, "] and y [", p.ylo, ", ", p.yhi, "]");
  Axis ax{p.xlo, p.xhi, kL, kW - kR}, ay{p.ylo, p.yhi, kH - kB, kT};
  std::ostringstream o;
  o << svg_open();
  for (const auto& l : p.lines)
    o << "<line x1='" << num(ax(l[0]), 4) << "' y1='" << num(ay(l[1]), 4) << "' x2='" << num(ax(l[2]), 4) << "' y2='"
      << num(ay(l[3]), 4) << "' stroke='#cc3311' stroke-dasharray='4 3'/>";
  const size_t step = std::max<size_t>(1, (p.x.size() + kMaxScatter - 1) / kMaxScatter);
  for (size_t i = 0; i < p.x.size(); i += step) {
    if (!std::isfinite(p.x[i]) || !std::isfinite(p.y[i])) continue;
    const double x = std::clamp(p.x[i], p.xlo, p.xhi), y = std::clamp(p.y[i], p.ylo, p.yhi);
    o << "<circle cx='" << num(ax(x), 4) << "' cy='" << num(ay(y), 4) << "' r='1.6' fill='"
      << colour(p.group.empty() ? 0 : static_cast<size_t>(std::max(0, p.group[i]))) << "' fill-opacity='0.45'/>";
  }
  frame(o, ax, ay, p.xlabel, p.ylabel);
  o << "</svg>";
  return o.str();
}

std::string svg_grouped_bars(const std::vector<std::string>& groups, const std::vector<std::string>& series,
                             const std::vector<std::vector<double>>& height,
                             const std::vector<std::vector<double>>& error, const std::string& ylabel) {
  CORTEX_CHECK(!groups.empty() && !series.empty(), "report: grouped bars need at least one group and one series, found ",
               groups.size(), " and ", series.size());
  CORTEX_CHECK(height.size() == series.size() && error.size() == series.size(), "report: grouped bars of ",
               series.size(), " series but ", height.size(), " rows of heights and ", error.size(), " of errors");
  for (size_t s = 0; s < series.size(); ++s)
    CORTEX_CHECK(height[s].size() == groups.size() && error[s].size() == groups.size(), "report: series '", series[s],
                 "' has ", height[s].size(), " heights and ", error[s].size(), " errors for ", groups.size(), " groups");
  constexpr int kBar = 12, kGap = 18, kBottom = 70, kLegend = 16;  // bar width, gap between groups, label room
  const int ns = static_cast<int>(series.size()), ng = static_cast<int>(groups.size());
  const int w = std::max(kW, kL + kR + ng * (ns * kBar + kGap));
  const int h = kH + kBottom - kB;
  double lo = 0, hi = 0.1;
  for (size_t s = 0; s < series.size(); ++s)
    for (size_t g = 0; g < groups.size(); ++g) {
      const double e = std::isfinite(error[s][g]) ? std::abs(error[s][g]) : 0.0;
      if (!std::isfinite(height[s][g])) continue;
      hi = std::max(hi, height[s][g] + e);
      lo = std::min(lo, height[s][g] - e);
    }
  Axis ay{lo, hi, h - kBottom, kT + kLegend};
  std::ostringstream o;
  o << svg_open(w, h);
  for (int s = 0; s < ns; ++s)
    o << "<rect x='" << kL + 90 * s << "' y='" << kT - 8 << "' width='10' height='10' fill='" << colour(s)
      << "'/><text x='" << kL + 90 * s + 14 << "' y='" << kT + 1 << "' font-size='10'>" << html_escape(series[s]) << "</text>";
  const double slot = static_cast<double>(w - kL - kR) / ng;
  for (int g = 0; g < ng; ++g) {
    const double x0 = kL + slot * g + (slot - ns * kBar) / 2;
    for (int s = 0; s < ns; ++s) {
      const double m = height[s][g], e = error[s][g];
      if (!std::isfinite(m)) continue;
      const double x = x0 + s * kBar, top = ay(std::max(0.0, m)), bot = ay(std::min(0.0, m));
      o << "<rect x='" << num(x, 5) << "' y='" << num(top, 5) << "' width='" << kBar - 2 << "' height='"
        << num(bot - top, 5) << "' fill='" << colour(s) << "'><title>" << html_escape(groups[g]) << ", " << html_escape(series[s])
        << ": " << num(m) << (std::isfinite(e) ? " +- " + num(e) : "") << "</title></rect>";
      if (std::isfinite(e) && e > 0) {
        const double cx = x + (kBar - 2) / 2.0;
        o << "<line x1='" << num(cx, 5) << "' y1='" << num(ay(m - e), 5) << "' x2='" << num(cx, 5) << "' y2='"
          << num(ay(m + e), 5) << "' stroke='#222'/><line x1='" << num(cx - 3, 5) << "' y1='" << num(ay(m + e), 5)
          << "' x2='" << num(cx + 3, 5) << "' y2='" << num(ay(m + e), 5) << "' stroke='#222'/><line x1='"
          << num(cx - 3, 5) << "' y1='" << num(ay(m - e), 5) << "' x2='" << num(cx + 3, 5) << "' y2='"
          << num(ay(m - e), 5) << "' stroke='#222'/>";
      }
    }
    const double lx = kL + slot * (g + 0.5), ly = h - kBottom + 12;
    o << "<text x='" << num(lx, 5) << "' y='" << num(ly, 5) << "' font-size='10' text-anchor='end' transform='rotate(-35 "
      << num(lx, 5) << " " << num(ly, 5) << ")'>" << html_escape(groups[g]) << "</text>";
  }
  o << "<line x1='" << kL << "' y1='" << ay(0) << "' x2='" << w - kR << "' y2='" << ay(0) << "' stroke='#333'/><line x1='"
    << kL << "' y1='" << ay(hi) << "' x2='" << kL << "' y2='" << ay(lo) << "' stroke='#333'/>";
  for (int t = 0; t <= 4; ++t)
    o << "<text x='" << kL - 4 << "' y='" << ay(lo + (hi - lo) * t / 4) + 3 << "' font-size='10' text-anchor='end'>"
      << num(lo + (hi - lo) * t / 4, 2) << "</text>";
  const int mid = (kT + kLegend + h - kBottom) / 2;
  o << "<text x='12' y='" << mid << "' font-size='11' text-anchor='middle' transform='rotate(-90 12 " << mid << ")'>"
    << html_escape(ylabel) << "</text></svg>";
  return o.str();
}

std::string html_escape(const std::string& s) {
  std::string o;
  for (char c : s) {
    switch (c) {
      case '&': o += "&amp;"; break;
      case '<': o += "&lt;"; break;
      case '>': o += "&gt;"; break;
      case '"': o += "&quot;"; break;
      default: o += c;
    }
  }
  return o;
}

std::string base64(const std::vector<uint8_t>& b) {
  static const char* t = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string o;
  o.reserve((b.size() + 2) / 3 * 4);
  for (size_t i = 0; i < b.size(); i += 3) {
    const uint32_t n = (uint32_t(b[i]) << 16) | (i + 1 < b.size() ? uint32_t(b[i + 1]) << 8 : 0) |
                       (i + 2 < b.size() ? uint32_t(b[i + 2]) : 0);
    o += t[(n >> 18) & 63];
    o += t[(n >> 12) & 63];
    o += i + 1 < b.size() ? t[(n >> 6) & 63] : '=';
    o += i + 2 < b.size() ? t[n & 63] : '=';
  }
  return o;
}

std::string render_report(const ReportData& d) {
  CORTEX_CHECK(d.noise_ceiling.empty() || d.noise_ceiling.size() == d.r.size(), "report: ", d.r.size(),
               " voxel correlations but ", d.noise_ceiling.size(), " noise ceilings");
  CORTEX_CHECK(d.roi.empty() || d.roi.size() == d.r.size(), "report: ", d.r.size(), " voxel correlations but ",
               d.roi.size(), " ROI labels");
  std::ostringstream o;
  o << "<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>" << html_escape(d.title) << "</title><style>"
    << "body{font-family:sans-serif;margin:24px;color:#222}table{border-collapse:collapse}"
    << "td{padding:2px 12px 2px 0}figure{display:inline-block;margin:8px 16px 8px 0;vertical-align:top}"
    << "figcaption{font-size:12px;color:#555}img{image-rendering:pixelated;width:128px;border:1px solid #ccc}"
    << "</style></head><body>\n<h1>" << html_escape(d.title) << "</h1>\n<table>";
  for (auto& [k, v] : d.summary) o << "<tr><td>" << html_escape(k) << "</td><td><b>" << html_escape(v) << "</b></td></tr>";
  const size_t bad = d.r.size() - finite(d.r).size();
  if (!d.r.empty())
    o << "<tr><td>voxels</td><td><b>" << d.r.size() << "</b>" << (bad ? " (" + std::to_string(bad) + " without r)" : "")
      << "</td></tr>";
  o << "</table>\n";
  if (!d.r.empty()) o << "<figure>" << histogram(d.r) << "<figcaption>Pearson r per voxel</figcaption></figure>\n";
  if (!d.noise_ceiling.empty())
    o << "<figure>" << scatter(d.r, d.noise_ceiling)
      << "<figcaption>r against the noise ceiling; the dashed line is r = sqrt(NC)</figcaption></figure>\n";
  if (!d.roi.empty()) o << "<figure>" << roi_bars(d.r, d.roi) << "<figcaption>mean r per ROI</figcaption></figure>\n";
  if (!d.images.empty()) {
    o << "<h2>Receptive fields</h2>\n";
    for (auto& [caption, m] : d.images)
      o << "<figure><img alt='" << html_escape(caption) << "' src='data:image/png;base64," << base64(map_png(caption, m))
        << "'><figcaption>" << html_escape(caption) << "</figcaption></figure>\n";
  }
  for (const auto& f : d.figures) o << "<figure>" << f.svg << "<figcaption>" << html_escape(f.caption) << "</figcaption></figure>\n";
  for (const auto& t : d.tables) {
    o << "<h2>" << html_escape(t.caption) << "</h2>\n<table border='1'><tr>";
    for (const auto& h : t.header) o << "<th>" << html_escape(h) << "</th>";
    o << "</tr>";
    for (const auto& row : t.rows) {
      CORTEX_CHECK(row.size() == t.header.size(), "report: table '", t.caption, "' has ", t.header.size(),
                   " columns but a row of ", row.size());
      o << "<tr>";
      for (const auto& c : row) o << "<td>" << html_escape(c) << "</td>";
      o << "</tr>";
    }
    o << "</table>\n";
  }
  o << "</body></html>\n";
  return o.str();
}

void write_report(const std::string& path, const ReportData& d) {
  const std::string html = render_report(d);
  io::write_file_atomic(path, html.data(), html.size());
}

}  // namespace cortex::analysis
