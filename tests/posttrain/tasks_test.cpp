// Verifiable tasks: determinism by seed, disjoint train/test splits over thousands of problems,
// every reference answer passing its own checker, wrong answers failing, Countdown checker edge
// cases, user-dataset checkers (exact, numeric, boxed) and the JSONL loader's file:line errors.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <set>

#include "dseek/core/error.h"
#include "dseek/posttrain/tasks.h"

using dseek::Problem;
using dseek::Split;
using dseek::task_check;
using dseek::task_generate;

namespace {

const char* const kTasks[] = {"add", "sub", "mul", "arith", "countdown", "sort"};

Problem countdown(const std::string& reference) {
  return Problem{"", reference, "countdown"};
}

std::string write_tmp(const std::string& name, const std::string& text) {
  auto path = std::filesystem::temp_directory_path() / name;
  std::ofstream(path) << text;
  return path.string();
}

}  // namespace

TEST(Tasks, DeterministicBySeed) {
  for (const char* t : kTasks) {
    auto a = task_generate(t, Split::SPLIT_TRAIN, 50, 7);
    auto b = task_generate(t, Split::SPLIT_TRAIN, 50, 7);
    auto c = task_generate(t, Split::SPLIT_TRAIN, 50, 8);
    ASSERT_EQ(a.size(), 50u);
    bool differs = false;
    for (size_t i = 0; i < a.size(); ++i) {
      EXPECT_EQ(a[i].prompt, b[i].prompt) << t;
      EXPECT_EQ(a[i].answer, b[i].answer) << t;
      differs |= a[i].prompt != c[i].prompt;
    }
    EXPECT_TRUE(differs) << t;
  }
}

TEST(Tasks, TrainTestDisjoint) {
  dseek::TaskOptions small{.arith_digits = 2,
                           .countdown_number_max = 20,
                           .sort_len_min = 3,
                           .sort_len_max = 3,
                           .sort_value_min = 0,
                           .sort_value_max = 9};
  for (const char* t : kTasks) {
    for (const auto& opts : {dseek::TaskOptions{}, small}) {
      auto train = task_generate(t, Split::SPLIT_TRAIN, 3000, 1, opts);
      auto test = task_generate(t, Split::SPLIT_TEST, 3000, 2, opts);
      std::set<std::string> train_prompts;
      for (const auto& p : train) {
        EXPECT_EQ(dseek::task_split_of(p), Split::SPLIT_TRAIN);
        train_prompts.insert(p.prompt);
      }
      for (const auto& p : test) {
        EXPECT_EQ(dseek::task_split_of(p), Split::SPLIT_TEST);
        EXPECT_EQ(train_prompts.count(p.prompt), 0u) << t << ": " << p.prompt;
      }
    }
  }
}

TEST(Tasks, ReferenceAnswersPassWrongAnswersFail) {
  for (const char* t : kTasks) {
    for (auto split : {Split::SPLIT_TRAIN, Split::SPLIT_TEST}) {
      for (const auto& p : task_generate(t, split, 1000, 3)) {
        EXPECT_TRUE(task_check(p, p.answer)) << p.task << ": " << p.answer;
        EXPECT_TRUE(task_check(p, "  " + p.answer + "\n")) << p.answer;
        EXPECT_FALSE(task_check(p, "")) << p.task;
        EXPECT_FALSE(task_check(p, "banana")) << p.task;
        EXPECT_NE(p.prompt.find("<think>"), std::string::npos);
        EXPECT_NE(p.prompt.find("<answer>"), std::string::npos);
      }
    }
  }
  Problem add{"", "579", "add"};
  EXPECT_FALSE(task_check(add, "578"));
  EXPECT_FALSE(task_check(add, "579.5"));
  EXPECT_FALSE(task_check(add, "5 79"));
  EXPECT_TRUE(task_check(add, "+579"));
  Problem sub{"", "-12", "sub"};
  EXPECT_TRUE(task_check(sub, "-12"));
  EXPECT_FALSE(task_check(sub, "12"));
  Problem sort{"", "-3, 1, 1, 7", "sort"};
  EXPECT_TRUE(task_check(sort, "-3,1,1,7"));
  EXPECT_TRUE(task_check(sort, "[-3, 1, 1, 7]"));
  EXPECT_FALSE(task_check(sort, "-3, 1, 7"));
  EXPECT_FALSE(task_check(sort, "1, -3, 1, 7"));
  EXPECT_FALSE(task_check(sort, "-3, 1, 1, 7,"));
}

