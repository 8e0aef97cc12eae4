// engine_bench: the engine's side of tools/bench/compare.py.
//
//   engine_bench SPEC.json  > RESULT.json
//
// Runs exactly the inputs compare.py prepared for every system (raw little-endian files), so the
// engine, the PyTorch reference and ONNX Runtime see the same tokens, lengths and decoding state.
// SPEC: {"threads": T, "backend": "cpu" (default) | "cuda", "tasks": [TASK...]}, each TASK one of
//   {"name", "kind": "decode",   "model", "batch", "steps", "state_file" (a reference State.save
//     file, or "" = empty context), "tokens": TENSOR int32 [steps, batch], "warmup", "reps", "min_reps", "budget_s", "dump"}
//   {"name", "kind": "prefill",  "model", "batch", "n", "chunk", "tokens": TENSOR int32 [batch, n], ...}
//   {"name", "kind": "classify", "model", "batch", "length", "inputs": TENSOR int32|float32
//     [batch, length], "lengths": TENSOR int32 [batch], ...}
// TENSOR = {"file", "dtype", "shape"}. "dump" names a file for the outputs of the first (warmup)
// run: decode logits of every step [steps, batch, V], prefill logits [batch, n, V], class logits.
// Prints {"threads", "backend", "tasks": [{"name", "samples_s": [...], "load_s", "error"?}]}: one wall time
// per timed repetition (decode: all steps; prefill: the whole prompt; classify: one batch).
// This is a benchmark driver, not part of the engine; the engine is only used through longvq.h.
// compare.py builds it CPU-only (tools/bench/CMakeLists.txt); the main build also has it, with
// the CUDA backend when the build does (tools/gpu_check.sh, "backend": "cuda").
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/longvq.h"

using json = nlohmann::json;
using clk = std::chrono::steady_clock;

namespace {

double seconds_since(clk::time_point t0) { return std::chrono::duration<double>(clk::now() - t0).count(); }

template <typename T>
std::vector<T> read_tensor(const json& t, const char* want_dtype) {
  if (t.at("dtype").get<std::string>() != want_dtype)
    throw std::runtime_error("tensor " + t.at("file").get<std::string>() + ": dtype " +
                             t.at("dtype").get<std::string>() + ", expected " + want_dtype);
  size_t count = 1;
  for (const auto& d : t.at("shape")) count *= d.get<size_t>();
  std::vector<T> out(count);
  std::ifstream in(t.at("file").get<std::string>(), std::ios::binary);
  if (!in) throw std::runtime_error("cannot open " + t.at("file").get<std::string>());
  in.read(reinterpret_cast<char*>(out.data()), static_cast<std::streamsize>(count * sizeof(T)));
  if (in.gcount() != static_cast<std::streamsize>(count * sizeof(T)))
    throw std::runtime_error("short file " + t.at("file").get<std::string>());
  return out;
}

void write_floats(const std::string& path, const std::vector<float>& v) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(v.data()), static_cast<std::streamsize>(v.size() * sizeof(float)));
}

struct Loaded {
  std::shared_ptr<const longvq::Model> model;
  double load_s = 0;
};

