/*
 * misuse_cxx.cc: misuse through C++ delete (src/new.cc), with the harness
 * of misuse.h (each kind in a child; abort, warn and table modes).
 *
 * Every delete is a free, so pointer problems report as free(0x...); the
 * sized forms, which the compiler calls for complete types (C++14 sized
 * deallocation), also check the size, and a wrong one reports as
 * operator delete(0x...). Built with -std=gnu++17, so `delete x` on a
 * complete type calls operator delete(void *, std::size_t).
 */
#include "misuse.h"

#include <new>

template <class T> static T *launder(T *p) { return static_cast<T *>(mu_launder(p)); }

struct X {
    long a[3]; /* 24 bytes: gomalloc's 32-byte class */
};

MISUSE(delete_twice) {
    X *x = new X;
    delete x;
    mu_expect("free", x, T_DOUBLE_FREE);
    delete launder(x);
}

MISUSE(delete_array_twice) {
    char *a = new char[100];
    delete[] a;
    mu_expect("free", a, T_DOUBLE_FREE);
    delete[] launder(a);
}

MISUSE(delete_large_twice) {
    char *a = new char[100000];
    delete[] a;
    mu_expect("free", a, T_DOUBLE_FREE);
    delete[] launder(a);
}

MISUSE(delete_interior_pointer) {
    char *a = new char[100];
    char *p = launder(a + 16);
    mu_expectf("free", p, T_INTERIOR, (size_t)16, malloc_usable_size(a), (void *)a);
    delete[] p;
}

/* Deleting through the second base of a class without a virtual
 * destructor: the pointer is 16 bytes into the object (sized delete). */
struct A {
    long a;
    virtual ~A() {}
};
struct B {
    long b;
};
struct C : A, B {
    long c;
};
MISUSE(delete_through_second_base) {
    C *c = new C;
    B *b = launder(static_cast<B *>(c));
    mu_expectf("free", b, T_INTERIOR, (size_t)((char *)b - (char *)c), malloc_usable_size(c), (void *)c);
    delete b;
}

/* Deleting a derived object through a base without a virtual destructor:
 * the right pointer, the base's size (8 of 88 bytes). */
struct Base {
    long x;
};
struct Derived : Base {
    long y[10];
};
MISUSE(delete_with_wrong_size) {
    Base *b = launder(static_cast<Base *>(new Derived));
    mu_expectf("operator delete", b, T_SIZE, sizeof(Base), malloc_usable_size(b));
    delete b;
}

/* new[] / delete mismatch: a type with a destructor gets an array cookie,
 * so scalar delete receives a pointer 8 bytes into the block. */
struct D {
    long v;
    ~D() { v = 0; }
};
MISUSE(delete_of_new_array) {
    D *a = launder(new D[4]);
    char *block = (char *)a - sizeof(size_t);
    mu_expectf("free", a, T_INTERIOR, sizeof(size_t), malloc_usable_size(block), (void *)block);
    delete a;
}

MISUSE(delete_stack_object) {
    X x;
    X *p = launder(&x);
    mu_expect("free", p, T_NOT_OURS);
    delete p;
}

/* Sized array delete with a wrong size (operator delete[]). */
MISUSE(delete_array_with_wrong_size) {
    void *p = ::operator new[](1000);
    mu_expectf("operator delete[]", p, T_SIZE, (size_t)100, malloc_usable_size(p));
    ::operator delete[](launder(p), (size_t)100);
}

/* Aligned sized delete with the wrong alignment. */
MISUSE(delete_aligned_with_wrong_alignment) {
    void *p = ::operator new(100, std::align_val_t(4096));
    mu_expectf("operator delete", p, T_SIZE_ALIGN, (size_t)100, (size_t)64, malloc_usable_size(p));
    ::operator delete(launder(p), (size_t)100, std::align_val_t(64));
}

TEST_MAIN()
