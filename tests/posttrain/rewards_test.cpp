// R1-Zero rule-based rewards: accuracy on the last <answer>, the strict format reward, the
// language-consistency share by script, and the weighted total.
#include <gtest/gtest.h>

#include "dseek/posttrain/rewards.h"

using dseek::Problem;
using dseek::reward_accuracy;
using dseek::reward_format;
using dseek::reward_language;
using dseek::Script;

namespace {
const Problem kAdd{"", "42", "add"};
}  // namespace

TEST(Rewards, Accuracy) {
  EXPECT_EQ(reward_accuracy(kAdd, "<think>6*7</think><answer>42</answer>"), 1.0f);
  EXPECT_EQ(reward_accuracy(kAdd, "<think>6*7</think><answer> 42 </answer>"), 1.0f);
  EXPECT_EQ(reward_accuracy(kAdd, "<think>6*7</think><answer>41</answer>"), 0.0f);
  EXPECT_EQ(reward_accuracy(kAdd, "<think>42</think> 42"), 0.0f);  // missing answer
  EXPECT_EQ(reward_accuracy(kAdd, "<answer>42"), 0.0f);            // unterminated
  EXPECT_EQ(reward_accuracy(kAdd, "42</answer>"), 0.0f);
  // right answer in wrong format still earns accuracy
  EXPECT_EQ(reward_accuracy(kAdd, "blah <answer>42</answer> trailing"), 1.0f);
  // repeated answer tags: the last counts
  EXPECT_EQ(reward_accuracy(kAdd, "<answer>42</answer><answer>7</answer>"), 0.0f);
  EXPECT_EQ(reward_accuracy(kAdd, "<answer>7</answer><answer>42</answer>"), 1.0f);
  Problem boxed{"", "{x}", "boxed"};
  EXPECT_EQ(reward_accuracy(boxed, "<think></think><answer>\\boxed{{x}}</answer>"), 1.0f);
  EXPECT_EQ(reward_accuracy(boxed, "<think></think><answer>\\boxed{{x}</answer>"), 0.0f);
}

TEST(Rewards, Format) {
  EXPECT_EQ(reward_format("<think>a</think><answer>b</answer>"), 1.0f);
  EXPECT_EQ(reward_format("  \n<think>a\nb</think>\n\n <answer> b </answer>\n"), 1.0f);
  EXPECT_EQ(reward_format("<think></think><answer></answer>"), 1.0f);     // empty think is allowed
  EXPECT_EQ(reward_format("<think>a</think>"), 0.0f);                     // missing answer
  EXPECT_EQ(reward_format("<answer>b</answer>"), 0.0f);                   // missing think
  EXPECT_EQ(reward_format("<think>a<answer>b</answer>"), 0.0f);           // unclosed think
  EXPECT_EQ(reward_format("<think>a</think><answer>b"), 0.0f);            // unclosed answer
  EXPECT_EQ(reward_format("x<think>a</think><answer>b</answer>"), 0.0f);  // text before
  EXPECT_EQ(reward_format("<think>a</think><answer>b</answer>x"), 0.0f);  // text after
  EXPECT_EQ(reward_format("<think>a</think>x<answer>b</answer>"), 0.0f);  // text between
  EXPECT_EQ(reward_format("<think>a<think>b</think></think><answer>c</answer>"), 0.0f);
  EXPECT_EQ(reward_format("<think>a</think><answer>b<answer>c</answer></answer>"), 0.0f);
  EXPECT_EQ(reward_format("<think>a</think><answer>b</answer><answer>c</answer>"), 0.0f);
  EXPECT_EQ(reward_format("<think>a</think><think>b</think><answer>c</answer>"), 0.0f);
  EXPECT_EQ(reward_format("<think>a <answer>x</answer></think><answer>c</answer>"), 0.0f);
  EXPECT_EQ(reward_format("<think>a</think><answer>b</think></answer>"), 0.0f);
  EXPECT_EQ(reward_format("<think>a</think><answer></answer</answer>"), 1.0f);  // not a tag
  EXPECT_EQ(reward_format(""), 0.0f);
  EXPECT_EQ(reward_format("<think></answer>"), 0.0f);
  // wrong answer in the right format: format 1, accuracy 0
  const std::string c = "<think>6*7=41</think> <answer>41</answer>";
  EXPECT_EQ(reward_format(c), 1.0f);
  EXPECT_EQ(reward_accuracy(kAdd, c), 0.0f);
}

