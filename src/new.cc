/*
 * new.cc: every C++ operator new and delete, on the gm_ API.
 *
 * Owns: plain, array, nothrow, sized and aligned (std::align_val_t) forms.
 * Failure follows the C++ rules: call the installed new-handler and retry;
 * with no handler, throw std::bad_alloc (nothrow forms return nullptr, also
 * when the handler throws). Every delete is free, with its checks and
 * reports (free(0x...): ...); the sized forms also check the size the
 * compiler passes (operator delete(0x...): size N does not match ...),
 * which catches deleting a derived object through a base class without a
 * virtual destructor.
 * Go counterpart: none.
 *
 * Why C++: throwing and catching need the C++ runtime. A C program that
 * preloads the library must not need libstdc++, so the build weakens every
 * undefined symbol of this file (objcopy --weaken): in a C++ program they
 * bind to the program's libstdc++; in a C program they stay unbound and are
 * never reached, because nothing there calls operator new.
 */
#include <cstddef>
#include <cstdlib>
#include <new>

#include "gomalloc.h"

#define EXPORT __attribute__((visibility("default")))

/* malloc.c: free with the size checked (cheaply), align 0 when unaligned;
 * a wrong size is reported under op. */
extern "C" __attribute__((visibility("hidden"))) void delete_sized_checked(void *p, std::size_t size,
                                                                          std::size_t align, const char *op) noexcept;

namespace {

void *alloc_or_null(std::size_t size, std::size_t align) {
    return align ? gm_aligned_alloc(align, size ? size : 1) : gm_malloc(size);
}

/* The loop of [new.delete.single]: try, call the handler, try again. */
void *new_slow(std::size_t size, std::size_t align) {
    for (;;) {
        void *p = alloc_or_null(size, align);
        if (p) return p;
        std::new_handler h = std::get_new_handler();
        if (!h) throw std::bad_alloc();
        h();
    }
}

void *new_nothrow(std::size_t size, std::size_t align) noexcept {
    void *p = alloc_or_null(size, align);
    if (__builtin_expect(p != nullptr, 1)) return p;
    try {
        return new_slow(size, align);
    } catch (...) {
        return nullptr;
    }
}

inline void *new_throw(std::size_t size, std::size_t align) {
    void *p = alloc_or_null(size, align);
    if (__builtin_expect(p != nullptr, 1)) return p;
    return new_slow(size, align);
}

inline std::size_t al(std::align_val_t a) { return static_cast<std::size_t>(a); }

} // namespace

EXPORT void *operator new(std::size_t n) { return new_throw(n, 0); }
EXPORT void *operator new[](std::size_t n) { return new_throw(n, 0); }
EXPORT void *operator new(std::size_t n, const std::nothrow_t &) noexcept { return new_nothrow(n, 0); }
EXPORT void *operator new[](std::size_t n, const std::nothrow_t &) noexcept { return new_nothrow(n, 0); }
EXPORT void *operator new(std::size_t n, std::align_val_t a) { return new_throw(n, al(a)); }
EXPORT void *operator new[](std::size_t n, std::align_val_t a) { return new_throw(n, al(a)); }
EXPORT void *operator new(std::size_t n, std::align_val_t a, const std::nothrow_t &) noexcept {
    return new_nothrow(n, al(a));
}
EXPORT void *operator new[](std::size_t n, std::align_val_t a, const std::nothrow_t &) noexcept {
    return new_nothrow(n, al(a));
}

EXPORT void operator delete(void *p) noexcept { gm_free(p); }
EXPORT void operator delete[](void *p) noexcept { gm_free(p); }
EXPORT void operator delete(void *p, const std::nothrow_t &) noexcept { gm_free(p); }
EXPORT void operator delete[](void *p, const std::nothrow_t &) noexcept { gm_free(p); }
EXPORT void operator delete(void *p, std::size_t n) noexcept { delete_sized_checked(p, n, 0, "operator delete"); }
EXPORT void operator delete[](void *p, std::size_t n) noexcept { delete_sized_checked(p, n, 0, "operator delete[]"); }
EXPORT void operator delete(void *p, std::align_val_t) noexcept { gm_free(p); }
EXPORT void operator delete[](void *p, std::align_val_t) noexcept { gm_free(p); }
EXPORT void operator delete(void *p, std::size_t n, std::align_val_t a) noexcept {
    delete_sized_checked(p, n, al(a), "operator delete");
}
EXPORT void operator delete[](void *p, std::size_t n, std::align_val_t a) noexcept {
    delete_sized_checked(p, n, al(a), "operator delete[]");
}
EXPORT void operator delete(void *p, std::align_val_t, const std::nothrow_t &) noexcept { gm_free(p); }
EXPORT void operator delete[](void *p, std::align_val_t, const std::nothrow_t &) noexcept { gm_free(p); }
