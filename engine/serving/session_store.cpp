#include "engine/serving/session_store.h"

#include <cctype>
#include <sstream>

#include "loaders/safetensors.h"

namespace longvq {
namespace {

constexpr const char* kPendingKey = "pending_token";  // as `generate --state-out` writes it
constexpr const char* kRecentKey = "recent_tokens";

std::string join(const std::vector<int32_t>& v) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) {
    if (i) s += ',';
    s += std::to_string(v[i]);
  }
  return s;
}

std::vector<int32_t> split_ids(const std::string& s, const char* key, const std::filesystem::path& path, int64_t vocab) {
  std::vector<int32_t> out;
  std::stringstream in(s);
  std::string item;
  while (std::getline(in, item, ',')) {
    size_t used = 0;
    long v = -1;
    try {
      v = std::stol(item, &used);
    } catch (const std::exception&) {
    }
    if (used != item.size() || v < 0 || v >= vocab)
      throw StateError(path.string() + ": metadata " + key + " '" + item + "' is not a token id of this model (0.." +
                       std::to_string(vocab - 1) + "); the file is corrupt");
    out.push_back(static_cast<int32_t>(v));
  }
  return out;
}

}  // namespace

bool valid_session_id(const std::string& id) {
  if (id.empty() || id.size() > 128 || id[0] == '.') return false;
  for (char c : id)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.')) return false;
  return true;
}

namespace {

std::map<std::string, std::string> context_metadata(const SavedContext& ctx) {
  std::map<std::string, std::string> meta;
  if (ctx.pending) meta[kPendingKey] = std::to_string(*ctx.pending);
  if (!ctx.recent.empty()) meta[kRecentKey] = join(ctx.recent);
  return meta;
}

SavedContext context_of(State state, const SafetensorsFile::MetadataMap& meta, const std::filesystem::path& path,
                        const Model& model) {
  SavedContext ctx;
  if (state.rows() != 1)
    throw StateError(path.string() + ": the state holds " + std::to_string(state.rows()) +
                     " sequences; a context to continue is exactly one");
  ctx.state.emplace(std::move(state));
  const int64_t V = model.config().vocab_size;
  if (auto it = meta.find(kPendingKey); it != meta.end()) {
    const std::vector<int32_t> p = split_ids(it->second, kPendingKey, path, V);
    if (p.size() != 1) throw StateError(path.string() + ": metadata " + kPendingKey + " is not one token id; the file is corrupt");
    ctx.pending = p[0];
  }
  if (auto it = meta.find(kRecentKey); it != meta.end()) ctx.recent = split_ids(it->second, kRecentKey, path, V);
  return ctx;
}

}  // namespace

void save_context(const SavedContext& ctx, const std::filesystem::path& path, const Model& model, Backend& backend) {
  if (ctx.state) return ctx.state->save(path, context_metadata(ctx));
  State(model, backend, 1).save(path, context_metadata(ctx));  // an empty context: a fresh state
}

SavedContext load_context(const std::filesystem::path& path, const Model& model, Backend& backend, std::string* warning) {
  State state = State::load(path, model, backend, warning);
  return context_of(std::move(state), SafetensorsFile(path, LoadMode::read).metadata(), path, model);
}

std::string context_bytes(const SavedContext& ctx, const Model& model, Backend& backend) {
  if (ctx.state) return ctx.state->to_bytes(context_metadata(ctx));
  return State(model, backend, 1).to_bytes(context_metadata(ctx));
}

SavedContext context_from_bytes(std::string_view bytes, const std::string& name, const Model& model, Backend& backend) {
  State state = State::from_bytes(bytes, name, model, backend);
  return context_of(std::move(state), SafetensorsFile(bytes, name).metadata(), name, model);
}

LocalSessionStore::LocalSessionStore(const Model& model, Backend& backend, size_t memory_budget,
                                     std::filesystem::path dir)
    : model_(model), backend_(backend), budget_(memory_budget), dir_(std::move(dir)) {
  if (dir_.empty()) return;
  std::filesystem::create_directories(dir_);
  for (const auto& f : std::filesystem::directory_iterator(dir_)) {  // sessions of an earlier run
    const std::string name = f.path().filename().string();
    if (!f.is_regular_file() || !name.ends_with(".state")) continue;
    const std::string id = name.substr(0, name.size() - 6);
    if (!valid_session_id(id)) continue;
    Entry& e = entries_[id];
    lru_.push_back(id);
    e.lru = std::prev(lru_.end());
  }
}

