"""Install nexor-mcp the ways users do, with nothing else from this repository, and use it.

    python scripts/smoke_install.py --wheel dist/nexor_mcp-0.1.0-py3-none-any.whl [--uvx] [--mcpb dist/nexor-mcp.mcpb]

- `--wheel`: a fresh virtual environment in a temporary folder, `pip install` of the wheel alone (its
  dependencies from the package index), then, from a folder outside the repository: `nexor-mcp
  --version`, `nexor-mcp demo`, `nexor-mcp --sandbox check`, and one MCP session over stdio with the
  installed `nexor-mcp --sandbox` (initialize, tools/list, tools/call get_lead).
- `--uvx`: `uvx --from WHEEL nexor-mcp demo` and the same stdio session through uvx (uv must be on
  PATH; its cache goes to the temporary folder, so everything is fetched anew).
- `--mcpb`: unpacks the Claude Desktop bundle, builds the command and environment from its
  manifest.json as Claude Desktop does (`${__dirname}`, `${user_config.*}`), runs it with a Python
  that has no packages of its own (so only the bundle's server/lib is used), and runs the same session
  against a sandbox Nexor API, with the bundle's user_config pointing at it.

Standard library only. Exit status 0 when every step passed; each step prints one line.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import re
import subprocess
import sys
import tempfile
import threading
import time
import venv
import zipfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

SANDBOX_KEY = "nxr_live_sandbox_demo_key"
DEMO_LEAD = "3f2b8c1e-9a4d-4e6f-8b7a-1c2d3e4f5a6b"
STEP_SECONDS = 180


class SmokeFailure(Exception):
    pass


def bin_path(env_dir: Path, name: str) -> Path:
    return env_dir / ("Scripts" if os.name == "nt" else "bin") / (name + (".exe" if os.name == "nt" else ""))


def step(label: str, argv: Sequence[str], *, cwd: Path, env: dict[str, str] | None = None,
         expect: str | None = None) -> str:
    started = time.monotonic()
    result = subprocess.run(list(argv), cwd=cwd, env=env, stdin=subprocess.DEVNULL, capture_output=True,
                            text=True, timeout=STEP_SECONDS, check=False)
    if result.returncode != 0 or (expect is not None and expect not in result.stdout):
        raise SmokeFailure(f"{label}: exit {result.returncode}, expected {expect!r} in stdout\n"
                           f"--- stdout\n{result.stdout[-3000:]}\n--- stderr\n{result.stderr[-3000:]}")
    print(f"ok  {label} ({time.monotonic() - started:.1f} s)", flush=True)
    return result.stdout


class Session:
    """A raw JSON-RPC session with a server process over stdio: one JSON object per line."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self.lines: queue.Queue[str | None] = queue.Queue()
        assert process.stdout is not None
        threading.Thread(target=self._read, args=(process.stdout,), daemon=True).start()
        self.next_id = 0

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self.lines.put(line)
        self.lines.put(None)

    def send(self, message: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(message) + "\n")
        self.process.stdin.flush()

    def request(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        self.next_id += 1
        self.send({"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": params})
        deadline = time.monotonic() + 60
        while True:
            try:
                line = self.lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                raise SmokeFailure(f"no answer to {method} within 60 s") from None
            if line is None:
                raise SmokeFailure(f"the server closed stdout before answering {method}")
            message = json.loads(line)  # anything on stdout that is not JSON-RPC fails here
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise SmokeFailure(f"{method} failed: {message['error']}")
                result: dict[str, Any] = message["result"]
                return result


def stdio_session(label: str, argv: Sequence[str], *, cwd: Path, env: dict[str, str]) -> None:
    """initialize, tools/list, tools/call get_lead; then EOF on stdin must end the server with status 0."""
    started = time.monotonic()
    with tempfile.TemporaryFile("w+", encoding="utf-8") as errlog:
        process = subprocess.Popen(list(argv), cwd=cwd, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                   stderr=errlog, text=True, encoding="utf-8")
        try:
            session = Session(process)
            init = session.request("initialize", {"protocolVersion": "2025-11-25", "capabilities": {},
                                                  "clientInfo": {"name": "smoke-install", "version": "1"}})
            if init.get("serverInfo", {}).get("name") != "nexor-mcp":
                raise SmokeFailure(f"unexpected initialize result: {init}")
            session.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
            tools = [tool["name"] for tool in session.request("tools/list", {})["tools"]]
            if "get_lead" not in tools:
                raise SmokeFailure(f"tools/list has no get_lead: {tools}")
            result = session.request("tools/call", {"name": "get_lead", "arguments": {"lead_id": DEMO_LEAD}})
            text = "".join(block.get("text", "") for block in result.get("content", []))
            if result.get("isError") or DEMO_LEAD not in text:
                raise SmokeFailure(f"get_lead did not return the demo lead: {result}")
            assert process.stdin is not None
            process.stdin.close()
            status = process.wait(timeout=30)
            if status != 0:
                raise SmokeFailure(f"the server exited with {status} after EOF")
        except BaseException:
            process.kill()
            process.wait()
            errlog.seek(0)
            print(f"--- {label}: server stderr\n{errlog.read()[-3000:]}", file=sys.stderr)
            raise
    print(f"ok  {label}: initialize, tools/list ({len(tools)} tools), tools/call get_lead "
          f"({time.monotonic() - started:.1f} s)", flush=True)


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without any NEXOR_* setting or virtual environment of the caller's."""
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("NEXOR_", "PYTHON")) and key != "VIRTUAL_ENV"}
    return {**env, **extra}


