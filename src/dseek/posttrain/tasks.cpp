// Verifiable tasks: generators (splitmix64, portable: no std distributions), the split hash,
// exact checkers (Countdown: recursive-descent parser over exact rationals), and the JSONL loader.
// Formulas and task list: see tasks.h.
#include "dseek/posttrain/tasks.h"

#include <algorithm>  // std::sort, std::swap
#include <cmath>      // std::fabs, std::isfinite
#include <cstdlib>    // std::strtod
#include <fstream>    // std::ifstream

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "dseek/core/error.h"
#include "dseek/core/rng.h"

namespace dseek {

// ------------------------------------------------------------------------------------------------
// helpers

namespace {

struct TaskRng {
  uint64_t state;
  uint64_t next() { return splitmix64_next(&state); }
  int64_t uniform(int64_t lo, int64_t hi) {  // inclusive
    return lo + static_cast<int64_t>(next() % static_cast<uint64_t>(hi - lo + 1));
  }
};

uint64_t fnv1a64(const std::string& s) {
  uint64_t h = 0xCBF29CE484222325ULL;
  for (unsigned char c : s) {
    h ^= c;
    h *= 0x100000001B3ULL;
  }
  return h;
}

Split split_of_key(const std::string& key) {
  return fnv1a64(key) % 10 == 0 ? Split::SPLIT_TEST : Split::SPLIT_TRAIN;
}

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

std::string trim(const std::string& s) {
  size_t b = 0, e = s.size();
  while (b < e && is_space(s[b])) ++b;
  while (e > b && is_space(s[e - 1])) --e;
  return s.substr(b, e - b);
}

// Strict integer: optional sign, then digits; no other characters. False on overflow.
bool parse_int(const std::string& text, int64_t* out) {
  std::string s = trim(text);
  size_t i = 0;
  bool neg = false;
  if (i < s.size() && (s[i] == '+' || s[i] == '-')) neg = s[i++] == '-';
  if (i == s.size()) return false;
  __int128 v = 0;
  for (; i < s.size(); ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
    v = v * 10 + (s[i] - '0');
    if (v > static_cast<__int128>(INT64_MAX) + 1) return false;
  }
  if (neg) v = -v;
  if (v > INT64_MAX || v < INT64_MIN) return false;
  *out = static_cast<int64_t>(v);
  return true;
}

// "1, -2, 3" or "[1, -2, 3]" -> integers. Empty list is "" or "[]".
bool parse_int_list(const std::string& text, std::vector<int64_t>* out) {
  std::string s = trim(text);
  if (s.size() >= 2 && s.front() == '[' && s.back() == ']') s = trim(s.substr(1, s.size() - 2));
  out->clear();
  if (s.empty()) return true;
  size_t start = 0;
  while (true) {
    size_t comma = s.find(',', start);
    std::string item =
        s.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    int64_t v;
    if (!parse_int(item, &v)) return false;
    out->push_back(v);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return true;
}

std::string join_ints(const std::vector<int64_t>& v) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) {
    if (i) s.append(", ");
    s.append(std::to_string(v[i]));
  }
  return s;
}

// ------------------------------------------------------------------------------------------------
// exact rationals and the Countdown expression parser

struct Rational {
  __int128 num = 0;
  __int128 den = 1;  // > 0, gcd(num, den) == 1
};

__int128 abs128(__int128 x) {
  return x < 0 ? -x : x;
}

__int128 gcd128(__int128 a, __int128 b) {
  a = abs128(a);
  b = abs128(b);
  while (b != 0) {
    __int128 t = a % b;
    a = b;
    b = t;
  }
  return a;
}

// Normalise; false when a part leaves int64 range (treated as a failed check, never UB).
bool rational_make(__int128 num, __int128 den, Rational* out) {
  if (den == 0) return false;
  if (den < 0) {
    num = -num;
    den = -den;
  }
  __int128 g = gcd128(num, den);
  if (g > 1) {
    num /= g;
    den /= g;
  }
  if (abs128(num) > INT64_MAX || den > INT64_MAX) return false;
  out->num = num;
  out->den = den;
  return true;
}

// expr := term (('+' | '-') term)* ; term := factor (('*' | '/') factor)* ;
// factor := digits | '(' expr ')'. No unary minus, no decimals; whitespace anywhere between tokens.
struct ExprParser {
  explicit ExprParser(const std::string& text) : s(text) {}
  const std::string& s;
  size_t i = 0;
  std::vector<int64_t> literals;  // every integer literal, in order

