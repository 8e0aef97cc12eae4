// An environment variable set for a scope, then restored (or removed again): the tests make CUDA
// backends with LONGVQ_CUDA_* options, which a backend reads when it is made. Not thread-safe
// (setenv), like the tests that use it.
#pragma once

#include <cstdlib>
#include <optional>
#include <string>

namespace longvq::test {

class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {  // value null: the variable is left as it is
    if (const char* old = std::getenv(name)) old_ = old;
    if (value) setenv(name, value, 1);
  }
  ~ScopedEnv() {
    if (old_) setenv(name_.c_str(), old_->c_str(), 1);
    else unsetenv(name_.c_str());
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  std::string name_;
  std::optional<std::string> old_;
};

}  // namespace longvq::test
