// The file plumbing under the loaders and the command line: CRC-32 (zlib's), reading without
// blocking on FIFOs or reading past a cap, the atomic writer (whole or nothing, never over a
// device, EFBIG instead of a SIGXFSZ death, nothing left behind) and the mapped-file registry
// the SIGBUS handler reads.
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <thread>

#include "loaders/atomic_file.h"
#include "loaders/crc32.h"
#include "loaders/file_io.h"
#include "loaders/mapped_files.h"
#include "test_util.h"

using namespace longvq;
using namespace longvq::test;

namespace {

std::vector<std::string> names_in(const fs::path& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

TEST_CASE("crc32 is zlib's CRC-32 and chains", "[file_io]") {
  const std::string check = "123456789";
  CHECK(crc32(check.data(), check.size()) == 0xCBF43926u);  // the standard check value
  CHECK(crc32_hex(0xCBF43926u) == "cbf43926");
  CHECK(crc32(nullptr, 0) == 0);
  CHECK(crc32("56789", 5, crc32("1234", 4)) == 0xCBF43926u);
  const std::string zeros(1000, '\0');
  CHECK(crc32(zeros.data(), zeros.size()) == 0x060B1780u);  // zlib.crc32(bytes(1000))
  // Varied bytes through the 8-at-a-time path, from an odd address and with a 3-byte tail.
  std::string varied(1003, '\0');
  for (size_t i = 0; i < varied.size(); ++i) varied[i] = char((i * 7 + 3) & 0xFF);
  CHECK(crc32(varied.data(), varied.size()) == 0x25A60A70u);      // zlib.crc32(varied)
  CHECK(crc32(varied.data() + 1, varied.size() - 1) == 0xE1570C11u);  // zlib.crc32(varied[1:])
  CHECK(crc32(varied.data() + 500, 503, crc32(varied.data(), 500)) == 0x25A60A70u);
}

TEST_CASE("open_regular_file refuses FIFOs, directories and devices without blocking", "[file_io]") {
  TempDir tmp;
  REQUIRE(::mkfifo((tmp / "fifo").c_str(), 0644) == 0);  // no writer: a blocking open would wait forever
  std::string why;
  int err = -1;
  CHECK(open_regular_file(tmp / "fifo", why, err).fd() < 0);
  CHECK(err == 0);
  CHECK(why == "is a FIFO (named pipe), not a regular file");
  CHECK(open_regular_file(tmp.path(), why, err).fd() < 0);
  CHECK(why == "is a directory, not a regular file");
  CHECK(open_regular_file("/dev/zero", why, err).fd() < 0);
  CHECK(why == "is a character device, not a regular file");
  CHECK(open_regular_file(tmp / "absent", why, err).fd() < 0);
  CHECK(err == ENOENT);
  write_file(tmp / "f", "hello");
  const InputFile f = open_regular_file(tmp / "f", why, err);
  REQUIRE(f.fd() >= 0);
  CHECK(f.size() == 5);
  std::string text;
  CHECK(read_all(f.fd(), 100, text, err) == ReadStatus::ok);
  CHECK(text == "hello");
}

TEST_CASE("read_all stops at its cap on an endless stream", "[file_io]") {
  const int fd = ::open("/dev/zero", O_RDONLY);
  REQUIRE(fd >= 0);
  std::string text;
  int err = 0;
  CHECK(read_all(fd, 100000, text, err) == ReadStatus::too_big);
  CHECK(text.size() == 100000);
  ::close(fd);
}

TEST_CASE("AtomicFile writes whole files and leaves nothing behind when it does not", "[file_io]") {
  TempDir tmp;
  write_file_atomically(tmp / "a.txt", "first");
  write_file_atomically(tmp / "a.txt", "second");
  CHECK(read_file(tmp / "a.txt") == "second");
  {
    AtomicFile f(tmp / "a.txt");
    f.write("half");
  }  // never committed: the target is as it was, the temporary gone
  CHECK(read_file(tmp / "a.txt") == "second");
  CHECK(names_in(tmp.path()) == std::vector<std::string>{"a.txt"});
  // The permissions of a file it replaces are kept.
  fs::permissions(tmp / "a.txt", fs::perms::owner_read | fs::perms::owner_write);
  write_file_atomically(tmp / "a.txt", "third");
  CHECK((fs::status(tmp / "a.txt").permissions() & fs::perms::all) == (fs::perms::owner_read | fs::perms::owner_write));
  // A signal handler's cleanup removes the temporaries of writes in progress.
  {
    AtomicFile f(tmp / "b.txt");
    f.write("x");
    CHECK(names_in(tmp.path()).size() == 2);
    remove_pending_temp_files();
    CHECK(names_in(tmp.path()) == std::vector<std::string>{"a.txt"});
  }
}

TEST_CASE("AtomicFile refuses a target that is not a regular file, and never replaces it", "[file_io]") {
  TempDir tmp;
  REQUIRE(::mkfifo((tmp / "fifo").c_str(), 0644) == 0);
  fs::create_directory(tmp / "dir");
  for (const fs::path& target : {tmp / "fifo", tmp / "dir", fs::path("/dev/null")}) {
    INFO(target);
    CHECK_FALSE(output_path_problem(target).empty());
    CHECK_THROWS_AS(write_file_atomically(target, "x"), WriteError);
  }
  CHECK(fs::is_fifo(tmp / "fifo"));
  CHECK(fs::is_character_file("/dev/null"));
  CHECK(output_path_problem(tmp / "dir") == "is a directory; give a file path (e.g. " + (tmp / "dir" / "NAME").string() + ")");
  CHECK_THAT(output_path_problem(tmp / "no/such/x"), Catch::Contains("does not exist"));
  CHECK(output_path_problem(tmp / "new.txt").empty());
  CHECK(names_in(tmp.path()) == std::vector<std::string>{"dir", "fifo"});
  // A symbolic link is followed: the target changes, the link stays.
  write_file(tmp / "real", "old");
  fs::create_symlink(tmp / "real", tmp / "link");
  write_file_atomically(tmp / "link", "new");
  CHECK(fs::is_symlink(tmp / "link"));
  CHECK(read_file(tmp / "real") == "new");
}

TEST_CASE("AtomicFile: two writers of one path at once: each file is whole, the last one wins", "[file_io]") {
  TempDir tmp;
  const std::string a(1 << 20, 'a'), b(1 << 19, 'b');
  for (int round = 0; round < 5; ++round) {
    std::thread ta([&] { write_file_atomically(tmp / "same", a); });
    std::thread tb([&] { write_file_atomically(tmp / "same", b); });
    ta.join();
    tb.join();
    const std::string got = read_file(tmp / "same");
    CHECK((got == a || got == b));
    CHECK(names_in(tmp.path()).size() == 1);
  }
}

TEST_CASE("AtomicFile: a file-size limit is a WriteError even with SIGXFSZ at its default", "[file_io]") {
  TempDir tmp;
  // In a child: the limit and the signal's default action (which kills) must not reach the test.
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    std::signal(SIGXFSZ, SIG_DFL);
    const rlimit small{4096, 4096};
    ::setrlimit(RLIMIT_FSIZE, &small);
    try {
      write_file_atomically(tmp / "big", std::string(1 << 16, 'x'));
    } catch (const WriteError& e) {
      ::_exit(std::string(e.what()).find("File too large") != std::string::npos ? 0 : 2);
    }
    ::_exit(3);
  }
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  REQUIRE(WIFEXITED(status));  // not killed by SIGXFSZ
  CHECK(WEXITSTATUS(status) == 0);
  CHECK(fs::is_empty(tmp.path()));
}

TEST_CASE("mapped_file_at names the mapping that holds an address", "[file_io]") {
  static const char region[64] = {};
  const int slot = register_mapping(region, sizeof region, "/models/x/model.safetensors");
  REQUIRE(slot >= 0);
  CHECK(std::string(mapped_file_at(region + 10)) == "/models/x/model.safetensors");
  CHECK(mapped_file_at(region + 64) == nullptr);
  unregister_mapping(slot);
  CHECK(mapped_file_at(region + 10) == nullptr);
}
