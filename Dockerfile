# idrecon in a container: a static binary on an empty base image, run as an
# unprivileged user (uid 65532), its state on the /data volume.
#
#   docker build -t idrecon --build-arg VERSION=$(git describe --tags --always --dirty) .
#   docker run -d --name idrecon -p 8080:8080 -v idrecon-data:/data \
#     -v "$PWD/examples/entra:/spec:ro" idrecon serve --spec /spec --data-dir /data --insecure-http
#   docker exec idrecon idrecon status    # the CLI finds /data/admin-token by itself
#
# podman and buildah read the file as it is. The admin API stays on the
# container's loopback; reach it with `exec`, as above.

# The builder; any image with Go 1.26, a shell and the CA certificates will do.
ARG GO_IMAGE=golang:1.26-bookworm

FROM ${GO_IMAGE} AS build
WORKDIR /src
# Modules first, so a source change does not download them again.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath \
      -ldflags "-s -w -X github.com/idrecon/idrecon/cmd/idrecon/internal/cli.Version=${VERSION}" \
      -o /out/usr/local/bin/idrecon ./cmd/idrecon
# What the empty base lacks: CA certificates (git over HTTPS, IdP metadata
# URLs), a /tmp, the user's name, and a data dir the user owns.
RUN mkdir -p /out/etc/ssl/certs /out/tmp /out/data \
 && cp /etc/ssl/certs/ca-certificates.crt /out/etc/ssl/certs/ \
 && chmod 1777 /out/tmp \
 && chown 65532:65532 /out/data && chmod 0700 /out/data \
 && echo 'idrecon:x:65532:65532:idrecon:/data:/sbin/nologin' > /out/etc/passwd \
 && echo 'idrecon:x:65532:' > /out/etc/group

FROM scratch
COPY --from=build /out/ /
USER 65532:65532
# From /, the CLI's default token file data/admin-token is the volume's.
WORKDIR /
VOLUME /data
# SCIM, SAML, the git webhook and any Gateway.
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/idrecon"]
CMD ["serve", "--data-dir", "/data"]
