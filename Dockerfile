# respgate container image.
#   Build: docker build -t respgate .
#   Run:   docker run -p 6379:6379 -p 9379:9379 respgate
#   With a config: docker run -v "$PWD/config:/etc/respgate:ro" -p 6379:6379 -p 9379:9379 \
#                    respgate --config /etc/respgate/standalone.toml
# Inside a container respgate must listen on 0.0.0.0 to be reachable: the default command
# does that; a mounted config must set listen/metrics_listen to 0.0.0.0 (or pass the flags).

# --- build stage: the release binary (mlua's vendored Lua needs a C compiler: in the image).
FROM rust:1-bookworm AS build
WORKDIR /src
# Dependencies first, so a source change does not rebuild them.
COPY Cargo.toml Cargo.lock ./
RUN mkdir src && echo 'fn main() {}' > src/main.rs && echo '' > src/lib.rs \
    && cargo build --release --locked --bin respgate || true
COPY src ./src
# The stub's outputs are older than the real sources; touch so cargo rebuilds them.
RUN touch src/main.rs src/lib.rs && cargo build --release --locked --bin respgate \
    && strip target/release/respgate

# --- runtime stage: Debian slim, the binary, the example configs, a non-root user.
FROM debian:bookworm-slim
# The system trust store, for [backend] tls without `ca` (publicly trusted managed Redis).
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*
RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin respgate \
    && mkdir -p /var/lib/respgate && chown respgate /var/lib/respgate
COPY --from=build /src/target/release/respgate /usr/local/bin/respgate
COPY config /etc/respgate
# Mount your own config here (read-only is fine); /var/lib/respgate is for the embedded
# engine's AOF ([embedded] dir) when persistence is on.
VOLUME ["/etc/respgate", "/var/lib/respgate"]
WORKDIR /var/lib/respgate
USER respgate
# 6379: Redis clients (RESP). 9379: Prometheus /metrics and GET /status.
EXPOSE 6379 9379
# PING over plain TCP; PONG or NOAUTH (alive, wants a login) is healthy. With a TLS-only
# listener, override it, e.g. HEALTHCHECK CMD respgate status --metrics-addr 127.0.0.1:9379
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD ["/usr/local/bin/respgate", "ping", "--addr", "127.0.0.1:6379"]
ENTRYPOINT ["/usr/local/bin/respgate"]
CMD ["--listen", "0.0.0.0:6379", "--metrics-listen", "0.0.0.0:9379"]
