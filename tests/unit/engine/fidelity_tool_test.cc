// kvt-fidelity on a small slice of the real model and text (1 window of 256 tokens, 512 tokens of
// perplexity; a few seconds): one row per registered method with sane values, the rest listed as
// missing, and the three report files written.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "examples/fidelity/fidelity_row.h"
#include "examples/fidelity/method_table.h"
#include "tests/support/temp_dir.h"
#include "tests/unit/engine/engine_test_data.h"

namespace kvt::fidelity {
namespace {

std::string ReadAll(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

// One CSV line; fields may be double-quoted (specs contain commas).
std::vector<std::string> SplitCsv(const std::string& line) {
  std::vector<std::string> out(1);
  bool quoted = false;
  for (char ch : line) {
    if (ch == '"') {
      quoted = !quoted;
    } else if (ch == ',' && !quoted) {
      out.emplace_back();
    } else {
      out.back() += ch;
    }
  }
  return out;
}

using Row = std::map<std::string, std::string>;

double Num(const Row& r, const std::string& column) {
  auto it = r.find(column);
  EXPECT_NE(it, r.end()) << "no column " << column;
  if (it == r.end() || it->second.empty()) return std::nan("");
  return std::stod(it->second);
}

class FidelityToolTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new kvt::testing::TempDir();
    const std::string cmd = kvt::testing::BinDir() + "/kvt-fidelity --model " + llama::testing::ModelBin() +
                            " --tokenizer " + llama::testing::TokenizerBin() + " --text " +
                            llama::testing::DevText() +
                            " --windows 1 --window 256 --prefill 64 --obs-window 16 --ppl-tokens 512 --out " +
                            dir_->path() + " 2>" + dir_->path() + "/stderr.txt";
    status_ = std::system(cmd.c_str());
    std::istringstream csv(ReadAll(dir_->path() + "/fidelity.csv"));
    std::string line;
    std::getline(csv, line);
    header_ = SplitCsv(line);
    while (std::getline(csv, line)) {
      if (line.empty()) continue;
      std::vector<std::string> f = SplitCsv(line);
      Row r;
      for (size_t i = 0; i < f.size() && i < header_.size(); ++i) r[header_[i]] = f[i];
      rows_[r["method"]] = r;
      order_.push_back(r["method"]);
    }
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }

