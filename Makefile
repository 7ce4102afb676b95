# SPDX-License-Identifier: GPL-2.0-or-later
#
# secondsite: one top-level Makefile.
#
#   make deps       install the missing Debian packages (apt-get; prints the command when not root)
#   make gen        generate C from proto/ (nanopb) and fsm/ (Ragel) into gen/
#   make            build build/noded, build/nodectl, build/nodetrace
#   make check      unit tests, the same under ASan+UBSan, fuzz smoke, integration tests
#   make test-mem   unit tests under valgrind
#   make test-fault long crash/outage rounds
#   make fuzz       libFuzzer targets, longer runs
#   make bench      benchmarks (build/bench.json)
#   make demo       narrated walk through the embedded default
#   make fsm-dot    draw every chart (build/fsm/*.svg)
#   make STATIC=1   link noded statically (appliance build)
#   WOLFSSL=system  link Debian's shared libwolfssl instead of the static one
#                   built from Debian's source with hardware crypto (default hw)
#   V=1             show the commands
#
# Sources are found by wildcard, so adding a file under runtime/, nodes/<role>/,
# tools/<tool>/ or tests/<dir>/test_*.c needs no edit here.

# ---- configuration ----------------------------------------------------------

CC        ?= gcc
CLANG     ?= clang
BUILD     ?= build
STATIC    ?= 0
V         ?= 0
FUZZ_SECONDS ?= 10

ifeq ($(V),1)
Q :=
else
Q := @
endif

DEPS_PKGS := ragel libev-dev nanopb libnanopb-dev liblz4-dev libwolfssl-dev \
  libsqlite3-dev libinih-dev libxxhash-dev libcmocka-dev graphviz \
  qemu-utils libnbd-bin nbdkit e2fsprogs iproute2 iptables rsync fio chromium \
  libfiu-dev fiu-utils clang libclang-rt-14-dev valgrind \
  dpkg-dev autoconf automake libtool

