# dsc — a graph compiler from Lua model descriptions to straight-line C.
#
#   make          build build/dsc and build/libdscrt.a
#   make test     install missing Debian packages, build, run the tests
#   make deps     only install missing Debian packages

CC      ?= cc
BUILD   := build
CFLAGS  ?= -O2 -g
WARN    := -std=c11 -Wall -Wextra -Wshadow -Wno-unused-parameter
# The runtime is where the time goes: optimize it harder, keep it PIC so the
# same objects serve a shared build.
RT_CFLAGS ?= -O3 -g -fPIC

LUA_CFLAGS := $(shell pkg-config --cflags lua5.4 2>/dev/null)
LUA_LIBS   := $(shell pkg-config --libs lua5.4 2>/dev/null || echo -llua5.4)

ifneq ($(wildcard /usr/include/libxsmm.h),)
XSMM_CFLAGS := -DDSC_HAVE_LIBXSMM
XSMM_LIBS   := -lxsmm -lxsmmnoblas -lpthread -lrt -ldl
endif

RT_SRC   := $(wildcard runtime/*.c)
RT_OBJ   := $(RT_SRC:%.c=$(BUILD)/%.o)
DSC_SRC  := $(filter-out compiler/main.c,$(wildcard compiler/*.c))
DSC_OBJ  := $(DSC_SRC:%.c=$(BUILD)/%.o) $(BUILD)/gen/embedded.o
TEST_SRC := $(wildcard tests/test_*.c)
TESTS    := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)

# dsc exports its symbols (-rdynamic) so models built with --aot into a
# shared object resolve the runtime's kernels from the running dsc.
LIBS := $(LUA_LIBS) -ltcc $(XSMM_LIBS) -ldl -lm -lpthread

.PHONY: all test deps clean generated
all: $(BUILD)/dsc $(BUILD)/libdscrt.a

deps:
	@tools/install-deps.sh

$(BUILD)/runtime/%.o: runtime/%.c
	@mkdir -p $(@D)
	$(CC) $(WARN) $(RT_CFLAGS) $(XSMM_CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/compiler/%.o: compiler/%.c
	@mkdir -p $(@D)
	$(CC) $(WARN) $(CFLAGS) $(LUA_CFLAGS) -Iruntime -MMD -MP -c $< -o $@

$(BUILD)/tools/embed: tools/embed.c
	@mkdir -p $(@D)
	$(CC) $(WARN) -O1 $< -o $@

# The Lua block library and the runtime header travel inside the binary.
$(BUILD)/gen/embedded.c: $(BUILD)/tools/embed compiler/lib/nn.lua runtime/dsc_runtime.h
	@mkdir -p $(@D)
	$(BUILD)/tools/embed $@ embedded_nn_lua=compiler/lib/nn.lua \
	    embedded_runtime_h=runtime/dsc_runtime.h

$(BUILD)/gen/embedded.o: $(BUILD)/gen/embedded.c
	$(CC) $(WARN) -c $< -o $@

$(BUILD)/libdscrt.a: $(RT_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/libdsc.a: $(DSC_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/dsc: $(BUILD)/compiler/main.o $(BUILD)/libdsc.a $(BUILD)/libdscrt.a
	$(CC) -rdynamic $^ $(LIBS) -o $@

$(BUILD)/tests/%: tests/%.c $(BUILD)/libdsc.a $(BUILD)/libdscrt.a
	@mkdir -p $(@D)
	$(CC) $(WARN) $(CFLAGS) $(LUA_CFLAGS) -Icompiler -Iruntime -rdynamic \
	    $< $(BUILD)/libdsc.a $(BUILD)/libdscrt.a -lcriterion $(LIBS) -o $@

# A product embedding dsc's output: generated C + libdscrt.a, nothing else.
$(BUILD)/example_seed: tests/example/embed_seed.c generated/seed_encoder.c $(BUILD)/libdscrt.a
	@mkdir -p $(@D)
	$(CC) $(WARN) -O2 -Iruntime -Igenerated $^ $(XSMM_LIBS) -lpthread -lm -o $@

test: deps
	@$(MAKE) --no-print-directory all $(TESTS) $(BUILD)/example_seed
	@status=0; for t in $(TESTS); do \
	    echo "== $$t"; DSC=$(BUILD)/dsc $$t --jobs 2 || status=1; \
	done; exit $$status

# Refresh generated/ from models/ (the tests fail when it is out of date).
generated: $(BUILD)/dsc
	tools/update-generated.sh $(BUILD)/dsc

clean:
	rm -rf $(BUILD)

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
