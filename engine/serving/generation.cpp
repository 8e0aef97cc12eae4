#include "engine/serving/generation.h"

#include <algorithm>
#include <cmath>

namespace longvq {

namespace {
constexpr size_t kRecentTokens = 1024;  // kept for a continuation's repetition penalty

std::optional<int32_t> special(const Tokenizer& tok, const char* name) {
  if (tok.kind() != TokenizerConfig::Kind::bytes) return std::nullopt;
  for (const std::string& s : tok.config().specials)
    if (s == name) return tok.special_id(name);
  return std::nullopt;
}
}  // namespace

const char* finish_reason_name(FinishReason r) {
  switch (r) {
    case FinishReason::none: return "none";
    case FinishReason::stop: return "stop";
    case FinishReason::length: return "length";
    case FinishReason::cancelled: return "cancelled";
    case FinishReason::timeout: return "timeout";
    case FinishReason::error: return "error";
  }
  return "?";
}

std::optional<int32_t> eos_token(const Tokenizer& tok) { return special(tok, "<eos>"); }
std::optional<int32_t> bos_token(const Tokenizer& tok) { return special(tok, "<bos>"); }

std::string token_piece(const Tokenizer& tok, int32_t id) {
  std::string piece = tok.decode(std::span<const int32_t>(&id, 1));
  if (tok.kind() == TokenizerConfig::Kind::vocab) piece.insert(piece.begin(), ' ');  // words follow with a space
  return piece;
}

TokenInfo token_info(const Tokenizer& tok, std::span<const float> logits, int32_t id, int top_k) {
  double top = logits[0];
  for (float l : logits) top = std::max(top, static_cast<double>(l));
  double sum = 0;
  for (float l : logits) sum += std::exp(static_cast<double>(l) - top);
  const double log_z = top + std::log(sum);
  TokenInfo info;
  info.id = id;
  info.piece = token_piece(tok, id);
  info.logprob = static_cast<double>(logits[static_cast<size_t>(id)]) - log_z;
  if (top_k > 0) {
    std::vector<int32_t> ids(logits.size());
    for (size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<int32_t>(i);
    const size_t k = std::min(ids.size(), static_cast<size_t>(top_k));
    std::partial_sort(ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(k), ids.end(), [&](int32_t a, int32_t b) {
      const float la = logits[static_cast<size_t>(a)], lb = logits[static_cast<size_t>(b)];
      return la != lb ? la > lb : a < b;
    });
    for (size_t i = 0; i < k; ++i)
      info.top.emplace_back(ids[i], static_cast<double>(logits[static_cast<size_t>(ids[i])]) - log_z);
  }
  return info;
}

Generation::Generation(const Tokenizer& tok, GenerationParams params, std::optional<int32_t> eos)
    : tok_(tok), params_(std::move(params)), eos_(eos), sampler_(params_.sampling), stream_(params_.stop, params_.utf8) {
  if (params_.max_tokens <= 0) reason_ = FinishReason::length;
}

void Generation::remember(int32_t token) {
  sampler_.accept(token);
  recent_.push_back(token);
  if (recent_.size() > 2 * kRecentTokens) recent_.erase(recent_.begin(), recent_.end() - kRecentTokens);
}

void Generation::accept_context(std::span<const int32_t> tokens) {
  for (int32_t t : tokens) remember(t);
}

Generation::Step Generation::step(std::span<const float> logits) {
  Step s;
  const int32_t id = sampler_.sample(logits);
  remember(id);
  pending_ = id;
  ++generated_;
  if (params_.logprobs >= 0) s.token = token_info(tok_, logits, id, params_.logprobs);
  else s.token.id = id;
  if (params_.stop_at_eos && eos_ && id == *eos_) {
    reason_ = FinishReason::stop;
    s.text = stream_.flush();
  } else {
    if (params_.logprobs < 0) s.token.piece = token_piece(tok_, id);
    s.text = stream_.push(s.token.piece);
    if (stream_.stopped()) reason_ = FinishReason::stop;
    else if (generated_ >= params_.max_tokens) reason_ = FinishReason::length;
    if (reason_ == FinishReason::length) s.text += stream_.flush();
  }
  text_ += s.text;
  s.finished = finished();
  return s;
}

std::string Generation::finish(FinishReason reason) {
  if (finished()) return {};
  reason_ = reason;
  std::string rest = stream_.flush();
  text_ += rest;
  return rest;
}

}  // namespace longvq
