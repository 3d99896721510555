# One image for every batchfetch service: the worker (default entrypoint,
# any --role) and the starter. Static binaries on distroless, non-root.
# Versions come from .env through docker-compose.yml; these are defaults.
ARG GO_VERSION=1.26.8
ARG DISTROLESS_IMAGE=gcr.io/distroless/static-debian13:nonroot
# The release's Worker Deployment build ID (README: Upgrading); empty: the
# binary's own hash, the same for every build of the same sources.
ARG BUILD_ID=

FROM golang:${GO_VERSION} AS build
ARG BUILD_ID
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w -X github.com/batchfetch/batchfetch/internal/buildinfo.Stamp=${BUILD_ID}" -o /out/worker ./worker \
 && CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/starter ./starter \
 && mkdir -p /out/data/blobs

FROM ${DISTROLESS_IMAGE}
COPY --from=build /out/worker /out/starter /usr/local/bin/
# The blob volume mounts here; owned by the image's non-root user so a
# fresh named volume is writable.
COPY --from=build --chown=65532:65532 /out/data /var/lib/batchfetch
USER 65532:65532
ENV BATCHFETCH_BLOB_DIR=/var/lib/batchfetch/blobs
ENTRYPOINT ["/usr/local/bin/worker"]
