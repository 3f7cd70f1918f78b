# The image that runs `ripple gate` in a generated .drone.yml (the
# `ripple_image` setting), and `ripple plan` anywhere else.
#   docker build -t registry.example.org/ripple:1 .
# git is included for `--deepen`, which fetches more history with it; the
# `https` feature lets `ripple serve` fetch mirrors over HTTPS.
FROM rust:1.95-slim-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends libssl-dev pkg-config \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src src
COPY templates templates
COPY benches benches
RUN cargo build --release --locked --features https --bin ripple --bin ripple-net

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends git ca-certificates libssl3 \
 && rm -rf /var/lib/apt/lists/*
# `ripple` runs `serve`, `promote`, `slots` and `slot` in `ripple-net` beside it.
COPY --from=build /src/target/release/ripple /src/target/release/ripple-net /usr/local/bin/
CMD ["ripple", "--help"]
