// The subcommands. Each add_* creates its CLI11 subcommand (flags, help text, examples) on the
// root app and returns the function that runs it once parsing has succeeded. A run returns
// the exit code, or throws: UsageError (exit 2), anything else (exit 1); see main.cpp.
#pragma once

#include <functional>

namespace CLI {
class App;
}

namespace longvq::cli {

struct Command {
  CLI::App* app = nullptr;
  std::function<int()> run;
};

Command add_generate(CLI::App& root);
Command add_classify(CLI::App& root);
Command add_perplexity(CLI::App& root);
Command add_bench(CLI::App& root);
Command add_info(CLI::App& root);
Command add_serve(CLI::App& root);

}  // namespace longvq::cli
