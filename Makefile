# egressd — one Makefile for the daemon, the admin tool, the tests and the fuzzers.
#
#   make            build/egressd and build/egressctl
#   make check      deps, build, unit tests (ASan+UBSan), bounded fuzz runs, the Debian
#                   package, end-to-end tests (the package's among them)
#   make demo       the demo's deps only, build, start a demo gateway on 127.0.0.1:3128
#                   (DEMO_PORT=N for another port) in the foreground
#   make fuzz       longer fuzz runs (FUZZ_SECONDS=300 by default)
#   make bench      egressd against Squid; make policy-bench: domain lists at a million entries
#   make install    PREFIX=/usr/local DESTDIR=
#   make deb        build/egressd_VERSION_ARCH.deb (dpkg-buildpackage from packaging/debian/)

PREFIX    ?= /usr/local
DESTDIR   ?=
BUILD     ?= build
CC        ?= cc
CLANG     ?= clang
PYTHON    ?= /usr/bin/python3
PKGS      := libevent libevent_pthreads libevent_openssl libssl libcrypto ldap libpcre2-8 json-c libsystemd relp
VERSION   := 0.1.0

WARNINGS  := -Wall -Wextra -Werror -Wshadow -Wpointer-arith -Wcast-qual \
             -Wstrict-prototypes -Wmissing-prototypes -Wformat=2 -Wvla \
             -Wimplicit-fallthrough -Wundef -Wwrite-strings -Wno-unused-parameter
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   = $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CPPFLAGS  += -D_GNU_SOURCE -DEGRESSD_VERSION='"$(VERSION)"' -I.
CFLAGS    ?= -O2 -g
CFLAGS    += -std=gnu11 -pthread $(WARNINGS) $(PKG_CFLAGS)
LDLIBS    += $(PKG_LIBS) -pthread

SAN_FLAGS  := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all
FUZZ_FLAGS := -O1 -g -fno-omit-frame-pointer -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all

