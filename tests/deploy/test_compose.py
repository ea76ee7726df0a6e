"""docker-compose.yml, checked without a Docker engine: the compose spec's JSON schema (vendored), then what the
schema cannot know: start-up order, healthchecks, the registry's ports, real settings and real CLI commands."""
from __future__ import annotations

import json
import re
from graphlib import TopologicalSorter
from typing import Any

import jsonschema
import pytest
import yaml

from tests.deploy.facts import (
    DEPLOY,
    REPO,
    cli_accepts,
    env_file_variables,
    peer_url_variables,
    registry_ports,
    router_readiness_path,
    router_url_variable,
    router_variables,
    serve_target,
    unknown_python_variables,
)

ONE_SHOT_RESTARTS = (None, "no", "on-failure")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


@pytest.fixture(scope="module")
def services(compose) -> dict[str, dict[str, Any]]:
    return compose["services"]


def _python_services(services) -> dict[str, dict[str, Any]]:
    """Services built from deploy/Dockerfile (the Python image)."""
    return {name: s for name, s in services.items()
            if (s.get("build") or {}).get("dockerfile") == "deploy/Dockerfile"}


def _one_shot_jobs(services) -> set[str]:
    """Services something waits on to *complete*: keys, migrations, seed."""
    return {dep for s in services.values() for dep, spec in (s.get("depends_on") or {}).items()
            if isinstance(spec, dict) and spec.get("condition") == "service_completed_successfully"}


def _environment(service) -> dict[str, str]:
    env = service.get("environment") or {}
    assert isinstance(env, dict), "environment is written as a mapping, so entries can be merged and checked"
    return {k: str(v) for k, v in env.items()}


def test_compose_file_is_valid_against_the_compose_spec(compose):
    schema = json.loads((REPO / "tests/deploy/schemas/compose-spec.json").read_text())
    errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(compose), key=lambda e: list(e.path))
    assert [f"{'/'.join(map(str, e.path))}: {e.message}" for e in errors] == []


def test_every_long_running_service_has_a_healthcheck_and_every_job_runs_once(services):
    jobs = _one_shot_jobs(services)
    assert {"keys", "migrate", "seed"} <= jobs
    for name, service in services.items():
        if name in jobs:
            assert service.get("restart") in ONE_SHOT_RESTARTS, f"{name} is a job: a restart loop never completes"
            continue
        check = service.get("healthcheck") or {}
        assert check.get("test") and not check.get("disable"), f"{name} has no healthcheck"


def test_every_dependency_waits_on_a_condition_that_can_be_met(services):
    jobs = _one_shot_jobs(services)
    for name, service in services.items():
        depends_on = service.get("depends_on") or {}
        assert isinstance(depends_on, dict), f"{name}: depends_on must name a condition for each dependency"
        for dep, spec in depends_on.items():
            assert dep in services, f"{name} depends on unknown service {dep}"
            condition = (spec or {}).get("condition")
            if dep in jobs:
                assert condition == "service_completed_successfully", f"{name} -> {dep}"
            else:
                assert condition == "service_healthy", f"{name} -> {dep}: {condition}"
                assert services[dep].get("healthcheck"), f"{name} waits for {dep} to be healthy, but it has no check"
    # And the graph has an order at all.
    order = TopologicalSorter({n: set(s.get("depends_on") or {}) for n, s in services.items()})
    assert list(order.static_order())


def test_every_subgraph_of_the_registry_runs_on_its_port_and_is_probed_there(services):
    served = {}
    for name, service in services.items():
        target = serve_target(service.get("command") or [])
        if target is None:
            continue
        subgraph, port = target
        assert name == subgraph, f"service {name} serves {subgraph}: name them alike (peers use the host name)"
        served[subgraph] = port
        assert f"127.0.0.1:{port}/ready" in " ".join(service["healthcheck"]["test"]), name
    assert served == registry_ports()


def test_the_router_reaches_every_subgraph_and_waits_for_them(services):
    router = services["router"]
    env = _environment(router)
    assert sorted(set(env) - router_variables()) == [], "variables router/gateway.config.mjs does not read"
    ports = registry_ports()
    assert {k: v for k, v in env.items() if k.startswith("NEXUSCART_") and k.endswith("_URL")} == {
        router_url_variable(name): f"http://{name}:{port}/graphql" for name, port in ports.items()}
    # Public only once every subgraph serves and the saga runs (the workers' readiness: partitions assigned).
    assert {*ports, "worker", "relay"} <= set(router["depends_on"])
    assert router_readiness_path() in " ".join(router["healthcheck"]["test"])


def test_python_services_are_given_real_settings_and_real_commands(services):
    python = _python_services(services)
    assert python, "no service is built from deploy/Dockerfile"
    for name, service in python.items():
        env = _environment(service)
        assert unknown_python_variables(set(env)) == [], name
        command = service["command"]
        if command[0] == "nexuscart":
            assert cli_accepts(command), f"{name}: `{' '.join(command)}` is not a nexuscart command"
        if command[:2] == ["nexuscart", "serve"] or command in (["nexuscart", "worker"], ["nexuscart", "relay"]):
            # Every peer address is set, to the peer's service name and registry port.
            assert {k: v for k, v in env.items() if k in peer_url_variables()} == peer_url_variables(), name
        for env_file in service.get("env_file") or []:
            example = REPO / f"{env_file['path']}.example"
            assert example.exists(), f"{env_file['path']} has no committed example"
            assert unknown_python_variables(env_file_variables(example)) == [], example


