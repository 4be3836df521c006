# gomalloc: plain Makefile.
#   make            build/libgomalloc.so and build/libgomalloc.a
#   make test       every test (tests/run.sh), ends with "N passed, N failed"
#   make stress     minutes-long stress of the whole API (STRESS_TIME seconds)
#   make demo       bundled allocation-heavy program on gomalloc and on glibc
#   make bench      benchmark suite against glibc, mimalloc, jemalloc, tcmalloc
#   make bench-insn fast-path instruction counts (callgrind)
#   make ubsan      the tests built with -fsanitize=undefined
#   make debug-test the tests against a GM_DEBUG build (invariant checks)
#   make fuzz       libFuzzer harness for FUZZ_TIME seconds (default 60)
#   make tsan       the lock-free protocols under ThreadSanitizer
# Variables: CC, OPT (default -O2), DEBUG=1 (invariant checks), SAN=undefined.

CC      ?= gcc
CXX     ?= g++
NM      ?= nm
OBJCOPY ?= objcopy
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

.PHONY: all lib test stress demo bench bench-insn ubsan debug-test fuzz fuzz-build fuzz-merge tsan clean sizeclasses \
        cross-aarch64
all: lib
lib: $(B)/libgomalloc.so $(B)/libgomalloc.a

$(B)/obj/%.o: src/%.c $(HDRS) | $(B)/obj
	$(CC) $(CFLAGS_LIB) -c $< -o $@

