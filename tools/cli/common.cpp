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

#include "loaders/load_error.h"

#ifndef LONGVQ_DEFAULT_MODEL
#define LONGVQ_DEFAULT_MODEL "models/austen-lm"
#endif

namespace longvq::cli {

void add_model_flags(CLI::App& app, ModelFlags& f) {
  app.add_option("-m,--model", f.model,
                 "Model directory (config.json + model.safetensors). Default: $LONGVQ_MODEL if set, else " +
                     default_model_dir().string())
      ->type_name("DIR");
  app.add_option("-t,--threads", f.threads,
                 "CPU threads (default: 0 = all cores, " + std::to_string(effective_threads(0)) + " here)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--backend", f.backend, "Compute backend: auto (cuda when a GPU is present, else cpu), cpu or cuda")
      ->type_name("NAME")
      ->capture_default_str()
      ->check(CLI::IsMember({"auto", "cpu", "cuda"}));
  app.add_flag("--no-mmap", f.no_mmap, "Read the weights into memory instead of mapping the file");
  app.add_flag("-v,--verbose", f.verbose, "Also print the memory plan of every graph the run built (stderr)");
}

std::filesystem::path default_model_dir() { return LONGVQ_DEFAULT_MODEL; }

std::filesystem::path resolve_model_dir(const ModelFlags& flags, std::string* why) {
  if (!flags.model.empty()) {
    if (why) *why = "-m";
    return flags.model;
  }
  if (const char* env = std::getenv("LONGVQ_MODEL"); env && *env) {
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
    throw std::runtime_error(
        "no model given and the default model " + dir.string() +
        " does not exist (it is not trained or downloaded yet).\n"
        "  Pass a model directory with -m DIR (e.g. -m tests/fixtures/lm_bytes_layernorm_tied, a tiny random "
        "test model),\n  set LONGVQ_MODEL=DIR, or train the default one: "
        "(cd tools && /usr/bin/python3 -m longvq_ref.train austen-lm)");
  ModelOptions options;
  options.backend = flags.backend == "cuda"  ? BackendKind::cuda
                    : flags.backend == "cpu" ? BackendKind::cpu
                                             : default_backend_kind();
  options.load_mode = flags.no_mmap ? LoadMode::read : LoadMode::mmap;
  return Model::load(dir, options);
}

int effective_threads(int threads) { return threads > 0 ? threads : default_cpu_threads(); }

bool is_terminal(int fd) { return isatty(fd) == 1; }

std::string read_text_file(const std::string& path) {
  if (path == "-") return read_stdin();
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(path + ": cannot open the file (" + std::strerror(errno) + ")");
  // The text and its token ids must fit in memory together (ids take 4 bytes per byte).
  std::error_code ec;
  const uintmax_t size = std::filesystem::file_size(path, ec);
  const double memory = static_cast<double>(sysconf(_SC_PHYS_PAGES)) * static_cast<double>(sysconf(_SC_PAGESIZE));
  if (!ec && memory > 0 && 5.0 * static_cast<double>(size) > memory)
    throw std::runtime_error(path + ": the file is " + human_bytes(static_cast<double>(size)) +
                             "; it and its tokens would not fit in this machine's " + human_bytes(memory) +
                             " of memory. Split it into smaller files");
  std::ostringstream s;
  s << in.rdbuf();
  if (in.bad()) throw std::runtime_error(path + ": read failed");
  return s.str();
}

std::string read_stdin() {
  std::ostringstream s;
  s << std::cin.rdbuf();
  return s.str();
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
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (bytes >= 1024 && u < 4) bytes /= 1024, ++u;
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
