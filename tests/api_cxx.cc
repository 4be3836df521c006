/*
 * api_cxx: every replaceable C++ operator new/delete form.
 *
 * Plain, array, nothrow, sized delete, aligned (std::align_val_t) new/delete
 * including aligned nothrow and aligned sized delete, alignments 1 B .. 2 MiB;
 * failure calls the new-handler until it removes itself and then throws
 * std::bad_alloc; nothrow forms return nullptr; new T[0] is unique.
 * Runs under LD_PRELOAD=libgomalloc.so; nothing here is gomalloc-specific.
 */
#include "testlib.h"

#include <malloc.h>

#include <cstddef>
#include <cstdint>
#include <new>

static volatile size_t v_zero = 0;

static inline void *hide(void *p) {
    __asm__ volatile("" : "+r"(p) : : "memory");
    return p;
}

/* Fill and verify [p, p+n) so the allocation is really used. */
static int touch(void *p, size_t n, unsigned seed) {
    unsigned char *b = static_cast<unsigned char *>(hide(p));
    for (size_t i = 0; i < n; i++) b[i] = (unsigned char)(seed + i * 131);
    hide(b);
    for (size_t i = 0; i < n; i++)
        if (b[i] != (unsigned char)(seed + i * 131)) return 0;
    return 1;
}

static size_t min_align(size_t n) { return n >= 16 ? 16 : 8; }

/*
 * Known stand-in deviations, tolerated only for the stand-ins (never when
 * gomalloc is loaded; gomalloc replaces every operator itself):
 *   - mimalloc 2.0.9 (Debian 12) is built as C: its operator new aborts on
 *     failure instead of calling the new-handler and throwing bad_alloc, and
 *     its nothrow forms never call the handler;
 *   - mimalloc 2.0.9 returns misaligned blocks for alignment 256..1024 when the
 *     size is a small multiple of it (microsoft/mimalloc#700);
 *   - libstdc++ 12's aligned operator new rounds the size up to the alignment
 *     without an overflow check, so new(SIZE_MAX, align_val_t{64}) wraps to a
 *     tiny successful allocation (used when nothing replaces the operator).
 */
static bool gm_active() { return tl_gomalloc_active(); }
static bool is_mimalloc() { return !gm_active() && dlsym(RTLD_DEFAULT, "mi_malloc") != nullptr; }
static bool mimalloc_align_bug(size_t align, size_t size) {
    return is_mimalloc() && align >= 256 && align <= 1024 && size <= 1024 && size % align == 0;
}
static bool libstdcxx_aligned_wrap(size_t align, size_t size) {
    return !gm_active() && !is_mimalloc() && size > SIZE_MAX - align + 1;
}

static const size_t kSizes[] = {0, 1, 7, 8, 15, 16, 17, 24, 100, 1000, 4096, 32768, 32769, 100000, 1 << 20, 5 << 20};

TEST(new_delete_plain_array_sized) {
    unsigned seed = 1;
    for (size_t s : kSizes) {
        volatile size_t n = s;
        void *p = ::operator new(n);
        CHECKF(p != nullptr, "operator new(%zu)", s);
        CHECKF((uintptr_t)p % min_align(s) == 0, "operator new(%zu) = %p misaligned", s, p);
        CHECK(touch(p, s, seed++));
        ::operator delete(hide(p));

        p = ::operator new(n);
        CHECK(touch(p, s, seed++));
        ::operator delete(hide(p), (size_t)n); /* sized */

        p = ::operator new[](n);
        CHECKF(p != nullptr, "operator new[](%zu)", s);
        CHECKF((uintptr_t)p % min_align(s) == 0, "operator new[](%zu) misaligned", s);
        CHECK(touch(p, s, seed++));
        ::operator delete[](hide(p));

        p = ::operator new[](n);
        CHECK(touch(p, s, seed++));
        ::operator delete[](hide(p), (size_t)n);

        p = ::operator new(n, std::nothrow);
        CHECKF(p != nullptr, "operator new(%zu, nothrow)", s);
        CHECK(touch(p, s, seed++));
        ::operator delete(hide(p), std::nothrow);

        p = ::operator new[](n, std::nothrow);
        CHECKF(p != nullptr, "operator new[](%zu, nothrow)", s);
        CHECK(touch(p, s, seed++));
        ::operator delete[](hide(p), std::nothrow);
    }
    /* memory from new is the same heap as malloc's */
    void *p = ::operator new((size_t)v_zero + 1000);
    CHECK(malloc_usable_size(p) >= 1000);
    ::operator delete(hide(p));
}

