"""The deployment files: Dockerfile, .dockerignore, deploy/ (compose, nginx, Kubernetes) and the
conformance baseline. No container engine runs on this machine (`docker info`: no daemon), so the
Dockerfile is read: its stages, user and build inputs are checked here, its HEALTHCHECK and CMD are
run against a real `nexor-mcp http` on loopback, and .ci/run lints it with hadolint. The wheel the
image installs is built and installed the same way by .ci/run (scripts/smoke_install.py)."""

from __future__ import annotations

import fnmatch
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import tomllib
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"
SECRET_WORDS = ("KEY", "TOKEN", "SECRET", "PASSWORD")


def instructions() -> list[tuple[str, str]]:
    """The Dockerfile's instructions as (KEYWORD, arguments), continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text(encoding="utf-8"))
    result = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            result.append((keyword.upper(), rest.strip()))
    return result


def last(keyword: str) -> str:
    values = [rest for key, rest in instructions() if key == keyword]
    assert values, f"the Dockerfile has no {keyword}"
    return values[-1]


def final_stage() -> list[tuple[str, str]]:
    steps = instructions()
    start = max(i for i, (key, _) in enumerate(steps) if key == "FROM")
    return steps[start:]


def healthcheck_command() -> list[str]:
    rest = last("HEALTHCHECK")
    _, _, command = rest.partition("CMD ")
    argv = json.loads(command)
    assert isinstance(argv, list) and all(isinstance(arg, str) for arg in argv)
    return argv


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def served_like_the_image(port: int) -> Iterator[subprocess.Popen[bytes]]:
    """The image's CMD, on loopback instead of 0.0.0.0, with a Host allow-list as deploy/ sets one."""
    argv = json.loads(last("CMD"))
    assert argv[0] == "nexor-mcp"
    argv = [sys.executable, "-m", "nexor_mcp", *["127.0.0.1" if arg == "0.0.0.0" else arg for arg in argv[1:]]]
    env = {"PATH": os.environ.get("PATH", ""), "NEXOR_MCP_PORT": str(port),
           "NEXOR_MCP_ALLOWED_HOSTS": "mcp.example.com"}
    process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                               env=env, cwd=ROOT)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                    break
            except OSError:
                assert process.poll() is None, "the server exited at start"
                assert time.monotonic() < deadline, "the server did not start"
                time.sleep(0.05)
        yield process
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def run_healthcheck(port: int) -> int:
    argv = healthcheck_command()
    assert argv[:2] == ["python", "-c"]
    env = {"PATH": os.environ.get("PATH", ""), "NEXOR_MCP_PORT": str(port)}
    return subprocess.run([sys.executable, "-c", argv[2]], env=env, capture_output=True, timeout=30,
                          check=False).returncode


# --- Dockerfile --------------------------------------------------------------------------------------


def test_the_image_is_slim_python_runs_as_a_non_root_user_and_serves_hosted_mode() -> None:
    bases = [rest.split()[0] for key, rest in instructions() if key == "FROM"]
    assert bases and all(re.fullmatch(r"python:3\.1[12]-slim(-\w+)?", base) for base in bases), bases
    user = last("USER").split(":")[0]
    assert user.isdigit() and int(user) != 0, "USER must be a numeric non-root uid (Kubernetes runAsNonRoot)"
    assert [rest for key, rest in final_stage() if key == "USER"], "USER must be set in the final stage"
    assert last("EXPOSE") == "8000"
    assert json.loads(last("CMD")) == ["nexor-mcp", "http", "--host", "0.0.0.0"]
    assert "pip install" in " ".join(rest for key, rest in instructions() if key == "RUN")


def stages() -> dict[str, list[tuple[str, str]]]:
    """The instructions of each stage, by its `AS` name (the last, unnamed one is "final")."""
    result: dict[str, list[tuple[str, str]]] = {}
    current = ""
    for key, rest in instructions():
        if key == "FROM":
            words = rest.split()
            current = words[2] if len(words) == 3 and words[1].upper() == "AS" else "final"
            result[current] = []
        result[current].append((key, rest))
    return result


