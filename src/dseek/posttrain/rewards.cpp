// R1-Zero rule-based rewards: accuracy (last <answer> through task_check), format (exact
// <think>..</think> <answer>..</answer> shape), language (script share of letters in <think>).
//   total = w_acc * accuracy + w_fmt * format + w_lang * language
// Pure string work; no tokenizer, no model.
#include "dseek/posttrain/rewards.h"

#include <cstdint>

namespace dseek {

// ------------------------------------------------------------------------------------------------
// helpers

namespace {

const std::string kThinkOpen = "<think>";
const std::string kThinkClose = "</think>";
const std::string kAnswerOpen = "<answer>";
const std::string kAnswerClose = "</answer>";

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

bool has_any_tag(const std::string& s) {
  for (const std::string* t : {&kThinkOpen, &kThinkClose, &kAnswerOpen, &kAnswerClose})
    if (s.find(*t) != std::string::npos) return true;
  return false;
}

bool starts_with_at(const std::string& s, size_t pos, const std::string& t) {
  return s.compare(pos, t.size(), t) == 0;
}

// Decode one UTF-8 code point at s[i]; advances i. Returns -1 for an invalid sequence (skips 1).
int32_t utf8_next(const std::string& s, size_t& i) {
  unsigned char c = s[i];
  int len = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
  if (len == 0 || i + len > s.size()) {
    ++i;
    return -1;
  }
  int32_t cp = len == 1 ? c : len == 2 ? (c & 0x1F) : len == 3 ? (c & 0x0F) : (c & 0x07);
  for (int k = 1; k < len; ++k) {
    unsigned char cc = s[i + k];
    if ((cc >> 6) != 0x2) {
      ++i;
      return -1;
    }
    cp = (cp << 6) | (cc & 0x3F);
  }
  i += len;
  return cp;
}

// Script of a letter; false if the code point is not a letter of a known script.
bool script_of(int32_t cp, Script* out) {
  auto in = [cp](int32_t lo, int32_t hi) { return cp >= lo && cp <= hi; };
  if (in('A', 'Z') || in('a', 'z') || (in(0xC0, 0x24F) && cp != 0xD7 && cp != 0xF7) ||
      in(0x1E00, 0x1EFF))
    *out = Script::SCRIPT_LATIN;
  else if (in(0x3400, 0x4DBF) || in(0x4E00, 0x9FFF) || in(0xF900, 0xFAFF) || in(0x20000, 0x3134F))
    *out = Script::SCRIPT_HAN;
  else if (in(0x3040, 0x30FF) && cp != 0x30FB)
    *out = Script::SCRIPT_KANA;
  else if (in(0x1100, 0x11FF) || in(0x3130, 0x318F) || in(0xAC00, 0xD7AF))
    *out = Script::SCRIPT_HANGUL;
  else if (in(0x400, 0x52F))
    *out = Script::SCRIPT_CYRILLIC;
  else if (in(0x370, 0x3FF))
    *out = Script::SCRIPT_GREEK;
  else if (in(0x600, 0x6FF))
    *out = Script::SCRIPT_ARABIC;
  else
    return false;
  return true;
}

}  // namespace

// ------------------------------------------------------------------------------------------------
// public entry points

bool reward_answer_extract(const std::string& completion, std::string* out) {
  size_t open = completion.rfind(kAnswerOpen);
  if (open == std::string::npos) return false;
  size_t start = open + kAnswerOpen.size();
  size_t close = completion.find(kAnswerClose, start);
  if (close == std::string::npos) return false;
  *out = completion.substr(start, close - start);
  return true;
}

float reward_accuracy(const Problem& p, const std::string& completion) {
  std::string ans;
  if (!reward_answer_extract(completion, &ans)) return 0.0f;
  return task_check(p, ans) ? 1.0f : 0.0f;
}

float reward_format(const std::string& completion) {
  size_t b = 0, e = completion.size();
  while (b < e && is_space(completion[b])) ++b;
  while (e > b && is_space(completion[e - 1])) --e;
  const std::string s = completion.substr(b, e - b);
  if (!starts_with_at(s, 0, kThinkOpen)) return 0.0f;
  size_t think_end = s.find(kThinkClose, kThinkOpen.size());
  if (think_end == std::string::npos) return 0.0f;
  std::string think = s.substr(kThinkOpen.size(), think_end - kThinkOpen.size());
  size_t i = think_end + kThinkClose.size();
  while (i < s.size() && is_space(s[i])) ++i;
  if (!starts_with_at(s, i, kAnswerOpen)) return 0.0f;
  size_t ans_begin = i + kAnswerOpen.size();
  if (s.size() < ans_begin + kAnswerClose.size()) return 0.0f;
  size_t ans_end = s.size() - kAnswerClose.size();
  if (!starts_with_at(s, ans_end, kAnswerClose)) return 0.0f;
  std::string answer = s.substr(ans_begin, ans_end - ans_begin);
  if (has_any_tag(think) || has_any_tag(answer)) return 0.0f;
  return 1.0f;
}

float reward_language(const std::string& completion, Script target) {
  size_t open = completion.find(kThinkOpen);
  if (open == std::string::npos) return 0.0f;
  size_t start = open + kThinkOpen.size();
  size_t close = completion.find(kThinkClose, start);
  size_t end = close == std::string::npos ? completion.size() : close;
  const std::string think = completion.substr(start, end - start);
  int64_t letters = 0, hits = 0;
  for (size_t i = 0; i < think.size();) {
    int32_t cp = utf8_next(think, i);
    Script sc;
    if (cp < 0 || !script_of(cp, &sc)) continue;
    ++letters;
    if (sc == target) ++hits;
  }
  if (letters == 0) return 0.0f;
  return static_cast<float>(static_cast<double>(hits) / static_cast<double>(letters));
}

RewardBreakdown reward_total(const Problem& p, const std::string& completion,
                             const RewardWeights& w) {
  RewardBreakdown r;
  r.accuracy = reward_accuracy(p, completion);
  r.format = reward_format(completion);
  r.language = w.language != 0.0f ? reward_language(completion, w.language_target) : 0.0f;
  r.total = w.accuracy * r.accuracy + w.format * r.format + w.language * r.language;
  return r;
}

}  // namespace dseek
