# syntax=docker/dockerfile:1
# tokengw: a static binary on a distroless base, running as a non-root user.
#   docker build -t tokengw .
#   docker run -p 8080:8080 -v $PWD/config.yaml:/etc/tokengw/config.yaml:ro \
#     -e TOKENGW_SERVER__ADDR=0.0.0.0:8080 tokengw
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/tokengw ./cmd/tokengw \
 && mkdir -p /out/data

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/tokengw /usr/local/bin/tokengw
COPY --from=build --chown=65532:65532 /out/data /var/lib/tokengw
COPY deploy/tokengw.yaml /etc/tokengw/config.yaml
# The embedded store lives on a volume; every config key can be set by env.
ENV TOKENGW_LOG__LEVEL=info
VOLUME ["/var/lib/tokengw"]
EXPOSE 8080
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/tokengw"]
CMD ["serve", "--config", "/etc/tokengw/config.yaml"]