  static inline kvt::testing::TempDir* dir_ = nullptr;
  static inline int status_ = -1;
  static inline std::vector<std::string> header_, order_;
  static inline std::map<std::string, Row> rows_;
};

TEST_F(FidelityToolTest, WritesTheThreeReports) {
  ASSERT_EQ(status_, 0) << ReadAll(dir_->path() + "/stderr.txt");
  const std::string png = ReadAll(dir_->path() + "/fidelity.png");
  ASSERT_GT(png.size(), 8u);
  EXPECT_EQ(png.substr(1, 3), "PNG");
  const std::string md = ReadAll(dir_->path() + "/fidelity.md");
  EXPECT_NE(md.find("real model, real text"), std::string::npos);
  EXPECT_NE(md.find("| method |"), std::string::npos);
  ASSERT_FALSE(order_.empty());
  EXPECT_EQ(order_.front(), "full") << "full is the reference row and comes first";
}

TEST_F(FidelityToolTest, OneRowPerRegisteredMethodTheRestListedAsMissing) {
  ASSERT_EQ(status_, 0);
  const std::string md = ReadAll(dir_->path() + "/fidelity.md");
  // The tool computes both LoRC factor files, so both LoRC rows are requested.
  for (const FidelityMethod& m : SmallModelMethods("progressive.bin", "uniform.bin")) {
    const size_t n = std::count(order_.begin(), order_.end(), m.label);
    if (Registered(m.family)) {
      EXPECT_EQ(n, 1u) << m.label;
      EXPECT_NE(md.find("| " + m.label + " |"), std::string::npos) << m.label;
    } else {
      EXPECT_EQ(n, 0u) << m.label << " is not registered and must not be measured";
      EXPECT_NE(md.find("- " + m.label + " (registry has no '" + m.family + "')"), std::string::npos)
          << m.label << " must be listed as missing";
    }
  }
  EXPECT_EQ(order_.size(), std::count_if(order_.begin(), order_.end(), [](const std::string& l) {
              return !l.empty();
            }));
}

TEST_F(FidelityToolTest, ValuesAreSane) {
  ASSERT_EQ(status_, 0);
  ASSERT_TRUE(rows_.count("full"));
  const Row& full = rows_["full"];
  EXPECT_EQ(Num(full, "attention_rel_error"), 0.0);
  EXPECT_EQ(Num(full, "delta_nll"), 0.0);
  EXPECT_EQ(Num(full, "kept_fraction"), 1.0);
  // The reference cache is near the 1.40 nats/token even on this small slice.
  EXPECT_GT(Num(full, "nll"), 1.0);
  EXPECT_LT(Num(full, "nll"), 1.8);
  for (const auto& [label, r] : rows_) {
    SCOPED_TRACE(label);
    const double bytes = Num(r, "bytes_per_token_per_layer"), ratio = Num(r, "ratio_vs_fp16");
    EXPECT_GT(bytes, 0.0);
    // fp16 reference: K and V, kv_dim 32, 2 bytes -> 128 bytes per token per layer.
    EXPECT_NEAR(ratio, 128.0 / bytes, 1e-3 * ratio + 1e-4);
    EXPECT_GT(Num(r, "kept_fraction"), 0.0);
    EXPECT_LE(Num(r, "kept_fraction"), 1.0);
    const double err = Num(r, "attention_rel_error");
    EXPECT_TRUE(std::isfinite(err));
    EXPECT_GE(err, 0.0);
    EXPECT_LT(err, 2.0);
    for (int l = 0; l < 5; ++l) EXPECT_GE(Num(r, "attention_rel_error_L" + std::to_string(l)), 0.0);
    const double nll = Num(r, "nll");
    EXPECT_TRUE(std::isfinite(nll));
    EXPECT_NEAR(Num(r, "ppl"), std::exp(nll), 1e-3 * std::exp(nll));
    EXPECT_NEAR(Num(r, "delta_nll"), nll - Num(full, "nll"), 1e-5);
  }
  // Methods that shrink the stored cache below fp16 on this model (quantization, eviction).
  for (const char* label : {"KIVI-4", "KIVI-2", "TailorKV-2", "TailorKV-1", "TALE", "SnapKV-64", "StreamingLLM-64"}) {
    if (!rows_.count(label)) continue;  // missing: listed, checked above
    SCOPED_TRACE(label);
    EXPECT_GT(Num(rows_[label], "ratio_vs_fp16"), 1.0);
    EXPECT_GT(Num(rows_[label], "attention_rel_error"), 0.0) << "a lossy method with zero error is suspicious";
  }
  if (rows_.count("KIVI-2") && rows_.count("KIVI-4")) {
    EXPECT_GT(Num(rows_["KIVI-2"], "ratio_vs_fp16"), Num(rows_["KIVI-4"], "ratio_vs_fp16"));
    EXPECT_GT(Num(rows_["KIVI-2"], "attention_rel_error"), Num(rows_["KIVI-4"], "attention_rel_error"));
  }
  // Inspection columns (policies::InspectableCache): KIVI reconstructs K/V, selection methods
  // report what they read; a method without the hook leaves them empty.
  EXPECT_TRUE(full.at("topk_recall").empty());
  for (const char* label : {"KIVI-4", "KIVI-2"}) {
    if (!rows_.count(label)) continue;
    SCOPED_TRACE(label);
    for (const char* col : {"key_recon_error", "value_recon_error"}) {
      EXPECT_GT(Num(rows_[label], col), 0.0);
      EXPECT_LT(Num(rows_[label], col), 1.0);
    }
  }
  if (rows_.count("KIVI-2") && rows_.count("KIVI-4")) {
    EXPECT_GT(Num(rows_["KIVI-2"], "key_recon_error"), Num(rows_["KIVI-4"], "key_recon_error"));
  }
  for (const char* label : {"Quest-64", "SnapKV-64", "StreamingLLM-64"}) {
    if (!rows_.count(label)) continue;
    SCOPED_TRACE(label);
    EXPECT_GT(Num(rows_[label], "topk_recall"), 0.3);
    EXPECT_LE(Num(rows_[label], "topk_recall"), 1.0);
    EXPECT_GE(Num(rows_[label], "attention_mass"), Num(rows_[label], "kept_fraction") - 1e-9)
        << "a selection should capture at least its share of the attention";
    EXPECT_LE(Num(rows_[label], "attention_mass"), 1.0 + 1e-6);
  }
  if (rows_.count("StreamingLLM-64")) {
    EXPECT_LT(Num(rows_["StreamingLLM-64"], "kept_fraction"), 0.5);
  }
  // Low-rank caches keep every token and reconstruct it, on every layer (stories260K has 5).
  for (const char* label : {"TALE", "LoRC-progressive-0.5", "LoRC-uniform-0.5"}) {
    if (!rows_.count(label)) continue;
    SCOPED_TRACE(label);
    EXPECT_EQ(Num(rows_[label], "recon_layers"), 5.0);
    for (const char* col : {"key_recon_error", "value_recon_error"}) {
      EXPECT_GT(Num(rows_[label], col), 0.0);
      EXPECT_LT(Num(rows_[label], col), 1.0);
    }
  }
  // TailorKV answers per layer: every layer is dense (reconstructs) or sparse (selects), once the
  // prompt has classified it.
  for (const char* label : {"TailorKV-2", "TailorKV-1"}) {
    if (!rows_.count(label)) continue;
    SCOPED_TRACE(label);
    const double dense = Num(rows_[label], "recon_layers"), sparse = Num(rows_[label], "selection_layers");
    EXPECT_EQ(dense + sparse, 5.0);
    if (dense > 0) {
      EXPECT_GT(Num(rows_[label], "key_recon_error"), 0.0);
    }
    if (sparse > 0) {
      EXPECT_GT(Num(rows_[label], "topk_recall"), 0.3);
      EXPECT_LE(Num(rows_[label], "attention_mass"), 1.0 + 1e-6);
    }
  }
}

TEST(FidelityTable, UnregisteredFamiliesAreListedAsMissing) {
  const std::vector<FidelityMethod> methods = {{"full", "full", "full", false},
                                               {"Imaginary-3", "no-such-method", "no-such-method", false}};
  const std::vector<std::string> missing = MissingMethods(methods);
  ASSERT_EQ(missing.size(), 1u);
  EXPECT_EQ(missing[0], "Imaginary-3 (registry has no 'no-such-method')");
  const std::string md = RenderMarkdown("# t\n", {}, missing);
  EXPECT_NE(md.find("Missing methods"), std::string::npos);
  EXPECT_NE(md.find("- Imaginary-3"), std::string::npos);
}

}  // namespace
}  // namespace kvt::fidelity
