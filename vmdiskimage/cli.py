# Copyright: (c) 2026, vmdiskimage-operator maintainers
# SPDX-License-Identifier: Apache-2.0
"""``vmdiskimage``: the command line for people (push a disk, inspect an image)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from dataclasses import asdict

from . import compression, push, sources
from .errors import VMDiskImageError
from .progress import configure_logging, escape_control
from .reference import ImageReference
from .registry import RegistryClient, RegistryOptions


def _add_registry_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--authfile", help="dockerconfigjson credentials file")
    parser.add_argument(
        "--ca-file", help="CA certificates (PEM) trusted in addition to the default roots"
    )
    parser.add_argument("--plain-http", action="store_true", help="use HTTP instead of HTTPS")
    parser.add_argument(
        "--insecure-skip-tls-verify", action="store_true", help="do not verify the certificate"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vmdiskimage", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("push", help="package a local raw/qcow2 disk and push it")
    p.add_argument("disk", help="path of the raw or qcow2 disk file")
    p.add_argument("reference", help="where to push, e.g. registry.example.com/vms/fedora:41")
    p.add_argument(
        "--as",
        dest="kind",
        choices=("artifact", "containerdisk"),
        default="artifact",
        help="an OCI artifact (default) or a KubeVirt containerDisk image",
    )
    p.add_argument(
        "--compression",
        choices=compression.COMPRESSIONS,
        default=None,
        help="layer compression (default: zstd for artifacts, gzip for containerDisks)",
    )
    p.add_argument("--level", type=int, help="compression level")
    p.add_argument("--platform", default="linux/amd64", help="os/arch[/variant] of the image")
    _add_registry_options(p)
    i = sub.add_parser("inspect", help="describe an image's disk (reads only its first bytes)")
    i.add_argument("reference")
    i.add_argument("--platform", default=None)
    i.add_argument("--disk-name", help="the disk of an image that holds several, by name")
    _add_registry_options(i)
    return parser


def _registry_options(args: argparse.Namespace) -> RegistryOptions:
    return RegistryOptions(
        docker_config=args.authfile,
        ca_file=args.ca_file,
        plain_http=args.plain_http,
        tls_verify=not args.insecure_skip_tls_verify,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``vmdiskimage``."""
    args = build_parser().parse_args(argv)
    configure_logging(logging.WARNING)
    try:
        reference = ImageReference.parse(args.reference)
        with RegistryClient.for_reference(reference, _registry_options(args)) as client:
            if args.command == "push":
                kind = sources.CONTAINER_DISK if args.kind == "containerdisk" else sources.ARTIFACT
                comp = args.compression or (
                    compression.GZIP if kind == sources.CONTAINER_DISK else compression.ZSTD
                )
                result = push.push(
                    args.disk,
                    reference,
                    kind=kind,
                    comp=comp,
                    level=args.level,
                    platform=args.platform,
                    client=client,
                )
                print(json.dumps(asdict(result), indent=2))
            else:
                info = sources.inspect(client, reference, args.platform, args.disk_name)
                print(json.dumps(info.to_dict(), indent=2))
    except VMDiskImageError as exc:
        print(f"vmdiskimage: {exc.reason}: {escape_control(exc.message)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
