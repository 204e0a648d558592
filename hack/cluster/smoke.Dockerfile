# The cluster smoke test's image: the project base (Debian, python3, qemu-utils) with a
# marker file, so the test proves a Dockerfile build reached the node.
ARG BASE_IMAGE=localhost/vmdiskimage-base:latest
FROM ${BASE_IMAGE}
RUN echo "vmdiskimage smoke image" > /etc/vmdi-smoke && useradd --uid 1000 --create-home tester
