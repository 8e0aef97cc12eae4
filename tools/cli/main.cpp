// longvq: the command line of the LongVQ inference engine.
//
//   longvq generate   | classify | perplexity | bench | info   (longvq --help)
//
// Exit codes: 0 ok; 1 runtime failure (unreadable or corrupt model, bad input file, ...);
// 2 bad usage (unknown flag, invalid or conflicting values, missing input).
#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <new>
#include <stdexcept>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "engine/text/tokenizer.h"
#include "engine/runtime/version.h"
#include "loaders/load_error.h"
#include "tools/cli/commands.h"
#include "tools/cli/common.h"
#include "tools/cli/process_setup.h"
#include "tools/cli/suggest.h"

using namespace longvq::cli;

namespace {

// "--tmep" → " (did you mean --temp?)": the closest flag of the subcommand that was parsed.
std::string flag_hint(const CLI::App* sub) {
  std::vector<std::string> names;
  for (const CLI::Option* opt : sub->get_options())
    for (const std::string& n : opt->get_lnames()) names.push_back("--" + n);
  std::string hint;
  for (const std::string& arg : sub->remaining())
    if (arg.rfind("--", 0) == 0)
      if (const std::string guess = closest(arg.substr(0, arg.find('=')), names); !guess.empty())
        hint += " (did you mean " + guess + " for " + arg + "?)";
  return hint;
}

std::string failure_message(const CLI::App* app, const CLI::Error& e) {
  std::string name = app->get_name(), hint;
  // The failing subcommand, for the hint.
  for (const CLI::App* sub : app->get_subcommands())
    if (sub->parsed()) {
      name += " " + sub->get_name();
      if (dynamic_cast<const CLI::ExtrasError*>(&e)) hint = flag_hint(sub);
    }
  return "error: " + std::string(e.what()) + hint + "\nRun '" + name + " --help' for usage.\n";
}

// CLI11 says "A subcommand is required" for `longvq generat`: name the word and the closest command.
bool unknown_command(int argc, char** argv, const std::vector<Command>& commands) {
  if (argc < 2 || argv[1][0] == '-') return false;
  std::vector<std::string> names;
  for (const Command& c : commands) names.push_back(c.app->get_name());
  const std::string word = argv[1];
  if (std::find(names.begin(), names.end(), word) != names.end()) return false;
  const std::string guess = closest(word, names);
  std::string all;
  for (const std::string& n : names) all += (all.empty() ? "" : ", ") + n;
  std::fprintf(stderr, "error: unknown command '%s'%s (the commands: %s)\nRun 'longvq --help' for usage.\n",
               word.c_str(), guess.empty() ? "" : ("; did you mean '" + guess + "'?").c_str(), all.c_str());
  return true;
}

// Every byte a command printed must have reached stdout: a full disk, /dev/full or a closed
// stdout is a failure (exit 1), not a silent success.
int checked_output(int code) {
  errno = 0;
  const bool flushed = std::fflush(stdout) == 0;  // std::cout shares stdout's buffer (synced)
  const int err = errno;
  std::cout.flush();
  if (flushed && std::cout && !std::ferror(stdout)) return code;
  std::fprintf(stderr, "error: could not write the output (stdout%s)\n",
               err ? (": " + std::string(std::strerror(err))).c_str() : "");
  return kExitFailure;
}

// Lists each subcommand by the first line of its description (the rest is shown by its own --help).
class Formatter : public CLI::Formatter {
 public:
  std::string make_subcommand(const CLI::App* sub) const override {
    std::stringstream out;
    const std::string& d = sub->get_description();
    CLI::detail::format_help(out, sub->get_display_name(true), d.substr(0, d.find('\n')), column_width_);
    return out.str();
  }
  // "-n,--n-predict INT" (the type without validator names); the default and the flags it
  // excludes or needs go into the description, where they read better.
  std::string make_option_opts(const CLI::Option* opt) const override {
    if (!opt->get_option_text().empty()) return " " + opt->get_option_text();
    if (opt->get_type_size() == 0) return "";
    const std::string type = opt->get_type_name();
    return " " + type.substr(0, type.find(':'));
  }
  std::string make_option_desc(const CLI::Option* opt) const override {
    std::string d = opt->get_description();
    std::string def = opt->get_default_str();
    if (def.size() >= 2 && def.front() == '[' && def.back() == ']') def = def.substr(1, def.size() - 2);
    if (!def.empty()) d += " (default: " + def + ")";
    for (const CLI::Option* x : opt->get_excludes()) d += "; not with " + x->get_name();
    for (const CLI::Option* x : opt->get_needs()) d += "; needs " + x->get_name();
    return d;
  }
};

}  // namespace

