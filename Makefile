# gomalloc: plain Makefile.
#   make            build/libgomalloc.so and build/libgomalloc.a
#   make test       every test (tests/run.sh), ends with "N passed, N failed"
#   make demo       bundled allocation-heavy program on gomalloc and on glibc
#   make bench      benchmark suite against glibc, mimalloc, jemalloc, tcmalloc
#   make bench-insn fast-path instruction counts (callgrind)
#   make ubsan      the tests built with -fsanitize=undefined
# Variables: CC, OPT (default -O2), DEBUG=1 (invariant checks), SAN=undefined.

CC      ?= gcc
CXX     ?= g++
B       ?= build
OPT     ?= -O2
ARCH    := $(shell uname -m)

WARN    := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wno-unused-parameter
CFLAGS_LIB := -std=gnu11 $(OPT) -g -fPIC -fvisibility=hidden -ftls-model=initial-exec \
              -fno-plt -fexceptions -Iinclude -iquote src $(WARN) -D_GNU_SOURCE
ifeq ($(ARCH),x86_64)
# POPCNT (every x86-64 CPU since 2008; x86-64-v2) for the bitmap counts.
CFLAGS_LIB += -mpopcnt
endif
ifeq ($(DEBUG),1)
CFLAGS_LIB += -DGM_DEBUG=1
endif
ifneq ($(SAN),)
CFLAGS_LIB += -fsanitize=$(SAN) -fno-sanitize-recover=all
SANFLAGS   := -fsanitize=$(SAN) -fno-sanitize-recover=all
endif

SRCS    := $(wildcard src/*.c)
CXXSRCS := $(wildcard src/*.cc)
OBJS    := $(patsubst src/%.c,$(B)/obj/%.o,$(SRCS)) $(patsubst src/%.cc,$(B)/obj/%.o,$(CXXSRCS))
CXXFLAGS_LIB := -std=gnu++17 $(OPT) -g -fPIC -fvisibility=hidden -fvisibility-inlines-hidden -Iinclude $(SANFLAGS)
HDRS    := $(wildcard src/*.h) include/gomalloc.h

.PHONY: all lib test demo bench bench-insn ubsan clean sizeclasses
all: lib
lib: $(B)/libgomalloc.so $(B)/libgomalloc.a

$(B)/obj/%.o: src/%.c $(HDRS) | $(B)/obj
	$(CC) $(CFLAGS_LIB) -c $< -o $@

# C++ operators: every symbol they need from libstdc++ is made weak, so C
# programs can load the library without libstdc++ (see src/new.cc).
$(B)/obj/%.o: src/%.cc include/gomalloc.h | $(B)/obj
	$(CXX) $(CXXFLAGS_LIB) -c $< -o $@.tmp.o
	nm -u $@.tmp.o | awk '{print $$2}' > $@.undef
	objcopy --weaken-symbols=$@.undef $@.tmp.o $@
	rm -f $@.tmp.o $@.undef

$(B)/obj $(B)/tests $(B)/tools:
	mkdir -p $@

$(B)/libgomalloc.so: $(OBJS)
	$(CC) -shared -o $@ $(OBJS) $(SANFLAGS) -Wl,-z,nodelete -Wl,-Bsymbolic-functions \
	    -Wl,--version-script=src/exports.map -pthread

$(B)/libgomalloc.a: $(OBJS)
	rm -f $@ && ar rcs $@ $(OBJS)

# ---- size classes ----------------------------------------------------------
$(B)/tools/mksizeclasses: tools/mksizeclasses.c | $(B)/tools
	$(CC) -std=gnu11 -O1 -Wall -o $@ $<
sizeclasses: $(B)/tools/mksizeclasses
	$(B)/tools/mksizeclasses > src/sizeclasses.h

# ---- tests -----------------------------------------------------------------
# tests/*.c, tests/*.cc: programs that use the standard API; they are linked
# normally and run with LD_PRELOAD=$(B)/libgomalloc.so by the suites.
# tests/unit/*.c: component tests linked against the library's objects.
TEST_CFLAGS := -std=gnu11 -O2 -g -pthread -Iinclude -Itests -D_GNU_SOURCE -Wall -Wno-unused-function $(SANFLAGS)
TEST_CXXFLAGS := -std=gnu++17 -O2 -g -pthread -Iinclude -Itests -Wall $(SANFLAGS)
TEST_PROGS := $(patsubst tests/%.c,$(B)/tests/%,$(wildcard tests/*.c)) \
              $(patsubst tests/%.cc,$(B)/tests/%,$(wildcard tests/*.cc))
UNIT_PROGS := $(patsubst tests/unit/%.c,$(B)/tests/unit_%,$(wildcard tests/unit/*.c))

TEST_HDRS := $(wildcard tests/*.h)

$(B)/tests/%: tests/%.c $(TEST_HDRS) | $(B)/tests
	$(CC) $(TEST_CFLAGS) -o $@ $< -ldl -lm
$(B)/tests/%: tests/%.cc $(TEST_HDRS) | $(B)/tests
	$(CXX) $(TEST_CXXFLAGS) -o $@ $< -ldl
$(B)/tests/unit_%: tests/unit/%.c tests/testlib.h $(B)/libgomalloc.a | $(B)/tests
	$(CC) $(TEST_CFLAGS) -iquote src -o $@ $< $(B)/libgomalloc.a -ldl -lm

# A statically linked program: gomalloc replaces glibc's malloc at link time.
$(B)/tests/static_link: tests/static/static_link.c tests/testlib.h $(B)/libgomalloc.a | $(B)/tests
	$(CC) $(TEST_CFLAGS) -static -o $@ $< $(B)/libgomalloc.a

test-build: lib $(TEST_PROGS) $(UNIT_PROGS) $(B)/tests/static_link $(B)/tools/mksizeclasses
test: test-build
	B=$(B) tests/run.sh

ubsan:
	$(MAKE) B=build-ubsan SAN=undefined test

# ---- demo --------------------------------------------------------------------
$(B)/demo: demo/demo.c | $(B)
	$(CC) -std=gnu11 -O2 -g -pthread -Iinclude -o $@ $< -ldl
demo: lib $(B)/demo
	demo/run.sh $(B)

# ---- benchmarks ------------------------------------------------------------
bench: lib
	$(MAKE) -C bench bench GOMALLOC=$(abspath $(B)/libgomalloc.so)
bench-insn: lib
	$(MAKE) -C bench bench-insn GOMALLOC=$(abspath $(B)/libgomalloc.so)

clean:
	rm -rf $(B) build-ubsan
