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


LAYER = {"digest": "sha256:" + "0" * 64, "size": 10, "mediaType": "m"}
UNCOMPRESSED = "vm.example.com/disk.uncompressed-size"
VIRTUAL = "vm.example.com/disk.virtual-size"

# (DiskInfo fields, expected learned_from["virtual_size"] fragment, ["disk_size"] fragment)
PROVENANCE = [
    pytest.param(
        {"kind": "containerDisk", "format": "qcow2", "virtual_size": 5, "disk_size": 3},
        "qcow2 header",
        "tar header",
        id="containerDisk-qcow2",
    ),
    pytest.param(
        {"kind": "containerDisk", "format": "raw", "virtual_size": 5, "disk_size": 5},
        "tar header",
        "tar header",
        id="containerDisk-raw",
    ),
    pytest.param(
        {"kind": "artifact", "format": "vmdk", "virtual_size": 5, "disk_size": None},
        "vmdk header",
        "unknown",
        id="artifact-vmdk",
    ),
    pytest.param(
        {
            "kind": "artifact",
            "format": "raw",
            "virtual_size": 5,
            "disk_size": 5,
            "ann": {UNCOMPRESSED: "5"},
        },
        UNCOMPRESSED,
        UNCOMPRESSED,
        id="artifact-raw-annotated",
    ),
    pytest.param(
        {
            "kind": "artifact",
            "format": "raw",
            "virtual_size": 5,
            "disk_size": 5,
            "compression": "none",
        },
        "layer size",
        "layer size",
        id="artifact-raw-uncompressed",
    ),
    pytest.param(
        {
            "kind": "artifact",
            "format": "raw",
            "virtual_size": 5,
            "disk_size": None,
            "ann": {VIRTUAL: "5"},
        },
        VIRTUAL,
        "unknown",
        id="artifact-raw-virtual-annotation",
    ),
    pytest.param(
        {"kind": "artifact", "format": "raw", "virtual_size": None, "disk_size": None},
        "unknown without reading the whole disk",
        "unknown",
        id="artifact-raw-compressed-bare",
    ),
]


@pytest.mark.parametrize(("fields", "virtual", "disk"), PROVENANCE)
def test_learned_from(fields, virtual, disk):
    fields = dict(fields)
    layer = dict(LAYER, annotations=fields.pop("ann", {}))
    info = {"compression": "zstd", "disk_path": "disk/d.img", "layer": layer, **fields}
    sources = image_info.learned_from(info)
    assert virtual in sources["virtual_size"]
    assert disk in sources["disk_size"]
    assert "magic bytes" in sources["format"]
    assert "magic bytes" in sources["compression"]