TEST(Rewards, Language) {
  EXPECT_FLOAT_EQ(reward_language("<think>abc def</think><answer>1</answer>", Script::SCRIPT_LATIN),
                  1.0f);
  EXPECT_FLOAT_EQ(reward_language("<think>abc def</think>", Script::SCRIPT_HAN), 0.0f);
  // 4 Latin letters, 2 Han characters; digits, spaces and punctuation do not count
  const std::string mixed =
      "<think>ab 12, cd! \xe4\xb8\xad\xe6\x96\x87 ?</think><answer>x</answer>";
  EXPECT_FLOAT_EQ(reward_language(mixed, Script::SCRIPT_LATIN), 4.0f / 6.0f);
  EXPECT_FLOAT_EQ(reward_language(mixed, Script::SCRIPT_HAN), 2.0f / 6.0f);
  // answer content is ignored: only <think> counts
  EXPECT_FLOAT_EQ(
      reward_language("<think>\xe4\xb8\xad</think><answer>abc</answer>", Script::SCRIPT_HAN), 1.0f);
  // accented Latin (é), Cyrillic (д), Greek (λ), Hangul (한), Hiragana (あ), emoji (not a letter)
  EXPECT_FLOAT_EQ(reward_language("<think>\xc3\xa9\xd0\xb4\xce\xbb\xed\x95\x9c\xe3\x81\x82"
                                  "\xf0\x9f\x98\x80</think>",
                                  Script::SCRIPT_LATIN),
                  1.0f / 5.0f);
  EXPECT_FLOAT_EQ(reward_language("<think>\xd0\xb4\xd0\xb0 x</think>", Script::SCRIPT_CYRILLIC),
                  2.0f / 3.0f);
  EXPECT_FLOAT_EQ(reward_language("<think>\xed\x95\x9c</think>", Script::SCRIPT_HANGUL), 1.0f);
  EXPECT_FLOAT_EQ(reward_language("<think>\xe3\x81\x82</think>", Script::SCRIPT_KANA), 1.0f);
  // invalid UTF-8 bytes are skipped
  EXPECT_FLOAT_EQ(reward_language("<think>a\xff\xc3</think>", Script::SCRIPT_LATIN), 1.0f);
  // no letters, empty think, no think
  EXPECT_EQ(reward_language("<think>123 !?</think>", Script::SCRIPT_LATIN), 0.0f);
  EXPECT_EQ(reward_language("<think></think><answer>a</answer>", Script::SCRIPT_LATIN), 0.0f);
  EXPECT_EQ(reward_language("abc <answer>a</answer>", Script::SCRIPT_LATIN), 0.0f);
  // unterminated think runs to the end
  EXPECT_FLOAT_EQ(reward_language("<think>ab", Script::SCRIPT_LATIN), 1.0f);
}

TEST(Rewards, Total) {
  const std::string good = "<think>6*7</think><answer>42</answer>";
  auto r = dseek::reward_total(kAdd, good);
  EXPECT_EQ(r.accuracy, 1.0f);
  EXPECT_EQ(r.format, 1.0f);
  EXPECT_EQ(r.language, 0.0f);  // weight 0: not computed
  EXPECT_FLOAT_EQ(r.total, 1.5f);
  auto bad_fmt = dseek::reward_total(kAdd, "ok <answer>42</answer>");
  EXPECT_FLOAT_EQ(bad_fmt.total, 1.0f);
  dseek::RewardWeights w{
      .accuracy = 2.0f, .format = 0.25f, .language = 1.0f, .language_target = Script::SCRIPT_LATIN};
  auto m =
      dseek::reward_total(kAdd, "<think>ab\xe4\xb8\xad\xe6\x96\x87</think><answer>41</answer>", w);
  EXPECT_EQ(m.accuracy, 0.0f);
  EXPECT_EQ(m.format, 1.0f);
  EXPECT_FLOAT_EQ(m.language, 0.5f);
  EXPECT_FLOAT_EQ(m.total, 0.25f + 0.5f);
}
