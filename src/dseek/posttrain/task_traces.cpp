#include "dseek/posttrain/task_traces.h"

#include <algorithm>
#include <sstream>
#include <vector>

#include <fmt/format.h>

namespace dseek {

namespace {
// "Compute A op B. ..." -> "A op B"
std::string arith_expr(const Problem& p) {
  const std::string key = "Compute ";
  size_t b = p.question.find(key);
  if (b == std::string::npos) return "";
  b += key.size();
  const size_t e = p.question.find('.', b);
  return p.question.substr(b, e == std::string::npos ? std::string::npos : e - b);
}
}  // namespace

// Column addition, least significant digit first: "58 + 59: 8 + 9 = 17, 5 + 5 + 1 = 11, so 117".
// The trace first copies the operands, so every column step reads its digits at the same short
// distance whatever surrounds the trace (pretraining text or a chat turn); each step is then a
// one-digit fact plus the carry, which a small model learns quickly, and the answer is read off
// the steps. Falls back to "" when the expression is not two naturals.
std::string add_columns(const std::string& e, const std::string& answer) {
  const size_t plus = e.find(" + ");
  if (plus == std::string::npos) return "";
  const std::string a = e.substr(0, plus), b = e.substr(plus + 3);
  auto digits = [](const std::string& x) {
    return !x.empty() && x.find_first_not_of("0123456789") == std::string::npos;
  };
  if (!digits(a) || !digits(b)) return "";
  std::string out = e + ": ";
  int carry = 0;
  const size_t n = std::max(a.size(), b.size());
  for (size_t i = 0; i < n; i++) {
    const int da = i < a.size() ? a[a.size() - 1 - i] - '0' : 0;
    const int db = i < b.size() ? b[b.size() - 1 - i] - '0' : 0;
    const int s = da + db + carry;
    out += carry ? fmt::format("{} + {} + {} = {}, ", da, db, carry, s)
                 : fmt::format("{} + {} = {}, ", da, db, s);
    carry = s / 10;
  }
  return out + "so " + answer;
}

std::string task_trace(const Problem& p) {
  if (p.task == "add") {
    const std::string e = arith_expr(p);
    const std::string cols = add_columns(e, p.answer);
    return !cols.empty() ? cols : e.empty() ? "" : e + " = " + p.answer;
  }
  if (p.task == "sub" || p.task == "mul") {
    const std::string e = arith_expr(p);
    return e.empty() ? "" : e + " = " + p.answer;
  }
  if (p.task == "sort") {
    std::string s = p.answer;
    std::string out;
    std::stringstream ss(s);
    std::string item;
    while (std::getline(ss, item, ',')) {
      item.erase(0, item.find_first_not_of(' '));
      if (!out.empty()) out += " < ";
      out += item;
    }
    return out;
  }
  if (p.task == "countdown") {
    // the target is the last number of "Using the numbers [...], create an equation that equals T."
    const std::string key = "equals ";
    size_t b = p.question.find(key);
    std::string target;
    if (b != std::string::npos) {
      b += key.size();
      while (b < p.question.size() && isdigit((unsigned char)p.question[b]))
        target += p.question[b++];
    }
    return target.empty() ? p.answer : p.answer + " = " + target;
  }
  return "";
}

std::string task_completion(const Problem& p) {
  return fmt::format("<think>{}</think> <answer>{}</answer>", task_trace(p), p.answer);
}

std::string task_text(const Problem& p) {
  const std::string t = task_trace(p);
  if (t.empty()) return fmt::format("{} The answer is {}.", p.question, p.answer);
  return fmt::format("{} {}. The answer is {}.", p.question, t, p.answer);
}

}  // namespace dseek