int main(int argc, char** argv) {
  setup_process();  // signals and standard streams (process_setup.h)

  CLI::App app{"longvq: run LongVQ models (MEGA damped EMA + attention over vector-quantized keys) on the CPU.\n"
               "Causal LMs generate text and score perplexity; classifiers label sequences. The decoding state has a\n"
               "fixed size however long the context grows.",
               "longvq"};
  app.set_version_flag("--version", std::string(longvq::version()) + " (" + longvq::build_info() + ")");
  app.require_subcommand(1);
  app.failure_message(failure_message);
  app.formatter(std::make_shared<Formatter>());
  app.get_formatter()->column_width(34);
  app.footer(
      "Examples:\n"
      "  longvq generate -p \"It is a truth universally acknowledged\" -n 200\n"
      "  longvq classify -m models/listops tests/data/listops_test200.tsv -o predictions.jsonl\n"
      "  longvq perplexity -m models/austen-lm -f book.txt\n"
      "  longvq bench -m models/austen-lm -p 512 -n 128 -d 0,4096\n"
      "  longvq info -m tests/fixtures/lm_bytes_layernorm_tied\n\n"
      "Without -m, the model is $LONGVQ_MODEL, else " +
      default_model_dir().string() +
      ".\nExit codes: 0 ok, 1 runtime failure (model or input file), 2 bad usage.\n"
      "Run 'longvq COMMAND --help' for a command's flags.");

  std::vector<Command> commands = {add_generate(app), add_classify(app), add_perplexity(app), add_bench(app),
                                   add_info(app), add_serve(app)};
  if (unknown_command(argc, argv, commands)) return kExitUsage;
  // llama-server's -np (CLI11 takes one-letter short flags only).
  std::vector<std::string> args(argv + 1, argv + argc);
  for (std::string& a : args)
    if (a == "-np") a = "--parallel";
  std::reverse(args.begin(), args.end());  // CLI11 takes them last first
  try {
    app.parse(args);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);  // --help and --version print to stdout: checked like any output
    return code == 0 ? checked_output(kExitOk) : kExitUsage;
  }
  for (Command& c : commands) {
    if (!c.app->parsed()) continue;
    try {
      return checked_output(c.run());
    } catch (const UsageError& e) {
      std::fprintf(stderr, "error: %s\nRun 'longvq %s --help' for usage.\n", e.what(), c.app->get_name().c_str());
      return kExitUsage;
    } catch (const std::bad_alloc&) {
      std::fflush(stdout);
      std::fprintf(stderr, "error: out of memory; use smaller inputs, a smaller --batch or --chunk\n");
      return kExitFailure;
    } catch (const std::length_error&) {  // a container asked for more than max_size(): the same news
      std::fflush(stdout);
      std::fprintf(stderr, "error: out of memory (a size too large to allocate); use smaller inputs or sizes\n");
      return kExitFailure;
    } catch (const std::exception& e) {
      std::fflush(stdout);
      std::fprintf(stderr, "error: %s\n", e.what());
      return kExitFailure;
    }
  }
  return kExitUsage;  // unreachable: require_subcommand(1)
}
