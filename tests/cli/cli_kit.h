// Test kit for the dseek binary: run it as a user would and capture stdout, stderr and the exit
// status. Shared by the tests/cli/*_test.cpp files.
#pragma once

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <fstream>
#include <string>

#include <gtest/gtest.h>

namespace dseek_test {

struct CliResult {
  int code = 0;  // exit status, or 128 + signal number when killed
  std::string out, err;
};

// Runs `ENV DSEEK_BINARY ARGS < STDIN` (env: e.g. "CI=true PATH=/x"; may be empty).
inline CliResult dseek_cli(const std::string& args, const std::string& env = "",
                           const std::string& stdin_path = "/dev/null") {
  std::string errf = testing::TempDir();
  errf.append("/dseek_cli_stderr_").append(std::to_string(getpid())).append(".txt");
  std::string cmd = env;
  cmd.append(" ").append(DSEEK_BINARY).append(" ").append(args);
  cmd.append(" 2>").append(errf).append(" <").append(stdin_path);
  FILE* p = popen(cmd.c_str(), "r");
  CliResult r;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) r.out.append(buf.data(), n);
  const int st = pclose(p);
  r.code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  std::ifstream e(errf);
  r.err.assign(std::istreambuf_iterator<char>(e), {});
  std::remove(errf.c_str());
  return r;
}

// A bad-input failure as the CLI promises it: exit 2, one line "dseek: ..." containing needle.
// R: any result with `code` and `err` (CliResult, or a test's own run type).
template <typename R>
void expect_one_line_error(const R& r, const std::string& needle) {
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_EQ(r.err.rfind("dseek: ", 0), 0u) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_NE(r.err.find(needle), std::string::npos) << r.err;
}

}  // namespace dseek_test
