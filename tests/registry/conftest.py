"""Session-scoped registries on loopback and the fixture disks pushed to them."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.images import MiB, ensure_policy_json, make_disk, to_qcow2
from tests.support.registry import Registry, start_registry

REPO = Path(__file__).resolve().parents[2]

REQUIRED_TOOLS = (
    "docker-registry",
    "skopeo",
    "umoci",
    "qemu-img",
    "openssl",
    "htpasswd",
    "zstd",
    "xorriso",
)


@pytest.fixture(scope="session", autouse=True)
def _tools() -> None:
    # A missing tool fails the tier rather than skipping it: a skipped tier passes CI
    # while testing nothing.
    missing = [tool for tool in REQUIRED_TOOLS if shutil.which(tool) is None]
    if missing:
        pytest.fail(f"the registry tier needs {', '.join(missing)}: run hack/install-deps.sh")
    ensure_policy_json()


@pytest.fixture(scope="session")
def oras() -> str:
    """The oras CLI, built once from its Go module by hack/oras.sh (cached by version)."""
    proc = subprocess.run([str(REPO / "hack" / "oras.sh")], capture_output=True, text=True)
    if proc.returncode:
        pytest.fail(f"hack/oras.sh could not build oras: {proc.stderr[-2000:]}")
    return proc.stdout.strip()


def _registry(
    tmp_path_factory: pytest.TempPathFactory, name: str, **kw: object
) -> Iterator[Registry]:
    with start_registry(tmp_path_factory.mktemp(name), **kw) as registry:  # type: ignore[arg-type]
        yield registry


@pytest.fixture(scope="session")
def plain_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    yield from _registry(tmp_path_factory, "plain")


@pytest.fixture(scope="session")
def tls_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    yield from _registry(tmp_path_factory, "tls", tls=True)


@pytest.fixture(scope="session")
def basic_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    yield from _registry(tmp_path_factory, "basic", tls=True, auth="basic")


@pytest.fixture(scope="session")
def token_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    yield from _registry(tmp_path_factory, "token", auth="token")


@pytest.fixture(scope="session")
def disks(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Small sparse fixture disks: raw and its qcow2 twin, and a second distinct raw."""
    d = tmp_path_factory.mktemp("disks")
    raw = make_disk(d / "disk.raw", 4 * MiB, ((0, 64 * 1024), (2 * MiB, 300 * 1024 + 7)), seed=1)
    other = make_disk(d / "other.raw", 3 * MiB, ((MiB, 128 * 1024),), seed=2)
    return {
        "raw": raw,
        "qcow2": to_qcow2(raw, d / "disk.qcow2"),
        "other": other,
        "other_qcow2": to_qcow2(other, d / "other.qcow2"),
    }
