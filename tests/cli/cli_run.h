// Running the `longvq` binary from tests: shell quoting, temporary directories, exit code and
// captured output, JSONL parsing. Shared by the end-to-end tests of tests/cli.
#pragma once

#include <catch2/catch.hpp>

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "loaders/safetensors.h"

namespace cli_test {

namespace fs = std::filesystem;

inline const std::string kBin = LONGVQ_CLI_BINARY;
inline const std::string kFix = LONGVQ_FIXTURES_DIR;
inline const std::string kData = LONGVQ_CLI_DATA_DIR;
inline const std::string kRepoData = std::string(LONGVQ_SOURCE_DIR) + "/tests/data";
inline const std::string kLM = kFix + "/lm_bytes_layernorm_tied";

inline std::string q(const std::string& s) {  // shell single-quoting
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

inline std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// A fresh directory per test, removed afterwards.
struct TempDir {
  fs::path path;
  TempDir() {
    static std::atomic<int> counter{0};  // NOLINT: one per process
    path = fs::temp_directory_path() / ("longvq_cli_test_" + std::to_string(getpid()) + "_" + std::to_string(counter++));
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  std::string operator/(const std::string& name) const { return (path / name).string(); }
};

struct Result {
  int code = -1;
  std::string out, err;
};

// Runs a shell command line with stdin from `stdin_file` and stdout and stderr captured (unless
// the line redirects them itself); `shown` is how the test log names it.
inline Result run_captured(const std::string& command, const std::string& stdin_file, const std::string& shown) {
  TempDir t;
  const std::string cmd = command + " < " + q(stdin_file) + " > " + q(t / "out") + " 2> " + q(t / "err");
  const int status = std::system(cmd.c_str());
  Result r;
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.out = slurp(t / "out");
  r.err = slurp(t / "err");
  UNSCOPED_INFO("$ " << shown << "\nexit " << r.code << "\nstdout: " << r.out.substr(0, 2000)
                     << "\nstderr: " << r.err.substr(0, 2000));
  return r;
}

// Runs `longvq ARGS` (a shell fragment) with stdin from `stdin_file` (default /dev/null); `env`
// goes before the binary (variables, or a command such as `timeout 20`).
inline Result run(const std::string& args, const std::string& stdin_file = "/dev/null", const std::string& env = "") {
  return run_captured(env + " " + q(kBin) + " " + args, stdin_file, "longvq " + args);
}

// Runs a shell command line in which "$LONGVQ" is the binary, for what run() cannot say: closed
// or redirected streams, limits, several processes.
inline Result shell(const std::string& line) {
  return run_captured("LONGVQ=" + q(kBin) + " sh -c " + q(line), "/dev/null", line);
}

// The names in a directory (to see that nothing, e.g. a temporary file, was left behind).
inline std::vector<std::string> names_in(const fs::path& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

inline std::vector<nlohmann::json> jsonl(const std::string& text) {
  std::vector<nlohmann::json> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line))
    if (!line.empty()) out.push_back(nlohmann::json::parse(line));
  return out;
}

inline std::vector<float> f32(const longvq::SafetensorsFile& f, const std::string& name) {
  const auto& t = f.at(name);
  std::vector<float> v(t.nbytes / sizeof(float));
  std::memcpy(v.data(), t.data, t.nbytes);
  return v;
}


}  // namespace cli_test
