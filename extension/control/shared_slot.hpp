#pragma once
// A shared_ptr one thread replaces while others read it: the running epoch, the applied epoch.
// std::atomic<std::shared_ptr> says the same, but libc++ (Apple's standard library) does not have
// it, and this code must build there; a lock held for one pointer copy is cheap next to a flow.

#include <memory>
#include <mutex>

namespace flowrelay::control {

template <typename T>
class SharedSlot {
 public:
  std::shared_ptr<T> load() const {
    std::lock_guard lk(mu_);
    return p_;
  }
  void store(std::shared_ptr<T> p) {
    std::lock_guard lk(mu_);
    p_.swap(p);  // the old value is released after the lock, by `p`
  }

 private:
  mutable std::mutex mu_;
  std::shared_ptr<T> p_;
};

}  // namespace flowrelay::control
