# distcache: build, install, test.
#
#   make                 build the libraries and tools (release)
#   make deps            install what test, bench and deb need (as root, apt)
#   make demo            start a server, run the C example and a short load
#   make test            every test, lint and check (what CI runs)
#   make test-root       the tests that need root (make test runs them as root)
#   make bench           the scenario matrix against its floors, and the
#                        micro-benchmarks (report: target/bench/report.md)
#   make soak [DURATION=600]  the model-checked soak test, DURATION seconds (release)
#   make install PREFIX=/usr/local [DESTDIR=...]   (then run ldconfig)
#   make uninstall PREFIX=/usr/local [DESTDIR=...]
#   make deb             Debian packages in target/deb/ (lintian-clean)
#   make check           headers, exported symbols and the Rust API docs are current
#   make headers         regenerate include/ with cbindgen
#   make fuzz [FUZZ_SECONDS=60]  run every cargo-fuzz target that long (nightly)

PREFIX    ?= /usr/local
DESTDIR   ?=
CARGO     ?= cargo
CC        ?= cc
VERSION   := 1.0.1
SOMAJOR   := 1

REL       := target/release
STAGE     := $(CURDIR)/target/stage
TOOLS     := $(CURDIR)/target/tools
CBINDGEN_VERSION := 0.29.2
CBINDGEN  := $(TOOLS)/bin/cbindgen
HEADERS   := distcache/dc_client.h distcache/dc_plug.h distcache/dc_server.h libnal/nal.h libnal/nal_devel.h
FILTERS   := libnal libdistcacheserver
TOOLS_BIN := dc_server
TOOLS_BIN += dc_test dc_snoop
TOOLS_BIN += dc_client
TOOLS_BIN += dc_admin
# What a static link of libdistcache.a needs besides (rustc --print native-static-libs).
NATIVE_LIBS := -lssl -lcrypto -lgcc_s -lutil -lrt -lpthread -lm -ldl -lc

LIBDIR    = $(DESTDIR)$(PREFIX)/lib
INCDIR    = $(DESTDIR)$(PREFIX)/include
BINDIR    = $(DESTDIR)$(PREFIX)/bin
MANDIR    = $(DESTDIR)$(PREFIX)/share/man
EXAMPLEDIR = $(DESTDIR)$(PREFIX)/share/doc/distcache/examples
DURATION  ?= 600

.PHONY: all build deps demo test test-root bench soak fuzz lint check headers install install-docs uninstall deb stage clean

all: build

build:
	$(CARGO) build --release --lib --bins
	@for f in $(FILTERS); do \
		sh abi/gen-filter-stub.sh $$f > $(REL)/$$f-filter.c && \
		$(CC) -shared -fPIC -o $(REL)/$$f.so.$(VERSION) $(REL)/$$f-filter.c \
			-Wl,-soname,$$f.so.$(SOMAJOR) -Wl,--filter,libdistcache.so.$(SOMAJOR) || exit 1; \
	done

install: build
	install -d $(LIBDIR)/pkgconfig $(INCDIR)/distcache $(INCDIR)/libnal $(BINDIR)
	install -m 755 $(REL)/libdistcache.so $(LIBDIR)/libdistcache.so.$(VERSION)
	@for f in $(FILTERS); do install -m 755 $(REL)/$$f.so.$(VERSION) $(LIBDIR)/ || exit 1; done
	@for f in libdistcache $(FILTERS); do \
		ln -sf $$f.so.$(VERSION) $(LIBDIR)/$$f.so.$(SOMAJOR) && \
		ln -sf $$f.so.$(SOMAJOR) $(LIBDIR)/$$f.so || exit 1; \
	done
	install -m 644 $(REL)/libdistcache.a $(LIBDIR)/libdistcache.a
	@for h in $(HEADERS); do install -m 644 include/$$h $(INCDIR)/$$h || exit 1; done
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@VERSION@|$(VERSION)|' \
		-e 's|@NATIVE_LIBS@|$(NATIVE_LIBS)|' libdistcache.pc.in > $(LIBDIR)/pkgconfig/libdistcache.pc
	@for t in $(TOOLS_BIN); do install -m 755 $(REL)/$$t $(BINDIR)/$$t || exit 1; done