  void skip() {
    while (i < s.size() && is_space(s[i])) ++i;
  }
  bool factor(Rational* out) {
    skip();
    if (i >= s.size()) return false;
    if (s[i] == '(') {
      ++i;
      if (!expr(out)) return false;
      skip();
      if (i >= s.size() || s[i] != ')') return false;
      ++i;
      return true;
    }
    if (s[i] < '0' || s[i] > '9') return false;
    __int128 v = 0;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
      v = v * 10 + (s[i++] - '0');
      if (v > INT64_MAX) return false;
    }
    literals.push_back(static_cast<int64_t>(v));
    out->num = v;
    out->den = 1;
    return true;
  }
  bool term(Rational* out) {
    if (!factor(out)) return false;
    while (true) {
      skip();
      if (i >= s.size() || (s[i] != '*' && s[i] != '/')) return true;
      char op = s[i++];
      Rational r;
      if (!factor(&r)) return false;
      Rational l = *out;
      if (op == '*') {
        if (!rational_make(l.num * r.num, l.den * r.den, out)) return false;
      } else {
        if (r.num == 0) return false;  // division by zero
        if (!rational_make(l.num * r.den, l.den * r.num, out)) return false;
      }
    }
  }
  bool expr(Rational* out) {
    if (!term(out)) return false;
    while (true) {
      skip();
      if (i >= s.size() || (s[i] != '+' && s[i] != '-')) return true;
      char op = s[i++];
      Rational r;
      if (!term(&r)) return false;
      Rational l = *out;
      __int128 a = l.num * r.den, b = r.num * l.den;
      if (!rational_make(op == '+' ? a + b : a - b, l.den * r.den, out)) return false;
    }
  }
  bool whole(Rational* out) {
    if (!expr(out)) return false;
    skip();
    return i == s.size();
  }
};

bool countdown_check(const std::string& reference, const std::string& answer_text) {
  ExprParser ref(reference);
  Rational target;
  if (!ref.whole(&target) || target.den != 1) return false;
  ExprParser cand(answer_text);
  Rational value;
  if (!cand.whole(&value)) return false;
  std::vector<int64_t> avail = ref.literals, used = cand.literals;
  std::sort(avail.begin(), avail.end());
  std::sort(used.begin(), used.end());
  // used must be a sub-multiset of avail
  size_t j = 0;
  for (int64_t u : used) {
    while (j < avail.size() && avail[j] < u) ++j;
    if (j == avail.size() || avail[j] != u) return false;
    ++j;
  }
  return value.num == target.num && value.den == target.den;
}

bool parse_number(const std::string& text, double* out) {
  std::string s = trim(text);
  if (s.empty()) return false;
  char* end = nullptr;
  double v = std::strtod(s.c_str(), &end);
  if (end != s.c_str() + s.size() || !std::isfinite(v)) return false;
  *out = v;
  return true;
}

// ------------------------------------------------------------------------------------------------
// generators: each draws one candidate and its canonical key

struct Candidate {
  Problem problem;
  std::string key;  // canonical form, decides the split
};

