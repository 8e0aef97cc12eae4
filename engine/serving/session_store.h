// Conversations kept between requests: a LongVQ context is a fixed-size state (one State row)
// plus its pending token, so a server can hold thousands, park them on disk and resume any of
// them without re-reading its history.
//
// The store hands a session to one request at a time (reserve → take → commit or release; a
// second request on a busy session is refused, the server answers 409). LocalSessionStore keeps
// contexts in memory up to a byte budget and spills the least recently used ones to a directory
// (atomic writes: a crash never leaves a torn file), where they survive a restart.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <list>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "engine/runtime/state.h"

namespace longvq {

// A conversation's whole context.
struct SavedContext {
  std::optional<State> state;      // one row; none: an empty context (nothing consumed yet)
  std::optional<int32_t> pending;  // the last token, which the state has not consumed
  std::vector<int32_t> recent;     // the latest tokens (for a continuation's repetition penalty)

  bool empty() const { return !pending && (!state || state->positions()[0] == 0); }
  size_t bytes() const { return (state ? state->bytes_per_sequence() : 0) + recent.size() * sizeof(int32_t); }
};

// A session id: 1–128 characters of [A-Za-z0-9_.-], not starting with '.'. Ids name files.
bool valid_session_id(const std::string& id);

// State file + the context's extra metadata (pending token, recent tokens): the format of
// `generate --state-out` (docs/file-formats.md §3), so either can continue the other's files.
void save_context(const SavedContext& ctx, const std::filesystem::path& path, const Model& model, Backend& backend);
SavedContext load_context(const std::filesystem::path& path, const Model& model, Backend& backend,
                          std::string* warning = nullptr);
// The same format in memory (a context kept in Redis); `name` stands for the path in messages.
std::string context_bytes(const SavedContext& ctx, const Model& model, Backend& backend);
SavedContext context_from_bytes(std::string_view bytes, const std::string& name, const Model& model, Backend& backend);

// The session store cannot be reached (a Redis down): the server answers 503 and retries later.
class StoreUnavailable : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class SessionStore {
 public:
  enum class Status { ok, busy, missing, exists };
  struct Stats {
    int64_t in_memory = 0, on_disk = 0;
    int64_t memory_bytes = 0;
    int64_t evicted = 0;  // dropped for the memory budget with no directory to spill to
    int64_t errors = 0;   // operations that failed because the store was unavailable
  };

  virtual ~SessionStore() = default;
  virtual Status create(const std::string& id) = 0;   // a new, empty session (exists: already there)
  virtual Status reserve(const std::string& id) = 0;  // for one request (busy, missing)
  // A reserved session's context, handed over: give it (or its successor) back with commit().
  virtual SavedContext take(const std::string& id) = 0;
  virtual void commit(const std::string& id, SavedContext ctx) = 0;  // the context now; unreserves
  virtual void release(const std::string& id) = 0;  // unreserves a session that was not taken
  virtual Status remove(const std::string& id) = 0;               // busy, missing
  virtual Stats stats() const = 0;
  virtual void persist_all() {}  // at shutdown: everything held in memory goes to disk
};

class LocalSessionStore final : public SessionStore {
 public:
  // `dir` empty: memory only (sessions beyond the budget are dropped, counted in evicted).
  // Contexts are kept in `backend`'s memory (committed ones are copied there), so the store
  // outlives the sessions that commit to it.
  LocalSessionStore(const Model& model, Backend& backend, size_t memory_budget, std::filesystem::path dir);

  Status create(const std::string& id) override;
  Status reserve(const std::string& id) override;
  SavedContext take(const std::string& id) override;
  void commit(const std::string& id, SavedContext ctx) override;
  void release(const std::string& id) override;
  Status remove(const std::string& id) override;
  Stats stats() const override;
  void persist_all() override;

 private:
  struct Entry {
    std::optional<SavedContext> context;  // in memory (else on disk)
    bool busy = false;
    std::list<std::string>::iterator lru;
  };
  std::filesystem::path file_of(const std::string& id) const { return dir_ / (id + ".state"); }
  void touch(const std::string& id, Entry& e);
  void enforce_budget();  // with mu_ held

  const Model& model_;
  Backend& backend_;
  size_t budget_;
  std::filesystem::path dir_;
  mutable std::mutex mu_;
  std::map<std::string, Entry> entries_;
  std::list<std::string> lru_;  // most recently used first
  size_t memory_bytes_ = 0;
  int64_t evicted_ = 0;
};

}  // namespace longvq
