"""`nexuscart run` as an operator uses it: real processes, a temporary data dir, ports of their own.

Each boot starts the whole platform (embedded Postgres, Redis and broker, every subgraph, the relay, the workers
and the router), so the tests here share boots: the first boot is killed outright (every process at once, as in a
power cut), the next one must start over its stale state and stop on Ctrl-C, a last one loses only its launcher.
Marked `lifecycle`, so `pytest -m lifecycle` runs them alone (and `-m "not lifecycle"` leaves them out).
"""
from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from nexuscart.infra import free_port
from nexuscart.launcher import REPO_ROOT, port_variable
from nexuscart.registry import SUBGRAPHS

pytestmark = pytest.mark.lifecycle

BOOT_DEADLINE_SECONDS = 300  # a whole platform on a shared 2-core machine; the boot ends far sooner when it can
STOP_DEADLINE_SECONDS = 20  # generous: the launcher's own budget is 5 s; this only bounds a hung stop
PEER_VARIABLES = ("DATABASE_URL", "REDIS_URL", "KAFKA_BOOTSTRAP_SERVERS", "JWT_PRIVATE_KEY_FILE", "JWT_PUBLIC_KEY_FILE")

LOGIN = "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { accessToken } }"
CREATE_CATEGORY = "mutation($input: CreateCategoryInput!) { createCategory(input: $input) { id } }"
CREATE_PRODUCT = "mutation($input: CreateProductInput!) { createProduct(input: $input) { id variants { id } } }"
CREATE_WAREHOUSE = "mutation($code: String!, $name: String!) { createWarehouse(code: $code, name: $name) { id } }"
ADJUST_STOCK = """mutation($v: ID!, $w: ID!, $d: Int!) {
  adjustStock(variantId: $v, warehouseId: $w, delta: $d, reason: "lifecycle") { available } }"""
ADD_TO_CART = """mutation($v: ID!, $q: Int!) { addToCart(variantId: $v, quantity: $q) {
  id items { quantity } } }"""


def launcher_env(data_dir: Path, ports: dict[str, int], **extra: str) -> dict[str, str]:
    """Embedded everything under `data_dir` (the session's own peers, if another test set them, are removed)."""
    env = {k: v for k, v in os.environ.items() if k not in PEER_VARIABLES}
    env.update({"NEXUSCART_DATA_DIR": str(data_dir), "ROUTER_PORT": str(ports["router"]),
                **{port_variable(s.name): str(ports[s.name]) for s in SUBGRAPHS}, **extra})
    return env


class Launcher:
    """One `nexuscart run`, its output collected line by line."""

    def __init__(self, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "nexuscart.cli", "run"], cwd=REPO_ROOT, env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     start_new_session=True)  # its own group, as in a terminal: signals are ours
        self.lines: list[str] = []
        self.up = threading.Event()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)
            if line.startswith("NexusCart is up"):
                self.up.set()

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_up(self) -> None:
        deadline = time.monotonic() + BOOT_DEADLINE_SECONDS
        while not self.up.wait(0.5):
            assert self.proc.poll() is None, f"launcher exited with {self.proc.returncode}:\n{self.output[-5000:]}"
            assert time.monotonic() < deadline, f"not up after {BOOT_DEADLINE_SECONDS}s:\n{self.output[-5000:]}"

    def processes(self) -> list[psutil.Process]:
        """The launcher and everything under it (embedded servers and their workers included)."""
        with contextlib.suppress(psutil.Error):
            root = psutil.Process(self.proc.pid)
            return [root, *root.children(recursive=True)]
        return []

    def brokers(self) -> list[psutil.Process]:
        """The embedded broker's processes under the launcher (a short-lived child that exits while they are
        looked over is skipped, not an error)."""
        found = []
        for process in self.processes():
            with contextlib.suppress(psutil.NoSuchProcess):
                if "tansu" in process.name():
                    found.append(process)
        return found

    def wait_exit(self, timeout: float) -> int:
        code = self.proc.wait(timeout=timeout)
        self.reader.join(timeout=5)
        return code


class Load:
    """Browse requests through the router from a few threads, for as long as the block runs (failures expected
    once the platform stops; only the launcher's output is judged)."""

    def __init__(self, router_url: str, threads: int = 4) -> None:
        self.router_url = router_url
        self.done = threading.Event()
        self.sent = 0
        self.threads = [threading.Thread(target=self._browse, daemon=True) for _ in range(threads)]

    def _browse(self) -> None:
        with httpx.Client(timeout=5) as http:
            while not self.done.is_set():
                with contextlib.suppress(httpx.HTTPError):
                    http.post(self.router_url, json={"query": "{ products(first: 20) { edges { node { name } } } }"})
                self.sent += 1

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        deadline = time.monotonic() + 30
        while self.sent < 20 and time.monotonic() < deadline:
            time.sleep(0.05)  # polled until the load is really flowing
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        for thread in self.threads:
            thread.join(timeout=10)