Candidate gen_arith(const std::string& op, TaskRng& rng, const TaskOptions& o) {
  int64_t lo = 1, hi = 10;
  for (int d = 1; d < o.arith_digits; ++d) lo *= 10;
  for (int d = 1; d < o.arith_digits; ++d) hi *= 10;
  hi -= 1;
  if (o.arith_digits == 1) lo = 0;
  int64_t a = rng.uniform(lo, hi), b = rng.uniform(lo, hi);
  char sym = op == "add" ? '+' : op == "sub" ? '-' : '*';
  int64_t r = op == "add" ? a + b : op == "sub" ? a - b : a * b;
  Candidate c;
  c.key = fmt::format("{}:{}{}{}", op, a, sym, b);
  c.problem.task = op;
  c.problem.answer = std::to_string(r);
  c.problem.question =
      (fmt::format("Compute {} {} {}. Give only the integer result in the answer.", a, sym, b));
  return c;
}

std::string countdown_key(std::vector<int64_t> nums, int64_t target) {
  std::sort(nums.begin(), nums.end());
  return fmt::format("countdown:{}={}", join_ints(nums), target);
}

Candidate gen_countdown(TaskRng& rng, const TaskOptions& o) {
  int k = o.countdown_numbers != 0 ? o.countdown_numbers : static_cast<int>(rng.uniform(3, 4));
  while (true) {
    std::vector<int64_t> nums(k);
    for (auto& x : nums) x = rng.uniform(1, o.countdown_number_max);
    // Combine random pairs with random ops; generator keeps intermediates integral.
    std::vector<int64_t> val = nums;
    std::vector<std::string> ex;
    for (int64_t x : nums) ex.push_back(std::to_string(x));
    bool ok = true;
    while (val.size() > 1 && ok) {
      size_t i = rng.uniform(0, static_cast<int64_t>(val.size()) - 1);
      size_t j = rng.uniform(0, static_cast<int64_t>(val.size()) - 2);
      if (j >= i) ++j;
      const char ops[4] = {'+', '-', '*', '/'};
      char op = ops[rng.uniform(0, 3)];
      int64_t a = val[i], b = val[j], r = 0;
      switch (op) {
        case '+':
          r = a + b;
          break;
        case '-':
          r = a - b;
          break;
        case '*':
          r = a * b;
          break;
        default:
          if (b == 0 || a % b != 0)
            ok = false;
          else
            r = a / b;
      }
      if (!ok) break;
      std::string e = fmt::format("({} {} {})", ex[i], op, ex[j]);
      size_t hi = std::max(i, j), lo = std::min(i, j);
      val.erase(val.begin() + hi);
      ex.erase(ex.begin() + hi);
      val[lo] = r;
      ex[lo] = e;
    }
    if (!ok || val[0] < 1 || val[0] > o.countdown_target_max) continue;
    std::string expr = ex[0].substr(1, ex[0].size() - 2);  // drop the outer parentheses
    Candidate c;
    c.key = countdown_key(nums, val[0]);
    c.problem.task = "countdown";
    c.problem.answer = expr;
    c.problem.question = (fmt::format(
        "Using the numbers [{}], create an equation that equals {}. You can use basic arithmetic "
        "operations (+, -, *, /) and parentheses, and each number can be used at most once. Give "
        "only the expression in the answer, for example <answer> (1 + 2) / 3 </answer>.",
        join_ints(nums), val[0]));
    return c;
  }
}

Candidate gen_sort(TaskRng& rng, const TaskOptions& o) {
  int64_t len = rng.uniform(o.sort_len_min, o.sort_len_max);
  std::vector<int64_t> v(len);
  for (auto& x : v) x = rng.uniform(o.sort_value_min, o.sort_value_max);
  std::vector<int64_t> sorted = v;
  std::sort(sorted.begin(), sorted.end());
  Candidate c;
  c.key = fmt::format("sort:{}", join_ints(v));
  c.problem.task = "sort";
  c.problem.answer = join_ints(sorted);
  c.problem.question =
      (fmt::format("Sort the list [{}] in ascending order. Give the sorted list in the answer as "
                   "comma-separated integers, for example <answer> 1, 2, 3 </answer>.",
                   join_ints(v)));
  return c;
}

}  // namespace

// ------------------------------------------------------------------------------------------------
// public entry points

