// What every subcommand shares: the error kinds and their exit codes, the model flags (-m, -t,
// --backend, --no-mmap, -v), finding and loading the model, checks of output paths and of the
// memory a run's sizes imply, and small formatting helpers.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "engine/runtime/model.h"

namespace CLI {
class App;
}

namespace longvq::cli {

// Exit codes: 0 ok, 1 runtime failure (unreadable model, bad input file), 2 bad usage.
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;
inline constexpr int kExitUsage = 2;

// Bad usage found after parsing: invalid or conflicting values, missing required input.
// Exits with 2, like a CLI11 parse error.
class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A bad line or record of an input file; the message starts with "FILE:LINE: ". Exits with 1.
class InputError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct ModelFlags {
  std::string model;           // -m; empty: $LONGVQ_MODEL, else the default (default_model_dir())
  int threads = 0;             // 0 = all cores
  std::string backend = "auto";
  bool no_mmap = false;
  bool verbose = false;
};

// Adds -m/--model, -t/--threads, --backend, --no-mmap and -v/--verbose to a subcommand.
void add_model_flags(CLI::App& app, ModelFlags& flags);

// The default model directory: share/longvq/models/austen-lm found relative to this binary
// (installed or in the build tree; longvq::default_model_dir(), engine/runtime/install_paths.h).
std::filesystem::path default_model_dir();
// -m, else $LONGVQ_MODEL, else the default; `why` says which it was ("-m", "LONGVQ_MODEL", "default").
// A LONGVQ_MODEL that is set but empty is a UsageError (it must not quietly mean the default).
std::filesystem::path resolve_model_dir(const ModelFlags& flags, std::string* why = nullptr);
// Loads the model the flags name. A missing default model gets a message saying how to get
// one; every loader failure is rethrown as the loader's LoadError.
std::shared_ptr<const Model> load_model(const ModelFlags& flags);

// The thread count the CPU backend will use for `threads` (0 = all cores).
int effective_threads(int threads);
bool is_terminal(int fd);

// Refuses an output path before the run, not after it (UsageError): one that cannot be written
// (a directory, a device, a FIFO, a missing directory; loaders/atomic_file.h), or that is the
// same file as one of `inputs` (flag, path), which writing would destroy. `flag` names it.
void check_output_path(const std::string& flag, const std::string& path,
                       const std::vector<std::pair<std::string, std::string>>& inputs);

// This machine's physical memory in bytes (0 when unknown).
double physical_memory();
// Refuses sizes whose activations alone could not fit in memory (UsageError naming `flags`,
// e.g. "--length 4096 with --batch 16"), before a Session plans them: batch × length positions
// of the model's widest rows, 4 bytes each, a lower bound of what the run needs.
void check_activation_memory(const ModelConfig& cfg, int64_t batch, int64_t length, const std::string& flags);

// 1234567 → "1,234,567".
std::string group_digits(int64_t v);
// 1536 → "1.50 KiB".
std::string human_bytes(double bytes);
// printf-style formatting into a std::string.
std::string strf(const char* fmt, ...) __attribute__((format(printf, 1, 2)));

}  // namespace longvq::cli
