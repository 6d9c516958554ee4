#pragma once
// Where the chunk pool's slabs come from: always mimalloc. Whether mimalloc is also the process
// allocator is a build choice (FLOWRELAY_MIMALLOC_PROCESS): Debian's libmimalloc.so exports
// malloc/free, so linking it replaces glibc's allocator for the whole process; without that option
// the library is opened with dlopen(RTLD_LOCAL), which keeps it to the slabs. On Apple platforms
// mimalloc is linked (its static library overrides nothing there, and a system extension should
// not dlopen a library from outside its bundle): FLOWRELAY_SLABS_LINKED.

#include <cstddef>

namespace flowrelay::buffers {

/// `bytes` aligned to `alignment`, or nullptr.
void* slab_allocate(std::size_t bytes, std::size_t alignment) noexcept;
void slab_free(void* p) noexcept;

}  // namespace flowrelay::buffers