TEST(Tasks, CountdownGeneratesSolvableInstances) {
  for (int k : {3, 4}) {
    dseek::TaskOptions o{.countdown_numbers = k};
    for (const auto& p : task_generate("countdown", Split::SPLIT_TRAIN, 300, 5, o)) {
      size_t b = p.prompt.find("numbers [");
      size_t e = p.prompt.find(']', b);
      std::string nums = p.prompt.substr(b + 9, e - b - 9);
      EXPECT_EQ(std::count(nums.begin(), nums.end(), ','), k - 1) << nums;
      EXPECT_TRUE(task_check(p, p.answer));
    }
  }
}

TEST(Tasks, CountdownCheckerEdgeCases) {
  // numbers 3, 5, 7, 2; target (3 + 5) * 7 / 2 = 28
  Problem p = countdown("(3 + 5) * 7 / 2");
  EXPECT_TRUE(task_check(p, "(3+5)*7/2"));
  EXPECT_TRUE(task_check(p, "7 * (5 + 3) / 2"));
  EXPECT_TRUE(task_check(p, "\n ( 3 + 5 ) *\t7 / 2  "));
  EXPECT_TRUE(task_check(p, "((7 * 2) * 2)") == false);  // 2 used twice
  EXPECT_FALSE(task_check(p, "(3 + 5) * 7 / 2 + 0"));    // unknown number 0
  EXPECT_FALSE(task_check(p, "4 * 7"));                  // unknown number 4
  EXPECT_FALSE(task_check(p, "7 * 4 + 0"));
  EXPECT_FALSE(task_check(p, "(3 + 5) * 7 / 2 - 3 + 3"));  // 3 reused
  EXPECT_FALSE(task_check(p, "3 + 5 * 7 / 2"));            // wrong value, precedence
  // subset use is allowed (at most once, not exactly once)
  Problem q = countdown("(3 + 5) * 7 - 2");  // 54
  EXPECT_TRUE(task_check(q, "(5 + 3) * 7 - 2"));
  Problem r = countdown("5 * 7 + 3 - 2");  // 36, also reachable as (7 - 3) * ... no; 5*7+3-2
  EXPECT_TRUE(task_check(r, "7 * 5 + 3 - 2"));
  // division by zero anywhere fails, even if the rest would be fine
  Problem z = countdown("(3 - 3) + 5");  // numbers 3, 3, 5; target 5
  EXPECT_FALSE(task_check(z, "5 + 3 / (3 - 3)"));
  EXPECT_TRUE(task_check(z, "5 + (3 - 3)"));
  EXPECT_TRUE(task_check(z, "5"));
  // non-integer intermediate allowed when the final value is exact: 1 / 3 * 6 * 4 = 8
  Problem f = countdown("(6 / 3) * 4 * 1");  // numbers 6, 3, 4, 1; target 8
  EXPECT_TRUE(task_check(f, "1 / 3 * 6 * 4"));
  EXPECT_TRUE(task_check(f, "4 / (1 / 6 * 3)"));
  EXPECT_FALSE(task_check(f, "6 / 4 * 3"));  // 4.5
  // malformed
  for (const char* bad : {"(3 + 5 * 7 / 2", "3 + 5) * 7 / 2", "3 + + 5", "-3 + 5", "3 ++ 5", "",
                          "3.0 * 5", "3 5", "3 x 5", "()", "(3 + 5) * 7 / 2 = 28", "3 ^ 2", "28"}) {
    EXPECT_FALSE(task_check(p, bad)) << bad;
  }
  // huge values never overflow into a false positive
  Problem h = countdown("99 * 99 * 99 * 99");
  EXPECT_FALSE(task_check(h, "99999999999999999999999 * 99"));
  EXPECT_TRUE(task_check(h, "(99 * 99) * (99 * 99)"));
}

