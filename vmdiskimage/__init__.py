# Copyright: (c) 2026, vmdiskimage-operator maintainers
# SPDX-License-Identifier: Apache-2.0
"""Stream VM disk images from OCI registries into Kubernetes volumes.

The package is the data path of vmdiskimage-operator: a registry client
(:mod:`vmdiskimage.registry`), source readers (:mod:`vmdiskimage.sources`),
decompression, format detection, sizing maths, the sparse writer and the two
entry points ``vmdiskimage-populate`` and ``vmdiskimage push``.
"""

__version__ = "0.1.0"
