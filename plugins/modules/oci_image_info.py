#!/usr/bin/python
# Copyright: (c) 2026, vmdiskimage-operator maintainers
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or
# https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Describe the VM disk inside an OCI image, reading only its manifest and first bytes."""

from __future__ import annotations

DOCUMENTATION = r"""
module: oci_image_info
short_description: Describe the VM disk held in an OCI image
version_added: 0.1.0
description:
  - Resolves an image reference (tag or digest) in an OCI registry and describes the VM
    disk it holds - a KubeVirt containerDisk (a disk file under C(disk/) in a tar layer)
    or an OCI artifact whose single layer is the disk, such as a disk file pushed by
    C(oras push).
  - Returns the manifest digest, the kind of source, the disk layer, its compression, the
    disk format and virtual size, and the platforms of an image index.
  - Reads the manifests and at most the first 64 KiB of the disk (after the tar header of
    a containerDisk); never the whole disk. RV(learned_from) says where each value came from.
  - Uses the registry client of the C(vmdiskimage) package, the same the populator pod uses.
author:
  - vmdiskimage-operator maintainers (@vm-example)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
options:
  image:
    description:
      - Image reference, C([registry/]repository[:tag][@sha256:digest]). Without a
        registry host, C(docker.io) is meant.
    type: str
    required: true
    aliases: [reference]
  platform:
    description: Platform picked from an image index, C(os/architecture[/variant]).
    type: str
    default: linux/amd64
  disk_name:
    description:
      - The disk to describe in an image that holds several, such as a KubeVirt VM export
        (one layer per volume), by the name its layer goes by - its C(io.kubevirt.disk.name)
        annotation, else its C(org.opencontainers.image.title).
      - Unset means the image must hold one disk; several fail with reason
        C(DiskNameRequired), a name no layer goes by with C(DiskNotFound), and both list
        the names in RV(disk_names).
      - A containerDisk holds one disk, the file under C(disk/), and takes no name.
    type: str
  auth_file:
    description:
      - Path of a dockerconfigjson file (the C(.dockerconfigjson) key of a
        C(kubernetes.io/dockerconfigjson) Secret) with credentials for the registry.
      - Unset means anonymous access.
    type: path
  ca_file:
    description:
      - PEM file of CA certificates to trust for the registry, in addition to the default roots
        (which still verify the object storage a registry redirects blob downloads to).
    type: path
  validate_certs:
    description:
      - Verify the registry's TLS certificate. V(false) is an insecure opt-in meant for
        test registries; prefer O(ca_file).
    type: bool
    default: true
  plain_http:
    description: Talk plain HTTP to the registry (insecure; for test registries only).
    type: bool
    default: false
  timeout:
    description:
      - Seconds to wait for the registry on each request.
      - Also the most the module waits in all when the registry answers 429 or 503 with
        C(Retry-After); past it the module fails with reason C(RegistryUnavailable), which
        the operator retries later instead of holding a reconcile.
    type: float
    default: 60
attributes:
  check_mode:
    support: full
    details: The module only reads; it runs the same in check mode.
  diff_mode:
    support: none
  platform:
    platforms: posix
requirements:
  - vmdiskimage (this repository's Python package, C(pip install .))
"""

EXAMPLES = r"""
- name: Inspect a containerDisk
  vm_example.vmdiskimage.oci_image_info:
    image: quay.io/containerdisks/fedora:41
  register: __image

- name: Inspect the data disk of a VM exported by KubeVirt
  vm_example.vmdiskimage.oci_image_info:
    image: registry.example.com/exports/db-vm:2024-10-01
    disk_name: datadisk

- name: Inspect a private artifact for arm64 with a pull secret and a private CA
  vm_example.vmdiskimage.oci_image_info:
    image: registry.example.com/disks/rhel:9.4
    platform: linux/arm64
    auth_file: /run/secrets/registry/.dockerconfigjson
    ca_file: /etc/pki/registry/ca.crt
"""

