# mbpo: build, test, bench, install, deps. Objects live under build/.
#   make            build/mbpo (native modules linked in)
#   make test       every C test and every Lua spec; ends with "N passed, N failed"
#   make asan       the same suite under AddressSanitizer + UBSan (objects in build/asan)
#   make deps       the Debian packages the project needs (idempotent)
#   make install PREFIX=/usr/local
#   make run        the main job: a short training run that visibly learns

PREFIX  ?= /usr/local
BUILD   ?= build
CC      ?= cc
PKGS    := lua5.4 lua5.4-filesystem openblas libcjson egl
OPT     ?= -O2 -march=x86-64-v3 -fno-math-errno
WARN    := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wpointer-arith \
           -Wcast-qual -Wwrite-strings -Wundef -Wformat=2 -Wvla -Wnull-dereference
CFLAGS  ?= $(OPT) -g
SANFLAGS ?=
ALL_CFLAGS := $(CFLAGS) $(SANFLAGS) -std=c11 -D_GNU_SOURCE $(WARN) -Iinclude -Isrc \
              $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
ALL_LDLIBS := $(SANFLAGS) $(LDLIBS) $(shell pkg-config --libs $(PKGS) 2>/dev/null) \
              -lmujoco -ldnnl -lgomp -lpthread -lm
SAN     := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined

DEB_PKGS := build-essential pkg-config liblua5.4-dev lua-filesystem-dev libopenblas-dev \
            libmujoco-dev libcjson-dev gnuplot-nox libdnnl-dev \
            libegl-dev libegl-mesa0 libgl1-mesa-dri ffmpeg

# Goals that build directly need the packages already; say so in one line instead of a compiler
# error. deps, run, test and asan install them first and build in a sub-make.
NOBUILD_GOALS := deps run test check asan peer-deps clean uninstall deb-dev-pkgs fuzz fuzz-smoke \
                 test-slurm slurm-deps
ifneq ($(filter-out $(NOBUILD_GOALS),$(or $(MAKECMDGOALS),all)),)
ifneq ($(shell pkg-config --exists $(PKGS) 2>/dev/null && echo yes),yes)
$(error the Debian packages are missing: run 'make deps' first \
        ('make run' and 'make test' install them))
endif
endif

