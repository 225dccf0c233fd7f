"""The release files: package metadata, the one version, manifest.json (Claude Desktop bundle),
server.json (MCP registry) and the names the registry checks ownership by.

Building and installing them is .ci/run's part (python -m build, twine check, scripts/smoke_install.py,
mcpb validate/pack); these tests keep the files in step with the code and with each other."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from nexor_mcp import __version__
from nexor_mcp.config import DEFAULT_BASE_URL, DEFAULT_TOOLS, ENV_VARS
from nexor_mcp.tools import ALL_TOOLS
from scripts.build_mcpb import first_sentence, manifest_tools

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = ROOT / "tests" / "schemas" / "server.schema.2025-12-11.json"
SCHEMA_URL = "https://static.modelcontextprotocol.io/schemas/2025-12-11/server.schema.json"


def load(name: str) -> Any:
    return json.loads((ROOT / name).read_text(encoding="utf-8"))


def pyproject() -> dict[str, Any]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def registry_validator() -> jsonschema.Draft7Validator:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    return jsonschema.Draft7Validator(schema, format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER)


# --- the package ------------------------------------------------------------------------------------


def test_the_version_is_declared_once_in_the_package() -> None:
    project = pyproject()["project"]
    assert "version" not in project and "version" in project["dynamic"]
    assert pyproject()["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "nexor_mcp.__version__"}
    assert re.fullmatch(r"\d+\.\d+\.\d+", __version__), "an exact release version (the registry rejects ranges)"


def test_every_release_file_carries_that_version() -> None:
    manifest, server = load("manifest.json"), load("server.json")
    assert manifest["version"] == __version__
    assert server["version"] == __version__
    pypi = [package for package in server["packages"] if package["registryType"] == "pypi"]
    oci = [package for package in server["packages"] if package["registryType"] == "oci"]
    assert [package["version"] for package in pypi] == [__version__]
    assert [package["identifier"].rpartition(":")[2] for package in oci] == [__version__]
    kubernetes = (ROOT / "deploy" / "kubernetes.yaml").read_text(encoding="utf-8")
    assert re.findall(r"image: \S+:(\S+)", kubernetes) == [__version__]


def test_the_metadata_is_release_quality() -> None:
    project = pyproject()["project"]
    assert project["license"] == "MIT" and project["license-files"] == ["LICENSE"]
    assert (ROOT / "LICENSE").read_text(encoding="utf-8").startswith("MIT License\n")
    assert not [c for c in project["classifiers"] if c.startswith("License ::")], "PEP 639: the expression only"
    assert "Programming Language :: Python :: 3.11" in project["classifiers"]
    assert project["requires-python"] == ">=3.11"
    assert {"mcp", "nexor"} <= set(project["keywords"])
    assert project["readme"] == "README.md" and project["scripts"] == {"nexor-mcp": "nexor_mcp.cli:main"}
    # PyPI refuses an upload whose project URL is not absolute http(s) (relative links fail it).
    assert project["urls"] and all(re.match(r"https?://", url) for url in project["urls"].values())


# --- manifest.json: the Claude Desktop bundle --------------------------------------------------------


def test_the_manifest_lists_every_tool_as_the_code_declares_it() -> None:
    manifest = load("manifest.json")
    assert manifest["tools"] == manifest_tools(), "run: python scripts/build_mcpb.py --update-manifest"
    assert [tool["name"] for tool in manifest["tools"]] == [spec.name for spec in ALL_TOOLS]
    assert manifest["tools_generated"] is False
    for tool, spec in zip(manifest["tools"], ALL_TOOLS, strict=True):
        assert tool["description"].startswith(first_sentence(spec.description))
        assert ("Off unless" in tool["description"]) == (spec.group.value not in DEFAULT_TOOLS)


def test_first_sentence_stops_at_the_first_full_stop() -> None:
    assert first_sentence("Update fields of one lead. Send lead_id\nplus the rest.") == "Update fields of one lead."
    assert first_sentence("Read one lead: a, b, c.") == "Read one lead: a, b, c."
    assert first_sentence("Use e.g. this") == "Use e.g. this"


def test_the_manifest_runs_the_bundled_server_with_the_users_settings() -> None:
    manifest = load("manifest.json")
    assert manifest["manifest_version"] == "0.3" and manifest["name"] == "nexor-mcp"
    assert manifest["license"] == "MIT"
    server = manifest["server"]
    assert server["type"] == "python" and server["entry_point"] == "server/main.py"
    assert server["mcp_config"]["args"] == ["${__dirname}/server/main.py"]
    assert (ROOT / "scripts" / "mcpb" / "server_main.py").is_file(), "build_mcpb.py copies it to server/main.py"
    env = server["mcp_config"]["env"]
    assert env["NEXOR_API_KEY"] == "${user_config.api_key}"
    used = set(re.findall(r"\$\{user_config\.(\w+)\}", json.dumps(server)))
    assert used == set(manifest["user_config"]), "every option is passed on, and only declared ones"
    assert set(env) - {"PYTHONIOENCODING"} <= set(ENV_VARS.values()), "only variables the server reads"
    assert manifest["compatibility"]["runtimes"]["python"] == ">=3.11"


def test_the_key_is_a_required_sensitive_option_and_the_defaults_match_the_servers() -> None:
    options = load("manifest.json")["user_config"]
    assert options["api_key"]["sensitive"] is True and options["api_key"]["required"] is True
    assert "default" not in options["api_key"]
    assert [name for name, option in options.items() if option.get("sensitive")] == ["api_key"]
    assert options["base_url"]["default"] == DEFAULT_BASE_URL
    assert options["tools"]["default"] == ",".join(DEFAULT_TOOLS)
    assert options["read_only"] == {**options["read_only"], "type": "boolean", "default": False}


def test_the_mcpb_cli_and_node_are_pinned_by_the_lock_file() -> None:
    package = load("scripts/mcpb/package.json")
    lock = load("scripts/mcpb/package-lock.json")
    for name, version in package["dependencies"].items():
        assert re.fullmatch(r"\d+\.\d+\.\d+", version), f"{name} must be pinned exactly"
        assert lock["packages"][f"node_modules/{name}"]["version"] == version
    assert package["dependencies"]["node"].startswith("22.")


# --- server.json: the MCP registry entry -------------------------------------------------------------


def test_server_json_validates_against_the_registrys_published_schema() -> None:
    server = load("server.json")
    assert server["$schema"] == SCHEMA_URL
    assert json.loads(SCHEMA.read_text(encoding="utf-8"))["$id"] == SCHEMA_URL
    errors = [error.message for error in registry_validator().iter_errors(server)]
    assert errors == []


@pytest.mark.parametrize(
    "breakage",
    [
        lambda doc: doc.update(name="nexor-mcp"),  # no namespace
        lambda doc: doc.update(description="x" * 101),
        lambda doc: doc["packages"][0].update(version="latest"),
        lambda doc: doc["packages"][0].pop("transport"),
        lambda doc: doc["packages"][0]["environmentVariables"][0].update(isSecret="yes"),
    ],
)
def test_the_schema_check_catches_a_broken_entry(breakage: Any) -> None:
    server = load("server.json")
    breakage(server)
    assert list(registry_validator().iter_errors(server)), "the vendored schema must reject this"


def test_server_json_describes_the_pypi_package_over_stdio_with_the_key_secret() -> None:
    (pypi,) = [package for package in load("server.json")["packages"] if package["registryType"] == "pypi"]
    assert pypi["identifier"] == pyproject()["project"]["name"]
    assert pypi["transport"] == {"type": "stdio"} and pypi["runtimeHint"] == "uvx"
    variables = {variable["name"]: variable for variable in pypi["environmentVariables"]}
    assert variables["NEXOR_API_KEY"]["isSecret"] is True and variables["NEXOR_API_KEY"]["isRequired"] is True
    # The key, and the database URL (it may hold the database's password): nothing else is a secret.
    secret = [name for name, variable in variables.items() if variable.get("isSecret")]
    assert secret == ["NEXOR_API_KEY", "NEXOR_DATABASE_URL"]
    assert set(variables) <= set(ENV_VARS.values())
    assert variables["NEXOR_BASE_URL"]["default"] == DEFAULT_BASE_URL


def test_server_json_describes_the_container_in_hosted_mode() -> None:
    (oci,) = [package for package in load("server.json")["packages"] if package["registryType"] == "oci"]
    assert oci["transport"]["type"] == "streamable-http"
    assert oci["transport"]["url"].endswith("/mcp")
    (header,) = oci["transport"]["headers"]
    assert header["name"] == "X-API-Key" and header["isSecret"] is True
    variables = {variable["name"] for variable in oci["environmentVariables"]}
    assert "NEXOR_API_KEY" not in variables, "multi-tenant: the key comes with each request, never baked in"
    assert re.fullmatch(r"(ghcr\.io|docker\.io|quay\.io)/[\w.-]+/nexor-mcp:[\w.-]+", oci["identifier"])


def test_the_registry_name_is_the_same_wherever_the_registry_checks_ownership() -> None:
    name = load("server.json")["name"]
    assert re.fullmatch(r"io\.github\.[\w-]+/nexor-mcp", name)
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert re.findall(r"<!-- mcp-name: (\S+) -->", readme) == [name], "PyPI ownership: the README marker"
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert re.findall(r'io\.modelcontextprotocol\.server\.name="([^"]+)"', dockerfile) == [name], "OCI: the label"
