"""deploy/kubernetes/fleet-job.yaml has never run on a cluster here, so these checks are all
it gets: the Kubernetes schemas, offline (kubernetes-validate bundles them, one set per
release), the properties the fleet's comparison depends on, and its copy in
docs/kubernetes.md, which must not drift from the file."""

from __future__ import annotations

import copy
import re
import shlex
from pathlib import Path
from typing import Any, Callable

import kubernetes_validate
import pytest
import yaml

from pytest_ascend.settings import OPTIONS

ROOT = Path(__file__).resolve().parents[2]
MANIFEST = ROOT / "deploy" / "kubernetes" / "fleet-job.yaml"
DOCS = ROOT / "docs" / "kubernetes.md"
# 1.29: the oldest release the manifest is written for (backoffLimitPerIndex and FailIndex on
# by default; the 1.27 and 1.28 schemas reject its podFailurePolicy). 1.33: where
# backoffLimitPerIndex is GA.
KUBERNETES = ("1.29", "1.33")
NPU = "huawei.com/Ascend910"  # the cards, as Ascend's device plugin (MindCluster) names them
NODE_DIR = "/results/$(NODE_NAME)/"
# Volcano's own resource: kubernetes-validate has no schema for it.
UNCHECKED_API = "scheduling.volcano.sh/v1beta1"

Resource = dict[str, Any]


def validate(resource: Resource, version: str) -> None:
    """Strict: an unknown field (a misspelt key) fails too, as kubectl's server-side field
    validation would fail it, instead of being dropped."""
    kubernetes_validate.validate(resource, version, strict=True)


def job() -> Resource:
    return yaml.safe_load(MANIFEST.read_text(encoding="utf-8"))


def pod(resource: Resource) -> Resource:
    return resource["spec"]["template"]["spec"]


def suite(resource: Resource) -> Resource:
    (container,) = pod(resource)["containers"]
    return container


def command_options(resource: Resource) -> dict[str, str]:
    """The pytest command's options, `--flag=value` split, a bare flag mapped to ''."""
    words = shlex.split(suite(resource)["args"][0])
    pytest_words = words[words.index("pytest") + 1:]
    return dict((word.split("=", 1) + [""])[:2] for word in pytest_words if word.startswith("--"))


def docs_yaml_blocks() -> list[str]:
    return re.findall(r"^```yaml\n(.*?)^```$", DOCS.read_text(encoding="utf-8"), flags=re.M | re.S)


def merged(base: Resource, fragment: Resource) -> Resource:
    """`base` with the mappings of `fragment` laid over it, as the docs ask a reader to."""
    out = copy.deepcopy(base)
    for key, value in fragment.items():
        out[key] = merged(out.get(key, {}), value) if isinstance(value, dict) else value
    return out


@pytest.mark.parametrize("version", KUBERNETES)
def test_manifest_is_a_valid_job(version: str) -> None:
    resource = job()
    assert (resource["apiVersion"], resource["kind"]) == ("batch/v1", "Job")
    validate(resource, version)


def _mistyped_parallelism(resource: Resource) -> None:
    resource["spec"]["parallelism"] = "four"


def _misspelt_field(resource: Resource) -> None:
    resource["spec"]["completionMod"] = resource["spec"].pop("completionMode")


def _unknown_volume_source(resource: Resource) -> None:
    pod(resource)["volumes"][0]["hostpath"] = pod(resource)["volumes"][0].pop("hostPath")


@pytest.mark.parametrize("version", KUBERNETES)
@pytest.mark.parametrize("breakage", [_mistyped_parallelism, _misspelt_field,
                                      _unknown_volume_source])
def test_schema_rejects_a_broken_copy(version: str,
                                      breakage: Callable[[Resource], None]) -> None:
    """The validation above can fail: the same manifest, broken in one place, is rejected."""
    resource = job()
    breakage(resource)
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(resource, version)


def test_one_indexed_pod_per_box() -> None:
    """The schemas do not enumerate values (completionMode: Indexd passes them), so the
    values the run depends on are asserted here."""
    resource = job()
    spec = resource["spec"]
    assert spec["completionMode"] == "Indexed"
    assert spec["completions"] == spec["parallelism"] >= 2
    assert pod(resource)["restartPolicy"] == "Never"
    (term,) = pod(resource)["affinity"]["podAntiAffinity"][
        "requiredDuringSchedulingIgnoredDuringExecution"]
    assert term["topologyKey"] == "kubernetes.io/hostname"
    assert term["labelSelector"]["matchLabels"] == {
        "batch.kubernetes.io/job-name": resource["metadata"]["name"]}


