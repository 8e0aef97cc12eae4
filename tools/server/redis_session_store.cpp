#include "tools/server/redis_session_store.h"

#include <hiredis/hiredis.h>

#include <cstdarg>
#include <cstdio>
#include <optional>
#include <random>
#include <stdexcept>
#include <string_view>

#include "loaders/crc32.h"
#include "loaders/safetensors.h"

namespace longvq::server {

namespace {

constexpr const char* kEmpty = "E";  // the value of a session with an empty context

// Check-and-act steps that must be one step in Redis (another replica may act in between).
constexpr const char* kReserve =  // 1 ok, 0 busy, -1 missing
    "if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end "
    "if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end return 0";
// A commit first stores the state under a key of its own (a plain SET), then this script swaps it
// in: passing the ~0.4 MB value through a Lua script instead copied it three times more
// (1.9 ms against 0.5 ms a commit, docs/benchmarks.md).
constexpr const char* kCommit =  // 1 written, 0 the lock is not ours any more
    "if redis.call('GET', KEYS[2]) == ARGV[1] then "
    "redis.call('RENAME', KEYS[3], KEYS[1]) redis.call('EXPIRE', KEYS[1], ARGV[2]) redis.call('DEL', KEYS[2]) "
    "return 1 end redis.call('DEL', KEYS[3]) return 0";
constexpr const char* kRelease = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0";
constexpr const char* kRefresh =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 0";
constexpr const char* kRemove =  // -1 busy, 0 missing, 1 deleted
    "if redis.call('EXISTS', KEYS[2]) == 1 then return -1 end return redis.call('DEL', KEYS[1])";

std::string random_token() {
  std::random_device rd;
  char buf[40];
  std::snprintf(buf, sizeof buf, "%08x%08x%08x%08x", rd(), rd(), rd(), rd());
  return buf;
}

}  // namespace

struct RedisSessionStore::Reply {
  redisReply* r = nullptr;
  explicit Reply(redisReply* p) : r(p) {}
  Reply(Reply&& o) noexcept : r(o.r) { o.r = nullptr; }
  ~Reply() {
    if (r) freeReplyObject(r);
  }
  long long integer() const { return r->type == REDIS_REPLY_INTEGER ? r->integer : 0; }
  bool nil() const { return r->type == REDIS_REPLY_NIL; }
  std::string_view str() const { return {r->str, r->len}; }
};

RedisAddress parse_redis_url(const std::string& url) {
  const std::string scheme = "redis://";
  if (url.rfind(scheme, 0) != 0)
    throw std::invalid_argument("--session-store '" + url + "': give redis://HOST[:PORT][/DB] (or leave it out for "
                                "the server's own memory and --session-dir)");
  RedisAddress a;
  std::string rest = url.substr(scheme.size());
  if (const size_t slash = rest.find('/'); slash != std::string::npos) {
    const std::string db = rest.substr(slash + 1);
    if (db.empty() || db.find_first_not_of("0123456789") != std::string::npos || db.size() > 4)
      throw std::invalid_argument("--session-store '" + url + "': the database after '/' must be a number 0..9999");
    a.db = std::stoi(db);
    rest = rest.substr(0, slash);
  }
  if (const size_t colon = rest.rfind(':'); colon != std::string::npos) {
    const std::string port = rest.substr(colon + 1);
    if (port.empty() || port.find_first_not_of("0123456789") != std::string::npos || port.size() > 5 ||
        std::stoi(port) < 1 || std::stoi(port) > 65535)
      throw std::invalid_argument("--session-store '" + url + "': the port must be a number 1..65535");
    a.port = std::stoi(port);
    rest = rest.substr(0, colon);
  }
  if (rest.empty()) throw std::invalid_argument("--session-store '" + url + "': no host");
  a.host = rest;
  return a;
}

std::string model_identity(const Model& model) {
  const std::string fp = model.config().fingerprint();
  uint32_t weights = 0;
  const SafetensorsFile file(model.dir() / "model.safetensors");  // mapped: only read once here
  weights = crc32(file.data_area(), file.data_area_size());
  return crc32_hex(crc32(fp.data(), fp.size())) + crc32_hex(weights);
}

RedisSessionStore::RedisSessionStore(const Model& model, Backend& backend, RedisAddress address,
                                     std::chrono::seconds ttl, std::chrono::milliseconds lock_ttl)
    : model_(model), backend_(backend), address_(std::move(address)), ttl_(ttl), lock_ttl_(lock_ttl),
      prefix_("longvq:" + model_identity(model) + ":") {
  command("PING");  // fail at start when Redis is not there (StoreUnavailable)
  refresher_ = std::thread([this] { refresh_locks(); });
}

RedisSessionStore::~RedisSessionStore() {
  {
    std::lock_guard lock(held_mu_);
    stop_ = true;
  }
  stop_cv_.notify_all();
  refresher_.join();
  if (ctx_) redisFree(ctx_);
}

std::string RedisSessionStore::where(const std::string& id) const {
  return "redis://" + address_.host + ":" + std::to_string(address_.port) + "/" + std::to_string(address_.db) +
         " session '" + id + "'";
}

RedisSessionStore::Reply RedisSessionStore::command(const char* format, ...) const {
  std::lock_guard lock(mu_);
  std::string why;
  for (int attempt = 0; attempt < 2; ++attempt) {
    if (!ctx_ || ctx_->err) {  // (re)connect: Redis may have restarted
      if (ctx_) redisFree(ctx_);
      const timeval connect_timeout{1, 0};
      ctx_ = redisConnectWithTimeout(address_.host.c_str(), address_.port, connect_timeout);
      if (!ctx_ || ctx_->err) {
        why = ctx_ ? ctx_->errstr : "out of memory";
        continue;
      }
      const timeval command_timeout{2, 0};
      redisSetTimeout(ctx_, command_timeout);
      if (address_.db != 0) {
        Reply sel(static_cast<redisReply*>(redisCommand(ctx_, "SELECT %d", address_.db)));
        if (!sel.r || sel.r->type == REDIS_REPLY_ERROR) {
          why = sel.r ? std::string(sel.str()) : ctx_->errstr;
          continue;
        }
      }
    }
    va_list args;
    va_start(args, format);
    Reply reply(static_cast<redisReply*>(redisvCommand(ctx_, format, args)));
    va_end(args);
    if (!reply.r) {  // the connection failed mid-command
      why = ctx_->errstr;
      continue;
    }
    if (reply.r->type == REDIS_REPLY_ERROR)
      throw StoreUnavailable("redis://" + address_.host + ":" + std::to_string(address_.port) + " refused a command: " +
                             std::string(reply.str()));
    return reply;
  }
  errors_.fetch_add(1);
  throw StoreUnavailable("the session store redis://" + address_.host + ":" + std::to_string(address_.port) +
                         " cannot be reached (" + why + "); is redis-server running? Retry when it is back");
}

SessionStore::Status RedisSessionStore::create(const std::string& id) {
  Reply r = command("SET %b %s NX EX %lld", key(id).data(), key(id).size(), kEmpty,
                    static_cast<long long>(ttl_.count()));
  return r.nil() ? Status::exists : Status::ok;
}

SessionStore::Status RedisSessionStore::reserve(const std::string& id) {
  const std::string token = random_token(), k = key(id), l = lock_key(id);
  Reply r = command("EVAL %s 2 %b %b %s %lld", kReserve, k.data(), k.size(), l.data(), l.size(), token.c_str(),
                    static_cast<long long>(lock_ttl_.count()));
  if (r.integer() == -1) return Status::missing;
  if (r.integer() == 0) return Status::busy;
  std::lock_guard lock(held_mu_);
  held_[id] = token;
  return Status::ok;
}

SavedContext RedisSessionStore::take(const std::string& id) {
  const std::string k = key(id);
  Reply r = command("GET %b", k.data(), k.size());
  if (r.nil()) throw StateError(where(id) + " expired or was deleted while the request waited; start a new one");
  if (r.str() == kEmpty) return SavedContext{};
  return context_from_bytes(r.str(), where(id), model_, backend_);
}

std::optional<std::string> RedisSessionStore::drop_lock(const std::string& id) {
  std::lock_guard lock(held_mu_);
  auto it = held_.find(id);
  if (it == held_.end()) return std::nullopt;
  std::string token = std::move(it->second);
  held_.erase(it);
  return token;
}

void RedisSessionStore::commit(const std::string& id, SavedContext ctx) {
  const std::optional<std::string> held = drop_lock(id);
  if (!held) return;
  const std::string& token = *held;
  const std::string value = ctx.empty() ? std::string(kEmpty) : context_bytes(ctx, model_, backend_);
  const std::string k = key(id), l = lock_key(id), next = prefix_ + "next:" + id + ":" + token;
  command("SET %b %b PX %lld", next.data(), next.size(), value.data(), value.size(),
          static_cast<long long>(lock_ttl_.count()));  // expires by itself if this replica dies now
  Reply r = command("EVAL %s 3 %b %b %b %s %lld", kCommit, k.data(), k.size(), l.data(), l.size(), next.data(),
                    next.size(), token.c_str(), static_cast<long long>(ttl_.count()));
  if (r.integer() != 1)
    throw StateError(where(id) + ": its lock expired while this request ran (another replica may hold the session "
                                 "now), so this request's context was not saved; raise --session-lock-ttl");
}

void RedisSessionStore::release(const std::string& id) {
  const std::optional<std::string> token = drop_lock(id);
  if (!token) return;
  const std::string l = lock_key(id);
  try {
    command("EVAL %s 1 %b %s", kRelease, l.data(), l.size(), token->c_str());
  } catch (const StoreUnavailable&) {  // the lock expires by itself
  }
}

SessionStore::Status RedisSessionStore::remove(const std::string& id) {
  const std::string k = key(id), l = lock_key(id);
  Reply r = command("EVAL %s 2 %b %b", kRemove, k.data(), k.size(), l.data(), l.size());
  return r.integer() == -1 ? Status::busy : r.integer() == 0 ? Status::missing : Status::ok;
}

SessionStore::Stats RedisSessionStore::stats() const {
  Stats s;
  s.errors = errors_.load();
  try {  // how many sessions this model has in Redis (a SCAN, capped: metrics must stay cheap)
    std::string cursor = "0";
    const std::string pattern = prefix_ + "s:*";
    do {
      Reply r = command("SCAN %s MATCH %b COUNT 1000", cursor.c_str(), pattern.data(), pattern.size());
      if (r.r->type != REDIS_REPLY_ARRAY || r.r->elements != 2) break;
      cursor.assign(r.r->element[0]->str, r.r->element[0]->len);
      s.on_disk += static_cast<int64_t>(r.r->element[1]->elements);
    } while (cursor != "0" && s.on_disk < 1'000'000);
  } catch (const StoreUnavailable&) {
    s.errors = errors_.load();
  }
  return s;
}

void RedisSessionStore::refresh_locks() {
  std::unique_lock lock(held_mu_);
  while (!stop_) {
    stop_cv_.wait_for(lock, lock_ttl_ / 3);
    if (stop_) break;
    const std::map<std::string, std::string> held = held_;
    lock.unlock();
    for (const auto& [id, token] : held) {
      const std::string l = lock_key(id);
      try {
        command("EVAL %s 1 %b %s %lld", kRefresh, l.data(), l.size(), token.c_str(),
                static_cast<long long>(lock_ttl_.count()));
      } catch (const StoreUnavailable&) {  // counted; the commit will say if the lock was lost
      }
    }
    lock.lock();
  }
}

}  // namespace longvq::server
