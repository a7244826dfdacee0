// dseek::Error: the one exception type the library throws for bad input or failed checks.
// Library code never calls exit(); the CLI catches Error, prints one line "dseek: <what>" and
// exits with code 2 (bad input). DSEEK_CHECK(cond, fmt, args...) throws with a formatted message.
#pragma once

#include <stdexcept>
#include <string>

#include <fmt/format.h>

namespace dseek {

struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

template <typename... Args>
[[noreturn]] void fail(fmt::format_string<Args...> f, Args&&... args) {
  throw Error(fmt::format(f, std::forward<Args>(args)...));
}

}  // namespace dseek

#define DSEEK_CHECK(cond, ...)                  \
  do {                                          \
    if (!(cond)) ::dseek::fail(__VA_ARGS__);    \
  } while (0)
