# syntax=docker/dockerfile:1
# The mailsync image: the `mailsync` binary (controller, sync Jobs, and the mbsync-compatible
# command line) plus an `mbsync` link to it, on a small non-root runtime with CA certificates.
#
#   docker build -t mailsync:dev .
#
# Reproducible: the toolchain and base images are pinned by tag (pin them by digest with
# --build-arg for bit-for-bit rebuilds), dependencies come from Cargo.lock (--locked), paths
# are remapped out of the binary, and timestamps follow SOURCE_DATE_EPOCH.

ARG RUST_IMAGE=docker.io/library/rust:1.95-slim-bookworm
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot

# --- build ------------------------------------------------------------------------------------
FROM ${RUST_IMAGE} AS build
WORKDIR /src
ENV CARGO_INCREMENTAL=0 \
    CARGO_TERM_COLOR=never \
    RUSTFLAGS="--remap-path-prefix=/src=/mailsync --remap-path-prefix=/usr/local/cargo=/cargo"
COPY Cargo.toml Cargo.lock ./
COPY src ./src
# The same command CI runs (tests/chart.rs checks it is this one and runs it without
# --release): a locked build of the one binary.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --locked --release --bin mailsync \
    && mkdir -p /out/usr/local/bin \
    && cp target/release/mailsync /out/usr/local/bin/mailsync \
    && ln -s mailsync /out/usr/local/bin/mbsync

# --- runtime ----------------------------------------------------------------------------------
# distroless/cc: glibc, libgcc, CA certificates, /etc/passwd with `nonroot` (65532); no shell.
FROM ${RUNTIME_IMAGE}
COPY --from=build /out/ /
USER 65532:65532
ENV MAILSYNC_LOG_FORMAT=json
ENTRYPOINT ["/usr/local/bin/mailsync"]
CMD ["--help"]
