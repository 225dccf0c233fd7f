"""Build the Claude Desktop bundle `nexor-mcp.mcpb` from the wheel and its dependencies.

    python -m build                                   # dist/nexor_mcp-<version>-py3-none-any.whl
    python scripts/build_mcpb.py                      # dist/nexor-mcp.mcpb for this machine
    python scripts/build_mcpb.py --target macos-arm64 --python 3.12 --out dist/nexor-mcp-macos-arm64-py312.mcpb
    python scripts/build_mcpb.py --update-manifest    # rewrite manifest.json's version and tools from the code

The bundle is MCPB server type "python": manifest.json, LICENSE, `server/main.py` and every package
the server needs in `server/lib` (`pip install --target`, from the wheel). Two of those packages
(pydantic-core, cffi) are compiled for one platform and one Python minor version, so a bundle runs on
the platform and Python it was built for; `--target`/`--python` build it for another one (pip fetches
that platform's wheels), and the bundle's manifest says which (`compatibility`).

`mcpb` (the `@anthropic-ai/mcpb` CLI, pinned in scripts/mcpb/package-lock.json) validates the
manifest and packs the folder: put it on PATH (`npm ci --prefix DIR` in scripts/mcpb, then
DIR/node_modules/.bin), or pass `--mcpb PATH`.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from nexor_mcp import __version__  # noqa: E402 - the repository's package, whatever is installed
from nexor_mcp.tools import ALL_TOOLS, DEFAULT_SELECTION  # noqa: E402

MANIFEST = ROOT / "manifest.json"
# --target NAME: (MCPB platform, pip --platform tags); the tags pip accepts for that platform's wheels.
TARGETS: dict[str, tuple[str, tuple[str, ...]]] = {
    "linux-x86_64": ("linux", ("manylinux2014_x86_64", "manylinux_2_17_x86_64", "manylinux_2_28_x86_64")),
    "linux-aarch64": ("linux", ("manylinux2014_aarch64", "manylinux_2_17_aarch64", "manylinux_2_28_aarch64")),
    "macos-arm64": ("darwin", ("macosx_11_0_arm64", "macosx_12_0_arm64")),
    "macos-x86_64": ("darwin", ("macosx_10_12_x86_64", "macosx_10_13_x86_64")),
    "windows-x86_64": ("win32", ("win_amd64",)),
}


def first_sentence(text: str) -> str:
    """The first sentence of a tool description: what Claude Desktop lists for each tool."""
    flat = " ".join(text.split())
    match = re.search(r"(?<!e\.g\.)(?<!i\.e\.)(?<=[.!?])\s", flat)
    return flat[: match.start()] if match else flat


def manifest_tools() -> list[dict[str, str]]:
    """manifest.json's `tools`, derived from the declarations: name, and the description's first
    sentence, saying which group must be enabled for a tool that is off by default."""
    tools = []
    for spec in ALL_TOOLS:
        description = first_sentence(spec.description)
        if spec.group.value not in DEFAULT_SELECTION:
            description += f" (Off unless Tool groups includes {spec.group.value}.)"
        tools.append({"name": spec.name, "description": description})
    return tools


def expected_manifest(current: dict[str, Any]) -> dict[str, Any]:
    """`current` with the parts that derive from the code (version, tools) brought up to date."""
    return {**current, "version": __version__, "tools": manifest_tools()}


def render(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def update_manifest() -> bool:
    """Rewrite manifest.json's derived parts; True if it changed."""
    current = json.loads(MANIFEST.read_text(encoding="utf-8"))
    text = render(expected_manifest(current))
    if MANIFEST.read_text(encoding="utf-8") == text:
        return False
    MANIFEST.write_text(text, encoding="utf-8")
    return True


def host_target() -> str:
    import platform

    machine = platform.machine().lower()
    arch = {"amd64": "x86_64", "x86_64": "x86_64", "arm64": "arm64", "aarch64": "aarch64"}.get(machine, machine)
    if sys.platform == "darwin":
        return f"macos-{'arm64' if arch in ('arm64', 'aarch64') else 'x86_64'}"
    if sys.platform == "win32":
        return "windows-x86_64"
    return f"linux-{'aarch64' if arch in ('arm64', 'aarch64') else 'x86_64'}"


