# perfbot — build, test, run.  See README.md.
#
# Module libraries are built from every .c file in their folder, so new files
# need no Makefile edit.  app/main.c and app/cmd_*.c make up the binary only.
# A test binary links its module's libraries, found from its name (LINK_*).

CC       ?= cc
BUILD    ?= build
VERSION  := $(shell cat VERSION 2>/dev/null || echo 0.0.0)
PKGS     := libmicrohttpd openssl libjwt jansson libcurl libgit2 sqlite3 yaml-0.1 yajl libpq
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

MODULES  := ui webhooks agent measure pr github store base
MAIN_SRC := app/main.c $(wildcard app/cmd_*.c)
define module_srcs
$(filter-out $(MAIN_SRC),$(wildcard $(1)/*.c))
endef
MODULE_LIBS := $(foreach m,$(MODULES),$(BUILD)/lib$(m).a)
UNIT_SRC  := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRC))
# C tests that start servers (node's fake GitHub, git over smart HTTP): built
# here, run in the integration phase of tests/run.sh.
ITEST_SRC  := $(wildcard tests/integration/c/test_*.c)
ITEST_BINS := $(patsubst tests/integration/c/%.c,$(BUILD)/tests/integration/%,$(ITEST_SRC))
TEST_SUPPORT := $(wildcard tests/unit/support/*.c)
FUZZ_SRC  := $(wildcard fuzz/fuzz_*.c)
FUZZ_REPLAY := $(patsubst fuzz/%.c,$(BUILD)/fuzz/%_replay,$(FUZZ_SRC))

# What each module links: itself, then its dependencies in link order
# (base <- store, github <- measure <- agent; pr uses github and store;
# webhooks calls the entry points of the modules its handlers queue for).
LINK_base     := base
LINK_store    := store base
LINK_github   := github base
LINK_measure  := measure github store base
LINK_agent    := agent measure github store base
LINK_pr       := pr github store base
LINK_webhooks := webhooks agent measure pr github store base
LINK_ui       := ui agent measure pr github store base
# A test binary links its module's list: tests/unit/test_<module>[_what].c.
# A test that needs more than that has its own line here, naming the symbol.
# Fuzz targets are named after what they parse, not their module.
LINK_fuzz_callgrind        := $(LINK_measure)
LINK_fuzz_diff_policy      := $(LINK_base)
LINK_fuzz_dotenv           := $(LINK_base)
LINK_fuzz_gh_key           := $(LINK_github)
LINK_fuzz_gh_link          := $(LINK_github)
LINK_fuzz_managed_sse      := $(LINK_agent)
LINK_fuzz_mcp              := $(LINK_agent)
LINK_fuzz_pr_diff          := $(LINK_pr)
LINK_fuzz_public_url       := $(LINK_base)
LINK_fuzz_repo_config      := $(LINK_measure)
LINK_fuzz_signature        := $(LINK_webhooks)
LINK_fuzz_webhook_payload  := $(LINK_webhooks)
LINK_fuzz_ui_request       := $(LINK_ui)
# $(call test_libs,test_name): the libraries of a test binary or fuzz target.
test_module = $(firstword $(subst _, ,$(patsubst test_%,%,$(1))))
test_libs = $(patsubst %,$(BUILD)/lib%.a,$(or $(LINK_$(1)),$(LINK_$(call test_module,$(1))),\
	$(error $(1): no module named by its name; see LINK_* in the Makefile)))

.PHONY: all deps run test test-unit test-integration test-sanitize bench clean fuzz format

all: $(BUILD)/perfbot

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(PKG_CFLAGS) $(CFLAGS_WARN) $(CFLAGS) $(SANFLAGS) -MMD -MP -c $< -o $@

# The managed agent's system prompt, compiled into agent/managed_setup.c as
# the bytes of agent/managed_system_prompt.md.
PROMPT_INC := $(BUILD)/gen/agent/managed_system_prompt.inc
$(PROMPT_INC): agent/managed_system_prompt.md
	@mkdir -p $(dir $@)
	od -An -v -tx1 $< | sed 's/\([0-9a-f][0-9a-f]\)/0x\1,/g' > $@.tmp && mv $@.tmp $@
$(BUILD)/agent/managed_setup.o: $(PROMPT_INC)
$(BUILD)/agent/managed_setup.o: CPPFLAGS += -I$(BUILD)/gen

# The dashboard's files (ui/web/), compiled into ui/assets.c as a table.
UI_WEB := $(shell find ui/web -type f ! -name '.*' 2>/dev/null) $(shell find ui/web -type d 2>/dev/null)
ASSETS_INC := $(BUILD)/gen/ui/assets_data.inc
$(ASSETS_INC): ui/gen_assets.sh $(UI_WEB)
	@mkdir -p $(dir $@)
	sh ui/gen_assets.sh ui/web $@
$(BUILD)/ui/assets.o: $(ASSETS_INC)
$(BUILD)/ui/assets.o: CPPFLAGS += -I$(BUILD)/gen

define module_lib
$(BUILD)/lib$(1).a: $(patsubst %.c,$(BUILD)/%.o,$(call module_srcs,$(1)))
	@mkdir -p $$(dir $$@)
	rm -f $$@ && ar rcs $$@ $$^
endef
$(foreach m,$(MODULES),$(eval $(call module_lib,$(m))))

$(BUILD)/perfbot: $(patsubst %.c,$(BUILD)/%.o,$(MAIN_SRC)) $(MODULE_LIBS)
	$(CC) $(LDFLAGS) $(SANFLAGS) -o $@ $(filter %.o,$^) $(MODULE_LIBS) $(LIBS)

TEST_SUPPORT_OBJS := $(patsubst %.c,$(BUILD)/%.o,$(TEST_SUPPORT))
# An archive, so that a test links only the support code it calls (and the
# module libraries that code needs are those of the tests calling it).
TEST_SUPPORT_LIB := $(BUILD)/libtestsupport.a
$(TEST_SUPPORT_LIB): $(TEST_SUPPORT_OBJS)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

# Each test binary gets its own rule so that its library list can depend on
# its name.  $(1) = binary, $(2) = its object, $(3) = its name.
define test_bin
$(1): $(2) $(TEST_SUPPORT_LIB) $(call test_libs,$(3))
	@mkdir -p $$(dir $$@)
	$$(CC) $$(LDFLAGS) $$(SANFLAGS) -o $$@ $$(filter %.o,$$^) $$(filter %.a,$$^) $$(LIBS) -lcmocka
endef
$(foreach t,$(UNIT_SRC),$(eval $(call test_bin,$(BUILD)/tests/$(basename $(notdir $(t))),\
	$(BUILD)/tests/unit/$(basename $(notdir $(t))).o,$(basename $(notdir $(t))))))
$(foreach t,$(ITEST_SRC),$(eval $(call test_bin,$(BUILD)/tests/integration/$(basename $(notdir $(t))),\
	$(BUILD)/tests/integration/c/$(basename $(notdir $(t))).o,$(basename $(notdir $(t))))))

define fuzz_replay
$(BUILD)/fuzz/$(1)_replay: $(BUILD)/fuzz/$(1).o $(BUILD)/fuzz/replay_main.o $(call test_libs,$(1))
	@mkdir -p $$(dir $$@)
	$$(CC) $$(LDFLAGS) $$(SANFLAGS) -o $$@ $$(filter %.o,$$^) $$(filter %.a,$$^) $$(LIBS)
endef
$(foreach f,$(FUZZ_SRC),$(eval $(call fuzz_replay,$(basename $(notdir $(f))))))

# The MCP driver tests/integration/mcp.test.js runs (an agent-module program).
$(BUILD)/tests/agent/mcp_test_server: $(BUILD)/tests/agent/mcp_test_server.o $(call test_libs,agent)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $(SANFLAGS) -o $@ $(filter %.o,$^) $(filter %.a,$^) $(LIBS)

deps:
	@sh .ci/deps.sh

run: deps
	@$(MAKE) --no-print-directory all
	./$(BUILD)/perfbot serve

# Everything: unit, fuzz-corpus replay and integration tests, then the same
# suite built with AddressSanitizer and UBSan.  Ends with "N passed, N failed, N skipped".
test: deps
	@$(MAKE) --no-print-directory all tests-build
	@$(MAKE) --no-print-directory BUILD=build-san SANITIZE=address,undefined CFLAGS='-O1 -g' all tests-build
	@sh tests/run.sh build build-san

tests-build: $(BUILD)/perfbot $(UNIT_BINS) $(ITEST_BINS) $(FUZZ_REPLAY) $(BUILD)/tests/agent/mcp_test_server

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
