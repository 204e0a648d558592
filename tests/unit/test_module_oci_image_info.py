"""oci_image_info: arguments and the 'learned from' table (the registry tier runs the rest)."""

from __future__ import annotations

import pytest

from tests.module_harness import module_utils, run_module

pytestmark = pytest.mark.unit

image_info = module_utils("image_info")


@pytest.mark.parametrize(
    ("args", "reason", "fragment"),
    [
        ({"image": "Upper/Case:tag"}, "InvalidImageReference", "Upper/Case"),
        ({"image": "quay.io/x@sha256:abc"}, "InvalidImageReference", "not a valid digest"),
        ({"image": "quay.io/x:1", "platform": "amd64"}, "InvalidArgument", "os/arch"),
    ],
)
def test_bad_input_fails_before_any_request(args, reason, fragment):
    result = run_module("oci_image_info", dict(args, plain_http=True, timeout=1))
    assert result["failed"] is True
    assert result["reason"] == reason
    assert fragment in result["msg"]


def test_image_is_required_and_reference_is_an_alias():
    assert "missing required arguments: image" in run_module("oci_image_info", {})["msg"]
    result = run_module("oci_image_info", {"reference": "Bad/Ref:1"})
    assert result["reason"] == "InvalidImageReference"
    assert "Bad/Ref" in result["msg"]


def test_missing_package_is_reported_with_missing_required_lib(tmp_path):
    (tmp_path / "vmdiskimage").mkdir()
    (tmp_path / "vmdiskimage" / "__init__.py").write_text("raise ImportError('gone')\n")
    result = run_module("oci_image_info", {"image": "x/y:z"}, pythonpath_first=str(tmp_path))
    assert result["reason"] == "MissingLibrary"


@pytest.mark.parametrize(
    ("sizes_from", "virtual", "disk"),
    [
        ({"virtual_size": "qcow2 header", "disk_size": "tar header"}, "qcow2 header", "tar header"),
        ({"virtual_size": "zstd frame"}, "zstd frame", "unknown without reading the whole layer"),
        ({}, "unknown without reading the whole disk", "unknown without reading the whole layer"),
    ],
)
def test_learned_from_takes_the_sizes_from_the_package(sizes_from, virtual, disk):
    info = {"kind": "artifact", "format": "raw", "sizes_from": sizes_from}
    sources = image_info.learned_from(info)
    assert sources["virtual_size"] == virtual
    assert sources["disk_size"] == disk
    assert "magic bytes" in sources["format"]
    assert "magic bytes" in sources["compression"]


def test_result_names_the_disk_picked():
    info = {
        "reference": "r@sha256:" + "0" * 64,
        "digest": "sha256:" + "0" * 64,
        "kind": "artifact",
        "layer": {"digest": "sha256:" + "1" * 64, "size": 3, "mediaType": "m"},
        "compression": "zstd",
        "format": "raw",
        "disk_name": "datadisk",
    }
    assert image_info.result_from(info, [], "linux/amd64")["disk_name"] == "datadisk"
    assert (
        image_info.result_from({**info, "disk_name": None}, [], "linux/amd64")["disk_name"] is None
    )
