# The api and worker binaries in one small image; `docker compose up` runs both (see compose.yaml).
# Build: docker build -t uploads .   Run the worker: docker run --entrypoint /usr/local/bin/worker uploads

# Rust as Cargo.toml's rust-version; slim is enough (ring needs the C compiler it ships).
FROM rust:1.94.1-slim-bookworm AS build
WORKDIR /src
COPY . .
# The caches keep the registry and target/ between builds; the binaries are copied out of the cached target/.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p api -p worker \
    && cp target/release/api target/release/worker /usr/local/bin/

# Distroless: glibc and CA certificates, no shell or package manager; runs as uid 65532.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /usr/local/bin/api /usr/local/bin/worker /usr/local/bin/
USER nonroot
ENV LOG_FORMAT=json BIND_ADDR=0.0.0.0:8080
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/api"]
