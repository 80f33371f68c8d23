# Build the hub binary.
FROM golang:1.26.8 AS builder
ARG TARGETOS
ARG TARGETARCH
ARG VERSION=dev

WORKDIR /workspace
# Cache dependencies before copying the sources.
COPY go.mod go.sum ./
RUN go mod download

COPY api/ api/
COPY cmd/ cmd/
COPY config/ config/
COPY controllers/ controllers/
COPY dashboard/ dashboard/
COPY internal/ internal/
COPY webhooks/ webhooks/

# CGO off: the binary runs on distroless/static, which has no libc.
RUN CGO_ENABLED=0 GOOS=${TARGETOS:-linux} GOARCH=${TARGETARCH} \
    go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o hub ./cmd/hub

# The runtime image: no shell, no package manager, a non-root user (65532).
FROM gcr.io/distroless/static:nonroot
WORKDIR /
COPY --from=builder /workspace/hub .
USER 65532:65532

ENTRYPOINT ["/hub"]
CMD ["manager"]
