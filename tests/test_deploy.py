"""The Kubernetes manifests under deploy/: rendered with ``kubectl kustomize`` and every object checked
offline against its schema: the Kubernetes API's own (the kubernetes-validate package, strict: an
unknown field is an error) and, for KEDA's ScaledObject, the prometheus-operator's ServiceMonitor and
KubeRay's RayService, their CRDs' schemas (vendored in deploy/kubernetes/schemas, see its README),
made strict the way the API server's strict field validation is. Then what the deployment promises:
a GPU per pod, the probes, the grace periods, the read-only model store, the server's own flags."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
KUBERNETES = REPO / "deploy" / "kubernetes"
SCHEMAS = KUBERNETES / "schemas"
KUBERNETES_VERSION = "1.32"  # the oldest version the manifests must work on
CRD_SCHEMAS = {
    ("keda.sh/v1alpha1", "ScaledObject"): "scaledobject-keda-v1alpha1.json",
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "servicemonitor-monitoring-v1.json",
    ("ray.io/v1", "RayService"): "rayservice-ray-v1.json",
}
VARIANTS = ["overlays/keda", "overlays/hpa", "ray"]


@cache
def render(variant: str) -> list[dict[str, Any]]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.fail("kubectl is needed to render deploy/kubernetes (kubectl kustomize); install it")
    done = subprocess.run(
        [kubectl, "kustomize", str(KUBERNETES / variant)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def _strict(schema: Any) -> Any:
    """Unknown fields refused wherever the CRD lists the fields (as ``kubectl --validate=strict``)."""
    if isinstance(schema, list):
        return [_strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    strict = {key: _strict(value) for key, value in schema.items()}
    if (
        "properties" in strict
        and "additionalProperties" not in strict
        and not strict.get("x-kubernetes-preserve-unknown-fields")
        and set(strict["properties"]) != {"apiVersion", "kind", "metadata", "spec", "status"}
    ):
        strict["additionalProperties"] = False
    return strict


@cache
def crd_validator(api_version: str, kind: str) -> jsonschema.Draft7Validator:
    schema = json.loads((SCHEMAS / CRD_SCHEMAS[api_version, kind]).read_text())
    schema.pop("$comment", None)
    top = _strict(schema)
    top["additionalProperties"] = False  # the object itself: apiVersion, kind, metadata, spec, status
    return jsonschema.Draft7Validator(top)


def check(document: dict[str, Any]) -> None:
    key = (document["apiVersion"], document["kind"])
    if key in CRD_SCHEMAS:
        errors = sorted(crd_validator(*key).iter_errors(document), key=lambda e: list(e.path))
        assert not errors, [f"{'.'.join(map(str, e.path))}: {e.message}" for e in errors]
        # metadata is the API's ObjectMeta, checked like any built-in object's
        kubernetes_validate.validate(
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": document["metadata"]},
            KUBERNETES_VERSION,
            strict=True,
        )
    else:
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_object_is_valid_against_its_schema(variant: str) -> None:
    documents = render(variant)
    assert documents
    for document in documents:
        try:
            check(document)
        except kubernetes_validate.utils.SchemaNotFoundError as exc:
            pytest.fail(f"no schema for {document['kind']} ({document['apiVersion']}): {exc.message}")
        except jsonschema.ValidationError as exc:
            pytest.fail(
                f"{document['kind']}/{document['metadata']['name']}: {exc.message} at {list(exc.path)}"
            )


def test_the_checks_catch_mistakes() -> None:
    (deployment,) = [d for d in render("overlays/keda") if d["kind"] == "Deployment"]
    broken = json.loads(json.dumps(deployment))
    broken["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGett"] = {}
    with pytest.raises(jsonschema.ValidationError):
        check(broken)
    (scaled,) = [d for d in render("overlays/keda") if d["kind"] == "ScaledObject"]
    typo = json.loads(json.dumps(scaled))
    typo["spec"]["maxReplicas"] = 8  # KEDA's field is maxReplicaCount
    with pytest.raises(AssertionError, match="maxReplicas"):
        check(typo)
    (service,) = [d for d in render("ray") if d["kind"] == "RayService"]
    wrong = json.loads(json.dumps(service))
    wrong["spec"]["rayClusterConfig"]["workerGroupSpecs"][0]["replicas"] = "one"
    with pytest.raises(AssertionError, match="replicas"):
        check(wrong)


def _kinds(variant: str) -> list[str]:
    return sorted(d["kind"] for d in render(variant))


def test_every_object_the_deployment_needs_is_there() -> None:
    common = ["Deployment", "Job", "PersistentVolumeClaim", "PersistentVolumeClaim"]
    common += ["PodDisruptionBudget", "Service", "ServiceMonitor"]
    assert _kinds("overlays/keda") == sorted([*common, "ScaledObject"])
    assert _kinds("overlays/hpa") == sorted([*common, "HorizontalPodAutoscaler"])
    assert _kinds("ray") == sorted(["Job", "PersistentVolumeClaim", "PersistentVolumeClaim", "RayService"])


def _deployment() -> dict[str, Any]:
    (deployment,) = [d for d in render("overlays/keda") if d["kind"] == "Deployment"]
    return deployment


def _flag(args: list[str], name: str) -> str:
    (value,) = [arg.split("=", 1)[1] for arg in args if arg.startswith(f"--{name}=")]
    return value


def test_the_pods_serve_as_the_server_expects() -> None:
    pod = _deployment()["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    args = container["args"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    # preStop, then the drain's grace period, then the exit: within terminationGracePeriodSeconds
    (pre_stop,) = [
        int(word) for word in container["lifecycle"]["preStop"]["exec"]["command"] if word.isdigit()
    ]
    grace = float(_flag(args, "grace-period"))
    from indextts2.server.process import STOP_MARGIN_SECONDS

    assert pod["terminationGracePeriodSeconds"] >= pre_stop + grace + STOP_MARGIN_SECONDS
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert mounts["models"]["readOnly"] is True
    assert volumes["models"]["persistentVolumeClaim"]["claimName"] == "indextts2-models"
    assert volumes["api-keys"]["secret"]["secretName"] == "indextts2-api-keys"
    assert _flag(args, "api-keys-file").startswith(mounts["api-keys"]["mountPath"] + "/")
    assert _flag(args, "voices-dir") == mounts["voices"]["mountPath"]
    env = {e["name"]: e for e in container["env"]}
    assert env["INDEXTTS2_HOME"]["value"] == mounts["models"]["mountPath"]
    assert env["INDEXTTS2_OFFLINE"]["value"] == "1"
    # the Job fills the store the pods read
    (job,) = [d for d in render("overlays/keda") if d["kind"] == "Job"]
    (download,) = job["spec"]["template"]["spec"]["containers"]
    assert download["args"][:2] == ["models", "download"]
    assert {e["name"]: e["value"] for e in download["env"]}["INDEXTTS2_HOME"] == "/models"


def test_the_container_arguments_are_flags_the_server_has(tmp_path: Path) -> None:
    """The Deployment's args, given to the real ``indextts2 serve`` (it prints a unit and exits)."""
    (container,) = _deployment()["spec"]["template"]["spec"]["containers"]
    args = [
        re.sub(r"\$\(POD_NAME\)", "pod-0", arg).replace("/voices", str(tmp_path)) for arg in container["args"]
    ]
    env = {"INDEXTTS2_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-m", "indextts2", "serve", *args, "--print-systemd-unit"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "--grace-period=30" in done.stdout


def test_the_service_monitor_and_autoscalers_read_what_the_server_exports() -> None:
    documents = render("overlays/keda") + render("overlays/hpa")
    (monitor,) = {json.dumps(d) for d in documents if d["kind"] == "ServiceMonitor"}
    (endpoint,) = json.loads(monitor)["spec"]["endpoints"]
    assert endpoint["path"] == "/metrics"
    from indextts2.server.metrics import Metrics

    exported = Metrics().render().decode()
    (scaled,) = [d for d in documents if d["kind"] == "ScaledObject"]
    (trigger,) = scaled["spec"]["triggers"]
    assert "indextts2_queue_depth" in trigger["metadata"]["query"]
    (hpa,) = [d for d in documents if d["kind"] == "HorizontalPodAutoscaler"]
    assert hpa["spec"]["metrics"][0]["pods"]["metric"]["name"] == "indextts2_queue_depth"
    assert "\nindextts2_queue_depth " in exported


def test_the_ray_service_runs_the_app_builder_with_its_arguments() -> None:
    (service,) = [d for d in render("ray") if d["kind"] == "RayService"]
    serve_config = yaml.safe_load(service["spec"]["serveConfigV2"])
    (application,) = serve_config["applications"]
    assert application["import_path"] == "indextts2.server.ray_serve:app_builder"
    pytest.importorskip("ray")  # the ray extra is part of dev: CI has it
    from indextts2.server.ray_serve import app_builder

    assert app_builder(application["args"]) is not None  # every argument is one it knows
    assert application["args"]["num_gpus"] == 1
    workers = service["spec"]["rayClusterConfig"]["workerGroupSpecs"][0]["template"]["spec"]["containers"][0]
    assert workers["resources"]["limits"]["nvidia.com/gpu"] == 1
