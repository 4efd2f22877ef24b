# syntax=docker/dockerfile:1

# Entente node image: one static binary on a distroless base, running as a
# non-root user, with its state in one volume.
#
#   docker build --build-arg VERSION=$(git describe --tags --always) -t entente .
#   docker run -e ENTENTE_NODE_NAME=... -e ENTENTE_NODE_PUBLIC_URL=https://... \
#     -p 8443:8443 -v entente-data:/var/lib/entente entente

# ---- build ------------------------------------------------------------------
FROM golang:1.26-bookworm AS build

# The binary must not link libc: the runtime image has none. The compile
# cache lives in a BuildKit cache mount (below), not in a layer.
ENV CGO_ENABLED=0 \
    GOFLAGS=-mod=readonly \
    GOCACHE=/cache/go-build

WORKDIR /src

# Modules get their own layer, so that a change to the code alone does not
# download them again.
COPY go.mod go.sum ./
RUN go mod download && go mod verify

COPY . .

ARG VERSION=dev
# -trimpath keeps build paths out of the binary (reproducible, no host paths);
# -s -w drop the symbol and debug tables.
RUN --mount=type=cache,target=/cache/go-build \
    go build -trimpath \
      -ldflags "-s -w -X main.version=${VERSION}" \
      -o /out/entente ./cmd/entente

# The data directory exists in the image owned by nonroot (65532), so that a
# fresh named volume mounted on it is created writable for the node.
RUN mkdir -p /out/data && chown 65532:65532 /out/data && chmod 0700 /out/data

# ---- runtime ----------------------------------------------------------------
# distroless/static carries CA certificates and tzdata and nothing else: no
# shell, no package manager, which is why the healthcheck is the binary itself.
FROM gcr.io/distroless/static-debian12:nonroot

ARG VERSION=dev
LABEL org.opencontainers.image.title="Entente" \
      org.opencontainers.image.description="Federated video conferencing node for public administrations" \
      org.opencontainers.image.source="https://github.com/entente-org/entente" \
      org.opencontainers.image.version="${VERSION}"

COPY --from=build /out/entente /usr/local/bin/entente
COPY --from=build --chown=65532:65532 /out/data /var/lib/entente

# The node reads these like any other setting; the container only fixes where
# its state lives and which port it listens on. Everything else comes from the
# environment or from a file given with --config.
ENV ENTENTE_NODE_DATA_DIR=/var/lib/entente \
    ENTENTE_HTTP_LISTEN=:8443

USER nonroot
EXPOSE 8443
VOLUME /var/lib/entente

HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["/usr/local/bin/entente", "healthcheck"]

ENTRYPOINT ["/usr/local/bin/entente"]
CMD ["serve"]
