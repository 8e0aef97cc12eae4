#include "loaders/atomic_file.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <random>

#include "loaders/file_io.h"

namespace longvq {
namespace {

namespace fs = std::filesystem;

// The temporaries not yet committed, for remove_pending_temp_files() (which may run in a signal
// handler, so: a fixed table, atomics, no allocation). state: 0 free, 1 being filled or
// emptied, 2 holds a temporary's path.
struct PendingSlot {
  std::atomic<int> state{0};
  char path[4096];
};
PendingSlot g_pending[16];

int claim_slot(const std::string& path) {
  if (path.size() >= sizeof(g_pending[0].path)) return -1;
  for (int i = 0; i < 16; ++i) {
    int expected = 0;
    if (g_pending[i].state.compare_exchange_strong(expected, 1)) {
      std::memcpy(g_pending[i].path, path.c_str(), path.size() + 1);
      g_pending[i].state.store(2);
      return i;
    }
  }
  return -1;  // more writers at once than slots: only the signal-time cleanup misses them
}

void release_slot(int slot) {
  if (slot < 0) return;
  g_pending[slot].state.store(1);
  g_pending[slot].state.store(0);
}

// A symbolic link is followed, so the link stays and what it points to is replaced.
fs::path follow_links(const fs::path& path) {
  std::error_code ec;
  if (fs::is_symlink(fs::symlink_status(path, ec))) {
    fs::path real = fs::canonical(path, ec);
    if (!ec) return real;
  }
  return path;
}

fs::path directory_of(const fs::path& path) {
  return path.has_parent_path() ? path.parent_path() : fs::path(".");
}

// A file-size limit (ulimit -f) makes write() raise SIGXFSZ, which kills a process by default.
// Blocked while we write, the write fails with EFBIG instead; a signal left pending is
// consumed before the mask is restored, so it cannot end the process later either.
class BlockFileSizeSignal {
 public:
  BlockFileSizeSignal() {
    sigemptyset(&set_);
    sigaddset(&set_, SIGXFSZ);
    pthread_sigmask(SIG_BLOCK, &set_, &old_);
  }
  ~BlockFileSizeSignal() {
    if (!sigismember(&old_, SIGXFSZ)) {
      sigset_t pending;
      sigpending(&pending);
      if (sigismember(&pending, SIGXFSZ)) {
        const timespec now{0, 0};
        sigtimedwait(&set_, nullptr, &now);
      }
    }
    pthread_sigmask(SIG_SETMASK, &old_, nullptr);
  }

 private:
  sigset_t set_{}, old_{};
};

std::string temp_suffix() {
  static std::atomic<unsigned> counter{0};
  std::random_device rd;
  std::mt19937_64 rng((uint64_t{rd()} << 32) ^ rd() ^ static_cast<uint64_t>(::getpid()) ^ (uint64_t{counter++} << 48));
  const char* alphabet = "abcdefghijklmnopqrstuvwxyz0123456789";
  std::string s = ".tmp.";
  for (int i = 0; i < 10; ++i) s += alphabet[rng() % 36];
  return s;
}

}  // namespace

std::string output_path_problem(const fs::path& given) {
  if (given.empty()) return "the path is empty; give a file path";
  const fs::path path = follow_links(given);
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0) {
    if (S_ISREG(st.st_mode)) {
      // Replaced by a rename, so what matters is the directory (below).
    } else if (S_ISDIR(st.st_mode)) {
      return "is a directory; give a file path (e.g. " + (given / "NAME").string() + ")";
    } else {
      return "is " + file_kind_name(st.st_mode) + ", not a regular file; it is not replaced: give a file path";
    }
  } else if (errno == ELOOP) {
    return "is a symbolic link loop (" + std::string(std::strerror(errno)) + "); give a file path";
  } else if (errno != ENOENT) {
    return std::string("cannot be checked (") + std::strerror(errno) + "); give another path";
  }
  const fs::path dir = directory_of(path);
  if (::stat(dir.c_str(), &st) != 0)
    return "cannot be written: its directory " + dir.string() + " does not exist (" + std::strerror(errno) +
           "); create it or give another path";
  if (!S_ISDIR(st.st_mode)) return "cannot be written: " + dir.string() + " is not a directory; give another path";
  if (::access(dir.c_str(), W_OK | X_OK) != 0)
    return "cannot be written: no permission to create files in " + dir.string() + " (" + std::strerror(errno) +
           "); give another path";
  return "";
}

AtomicFile::AtomicFile(const fs::path& target) : target_(follow_links(target)) {
  if (const std::string problem = output_path_problem(target); !problem.empty())
    throw WriteError(target.string() + ": " + problem);
  struct stat st {};
  const bool replacing = ::stat(target_.c_str(), &st) == 0;
  for (int attempt = 0; attempt < 100 && fd_ < 0; ++attempt) {
    temp_ = target_.string() + temp_suffix();
    fd_ = ::open(temp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);  // umask applies
    if (fd_ < 0 && errno != EEXIST) break;
  }
  if (fd_ < 0) {
    const int err = errno;
    throw WriteError(target.string() + ": cannot create a temporary file beside it (" + std::strerror(err) +
                     "); nothing was written: choose another path");
  }
  slot_ = claim_slot(temp_.string());
  if (replacing) ::fchmod(fd_, st.st_mode & 07777);  // keep the permissions of the file it replaces
}

AtomicFile::~AtomicFile() { discard(); }

void AtomicFile::discard() noexcept {
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
  if (!temp_.empty()) {
    ::unlink(temp_.c_str());
    temp_.clear();
  }
  release_slot(slot_);
  slot_ = -1;
}

void AtomicFile::fail(const std::string& what, int error) {
  discard();
  throw WriteError(what + " " + target_.string() + " failed (" + std::strerror(error) +
                   "); nothing was written: free some space, raise the file-size limit (ulimit -f) or choose "
                   "another path");
}

void AtomicFile::write(const void* data, size_t size) {
  if (fd_ < 0) throw std::logic_error("AtomicFile::write after commit or failure");
  BlockFileSizeSignal block;
  const char* p = static_cast<const char*>(data);
  while (size > 0) {
    const ssize_t n = ::write(fd_, p, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      fail("writing", errno);
    }
    p += n;
    size -= static_cast<size_t>(n);
  }
}

void AtomicFile::commit() {
  if (fd_ < 0) throw std::logic_error("AtomicFile::commit after commit or failure");
  {
    BlockFileSizeSignal block;
    if (::fsync(fd_) != 0 && errno != EINVAL) fail("writing", errno);  // EINVAL: no fsync here
  }
  const int fd = fd_;
  fd_ = -1;
  if (::close(fd) != 0) fail("writing", errno);
  // The target may have changed since the constructor looked (another process): still never
  // rename over anything but a regular file.
  if (const std::string problem = output_path_problem(target_); !problem.empty()) {
    discard();
    throw WriteError(target_.string() + ": " + problem);
  }
  if (::rename(temp_.c_str(), target_.c_str()) != 0) fail("renaming the temporary file to", errno);
  temp_.clear();
  release_slot(slot_);
  slot_ = -1;
  // The rename is durable once the directory is (best effort: some file systems refuse).
  const int dir = ::open(directory_of(target_).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir >= 0) {
    ::fsync(dir);
    ::close(dir);
  }
}

void write_file_atomically(const fs::path& path, std::string_view bytes) {
  AtomicFile f(path);
  f.write(bytes);
  f.commit();
}

void remove_pending_temp_files() noexcept {
  for (PendingSlot& s : g_pending)
    if (s.state.load() == 2) ::unlink(s.path);
}

}  // namespace longvq
