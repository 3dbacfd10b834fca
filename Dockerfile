# kmsd in an image built FROM scratch around the static binary (no base
# image is pulled). Build the binary first: make build (CGO_ENABLED=0).
FROM scratch
COPY bin/kmsd /kmsd
USER 65534:65534
EXPOSE 8080 8300 8301 8301/udp
ENTRYPOINT ["/kmsd"]