CORE_SRC := $(sort $(wildcard src/core/*.c src/nn/*.c src/rl/*.c src/sim/*.c))
LUA_SRC  := $(sort $(wildcard src/lua/*.c src/bench/*.c))
XML_SRC  := $(sort $(wildcard src/sim/*.xml))
XML_GEN  := $(BUILD)/gen/models.c
CORE_OBJ := $(CORE_SRC:%.c=$(BUILD)/%.o) $(if $(XML_SRC),$(BUILD)/gen/models.o)
LUA_OBJ  := $(LUA_SRC:%.c=$(BUILD)/%.o)
CTESTS   := $(patsubst tests/c/%.c,$(BUILD)/tests/%,$(sort $(wildcard tests/c/test_*.c)))

.PHONY: all test check test-only asan fuzz fuzz-build fuzz-smoke deps deb-dev-pkgs install \
        uninstall clean run bench peer-deps test-slurm slurm-deps
all: $(BUILD)/mbpo

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -MMD -MP -c $< -o $@

# MJCF models of the tasks are embedded in the binary as C strings
$(BUILD)/tools/bin2c: tools/bin2c.c
	@mkdir -p $(dir $@)
	$(CC) -O1 -Wall -Wextra $< -o $@
# fp32 GEMM at the call sites' shapes, OpenBLAS against oneDNN (issue 10; not part of the build)
$(BUILD)/tools/gemm_fp32: tools/gemm_fp32.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $< -o $@ $(ALL_LDLIBS)
# the elementwise kernels on the AVX2 and AVX-512 paths, and the whole kernels over both
# switches (ISA path, fp32 GEMM library), in-process A/B (not part of the build)
TOOLS_CORE := $(BUILD)/tools/simd_kernels $(BUILD)/tools/ab_kernels
$(TOOLS_CORE): $(BUILD)/tools/%: tools/%.c $(BUILD)/libmbpocore.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $< -o $@ $(BUILD)/libmbpocore.a $(ALL_LDLIBS)
$(XML_GEN): $(XML_SRC) $(BUILD)/tools/bin2c
	@mkdir -p $(dir $@)
	$(BUILD)/tools/bin2c $(XML_SRC) > $@
$(BUILD)/gen/models.o: $(XML_GEN)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

$(BUILD)/libmbpocore.a: $(CORE_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/mbpo: $(BUILD)/src/main.o $(LUA_OBJ) $(BUILD)/libmbpocore.a
	$(CC) $(ALL_CFLAGS) $^ -o $@ $(ALL_LDLIBS)

$(BUILD)/tests/%: tests/c/%.c tests/c/test.h $(BUILD)/libmbpocore.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $< -o $@ $(BUILD)/libmbpocore.a $(ALL_LDLIBS)

# The README's commands work on a machine without the packages: `deps` runs first, and the
# build runs in a sub-make, which reads the pkg-config flags only once the packages are there.
test check: deps
	@$(MAKE) --no-print-directory test-only

test-only: $(BUILD)/mbpo $(CTESTS)
	@sh tests/run.sh $(BUILD)

# the sanitized build keeps the product's code-generation flags (OPT): floating-point results
# (FMA contraction with -march) are then the same bits, so the golden run checks there too
asan: deps
	@$(MAKE) --no-print-directory test-only BUILD=build/asan CFLAGS="$(OPT) -g" SANFLAGS="$(SAN)"

# libFuzzer targets (clang, ASan + UBSan), objects in build/fuzz: `make fuzz` builds them,
# `make fuzz-smoke` runs each once over its seed corpus (tests/fuzz/corpus/<target>/).
# A long run: build/fuzz/fuzz_safetensors -max_total_time=600 tests/fuzz/corpus/safetensors
# (fuzz_overrides with -dict=tests/fuzz/overrides.dict). fuzz_overrides and fuzz_checkpoint
# drive the Lua library: libFuzzer sees the coverage of the C bindings only, not of lua/.
FUZZ_TARGETS := $(patsubst tests/fuzz/%.c,build/fuzz/%,$(sort $(wildcard tests/fuzz/fuzz_*.c)))
FUZZ_SAN := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
fuzz: deps
	@command -v clang >/dev/null || { SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq clang; }
	@$(MAKE) --no-print-directory fuzz-build BUILD=build/fuzz CC=clang CFLAGS="-O1 -g" \
	  SANFLAGS="$(FUZZ_SAN) -fsanitize=fuzzer-no-link"
fuzz-build: $(FUZZ_TARGETS)
# the targets that drive the Lua library (overrides, checkpoint) link the bindings too and read
# lua/ and their driver tests/fuzz/<name>.lua from this tree (or $MBPO_HOME)
build/fuzz/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/lua_target.h $(LUA_OBJ) $(BUILD)/libmbpocore.a
	$(CC) $(ALL_CFLAGS) -DMBPO_FUZZ_ROOT='"$(CURDIR)"' -fsanitize=fuzzer $< -o $@ $(LUA_OBJ) \
	  $(BUILD)/libmbpocore.a $(ALL_LDLIBS)
fuzz-smoke: fuzz
	@for t in $(FUZZ_TARGETS); do n=$${t##*/fuzz_}; \
	  $$t -runs=0 tests/fuzz/corpus/$$n >/dev/null 2>&1 && echo "fuzz-smoke: $$n ok" || \
	  { echo "fuzz-smoke: $$n FAILED"; exit 1; }; done

bench: $(BUILD)/mbpo
	$(BUILD)/mbpo bench

run: deps
	@$(MAKE) --no-print-directory $(BUILD)/mbpo
	$(BUILD)/mbpo run scripts/inverted_pendulum.lua

# Debian packages: installs only what is missing; apt-get update once; sudo only when not root
deps:
	@missing=""; for p in $(DEB_PKGS); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || \
	    missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  echo "make deps: installing$$missing"; \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing; \
	else echo "make deps: all Debian packages present"; fi

# A one-host Slurm cluster in a temporary directory runs a sweep with a requeue (tests/slurm)
SLURM_PKGS := slurmctld slurmd slurm-client munge
slurm-deps:
	@missing=""; for p in $(SLURM_PKGS); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || \
	    missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  echo "make slurm-deps: installing$$missing"; \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing; \
	else echo "make slurm-deps: all Slurm packages present"; fi

test-slurm: deps slurm-deps
	@$(MAKE) --no-print-directory $(BUILD)/mbpo
	@timeout 300 bash tests/slurm/run.sh $(BUILD)

# The -dev packages of DEB_PKGS, for .ci/run's fresh-machine check
deb-dev-pkgs:
	@echo $(filter %-dev,$(DEB_PKGS))

# The PyTorch CPU peers of the benchmarks (not part of deps: large). Debian's PyTorch 1.13
# for ../shared/peers/torch_mbpo_kernels.py, and a virtual environment outside the repository
# with a current PyTorch 2.x (and JAX when it installs) from PyPI for
# tests/peers/torch2_kernels.py. Idempotent; PEER_VENV=DIR puts the venv elsewhere.
PEER_VENV ?= /opt/mbpo-peers/venv
PEER_DEB_PKGS := python3-torch python3-venv python3-dev g++
peer-deps:
	@missing=""; for p in $(PEER_DEB_PKGS); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || \
	    missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  echo "make peer-deps: installing$$missing"; \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi
	@sh tests/peers/peer_venv.sh "$(PEER_VENV)"

install: $(BUILD)/mbpo
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/mbpo/lua/mbpo/bench \
	  $(DESTDIR)$(PREFIX)/share/mbpo/scripts $(DESTDIR)$(PREFIX)/share/mbpo/examples
	install -m 755 $(BUILD)/mbpo $(DESTDIR)$(PREFIX)/bin/mbpo
	install -m 644 lua/mbpo/*.lua $(DESTDIR)$(PREFIX)/share/mbpo/lua/mbpo/
	@for f in lua/mbpo/bench/*.lua scripts/*.lua examples/*.lua examples/*/*; do \
	  [ -f "$$f" ] || continue; d=$(DESTDIR)$(PREFIX)/share/mbpo/$$(dirname $$f); \
	  install -d $$d && install -m 644 $$f $$d/ || exit 1; done

uninstall:
	rm -rf $(DESTDIR)$(PREFIX)/bin/mbpo $(DESTDIR)$(PREFIX)/share/mbpo

clean:
	rm -rf build

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
