# Self-hosted Gemini Proxy: `docker compose up` (see README).
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p gemini-proxy

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* && useradd --system --home /data gemini
COPY --from=build /src/target/release/gemini-proxy /usr/local/bin/gemini-proxy
ENV GEMINI_PROXY_DB=/data/gemini-proxy.db \
    GEMINI_PROXY_LISTEN=0.0.0.0:8080
VOLUME /data
RUN mkdir -p /data && chown gemini /data
USER gemini
EXPOSE 8080
ENTRYPOINT ["gemini-proxy"]
CMD ["serve"]
