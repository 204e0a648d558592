# Copyright: (c) 2026, vmdiskimage-operator maintainers
# SPDX-License-Identifier: Apache-2.0
"""One exception hierarchy for the data path.

Every error carries a CamelCase ``reason`` (used for Kubernetes events, the
termination message and Ansible ``fail_json``) and a message a person can act on.
Messages never quote a URL's query string (:func:`redact`): a registry redirects blob
GETs to pre-signed object storage URLs whose query holds a credential and signature.
"""

from __future__ import annotations

import re
from typing import Any

#: A URL's query string: ``?`` right after a path or host, then ``key=value`` pairs.
_QUERY = re.compile(r"(?<=[^\s?])\?[^\s?=&#]+=[^\s'\"<>()\[\]{}]*")


def redact(text: str) -> str:
    """``text`` with the query string of every URL in it replaced by ``?<redacted>``."""
    return _QUERY.sub("?<redacted>", text)


class VMDiskImageError(Exception):
    """Base class: ``reason`` is a CamelCase word, ``message`` a sentence for people."""

    reason = "ImportFailed"
    #: Whether retrying the same operation later may succeed (network trouble).
    transient = False

    def __init__(self, message: str, **details: Any) -> None:
        message = redact(message)
        super().__init__(message)
        self.message = message
        self.details = {k: redact(v) if isinstance(v, str) else v for k, v in details.items()}

    def to_dict(self) -> dict[str, Any]:
        """The structured form used by the termination message and Ansible modules."""
        return {"reason": self.reason, "message": self.message, **self.details}


class InvalidReference(VMDiskImageError):
    reason = "InvalidImageReference"


class InvalidArgument(VMDiskImageError):
    reason = "InvalidArgument"


class CredentialsError(VMDiskImageError):
    """The credentials file is unreadable or malformed."""

    reason = "InvalidCredentials"


class AuthenticationFailed(VMDiskImageError):
    reason = "AuthenticationFailed"


class AccessDenied(VMDiskImageError):
    reason = "AccessDenied"


class ImageNotFound(VMDiskImageError):
    reason = "ImageNotFound"


class RegistryUnavailable(VMDiskImageError):
    reason = "RegistryUnavailable"
    transient = True


class TLSFailure(VMDiskImageError):
    reason = "TLSVerificationFailed"


class RegistryError(VMDiskImageError):
    """The registry answered something the protocol does not allow."""

    reason = "RegistryError"


class UnsupportedManifest(VMDiskImageError):
    reason = "UnsupportedManifest"


class PlatformNotFound(VMDiskImageError):
    reason = "PlatformNotFound"


class DigestMismatch(VMDiskImageError):
    reason = "DigestMismatch"


class DiskNotFound(VMDiskImageError):
    reason = "DiskNotFound"


class DiskNameRequired(VMDiskImageError):
    """The image holds several disks (a KubeVirt VM export) and none was named."""

    reason = "DiskNameRequired"


class UnsafeDisk(VMDiskImageError):
    """The image tries to smuggle a link, device or path outside ``disk/`` in as the disk."""

    reason = "UnsafeDiskEntry"


class DiskTooLarge(VMDiskImageError):
    """The disk's data is larger than it declared or than the target can hold."""

    reason = "DiskTooLarge"


class ImageLimitExceeded(VMDiskImageError):
    """The image makes the importer read, parse or hold more than any real image needs."""

    reason = "ImageLimitExceeded"


class UnsupportedFormat(VMDiskImageError):
    reason = "UnsupportedDiskFormat"


class UnsupportedCompression(VMDiskImageError):
    reason = "UnsupportedCompression"


class CorruptData(VMDiskImageError):
    """Decompression or a container format failed on the bytes of the image."""

    reason = "CorruptImage"


class BackingFileRefused(VMDiskImageError):
    reason = "BackingFileRefused"


class ExternalFileRefused(BackingFileRefused):
    """The image names another file for qemu-img to open: a data file or vmdk extents."""

    reason = "ExternalFileRefused"


class TargetTooSmall(VMDiskImageError):
    reason = "TargetTooSmall"


class TargetError(VMDiskImageError):
    reason = "TargetWriteFailed"


class TargetFull(TargetError):
    """The target volume ran out of space: it holds less than its claim says."""

    reason = "TargetFull"


class TargetNotWritable(TargetError):
    """The pod's user may not open the target (a block device owned by root, typically)."""

    reason = "TargetNotWritable"


class ConversionFailed(VMDiskImageError):
    reason = "ConversionFailed"
