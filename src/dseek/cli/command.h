// Subcommand registry. Each cmd_<name>.cpp registers itself at static-init time:
//   static const bool reg = dseek::cli::add_command({"generate", "Generate text", setup, order});
// `setup` adds options to the CLI11 subcommand and sets its callback. Callbacks return an exit
// code: 0 ok, 1 a check failed (e.g. check-reference out of tolerance), 2 bad input. A thrown
// dseek::Error becomes "dseek: <message>" on stderr and exit code 2 (done in main.cpp).
#pragma once

#include <functional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

namespace dseek::cli {

struct Command {
  std::string name;
  std::string help;
  std::function<void(CLI::App* sub, int* exit_code)> setup;
  int order = 100;  // position in --help
};

std::vector<Command>& commands();
bool add_command(Command c);

}  // namespace dseek::cli
