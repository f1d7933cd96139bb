# perfbot — build, test, run.  See README.md.
#
# Module libraries are built from every .c file in their folder, so new files
# need no Makefile edit.  app/main.c and app/cmd_*.c make up the binary only.

CC       ?= cc
BUILD    ?= build
VERSION  := $(shell cat VERSION 2>/dev/null || echo 0.0.0)
PKGS     := libmicrohttpd openssl libjwt jansson libcurl libgit2 sqlite3 yaml-0.1
CFLAGS_WARN := -std=c11 -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
               -Wformat=2 -Werror
CFLAGS   ?= -O2 -g
CPPFLAGS += -D_GNU_SOURCE -I. -DPERFBOT_VERSION='"$(VERSION)"'
# Kept apart from CFLAGS so that `make CFLAGS=... SANITIZE=...` still instruments.
ifneq ($(SANITIZE),)
SANFLAGS := -fsanitize=$(SANITIZE) -fno-omit-frame-pointer -fno-sanitize-recover=all
endif
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   = $(shell pkg-config --libs $(PKGS) 2>/dev/null)
LIBS     = $(PKG_LIBS) -lpthread -lm

MODULES  := webhooks agent measure pr github store base
MAIN_SRC := app/main.c $(wildcard app/cmd_*.c)
define module_srcs
$(filter-out $(MAIN_SRC),$(wildcard $(1)/*.c))
endef
MODULE_LIBS := $(foreach m,$(MODULES),$(BUILD)/lib$(m).a)
UNIT_SRC  := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRC))
TEST_SUPPORT := $(wildcard tests/unit/support/*.c)
FUZZ_SRC  := $(wildcard fuzz/fuzz_*.c)
FUZZ_REPLAY := $(patsubst fuzz/%.c,$(BUILD)/fuzz/%_replay,$(FUZZ_SRC))

.PHONY: all deps run test test-unit test-integration test-sanitize bench clean fuzz format

all: $(BUILD)/perfbot

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(PKG_CFLAGS) $(CFLAGS_WARN) $(CFLAGS) $(SANFLAGS) -MMD -MP -c $< -o $@

define module_lib
$(BUILD)/lib$(1).a: $(patsubst %.c,$(BUILD)/%.o,$(call module_srcs,$(1)))
	@mkdir -p $$(dir $$@)
	rm -f $$@ && ar rcs $$@ $$^
endef
$(foreach m,$(MODULES),$(eval $(call module_lib,$(m))))

$(BUILD)/perfbot: $(patsubst %.c,$(BUILD)/%.o,$(MAIN_SRC)) $(MODULE_LIBS)
	$(CC) $(LDFLAGS) $(SANFLAGS) -o $@ $(filter %.o,$^) $(MODULE_LIBS) $(LIBS)

$(BUILD)/tests/%: $(BUILD)/tests/unit/%.o $(patsubst %.c,$(BUILD)/%.o,$(TEST_SUPPORT)) $(MODULE_LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $(SANFLAGS) -o $@ $< $(patsubst %.c,$(BUILD)/%.o,$(TEST_SUPPORT)) $(MODULE_LIBS) $(LIBS) -lcmocka

$(BUILD)/fuzz/%_replay: $(BUILD)/fuzz/%.o $(BUILD)/fuzz/replay_main.o $(MODULE_LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $(SANFLAGS) -o $@ $^ $(MODULE_LIBS) $(LIBS)

deps:
	@sh .ci/deps.sh

run: deps
	@$(MAKE) --no-print-directory all
	./$(BUILD)/perfbot serve

# Everything: unit, fuzz-corpus replay and integration tests, then the same
# suite built with AddressSanitizer and UBSan.  Ends with "N passed, N failed".
test: deps
	@$(MAKE) --no-print-directory all tests-build
	@$(MAKE) --no-print-directory BUILD=build-san SANITIZE=address,undefined CFLAGS='-O1 -g' all tests-build
	@sh tests/run.sh build build-san

tests-build: $(BUILD)/perfbot $(UNIT_BINS) $(FUZZ_REPLAY)

test-unit: all tests-build
	@sh tests/run.sh --unit-only $(BUILD)

bench: deps all
	@sh bench/run.sh

fuzz:
	@sh fuzz/build.sh

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf build build-san

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