def bundle_manifest(target: str, python: str) -> dict[str, Any]:
    """The repository's manifest, narrowed to what this bundle's compiled packages run on."""
    manifest: dict[str, Any] = json.loads(MANIFEST.read_text(encoding="utf-8"))
    major, minor = (int(part) for part in python.split("."))
    manifest["compatibility"] = {
        **manifest.get("compatibility", {}),
        "platforms": [TARGETS[target][0]],
        "runtimes": {"python": f">={major}.{minor},<{major}.{minor + 1}"},
    }
    return manifest


def find_wheel(given: str | None) -> Path:
    if given:
        wheel = Path(given)
    else:
        wheels = sorted((ROOT / "dist").glob(f"nexor_mcp-{__version__}-*.whl"))
        if not wheels:
            raise SystemExit(f"no dist/nexor_mcp-{__version__}-*.whl: build it first with `python -m build`")
        wheel = wheels[-1]
    if not wheel.is_file():
        raise SystemExit(f"no such wheel: {wheel}")
    return wheel.resolve()


def run(argv: list[str], **kwargs: Any) -> None:
    print("+ " + " ".join(argv), flush=True)
    subprocess.run(argv, check=True, **kwargs)


def build(wheel: Path, out: Path, target: str, python: str, mcpb: str) -> Path:
    with tempfile.TemporaryDirectory(prefix="nexor-mcpb-") as scratch:
        staging = Path(scratch) / "bundle"
        lib = staging / "server" / "lib"
        lib.mkdir(parents=True)
        (staging / "manifest.json").write_text(render(bundle_manifest(target, python)), encoding="utf-8")
        shutil.copy(ROOT / "LICENSE", staging / "LICENSE")
        shutil.copy(ROOT / "scripts" / "mcpb" / "server_main.py", staging / "server" / "main.py")
        install = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                   "--no-compile", "--target", str(lib)]
        if target != host_target() or python != f"{sys.version_info.major}.{sys.version_info.minor}":
            install += ["--only-binary=:all:", "--implementation", "cp", "--python-version", python]
            for tag in TARGETS[target][1]:
                install += ["--platform", tag]
        run([*install, str(wheel)])
        shutil.rmtree(lib / "bin", ignore_errors=True)  # console scripts with this machine's paths in them
        for cache in lib.rglob("__pycache__"):
            shutil.rmtree(cache, ignore_errors=True)
        run([mcpb, "validate", str(staging / "manifest.json")])
        out.parent.mkdir(parents=True, exist_ok=True)
        out.unlink(missing_ok=True)
        run([mcpb, "pack", str(staging), str(out)])
    return out


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--wheel", help="the nexor-mcp wheel (default: dist/nexor_mcp-<version>-*.whl)")
    parser.add_argument("--out", default=str(ROOT / "dist" / "nexor-mcp.mcpb"), help="the bundle to write")
    parser.add_argument("--target", choices=sorted(TARGETS), default=host_target(),
                        help="platform the bundle is for (default: this machine's)")
    parser.add_argument("--python", default=f"{sys.version_info.major}.{sys.version_info.minor}",
                        help="Python minor version the bundle is for, e.g. 3.12 (default: this one's)")
    parser.add_argument("--mcpb", default="mcpb", help="the mcpb CLI (default: mcpb on PATH)")
    parser.add_argument("--update-manifest", action="store_true",
                        help="only rewrite manifest.json's version and tools from the code, then stop")
    args = parser.parse_args(argv)
    if args.update_manifest:
        print("manifest.json updated" if update_manifest() else "manifest.json is up to date")
        return 0
    if not re.fullmatch(r"3\.1[1-9]", args.python):
        parser.error(f"--python must be 3.11 or newer, like 3.12; got {args.python!r}")
    if shutil.which(args.mcpb) is None:
        parser.error(f"{args.mcpb!r} not found: install the pinned CLI with `npm ci --prefix DIR` from "
                     "scripts/mcpb and put DIR/node_modules/.bin on PATH, or pass --mcpb")
    out = build(find_wheel(args.wheel), Path(args.out), args.target, args.python, args.mcpb)
    print(f"built {out} ({out.stat().st_size / 1e6:.1f} MB) for {args.target}, Python {args.python}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
