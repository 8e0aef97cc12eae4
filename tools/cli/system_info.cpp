#include "tools/cli/system_info.h"

#include <fstream>

#include "tools/cli/common.h"

namespace longvq::cli {

std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) == 0) {
      const size_t colon = line.find(':');
      if (colon != std::string::npos) {
        std::string v = line.substr(colon + 1);
        v.erase(0, v.find_first_not_of(" \t"));
        return v;
      }
    }
  }
  return "unknown";
}

MemoryPlan plan_for(const Model& model, GraphKind kind, int64_t max_batch, int64_t max_seq) {
  Graph g = build_graph(model, kind, max_batch, max_seq);
  return plan_memory(g);
}

size_t state_bytes_formula(const ModelConfig& c) {
  const int64_t W = c.attention.window, S = c.attention.codebook_size;
  const int64_t per_layer = c.d_model * c.ema_ndim + W * (c.hidden_dim + 1 + (c.attention.quantize_window_keys ? 0 : c.z_dim)) +
                            S * (c.hidden_dim + 1);
  return static_cast<size_t>(8 + c.n_layers * 4 * per_layer);
}

std::string state_bytes_formula_text(const ModelConfig& c) {
  const bool raw = !c.attention.quantize_window_keys;
  return strf("8 (pos) + %lld layers × 4 B × (d·N + W·(h+1%s) + S·(h+1)) = 8 + %lld × 4 × (%lld·%lld + %lld·(%lld+1%s) + "
              "%lld·(%lld+1))",
              static_cast<long long>(c.n_layers), raw ? "+e" : "", static_cast<long long>(c.n_layers),
              static_cast<long long>(c.d_model), static_cast<long long>(c.ema_ndim),
              static_cast<long long>(c.attention.window), static_cast<long long>(c.hidden_dim),
              raw ? strf("+%lld", static_cast<long long>(c.z_dim)).c_str() : "",
              static_cast<long long>(c.attention.codebook_size), static_cast<long long>(c.hidden_dim));
}

}  // namespace longvq::cli
