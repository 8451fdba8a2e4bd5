# syntax=docker/dockerfile:1
#
# The agent container for Amazon Bedrock AgentCore Runtime (linux/arm64,
# listens on 0.0.0.0:8080: POST /invocations, GET /ping, GET /ws).
#
# Build (the CDK app does this for you at deploy time):
#   docker buildx build --platform linux/arm64 -t x402-agent .
# On an x86_64 host buildx emulates arm64 with QEMU: expect a slow first build
# (tens of minutes); an arm64 host (Graviton, Apple Silicon) builds natively.
#
# Stages: `chef` (toolchain + cargo-chef) -> `planner` (dependency recipe) ->
# `builder` (cached dependency layer, then our code) -> `runtime`.
# The binary is built with the workspace `[profile.release]` from Cargo.toml
# (thin LTO, stripped, panic=abort): the same profile as `cargo build --release -p agent`.
#
# Expected final image size: ~55-75 MB uncompressed (distroless cc base ~23 MB +
# one stripped static-ish Rust binary ~30-50 MB with the AWS SDKs, alloy and axum).
# The runtime stage has no shell, package manager, compiler, sources or secrets:
# secrets are read at run time from Secrets Manager / SSM by ARN (see cdk/).

# hadolint ignore=DL3029 # AgentCore Runtime runs arm64 only: the platform is part of the contract.
FROM --platform=linux/arm64 rust:1.95-bookworm AS chef
# cargo-chef pinned; --locked uses its own lockfile.
RUN cargo install cargo-chef --version 0.1.78 --locked
WORKDIR /build

FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
# Dependencies only: this layer is reused until Cargo.toml/Cargo.lock change.
COPY --from=planner /build/recipe.json recipe.json
RUN cargo chef cook --release --locked --package agent --recipe-path recipe.json
# Then our code.
COPY . .
RUN cargo build --release --locked --package agent --bin agent \
    && cp target/release/agent /agent

# hadolint ignore=DL3029 # see above
FROM --platform=linux/arm64 gcr.io/distroless/cc-debian12:nonroot AS runtime
# distroless `nonroot`: uid/gid 65532, no shell, CA certificates included.
COPY --from=builder /agent /usr/local/bin/agent
USER 65532:65532
# AgentCore reaches the container on 0.0.0.0:8080; the agent's own default is
# 127.0.0.1 (a developer's agent is not reachable from the network).
ENV AGENT_HOST=0.0.0.0 \
    AGENT_PORT=8080 \
    RUST_LOG=info
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/agent"]