RETURN = r"""
reference:
  description: The reference pinned to the platform manifest's digest. Learned from the manifest.
  returned: success
  type: str
  sample: quay.io/cd/fedora@sha256:4d2c1f0e3b5a69788796a5b4c3d2e1f00112233445566778899aabbccddeeff0
digest:
  description:
    - Digest of the platform manifest, the value to pin in C(status.digest).
    - Learned as the sha256 of the manifest bytes the registry returned.
  returned: success
  type: str
  sample: sha256:4d2c1f0e3b5a69788796a5b4c3d2e1f00112233445566778899aabbccddeeff0
index_digest:
  description: Digest of the image index the platform manifest was picked from, if any.
  returned: success
  type: str
  sample: sha256:0f1e2d3c4b5a69788796a5b4c3d2e1f00112233445566778899aabbccddeeff0
platform:
  description: The platform picked from the index (null when the image is not an index).
  returned: success
  type: str
  sample: linux/amd64
platforms:
  description: Platforms listed in the image index, read from the index; empty when there is none.
  returned: success
  type: list
  elements: str
  sample: [linux/amd64, linux/arm64]
kind:
  description:
    - C(containerDisk) or C(artifact), learned from the media types of the manifest's config
      and layers; for a file pushed by C(oras push) (a plain tar layer under an empty
      config), from its first bytes - a tar is a containerDisk layer, anything else the disk.
  returned: success
  type: str
  sample: containerDisk
layer:
  description: The layer holding the disk, from the manifest's layer descriptor.
  returned: success
  type: dict
  contains:
    digest:
      description: Digest of the layer blob.
      returned: success
      type: str
      sample: sha256:9a8b7c6d5e4f30211203f4e5d6c7b8a99a8b7c6d5e4f30211203f4e5d6c7b8a9
    size:
      description: Size of the layer blob in bytes (compressed).
      returned: success
      type: int
      sample: 567231488
    media_type:
      description: Media type of the layer.
      returned: success
      type: str
      sample: application/vnd.oci.image.layer.v1.tar+gzip
    annotations:
      description: Annotations of the layer descriptor.
      returned: success
      type: dict
      sample: {"vm.example.com/disk.virtual-size": "5368709120"}
compression:
  description:
    - Compression of the layer - C(none), C(gzip), C(zstd) or C(xz).
    - Learned from the magic bytes at the start of the blob; the media type is only a label.
  returned: success
  type: str
  sample: gzip
format:
  description:
    - Disk format (C(raw), C(qcow2), C(vmdk), C(vpc), C(vhdx), C(iso)). An C(iso) (ISO 9660)
      disk is raw data and imported as it is.
    - Learned from the magic bytes of the disk's first 64 KiB, never from a file name.
  returned: success
  type: str
  sample: qcow2
virtual_size:
  description:
    - Virtual size of the disk in bytes - from the qcow2/vmdk/VHD header in the first
      bytes; for raw disks, from the tar header of a containerDisk's disk file, or an
      artifact's size annotations or uncompressed layer size.
    - Null when only reading the whole disk could tell (a compressed raw artifact
      without size annotations).
  returned: success
  type: int
  sample: 5368709120
disk_size:
  description:
    - Bytes of the disk file as stored (for qcow2, the file, not the virtual size), when
      known from a tar header, an annotation or an uncompressed layer size.
  returned: success
  type: int
  sample: 567231488
disk_path:
  description: Path of the disk file in a containerDisk, or the artifact layer's title.
  returned: success
  type: str
  sample: disk/fedora.qcow2
disk_name:
  description:
    - The name the artifact's disk layer goes by (C(io.kubevirt.disk.name), else
      C(org.opencontainers.image.title)); null for a containerDisk or an unnamed layer.
  returned: success
  type: str
  sample: datadisk
disk_names:
  description:
    - Names of the image's disk layers (null for an unnamed one), when it holds several
      and none was asked for (C(DiskNameRequired)), or none has the name asked for
      (C(DiskNotFound)).
  returned: failure
  type: list
  elements: str
  sample: [rootdisk, datadisk]
has_backing_file:
  description: Whether a qcow2/vmdk header names a backing file (such disks are refused on import).
  returned: success
  type: bool
  sample: false
learned_from:
  description: For each value above, a sentence saying where it was read.
  returned: success
  type: dict
  sample:
    digest: sha256 of the manifest bytes the registry returned
    virtual_size: qcow2 header in the disk's first bytes
reason:
  description:
    - CamelCase reason of a failure from the registry client, such as C(ImageNotFound),
      C(AuthenticationFailed), C(PlatformNotFound) or C(TLSVerificationFailed).
  returned: failure
  type: str
  sample: ImageNotFound
"""

import traceback

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.vm_example.vmdiskimage.plugins.module_utils.failures import (
    fail_from_exception,
)
from ansible_collections.vm_example.vmdiskimage.plugins.module_utils.image_info import (
    result_from,
)

try:
    from vmdiskimage import sources
    from vmdiskimage.oci import Platform
    from vmdiskimage.reference import ImageReference
    from vmdiskimage.registry import RegistryClient, RegistryOptions

    HAS_VMDISKIMAGE = True
    VMDISKIMAGE_IMPORT_ERROR = None
except ImportError:
    HAS_VMDISKIMAGE = False
    VMDISKIMAGE_IMPORT_ERROR = traceback.format_exc()

ARGUMENT_SPEC = dict(
    image=dict(type="str", required=True, aliases=["reference"]),
    platform=dict(type="str", default="linux/amd64"),
    disk_name=dict(type="str"),
    auth_file=dict(type="path"),
    ca_file=dict(type="path"),
    validate_certs=dict(type="bool", default=True),
    plain_http=dict(type="bool", default=False),
    timeout=dict(type="float", default=60),
)


def inspect(params):
    """Resolve and describe the image; the module result."""
    reference = ImageReference.parse(params["image"])
    platform = Platform.parse(params["platform"])
    options = RegistryOptions(
        docker_config=params["auth_file"],
        ca_file=params["ca_file"],
        plain_http=params["plain_http"],
        tls_verify=params["validate_certs"],
    )
    client = RegistryClient.for_reference(
        reference, options, timeout=params["timeout"], max_wait=params["timeout"]
    )
    with client:
        info = sources.inspect(client, reference, platform, params["disk_name"] or None)
        platforms = []
        if info.index_digest:
            index = client.get_manifest(reference.repository, info.index_digest)
            platforms = [str(Platform.from_spec(d.platform)) for d in index.manifests if d.platform]
    return result_from(info.to_dict(), platforms, str(platform))


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    if not HAS_VMDISKIMAGE:
        module.fail_json(
            msg=missing_required_lib("vmdiskimage"),
            exception=VMDISKIMAGE_IMPORT_ERROR,
            reason="MissingLibrary",
        )
    try:
        result = inspect(module.params)
    except Exception as exc:
        fail_from_exception(module, exc, f"Inspecting image {module.params['image']}")
    module.exit_json(**result)


if __name__ == "__main__":
    main()