# C++ operators: every symbol they need from libstdc++ is made weak, so C
# programs can load the library without libstdc++ (see src/new.cc).
$(B)/obj/%.o: src/%.cc include/gomalloc.h | $(B)/obj
	$(CXX) $(CXXFLAGS_LIB) -c $< -o $@.tmp.o
	$(NM) -u $@.tmp.o | awk '{print $$2}' > $@.undef
	$(OBJCOPY) --weaken-symbols=$@.undef $@.tmp.o $@
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
STRESS_PROGS := $(patsubst tests/stress/%.c,$(B)/tests/%,$(wildcard tests/stress/*.c))
STRESS_TIME ?= 180

TEST_HDRS := $(wildcard tests/*.h)

$(B)/tests/%: tests/%.c $(TEST_HDRS) | $(B)/tests
	$(CC) $(TEST_CFLAGS) -o $@ $< -ldl -lm
$(B)/tests/%: tests/%.cc $(TEST_HDRS) | $(B)/tests
	$(CXX) $(TEST_CXXFLAGS) -o $@ $< -ldl
$(B)/tests/%: tests/stress/%.c | $(B)/tests
	$(CC) $(TEST_CFLAGS) -o $@ $< -ldl
$(B)/tests/unit_%: tests/unit/%.c tests/testlib.h $(B)/libgomalloc.a | $(B)/tests
	$(CC) $(TEST_CFLAGS) -iquote src -o $@ $< $(B)/libgomalloc.a -ldl -lm

# A statically linked program: gomalloc replaces glibc's malloc at link time.
$(B)/tests/static_link: tests/static/static_link.c tests/testlib.h $(B)/libgomalloc.a | $(B)/tests
	$(CC) $(TEST_CFLAGS) -static -o $@ $< $(B)/libgomalloc.a

test-build: lib $(TEST_PROGS) $(UNIT_PROGS) $(STRESS_PROGS) $(B)/tests/static_link $(B)/tools/mksizeclasses
test: test-build
	B=$(B) tests/run.sh

# Minutes-long stress of every API with thread churn and fork, contents
# verified (tests/stress/stress_all.c); STRESS_TIME seconds, default 180.
stress: lib $(STRESS_PROGS)
	STRESS_TIME=$(STRESS_TIME) LD_PRELOAD=$(abspath $(B))/libgomalloc.so $(B)/tests/stress_all

ubsan:
	$(MAKE) B=build-ubsan SAN=undefined test

# aarch64 keeps compiling: the library built with Debian's cross compilers
# (gcc-aarch64-linux-gnu, g++-aarch64-linux-gnu), warnings as errors.
cross-aarch64:
	$(MAKE) B=build-aarch64 ARCH=aarch64 CC=aarch64-linux-gnu-gcc CXX=aarch64-linux-gnu-g++ \
	    NM=aarch64-linux-gnu-nm OBJCOPY=aarch64-linux-gnu-objcopy OPT="-O2 -Werror" lib
	aarch64-linux-gnu-readelf -h build-aarch64/libgomalloc.so | grep -q AArch64

# The tests against a debug build: invariant checks at component boundaries.
debug-test:
	$(MAKE) B=build-debug DEBUG=1 test

# ---- fuzzing ------------------------------------------------------------------
# libFuzzer (clang) drives random programs of allocation calls over several
# threads through the gm_ API (tests/fuzz/fuzz_alloc.c), verifying every
# object's contents and the whole heap (heap_check) after each input. The
# library objects are built with coverage instrumentation, GM_DEBUG checks,
# AddressSanitizer and UBSan, without src/override.c (libFuzzer keeps glibc's
# malloc). New inputs go to build-fuzz/corpus; tests/fuzz/corpus is the
# committed seed corpus (make fuzz-merge folds new coverage into it).
FUZZ_B    ?= build-fuzz
FUZZ_CC   ?= clang
FUZZ_TIME ?= 60
FUZZ_SAN  := -fsanitize=address,undefined -fno-sanitize-recover=undefined
FUZZ_ARGS ?=
FUZZ_OBJS := $(patsubst src/%.c,$(FUZZ_B)/obj/%.o,$(filter-out src/override.c,$(SRCS)))

$(FUZZ_B)/obj:
	mkdir -p $@ $(FUZZ_B)/corpus

$(FUZZ_B)/obj/%.o: src/%.c $(HDRS) | $(FUZZ_B)/obj
	$(FUZZ_CC) $(CFLAGS_LIB) -DGM_DEBUG=1 -fsanitize=fuzzer-no-link $(FUZZ_SAN) -c $< -o $@

$(FUZZ_B)/fuzz_alloc: tests/fuzz/fuzz_alloc.c $(FUZZ_OBJS) $(HDRS)
	$(FUZZ_CC) -std=gnu11 -O1 -g -Wall -Iinclude -iquote src -D_GNU_SOURCE -pthread \
	    -fsanitize=fuzzer $(FUZZ_SAN) -o $@ $< $(FUZZ_OBJS)

fuzz-build: $(FUZZ_B)/fuzz_alloc
fuzz: fuzz-build
	@mkdir -p $(FUZZ_B)/corpus
	ASAN_OPTIONS=detect_leaks=0 $(FUZZ_B)/fuzz_alloc -max_total_time=$(FUZZ_TIME) -max_len=512 -timeout=30 \
	    -print_final_stats=1 -artifact_prefix=$(FUZZ_B)/ $(FUZZ_ARGS) $(FUZZ_B)/corpus tests/fuzz/corpus
# Fold the inputs found so far that add coverage into the committed corpus.
fuzz-merge: fuzz-build
	ASAN_OPTIONS=detect_leaks=0 $(FUZZ_B)/fuzz_alloc -merge=1 -max_len=512 tests/fuzz/corpus $(FUZZ_B)/corpus

# ---- ThreadSanitizer ------------------------------------------------------------
# The library objects built with -fsanitize=thread, without src/override.c
# and src/new.cc (TSan's malloc interceptors stay the process malloc), and
# the tests of tests/tsan/ exercising the lock-free protocols through the gm_
# API. Any report is fatal (halt_on_error).
TSAN_B    ?= build-tsan
TSAN_CC   ?= $(CC)
TSAN_OBJS := $(patsubst src/%.c,$(TSAN_B)/obj/%.o,$(filter-out src/override.c,$(SRCS)))
TSAN_PROGS := $(patsubst tests/tsan/%.c,$(TSAN_B)/tsan_%,$(wildcard tests/tsan/*.c))

$(TSAN_B)/obj:
	mkdir -p $@

$(TSAN_B)/obj/%.o: src/%.c $(HDRS) | $(TSAN_B)/obj
	$(TSAN_CC) $(CFLAGS_LIB) -fsanitize=thread -c $< -o $@

$(TSAN_B)/tsan_%: tests/tsan/%.c tests/testlib.h $(TSAN_OBJS)
	$(TSAN_CC) -std=gnu11 -O1 -g -pthread -Iinclude -Itests -iquote src -D_GNU_SOURCE -Wall \
	    -fsanitize=thread -o $@ $< $(TSAN_OBJS)

tsan: $(TSAN_PROGS)
	@set -e; for t in $(TSAN_PROGS); do \
	    echo "== $$t"; TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 $(TSAN_OPTIONS)" $$t; done

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
	rm -rf $(B) build-ubsan build-debug $(FUZZ_B) $(TSAN_B)
