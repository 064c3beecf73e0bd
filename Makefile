# The two commands a newcomer needs: `make run` and `make test`.
.PHONY: run test test-postgres vet build bench

run:
	go run ./cmd/atrium

# The whole suite with the race detector. PostgreSQL tests skip with one line
# unless ATRIUM_TEST_POSTGRES_URL is set, Redis tests unless
# ATRIUM_TEST_REDIS_URL is (see README); `make test-postgres` sets both up on
# a machine with a local PostgreSQL and redis-server.
test:
	@if [ -z "$$ATRIUM_TEST_POSTGRES_URL" ]; then echo "PostgreSQL tests will skip: set ATRIUM_TEST_POSTGRES_URL or run make test-postgres (see README)"; fi
	@if [ -z "$$ATRIUM_TEST_REDIS_URL" ]; then echo "Redis tests will skip: set ATRIUM_TEST_REDIS_URL=redis://127.0.0.1:6379/15 or run make test-postgres (see README)"; fi
	go test -race -count=1 -timeout 30m ./...

test-postgres:
	eval "$$(bash .ci/setup-services)" && go test -race -count=1 -timeout 30m ./...

vet:
	go vet ./...

build:
	go build -o bin/atrium ./cmd/atrium

# The request spine (with session and API-key authentication), logins and a
# login flood, then events (write cost, throughput, webhooks, idle streams),
# then billing: plan checks in a request, the usage meter, the rate limiters;
# each prints its baselines, ratios and targets.
bench:
	eval "$$(bash .ci/setup-services 2>/dev/null || true)" && go run ./bench/spine && go run ./bench/login && go run ./bench/events \
		&& go run ./bench/entitlements && go run ./bench/usage && go run ./bench/ratelimit
