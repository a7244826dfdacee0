// SFT data: the loss mask covers exactly the assistant turns (content + the EOS that closes
// them) and nothing of the user/system text or the <｜Assistant｜> marker; ids equal the whole
// rendered conversation encoded at once; templates that rewrite past turns are refused; batching
// shifts targets by one and pads with ignored targets; bad JSONL names file:line.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "dseek/core/error.h"
#include "dseek/posttrain/seq_batch.h"
#include "dseek/posttrain/sft_data.h"

using namespace dseek;

namespace {

const Tokenizer& tok() {
  static Tokenizer t = Tokenizer::load(DSEEK_FIXTURES "/tokenizer_v3style/tokenizer.json");
  return t;
}

ChatMessage msg(const std::string& role, const std::string& content) {
  return {.role = role, .content = content, .tool_calls = std::nullopt};
}

TEST(SftData, MaskCoversExactlyTheAssistantTurns) {
  std::vector<ChatMessage> m = {msg("system", "Be brief."), msg("user", "What is 2 + 3?"),
                                msg("assistant", "<think>2 + 3 = 5</think> <answer>5</answer>"),
                                msg("user", "And 4 + 4?"),
                                msg("assistant", "<think>4 + 4 = 8</think> <answer>8</answer>")};
  SftExample e = sft_encode(m, tok(), ChatTemplate::CHAT_DEEPSEEK_V3);
  // the pieces concatenated are the whole conversation's tokens
  EXPECT_EQ(e.ids, tok().encode(chat_render(ChatTemplate::CHAT_DEEPSEEK_V3, m, false), true));
  // trained text = the two assistant contents, each followed by EOS
  std::vector<int32_t> trained;
  for (size_t i = 0; i < e.ids.size(); i++)
    if (e.mask[i]) trained.push_back(e.ids[i]);
  std::vector<int32_t> want = tok().encode(*m[2].content, true);
  want.push_back(tok().eos_id());
  std::vector<int32_t> second = tok().encode(*m[4].content, true);
  want.insert(want.end(), second.begin(), second.end());
  want.push_back(tok().eos_id());
  EXPECT_EQ(trained, want);
  EXPECT_EQ(e.trained(), (int64_t)want.size());
  EXPECT_EQ(e.mask[0], 0);
}

TEST(SftData, R1TemplateRewritingReasoningIsRefused) {
  std::vector<ChatMessage> m = {msg("user", "hi"),
                                msg("assistant", "<think>x</think> <answer>1</answer>")};
  try {
    sft_encode(m, tok(), ChatTemplate::CHAT_DEEPSEEK_R1);
    FAIL() << "expected an error";
  } catch (const Error& err) {
    EXPECT_NE(std::string(err.what()).find("deepseek-v3"), std::string::npos) << err.what();
  }
}

TEST(SftData, JsonlFormsAndErrors) {
  const std::string dir = ::testing::TempDir() + "/sft_data_test";
  std::filesystem::create_directories(dir);
  {
    std::ofstream f(dir + "/ok.jsonl");
    f << sft_jsonl_line("What is 1 + 1?", "<think>1 + 1 = 2</think> <answer>2</answer>") << "\n\n"
      << R"({"prompt": "What is 1 + 1?", "response": "<think>1 + 1 = 2</think> <answer>2</answer>"})"
      << "\n";
  }
  std::vector<SftExample> ex =
      sft_load_jsonl(dir + "/ok.jsonl", tok(), ChatTemplate::CHAT_DEEPSEEK_V3);
  ASSERT_EQ(ex.size(), 2u);
  EXPECT_EQ(ex[0].ids, ex[1].ids);
  EXPECT_EQ(ex[0].mask, ex[1].mask);
  {
    std::ofstream f(dir + "/bad.jsonl");
    f << sft_jsonl_line("a", "b") << "\n"
      << R"({"prompt": 3})"
      << "\n";
  }
  try {
    sft_load_jsonl(dir + "/bad.jsonl", tok(), ChatTemplate::CHAT_DEEPSEEK_V3);
    FAIL();
  } catch (const Error& err) {
    EXPECT_NE(std::string(err.what()).find("bad.jsonl:2"), std::string::npos) << err.what();
  }
  {
    std::ofstream f(dir + "/nojson.jsonl");
    f << "{not json\n";
  }
  EXPECT_THROW(sft_load_jsonl(dir + "/nojson.jsonl", tok(), ChatTemplate::CHAT_DEEPSEEK_V3), Error);
  EXPECT_THROW(sft_load_jsonl(dir + "/missing.jsonl", tok(), ChatTemplate::CHAT_DEEPSEEK_V3),
               Error);
}

TEST(SeqBatch, ShiftsTargetsAndPads) {
  SftExample a{.ids = {5, 6, 7, 8}, .mask = {0, 0, 1, 1}};
  SftExample b{.ids = {9, 10}, .mask = {0, 1}};
  SeqBatch s = seq_batch({&a, &b}, /*pad=*/1, 100);
  ASSERT_EQ(s.B, 2);
  ASSERT_EQ(s.T, 3);
  EXPECT_EQ(s.inputs, (std::vector<int32_t>{5, 6, 7, 9, 1, 1}));
  EXPECT_EQ(s.targets, (std::vector<int32_t>{-1, 7, 8, 10, -1, -1}));
  EXPECT_EQ(s.n_targets, 3);
  SeqBatch cut = seq_batch({&a}, 1, 3);  // first 3 tokens only
  EXPECT_EQ(cut.inputs, (std::vector<int32_t>{5, 6}));
  EXPECT_EQ(cut.targets, (std::vector<int32_t>{-1, 7}));
}

}  // namespace
