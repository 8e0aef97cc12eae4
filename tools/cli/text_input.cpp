#include "tools/cli/text_input.h"

#include <unistd.h>

#include <cstring>
#include <stdexcept>

#include <CLI/CLI.hpp>

#include "loaders/file_io.h"
#include "tools/cli/common.h"
#include "tools/cli/flag_checks.h"
#include "tools/cli/process_setup.h"

namespace longvq::cli {

void add_max_input_flag(CLI::App& app, int64_t& max_bytes) {
  app.add_option("--max-input-bytes", max_bytes,
                 "Read at most this many bytes of input (-f FILE or stdin); more is refused, a stream stops there")
      ->capture_default_str()->check(integer_in(1));
}

std::string input_name(const std::string& path) { return path == "-" ? "<stdin>" : path; }

std::string read_input(const std::string& path, int64_t max_bytes) {
  const size_t cap = static_cast<size_t>(max_bytes);
  const std::string name = input_name(path);
  auto too_big = [&](const std::string& what) {
    return UsageError(name + ": " + what + " more than --max-input-bytes " + group_digits(max_bytes) +
                      "; raise --max-input-bytes or give a smaller input");
  };
  std::string text;
  int err = 0;
  if (path == "-") {
    if (stdin_closed())
      throw UsageError("stdin is closed, so there is no input to read; give a file with -f FILE or pipe the input in");
    const ReadStatus status = read_all(STDIN_FILENO, cap, text, err);
    if (status == ReadStatus::too_big) throw too_big("stopped reading:");
    if (status == ReadStatus::failed) throw std::runtime_error(name + ": read failed (" + std::strerror(err) + ")");
    return text;
  }
  std::string why;
  const InputFile file = open_regular_file(path, why, err);
  if (file.fd() < 0) {
    if (err == 0)
      throw std::runtime_error(path + ": " + why + "; give a regular file (to read a pipe or a device, pass it on "
                               "stdin: '-f -' or no -f)");
    throw std::runtime_error(path + ": cannot open the file (" + why + ")");
  }
  // The text and what it becomes (token ids: 4 bytes per byte) must fit in memory together.
  const double memory = physical_memory();
  if (memory > 0 && 5.0 * static_cast<double>(file.size()) > memory)
    throw std::runtime_error(path + ": the file is " + human_bytes(static_cast<double>(file.size())) +
                             "; it and its tokens would not fit in this machine's " + human_bytes(memory) +
                             " of memory. Split it into smaller files");
  if (file.size() > cap) throw too_big("the file is " + group_digits(static_cast<int64_t>(file.size())) + " bytes,");
  text.reserve(file.size());
  const ReadStatus status = read_all(file.fd(), cap, text, err);
  if (status == ReadStatus::too_big) throw too_big("the file grew while read:");
  if (status == ReadStatus::failed) throw std::runtime_error(path + ": read failed (" + std::strerror(err) + ")");
  return text;
}

}  // namespace longvq::cli
