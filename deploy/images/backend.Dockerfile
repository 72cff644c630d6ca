# The sealcache-server image: the release binaries (the server and the `sealcache` operator
# command) on a minimal Debian base.
# BASE is the official debian:bookworm-slim on a machine with registry access, or the local
# debootstrap base that `cargo xtask secure-up --images local` builds and imports.
ARG BASE=debian:bookworm-slim
FROM ${BASE}
COPY sealcache-server /usr/local/bin/sealcache-server
# The operator command (crates/cli): `docker compose exec backend sealcache ...`.
COPY sealcache /usr/local/bin/sealcache
USER 999:999
EXPOSE 8080
ENV SEALCACHE_LISTEN=0.0.0.0:8080
ENTRYPOINT []
CMD ["sealcache-server"]
