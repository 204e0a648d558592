"""The OLM bundle: what `make bundle` generates is what is committed, it passes
`operator-sdk bundle validate` with the optional checks OperatorHub runs
(suite=operatorframework), bundles broken in the ways OLM or OperatorHub refuse fail that
validation, and the bundle image builds with the bundle's labels.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.bundle

REPO = Path(__file__).resolve().parents[2]
BUNDLE = REPO / "bundle"
CSV_NAME = "vmdiskimage-operator.clusterserviceversion.yaml"
CSV = BUNDLE / "manifests" / CSV_NAME
# What the Makefile passes to hack/bundle.sh by default (VERSION, IMG, POPULATOR_IMG).
MAKE_DEFAULTS = {
    "VERSION": "0.1.0",
    "IMG": "quay.io/vm-example/vmdiskimage-operator:v0.1.0",
    "POPULATOR_IMG": "quay.io/vm-example/vmdiskimage-populator:v0.1.0",
}


def validate(operator_sdk: str, bundle: Path, *, suite: bool = True) -> dict[str, Any]:
    """operator-sdk bundle validate's JSON report ({passed, outputs})."""
    cmd = [operator_sdk, "bundle", "validate", str(bundle), "--output", "json-alpha1"]
    if suite:
        cmd += ["--select-optional", "suite=operatorframework"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    report = json.loads(proc.stdout)
    # The exit code and the report agree: a failed validation is a failed command.
    assert (proc.returncode == 0) == report["passed"], proc.stdout + proc.stderr
    return report


def _csv(bundle: Path) -> dict[str, Any]:
    return yaml.safe_load((bundle / "manifests" / CSV_NAME).read_text())


def test_committed_bundle_passes_operatorframework_suite_without_a_warning(operator_sdk: str):
    report = validate(operator_sdk, BUNDLE)
    assert report["passed"], json.dumps(report, indent=2)
    assert not report["outputs"], json.dumps(report["outputs"], indent=2)


def test_csv_carries_what_olm_and_operatorhub_show(operator_sdk: str):
    csv = _csv(BUNDLE)
    spec, annotations = csv["spec"], csv["metadata"]["annotations"]
    owned = spec["customresourcedefinitions"]["owned"]
    assert [(o["name"], o["version"], o["kind"]) for o in owned] == [
        ("vmdiskimages.vm.example.com", "v1alpha1", "VMDiskImage")
    ]
    paths = {d["path"] for d in owned[0]["specDescriptors"]}
    assert {"sourceImage", "targetPVC.name", "targetSize", "pullSecretName"} <= paths
    assert {"phase", "progress", "conditions"} <= {d["path"] for d in owned[0]["statusDescriptors"]}
    examples = json.loads(annotations["alm-examples"])
    assert {e["kind"] for e in examples} == {"VMDiskImage"} and len(examples) >= 2
    assert {m["type"]: m["supported"] for m in spec["installModes"]} == {
        "OwnNamespace": False,
        "SingleNamespace": False,
        "MultiNamespace": False,
        "AllNamespaces": True,
    }
    install = spec["install"]["spec"]
    assert [d["name"] for d in install["deployments"]] == ["vmdiskimage-controller-manager"]
    rules = [r for p in install["clusterPermissions"] for r in p["rules"]]
    assert any("persistentvolumeclaims" in r.get("resources", []) for r in rules)
    # The operator never reads Secrets (design §5), under OLM either.
    everything = rules + [r for p in install.get("permissions", []) for r in p["rules"]]
    assert not [r for r in everything if "secrets" in r.get("resources", [])]
    assert not [r for r in everything if "*" in r.get("verbs", []) + r.get("resources", [])]
    assert spec["relatedImages"] == [{"name": "populator", "image": MAKE_DEFAULTS["POPULATOR_IMG"]}]
    assert annotations["containerImage"] == MAKE_DEFAULTS["IMG"]
    assert spec["icon"][0]["mediatype"] == "image/svg+xml" and spec["icon"][0]["base64data"]
    assert spec["maintainers"] and spec["links"] and spec["provider"]["name"]
    assert spec["minKubeVersion"] == "1.33.0"
    assert spec["version"] == MAKE_DEFAULTS["VERSION"]


def test_make_bundle_regenerates_the_committed_bundle(operator_sdk: str, tmp_path: Path):
    """No drift: generating again from config/ gives the bundle in git (but its timestamp)."""
    for item in ("PROJECT", "config", "hack", "bundle", "bundle.Dockerfile"):
        src = REPO / item
        if src.is_dir():
            shutil.copytree(src, tmp_path / item)
        else:
            shutil.copy2(src, tmp_path / item)
    proc = subprocess.run(
        [str(tmp_path / "hack" / "bundle.sh")],
        capture_output=True,
        text=True,
        timeout=600,
        env={**__import__("os").environ, **MAKE_DEFAULTS},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr

    def files(root: Path) -> dict[str, str]:
        out = {}
        for path in sorted(root.rglob("*")):
            if path.is_file():
                text = path.read_text()
                if path.name == CSV_NAME:
                    csv = yaml.safe_load(text)
                    csv["metadata"]["annotations"].pop("createdAt")
                    text = yaml.safe_dump(csv)
                out[str(path.relative_to(root))] = text
        return out

    assert files(tmp_path / "bundle") == files(BUNDLE), "bundle/ is stale: run `make bundle`"
    assert (tmp_path / "bundle.Dockerfile").read_text() == (REPO / "bundle.Dockerfile").read_text()
    base = Path("config/manifests/bases") / CSV_NAME
    assert (tmp_path / base).read_text() == (REPO / base).read_text(), (
        "the CSV base is stale: run `make bundle`"
    )


def _edit_csv(change: Callable[[dict[str, Any]], None]) -> Callable[[Path], None]:
    def edit(bundle: Path) -> None:
        path = bundle / "manifests" / CSV_NAME
        csv = yaml.safe_load(path.read_text())
        change(csv)
        path.write_text(yaml.safe_dump(csv))

    return edit


def _drop_crd(bundle: Path) -> None:
    (bundle / "manifests" / "vm.example.com_vmdiskimages.yaml").unlink()


def _no_install_mode(csv: dict[str, Any]) -> None:
    for mode in csv["spec"]["installModes"]:
        mode["supported"] = False


def _example_of_unknown_kind(csv: dict[str, Any]) -> None:
    examples = json.loads(csv["metadata"]["annotations"]["alm-examples"])
    examples[0]["kind"] = "VMDiskImageTypo"
    csv["metadata"]["annotations"]["alm-examples"] = json.dumps(examples)


BROKEN = {
    # OLM itself refuses these (the default checks).
    "owned CRD missing from the bundle": (_drop_crd, True),
    "no install mode supported": (_edit_csv(_no_install_mode), True),
    "minKubeVersion not a version": (
        _edit_csv(lambda c: c["spec"].update(minKubeVersion="one.thirty-three")),
        True,
    ),
    "alm-examples of a kind the bundle does not own": (_edit_csv(_example_of_unknown_kind), True),
    # Only the optional OperatorHub checks (suite=operatorframework) refuse these.
    "category OperatorHub does not know": (
        _edit_csv(lambda c: c["metadata"]["annotations"].update(categories="Disk Magic")),
        False,
    ),
    "capability level that does not exist": (
        _edit_csv(lambda c: c["metadata"]["annotations"].update(capabilities="Autopilot Plus")),
        False,
    ),
}


@pytest.mark.parametrize("breakage", BROKEN, ids=list(BROKEN))
def test_broken_bundle_fails_validation(operator_sdk: str, tmp_path: Path, breakage: str):
    break_it, default_checks_catch_it = BROKEN[breakage]
    broken = tmp_path / "bundle"
    shutil.copytree(BUNDLE, broken)
    break_it(broken)
    report = validate(operator_sdk, broken)
    assert not report["passed"], f"{breakage}: validation passed\n{json.dumps(report, indent=2)}"
    assert [o for o in report["outputs"] if o["type"] == "error"]
    # Those only the optional suite catches prove the suite really ran.
    assert validate(operator_sdk, broken, suite=False)["passed"] is not default_checks_catch_it


def test_bundle_image_builds_with_the_bundle_labels(tmp_path: Path):
    if shutil.which("buildah") is None:
        pytest.fail("buildah is missing: hack/install-deps.sh installs it")
    tag = "localhost/vmdiskimage-operator-bundle:test"
    build = subprocess.run(
        ["buildah", "bud", "--quiet", "--isolation", "chroot", "--layers=false",
         "--ignorefile", "bundle.Dockerfile.dockerignore",
         "-f", "bundle.Dockerfile", "-t", tag, "."],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert build.returncode == 0, build.stderr
    container = ""
    try:
        info = json.loads(
            subprocess.run(
                ["buildah", "inspect", "--type", "image", tag],
                check=True, capture_output=True, text=True,
            ).stdout
        )  # fmt: skip
        labels = info["OCIv1"]["config"]["Labels"]
        annotations = yaml.safe_load((BUNDLE / "metadata" / "annotations.yaml").read_text())
        for key, value in annotations["annotations"].items():
            assert labels.get(key) == value, key
        container = subprocess.run(
            ["buildah", "from", tag], check=True, capture_output=True, text=True
        ).stdout.strip()
        root = Path(
            subprocess.run(
                ["buildah", "mount", container], check=True, capture_output=True, text=True
            ).stdout.strip()
        )
        assert sorted(p.name for p in (root / "manifests").iterdir()) == sorted(
            p.name for p in (BUNDLE / "manifests").iterdir()
        )
        assert (root / "metadata" / "annotations.yaml").is_file()
    finally:
        if container:
            subprocess.run(["buildah", "rm", container], capture_output=True)
        subprocess.run(["buildah", "rmi", "-f", tag], capture_output=True)