def test_each_box_asks_for_its_npus() -> None:
    cards = suite(job())["resources"]["limits"][NPU]
    assert isinstance(cards, int) and cards > 0


def test_one_failing_box_stops_no_other() -> None:
    """A Job-wide backoffLimit would end every box's run after enough failures on any; per
    index, each box is retried on its own, and pytest's own verdicts are never retried."""
    spec = job()["spec"]
    assert "backoffLimit" not in spec
    assert spec["backoffLimitPerIndex"] >= 0
    (fail_index,) = [rule for rule in spec["podFailurePolicy"]["rules"]
                     if rule["action"] == "FailIndex"]
    assert fail_index["onExitCodes"]["operator"] == "In"
    assert set(fail_index["onExitCodes"]["values"]) == {1, 2, 3, 4, 5}  # pytest's exit codes
    assert spec["activeDeadlineSeconds"] > 0 and spec["ttlSecondsAfterFinished"] > 0


def test_results_land_under_the_node_name() -> None:
    """Named by node, not by pod: pod i lands on any box from one run to the next, and the
    fleet holds each box to its own history."""
    resource = job()
    container = suite(resource)
    (node_name,) = [env for env in container["env"] if env["name"] == "NODE_NAME"]
    assert node_name["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"
    options = command_options(resource)
    assert "--benchmark-autosave" in options  # without it the storage is never written
    assert options["--benchmark-storage"].startswith("file://" + NODE_DIR)
    assert options["--ascend-report-dir"].startswith(NODE_DIR)
    assert options["--ascend-results-log"].startswith(NODE_DIR)
    (results,) = [mount for mount in container["volumeMounts"] if mount["mountPath"] == "/results"]
    (volume,) = [volume for volume in pod(resource)["volumes"]
                 if volume["name"] == results["name"]]
    assert "persistentVolumeClaim" in volume and not results.get("readOnly")


def test_boxes_are_named_by_their_hostname() -> None:
    """The fleet names a box by platform.node(); only on the host network is that the box's
    hostname rather than the pod's."""
    spec = pod(job())
    assert spec["hostNetwork"] is True
    assert spec["dnsPolicy"] == "ClusterFirstWithHostNet"  # cluster DNS still resolves


def test_command_uses_only_the_plugins_options() -> None:
    """A renamed or removed option would make pytest refuse the whole run on every box."""
    flags = {spec.flag for spec in OPTIONS}
    ascend = [flag for flag in command_options(job()) if flag.startswith("--ascend-")]
    assert ascend and set(ascend) <= flags


def test_host_driver_and_npu_smi_are_read_only() -> None:
    resource = job()
    host_paths = {volume["name"]: volume["hostPath"]["path"]
                  for volume in pod(resource)["volumes"] if "hostPath" in volume}
    assert set(host_paths.values()) == {"/usr/local/Ascend/driver", "/usr/local/bin/npu-smi"}
    for mount in suite(resource)["volumeMounts"]:
        if mount["name"] in host_paths:
            assert mount["readOnly"] is True
            assert mount["mountPath"] == host_paths[mount["name"]]


def test_docs_embed_the_manifest_verbatim() -> None:
    assert MANIFEST.read_text(encoding="utf-8") in docs_yaml_blocks(), (
        "docs/kubernetes.md no longer holds deploy/kubernetes/fleet-job.yaml exactly: copy "
        "the file into its ```yaml block")


@pytest.mark.parametrize("version", KUBERNETES)
def test_docs_yaml_is_valid(version: str) -> None:
    """Every resource the page shows passes the schemas too, and a fragment without a kind
    (lines to add to the Job) passes once merged into the Job."""
    checked = []
    for block in docs_yaml_blocks():
        for document in yaml.safe_load_all(block):
            if "kind" not in document:
                document = merged(job(), document)
            if document["apiVersion"] != UNCHECKED_API:
                validate(document, version)
                checked.append(document["kind"])
    assert sorted(checked) == ["Job", "Job", "PersistentVolumeClaim", "PersistentVolumeClaim",
                               "Service"]
