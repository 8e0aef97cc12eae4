#include "loaders/file_io.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace longvq {

std::string file_kind_name(mode_t mode) {
  if (S_ISREG(mode)) return "a regular file";
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISFIFO(mode)) return "a FIFO (named pipe)";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISSOCK(mode)) return "a socket";
  if (S_ISLNK(mode)) return "a symbolic link";
  return "not a regular file";
}

InputFile::~InputFile() {
  if (fd_ >= 0) ::close(fd_);
}

InputFile open_regular_file(const std::filesystem::path& path, std::string& why, int& error) {
  InputFile f;
  error = 0;
  // O_NONBLOCK: opening a FIFO that has no writer returns at once instead of waiting for one;
  // it is cleared again below (on a regular file it changes nothing anyway).
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
  if (fd < 0) {
    error = errno;
    why = std::strerror(error);
    return f;
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    error = errno;
    why = std::string("cannot stat (") + std::strerror(error) + ")";
    ::close(fd);
    return f;
  }
  if (!S_ISREG(st.st_mode)) {
    why = "is " + file_kind_name(st.st_mode) + ", not a regular file";
    ::close(fd);
    return f;
  }
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  f.fd_ = fd;
  f.size_ = static_cast<size_t>(st.st_size);
  return f;
}

ReadStatus read_all(int fd, size_t max_bytes, std::string& out, int& error) {
  error = 0;
  const size_t start = out.size();
  char buf[1 << 16];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      error = errno;
      return ReadStatus::failed;
    }
    if (n == 0) return ReadStatus::ok;
    const size_t have = out.size() - start;
    if (have + static_cast<size_t>(n) > max_bytes) {
      out.append(buf, max_bytes - have);
      return ReadStatus::too_big;
    }
    out.append(buf, static_cast<size_t>(n));
  }
}

}  // namespace longvq
