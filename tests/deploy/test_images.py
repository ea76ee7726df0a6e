"""The image builds' context (the repository root, filtered by .dockerignore) and what the Dockerfiles copy."""
from __future__ import annotations

import re

import pytest

from tests.deploy.facts import DEPLOY, REPO

DOCKERFILES = ("Dockerfile", "router.Dockerfile")


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    """A .dockerignore pattern as Docker reads it (Go filepath.Match plus `**`), matched against a path relative to
    the context root."""
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out)


def _ignored(path: str) -> bool:
    """Whether the build context leaves `path` out: a pattern that matches it or one of its parent directories
    excludes it, and the last matching pattern wins (`!` re-includes)."""
    rules = []
    for line in (REPO / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            negated = line.startswith("!")
            rules.append((negated, _pattern_regex(line.lstrip("!").strip("/"))))
    parts = path.strip("/").split("/")
    candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    ignored = False
    for negated, regex in rules:
        if any(regex.fullmatch(c) for c in candidates):
            ignored = not negated
    return ignored


@pytest.mark.parametrize("path", [".venv", ".venv/lib/python3.11/site-packages", "router/node_modules",
                                  "router/node_modules/@graphql-hive/gateway", ".data", ".data/keys/jwt-private.pem",
                                  ".git", "deploy/keys/jwt-private.pem", "deploy/stripe.env",
                                  "deploy/k8s/secrets.env", "deploy/k8s/keys/jwt-private.pem",
                                  "kernel/__pycache__/app.cpython-311.pyc"])
def test_local_state_and_secrets_stay_out_of_the_build_context(path):
    assert _ignored(path)


@pytest.mark.parametrize("path", ["pyproject.toml", "kernel/app.py", "router/package.json"])
def test_the_sources_are_in_the_build_context(path):
    assert not _ignored(path)


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_everything_a_dockerfile_copies_exists_and_is_in_the_context(dockerfile):
    copies = re.findall(r"^COPY\s+(?!--from)(.+)$", (DEPLOY / dockerfile).read_text(), re.MULTILINE)
    assert copies
    for line in copies:
        *sources, _destination = line.split()
        for source in sources:
            assert (REPO / source).exists(), f"{dockerfile}: COPY {source}: no such path"
            assert not _ignored(source), f"{dockerfile}: COPY {source} is excluded by .dockerignore"


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_images_run_as_a_non_root_user(dockerfile):
    users = re.findall(r"^USER\s+(\S+)", (DEPLOY / dockerfile).read_text(), re.MULTILINE)
    assert users and users[-1] not in ("root", "0")


def test_the_python_image_installs_every_package_the_project_declares():
    """`pip install .` in the image needs every package directory setuptools looks for."""
    text = (DEPLOY / "Dockerfile").read_text()
    pyproject = (REPO / "pyproject.toml").read_text()
    packages = re.search(r'include = \[([^\]]*)\]', pyproject)
    assert packages
    for package in re.findall(r'"(\w+)\*"', packages.group(1)):
        assert re.search(rf"^COPY {package} ", text, re.MULTILINE), f"deploy/Dockerfile does not copy {package}/"
