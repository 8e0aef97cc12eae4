// Loads the installed default model through the public API and greedily decodes a few bytes.
// Prints the model directory on the first line, the text on the second.
// --cuda-module-candidates: prints where the CUDA backend module is looked for instead.
#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "engine/longvq.h"
#include "engine/runtime/install_paths.h"
#include "engine/text/tokenizer.h"

int main(int argc, char** argv) {
  if (argc > 1 && std::string(argv[1]) == "--cuda-module-candidates") {  // where the CUDA module is looked for
    for (const auto& p : longvq::cuda_module_candidates()) std::printf("%s\n", p.c_str());
    return 0;
  }
  const std::filesystem::path dir = longvq::find_default_model_dir();
  if (dir.empty()) {
    std::fprintf(stderr, "%s\n", longvq::default_model_missing_message("(consumer test)").c_str());
    return 1;
  }
  auto model = longvq::Model::load(dir);
  const longvq::Tokenizer tokenizer(model->config().tokenizer);
  longvq::Session session(model, {.threads = 1});
  longvq::State state = session.new_state(1);
  const std::vector<int32_t> prompt = tokenizer.encode("It is a truth");
  const longvq::RowTokens row{.row = 0, .tokens = prompt};
  std::span<const float> logits = session.prefill(state, std::span(&row, 1));
  std::vector<int32_t> out;
  for (int step = 0; step < 8; ++step) {
    const int32_t next = static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
    out.push_back(next);
    const int32_t rows[] = {0};
    logits = session.decode(state, rows, std::span(&out.back(), 1));
  }
  std::printf("%s\n%s\n", dir.c_str(), tokenizer.decode(out).c_str());
  return 0;
}
