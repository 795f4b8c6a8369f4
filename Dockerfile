# respgate container image. Build: docker build -t respgate .
# Run:   docker run -p 6379:6379 -p 9379:9379 respgate
# (inside a container respgate must listen on 0.0.0.0 to be reachable; the flags below do that)
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
RUN cargo build --release --locked --bin respgate

FROM debian:bookworm-slim
# The system trust store, for [backend] tls without `ca` (publicly trusted managed Redis).
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*
RUN useradd --system --uid 10001 --no-create-home respgate
COPY --from=build /src/target/release/respgate /usr/local/bin/respgate
COPY config /etc/respgate
USER respgate
EXPOSE 6379 9379
ENTRYPOINT ["/usr/local/bin/respgate"]
CMD ["--listen", "0.0.0.0:6379", "--metrics-listen", "0.0.0.0:9379"]