struct Obj {
    uint64_t a[5];
    Obj() {
        for (int i = 0; i < 5; i++) a[i] = 0x1111111111111111ull * (unsigned)(i + 1);
    }
};

struct alignas(64) Al64 {
    char c[64];
};
struct alignas(4096) AlPage {
    char c[100];
};

TEST(new_expressions) {
    volatile int cnt = 1000;
    Obj *o = new Obj;
    CHECK(o->a[4] == 0x5555555555555555ull);
    delete static_cast<Obj *>(hide(o));
    Obj *arr = new Obj[cnt];
    for (int i = 0; i < cnt; i++) CHECK(arr[i].a[0] == 0x1111111111111111ull);
    delete[] static_cast<Obj *>(hide(arr));
    Obj *nt = new (std::nothrow) Obj;
    CHECK(nt != nullptr);
    delete static_cast<Obj *>(hide(nt));
    /* over-aligned types go through the align_val_t forms */
    for (int i = 0; i < 100; i++) {
        Al64 *a = new Al64;
        CHECKF((uintptr_t)a % 64 == 0, "new Al64 = %p", (void *)a);
        a->c[63] = 1;
        delete static_cast<Al64 *>(hide(a));
        AlPage *pg = new AlPage[(size_t)cnt / 100];
        CHECKF((uintptr_t)pg % 4096 == 0, "new AlPage[] = %p", (void *)pg);
        pg[9].c[99] = 1;
        delete[] static_cast<AlPage *>(hide(pg));
        AlPage *pn = new (std::nothrow) AlPage;
        CHECK(pn != nullptr && (uintptr_t)pn % 4096 == 0);
        delete static_cast<AlPage *>(hide(pn));
    }
}

TEST(aligned_new_delete_forms) {
    unsigned seed = 3;
    for (size_t a = 1; a <= ((size_t)2 << 20); a *= 2) {
        std::align_val_t al{a};
        size_t sizes[] = {1, a, a + 1, 3 * a + 7, 0};
        for (size_t s : sizes) {
            volatile size_t n = s;
            void *p = ::operator new(n, al);
            CHECKF(p != nullptr && ((uintptr_t)p % a == 0 || mimalloc_align_bug(a, s)), "operator new(%zu, align %zu) = %p", s, a, p);
            CHECK(touch(p, s, seed++));
            ::operator delete(hide(p), al);

            p = ::operator new(n, al);
            CHECKF((uintptr_t)p % a == 0 || mimalloc_align_bug(a, s), "operator new(%zu, align %zu) = %p", s, a, p);
            CHECK(touch(p, s, seed++));
            ::operator delete(hide(p), (size_t)n, al); /* aligned sized */

            p = ::operator new[](n, al);
            CHECKF(p != nullptr && ((uintptr_t)p % a == 0 || mimalloc_align_bug(a, s)), "operator new[](%zu, align %zu) = %p", s, a, p);
            CHECK(touch(p, s, seed++));
            ::operator delete[](hide(p), al);

            p = ::operator new[](n, al);
            CHECKF((uintptr_t)p % a == 0 || mimalloc_align_bug(a, s), "operator new[](%zu, align %zu) = %p", s, a, p);
            CHECK(touch(p, s, seed++));
            ::operator delete[](hide(p), (size_t)n, al);

            p = ::operator new(n, al, std::nothrow);
            CHECKF(p != nullptr && ((uintptr_t)p % a == 0 || mimalloc_align_bug(a, s)), "operator new(%zu, align %zu, nothrow) = %p", s, a, p);
            CHECK(touch(p, s, seed++));
            ::operator delete(hide(p), al, std::nothrow);

            p = ::operator new[](n, al, std::nothrow);
            CHECKF(p != nullptr && ((uintptr_t)p % a == 0 || mimalloc_align_bug(a, s)), "operator new[](%zu, align %zu, nothrow) = %p", s, a, p);
            CHECK(touch(p, s, seed++));
            ::operator delete[](hide(p), al, std::nothrow);
        }
    }
}