def test_worker_and_relay_are_probed_on_their_health_port(services):
    for name, variable in (("worker", "WORKER_HEALTH_PORT"), ("relay", "RELAY_HEALTH_PORT")):
        port = _environment(services[name])[variable]
        assert f"127.0.0.1:{port}/ready" in " ".join(services[name]["healthcheck"]["test"]), name


def test_a_seed_job_creates_the_admin_before_any_subgraph_serves(services):
    seeds = [n for n, s in services.items() if s.get("command") == ["nexuscart", "seed"]]
    assert len(seeds) == 1
    assert services[seeds[0]]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    for name in registry_ports():
        assert services[name]["depends_on"][seeds[0]]["condition"] == "service_completed_successfully", name


def test_jwt_keys_are_generated_into_a_volume_and_only_users_and_the_router_get_the_private_key(compose, services):
    keys = services["keys"]
    assert "ensure_keypair" in " ".join(keys["command"])
    (mount,) = keys["volumes"]
    volume, target = mount.split(":")[:2]
    assert volume in compose["volumes"], "keys live in a named volume, never in the checkout"
    assert "/keys" in (REPO / "deploy/Dockerfile").read_text(), "the image must own the mount point"
    for name, service in _python_services(services).items():
        env = _environment(service)
        if name in ("keys", "migrate", "seed"):
            continue
        assert f"{volume}:{target}:ro" in service["volumes"], name
        assert env["JWT_PUBLIC_KEY_FILE"].startswith(target + "/"), name
        assert ("JWT_PRIVATE_KEY_FILE" in env) == (name == "users"), name
    router = services["router"]
    assert f"{volume}:{target}:ro" in router["volumes"], "the router signs partner tokens"
    assert _environment(router)["JWT_PRIVATE_KEY_FILE"].startswith(target + "/")


def test_kafka_keeps_its_log_on_the_mounted_volume(compose, services):
    kafka = services["kafka"]
    log_dirs = _environment(kafka)["KAFKA_LOG_DIRS"]
    mounts = {m.split(":")[1]: m.split(":")[0] for m in kafka["volumes"]}
    assert mounts.get(log_dirs) in compose["volumes"]


def test_search_runs_against_a_single_node_elasticsearch_8(services):
    elastic = services["elasticsearch"]
    assert re.search(r"elasticsearch:8\.\d+\.\d+$", elastic["image"])
    assert _environment(elastic)["discovery.type"] == "single-node"
    for name in ("search", "worker"):
        assert _environment(services[name])["ELASTICSEARCH_URL"] == "http://elasticsearch:9200"
        assert services[name]["depends_on"]["elasticsearch"]["condition"] == "service_healthy"


def test_stripe_webhook_is_reachable_from_the_host(services):
    payments = services["payments"]
    port = registry_ports()["payments"]
    assert f"127.0.0.1:{port}:{port}" in payments["ports"]


def test_observability_is_provisioned_from_committed_files(services):
    grafana = services["grafana"]
    mounts = {m.split(":")[0]: m.split(":")[1] for m in grafana["volumes"]}
    assert mounts["./deploy/grafana/provisioning"] == "/etc/grafana/provisioning"
    provider = yaml.safe_load((DEPLOY / "grafana/provisioning/dashboards/nexuscart.yml").read_text())
    assert mounts["./deploy/grafana/dashboards"] == provider["providers"][0]["options"]["path"]
    assert list((DEPLOY / "grafana/dashboards").glob("*.json"))
    prometheus_mount = services["prometheus"]["volumes"][0].split(":")
    assert (REPO / prometheus_mount[0]).exists()
    for name in services:
        environment = _environment(services[name])
        if "OTEL_EXPORTER_OTLP_ENDPOINT" in environment:
            host = re.match(r"http://([^:/]+)", environment["OTEL_EXPORTER_OTLP_ENDPOINT"])
            assert host and host.group(1) in services, name


def test_recommendation_models_live_in_one_named_volume_the_worker_trains_into_and_the_subgraph_serves_from(
        compose, services):
    """RECOMMENDATIONS_MODEL_DIR is a path inside the containers: only a volume both mount there lets the model the
    worker promotes reach the subgraph, and survive a restart. Both write there (the registry's file lock)."""
    model_dir = _environment(services["recommendations"])["RECOMMENDATIONS_MODEL_DIR"]
    volumes = set()
    for name in ("recommendations", "worker"):
        assert _environment(services[name])["RECOMMENDATIONS_MODEL_DIR"] == model_dir, name
        mounts = {m.split(":")[1]: m.split(":") for m in services[name]["volumes"]}
        assert model_dir in mounts, f"{name} does not mount {model_dir}"
        volume, _target, *mode = mounts[model_dir]
        assert volume in compose["volumes"], f"{name}: {model_dir} is not a named volume"
        assert mode != ["ro"], f"{name} must be able to write {model_dir}"
        volumes.add(volume)
    assert len(volumes) == 1, f"the worker and the subgraph mount different volumes: {sorted(volumes)}"
    # A fresh named volume takes the owner of the image's mount point: the app user must own it to write there.
    assert re.search(rf"^RUN .*chown[^\n]*\s{re.escape(model_dir)}\b", (DEPLOY / "Dockerfile").read_text(),
                     re.MULTILINE | re.DOTALL)
