// report.html: base64 against RFC 4648's test vectors, the page is self-contained (no external
// URL, no script), carries every plot it was given data for, embeds decodable PNGs, escapes
// user text, and refuses mismatched inputs.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <sstream>

#include "analysis/report.h"
#include "tensor/io/image.h"
#include "tests/test_util.h"

using namespace cortex;
using namespace cortex::analysis;

namespace {
std::vector<uint8_t> bytes(const std::string& s) { return {s.begin(), s.end()}; }
int count(const std::string& s, const std::string& what) {
  int n = 0;
  for (size_t p = s.find(what); p != std::string::npos; p = s.find(what, p + 1)) ++n;
  return n;
}
// Decodes standard base64 (test-only, independent of the encoder).
std::vector<uint8_t> unbase64(const std::string& s) {
  auto val = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    return c == '+' ? 62 : 63;
  };
  std::vector<uint8_t> out;
  for (size_t i = 0; i + 3 < s.size(); i += 4) {
    const int a = val(s[i]), b = val(s[i + 1]);
    out.push_back(static_cast<uint8_t>((a << 2) | (b >> 4)));
    if (s[i + 2] != '=') out.push_back(static_cast<uint8_t>(((b & 15) << 4) | (val(s[i + 2]) >> 2)));
    if (s[i + 3] != '=') out.push_back(static_cast<uint8_t>(((val(s[i + 2]) & 3) << 6) | val(s[i + 3])));
  }
  return out;
}
}  // namespace

TEST(Report, Base64MatchesRfc4648) {
  EXPECT_EQ(base64(bytes("")), "");
  EXPECT_EQ(base64(bytes("f")), "Zg==");
  EXPECT_EQ(base64(bytes("fo")), "Zm8=");
  EXPECT_EQ(base64(bytes("foo")), "Zm9v");
  EXPECT_EQ(base64(bytes("foob")), "Zm9vYg==");
  EXPECT_EQ(base64(bytes("fooba")), "Zm9vYmE=");
  EXPECT_EQ(base64(bytes("foobar")), "Zm9vYmFy");
}

TEST(Report, SelfContainedPageWithEveryPlot) {
  ReportData d;
  d.title = "ridge <layer3> & friends";
  d.summary = {{"mean r", "0.41"}};
  Generator g(3);
  const int64_t n = 12000;  // more than the scatter draws: it subsamples
  Tensor r = rand({n}, g, -0.2, 0.9, DType::Float64);
  d.r = r.to_vector<double>();
  d.r[5] = std::nan("");
  d.noise_ceiling = rand({n}, g, 0.0, 1.0, DType::Float64).to_vector<double>();
  for (int64_t i = 0; i < n; ++i) d.roi.push_back(i % 3 == 0 ? "V1" : (i % 3 == 1 ? "V2" : "FFA"));
  Tensor rf = zeros({7, 9}, DType::Float32);
  rf.select(0, 3).select(0, 4).fill_(2.0);
  d.images = {{"voxel 0", rf}};
  const std::string html = render_report(d);
  EXPECT_EQ(count(html, "http"), count(html, "http://www.w3.org/2000/svg"));  // only the SVG namespace
  EXPECT_EQ(count(html, "<script"), 0);
  EXPECT_EQ(count(html, "<svg"), 3);  // histogram, scatter, ROI bars
  EXPECT_NE(html.find("ridge &lt;layer3&gt; &amp; friends"), std::string::npos);
  EXPECT_NE(html.find("(1 without r)"), std::string::npos);
  EXPECT_LE(count(html, "<circle"), 5000);
  EXPECT_GE(count(html, "<circle"), 4000);
  EXPECT_EQ(count(html, "<title>"), 1 + 3);  // the page's and one per ROI bar
  // The embedded PNG decodes to the map, stretched to 0..255.
  const std::string key = "data:image/png;base64,";
  const size_t at = html.find(key) + key.size();
  const std::string b64 = html.substr(at, html.find('\'', at) - at);
  const std::vector<uint8_t> png = unbase64(b64);
  Tensor img = io::decode_image(png.data(), png.size(), "rf", io::ImageMode::Gray);
  ASSERT_EQ(img.numel(), 63);
  EXPECT_EQ(img.reshape({7, 9}).at({3, 4}), 255.0);
  EXPECT_EQ(img.reshape({7, 9}).at({0, 0}), 0.0);

  // write_report leaves the same text at the path and no temporary beside it.
  const std::string path = ::testing::TempDir() + "cortex_report_test.html";
  write_report(path, d);
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  EXPECT_EQ(ss.str(), html);
  std::remove(path.c_str());
}

TEST(Report, PlotsWithoutDataAreLeftOutAndBadInputsRefused) {
  ReportData d;
  d.title = "only r";
  d.r = {0.1, 0.2};
  const std::string html = render_report(d);
  EXPECT_EQ(count(html, "<svg"), 1);
  d.noise_ceiling = {0.5};
  EXPECT_CORTEX_ERROR(render_report(d), "2 voxel correlations but 1 noise ceilings");
  d.noise_ceiling.clear();
  d.roi = {"V1"};
  EXPECT_CORTEX_ERROR(render_report(d), "2 voxel correlations but 1 ROI labels");
  d.roi.clear();
  d.images = {{"bad", zeros({2, 3, 4})}};
  EXPECT_CORTEX_ERROR(render_report(d), "report: image 'bad' must be a non-empty (H, W) map, found [2, 3, 4]");
}
