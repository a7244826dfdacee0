// R1-Zero rule-based rewards (DeepSeek-R1 paper, sec. 2.2.2 and 2.3.2): accuracy, format and
// language consistency, each its own function, combined linearly:
//   total = w_acc * accuracy + w_fmt * format + w_lang * language
// No learned reward model here; checkers live in tasks.h.
#pragma once

#include <string>

#include "dseek/posttrain/tasks.h"

namespace dseek {

// Scripts for the language-consistency reward, by Unicode code point ranges (letters only):
//   LATIN:    A-Z a-z, U+00C0-U+024F (less U+00D7, U+00F7), U+1E00-U+1EFF
//   HAN:      U+3400-U+4DBF, U+4E00-U+9FFF, U+F900-U+FAFF, U+20000-U+3134F
//   KANA:     U+3040-U+30FF (hiragana and katakana, less U+30FB)
//   HANGUL:   U+1100-U+11FF, U+3130-U+318F, U+AC00-U+D7AF
//   CYRILLIC: U+0400-U+052F
//   GREEK:    U+0370-U+03FF
//   ARABIC:   U+0600-U+06FF
// A "letter" is a code point in any of these ranges; digits, punctuation, spaces, emoji and
// anything else are not counted at all.
enum class Script {
  SCRIPT_LATIN,
  SCRIPT_HAN,
  SCRIPT_KANA,
  SCRIPT_HANGUL,
  SCRIPT_CYRILLIC,
  SCRIPT_GREEK,
  SCRIPT_ARABIC
};

// Content of the LAST <answer>...</answer> (the first </answer> after the last <answer>);
// false if there is none.
bool reward_answer_extract(const std::string& completion, std::string* out);

// 1 iff the LAST <answer> block exists and task_check(p, its content) holds; else 0.
float reward_accuracy(const Problem& p, const std::string& completion);

// 1 iff trim(completion) == "<think>" A "</think>" ws "<answer>" B "</answer>" where ws is
// optional whitespace and neither A nor B contains any of <think>, </think>, <answer>,
// </answer>. A and B may be empty (the format reward checks structure only). Else 0.
float reward_format(const std::string& completion);

// Share of the letters inside the first <think>...</think> that belong to `target`
// (an unterminated <think> runs to the end of the text). 0 if there is no <think> or no letters.
// Invalid UTF-8 bytes are skipped.
float reward_language(const std::string& completion, Script target);

struct RewardWeights {
  float accuracy = 1.0f;
  float format = 0.5f;
  float language = 0.0f;
  Script language_target = Script::SCRIPT_LATIN;
};

struct RewardBreakdown {
  float accuracy = 0.0f;  // in {0, 1}
  float format = 0.0f;    // in {0, 1}
  float language = 0.0f;  // in [0, 1]; 0 (not computed) when weights.language == 0
  float total = 0.0f;     // weighted sum
};

RewardBreakdown reward_total(const Problem& p, const std::string& completion,
                             const RewardWeights& w = {});

}  // namespace dseek
