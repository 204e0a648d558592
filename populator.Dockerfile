# The populator image: what the populator pod runs (vmdiskimage-populate).
#
# BASE_IMAGE is the local Debian bookworm base (debootstrap minbase with python3,
# python3-pip, qemu-utils and ca-certificates) built by hack/cluster; nothing is
# pulled from a registry. Build it with `make populator-image`.
ARG BASE_IMAGE=localhost/vmdiskimage-base:latest
FROM ${BASE_IMAGE}

# Only the package and its metadata: the image does not change when tests or roles do.
# pip compiles the bytecode here: the pod's root filesystem is read-only, so Python could
# not cache it at run time and would compile everything on every start.
COPY pyproject.toml README.md /src/
COPY vmdiskimage /src/vmdiskimage
RUN python3 -m pip install --no-cache-dir --break-system-packages /src \
    && rm -rf /src \
    && vmdiskimage-populate --help > /dev/null \
    && qemu-img --version > /dev/null

# Non-root; the pod adds a read-only root filesystem, drops all capabilities and
# mounts an emptyDir at /scratch for qcow2/vmdk sources (see docs/datapath.md).
ENV VDI_SCRATCH_DIR=/scratch \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 65532:65532
ENTRYPOINT ["vmdiskimage-populate"]