TEST(Tasks, UserCheckers) {
  Problem e{"", "  Paris ", "exact"};
  EXPECT_TRUE(task_check(e, "Paris"));
  EXPECT_FALSE(task_check(e, "paris"));
  Problem n{"", "3.14159", "numeric"};
  EXPECT_TRUE(task_check(n, " 3.1415900000001 "));
  EXPECT_TRUE(task_check(n, "314159e-5"));
  EXPECT_FALSE(task_check(n, "3.1416"));
  EXPECT_FALSE(task_check(n, "3.14159 apples"));
  EXPECT_FALSE(task_check(n, "nan"));
  Problem big{"", "1e12", "numeric"};
  EXPECT_TRUE(task_check(big, "1000000000100"));  // 1e-10 relative
  EXPECT_FALSE(task_check(big, "1000010000000"));
  Problem b{"", "\\frac{1}{2}", "boxed"};
  EXPECT_TRUE(task_check(b, "so the answer is \\boxed{\\frac{1}{2}}."));
  EXPECT_TRUE(task_check(b, "\\boxed{3} then \\boxed{ \\frac{1}{2} }"));  // last one counts
  EXPECT_FALSE(task_check(b, "\\boxed{\\frac{1}{2}} then \\boxed{3}"));
  EXPECT_FALSE(task_check(b, "\\frac{1}{2}"));  // not boxed
  Problem rb{"", "The answer: \\boxed{{a}}", "boxed"};
  EXPECT_TRUE(task_check(rb, "\\boxed{{a}}"));
  std::string out;
  EXPECT_TRUE(dseek::task_boxed_extract("x \\boxed{a{b{c}}d} y", &out));
  EXPECT_EQ(out, "a{b{c}}d");
  EXPECT_TRUE(dseek::task_boxed_extract("\\boxed{1} \\boxed{2", &out));  // last is unbalanced
  EXPECT_EQ(out, "1");
  EXPECT_FALSE(dseek::task_boxed_extract("\\boxed{a{b}", &out));
  EXPECT_THROW(task_check(Problem{"", "1", "nope"}, "1"), dseek::Error);
}

TEST(Tasks, BadOptionsThrow) {
  EXPECT_THROW(task_generate("chess", Split::SPLIT_TRAIN, 1, 0), dseek::Error);
  EXPECT_THROW(task_generate("add", Split::SPLIT_TRAIN, 1, 0, {.arith_digits = 0}), dseek::Error);
  EXPECT_THROW(task_generate("countdown", Split::SPLIT_TRAIN, 1, 0, {.countdown_numbers = 5}),
               dseek::Error);
}

TEST(Tasks, LoadJsonl) {
  std::string path =
      write_tmp("dseek_tasks_ok.jsonl",
                "{\"prompt\": \"2+2?\", \"answer\": \"4\"}\n"
                "\n"
                "{\"prompt\": \"pi?\", \"answer\": 3.14159, \"checker\": \"numeric\"}\n"
                "{\"prompt\": \"half?\", \"answer\": \"\\\\frac{1}{2}\", "
                "\"checker\": \"boxed\"}\n");
  auto ps = dseek::task_load_jsonl(path);
  ASSERT_EQ(ps.size(), 3u);
  EXPECT_EQ(ps[0].task, "exact");
  EXPECT_TRUE(task_check(ps[0], " 4 "));
  EXPECT_TRUE(task_check(ps[1], "3.14159"));
  EXPECT_TRUE(task_check(ps[2], "\\boxed{\\frac{1}{2}}"));

  auto expect_error = [](const std::string& text, const std::string& where) {
    std::string p = write_tmp("dseek_tasks_bad.jsonl", text);
    try {
      dseek::task_load_jsonl(p);
      ADD_FAILURE() << "no error for " << text;
    } catch (const dseek::Error& e) {
      EXPECT_NE(std::string(e.what()).find(p + ":" + where), std::string::npos) << e.what();
    }
  };
  const std::string ok = "{\"prompt\": \"a\", \"answer\": \"b\"}\n";
  expect_error(ok + "{\"prompt\": \"a\", \"answer\": \n", "2");
  expect_error(ok + ok + "{\"answer\": \"b\"}\n", "3");
  expect_error("{\"prompt\": \"a\"}\n", "1");
  expect_error("[1, 2]\n", "1");
  expect_error(ok + "{\"prompt\": \"a\", \"answer\": \"b\", \"checker\": \"regex\"}\n", "2");
  expect_error("{\"prompt\": 3, \"answer\": \"b\"}\n", "1");
  EXPECT_THROW(dseek::task_load_jsonl("/nonexistent/x.jsonl"), dseek::Error);
}
