"""The VMDiskImage CRD: the API promise of the seed schema, and validation of samples."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
CRD_PATH = ROOT / "config" / "crd" / "bases" / "vm.example.com_vmdiskimages.yaml"
SAMPLES = sorted((ROOT / "config" / "samples").glob("vm_*.yaml"))

# The user's original CRD, field by field: every field, default, enum and phase is API.
SEED_SPEC_REQUIRED = {"sourceImage", "targetPVC", "targetSize"}
SEED_ENUMS = {
    ("spec", "pullPolicy"): ["Always", "IfNotPresent", "Never"],
    ("spec", "format"): ["raw", "qcow2", "vmdk"],
    ("status", "phase"): ["Pending", "ImageFetching", "Copying", "Resizing", "Ready", "Failed"],
}
SEED_DEFAULTS = {
    ("spec", "pullPolicy"): "IfNotPresent",
    ("spec", "format"): "raw",
    ("spec", "targetPVC", "createIfNotExist"): False,
}
SEED_TYPES = {
    ("spec", "sourceImage"): "string",
    ("spec", "targetSize"): "string",
    ("spec", "targetPVC", "name"): "string",
    ("spec", "targetPVC", "storageClass"): "string",
    ("status", "message"): "string",
}


def _crd() -> dict[str, Any]:
    return yaml.safe_load(CRD_PATH.read_text())


def _version(crd: dict[str, Any]) -> dict[str, Any]:
    (version,) = crd["spec"]["versions"]
    return version


def _schema() -> dict[str, Any]:
    return _version(_crd())["schema"]["openAPIV3Schema"]


def _field(schema: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any]:
    for name in path:
        schema = schema["properties"][name]
    return schema


def _validate(obj: dict[str, Any]) -> None:
    jsonschema.Draft7Validator(_schema()).validate(obj)


def _walk(schema: dict[str, Any], path: str = ""):
    for name, prop in schema.get("properties", {}).items():
        yield f"{path}.{name}", prop
        yield from _walk(prop, f"{path}.{name}")
    if "items" in schema:
        yield from _walk(schema["items"], f"{path}[]")


def _good() -> dict[str, Any]:
    return {
        "apiVersion": "vm.example.com/v1alpha1",
        "kind": "VMDiskImage",
        "metadata": {"name": "fedora"},
        "spec": {
            "sourceImage": "quay.io/containerdisks/fedora:41",
            "targetPVC": {"name": "fedora-root"},
            "targetSize": "20Gi",
        },
    }


def test_names_group_and_scope_are_the_promised_ones():
    crd = _crd()
    names = crd["spec"]["names"]
    assert crd["metadata"]["name"] == "vmdiskimages.vm.example.com"
    assert crd["spec"]["group"] == "vm.example.com"
    assert crd["spec"]["scope"] == "Namespaced"
    assert (names["kind"], names["plural"], names["singular"]) == (
        "VMDiskImage",
        "vmdiskimages",
        "vmdiskimage",
    )
    assert "vdi" in names["shortNames"]
    version = _version(crd)
    assert (version["name"], version["served"], version["storage"]) == ("v1alpha1", True, True)
    assert version["subresources"] == {"status": {}}


def test_seed_schema_fields_are_kept():
    schema = _schema()
    assert set(_field(schema, ("spec",))["required"]) == SEED_SPEC_REQUIRED
    assert _field(schema, ("spec", "targetPVC"))["required"] == ["name"]
    for path, enum in SEED_ENUMS.items():
        assert _field(schema, path)["enum"] == enum, path
    for path, default in SEED_DEFAULTS.items():
        assert _field(schema, path)["default"] == default, path
    for path, type_ in SEED_TYPES.items():
        assert _field(schema, path)["type"] == type_, path


def test_every_field_has_a_description():
    undocumented = [
        path
        for path, prop in _walk(_schema())
        if path != ".metadata" and not prop.get("description")
    ]
    assert undocumented == []


def test_printer_columns_show_phase_progress_size_and_age():
    columns = {c["name"]: c["jsonPath"] for c in _version(_crd())["additionalPrinterColumns"]}
    assert columns["Phase"] == ".status.phase"
    assert columns["Progress"] == ".status.progress"
    assert columns["Size"] == ".spec.targetSize"
    assert columns["Age"] == ".metadata.creationTimestamp"


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda p: p.name)
def test_sample_is_valid(sample: Path):
    documents = [d for d in yaml.safe_load_all(sample.read_text()) if d]
    images = {d["metadata"]["name"] for d in documents if d["kind"] == "VMDiskImage"}
    assert images, f"{sample.name} holds no VMDiskImage"
    for doc in documents:
        if doc["kind"] == "VMDiskImage":
            _validate(doc)
        else:
            # Other objects in a sample show the populator path: they must point at an
            # image of the same sample.
            ref = doc["spec"]["dataSourceRef"]
            assert (ref["apiGroup"], ref["kind"]) == ("vm.example.com", "VMDiskImage")
            assert ref["name"] in images


def test_samples_are_listed_in_kustomization():
    kustomization = yaml.safe_load((ROOT / "config" / "samples" / "kustomization.yaml").read_text())
    assert sorted(kustomization["resources"]) == [p.name for p in SAMPLES]


def _with(spec_changes: dict[str, Any], drop: tuple[str, ...] = ()) -> dict[str, Any]:
    obj = _good()
    obj["spec"].update(spec_changes)
    for key in drop:
        del obj["spec"][key]
    return obj


@pytest.mark.parametrize(
    ("obj", "complaint"),
    [
        (_with({}, drop=("sourceImage",)), "'sourceImage' is a required property"),
        (_with({}, drop=("targetPVC",)), "'targetPVC' is a required property"),
        (_with({}, drop=("targetSize",)), "'targetSize' is a required property"),
        (_with({"targetSize": "abc"}), "does not match"),
        (_with({"targetSize": "-1Gi"}), "does not match"),
        (_with({"targetSize": "20 Gi"}), "does not match"),
        (_with({"targetSize": "20GB"}), "does not match"),
        (_with({"format": "iso"}), "is not one of"),
        (_with({"pullPolicy": "Sometimes"}), "is not one of"),
        (_with({"sourceImage": ""}), "should be non-empty"),
        (_with({"sourceImage": "Quay.io/Fedora:41"}), "does not match"),
        (_with({"sourceImage": "quay.io/fedora:41 extra"}), "does not match"),
        (_with({"sourceImage": "quay.io/fedora@sha256:abc"}), "does not match"),
        (_with({"sourceImage": "https://quay.io/fedora:41"}), "does not match"),
        (_with({"targetPVC": {}}), "'name' is a required property"),
        (_with({"targetPVC": {"name": "Root_Disk"}}), "does not match"),
        (_with({"targetPVC": {"name": "root", "volumeMode": "Raw"}}), "is not one of"),
        (_with({"platform": "amd64"}), "does not match"),
        (_with({"insecureRegistry": "yes"}), "is not of type 'boolean'"),
        (_with({"caBundleConfigMap": {"key": "ca.crt"}}), "'name' is a required property"),
        (_with({"diskName": ""}), "should be non-empty"),
        (_with({"diskName": "root disk"}), "does not match"),
        (_with({"diskName": "-rootdisk"}), "does not match"),
        (_with({"diskName": "/etc/passwd"}), "does not match"),
        (_with({"diskName": "rootdisk\n--plain-http"}), "does not match"),
        (_with({"diskName": "d" * 254}), "is too long"),
        (_with({"diskName": 7}), "is not of type 'string'"),
    ],
)
def test_bad_objects_are_rejected(obj: dict[str, Any], complaint: str):
    with pytest.raises(jsonschema.ValidationError, match=complaint):
        _validate(obj)


@pytest.mark.parametrize(
    "reference",
    [
        "quay.io/containerdisks/fedora:41",
        "fedora",
        "library/fedora:latest",
        "localhost:5000/disks/cirros",
        "10.88.0.1:5000/disks/cirros:0.6.2",
        "registry.example.com/a/b/c@sha256:" + "0" * 64,
        "registry.example.com/a/b/c:v1@sha256:" + "f" * 64,
        "my-registry.internal/team__x/disk.v2-final:2024.10_rc1",
    ],
)
def test_good_image_references_are_accepted(reference: str):
    _validate(_with({"sourceImage": reference}))


@pytest.mark.parametrize("size", ["20Gi", "1.5Gi", "500M", "21474836480", "1e9", "0.5Ti", ".5Gi"])
def test_good_quantities_are_accepted(size: str):
    _validate(_with({"targetSize": size}))


@pytest.mark.parametrize(
    "name", ["rootdisk", "datadisk-1", "disk.qcow2", "fedora-41.x86_64.raw.zst", "win/virtio.iso"]
)
def test_disk_names_of_exports_and_oras_files_are_accepted(name: str):
    _validate(_with({"diskName": name}))


def test_disk_name_is_optional_and_has_no_default():
    disk_name = _field(_schema(), ("spec", "diskName"))
    assert "diskName" not in _field(_schema(), ("spec",))["required"]
    assert "default" not in disk_name
    assert "io.kubevirt.disk.name" in disk_name["description"]
