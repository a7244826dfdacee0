// Tests for train/metrics_log: one flushed JSON line per record (readable while the writer is
// open), create() empties an old log, resume(S) drops records after step S and a torn last
// line, keeps earlier lines byte for byte and appends after them, and the reader's errors.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <nlohmann/json.hpp>

#include "dseek/core/error.h"
#include "dseek/train/metrics_log.h"

namespace dseek {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

// ---------------------------------------------------------------------------------------------
// helpers

struct TempDir {  // a fresh directory, removed at scope exit
  fs::path path;
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "dseek_metrics_XXXXXX").string();
    if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
    path = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

std::string slurp(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

void spit(const fs::path& p, const std::string& s) {
  std::ofstream f(p, std::ios::binary);
  f << s;
}

// ---------------------------------------------------------------------------------------------
// tests

TEST(MetricsLog, WritesOneFlushedLinePerRecord) {
  TempDir tmp;
  const fs::path run = tmp.path / "run";  // created by create()
  MetricsLog log = MetricsLog::create(run.string());
  EXPECT_EQ(log.path(), (run / "metrics.jsonl").string());
  log.write({{"step", 1}, {"loss", 10.5}, {"lr", 1e-4}, {"maxvio", {0.5, 0.25}}});
  // flushed: visible before the writer is closed
  EXPECT_EQ(slurp(run / "metrics.jsonl"),
            "{\"loss\":10.5,\"lr\":0.0001,\"maxvio\":[0.5,0.25],\"step\":1}\n");
  log.write({{"step", 2}, {"loss", NAN}, {"val_loss", 9.0}});
  auto recs = metrics_log_read(log.path());
  ASSERT_EQ(recs.size(), 2u);
  EXPECT_EQ(recs[1]["step"], 2);
  EXPECT_TRUE(recs[1]["loss"].is_null());  // non-finite -> null
  EXPECT_EQ(recs[1]["val_loss"], 9.0);
}

TEST(MetricsLog, RejectsRecordsWithoutStep) {
  TempDir tmp;
  MetricsLog log = MetricsLog::create(tmp.path.string());
  EXPECT_THROW(log.write({{"loss", 1.0}}), Error);
  EXPECT_THROW(log.write({{"step", -1}}), Error);
  EXPECT_THROW(log.write({{"step", 1.5}}), Error);
  EXPECT_THROW(log.write(json::array({1, 2})), Error);
  EXPECT_EQ(slurp(tmp.path / "metrics.jsonl"), "");
}

TEST(MetricsLog, CreateEmptiesAnOldLog) {
  TempDir tmp;
  spit(tmp.path / "metrics.jsonl", "{\"step\":1}\n{\"step\":2}\n");
  MetricsLog log = MetricsLog::create(tmp.path.string());
  log.write({{"step", 1}});
  EXPECT_EQ(metrics_log_read(log.path()).size(), 1u);
}

TEST(MetricsLog, ResumeDropsLaterStepsAndTornLineThenAppends) {
  TempDir tmp;
  const fs::path f = tmp.path / "metrics.jsonl";
  // steps 1..5 as written before a crash, a val record at step 4, then a torn record
  spit(f,
       "{\"step\":1,\"loss\":  5.0}\n{\"step\":2,\"loss\":4.0}\n{\"step\":3,\"loss\":3.5}\n"
       "{\"step\":4,\"loss\":3.0}\n{\"step\":4,\"val_loss\":3.2}\n{\"step\":5,\"loss\":2.9}\n"
       "{\"step\":6,\"lo");
  MetricsLog log = MetricsLog::resume(tmp.path.string(), 4);
  EXPECT_EQ(log.records_kept(), 5);
  EXPECT_FALSE(fs::exists(f.string() + ".tmp"));
  // kept lines byte for byte (note the two spaces on line 1)
  EXPECT_EQ(slurp(f),
            "{\"step\":1,\"loss\":  5.0}\n{\"step\":2,\"loss\":4.0}\n{\"step\":3,\"loss\":3.5}\n"
            "{\"step\":4,\"loss\":3.0}\n{\"step\":4,\"val_loss\":3.2}\n");
  log.write({{"step", 5}, {"loss", 2.8}});
  auto recs = metrics_log_read(f.string());
  ASSERT_EQ(recs.size(), 6u);
  EXPECT_EQ(recs.back()["loss"], 2.8);
}

TEST(MetricsLog, ResumeKeepsAFullLastLineWithoutNewline) {
  TempDir tmp;
  const fs::path f = tmp.path / "metrics.jsonl";
  spit(f, "{\"step\":1}\n{\"step\":2}");
  MetricsLog log = MetricsLog::resume(tmp.path.string(), 10);
  EXPECT_EQ(log.records_kept(), 2);
  log.write({{"step", 3}});
  EXPECT_EQ(slurp(f), "{\"step\":1}\n{\"step\":2}\n{\"step\":3}\n");
}

TEST(MetricsLog, ResumeWithoutALogStartsEmpty) {
  TempDir tmp;
  MetricsLog log = MetricsLog::resume((tmp.path / "new").string(), 100);
  EXPECT_EQ(log.records_kept(), 0);
  log.write({{"step", 101}});
  EXPECT_EQ(metrics_log_read(log.path()).size(), 1u);
}

TEST(MetricsLog, MalformedMiddleLineIsAnErrorNamingTheLine) {
  TempDir tmp;
  const fs::path f = tmp.path / "metrics.jsonl";
  spit(f, "{\"step\":1}\n{oops\n{\"step\":3}\n");
  try {
    MetricsLog::resume(tmp.path.string(), 2);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("metrics.jsonl:2: not valid JSON"), std::string::npos)
        << e.what();
  }
  EXPECT_EQ(slurp(f), "{\"step\":1}\n{oops\n{\"step\":3}\n");  // left as it was
  spit(f, "{\"step\":1}\n{\"loss\":2}\n");
  try {
    metrics_log_read(f.string());
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("metrics.jsonl:2: a record must be"), std::string::npos)
        << e.what();
  }
  EXPECT_THROW(metrics_log_read((tmp.path / "absent.jsonl").string()), Error);
}

TEST(MetricsLog, MoveKeepsTheFileOpen) {
  TempDir tmp;
  MetricsLog a = MetricsLog::create(tmp.path.string());
  MetricsLog b = std::move(a);
  b.write({{"step", 1}});
  EXPECT_EQ(metrics_log_read(b.path()).size(), 1u);
}

}  // namespace
}  // namespace dseek