# Every module except the two program entry points goes into the core library that
# the daemon, the unit tests and the fuzzers link.
CORE_SRCS := $(sort $(filter-out gateway/main.c,$(wildcard gateway/*.c)) $(wildcard gateway/http/*.c) \
               $(wildcard config/*.c) $(wildcard auth/*.c) $(wildcard policy/*.c) $(wildcard audit/*.c))
ADMIN_SRCS := $(sort $(wildcard admin/*.c))
# egressctl reads the configuration and the policy with the daemon's own pure parsers
# (config/ and policy/); it links no gateway code.
ADMIN_CORE := $(wildcard config/*.c) $(wildcard policy/*.c)
UNIT_SRCS := $(sort $(wildcard tests/unit/test_*.c))
FUZZ_SRCS := $(sort $(wildcard tests/fuzz/fuzz_*.c))

CORE_OBJS := $(CORE_SRCS:%.c=$(BUILD)/obj/%.o)
SAN_OBJS  := $(CORE_SRCS:%.c=$(BUILD)/san/%.o)
FZ_OBJS   := $(CORE_SRCS:%.c=$(BUILD)/fzobj/%.o)
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/unit/%)
FUZZ_BINS := $(FUZZ_SRCS:tests/fuzz/%.c=$(BUILD)/fuzz/%)

FUZZ_SECONDS ?= 300
CHECK_FUZZ_SECONDS ?= 10

.PHONY: all deps deps-demo check unit fuzz-check fuzz integration demo install clean check-layers bench \
        policy-bench deb soak soak-check
all: $(BUILD)/egressd $(BUILD)/egressctl

deps:
	@sh packaging/deps.sh check

deps-demo:
	@sh packaging/deps.sh demo

$(BUILD)/egressd: $(BUILD)/obj/gateway/main.o $(CORE_OBJS)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $(filter %.o,$^) $(LDLIBS)

# egressctl never talks to systemd: it links without libsystemd.
$(BUILD)/egressctl: PKGS := $(filter-out libsystemd,$(PKGS))
$(BUILD)/egressctl: $(ADMIN_SRCS:%.c=$(BUILD)/obj/%.o) $(ADMIN_CORE:%.c=$(BUILD)/obj/%.o)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -MMD -MP -c -o $@ $<

$(BUILD)/san/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(SAN_FLAGS) -MMD -MP -c -o $@ $<

$(BUILD)/fzobj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CLANG) $(CPPFLAGS) $(CFLAGS) $(FUZZ_FLAGS) -MMD -MP -c -o $@ $<

$(BUILD)/unit/%: tests/unit/%.c $(SAN_OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(SAN_FLAGS) -MMD -MP -o $@ $(filter %.c %.o,$^) $(LDLIBS) $(shell pkg-config --libs cmocka)

# The daemon under AddressSanitizer and UBSan, for the soak.
$(BUILD)/asan/egressd: $(BUILD)/san/gateway/main.o $(SAN_OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(SAN_FLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# The SNI differential compares gateway/sni.c with OpenSSL's ClientHello parser.
$(BUILD)/fuzz/fuzz_sni_openssl: LDLIBS += $(shell pkg-config --libs openssl)

$(BUILD)/fuzz/%: tests/fuzz/%.c $(FZ_OBJS)
	@mkdir -p $(dir $@)
	$(CLANG) $(CPPFLAGS) $(CFLAGS) $(subst fuzzer-no-link,fuzzer,$(FUZZ_FLAGS)) -o $@ $(filter %.c %.o,$^) $(LDLIBS)

# Layering: lib/ (header-only helpers) includes no module; gateway/http/ (the pure
# HTTP parsers) sees only itself and lib/; config/ (the configuration parser both
# programs read) sees only itself, policy/ and lib/; policy/ and audit/ never see the
# gateway or auth internals; admin/ includes no gateway/ or auth/ header: it reads
# the files through config/ and policy/ and talks to the daemon over its socket.
check-layers:
	@! grep -n '#include "' lib/*.h | grep -v '#include "lib/' || { echo "lib/ includes a module"; exit 1; }
	@! grep -n '#include "' gateway/http/*.c gateway/http/*.h | grep -v '#include "\(gateway/http\|lib\)/' || { echo "gateway/http/ includes outside itself"; exit 1; }
	@! grep -n '#include "' config/*.c config/*.h | grep -v '#include "\(config\|policy\|lib\)/' || { echo "config/ includes gateway/, auth/ or audit/"; exit 1; }
	@! grep -n '#include "\(gateway\|auth\|config\)/' policy/*.c policy/*.h || { echo "policy/ includes gateway/, auth/ or config/"; exit 1; }
	@! grep -n '#include "\(gateway\|auth\|policy\|config\)/' audit/*.c audit/*.h || { echo "audit/ includes another module"; exit 1; }
	@! grep -n '#include "\(gateway\|auth\|audit\)/' admin/*.c admin/*.h || { echo "admin/ includes gateway/, auth/ or audit/"; exit 1; }
	@sh tests/check-cycles.sh
	@echo "layers: ok"

unit: $(UNIT_BINS)
	@set -e; for t in $(UNIT_BINS); do echo "== $$t"; ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 $$t; done

fuzz-check: $(FUZZ_BINS)
	@sh tests/fuzz/run.sh $(CHECK_FUZZ_SECONDS) $(FUZZ_BINS)

fuzz: $(FUZZ_BINS)
	@sh tests/fuzz/run.sh $(FUZZ_SECONDS) $(FUZZ_BINS)

# The end-to-end tests run two at a time (pytest-xdist): most of them wait on sockets and
# timers, so two processes on two cores nearly halve the time; every test has its own
# gateway, ports and folders.  PYTEST_JOBS=1 runs them one by one.
PYTEST_JOBS ?= 2
integration: all
	$(PYTHON) -m pytest -q -p no:cacheprovider $(if $(filter-out 1,$(PYTEST_JOBS)),-n $(PYTEST_JOBS)) tests/integration

check: deps
	$(MAKE) all
	$(MAKE) check-layers
	$(MAKE) unit
	$(MAKE) fuzz-check
	$(MAKE) deb
	$(MAKE) integration
	$(MAKE) soak-check

# The fault-injection soak (tests/soak/soak.py): every phase in each run.  make check:
# RELP on the normal build and the datagram path under ASan+UBSan, SOAK_CHECK_SECONDS
# each; make soak: both transports for SOAK_SECONDS on the normal build.
SOAK_SECONDS ?= 600
SOAK_CHECK_SECONDS ?= 60
soak-check: all $(BUILD)/asan/egressd
	$(PYTHON) tests/soak/soak.py --transport relp --seconds $(SOAK_CHECK_SECONDS)
	$(PYTHON) tests/soak/soak.py --transport datagram --seconds $(SOAK_CHECK_SECONDS) \
	    --binary $(BUILD)/asan/egressd --sanitizer

soak: all
	$(PYTHON) tests/soak/soak.py --transport relp --seconds $(SOAK_SECONDS)
	$(PYTHON) tests/soak/soak.py --transport datagram --seconds $(SOAK_SECONDS)

demo: deps-demo all
	@sh packaging/demo.sh

bench: all
	@sh tests/bench/run.sh
	@sh tests/bench/tls_bench.sh

# Issue 18's figures: a million list entries in-process, then through a running gateway
# with reloads (a few minutes; never part of make check).
policy-bench: all
	@sh tests/bench/policy_bench.sh all

install: all
	install -d $(DESTDIR)$(PREFIX)/sbin $(DESTDIR)$(PREFIX)/bin
	install -m 0755 $(BUILD)/egressd $(DESTDIR)$(PREFIX)/sbin/egressd
	install -m 0755 $(BUILD)/egressctl $(DESTDIR)$(PREFIX)/bin/egressctl
	install -d $(DESTDIR)$(PREFIX)/share/doc/egressd/examples
	install -m 0644 packaging/egressd.conf packaging/policy.rules packaging/blocked.list $(DESTDIR)$(PREFIX)/share/doc/egressd/examples/
	if ls packaging/*.[58] >/dev/null 2>&1; then \
	  install -d $(DESTDIR)$(PREFIX)/share/man/man5 $(DESTDIR)$(PREFIX)/share/man/man8; \
	  for m in packaging/*.5; do [ -e "$$m" ] && install -m 0644 "$$m" $(DESTDIR)$(PREFIX)/share/man/man5/; done; \
	  for m in packaging/*.8; do [ -e "$$m" ] && install -m 0644 "$$m" $(DESTDIR)$(PREFIX)/share/man/man8/; done; \
	fi

# The Debian package.  dpkg-buildpackage wants debian/ at the top of a source
# tree: the working tree (build/ and .git left out) is copied to
# build/deb/egressd-VERSION/ with packaging/debian/ as its debian/, built
# there, and the results moved to build/.
DEB_STAGE := $(BUILD)/deb/egressd-$(VERSION)
deb:
	rm -rf $(BUILD)/deb $(BUILD)/egressd_$(VERSION)_* $(BUILD)/egressd-dbgsym_$(VERSION)_*
	mkdir -p $(DEB_STAGE)
	tar --exclude=./$(BUILD) --exclude=./.git -cf - . | tar -xf - -C $(DEB_STAGE)
	rm -rf $(DEB_STAGE)/debian
	cp -R packaging/debian $(DEB_STAGE)/debian
	cd $(DEB_STAGE) && dpkg-buildpackage -b -us -uc -j2 >../build.log 2>&1 || { tail -40 ../build.log; exit 1; }
	mv $(BUILD)/deb/egressd_$(VERSION)_* $(BUILD)/deb/egressd-dbgsym_$(VERSION)_* $(BUILD)/
	rm -rf $(DEB_STAGE)
	@ls $(BUILD)/egressd_$(VERSION)_*.deb

clean:
	rm -rf $(BUILD)

# Objects are kept between runs even when only a test or fuzzer needed them.
.SECONDARY:

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