def test_the_image_installs_the_wheel_not_the_source_tree() -> None:
    by_stage = stages()
    assert list(by_stage) == ["wheel", "install", "final"]
    wheel_runs = " ".join(rest for key, rest in by_stage["wheel"] if key == "RUN")
    assert "pip wheel --no-deps --wheel-dir /dist ." in wheel_runs, "the wheel, built as python -m build does"
    install_runs = " ".join(rest for key, rest in by_stage["install"] if key == "RUN")
    assert re.search(r"/opt/nexor-mcp/bin/pip install /dist/nexor_mcp-\*-py3-none-any\.whl$", install_runs)
    assert ("COPY", "--from=wheel /dist /dist") in by_stage["install"]
    all_runs = " ".join(rest for key, rest in instructions() if key == "RUN")
    assert "pip install ." not in all_runs and "pip install -e" not in all_runs
    final = by_stage["final"]
    assert [rest for key, rest in final if key == "COPY"] == ["--from=install /opt/nexor-mcp /opt/nexor-mcp"], \
        "the final image holds the installed environment only: no source, no wheel, no build tools"
    assert not [key for key, _ in final if key == "RUN" and "pip" in _]
    keys = [key for key, _ in final]
    assert keys.index("USER") > keys.index("COPY") and keys.index("USER") < keys.index("CMD"), \
        "the server runs as the non-root user"


def test_the_build_copies_every_file_the_wheel_is_built_from() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    copied = [source for rest in (r for k, r in stages()["wheel"] if k == "COPY") for source in rest.split()[:-1]]
    for needed in ("pyproject.toml", project["readme"], *project["license-files"]):
        assert needed in copied, f"{needed} is read when the wheel is built"
    assert "nexor_mcp" in copied


def test_no_secret_is_baked_into_the_image() -> None:
    for key, rest in instructions():
        if key in ("ENV", "ARG", "LABEL"):
            names = re.findall(r"([A-Za-z_][A-Za-z0-9_]*)=", rest) or [rest.split()[0]]
            assert not [name for name in names if any(word in name.upper() for word in SECRET_WORDS)], rest
    assert "nxr_live_" not in DOCKERFILE.read_text(encoding="utf-8")


def test_the_build_context_holds_what_pip_install_needs_and_nothing_else() -> None:
    rules = [line.strip() for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
             if line.strip() and not line.startswith("#")]

    def included(path: str) -> bool:
        keep = True
        for rule in rules:
            negated = rule.startswith("!")
            pattern = rule.lstrip("!").rstrip("/").removeprefix("**/")
            if fnmatch.fnmatch(path, pattern) or fnmatch.fnmatch(path, pattern + "/*") or any(
                fnmatch.fnmatch(part, pattern) for part in path.split("/")
            ):
                keep = negated
        return keep

    copied = [rest.split()[0] for key, rest in instructions() if key == "COPY" and "--from" not in rest]
    sources = [source for rest in (r for k, r in instructions() if k == "COPY" and "--from" not in r)
               for source in rest.split()[:-1]]
    assert copied and all(included(source) for source in sources), sources
    for needed in ("pyproject.toml", "README.md", "LICENSE", "nexor_mcp/__init__.py", "nexor_mcp/http.py"):
        assert included(needed), needed
    for excluded in (".git/config", ".venv/bin/python", "tests/test_sandbox.py", "config.json",
                     "nexor_mcp/__pycache__/http.cpython-311.pyc", ".env", "dist/nexor-mcp.mcpb",
                     "manifest.json", "scripts/build_mcpb.py"):
        assert not included(excluded), excluded


def test_the_healthcheck_passes_on_a_running_server_and_fails_without_one() -> None:
    port = free_port()
    with served_like_the_image(port) as process:
        # /healthz answers whatever the Host allow-list says: the check sends Host 127.0.0.1.
        assert run_healthcheck(port) == 0
    assert process.stdout is not None and process.stdout.read() == b"", "only the protocol may use stdout"
    assert run_healthcheck(port) != 0


# --- deploy/ -----------------------------------------------------------------------------------------


def load_yaml(path: Path) -> list[Any]:
    yaml = pytest.importorskip("yaml")
    return list(yaml.safe_load_all(path.read_text(encoding="utf-8")))


