// `dseek data prepare` and `dseek data info` as a user runs them, on the fixture tokenizer and
// brown_sample.txt: exit codes, token counts checked against encoding the documents here, the
// shards readable by TokenLoader, output independent of --threads, .jsonl input, and bad input
// (missing files, malformed JSONL with file:line, damaged shards) as one-line errors, exit 2.
#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "cli/cli_kit.h"

using dseek_test::expect_one_line_error;
#include "dseek/io/token_shards.h"
#include "dseek/tokenizer/tokenizer.h"

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

using DataRun = dseek_test::CliResult;

DataRun run_dseek(const std::string& args) {
  return dseek_test::dseek_cli(args);
}

const std::string kTok = std::string(DSEEK_FIXTURES) + "/tokenizer_v3style/tokenizer.json";
const std::string kBrown = std::string(DSEEK_FIXTURES) + "/tokenizer_v3style/brown_sample.txt";

std::string temp_path(const std::string& name) {
  std::string d = testing::TempDir();
  d.append("/dseek_data_").append(std::to_string(getpid())).append("_").append(name);
  fs::remove_all(d);
  return d;
}

std::string write_file(const std::string& name, const std::string& text) {
  std::string p = temp_path(name);
  std::ofstream(p, std::ios::binary) << text;
  return p;
}

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

json info_json(const std::string& dir) {
  DataRun r = run_dseek("data info --json " + dir);
  EXPECT_EQ(r.code, 0) << r.err;
  return json::parse(r.out);
}

std::string prepare_args(const std::string& out, const std::string& inputs) {
  std::string a = "data prepare --tokenizer ";
  a.append(kTok).append(" --input ").append(inputs).append(" --output ").append(out);
  return a;
}

}  // namespace

TEST(DataCli, PrepareBrownSampleCountsMatchTheTokenizer) {
  // expected: every blank-line separated document encoded here, plus BOS and EOS
  dseek::Tokenizer tok = dseek::Tokenizer::load(kTok);
  ASSERT_GE(tok.bos_id(), 0);
  ASSERT_GE(tok.eos_id(), 0);
  std::string text = read_file(kBrown);
  uint64_t want_tokens = 0, want_docs = 0;
  for (size_t a = 0; a < text.size();) {
    size_t b = text.find("\n\n", a);
    if (b == std::string::npos) b = text.size();
    std::string doc = text.substr(a, b - a);
    while (!doc.empty() && doc.back() == '\n') doc.pop_back();
    if (!doc.empty()) {
      want_tokens += tok.encode(doc, false).size() + 2;
      want_docs++;
    }
    a = b + 2;
  }
  ASSERT_EQ(want_docs, 60u);

  std::string out = temp_path("brown");
  DataRun r = run_dseek(prepare_args(out, kBrown) + " --shard-tokens 50K --val-fraction 0.1");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("[data] train"), std::string::npos) << r.out;
  EXPECT_NE(r.err.find("[data] done"), std::string::npos) << r.err;  // progress, not a TTY

  json j = info_json(out);
  uint64_t train = j["splits"]["train"]["tokens"], val = j["splits"]["val"]["tokens"];
  EXPECT_EQ(train + val, want_tokens);
  EXPECT_GT(val, 0u);
  EXPECT_EQ(
      j["splits"]["train"]["docs"].get<uint64_t>() + j["splits"]["val"]["docs"].get<uint64_t>(),
      want_docs);
  EXPECT_EQ(j["splits"]["train"]["shards"].get<uint64_t>(), (train + 49999) / 50000);
  EXPECT_EQ(j["vocab_size"], 3000);
  double h = j["splits"]["train"]["unigram_entropy_bits"];
  EXPECT_GT(h, 5.0);
  EXPECT_LT(h, std::log2(3000.0));
  EXPECT_NEAR(j["splits"]["train"]["unigram_entropy_nats"].get<double>(), h * std::log(2.0), 1e-9);

  // meta.json: the tokenizer's sha256 as sha256sum prints it, the sources, the settings
  const json& meta = j["meta"];
  FILE* p = popen(("sha256sum " + kTok).c_str(), "r");
  std::array<char, 65> sha{};
  ASSERT_EQ(fread(sha.data(), 1, 64, p), 64u);
  pclose(p);
  EXPECT_EQ(meta["tokenizer"]["sha256"], std::string(sha.data()));
  EXPECT_EQ(meta["vocab_size"], 3000);
  EXPECT_EQ(meta["sources"][0]["docs"], 60);
  EXPECT_EQ(meta["val_fraction"], 0.1);
  EXPECT_EQ(meta["splits"]["train"]["tokens"], train);

  // the human form names the same numbers
  DataRun human = run_dseek("data info " + out);
  ASSERT_EQ(human.code, 0) << human.err;
  EXPECT_NE(human.out.find(std::to_string(train) + " tokens"), std::string::npos) << human.out;
  EXPECT_NE(human.out.find("bits/token"), std::string::npos) << human.out;

  // the loader reads it: a validation pass starts with BOS, ids below the vocabulary
  dseek::TokenLoader v(out, "val", dseek::TokenLoaderMode::TOKEN_LOADER_MODE_SEQUENTIAL);
  EXPECT_EQ(v.n_tokens(), val);
  std::vector<int32_t> x;
  ASSERT_EQ(v.next_batch(2, 64, &x), 2);
  EXPECT_EQ(x[0], tok.bos_id());
}

