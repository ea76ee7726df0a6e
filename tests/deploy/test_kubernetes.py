"""deploy/k8s, checked without a cluster: every object against the Kubernetes OpenAPI schemas that ship with
kubernetes-validate (offline, strict: unknown fields fail), then the wiring the schemas cannot see."""
from __future__ import annotations

import ast
import shutil
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.deploy.facts import (
    K8S,
    REPO,
    cli_accepts,
    env_file_variables,
    load_yaml_documents,
    peer_url_variables,
    registry_ports,
    router_liveness_path,
    router_readiness_path,
    router_url_variable,
    router_variables,
    serve_target,
    unknown_python_variables,
)

# The oldest Kubernetes minor the manifests must apply to (nothing used here is removed in later ones).
KUBERNETES_VERSION = "1.30"
GENERATED_SECRETS = ("nexuscart-secrets", "nexuscart-jwt")


@pytest.fixture(scope="module")
def kustomization() -> dict[str, Any]:
    return yaml.safe_load((K8S / "kustomization.yaml").read_text())


@pytest.fixture(scope="module")
def objects(kustomization) -> list[dict[str, Any]]:
    """What `kustomize build` would emit: the listed resources plus the generated Secrets (their data from the
    committed example and the key file names; namespaces and name hashes left out)."""
    docs = [doc for path in kustomization["resources"] for doc in load_yaml_documents(K8S / path)]
    for generator in kustomization["secretGenerator"]:
        keys: set[str] = set()
        for env in generator.get("envs", []):
            keys |= env_file_variables(K8S / f"{env}.example")
        keys |= {path.rsplit("/", 1)[-1] for path in generator.get("files", [])}
        docs.append({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": generator["name"]},
                     "stringData": dict.fromkeys(sorted(keys), "x")})
    return docs


def _by_kind(objects, kind) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def _container(deployment) -> dict[str, Any]:
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return container


def _port(container, name_or_number) -> int:
    if isinstance(name_or_number, int):
        return name_or_number
    (port,) = [p["containerPort"] for p in container["ports"] if p["name"] == name_or_number]
    return port


def _selects(selector: dict[str, str], deployment) -> bool:
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def test_kustomization_lists_every_manifest_once(kustomization):
    listed = kustomization["resources"]
    assert [path for path, n in Counter(listed).items() if n > 1] == []
    on_disk = sorted(str(p.relative_to(K8S)) for p in K8S.rglob("*.yaml") if p.name != "kustomization.yaml")
    assert sorted(listed) == on_disk


def test_secret_inputs_are_examples_only(kustomization):
    """The generator's inputs are git-ignored; only an example of the env file is committed."""
    gitignore = (K8S.parent.parent / ".gitignore").read_text().splitlines()
    for generator in kustomization["secretGenerator"]:
        assert generator["name"] in GENERATED_SECRETS
        for env in generator.get("envs", []):
            assert f"deploy/k8s/{env}" in gitignore
            assert (K8S / f"{env}.example").exists()
        for path in generator.get("files", []):
            assert f"deploy/k8s/{path.rsplit('/', 1)[0]}/" in gitignore


def test_every_object_is_valid_against_the_kubernetes_schemas(objects):
    failures = []
    for obj in objects:
        try:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            failures.append(f"{obj['kind']}/{obj['metadata']['name']}: {'.'.join(map(str, error.path))}: "
                            f"{error.message}")
    assert failures == []


def test_every_subgraph_has_a_deployment_service_probes_autoscaler_and_disruption_budget(objects):
    deployments, services = _by_kind(objects, "Deployment"), _by_kind(objects, "Service")
    autoscalers = _by_kind(objects, "HorizontalPodAutoscaler")
    budgets = _by_kind(objects, "PodDisruptionBudget")
    for name, port in registry_ports().items():
        assert name in deployments, f"subgraph {name} has no Deployment in deploy/k8s"
        container = _container(deployments[name])
        assert serve_target(container["command"]) == (name, port)
        assert cli_accepts(container["command"])
        assert container["livenessProbe"]["httpGet"]["path"] == "/health", name
        assert container["readinessProbe"]["httpGet"]["path"] == "/ready", name
        for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
            assert _port(container, container[probe]["httpGet"]["port"]) == port, f"{name} {probe}"
        assert container["resources"]["requests"]["cpu"], f"{name}: a CPU autoscaler needs a CPU request"

        service = services.get(name)
        assert service is not None, f"subgraph {name} has no Service"
        (service_port,) = service["spec"]["ports"]
        assert service_port["port"] == port
        assert _port(container, service_port["targetPort"]) == port
        assert _selects(service["spec"]["selector"], deployments[name])

        assert autoscalers.get(name, {}).get("spec", {}).get("scaleTargetRef") == {
            "apiVersion": "apps/v1", "kind": "Deployment", "name": name}, f"subgraph {name} has no HPA"
        assert name in budgets, f"subgraph {name} has no PodDisruptionBudget"
        assert _selects(budgets[name]["spec"]["selector"]["matchLabels"], deployments[name])