def check_wheel(wheel: Path, work: Path) -> Path:
    env_dir = work / "venv"
    venv.create(env_dir, with_pip=True)
    step("pip install the wheel into a fresh venv",
         [str(bin_path(env_dir, "python")), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
          str(wheel)], cwd=work, env=clean_env())
    version = re.match(r"nexor_mcp-([^-]+)-", wheel.name)
    exe = str(bin_path(env_dir, "nexor-mcp"))
    step("nexor-mcp --version", [exe, "--version"], cwd=work, env=clean_env(),
         expect=f"nexor-mcp {version.group(1) if version else ''}")
    step("nexor-mcp demo", [exe, "demo"], cwd=work, env=clean_env(), expect=DEMO_LEAD)
    step("nexor-mcp --sandbox check", [exe, "--sandbox", "check"], cwd=work, env=clean_env(), expect="OK:")
    stdio_session("stdio session with the installed nexor-mcp --sandbox", [exe, "--sandbox"], cwd=work,
                  env=clean_env())
    return env_dir


def check_uvx(wheel: Path, work: Path) -> None:
    env = clean_env(UV_CACHE_DIR=str(work / "uv-cache"), UV_TOOL_DIR=str(work / "uv-tools"),
                    UV_NO_CONFIG="1", UV_PYTHON_DOWNLOADS="never")
    step("uvx --from WHEEL nexor-mcp demo", ["uvx", "--from", str(wheel), "nexor-mcp", "demo"], cwd=work, env=env,
         expect=DEMO_LEAD)
    stdio_session("stdio session through uvx --from WHEEL nexor-mcp --sandbox",
                  ["uvx", "--from", str(wheel), "nexor-mcp", "--sandbox"], cwd=work, env=env)


@contextmanager
def sandbox_api(env_dir: Path, work: Path) -> Iterator[str]:
    """`nexor-mcp sandbox --port 0` from the installed wheel; yields its base URL."""
    process = subprocess.Popen([str(bin_path(env_dir, "nexor-mcp")), "sandbox", "--port", "0"], cwd=work,
                               env=clean_env(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True)
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        match = re.search(r"listening on (\S+)", first)
        if not match:
            raise SmokeFailure(f"the sandbox did not start: {first!r}")
        yield match.group(1)
    finally:
        process.terminate()
        process.wait(timeout=15)


def substitute(value: str, dirname: Path, user_config: dict[str, str]) -> str:
    value = value.replace("${__dirname}", str(dirname))
    return re.sub(r"\$\{user_config\.([A-Za-z0-9_]+)\}", lambda m: user_config[m.group(1)], value)


def check_mcpb(bundle: Path, env_dir: Path, work: Path) -> None:
    unpacked = work / "mcpb"
    with zipfile.ZipFile(bundle) as archive:
        archive.extractall(unpacked)
    manifest = json.loads((unpacked / "manifest.json").read_text(encoding="utf-8"))
    config = manifest["server"]["mcp_config"]
    bare = work / "bare-python"  # no packages of its own: only the bundle's server/lib can be used
    venv.create(bare, with_pip=False)
    with sandbox_api(env_dir, work) as base_url:
        user_config = {name: str(option.get("default", "")).lower() if isinstance(option.get("default"), bool)
                       else str(option.get("default", "")) for name, option in manifest["user_config"].items()}
        user_config.update(api_key=SANDBOX_KEY, base_url=base_url)
        argv = [str(bin_path(bare, "python")), *(substitute(arg, unpacked, user_config) for arg in config["args"])]
        env = clean_env(**{name: substitute(value, unpacked, user_config) for name, value in config["env"].items()})
        print(f"ok  unpacked {bundle.name}: {config['command']} {' '.join(config['args'])} "
              f"with {', '.join(sorted(config['env']))}", flush=True)
        stdio_session("stdio session with the bundle's server, configured as Claude Desktop would", argv, cwd=work,
                      env=env)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--wheel", required=True, help="the nexor-mcp wheel to install")
    parser.add_argument("--uvx", action="store_true", help="also run it with uvx --from WHEEL")
    parser.add_argument("--mcpb", help="also unpack this .mcpb bundle and run its server")
    args = parser.parse_args(argv)
    wheel = Path(args.wheel).resolve()
    with tempfile.TemporaryDirectory(prefix="nexor-smoke-") as scratch:
        work = Path(scratch)
        try:
            env_dir = check_wheel(wheel, work)
            if args.uvx:
                check_uvx(wheel, work)
            if args.mcpb:
                check_mcpb(Path(args.mcpb).resolve(), env_dir, work)
        except (SmokeFailure, subprocess.TimeoutExpired) as exc:
            print(f"FAILED {exc}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
