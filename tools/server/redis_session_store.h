// Sessions in Redis (hiredis), so that any replica of `longvq serve` continues any session: no
// sticky routing, and a replica that dies loses no conversation (its last committed context is
// in Redis).
//
// Keys, under longvq:<model id>: (the model id covers the config and the weights' bytes, so a
// context is never loaded into another model; the state's own metadata checks the config too):
//   s:<id>     the context: a state file's bytes (with its CRC-32) or "E" for an empty one;
//              expires after --session-ttl unless used
//   lock:<id>  the request using it: a random token, expiring after --session-lock-ttl and
//              refreshed while the request runs, so a replica killed mid-request frees it soon
// A commit writes the new context only while the lock is still ours (a Lua script: check and
// set in one step), so two requests on one session are serialized (the second gets 409) and a
// state is never torn or lost. Redis being down is StoreUnavailable (503); the store reconnects
// on the next call.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "engine/serving/session_store.h"

struct redisContext;
struct redisReply;

namespace longvq::server {

struct RedisAddress {
  std::string host = "127.0.0.1";
  int port = 6379;
  int db = 0;
};
// redis://HOST[:PORT][/DB]; std::invalid_argument saying what is wrong.
RedisAddress parse_redis_url(const std::string& url);

// Config fingerprint and weights bytes as one short id (hex).
std::string model_identity(const Model& model);

class RedisSessionStore final : public SessionStore {
 public:
  RedisSessionStore(const Model& model, Backend& backend, RedisAddress address, std::chrono::seconds ttl,
                    std::chrono::milliseconds lock_ttl);
  ~RedisSessionStore() override;

  Status create(const std::string& id) override;
  Status reserve(const std::string& id) override;
  SavedContext take(const std::string& id) override;
  void commit(const std::string& id, SavedContext ctx) override;
  void release(const std::string& id) override;
  Status remove(const std::string& id) override;
  Stats stats() const override;

 private:
  struct Reply;
  // Runs a command (printf-style as redisCommand) on the shared connection, reconnecting once;
  // StoreUnavailable when Redis cannot be reached.
  Reply command(const char* format, ...) const;
  void refresh_locks();  // the background thread
  std::optional<std::string> drop_lock(const std::string& id);  // our token for `id`, forgotten
  std::string key(const std::string& id) const { return prefix_ + "s:" + id; }
  std::string lock_key(const std::string& id) const { return prefix_ + "lock:" + id; }
  std::string where(const std::string& id) const;

  const Model& model_;
  Backend& backend_;
  RedisAddress address_;
  std::chrono::seconds ttl_;
  std::chrono::milliseconds lock_ttl_;
  std::string prefix_;
  mutable std::mutex mu_;  // the connection
  mutable redisContext* ctx_ = nullptr;
  mutable std::atomic<int64_t> errors_{0};
  std::mutex held_mu_;
  std::map<std::string, std::string> held_;  // id → our lock token
  std::condition_variable stop_cv_;
  bool stop_ = false;
  std::thread refresher_;
};

}  // namespace longvq::server