TEST(DataCli, OutputDoesNotDependOnThreadsAndOldShardsGo) {
  std::string a = temp_path("t1"), b = temp_path("t2");
  ASSERT_EQ(run_dseek(prepare_args(a, kBrown) + " --threads 1 --shard-tokens 20K -q").code, 0);
  ASSERT_EQ(run_dseek(prepare_args(b, kBrown) + " --threads 2 --shard-tokens 20K -q").code, 0);
  int shards = 0;
  for (int k = 0; fs::exists(dseek::token_dataset_shard_path(a, "train", k)); k++, shards++)
    EXPECT_EQ(read_file(dseek::token_dataset_shard_path(a, "train", k)),
              read_file(dseek::token_dataset_shard_path(b, "train", k)));
  EXPECT_GE(shards, 9);
  EXPECT_EQ(read_file(a + "/val_000.bin"), read_file(b + "/val_000.bin"));
  // again into the same folder with bigger shards: no stale train_009.bin etc. remain
  ASSERT_EQ(run_dseek(prepare_args(a, kBrown) + " --shard-tokens 1M -q").code, 0);
  EXPECT_FALSE(fs::exists(a + "/train_001.bin"));
  EXPECT_EQ(info_json(a)["splits"]["train"]["shards"], 1);
}

TEST(DataCli, JsonlAndDocPerFile) {
  std::string jl = write_file("ok.jsonl",
                              "{\"text\": \"The jury said it.\", \"id\": 1}\n"
                              "\n"
                              "{\"text\": \"In the beginning.\"}\n"
                              "{\"body\": \"other field\", \"text\": \"Third.\"}\n");
  std::string out = temp_path("jsonl");
  DataRun r = run_dseek(prepare_args(out, jl) + " --val-fraction 0 -q");
  ASSERT_EQ(r.code, 0) << r.err;
  json j = info_json(out);
  EXPECT_EQ(j["meta"]["sources"][0]["docs"], 3);
  EXPECT_EQ(j["splits"]["val"]["tokens"], 0);
  // another field
  r = run_dseek(prepare_args(out, jl) + " --jsonl-field body -q");
  expect_one_line_error(r, jl + ":1: no field \"body\"");
  // a text file as one document
  std::string txt = write_file("two_paras.txt", "First paragraph.\n\nSecond paragraph.\n");
  ASSERT_EQ(run_dseek(prepare_args(out, txt) + " -q --val-fraction 0").code, 0);
  EXPECT_EQ(info_json(out)["meta"]["sources"][0]["docs"], 2);
  ASSERT_EQ(run_dseek(prepare_args(out, txt) + " -q --doc-per-file --val-fraction 0").code, 0);
  EXPECT_EQ(info_json(out)["meta"]["sources"][0]["docs"], 1);
}

