// Fuzz target: state files (engine/state.cpp State::load) against a fixture LM with a raw-key
// window ring. Loaded states are then decoded one step, so values a kernel indexes with
// (codes, counts, positions) must have been range-checked. Only StateError and LoadError may
// escape.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "engine/longvq.h"
#include "loaders/load_error.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static auto model = longvq::Model::load(LONGVQ_FUZZ_STATE_MODEL);
  static longvq::Session session(model, {.max_batch = 4, .max_chunk = 8, .threads = 1});
  try {
    longvq::State state = longvq::State::load(fuzz::write_input(data, size, ".state"), *model, session.backend());
    if (state.batch() <= 4) {
      const std::vector<int32_t> tokens(static_cast<size_t>(state.batch()), 1);
      session.decode(state, tokens);
    }
  } catch (const longvq::StateError&) {
  } catch (const longvq::LoadError&) {
  }
  return 0;
}
