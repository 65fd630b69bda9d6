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
// reach when NC is a fraction of explainable variance); mean r per ROI as bars. Written through a
// temporary file and renamed.
#pragma once
#include <string>
#include <utility>
#include <vector>

#include "tensor/tensor.h"

namespace cortex::analysis {

struct ReportData {
  std::string title;
  std::vector<std::pair<std::string, std::string>> summary;  // shown as a table, in order
  std::vector<double> r;                   // per voxel
  std::vector<double> noise_ceiling;       // per voxel, as a fraction in [0, 1]; empty: no scatter
  std::vector<std::string> roi;            // per voxel; empty: no ROI bars
  std::vector<std::pair<std::string, Tensor>> images;  // captioned (H, W) float maps
};

// The HTML text (what write_report writes).
std::string render_report(const ReportData& d);
void write_report(const std::string& path, const ReportData& d);

// Base64 (RFC 4648, with padding), for data: URIs.
std::string base64(const std::vector<uint8_t>& bytes);

}  // namespace cortex::analysis
