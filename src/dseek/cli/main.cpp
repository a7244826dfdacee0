// The dseek binary: a thin main that builds the CLI11 app from the subcommand registry,
// runs the chosen subcommand, and turns errors into one-line messages and exit codes.
#include <algorithm>
#include <cstdio>
#include <exception>

#include "dseek/cli/command.h"
#include "dseek/core/error.h"

namespace dseek::cli {
std::vector<Command>& commands() {
  static std::vector<Command> all;
  return all;
}
bool add_command(Command c) {
  commands().push_back(std::move(c));
  return true;
}
}  // namespace dseek::cli

int main(int argc, char** argv) {
  using namespace dseek::cli;
  CLI::App app{
      "dseek: train, align and serve DeepSeek-architecture models (MLA, DeepSeekMoE, MTP).\n"
      "Run `dseek <command> --help` for the options of each command."};
  app.require_subcommand(1);
  app.set_version_flag("--version", "dseek 0.1.0");
  int exit_code = 0;
  auto& cmds = commands();
  std::stable_sort(cmds.begin(), cmds.end(),
                   [](const Command& a, const Command& b) { return a.order < b.order; });
  for (auto& c : cmds) {
    CLI::App* sub = app.add_subcommand(c.name, c.help);
    c.setup(sub, &exit_code);
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  } catch (const dseek::Error& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "dseek: %s\n", e.what());
    return 2;
  } catch (const std::bad_alloc&) {
    std::fflush(stdout);
    std::fprintf(stderr, "dseek: out of memory\n");
    return 2;
  } catch (const std::exception& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "dseek: internal error: %s\n", e.what());
    return 3;
  }
  return exit_code;
}