json run_task(const json& task, int threads, longvq::BackendKind backend, std::map<std::string, Loaded>& models) {
  json res;
  res["name"] = task.at("name");
  const std::string dir = task.at("model");
  auto it = models.find(dir);
  if (it == models.end()) {
    longvq::ModelOptions mo;
    mo.backend = backend;
    const auto t0 = clk::now();
    Loaded l{longvq::Model::load(dir, mo), 0};
    l.load_s = seconds_since(t0);
    it = models.emplace(dir, l).first;
  }
  const auto& model = it->second.model;
  res["load_s"] = it->second.load_s;
  res["parameters"] = model->parameter_count();
  res["weight_bytes"] = model->weight_bytes();
  const std::string kind = task.at("kind");
  const int64_t batch = task.at("batch");
  const std::string dump = task.value("dump", "");
  std::vector<float> dumped;
  std::function<double(bool)> once;  // one timed run; `record` keeps its outputs for the dump

  longvq::SessionOptions so;
  so.max_batch = batch;
  so.threads = threads;  // CPU threads of the session's backend (CUDA ignores it)
  std::vector<int32_t> tokens, lengths;
  std::vector<float> values;
  std::unique_ptr<longvq::Session> session;
  if (kind == "decode") {
    const int64_t steps = task.at("steps");
    session = std::make_unique<longvq::Session>(model, so);
    tokens = read_tensor<int32_t>(task.at("tokens"), "int32");
    if (static_cast<int64_t>(tokens.size()) != steps * batch) throw std::runtime_error("decode tokens: wrong size");
    const std::string state_file = task.value("state_file", "");
    res["state_bytes_per_sequence"] = session->new_state(batch).bytes_per_sequence();
    once = [&, steps, state_file](bool record) {
      longvq::State state = state_file.empty() ? session->new_state(batch)
                                               : longvq::State::load(state_file, *model, session->backend());
      const auto t0 = clk::now();
      for (int64_t i = 0; i < steps; ++i) {
        auto logits = session->decode(
            state, std::span<const int32_t>(tokens).subspan(static_cast<size_t>(i * batch), static_cast<size_t>(batch)));
        if (record) dumped.insert(dumped.end(), logits.begin(), logits.end());
      }
      return seconds_since(t0);
    };
  } else if (kind == "prefill") {
    const int64_t n = task.at("n");
    so.max_chunk = task.value("chunk", int64_t{512});
    session = std::make_unique<longvq::Session>(model, so);
    tokens = read_tensor<int32_t>(task.at("tokens"), "int32");
    if (static_cast<int64_t>(tokens.size()) != batch * n) throw std::runtime_error("prefill tokens: wrong size");
    once = [&](bool record) {
      longvq::State state = session->new_state(batch);
      const auto t0 = clk::now();
      auto logits = session->prefill(state, tokens);
      const double s = seconds_since(t0);
      if (record) dumped.assign(logits.begin(), logits.end());
      return s;
    };
  } else if (kind == "classify") {
    const int64_t length = task.at("length");
    so.max_length = length;
    session = std::make_unique<longvq::Session>(model, so);
    lengths = read_tensor<int32_t>(task.at("lengths"), "int32");
    const bool real = task.at("inputs").at("dtype") == "float32";
    if (real) values = read_tensor<float>(task.at("inputs"), "float32");
    else tokens = read_tensor<int32_t>(task.at("inputs"), "int32");
    once = [&, real, length](bool record) {
      const auto t0 = clk::now();
      auto logits = real ? session->forward(std::span<const float>(values), lengths, length)
                         : session->forward(std::span<const int32_t>(tokens), lengths, length);
      const double s = seconds_since(t0);
      if (record) dumped.assign(logits.begin(), logits.end());
      return s;
    };
  } else {
    throw std::runtime_error("unknown task kind '" + kind + "'");
  }

  // Warmup runs (the first one's outputs are dumped), then repetitions: at most "reps", fewer
  // (but at least "min_reps") when the warmup says "budget_s" would be exceeded.
  const int warmup = task.value("warmup", 1);
  const int max_reps = task.value("reps", 5);
  const int min_reps = std::min(task.value("min_reps", 3), max_reps);
  const double budget = task.value("budget_s", 0.0);
  double warm_s = 0;
  for (int r = 0; r < warmup; ++r) warm_s = once(r == 0 && !dump.empty());
  int reps = max_reps;
  if (budget > 0 && warm_s > 0)
    reps = std::max(min_reps, std::min(max_reps, static_cast<int>(budget / warm_s)));
  std::vector<double> samples;
  for (int r = 0; r < reps; ++r) samples.push_back(once(warmup == 0 && r == 0 && !dump.empty()));
  if (!dump.empty()) write_floats(dump, dumped);
  res["samples_s"] = samples;
  return res;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: engine_bench SPEC.json  (written by tools/bench/compare.py)\n");
    return 2;
  }
  json spec;
  try {
    std::ifstream(argv[1]) >> spec;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "engine_bench: cannot read %s: %s\n", argv[1], e.what());
    return 2;
  }
  const int threads = spec.value("threads", 1);
  const std::string backend_name = spec.value("backend", std::string("cpu"));
  if (backend_name != "cpu" && backend_name != "cuda") {
    std::fprintf(stderr, "engine_bench: \"backend\" must be cpu or cuda, not '%s'\n", backend_name.c_str());
    return 2;
  }
  const longvq::BackendKind backend = backend_name == "cuda" ? longvq::BackendKind::cuda : longvq::BackendKind::cpu;
  std::map<std::string, Loaded> models;
  json out;
  out["threads"] = threads;
  out["backend"] = backend_name;
  out["tasks"] = json::array();
  for (const auto& task : spec.at("tasks")) {
    std::fprintf(stderr, "engine_bench: %s (threads %d)\n", task.at("name").get<std::string>().c_str(), threads);
    try {
      out["tasks"].push_back(run_task(task, threads, backend, models));
    } catch (const std::exception& e) {
      out["tasks"].push_back({{"name", task.at("name")}, {"error", e.what()}});
    }
  }
  std::cout << out.dump(1) << "\n";
  return 0;
}