def test_the_deployments_are_the_subgraphs_the_router_the_workers_and_the_relay(objects):
    assert set(_by_kind(objects, "Deployment")) == {*registry_ports(), "router", "worker", "relay"}


def test_router_reaches_every_subgraph_and_scales(objects):
    router = _by_kind(objects, "Deployment")["router"]
    container = _container(router)
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert sorted(set(env) - router_variables()) == [], "variables router/gateway.config.mjs does not read"
    assert {k: v for k, v in env.items() if k.startswith("NEXUSCART_") and k.endswith("_URL")} == {
        router_url_variable(name): f"http://{name}:{port}/graphql" for name, port in registry_ports().items()}
    assert container["readinessProbe"]["httpGet"]["path"] == router_readiness_path()
    assert container["livenessProbe"]["httpGet"]["path"] == router_liveness_path()
    assert _port(container, container["readinessProbe"]["httpGet"]["port"]) == int(env["ROUTER_PORT"])
    assert "router" in _by_kind(objects, "HorizontalPodAutoscaler")
    assert "router" in _by_kind(objects, "PodDisruptionBudget")
    assert _selects(_by_kind(objects, "Service")["router"]["spec"]["selector"], router)


def test_relay_is_a_single_replica_replaced_not_rolled(objects):
    relay = _by_kind(objects, "Deployment")["relay"]
    assert relay["spec"]["replicas"] == 1
    assert relay["spec"]["strategy"] == {"type": "Recreate"}
    assert "relay" not in {h["spec"]["scaleTargetRef"]["name"] for h in _by_kind(objects, "HorizontalPodAutoscaler")
                           .values()}
    assert _container(relay)["command"] == ["nexuscart", "relay"]


@pytest.mark.parametrize(("name", "variable"), [("worker", "WORKER_HEALTH_PORT"), ("relay", "RELAY_HEALTH_PORT")])
def test_worker_and_relay_are_probed_on_their_health_port(objects, name, variable):
    container = _container(_by_kind(objects, "Deployment")[name])
    port = int({e["name"]: e.get("value") for e in container["env"]}[variable])
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    for probe in ("livenessProbe", "readinessProbe"):
        assert _port(container, container[probe]["httpGet"]["port"]) == port
    assert cli_accepts(container["command"])


def test_migrations_run_as_a_job(objects):
    (job,) = _by_kind(objects, "Job").values()
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["nexuscart", "migrate"]


def test_python_pods_read_only_real_settings_from_existing_config(objects):
    config_maps, secrets = _by_kind(objects, "ConfigMap"), _by_kind(objects, "Secret")
    for name, config in config_maps.items():
        assert unknown_python_variables(set(config["data"])) == [], name
    # Every peer address is set, to the peer's Service and registry port.
    data = config_maps["nexuscart-config"]["data"]
    assert {k: v for k, v in data.items() if k in peer_url_variables()} == peer_url_variables()
    assert unknown_python_variables(set(secrets["nexuscart-secrets"]["stringData"])) == []
    workloads = [*_by_kind(objects, "Deployment").values(), *_by_kind(objects, "Job").values()]
    for workload in workloads:
        pod = workload["spec"]["template"]["spec"]
        for container in pod["containers"]:
            for source in container.get("envFrom", []):
                if "configMapRef" in source:
                    assert source["configMapRef"]["name"] in config_maps
                if "secretRef" in source:
                    assert source["secretRef"]["name"] in secrets
            for entry in container.get("env", []):
                ref = entry.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert ref["key"] in secrets[ref["name"]]["stringData"], entry
            if container["image"].startswith("nexuscart/app"):
                names = {e["name"] for e in container.get("env", [])}
                assert unknown_python_variables(names) == [], workload["metadata"]["name"]
        for volume in pod.get("volumes", []):
            if "secret" in volume:
                secret = secrets[volume["secret"]["secretName"]]
                assert {i["key"] for i in volume["secret"].get("items", [])} <= set(secret["stringData"])


