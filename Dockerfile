# syntax=docker/dockerfile:1
#
# Sluice broker image: one static, stripped binary on distroless (no shell,
# no package manager, runs as uid 65532 "nonroot").
#
#   docker build -t sluice .
#   docker run --rm -p 9092:9092 -p 9644:9644 -v sluice-data:/data sluice
#
# With no flags the container is a single broker with an embedded etcd, its
# data under the /data volume, advertising localhost:9092 (right for clients
# on the Docker host with -p 9092:9092). Every flag can be given after the
# image name or as SLUICE_<FLAG> in the environment; flags win. For three
# brokers on one external etcd see docker-compose.yml.
#
# Needs BuildKit (the default builder since Docker 23) for the cache mounts.

# Go version: go.mod says `go 1.26.8`; the 1.26 image is that release or a
# later patch (an older one would fetch the toolchain go.mod names).
ARG GO_VERSION=1.26

# The builder runs on the build machine's platform and cross-compiles, so a
# multi-platform build (docker buildx build --platform linux/amd64,linux/arm64)
# does not emulate the compiler.
FROM --platform=$BUILDPLATFORM golang:${GO_VERSION} AS build
ARG TARGETOS
ARG TARGETARCH
WORKDIR /src
# Modules first: this layer is reused until go.mod or go.sum change.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH \
    go build -trimpath -ldflags="-s -w" -o /out/sluice ./cmd/sluice
# An empty /data to copy with the runtime user's ownership: a fresh named
# volume takes the ownership of the image directory it is mounted on, so the
# non-root broker can write to it. (A bind mount keeps the host directory's
# ownership: make it writable by uid 65532.)
RUN mkdir -p /out/data

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/sluice /sluice
COPY --from=build --chown=65532:65532 /out/data /data
# Defaults for a container: listen on all interfaces, keep data in the volume,
# advertise what a client on the Docker host dials through -p 9092:9092.
ENV SLUICE_DATA_DIR=/data \
    SLUICE_LISTEN=0.0.0.0:9092 \
    SLUICE_ADVERTISE=localhost:9092 \
    SLUICE_HTTP_LISTEN=0.0.0.0:9644
VOLUME ["/data"]
# 9092: Kafka protocol. 9644: /metrics, /healthz, /readyz.
EXPOSE 9092 9644
USER 65532:65532
ENTRYPOINT ["/sluice"]
