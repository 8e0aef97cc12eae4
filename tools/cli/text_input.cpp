#include "tools/cli/text_input.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
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

InputLines::InputLines(const std::string& path, int64_t max_line_bytes)
    : name_(input_name(path)), max_line_(max_line_bytes) {
  if (path == "-") {
    if (stdin_closed())
      throw UsageError("stdin is closed, so there is no input to read; give a file or pipe the input in");
    fd_ = STDIN_FILENO;
    return;
  }
  std::string why;
  int err = 0;
  InputFile file = open_regular_file(path, why, err);
  if (file.fd() < 0) {
    if (err == 0)
      throw std::runtime_error(path + ": " + why + "; give a regular file (to read a pipe or a device, pass it on "
                               "stdin: '-')");
    throw std::runtime_error(path + ": cannot open the file (" + why + ")");
  }
  fd_ = ::dup(file.fd());  // InputFile closes its own descriptor
  if (fd_ < 0) throw std::runtime_error(path + ": cannot open the file (" + std::strerror(errno) + ")");
  own_ = true;
  size_ = static_cast<int64_t>(file.size());
}

InputLines::~InputLines() {
  if (own_) ::close(fd_);
}

bool InputLines::fill() {
  if (eof_) return false;
  if (at_ > 0) buf_.erase(0, at_), at_ = 0;
  char chunk[1 << 16];
  for (;;) {
    const ssize_t k = ::read(fd_, chunk, sizeof chunk);
    if (k < 0 && errno == EINTR) continue;
    if (k < 0) throw std::runtime_error(name_ + ": read failed (" + std::strerror(errno) + ")");
    if (k == 0) {
      eof_ = true;
      return false;
    }
    buf_.append(chunk, static_cast<size_t>(k));
    return true;
  }
}

bool InputLines::next(std::string& line) {
  for (;;) {
    const size_t nl = buf_.find('\n', std::max(at_, scanned_));  // a long line is scanned once, not per chunk
    if (nl != std::string::npos || (eof_ && at_ < buf_.size())) {
      const size_t end = nl == std::string::npos ? buf_.size() : nl;
      line.assign(buf_, at_, end - at_);
      consumed_ += static_cast<int64_t>(end - at_ + (nl == std::string::npos ? 0 : 1));
      at_ = end + (nl == std::string::npos ? 0 : 1);
      scanned_ = at_;
      if (!line.empty() && line.back() == '\r') line.pop_back();
      return true;
    }
    if (static_cast<int64_t>(buf_.size() - at_) > max_line_)
      throw UsageError(name_ + ": stopped reading: more than --max-input-bytes " + group_digits(max_line_) +
                       " in one line; raise --max-input-bytes or give shorter lines");
    scanned_ = buf_.size();
    const size_t before = at_;
    if (!fill() && at_ >= buf_.size()) return false;
    scanned_ -= before - at_;  // fill() moved the unread bytes to the front
  }
}

}  // namespace longvq::cli