def still_running(processes: list[psutil.Process]) -> list[str]:
    alive = []
    for proc in processes:
        try:
            if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                alive.append(f"{proc.pid} {' '.join(proc.cmdline())[:120]}")
        except psutil.NoSuchProcess:
            continue
    return alive


def wait_until_gone(processes: list[psutil.Process], timeout: float) -> list[str]:
    """What is still running once `timeout` has passed, or [] as soon as everything has ended."""
    deadline = time.monotonic() + timeout
    while (alive := still_running(processes)) and time.monotonic() < deadline:
        time.sleep(0.2)  # polled until every process has ended or the deadline
    return alive


def listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def graphql(url: str, query: str, variables: dict, token: str | None = None) -> dict:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    response = httpx.post(url, json={"query": query, "variables": variables}, headers=headers, timeout=30)
    return response.json()


def data_of(body: dict) -> dict:
    """The answer's data; a failed answer fails the test with what the router said."""
    assert body.get("data") and not body.get("errors"), body
    return body["data"]


@pytest.fixture(scope="module")
def ports() -> dict[str, int]:
    return {"router": free_port(), **{s.name: free_port() for s in SUBGRAPHS}}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("lifecycle")


@pytest.fixture(scope="module")
def first_boot(data_dir: Path, ports: dict[str, int]) -> Iterator[Launcher]:
    launcher = Launcher(launcher_env(data_dir, ports))
    try:
        launcher.wait_up()
        yield launcher
    finally:
        for proc in reversed(launcher.processes() if launcher.proc.poll() is None else []):
            with contextlib.suppress(psutil.Error, ProcessLookupError):
                proc.kill()
        launcher.wait_exit(30)


def test_a_busy_port_is_named_with_the_variable_that_moves_it(tmp_path: Path) -> None:
    ports = {"router": free_port(), **{s.name: free_port() for s in SUBGRAPHS}}
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", ports["promotions"]))
        squatter.listen()
        launcher = Launcher(launcher_env(tmp_path, ports))
        code = launcher.wait_exit(60)
    assert code != 0
    assert f"port {ports['promotions']}" in launcher.output and "NEXUSCART_PROMOTIONS_PORT" in launcher.output
    assert "Traceback" not in launcher.output, launcher.output
    assert not (tmp_path / "postgres").exists()  # refused before anything started


def new_variant_and_warehouse(router: str, label: str) -> tuple[str, str, str, str]:
    """Signed in as the demo admin: a new category, a one-variant product and an empty warehouse.
    Returns (admin token, variant id, warehouse id, the variant's SKU)."""
    admin = data_of(graphql(router, LOGIN, {"e": "admin@nexuscart.dev", "p": "admin-demo-pass"}))["login"][
        "accessToken"]
    category = data_of(graphql(router, CREATE_CATEGORY, {"input": {"name": f"{label} {uuid.uuid4().hex[:6]}"}},
                               admin))["createCategory"]
    sku = f"{label.upper()}-{uuid.uuid4().hex[:10]}"
    product = data_of(graphql(router, CREATE_PRODUCT, {"input": {
        "name": f"{label} Widget", "categoryId": category["id"],
        "variants": [{"sku": sku, "price": "9.50", "currency": "USD"}]}},
        admin))["createProduct"]
    warehouse = data_of(graphql(router, CREATE_WAREHOUSE, {"code": f"WH-{uuid.uuid4().hex[:6]}", "name": label},
                                admin))["createWarehouse"]["id"]
    return admin, product["variants"][0]["id"], warehouse, sku


def test_a_product_created_right_after_start_up_can_be_stocked_and_added_to_a_cart(
        first_boot: Launcher, ports: dict[str, int]) -> None:
    router = f"http://127.0.0.1:{ports['router']}/graphql"
    admin, variant, warehouse, _ = new_variant_and_warehouse(router, "Fresh")

    # At once, both: catalog's product.created may still be on its way to inventory and the cart (slower while
    # the consumer groups join at start-up); each asks the catalog about a variant it has not heard of.
    stocked = graphql(router, ADJUST_STOCK, {"v": variant, "w": warehouse, "d": 5}, admin)
    added = graphql(router, ADD_TO_CART, {"v": variant, "q": 1})

    assert not stocked.get("errors"), stocked["errors"]
    assert not added.get("errors"), added["errors"]
    assert added["data"]["addToCart"]["items"] == [{"quantity": 1}]


