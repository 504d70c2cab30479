# syntax=docker/dockerfile:1
# Multi-stage build of auth-service. Not built in CI (no container engine there): the build stage
# runs the same `cargo build --release --locked` that scripts/bench.sh runs, and the health check
# calls the same /health/live the tests call.

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src src
COPY migrations migrations
COPY benches benches
COPY examples examples
RUN cargo build --release --locked --bin auth-service --bin seed

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /var/lib/auth --shell /usr/sbin/nologin auth \
    && mkdir -p /var/lib/auth \
    && chown auth:auth /var/lib/auth
COPY --from=build /src/target/release/auth-service /src/target/release/seed /usr/local/bin/
USER auth
WORKDIR /var/lib/auth
ENV APP_ENV=production \
    HOST=0.0.0.0 \
    PORT=8000 \
    DATABASE_URL=sqlite:///var/lib/auth/auth.db \
    LOG_FORMAT=json
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD curl -fsS http://127.0.0.1:8000/health/live || exit 1
ENTRYPOINT ["auth-service"]
CMD ["serve"]
