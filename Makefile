.PHONY: run token test services services-stop bench fmt
SHELL := /bin/bash

# Build, start Postgres + LocalStack (state under .dev/), run api and worker in the foreground.
run:
	@scripts/run.sh

# A bearer token for another subject, signed with make run's dev secret: make token SUB=alice [TTL=1h].
token:
	@SUB=$(SUB) TTL=$(TTL) scripts/token.sh

# Lint and the whole suite against a throwaway Postgres and LocalStack; cleans up whatever happens.
test:
	@scripts/test.sh

# Only Postgres and LocalStack, in the background; prints the environment for `cargo run`.
services:
	@scripts/services.sh start

services-stop:
	@scripts/services.sh stop

# The service beside Uppy Companion, nginx and direct S3 (release build, own throwaway services): prints
# the ratio table and writes bench/results.json. BENCH_QUICK=1 for a short smoke run.
bench:
	@scripts/bench.sh

fmt:
	cargo fmt --all