TEST(DataCli, MalformedJsonlNamesFileAndLine) {
  std::string bad = write_file("bad.jsonl",
                               "{\"text\": \"fine\"}\n"
                               "{\"text\": \"fine too\"}\n"
                               "{\"text\": \"broken\n");
  // into a folder with a good data set: the failed run leaves it as it was
  std::string out = temp_path("kept");
  ASSERT_EQ(run_dseek(prepare_args(out, kBrown) + " -q").code, 0);
  uint64_t before = info_json(out)["splits"]["train"]["tokens"];
  DataRun r = run_dseek(prepare_args(out, bad));
  expect_one_line_error(r, bad + ":3: invalid JSON");
  EXPECT_EQ(info_json(out)["splits"]["train"]["tokens"], before);
  EXPECT_FALSE(fs::exists(out + "/.prepare-tmp"));
  std::string num = write_file("num.jsonl", "{\"text\": 17}\n");
  r = run_dseek(prepare_args(temp_path("bad"), num));
  expect_one_line_error(r, num + ":1: field \"text\" is a number, expected a string");
}

TEST(DataCli, BadInputIsOneLineErrorExitTwo) {
  std::string out = temp_path("errs");
  expect_one_line_error(run_dseek(prepare_args(out, "/nonexistent/corpus.txt")),
                        "input /nonexistent/corpus.txt: no such file");
  expect_one_line_error(run_dseek("data prepare --tokenizer " + kTok + " --output " + out),
                        "no --input files given");
  expect_one_line_error(run_dseek("data prepare --tokenizer " + kTok + " --input " + kBrown),
                        "no --output folder given");
  expect_one_line_error(run_dseek("data prepare --tokenizer /nonexistent/tok.json --input " +
                                  kBrown + " --output " + out),
                        "tokenizer /nonexistent/tok.json: no such file");
  std::string garbage = write_file("garbage_tok.json", "{ not json");
  DataRun r =
      run_dseek("data prepare --tokenizer " + garbage + " --input " + kBrown + " --output " + out);
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_EQ(r.err.rfind("dseek: ", 0), 0u) << r.err;
  std::string blank = write_file("blank.txt", "\n\n   \n\n");
  expect_one_line_error(run_dseek(prepare_args(out, blank)), "the inputs hold no documents");
  expect_one_line_error(run_dseek(prepare_args(out, kBrown) + " --shard-tokens lots"),
                        "--shard-tokens lots");
  expect_one_line_error(run_dseek(prepare_args(out, kBrown) + " --val-fraction 1"),
                        "--val-fraction 1: must be in [0, 1)");
  EXPECT_EQ(run_dseek("data").code, 2);  // a sub-subcommand is required
  expect_one_line_error(run_dseek("data info /nonexistent/ds"), "no such data set folder");
}

TEST(DataCli, InfoRejectsDamagedShards) {
  std::string out = temp_path("damaged");
  ASSERT_EQ(run_dseek(prepare_args(out, kBrown) + " -q").code, 0);
  std::string shard = out + "/train_000.bin";
  fs::resize_file(shard, fs::file_size(shard) - 3);
  expect_one_line_error(run_dseek("data info " + out), "re-run `dseek data prepare`");
  // a shard replaced by one of another size: meta.json and the shards disagree
  dseek::token_shard_write(shard, {0, 1, 2}, 3000);
  expect_one_line_error(run_dseek("data info " + out), "meta.json says");
}