/* Many live aligned objects at once: distinct and intact. */
TEST(aligned_new_many_live) {
    enum { N = 2000 };
    static void *ps[N];
    static size_t as[N], ns[N];
    uint64_t rs = 99;
    for (int i = 0; i < N; i++) {
        as[i] = (size_t)16 << (tl_rand(&rs) % 9); /* 16 .. 4096 */
        ns[i] = 1 + tl_rand(&rs) % 2000;
        ps[i] = ::operator new(ns[i], std::align_val_t{as[i]});
        CHECKF((uintptr_t)ps[i] % as[i] == 0 || mimalloc_align_bug(as[i], ns[i]), "new(%zu, align %zu) = %p",
               ns[i], as[i], ps[i]);
        memset(ps[i], i & 0xff, ns[i]);
    }
    for (int i = 0; i < N; i++) {
        unsigned char *b = static_cast<unsigned char *>(ps[i]);
        for (size_t k = 0; k < ns[i]; k++) CHECKF(b[k] == (unsigned char)(i & 0xff), "object %d byte %zu", i, k);
    }
    for (int i = 0; i < N; i++) ::operator delete(ps[i], ns[i], std::align_val_t{as[i]});
}

TEST(new_array_zero_unique) {
    enum { N = 500 };
    static char *ps[N];
    static int *qs[N];
    for (int i = 0; i < N; i++) {
        ps[i] = new char[v_zero];
        qs[i] = new int[v_zero];
        CHECK(ps[i] != nullptr && qs[i] != nullptr);
    }
    for (int i = 0; i < N; i++)
        for (int j = i + 1; j < N; j++) {
            CHECKF(ps[i] != ps[j] && qs[i] != qs[j], "new T[0] returned the same pointer twice (%d, %d)", i, j);
            CHECK((void *)ps[i] != (void *)qs[j]);
        }
    for (int i = 0; i < N; i++) {
        delete[] ps[i];
        delete[] qs[i];
    }
    void *a = ::operator new(v_zero), *b = ::operator new(v_zero);
    CHECK(a && b && a != b);
    ::operator delete(a);
    ::operator delete(b);
    void *c = ::operator new(v_zero, std::align_val_t{256}), *d = ::operator new(v_zero, std::align_val_t{256});
    CHECK(c && d && c != d);
    ::operator delete(c, std::align_val_t{256});
    ::operator delete(d, std::align_val_t{256});
}

/* ---- failure: new-handler then bad_alloc ------------------------------- */

static int handler_calls;
static void counting_handler() {
    handler_calls++;
    if (handler_calls >= 2) std::set_new_handler(nullptr);
}

static const size_t kHuge[] = {SIZE_MAX, SIZE_MAX - 4096, (size_t)PTRDIFF_MAX + 1, (size_t)1 << 62};

enum Form { PLAIN, ARRAY, ALIGNED, ALIGNED_ARRAY, NFORMS };
static const size_t form_align[] = {0, 0, 64, 4096};

/* Skip the cases a stand-in's own bug makes impossible (see the top). */
static bool skip_case(int f, size_t n) {
    if (form_align[f] && libstdcxx_aligned_wrap(form_align[f], n)) {
        static bool logged;
        if (!logged) TLOG("libstdc++ aligned new wraps size %#zx: case not checked without gomalloc", n);
        logged = true;
        return true;
    }
    return false;
}
static const char *form_name[] = {"new", "new[]", "new(align)", "new[](align)"};

static void *call_new(Form f, size_t n) {
    switch (f) {
    case PLAIN: return ::operator new(n);
    case ARRAY: return ::operator new[](n);
    case ALIGNED: return ::operator new(n, std::align_val_t{64});
    default: return ::operator new[](n, std::align_val_t{4096});
    }
}
static void *call_new_nothrow(Form f, size_t n) {
    switch (f) {
    case PLAIN: return ::operator new(n, std::nothrow);
    case ARRAY: return ::operator new[](n, std::nothrow);
    case ALIGNED: return ::operator new(n, std::align_val_t{64}, std::nothrow);
    default: return ::operator new[](n, std::align_val_t{4096}, std::nothrow);
    }
}