SEARCH_COUNT = "query($q: String!) { search(query: $q) { totalCount } }"


def test_consumers_keep_consuming_after_the_broker_is_killed(first_boot: Launcher, ports: dict[str, int]) -> None:
    router = f"http://127.0.0.1:{ports['router']}/graphql"
    (broker,) = first_boot.brokers()
    broker.kill()  # the embedded broker keeps topics in memory: it comes back empty, on the same address

    deadline = time.monotonic() + 60
    while not [p for p in first_boot.brokers() if p.pid != broker.pid]:
        assert time.monotonic() < deadline, "the launcher did not start the broker again"
        time.sleep(0.2)  # polled until the launcher has started it again
    admin, variant, warehouse, sku = new_variant_and_warehouse(router, "After")
    stocked = graphql(router, ADJUST_STOCK, {"v": variant, "w": warehouse, "d": 2}, admin)
    assert not stocked.get("errors"), stocked["errors"]
    assert stocked["data"]["adjustStock"]["available"] == 2

    # Through the new broker and its consumer group: search's index is fed only by catalog's product.created.
    deadline = time.monotonic() + 60
    while data_of(graphql(router, SEARCH_COUNT, {"q": sku}))["search"]["totalCount"] != 1:
        assert time.monotonic() < deadline, "search never heard of the product created after the broker restart"
        time.sleep(0.2)  # polled until the event has gone through the new broker to search's consumer


def noise_of_a_stop(output: str) -> list[str]:
    """The lines a clean stop must not print: tracebacks, warnings and errors (a service's JSON log line at
    WARNING or above, or any other line naming an error). A service's INFO line is its normal work."""
    noisy = []
    for line in output.splitlines():
        if line.lstrip().startswith("{"):
            try:
                level = json.loads(line)["level"]
            except (ValueError, KeyError, TypeError):
                level = "unparsable"
            if level not in ("DEBUG", "INFO"):
                noisy.append(line)
        elif "Traceback" in line or "Error" in line or "error" in line.lower().split():
            noisy.append(line)
    return noisy


def test_a_start_after_every_process_was_killed_works_and_ctrl_c_under_load_stops_it_cleanly(
        first_boot: Launcher, data_dir: Path, ports: dict[str, int]) -> None:
    # A power cut: every process at once, Postgres included, so its postmaster.pid is left behind.
    killed = first_boot.processes()
    for proc in killed:
        # One already gone was taken by its parent's death (PR_SET_PDEATHSIG) a moment ago: killed all the same.
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()
    assert not wait_until_gone(killed, 10)
    assert (data_dir / "postgres" / "postmaster.pid").exists()

    second = Launcher(launcher_env(data_dir, ports))
    second.wait_up()
    processes = second.processes()
    assert len(processes) > len(SUBGRAPHS)

    with Load(f"http://127.0.0.1:{ports['router']}/graphql"):
        second.proc.send_signal(signal.SIGINT)  # what a terminal's Ctrl-C sends to the launcher's process group
        code = second.wait_exit(STOP_DEADLINE_SECONDS)

    assert code == 0, second.output[-5000:]
    # What the stop printed (before it, the run's own warnings are fair: e.g. the relay republishing the events
    # the power cut took from the in-memory broker).
    stop_output = second.output.split("NexusCart is up", 1)[1].split("stopping NexusCart", 1)[1]
    assert not noise_of_a_stop(stop_output), stop_output
    assert "NexusCart stopped" in stop_output
    assert not still_running(processes)
    assert not any(listening(port) for port in ports.values())


def test_when_the_launcher_alone_is_killed_nothing_keeps_running(
        first_boot: Launcher, data_dir: Path, ports: dict[str, int]) -> None:
    if first_boot.proc.poll() is None:  # run alone: free the data dir and the ports of the shared boot
        first_boot.proc.send_signal(signal.SIGINT)
        first_boot.wait_exit(STOP_DEADLINE_SECONDS)
    launcher = Launcher(launcher_env(data_dir, ports))
    launcher.wait_up()
    processes = launcher.processes()

    launcher.proc.kill()  # OOM killer, kill -9: no chance to stop anything

    assert not wait_until_gone(processes, STOP_DEADLINE_SECONDS)
    assert not any(listening(port) for port in ports.values())