def test_compose_runs_identical_replicas_behind_a_load_balancer() -> None:
    (compose,) = load_yaml(ROOT / "deploy" / "compose.yaml")
    app = compose["services"]["nexor-mcp"]
    assert app["deploy"]["replicas"] >= 2
    assert app["build"]["context"] == ".." and app["build"]["dockerfile"] == "Dockerfile"
    assert app["environment"]["NEXOR_MCP_ALLOWED_HOSTS"]
    assert not [name for name in app["environment"] if any(word in name for word in SECRET_WORDS)]
    assert "ports" not in app, "replicas are reached only through the load balancer"
    lb = compose["services"]["lb"]
    assert lb["depends_on"]["nexor-mcp"]["condition"] == "service_healthy"
    nginx = (ROOT / "deploy" / "nginx.conf").read_text(encoding="utf-8")
    assert "server nexor-mcp:8000;" in nginx
    assert "non_idempotent" not in nginx.replace("Do not add `non_idempotent`", "")
    assert "proxy_set_header Host $http_host;" in nginx


def test_kubernetes_deployment_is_ready_on_healthz_and_matches_the_image() -> None:
    docs = {doc["kind"]: doc for doc in load_yaml(ROOT / "deploy" / "kubernetes.yaml")}
    assert {"Deployment", "Service"} <= set(docs)
    deployment = docs["Deployment"]
    assert deployment["spec"]["replicas"] >= 2
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert str(pod["securityContext"]["runAsUser"]) == last("USER").split(":")[0]
    (container,) = pod["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["ports"][0]["containerPort"] == int(last("EXPOSE"))
    env = {item["name"]: item.get("value") for item in container["env"]}
    assert env["NEXOR_MCP_ALLOWED_HOSTS"]
    inline = [name for name, value in env.items() if value is not None and any(word in name for word in SECRET_WORDS)]
    assert not inline, "a secret is written into the manifest instead of coming from a Secret"
    shared = next(item for item in container["env"] if item["name"] == "NEXOR_MCP_SECRET")
    assert shared["valueFrom"]["secretKeyRef"]["name"] == "nexor-mcp-confirm"
    assert docs["Service"]["spec"].get("sessionAffinity", "None") == "None"


def test_compose_gives_every_replica_one_postgresql_for_confirmations_and_the_journal() -> None:
    (compose,) = load_yaml(ROOT / "deploy" / "compose.yaml")
    app, database = compose["services"]["nexor-mcp"], compose["services"]["postgres"]
    url = app["environment"]["NEXOR_DATABASE_URL"]
    assert url == "postgresql://nexor:${NEXOR_DB_PASSWORD:?set NEXOR_DB_PASSWORD}@postgres:5432/nexor"
    assert database["environment"]["POSTGRES_PASSWORD"] == "${NEXOR_DB_PASSWORD:?set NEXOR_DB_PASSWORD}"
    assert app["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert "pg_isready" in " ".join(database["healthcheck"]["test"]) and "ports" not in database
    assert database["volumes"] == ["nexor-state:/var/lib/postgresql/data"] and "nexor-state" in compose["volumes"]


def test_kubernetes_takes_the_database_url_from_a_secret() -> None:
    docs = {doc["kind"]: doc for doc in load_yaml(ROOT / "deploy" / "kubernetes.yaml")}
    (container,) = docs["Deployment"]["spec"]["template"]["spec"]["containers"]
    url = next(item for item in container["env"] if item["name"] == "NEXOR_DATABASE_URL")
    assert "value" not in url and url["valueFrom"]["secretKeyRef"] == {"name": "nexor-mcp-database", "key": "url"}


def test_the_conformance_baseline_lists_each_scenario_once() -> None:
    text = (ROOT / "conformance" / "expected-failures.yml").read_text(encoding="utf-8")
    entries = re.findall(r"^  - ([a-z0-9-]+)\s+# \S", text, flags=re.MULTILINE)
    assert entries and len(entries) == len(set(entries)), "one line per scenario, each with a reason"
    assert len(entries) == len(re.findall(r"^  - ", text, flags=re.MULTILINE))
    for passing in ("server-initialize", "ping", "tools-list", "dns-rebinding-protection"):
        assert passing not in entries