TEST(new_failure_calls_handler_then_throws) {
    if (is_mimalloc()) {
        TLOG("mimalloc 2.0 aborts in a failing operator new (built as C): not checked");
        return;
    }
    for (size_t h : kHuge) {
        for (int f = 0; f < NFORMS; f++) {
            if (skip_case(f, h)) continue;
            volatile size_t n = h;
            handler_calls = 0;
            std::set_new_handler(counting_handler);
            bool threw = false;
            void *p = nullptr;
            try {
                p = call_new((Form)f, n);
            } catch (const std::bad_alloc &) {
                threw = true;
            }
            std::set_new_handler(nullptr);
            CHECKF(threw && p == nullptr, "%s(%#zx) did not throw bad_alloc (p=%p)", form_name[f], h, p);
            CHECKF(handler_calls == 2, "%s(%#zx): new-handler called %d times, want 2", form_name[f], h,
                   handler_calls);
            /* without a handler: throws at once */
            threw = false;
            try {
                p = call_new((Form)f, n);
            } catch (const std::bad_alloc &) {
                threw = true;
            }
            CHECKF(threw, "%s(%#zx) without handler did not throw", form_name[f], h);
        }
    }
}

TEST(nothrow_failure_returns_null) {
    for (size_t h : kHuge) {
        for (int f = 0; f < NFORMS; f++) {
            if (skip_case(f, h)) continue;
            volatile size_t n = h;
            void *p = (void *)1;
            try {
                p = call_new_nothrow((Form)f, n);
            } catch (...) {
                CHECKF(0, "nothrow %s(%#zx) threw", form_name[f], h);
            }
            CHECKF(p == nullptr, "nothrow %s(%#zx) = %p", form_name[f], h, p);
            if (is_mimalloc()) continue; /* its nothrow forms never call the handler */
            /* the default nothrow forms call operator new, so the handler runs too */
            handler_calls = 0;
            std::set_new_handler(counting_handler);
            p = (void *)1;
            try {
                p = call_new_nothrow((Form)f, n);
            } catch (...) {
                std::set_new_handler(nullptr);
                CHECKF(0, "nothrow %s(%#zx) threw with a handler", form_name[f], h);
            }
            std::set_new_handler(nullptr);
            CHECKF(p == nullptr, "nothrow %s(%#zx) with handler = %p", form_name[f], h, p);
            CHECKF(handler_calls == 2, "nothrow %s(%#zx): handler called %d times, want 2", form_name[f], h,
                   handler_calls);
        }
    }
}

/* A handler that frees a reserve lets the retry succeed. */
static void *reserve;
static int reserve_calls;
static void release_reserve_handler() {
    reserve_calls++;
    std::free(reserve);
    reserve = nullptr;
    std::set_new_handler(nullptr);
}

TEST(new_handler_is_called_on_failure_only) {
    reserve_calls = 0;
    if (is_mimalloc()) {
        TLOG("mimalloc 2.0 aborts in a failing operator new (built as C): not checked");
        return;
    }
    std::set_new_handler(release_reserve_handler);
    for (int i = 0; i < 10000; i++) {
        volatile size_t n = (size_t)i * 13;
        void *p = ::operator new(n);
        ::operator delete(hide(p));
    }
    std::set_new_handler(nullptr);
    CHECKF(reserve_calls == 0, "new-handler called %d times for satisfiable requests", reserve_calls);
    /* a failing request: the handler runs once, then bad_alloc */
    reserve = std::malloc(1000);
    std::set_new_handler(release_reserve_handler);
    bool threw = false;
    try {
        volatile size_t n = SIZE_MAX / 2;
        void *p = ::operator new(n);
        ::operator delete(p);
    } catch (const std::bad_alloc &) {
        threw = true;
    }
    std::set_new_handler(nullptr);
    CHECK(threw);
    CHECK(reserve_calls == 1 && reserve == nullptr);
}

TEST_MAIN()
