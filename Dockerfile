# Gemini Proxy: `docker compose up` (see README). One image, both binaries:
# `gemini-proxy` (the default command) and `gemini-proxy-web` (the dashboard with the
# proxy route, and its browser bundle).
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p gemini-proxy -p gemini-proxy-web
# The dashboard's browser bundle; pages work without it, live parts need it.
RUN rustup target add wasm32-unknown-unknown \
    && WASM_TOOLCHAIN=rustup scripts/build-web.sh

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* && useradd --system --home /data gemini
COPY --from=build /src/target/release/gemini-proxy /usr/local/bin/gemini-proxy
COPY --from=build /src/target/release/gemini-proxy-web /usr/local/bin/gemini-proxy-web
COPY --from=build /src/target/site /usr/local/share/gemini-proxy/site
ENV GEMINI_PROXY_DB=/data/gemini-proxy.db \
    GEMINI_PROXY_LISTEN=0.0.0.0:8080 \
    GEMINI_PROXY_KEY_CACHE=/data/gemini-proxy-keys.cache.json \
    LEPTOS_SITE_ROOT=/usr/local/share/gemini-proxy/site
VOLUME /data
RUN mkdir -p /data && chown gemini /data
USER gemini
EXPOSE 8080
ENTRYPOINT ["gemini-proxy"]
CMD ["serve"]
