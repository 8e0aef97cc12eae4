#include "tools/cli/partial_output.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "loaders/atomic_file.h"
#include "tools/cli/common.h"

namespace longvq::cli {

namespace {

std::string error_text(int e) { return std::strerror(e); }

// Opens and locks `path`, making sure the lock is on the file that still has that name (a
// writer that finished meanwhile renamed the one we opened over its target).
int open_locked(const std::filesystem::path& path, const std::filesystem::path& target) {
  for (;;) {
    const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) throw WriteError("cannot create " + path.string() + " (" + error_text(errno) + ")");
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
      const int e = errno;
      ::close(fd);
      if (e == EWOULDBLOCK)
        throw std::runtime_error("another longvq classify is writing " + target.string() + " (" + path.string() +
                                 " is locked); wait for it to finish or choose another -o");
      throw WriteError("cannot lock " + path.string() + " (" + error_text(e) + ")");
    }
    struct stat held {}, named {};
    if (::fstat(fd, &held) == 0 && ::stat(path.c_str(), &named) == 0 && held.st_ino == named.st_ino &&
        held.st_dev == named.st_dev)
      return fd;
    ::close(fd);  // renamed away under us: take the new one
  }
}

std::string read_all_fd(int fd, const std::filesystem::path& path) {
  std::string s;
  char buf[1 << 16];
  for (off_t at = 0;;) {
    const ssize_t k = ::pread(fd, buf, sizeof buf, at);
    if (k < 0 && errno == EINTR) continue;
    if (k < 0) throw std::runtime_error("cannot read " + path.string() + " (" + error_text(errno) + ")");
    if (k == 0) return s;
    s.append(buf, static_cast<size_t>(k));
    at += k;
  }
}

}  // namespace

PartialOutput::PartialOutput(const std::filesystem::path& target, bool resume,
                             const std::function<void(const std::string&, int64_t)>& each_done)
    : target_(target), partial_(target.string() + ".partial") {
  if (std::string why = output_path_problem(partial_); !why.empty())
    throw UsageError(partial_.string() + " " + why);
  std::error_code ec;
  const bool had_partial = std::filesystem::exists(partial_, ec);
  fd_ = open_locked(partial_, target_);
  try {
    std::string done = read_all_fd(fd_, partial_);
    if (!resume && !done.empty())
      throw UsageError(partial_.string() + " holds the predictions of an interrupted run: add --resume to continue "
                       "it, or delete it to start over");
    if (resume && !had_partial && std::filesystem::is_regular_file(target_, ec)) {
      // A finished output: its rows are done; the job appends whatever the input has beyond them.
      std::error_code rc;
      std::filesystem::copy_file(target_, partial_, std::filesystem::copy_options::overwrite_existing, rc);
      if (rc) throw WriteError("cannot copy " + target_.string() + " to " + partial_.string() + " (" + rc.message() + ")");
      done = read_all_fd(fd_, partial_);
    }
    // Complete lines only: a kill in the middle of a write leaves a torn last line.
    const size_t keep = done.rfind('\n') == std::string::npos ? 0 : done.rfind('\n') + 1;
    for (size_t at = 0; at < keep;) {
      const size_t nl = done.find('\n', at);
      if (each_done) each_done(done.substr(at, nl - at), rows_done_);
      ++rows_done_;
      at = nl + 1;
    }
    if (::ftruncate(fd_, static_cast<off_t>(keep)) != 0)
      throw WriteError("cannot cut the torn last line of " + partial_.string() + " (" + error_text(errno) + ")");
    bytes_ = static_cast<int64_t>(keep);
    rows_ = rows_done_;
  } catch (...) {
    ::close(fd_);  // the partial stays as it was
    throw;
  }
}

PartialOutput::~PartialOutput() {
  if (fd_ < 0) return;
  if (!committed_ && rows_ == 0) ::unlink(partial_.c_str());  // nothing worth resuming
  ::close(fd_);
}

void PartialOutput::append(std::string_view lines) {
  if (lines.empty()) return;
  size_t done = 0;
  while (done < lines.size()) {
    const ssize_t k = ::pwrite(fd_, lines.data() + done, lines.size() - done, static_cast<off_t>(bytes_ + done));
    if (k < 0 && errno == EINTR) continue;
    if (k < 0) {
      const int e = errno;
      if (::ftruncate(fd_, static_cast<off_t>(bytes_)) != 0) {}  // back to whole rows; best effort
      if (rows_ == 0)
        throw WriteError("could not write " + target_.string() + " (" + error_text(e) + "); nothing was written");
      throw WriteError("could not write " + partial_.string() + " (" + error_text(e) + "); the " + group_digits(rows_) +
                       " predictions written so far are kept there: make room and rerun with --resume to finish "
                       "the job");
    }
    done += static_cast<size_t>(k);
  }
  bytes_ += static_cast<int64_t>(lines.size());
  for (char c : lines) rows_ += c == '\n';
}

void PartialOutput::commit() {
  if (::fsync(fd_) != 0)
    throw WriteError("could not write " + partial_.string() + " (fsync: " + error_text(errno) + "); rerun with --resume");
  if (::rename(partial_.c_str(), target_.c_str()) != 0)
    throw WriteError("could not rename " + partial_.string() + " to " + target_.string() + " (" + error_text(errno) +
                     "); the predictions are complete in " + partial_.string());
  committed_ = true;
  ::close(fd_);  // releases the lock, now on OUT
  fd_ = -1;
}

}  // namespace longvq::cli
