// report.html: one self-contained page (inline SVG plots, PNG images as data: URIs, no scripts,
// no network) summarising a fitted encoding model, so a scientist can open it anywhere.
//
//   ReportData d;
//   d.title = "ridge on resnet50 layer3.5";
//   d.r = per_voxel_r; d.noise_ceiling = nc; d.roi = roi_names_per_voxel;
//   d.summary = {{"mean r", "0.41"}, {"Algonauts score", "53.2"}};
//   d.images = {{"voxel 17 receptive field", rf17}};    // (H, W) float maps, scaled per image
//   write_report("out/report.html", d);
//
// Plots: histogram of voxel r; r against the noise ceiling (sqrt(NC), the largest r a voxel can
// reach when NC is a fraction of explainable variance); mean r per ROI as bars; then any figures
// and tables given (cortex compare's page is only those). Without per-voxel r there is no
// histogram. Written through a temporary file and renamed.
#pragma once
#include <array>
#include <string>
#include <utility>
#include <vector>

#include "tensor/tensor.h"

namespace cortex::analysis {

// A plot made by another page's code (inline SVG, e.g. from svg_scatter), and a table of text
// cells; both are shown after the fit report's own plots, in order.
struct Figure {
  std::string svg, caption;
};
struct Table {
  std::string caption;
  std::vector<std::string> header;
  std::vector<std::vector<std::string>> rows;  // each as long as header
};

struct ReportData {
  std::string title;
  std::vector<std::pair<std::string, std::string>> summary;  // shown as a table, in order
  std::vector<double> r;                   // per voxel
  std::vector<double> noise_ceiling;       // per voxel, as a fraction in [0, 1]; empty: no scatter
  std::vector<std::string> roi;            // per voxel; empty: no ROI bars
  std::vector<std::pair<std::string, Tensor>> images;  // captioned (H, W) float maps
  std::vector<Figure> figures;
  std::vector<Table> tables;
};

// Plots for other pages, in the fit report's size and style.
// Points (x[i], y[i]) on [xlo, xhi] x [ylo, yhi] (values outside are drawn on the edge; non-finite
// ones skipped; at most 5000 drawn, evenly strided), coloured by group[i] (optional, an index into
// a fixed palette), with dashed reference lines {x0, y0, x1, y1} in data units.
struct ScatterPlot {
  std::vector<double> x, y;
  std::vector<int> group;
  double xlo = 0, xhi = 1, ylo = 0, yhi = 1;
  std::string xlabel, ylabel;
  std::vector<std::array<double, 4>> lines;
};
std::string svg_scatter(const ScatterPlot& p);
// Bars grouped side by side: one group per label, one bar per series (a legend names them), of
// height[series][group] with error bars of +- error[series][group] (non-finite: none). The plot
// widens with the number of bars.
std::string svg_grouped_bars(const std::vector<std::string>& groups, const std::vector<std::string>& series,
                             const std::vector<std::vector<double>>& height,
                             const std::vector<std::vector<double>>& error, const std::string& ylabel);

// The HTML text (what write_report writes).
std::string render_report(const ReportData& d);
void write_report(const std::string& path, const ReportData& d);

// Text for HTML and SVG: &, <, > and " as entities (the pages other jobs write use it too).
std::string html_escape(const std::string& s);

// Base64 (RFC 4648, with padding), for data: URIs.
std::string base64(const std::vector<uint8_t>& bytes);

}  // namespace cortex::analysis
