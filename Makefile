GO ?= go
BUILD := build
BINARIES := nsqd nsqlookupd
DATA := ./data

.PHONY: all build test fmt-check vet clean run

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