std::string task_prompt_wrap(const std::string& question) {
  std::string s =
      "A conversation between User and Assistant. The user asks a question, and the Assistant "
      "solves it. The assistant first thinks about the reasoning process in the mind and then "
      "provides the user with the answer. The reasoning process and answer are enclosed within "
      "<think> </think> and <answer> </answer> tags, respectively, i.e., <think> reasoning "
      "process here </think> <answer> answer here </answer>. User: ";
  s.append(question);
  s.append(" Assistant:");
  return s;
}

std::vector<Problem> task_generate(const std::string& task, Split split, int n, uint64_t seed,
                                   const TaskOptions& o) {
  bool arith = task == "add" || task == "sub" || task == "mul" || task == "arith";
  DSEEK_CHECK(arith || task == "countdown" || task == "sort",
              "unknown task '{}' (expected add, sub, mul, arith, countdown or sort)", task);
  DSEEK_CHECK(n >= 0, "task_generate: n must be >= 0, got {}", n);
  DSEEK_CHECK(o.arith_digits >= 1 && o.arith_digits <= 9, "arith_digits must be in 1..9, got {}",
              o.arith_digits);
  DSEEK_CHECK(o.countdown_numbers == 0 || o.countdown_numbers == 3 || o.countdown_numbers == 4,
              "countdown_numbers must be 0, 3 or 4, got {}", o.countdown_numbers);
  DSEEK_CHECK(o.countdown_number_max >= 1 && o.countdown_number_max <= 10000,
              "countdown_number_max must be in 1..10000, got {}", o.countdown_number_max);
  DSEEK_CHECK(o.countdown_target_max >= 1, "countdown_target_max must be >= 1, got {}",
              o.countdown_target_max);
  DSEEK_CHECK(o.sort_len_min >= 1 && o.sort_len_min <= o.sort_len_max,
              "sort lengths must satisfy 1 <= min <= max, got {}..{}", o.sort_len_min,
              o.sort_len_max);
  DSEEK_CHECK(o.sort_value_min <= o.sort_value_max, "sort values must satisfy min <= max");

  TaskRng rng{seed ^ fnv1a64(task)};
  std::vector<Problem> out;
  out.reserve(n);
  const int64_t attempts_max = 1000 + 1000 * static_cast<int64_t>(n);
  for (int64_t attempt = 0; static_cast<int>(out.size()) < n; ++attempt) {
    DSEEK_CHECK(attempt < attempts_max,
                "task '{}': could not find {} problems in this split (problem space too small?)",
                task, n);
    Candidate c;
    if (arith) {
      static const char* const kOps[3] = {"add", "sub", "mul"};
      c = gen_arith(task == "arith" ? kOps[rng.uniform(0, 2)] : task, rng, o);
    } else if (task == "countdown") {
      c = gen_countdown(rng, o);
    } else {
      c = gen_sort(rng, o);
    }
    if (split_of_key(c.key) != split) continue;
    c.problem.prompt = task_prompt_wrap(c.problem.question);
    out.push_back(std::move(c.problem));
  }
  return out;
}

Split task_split_of(const Problem& p) {
  if (p.task == "countdown") {
    ExprParser ref(p.answer);
    Rational target;
    DSEEK_CHECK(ref.whole(&target) && target.den == 1, "bad countdown reference '{}'", p.answer);
    return split_of_key(countdown_key(ref.literals, static_cast<int64_t>(target.num)));
  }
  if (p.task == "sort") {
    // The input list is the prompt's first [...]
    size_t b = p.prompt.find("list [");
    size_t e = p.prompt.find(']', b);
    DSEEK_CHECK(b != std::string::npos && e != std::string::npos, "bad sort prompt");
    return split_of_key(fmt::format("sort:{}", p.prompt.substr(b + 6, e - b - 6)));
  }
  if (p.task == "add" || p.task == "sub" || p.task == "mul") {
    size_t b = p.prompt.find("Compute ");
    size_t e = p.prompt.find('.', b);
    DSEEK_CHECK(b != std::string::npos && e != std::string::npos, "bad arithmetic prompt");
    std::string q = p.prompt.substr(b + 8, e - b - 8), key = p.task + ":";
    for (char c : q)
      if (c != ' ') key.push_back(c);
    return split_of_key(key);
  }
  fail("task_split_of: task '{}' is not a generated task", p.task);
}

