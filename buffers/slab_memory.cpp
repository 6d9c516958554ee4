#include "buffers/slab_memory.hpp"

#ifdef FLOWRELAY_SLABS_LINKED

#include <mimalloc.h>

namespace flowrelay::buffers {
void* slab_allocate(std::size_t bytes, std::size_t alignment) noexcept { return mi_malloc_aligned(bytes, alignment); }
void slab_free(void* p) noexcept { mi_free(p); }
}  // namespace flowrelay::buffers

#else

#include <dlfcn.h>

#include <cstdio>
#include <cstdlib>

namespace flowrelay::buffers {
namespace {

struct Mimalloc {
  void* (*malloc_aligned)(std::size_t, std::size_t) = nullptr;
  void (*free)(void*) = nullptr;

  Mimalloc() {
    // RTLD_LOCAL: its malloc/free stay out of the global scope, so glibc keeps the process.
    void* lib = ::dlopen("libmimalloc.so.2", RTLD_NOW | RTLD_LOCAL);
    if (lib == nullptr) {
      std::fprintf(stderr, "flowrelay: cannot load libmimalloc.so.2 for the chunk pool: %s\n", ::dlerror());
      std::abort();
    }
    malloc_aligned = reinterpret_cast<void* (*)(std::size_t, std::size_t)>(::dlsym(lib, "mi_malloc_aligned"));
    free = reinterpret_cast<void (*)(void*)>(::dlsym(lib, "mi_free"));
    if (malloc_aligned == nullptr || free == nullptr) {
      std::fprintf(stderr, "flowrelay: libmimalloc.so.2 lacks mi_malloc_aligned/mi_free\n");
      std::abort();
    }
  }
};

const Mimalloc& mimalloc() {
  static const Mimalloc m;
  return m;
}

}  // namespace

void* slab_allocate(std::size_t bytes, std::size_t alignment) noexcept { return mimalloc().malloc_aligned(bytes, alignment); }
void slab_free(void* p) noexcept { mimalloc().free(p); }

}  // namespace flowrelay::buffers

#endif
