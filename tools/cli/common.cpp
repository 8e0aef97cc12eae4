#include "tools/cli/common.h"

#include "engine/backends/backend_cpu.h"

#include <unistd.h>

#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <iterator>
#include <sstream>
#include <thread>

#include <CLI/CLI.hpp>

#include "engine/runtime/install_paths.h"
#include "loaders/atomic_file.h"
#include "loaders/load_error.h"
#include "tools/cli/flag_checks.h"

namespace longvq::cli {

void add_model_flags(CLI::App& app, ModelFlags& f) {
  app.add_option("-m,--model", f.model,
                 "Model directory (config.json + model.safetensors). Default: $LONGVQ_MODEL if set, else " +
                     default_model_dir().string())
      ->type_name("DIR")
      ->check(not_empty("the model directory is empty; give a directory, or leave -m out for the default model"));
  app.add_option("-t,--threads", f.threads,
                 "CPU threads (default: 0 = all cores, " + std::to_string(effective_threads(0)) + " here)")
      ->check(integer_in(0, kMaxThreads));
  app.add_option("--backend", f.backend, "Compute backend: auto (cuda when a GPU is present, else cpu), cpu or cuda")
      ->type_name("NAME")
      ->capture_default_str()
      ->check(CLI::IsMember({"auto", "cpu", "cuda"}));
  app.add_flag("--no-mmap", f.no_mmap,
               "Read the weights into memory instead of mapping the file (then a change to the file during the run "
               "cannot affect it; a mapped file truncated mid-run stops the run with an error)");
  app.add_flag("-v,--verbose", f.verbose, "Also print the memory plan of every graph the run built (stderr)");
}

std::filesystem::path default_model_dir() {
  // Found once (the help texts ask for it too): relative to the binary, engine/runtime/install_paths.h.
  static const std::filesystem::path dir = longvq::default_model_dir();
  return dir;
}

std::filesystem::path resolve_model_dir(const ModelFlags& flags, std::string* why) {
  if (!flags.model.empty()) {
    if (why) *why = "-m";
    return flags.model;
  }
  if (const char* env = std::getenv("LONGVQ_MODEL")) {
    if (!*env)
      throw UsageError("LONGVQ_MODEL is set but empty; set it to a model directory, or unset it (unset LONGVQ_MODEL) "
                       "for the default model " + default_model_dir().string());
    if (why) *why = "LONGVQ_MODEL";
    return env;
  }
  if (why) *why = "default";
  return default_model_dir();
}

std::shared_ptr<const Model> load_model(const ModelFlags& flags) {
  std::string why;
  const std::filesystem::path dir = resolve_model_dir(flags, &why);
  std::error_code ec;
  if (why == "default" && !std::filesystem::exists(dir, ec))
    throw std::runtime_error(longvq::default_model_missing_message(
        "Pass a model directory with -m DIR (e.g. -m tests/fixtures/lm_bytes_layernorm_tied, a tiny random "
        "test model),\n  set LONGVQ_MODEL=DIR, install longvq (cmake --install build --prefix PREFIX), or, in a "
        "source checkout,\n  train the default one: (cd tools && /usr/bin/python3 -m longvq_ref.train austen-lm)"));
  ModelOptions options;
  options.backend = flags.backend == "cuda"  ? BackendKind::cuda
                    : flags.backend == "cpu" ? BackendKind::cpu
                                             : default_backend_kind();
  options.load_mode = flags.no_mmap ? LoadMode::read : LoadMode::mmap;
  return Model::load(dir, options);
}

int effective_threads(int threads) { return threads > 0 ? threads : default_cpu_threads(); }

bool is_terminal(int fd) { return isatty(fd) == 1; }

void check_output_path(const std::string& flag, const std::string& path,
                       const std::vector<std::pair<std::string, std::string>>& inputs) {
  if (const std::string problem = output_path_problem(path); !problem.empty())
    throw UsageError(flag + " " + path + ": " + problem);
  std::error_code ec;
  for (const auto& [input_flag, input] : inputs)
    if (!input.empty() && input != "-" && std::filesystem::equivalent(path, input, ec))
      throw UsageError(flag + " " + path + " is the same file as " + input_flag + " " + input +
                       "; writing it would destroy that input: give another output path");
}

double physical_memory() {
  const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
  return pages > 0 && page > 0 ? static_cast<double>(pages) * static_cast<double>(page) : 0.0;
}

void check_activation_memory(const ModelConfig& c, int64_t batch, int64_t length, const std::string& flags) {
  // The widest rows a position has (projections, FFN, LM logits, code scores), in doubles so
  // that no product overflows however large the flags are.
  const double widths = static_cast<double>(4 * c.d_model + c.mx_dim() + 2 * c.hidden_dim + c.ffn_dim +
                                            c.attention.codebook_size + (c.task == ModelConfig::Task::lm ? c.vocab_size : 0));
  const double need = static_cast<double>(batch) * static_cast<double>(length) * widths * 4.0;
  const double memory = physical_memory();
  if (memory > 0 && need > memory)
    throw UsageError(flags + " would need more than " + human_bytes(need) + " for this model's activations alone, more "
                     "than this machine's " + human_bytes(memory) + " of memory: use smaller sizes");
}

std::string group_digits(int64_t v) {
  std::string digits = std::to_string(v < 0 ? -v : v), out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return v < 0 ? "-" + out : out;
}

std::string human_bytes(double bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  int u = 0;
  while (bytes >= 1024 && u < 6) bytes /= 1024, ++u;
  return u == 0 ? strf("%.0f B", bytes) : strf("%.2f %s", bytes, units[u]);
}

std::string strf(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  va_list ap2;
  va_copy(ap2, ap);
  int n = std::vsnprintf(nullptr, 0, fmt, ap);
  va_end(ap);
  std::string out(static_cast<size_t>(std::max(n, 0)), '\0');
  std::vsnprintf(out.data(), out.size() + 1, fmt, ap2);
  va_end(ap2);
  return out;
}

}  // namespace longvq::cli
