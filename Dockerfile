# syntax=docker/dockerfile:1
# slaflow's container image: built with cargo in the Rust image, run from Debian slim as a
# non-root user. The Helm chart (helm/slaflow) runs it with `run --config FILE`.
#
#   docker build -t REGISTRY/slaflow:0.1.0 .

FROM rust:1-bookworm AS build
# What `cargo build` needs beyond Rust: a C/C++ toolchain and make for the bundled
# librdkafka (rdkafka-sys runs its configure script and make; no cmake) and SQLite
# (rusqlite, bundled), pkg-config and zlib for librdkafka's compression, OpenSSL headers
# for its TLS and SCRAM, python3 for librdkafka's build scripts. No protoc: the .proto files
# are compiled by protox (Rust).
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential pkg-config zlib1g-dev libssl-dev python3 \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# The cache mounts keep the registry and the target directory between builds (BuildKit).
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin slaflow \
 && install -m 0755 target/release/slaflow /usr/local/bin/slaflow

FROM debian:bookworm-slim
# ca-certificates and libssl3 for TLS to brokers; zlib (librdkafka) and glibc are in the
# base image.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates libssl3 \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /usr/local/bin/slaflow /usr/local/bin/slaflow
LABEL org.opencontainers.image.title="slaflow" \
      org.opencontainers.image.description="Alert correlation and SLA compliance from monitoring and APM events" \
      org.opencontainers.image.licenses="Apache-2.0"
# The same non-root user as the chart's security context ("nonroot" in distroless images).
USER 65532:65532
# /metrics, /healthz, /readyz, webhooks and reports ([server] listen).
EXPOSE 9464
ENTRYPOINT ["/usr/local/bin/slaflow"]
CMD ["run", "--config", "/etc/slaflow/slaflow.toml"]