bool task_boxed_extract(const std::string& text, std::string* out) {
  static const std::string kBoxed = "\\boxed{";
  size_t pos = text.rfind(kBoxed);
  while (pos != std::string::npos) {
    size_t start = pos + kBoxed.size();
    int depth = 1;
    for (size_t i = start; i < text.size(); ++i) {
      if (text[i] == '{') ++depth;
      if (text[i] == '}' && --depth == 0) {
        *out = text.substr(start, i - start);
        return true;
      }
    }
    // unbalanced: try an earlier \boxed{
    if (pos == 0) break;
    pos = text.rfind(kBoxed, pos - 1);
  }
  return false;
}

bool task_check(const Problem& p, const std::string& answer_text) {
  const std::string& t = p.task;
  if (t == "add" || t == "sub" || t == "mul") {
    int64_t want, got;
    return parse_int(p.answer, &want) && parse_int(answer_text, &got) && want == got;
  }
  if (t == "countdown") return countdown_check(p.answer, answer_text);
  if (t == "sort") {
    std::vector<int64_t> want, got;
    return parse_int_list(p.answer, &want) && parse_int_list(answer_text, &got) && want == got;
  }
  if (t == "exact") return trim(p.answer) == trim(answer_text);
  if (t == "numeric") {
    double a, b;
    if (!parse_number(p.answer, &a) || !parse_number(answer_text, &b)) return false;
    double scale = std::max({1.0, std::fabs(a), std::fabs(b)});
    return std::fabs(a - b) <= 1e-6 * scale;
  }
  if (t == "boxed") {
    std::string want = p.answer, got;
    std::string ref_boxed;
    if (task_boxed_extract(p.answer, &ref_boxed)) want = ref_boxed;
    return task_boxed_extract(answer_text, &got) && trim(got) == trim(want);
  }
  fail("task_check: unknown task '{}'", t);
}

std::vector<Problem> task_load_jsonl(const std::string& path) {
  std::ifstream in(path);
  DSEEK_CHECK(in.good(), "{}: cannot open file", path);
  std::vector<Problem> out;
  std::string line;
  for (int lineno = 1; std::getline(in, line); ++lineno) {
    if (trim(line).empty()) continue;
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception&) {
      fail("{}:{}: malformed JSON", path, lineno);
    }
    DSEEK_CHECK(j.is_object(), "{}:{}: expected a JSON object", path, lineno);
    DSEEK_CHECK(j.contains("prompt") && j["prompt"].is_string(),
                "{}:{}: missing string field 'prompt'", path, lineno);
    DSEEK_CHECK(j.contains("answer") && (j["answer"].is_string() || j["answer"].is_number()),
                "{}:{}: missing string or number field 'answer'", path, lineno);
    Problem p;
    p.prompt = j["prompt"].get<std::string>();
    p.question = p.prompt;
    p.answer = j["answer"].is_string() ? j["answer"].get<std::string>() : j["answer"].dump();
    p.task = "exact";
    if (j.contains("checker")) {
      DSEEK_CHECK(j["checker"].is_string(), "{}:{}: 'checker' must be a string", path, lineno);
      p.task = j["checker"].get<std::string>();
      DSEEK_CHECK(p.task == "exact" || p.task == "numeric" || p.task == "boxed" ||
                      p.task == "add" || p.task == "sub" || p.task == "mul" ||
                      p.task == "countdown" || p.task == "sort",
                  "{}:{}: unknown checker '{}' (expected exact, numeric, boxed, or a task: add, "
                  "sub, mul, countdown, sort)",
                  path, lineno, p.task);
    }
    out.push_back(std::move(p));
  }
  return out;
}

}  // namespace dseek
