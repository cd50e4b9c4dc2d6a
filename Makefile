GO ?= go
BUILD := build
BINARIES := nsqd nsqlookupd
DATA := ./data

.PHONY: all build test fmt-check vet clean run fuzz soak

all: build

build:
	@mkdir -p $(BUILD)
	@for b in $(BINARIES); do $(GO) build -o $(BUILD)/$$b ./apps/$$b || exit 1; done

fmt-check:
	@out="$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))"; \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

# The whole suite: formatting, vet, then every test with the race detector.
# End-to-end tests under test/ start the binaries built by `make build`.
test: fmt-check vet build
	$(GO) test -race -count=1 -timeout 20m ./...

# Starts nsqlookupd and an nsqd registered with it, data under ./data.
# Ctrl-C stops both (each gets SIGTERM and flushes to disk).
run: build
	@mkdir -p $(DATA)
	@trap 'kill $$lpid $$npid 2>/dev/null; wait' INT TERM; \
	$(BUILD)/nsqlookupd --tcp-address=0.0.0.0:4160 --http-address=0.0.0.0:4161 & lpid=$$!; \
	sleep 0.3; \
	$(BUILD)/nsqd --data-path=$(DATA) --tcp-address=0.0.0.0:4150 --http-address=0.0.0.0:4151 \
		--lookupd-tcp-address=127.0.0.1:4160 --broadcast-address=127.0.0.1 & npid=$$!; \
	wait

clean:
	rm -rf $(BUILD)

# Native Go fuzzing (docs/robustness-fuzz.md): every target for FUZZTIME.
# Their seed corpora (testdata/fuzz/) already run as tests in `make test`.
# On a shared machine: make fuzz FUZZFLAGS=-parallel=1
FUZZTIME ?= 60s
FUZZFLAGS ?=
FUZZ_TARGETS := \
	./nsqd:FuzzV2Stream ./nsqd:FuzzIdentify ./nsqd:FuzzAuth ./nsqd:FuzzHTTPAPI \
	./nsqd:FuzzMPUBBody ./nsqd:FuzzDecodeDiskMessage ./nsqd:FuzzLookupPeer \
	./nsqlookupd:FuzzV1Stream ./internal/auth:FuzzAuthResponse ./internal/httpapi:FuzzNewReqParams

fuzz:
	@for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; name=$${t##*:}; \
		echo "== $$name ($$pkg) for $(FUZZTIME)"; \
		$(GO) test -run='^$$' -fuzz="^$$name\$$" -fuzztime=$(FUZZTIME) $(FUZZFLAGS) $$pkg || exit 1; \
	done

# Crash soak: 1,000 SIGKILL/restart cycles under load; every acknowledged
# message must be delivered (docs/robustness-crash.md). CI runs 20 cycles.
soak:
	NSQ_CRASH_CYCLES=1000 $(GO) test -count=1 -timeout 0 -v -run TestCrash ./test/crash
