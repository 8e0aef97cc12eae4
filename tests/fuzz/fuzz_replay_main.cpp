// Runs a fuzz target's LLVMFuzzerTestOneInput on every file of the given files and folders
// (its seed corpus and crash regressions), so every build replays them under ctest without
// libFuzzer. Prints how many inputs ran; a finding crashes or aborts, failing the test.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

int main(int argc, char** argv) {
  namespace fs = std::filesystem;
  size_t count = 0;
  auto run = [&](const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    const std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
    ++count;
  };
  for (int i = 1; i < argc; ++i) {
    const fs::path arg = argv[i];
    if (fs::is_directory(arg)) {
      std::vector<fs::path> files;
      for (const auto& e : fs::recursive_directory_iterator(arg))
        if (e.is_regular_file()) files.push_back(e.path());
      std::sort(files.begin(), files.end());
      for (const fs::path& f : files) run(f);
    } else if (fs::exists(arg)) {
      run(arg);
    } else {
      std::printf("%s: none yet\n", argv[i]);  // e.g. a target without crash regressions
    }
  }
  std::printf("%zu inputs replayed without a finding\n", count);
  return count > 0 ? 0 : 1;
}