# wolfSSL: WOLFSSL=hw (default) builds Debian's own wolfssl source package
# with the CPU's hardware crypto into a static library (tools/wolfssl/build.sh,
# once per WOLFSSL_DIR); WOLFSSL=system links Debian's shared libwolfssl.
# Objects must see the headers of the library they are linked with: every
# object depends on $(BUILD)/wolfssl.variant, rewritten when the variant
# changes (or the library has to be built), so everything recompiles then.
# When the source cannot be had (offline), hw falls back to system with a
# one-line notice. Goals that compile nothing themselves (check, bench and
# demo recurse) leave all this to the sub-make.
WOLFSSL     ?= hw
WOLFSSL_DIR ?= $(BUILD)/wolfssl
WOLFSSL_LIB := $(WOLFSSL_DIR)/install/lib/libwolfssl.a
WOLFSSL_USE := $(WOLFSSL)
WOLFSSL_STAMP := $(BUILD)/wolfssl.variant
ifeq ($(filter hw system,$(WOLFSSL)),)
$(error WOLFSSL must be hw or system, not '$(WOLFSSL)')
endif
ifneq ($(filter-out deps clean gen fsm-dot check test bench demo,$(or $(MAKECMDGOALS),all)),)
ifeq ($(WOLFSSL)$(wildcard $(WOLFSSL_LIB)),hw)
WOLFSSL_FETCH := $(shell CC='$(CC)' sh tools/wolfssl/build.sh fetch $(WOLFSSL_DIR))
ifneq ($(WOLFSSL_FETCH),ok)
$(info $(WOLFSSL_FETCH): using Debian's shared libwolfssl (WOLFSSL=system))
WOLFSSL_USE := system
endif
endif
$(shell mkdir -p $(BUILD) && { [ "$(WOLFSSL_USE)$(WOLFSSL_FETCH)" != hwok ] && \
  [ "$$(cat $(WOLFSSL_STAMP) 2>/dev/null)" = $(WOLFSSL_USE) ] || \
  echo $(WOLFSSL_USE) > $(WOLFSSL_STAMP); })
endif
ifeq ($(WOLFSSL_USE),hw)
WOLFSSL_CFLAGS := -I$(WOLFSSL_DIR)/install/include
WOLFSSL_LIBS   := $(WOLFSSL_LIB)
WOLFSSL_DEP    := $(WOLFSSL_LIB)
else
WOLFSSL_CFLAGS :=
WOLFSSL_LIBS   := -lwolfssl
WOLFSSL_DEP    :=
endif

WARN      := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wswitch-enum \
             -Wcast-qual -Wundef
GENWARN   := -Wall -Wno-unused-const-variable -Wno-unused-variable
BASEFLAGS := -std=c11 -D_GNU_SOURCE -g -MMD -MP -I. -Iruntime -Igen/proto -Igen/fsm \
             $(WOLFSSL_CFLAGS) -DPB_ENABLE_MALLOC=0
OPT       ?= -O2
CFLAGS_N  := $(BASEFLAGS) $(OPT)
SANFLAGS  := -O1 -fno-omit-frame-pointer -fsanitize=address,undefined \
             -fno-sanitize-recover=undefined
LIBS      := -lev $(WOLFSSL_LIBS) -llz4 -lprotobuf-nanopb -lsqlite3 -linih -lxxhash -lm -lpthread
ifeq ($(STATIC),1)
NODED_LDFLAGS := -static
else
NODED_LDFLAGS :=
endif

# ---- sources ----------------------------------------------------------------

PROTOS    := $(wildcard proto/*.proto)
PB_C      := $(patsubst proto/%.proto,gen/proto/%.pb.c,$(PROTOS))
PB_H      := $(PB_C:.c=.h)
CHARTS    := $(wildcard fsm/*_exec.rl)
FSM_C     := $(patsubst fsm/%_exec.rl,gen/fsm/%.c,$(CHARTS))
GEN_C     := $(PB_C) $(FSM_C)

RT_SRC    := $(wildcard runtime/*.c)
NODE_SRC  := $(filter-out nodes/noded.c,$(wildcard nodes/*/*.c))
LIB_SRC   := $(RT_SRC) $(NODE_SRC)
NODED_SRC := nodes/noded.c
CTL_SRC   := $(wildcard tools/nodectl/*.c)
TRC_SRC   := $(wildcard tools/nodetrace/*.c) gen/nodetrace/assets.c
UNIT_SRC  := $(wildcard tests/runtime/test_*.c tests/nodes/test_*.c tests/fsm/test_*.c \
                        tests/proto/test_*.c tests/tools/test_*.c)
FUZZ_SRC  := $(wildcard tests/fuzz/fuzz_*.c)
INTEG     := $(sort $(wildcard tests/integration/t*.sh))
FAULT     := $(sort $(wildcard tests/fault/t*.sh))

# object lists per variant: n = normal, s = sanitizers
obj = $(patsubst %.c,$(BUILD)/$(1)/%.o,$(2))

LIB_N     := $(BUILD)/libss.a
LIB_S     := $(BUILD)/libss-san.a
UNIT_N    := $(patsubst %.c,$(BUILD)/tests/%,$(notdir $(UNIT_SRC)))
UNIT_S    := $(patsubst %.c,$(BUILD)/tests-san/%,$(notdir $(UNIT_SRC)))
FUZZ_BIN  := $(patsubst %.c,$(BUILD)/fuzz/%,$(notdir $(FUZZ_SRC)))
PROGS     := $(BUILD)/noded $(BUILD)/nodectl $(BUILD)/nodetrace

vpath test_%.c tests/runtime tests/nodes tests/fsm tests/proto tests/tools
vpath fuzz_%.c tests/fuzz

.PHONY: all deps gen check test unit unit-san fuzz-smoke integration test-mem \
        test-fault fuzz bench demo clean fsm-dot

all: $(PROGS) fsm-dot

# ---- deps -------------------------------------------------------------------

deps:
	@missing=""; for p in $(DEPS_PKGS); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -z "$$missing" ]; then echo "deps: all packages present"; exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then \
	  echo "deps: installing$$missing"; \
	  (apt-get install -y -q --no-install-recommends $$missing >/dev/null 2>&1 || \
	   (apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing)) || \
	   { echo "deps: apt-get failed for:$$missing" >&2; exit 1; }; \
	else \
	  echo "deps: missing packages; run: sudo apt-get install -y$$missing" >&2; exit 1; \
	fi

# ---- generated code ---------------------------------------------------------

gen: $(GEN_C)

# nothing is intermediate: make must not delete generated files (the .pb.h
# is a by-product of the .pb.c rule) nor the objects of test programs)
.SECONDARY:

gen/proto/%.pb.c gen/proto/%.pb.h: proto/%.proto $(wildcard proto/%.options)
	@mkdir -p gen/proto
	@echo "  NANOPB  $<"
	$(Q)nanopb_generator.py -q -I proto -D gen/proto $< >/dev/null

gen/fsm/%.c: fsm/%_exec.rl fsm/%.rl proto/fsm.proto
	@mkdir -p gen/fsm
	@echo "  RAGEL   $<"
	$(Q)ragel -G2 -I fsm -o $@ $<

# nodetrace's page template (tools/nodetrace/assets/), embedded as C arrays
gen/nodetrace/assets.c: tools/nodetrace/embed.sh $(wildcard tools/nodetrace/assets/*)
	@mkdir -p gen/nodetrace
	@echo "  EMBED   $@"
	$(Q)sh tools/nodetrace/embed.sh $@ $(wildcard tools/nodetrace/assets/*)

fsm-dot: $(patsubst fsm/%_exec.rl,$(BUILD)/fsm/%.svg,$(CHARTS))

$(BUILD)/fsm/%.svg: fsm/%_exec.rl fsm/%.rl
	@mkdir -p $(dir $@)
	@echo "  DOT     $@"
	$(Q)ragel -V -p -I fsm -o $(BUILD)/fsm/$*.dot $< && dot -Tsvg -o $@ $(BUILD)/fsm/$*.dot

# ---- compile ----------------------------------------------------------------

# every object depends on the generated headers being there
$(BUILD)/n/%.o: %.c $(WOLFSSL_STAMP) | $(PB_H) $(FSM_C) $(WOLFSSL_DEP)
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	$(Q)$(CC) $(CFLAGS_N) $(if $(filter gen/%,$<),$(GENWARN),$(WARN)) -c -o $@ $<

$(BUILD)/s/%.o: %.c $(WOLFSSL_STAMP) | $(PB_H) $(FSM_C) $(WOLFSSL_DEP)
	@mkdir -p $(dir $@)
	@echo "  CC-SAN  $<"
	$(Q)$(CC) $(BASEFLAGS) $(SANFLAGS) $(if $(filter gen/%,$<),$(GENWARN),$(WARN)) -c -o $@ $<

$(BUILD)/f/%.o: %.c $(WOLFSSL_STAMP) | $(PB_H) $(FSM_C) $(WOLFSSL_DEP)
	@mkdir -p $(dir $@)
	@echo "  CC-FUZZ $<"
	$(Q)$(CLANG) $(BASEFLAGS) -O1 -fsanitize=fuzzer-no-link,address,undefined $(if $(filter gen/%,$<),$(GENWARN),$(WARN)) -c -o $@ $<

# the wolfSSL variant the objects of $(BUILD) are compiled for
$(WOLFSSL_STAMP):
	@mkdir -p $(dir $@)
	@echo $(WOLFSSL_USE) > $@

$(WOLFSSL_LIB): tools/wolfssl/build.sh
	$(Q)CC='$(CC)' sh tools/wolfssl/build.sh build $(WOLFSSL_DIR)

$(LIB_N): $(call obj,n,$(LIB_SRC) $(GEN_C))
	@echo "  AR      $@"
	$(Q)rm -f $@ && ar rcs $@ $^

$(LIB_S): $(call obj,s,$(LIB_SRC) $(GEN_C))
	@echo "  AR      $@"
	$(Q)rm -f $@ && ar rcs $@ $^

$(BUILD)/libss-fuzz.a: $(call obj,f,$(LIB_SRC) $(GEN_C))
	@echo "  AR      $@"
	$(Q)rm -f $@ && ar rcs $@ $^

# ---- link -------------------------------------------------------------------

$(BUILD)/noded: $(call obj,n,$(NODED_SRC)) $(LIB_N)
	@echo "  LD      $@"
	$(Q)$(CC) $(NODED_LDFLAGS) -o $@ $^ $(LIBS)

# the appliance build: the same objects, linked statically (numeric addresses,
# no NSS, no dlopen on the node's paths); `make STATIC=1` makes noded itself so
$(BUILD)/noded-static: $(call obj,n,$(NODED_SRC)) $(LIB_N)
	@echo "  LD      $@"
	$(Q)$(CC) -static -o $@ $^ $(LIBS) 2>$@.log || { cat $@.log; exit 1; }

$(BUILD)/nodectl: $(call obj,n,$(CTL_SRC)) $(LIB_N)
	@echo "  LD      $@"
	$(Q)$(CC) -o $@ $^ $(LIBS)

$(BUILD)/nodetrace: $(call obj,n,$(TRC_SRC)) $(LIB_N)
	@echo "  LD      $@"
	$(Q)$(CC) -o $@ $^ $(LIBS)

$(BUILD)/tests/%: $(LIB_N)
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	$(Q)$(CC) -o $@ $(filter %.o,$^) $(filter %.a,$^) $(LIBS) -lcmocka

$(BUILD)/tests-san/%: $(LIB_S)
	@mkdir -p $(dir $@)
	@echo "  LD-SAN  $@"
	$(Q)$(CC) -fsanitize=address,undefined -o $@ $(filter %.o,$^) $(filter %.a,$^) $(LIBS) -lcmocka

$(BUILD)/fuzz/%: $(BUILD)/f/tests/fuzz/%.o $(BUILD)/libss-fuzz.a
	@mkdir -p $(dir $@)
	@echo "  LD-FUZZ $@"
	$(Q)$(CLANG) -fsanitize=fuzzer,address,undefined -o $@ $^ $(LIBS)

# test objects: the pattern above needs the object to exist, so name them here
$(foreach t,$(UNIT_SRC),$(eval $(BUILD)/tests/$(basename $(notdir $(t))): $(BUILD)/n/$(t:.c=.o)))
$(foreach t,$(UNIT_SRC),$(eval $(BUILD)/tests-san/$(basename $(notdir $(t))): $(BUILD)/s/$(t:.c=.o)))

# helper programs for integration tests: tests/integration/NAME.c -> $(BUILD)/it-bin/NAME
IT_C      := $(wildcard tests/integration/*.c)
IT_BIN    := $(patsubst tests/integration/%.c,$(BUILD)/it-bin/%,$(IT_C))
$(BUILD)/it-bin/%: $(BUILD)/n/tests/integration/%.o $(LIB_N)
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	$(Q)$(CC) -o $@ $^ $(LIBS)

# benchmark helper programs: tools/bench/NAME.c -> $(BUILD)/bench-bin/NAME
BENCH_C   := $(wildcard tools/bench/*.c)
BENCH_BIN := $(patsubst tools/bench/%.c,$(BUILD)/bench-bin/%,$(BENCH_C))
$(BUILD)/bench-bin/%: $(BUILD)/n/tools/bench/%.o $(LIB_N)
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	$(Q)$(CC) -o $@ $^ $(LIBS)

# ---- tests ------------------------------------------------------------------

unit: $(UNIT_N)
	@BUILD=$(BUILD) tests/run-unit $(UNIT_N)

unit-san: $(UNIT_S)
	@BUILD=$(BUILD) ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 tests/run-unit $(UNIT_S)

fuzz-smoke: $(FUZZ_BIN)
	@BUILD=$(BUILD) tests/run-fuzz 5 $(FUZZ_BIN)

integration: $(PROGS) $(IT_BIN) $(BUILD)/noded-static $(BENCH_BIN)
	@BUILD=$(BUILD) tests/run-integration $(INTEG)

check: deps
	@$(MAKE) --no-print-directory all
	@rm -f $(BUILD)/results.txt
	@$(MAKE) --no-print-directory unit || true
	@$(MAKE) --no-print-directory unit-san || true
	@$(MAKE) --no-print-directory fuzz-smoke || true
	@$(MAKE) --no-print-directory integration || true
	@tests/summary $(BUILD)/results.txt

test: check

test-mem: $(UNIT_N)
	@BUILD=$(BUILD) RUNNER="valgrind -q --error-exitcode=9 --leak-check=full" tests/run-unit $(UNIT_N)

test-fault: $(PROGS) $(IT_BIN)
	@BUILD=$(BUILD) ROUNDS=20 IT_TIMEOUT=$${IT_TIMEOUT:-1800} tests/run-integration $(FAULT)

fuzz: $(FUZZ_BIN)
	@BUILD=$(BUILD) tests/run-fuzz $(FUZZ_SECONDS) $(FUZZ_BIN)

bench: deps
	@$(MAKE) --no-print-directory all $(BENCH_BIN)
	@BUILD=$(BUILD) tools/bench/run

demo: deps
	@$(MAKE) --no-print-directory all
	@BUILD=$(BUILD) tools/demo

clean:
	rm -rf $(BUILD) gen/proto gen/fsm gen/nodetrace

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