def test_recommendations_serve_the_model_registry_from_a_volume_every_replica_shares(objects):
    """RECOMMENDATIONS_MODEL_DIR (ConfigMap) is where the worker promotes a model and every recommendations replica
    reads (and locks) it: a writable claim that pods on different nodes can mount at once."""
    model_dir = _by_kind(objects, "ConfigMap")["nexuscart-config"]["data"]["RECOMMENDATIONS_MODEL_DIR"]
    claims = set()
    for name in ("recommendations", "worker"):  # the worker's periodic retrain promotes into the same registry
        deployment = _by_kind(objects, "Deployment")[name]
        (mount,) = [m for m in _container(deployment)["volumeMounts"] if m["mountPath"] == model_dir]
        assert not mount.get("readOnly"), name
        volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
        claims.add(volumes[mount["name"]]["persistentVolumeClaim"]["claimName"])
    (claim_name,) = claims
    claim = _by_kind(objects, "PersistentVolumeClaim")[claim_name]
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]


def test_only_users_and_the_router_mount_the_private_key(objects):
    """users signs sign-in tokens; the router signs the short-lived partner tokens for X-Api-Key callers."""
    for name, deployment in _by_kind(objects, "Deployment").items():
        volumes = deployment["spec"]["template"]["spec"].get("volumes", [])
        keys = {i["key"] for v in volumes if v.get("secret", {}).get("secretName") == "nexuscart-jwt"
                for i in v["secret"]["items"]}
        assert ("jwt-private.pem" in keys) == (name in ("users", "router")), name


def test_the_ingress_publishes_graphql_the_stripe_webhook_and_unsubscribe_links_only(objects):
    (ingress,) = _by_kind(objects, "Ingress").values()
    (rule,) = ingress["spec"]["rules"]
    routes = {p["path"]: p["backend"]["service"]["name"] for p in rule["http"]["paths"]}
    assert routes == {"/graphql": "router", "/webhooks/stripe": "payments", "/unsubscribe": "notifications"}
    services = _by_kind(objects, "Service")
    for path in rule["http"]["paths"]:
        backend = path["backend"]["service"]
        assert backend["port"]["name"] in {p["name"] for p in services[backend["name"]]["spec"]["ports"]}
        if backend["name"] in registry_ports():
            assert path["path"] in _route_paths(REPO / "subgraphs" / backend["name"]), (
                f"{backend['name']} serves no route {path['path']}")


def _route_paths(package: Path) -> set[str]:
    """The literal paths of the Starlette `Route(...)`s a subgraph package declares."""
    paths = set()
    for source in package.rglob("*.py"):
        for call in ast.walk(ast.parse(source.read_text())):
            if (isinstance(call, ast.Call) and getattr(call.func, "id", None) == "Route" and call.args
                    and isinstance(call.args[0], ast.Constant)):
                paths.add(call.args[0].value)
    return paths


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl (with its built-in kustomize) is not installed")
def test_kustomize_renders_the_same_objects_and_they_are_valid(objects, tmp_path: Path):
    """The real `kubectl kustomize`, on a copy with the git-ignored inputs filled in from the example."""
    root = tmp_path / "k8s"
    shutil.copytree(K8S, root, ignore=shutil.ignore_patterns("secrets.env", "keys"))
    shutil.copy(root / "secrets.env.example", root / "secrets.env")
    (root / "keys").mkdir()
    for name in ("jwt-private.pem", "jwt-public.pem"):
        (root / "keys" / name).write_text("not a key: kustomize only reads the file\n")
    rendered = subprocess.run(["kubectl", "kustomize", str(root)], capture_output=True, text=True, timeout=60,
                              check=True).stdout
    docs = [d for d in yaml.safe_load_all(rendered) if d]
    # Generated Secrets get a content hash suffix, and every reference to them is rewritten to match.
    def identity(o: dict[str, Any], *, hashed: bool) -> tuple[str, str]:
        name = o["metadata"]["name"]
        return o["kind"], name.rsplit("-", 1)[0] if hashed and o["kind"] == "Secret" else name
    assert sorted(identity(d, hashed=True) for d in docs) == sorted(identity(o, hashed=False) for o in objects)
    for doc in docs:
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == "nexuscart", doc["metadata"]["name"]
        if doc["kind"] == "Secret":  # the rest is the committed files, validated above
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