# Manual pages, one .so page per other name in man/links (so that
# `man DC_CTX_get_session` works), and the example systemd units with their
# option files, pointed at $(PREFIX)/bin. The units are examples to copy into
# /etc/systemd/system, so they go where a distribution puts examples.
install: install-docs
install-docs:
	install -d $(MANDIR)/man1 $(MANDIR)/man3 $(MANDIR)/man7 $(MANDIR)/man8 $(EXAMPLEDIR)/systemd
	@for p in man/*.[1378]; do install -m 644 $$p $(MANDIR)/man$${p##*.}/ || exit 1; done
	@grep -v '^#' man/links | while read -r alias page; do \
		test -n "$$alias" || continue; \
		test -f man/$$page || { echo "man/links: man/$$page does not exist" >&2; exit 1; }; \
		echo ".so man$${page##*.}/$$page" > $(MANDIR)/man$${alias##*.}/$$alias || exit 1; \
	done
	@for u in contrib/systemd/*; do \
		sed -e 's|/usr/local/bin/|$(PREFIX)/bin/|g' $$u > $(EXAMPLEDIR)/systemd/$${u##*/} || exit 1; \
	done

# Removes what `make install` put under the same PREFIX and DESTDIR, and
# its own directories (include/distcache, ...) when they are left empty;
# run ldconfig afterwards.
uninstall:
	@for f in libdistcache $(FILTERS); do \
		rm -f $(LIBDIR)/$$f.so.$(VERSION) $(LIBDIR)/$$f.so.$(SOMAJOR) $(LIBDIR)/$$f.so; \
	done
	rm -f $(LIBDIR)/libdistcache.a $(LIBDIR)/pkgconfig/libdistcache.pc
	@for h in $(HEADERS); do rm -f $(INCDIR)/$$h; done
	@for t in $(TOOLS_BIN); do rm -f $(BINDIR)/$$t; done
	@for p in man/*.[1378]; do p=$${p##*/}; rm -f $(MANDIR)/man$${p##*.}/$$p; done
	@grep -v '^#' man/links | while read -r alias page; do \
		test -n "$$alias" || continue; rm -f $(MANDIR)/man$${alias##*.}/$$alias; \
	done
	@for u in contrib/systemd/*; do rm -f $(EXAMPLEDIR)/systemd/$${u##*/}; done
	-@rmdir $(EXAMPLEDIR)/systemd $(EXAMPLEDIR) $(DESTDIR)$(PREFIX)/share/doc/distcache \
		$(INCDIR)/distcache $(INCDIR)/libnal 2>/dev/null || true
	@echo "uninstall: removed distcache from $(DESTDIR)$(PREFIX)"

# Debian packages in target/deb/: libdistcache1, libdistcache-dev and
# distcache, from an install under /usr (contrib/debian/build-deb.sh says
# what goes where); lintian must report no error. DEB_MAINTAINER (name
# <address>) sets the Maintainer field.
DEB_DIR := $(CURDIR)/target/deb
deb: build
	rm -rf $(DEB_DIR)/root
	$(MAKE) install PREFIX=/usr DESTDIR=$(DEB_DIR)/root
	sh contrib/debian/build-deb.sh $(DEB_DIR)/root $(DEB_DIR) $(VERSION)

# A private install that the C tests and the demo use.
stage:
	$(MAKE) install PREFIX=$(STAGE) DESTDIR=

# What the tests, the benchmarks and the packages need; quick when all of
# it is there (.ci/deps.sh says what it would install, and how).
deps:
	@sh .ci/deps.sh

demo: deps
	$(MAKE) stage
	sh examples/demo.sh $(STAGE)

$(CBINDGEN):
	$(CARGO) install cbindgen --version $(CBINDGEN_VERSION) --locked --root $(TOOLS)

headers: $(CBINDGEN)
	@for h in $(HEADERS); do sh abi/gen-header.sh $(CBINDGEN) $$h include/$$h || exit 1; done

check: $(CBINDGEN) build
	@mkdir -p target/check/distcache target/check/libnal
	@for h in $(HEADERS); do \
		sh abi/gen-header.sh $(CBINDGEN) $$h target/check/$$h && \
		diff -u include/$$h target/check/$$h || \
		{ echo "include/$$h is stale: run 'make headers'"; exit 1; }; \
	done
	@awk -F'\t' '!/^#/ {print $$1}' abi/exports.tsv | sort > target/check/exports.expected
	@nm -D --defined-only $(REL)/libdistcache.so | awk '$$2 == "T" {print $$3}' | sort > target/check/exports.actual
	@diff -u target/check/exports.expected target/check/exports.actual || \
		{ echo "exported symbols differ from abi/exports.tsv"; exit 1; }
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --no-deps
	@echo "check: headers, exported symbols and the Rust API docs are current"

# Fuzzing needs the nightly toolchain. Each target starts from its saved
# inputs (fuzz/regressions/<target>, never written to) and its working corpus
# (fuzz/corpus/<target>, not checked in); a failing input lands in
# fuzz/artifacts/<target>/.
CARGO_FUZZ   := $(TOOLS)/bin/cargo-fuzz
FUZZ_CARGO   ?= cargo +nightly
FUZZ_SECONDS ?= 60
FUZZ_TARGETS := decoder reassembly add_payload address plug server
FUZZ_FLAGS   := -max_len=70000 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1

$(CARGO_FUZZ):
	$(CARGO) install cargo-fuzz --locked --root $(TOOLS)

fuzz: $(CARGO_FUZZ)
	@mkdir -p target/fuzz
	@for t in $(FUZZ_TARGETS); do \
		mkdir -p fuzz/corpus/$$t; \
		echo "fuzz: $$t for $(FUZZ_SECONDS) s (log: target/fuzz/$$t.log)"; \
		PATH="$(TOOLS)/bin:$$PATH" $(FUZZ_CARGO) fuzz run $$t fuzz/corpus/$$t fuzz/regressions/$$t -- \
			-max_total_time=$(FUZZ_SECONDS) $(FUZZ_FLAGS) > target/fuzz/$$t.log 2>&1 || \
			{ tail -n 40 target/fuzz/$$t.log; echo "fuzz: $$t failed; its input is in fuzz/artifacts/$$t/"; exit 1; }; \
		echo "fuzz: $$t: $$(grep -o 'Done [0-9]* runs in [0-9]* second' target/fuzz/$$t.log)"; \
	done

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings

# deb reuses stage's release build; tests/deb.rs runs what it packaged.
test: deps
	$(MAKE) lint check stage deb
	DISTCACHE_STAGE=$(STAGE) DISTCACHE_DEB=$(DEB_DIR) $(CARGO) test
	@if [ "$$(id -u)" -eq 0 ]; then $(MAKE) test-root; else \
		echo "make test: not root, so the tests that need root did not run: sudo make test-root"; fi

# The tests that need root (named root_*, ignored by a plain cargo test):
# running a tool as another user, dc_server -user.
ROOT_TESTS := admin dc_server_tool
test-root:
	DISTCACHE_STAGE=$(STAGE) $(CARGO) test $(ROOT_TESTS:%=--test %) -- --ignored root_

# BENCH_RUNS, BENCH_SECS, BENCH_ONLY, BENCH_BIG and DISTCACHE_ORIGINAL are
# read from the environment (docs/performance.md).
bench: build
	@mkdir -p target/bench
	$(CARGO) bench --bench scenarios
	awk -f contrib/bench/chart.awk target/bench/report.md > target/bench/chart.svg
	@echo "bench: chart of the runs by number of connections: target/bench/chart.svg"
	$(CARGO) bench --bench micro -- --warm-up-time 1 --measurement-time 3 > target/bench/micro.txt
	@grep -E '^[a-zA-Z].*|time:' target/bench/micro.txt | grep -v -e '^Benchmarking' -e '^Found' > target/bench/micro-summary.txt || true
	@cat target/bench/micro-summary.txt
# tests/soak/ for DURATION seconds (make test runs it for 120).
soak:
	DISTCACHE_SOAK_SECS=$(DURATION) $(CARGO) test --release --test soak -- --nocapture

clean:
	$(CARGO) clean
