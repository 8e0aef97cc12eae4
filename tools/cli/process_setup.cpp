#include "tools/cli/process_setup.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "loaders/atomic_file.h"
#include "loaders/mapped_files.h"

namespace longvq::cli {
namespace {

bool g_stdin_closed = false;

void say(const char* s) {
  ssize_t ignored = ::write(STDERR_FILENO, s, std::strlen(s));
  (void)ignored;
}

void on_bus_error(int sig, siginfo_t* info, void*) {
  if (const char* file = mapped_file_at(info->si_addr)) {
    say("\nerror: ");
    say(file);
    say(": the file changed on disk (truncated or rewritten in place) while this run had it memory-mapped, so its "
        "weights can no longer be read. Rerun once it is complete again; --no-mmap reads the weights into memory at "
        "load, which a later change to the file cannot affect\n");
    remove_pending_temp_files();
    ::_exit(1);
  }
  ::signal(sig, SIG_DFL);  // not a mapped file: a real fault, which must still crash visibly
  ::raise(sig);
}

void on_termination(int sig) {
  remove_pending_temp_files();
  ::signal(sig, SIG_DFL);
  ::raise(sig);
}

void reopen_if_closed(int fd, int flags) {
  if (::fcntl(fd, F_GETFD) != -1 || errno != EBADF) return;
  if (fd == STDIN_FILENO) g_stdin_closed = true;
  const int null_fd = ::open("/dev/null", flags | O_CLOEXEC);
  if (null_fd >= 0 && null_fd != fd) {
    ::dup2(null_fd, fd);
    ::close(null_fd);
  }
}

}  // namespace

void setup_process() {
  // In order: each reopened descriptor then takes the lowest free number, its own.
  reopen_if_closed(STDIN_FILENO, O_RDONLY);
  reopen_if_closed(STDOUT_FILENO, O_RDONLY);  // read-only: every write to stdout fails, and is reported
  reopen_if_closed(STDERR_FILENO, O_WRONLY);

  ::signal(SIGPIPE, SIG_IGN);
  ::signal(SIGXFSZ, SIG_IGN);

  struct sigaction bus {};
  bus.sa_sigaction = on_bus_error;
  bus.sa_flags = SA_SIGINFO;
  sigemptyset(&bus.sa_mask);
  ::sigaction(SIGBUS, &bus, nullptr);

  for (int sig : {SIGINT, SIGTERM, SIGHUP}) {
    struct sigaction old {};
    ::sigaction(sig, nullptr, &old);
    if (old.sa_handler == SIG_IGN) continue;  // e.g. nohup: keep ignoring
    struct sigaction term {};
    term.sa_handler = on_termination;
    sigemptyset(&term.sa_mask);
    ::sigaction(sig, &term, nullptr);
  }
}

bool stdin_closed() { return g_stdin_closed; }

}  // namespace longvq::cli