void LocalSessionStore::touch(const std::string& id, Entry& e) {
  lru_.erase(e.lru);
  lru_.push_front(id);
  e.lru = lru_.begin();
}

SessionStore::Status LocalSessionStore::create(const std::string& id) {
  std::lock_guard lock(mu_);
  if (entries_.count(id)) return Status::exists;
  Entry& e = entries_[id];
  e.context.emplace();
  lru_.push_front(id);
  e.lru = lru_.begin();
  return Status::ok;
}

SessionStore::Status LocalSessionStore::reserve(const std::string& id) {
  std::lock_guard lock(mu_);
  auto it = entries_.find(id);
  if (it == entries_.end()) return Status::missing;
  if (it->second.busy) return Status::busy;
  it->second.busy = true;
  touch(id, it->second);
  return Status::ok;
}

SavedContext LocalSessionStore::take(const std::string& id) {
  std::unique_lock lock(mu_);
  Entry& e = entries_.at(id);
  if (e.context) {
    memory_bytes_ -= e.context->bytes();
    SavedContext ctx = std::move(*e.context);
    e.context.reset();
    return ctx;
  }
  lock.unlock();  // a file read; the entry is reserved, so no one else touches it
  return load_context(file_of(id), model_, backend_);
}

void LocalSessionStore::commit(const std::string& id, SavedContext ctx) {
  std::lock_guard lock(mu_);
  auto it = entries_.find(id);
  if (it == entries_.end()) return;  // deleted meanwhile is refused while busy; nothing to do
  Entry& e = it->second;
  if (ctx.state && &ctx.state->backend() != &backend_) {  // into the store's own memory
    State own(model_, backend_, 1);
    own.set_row(0, *ctx.state, 0);
    ctx.state = std::move(own);
  }
  memory_bytes_ += ctx.bytes();
  e.context = std::move(ctx);
  e.busy = false;
  touch(id, e);
  enforce_budget();
}

void LocalSessionStore::release(const std::string& id) {
  std::lock_guard lock(mu_);
  if (auto it = entries_.find(id); it != entries_.end()) it->second.busy = false;
}

void LocalSessionStore::enforce_budget() {
  std::vector<std::string> dropped;
  for (auto it = lru_.rbegin(); it != lru_.rend() && memory_bytes_ > budget_; ++it) {  // least recent first
    Entry& e = entries_.at(*it);
    if (e.busy || !e.context) continue;
    memory_bytes_ -= e.context->bytes();
    if (dir_.empty()) dropped.push_back(*it);
    else save_context(*e.context, file_of(*it), model_, backend_);
    e.context.reset();
  }
  for (const std::string& id : dropped) {
    lru_.erase(entries_.at(id).lru);
    entries_.erase(id);
    ++evicted_;
  }
}

SessionStore::Status LocalSessionStore::remove(const std::string& id) {
  std::lock_guard lock(mu_);
  auto it = entries_.find(id);
  if (it == entries_.end()) return Status::missing;
  if (it->second.busy) return Status::busy;
  if (it->second.context) memory_bytes_ -= it->second.context->bytes();
  lru_.erase(it->second.lru);
  entries_.erase(it);
  if (!dir_.empty()) {
    std::error_code ec;
    std::filesystem::remove(file_of(id), ec);
  }
  return Status::ok;
}

SessionStore::Stats LocalSessionStore::stats() const {
  std::lock_guard lock(mu_);
  Stats s;
  for (const auto& [id, e] : entries_) (e.context ? s.in_memory : s.on_disk) += 1;
  s.memory_bytes = static_cast<int64_t>(memory_bytes_);
  s.evicted = evicted_;
  return s;
}

void LocalSessionStore::persist_all() {
  if (dir_.empty()) return;
  std::lock_guard lock(mu_);
  for (auto& [id, e] : entries_)
    if (e.context && !e.busy) {
      save_context(*e.context, file_of(id), model_, backend_);
      memory_bytes_ -= e.context->bytes();
      e.context.reset();
    }
}

}  // namespace longvq
