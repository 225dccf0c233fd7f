"""Install nexor-mcp with its test extras into a virtual environment and run the test suite.

    python3 scripts/test.py [pytest arguments]

Inside an active virtual environment it installs into that one; otherwise it creates (once) and
uses `.venv` in the repository. Then it runs `python -m pytest -q` with any extra arguments. It
needs nothing but Python 3.11+, so a fresh clone reaches passing tests with this one command.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _venv_python() -> str:
    if sys.prefix != sys.base_prefix:  # already inside a virtual environment
        return sys.executable
    home = ROOT / ".venv"
    python = home / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    if not python.exists():
        print(f"creating {home}", flush=True)
        venv.create(home, with_pip=True)
    return str(python)


def _ensure_postgresql() -> None:
    """The database tests run on a real PostgreSQL: install it when it is missing and we may."""
    if glob.glob("/usr/lib/postgresql/*/bin/initdb") or shutil.which("initdb"):
        return
    if os.name == "posix" and os.geteuid() == 0 and shutil.which("apt-get"):
        print("installing postgresql (the database tests need it)", flush=True)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        install = ["apt-get", "install", "-y", "--no-install-recommends", "postgresql"]
        if subprocess.run(install, env=env, check=False).returncode != 0:
            subprocess.run(["apt-get", "update"], env=env, check=False)
            subprocess.run(install, env=env, check=False)
        return
    print("WARNING: PostgreSQL is not installed, so the database tests will FAIL: install it first "
          "(`sudo apt-get install -y postgresql`, or `brew install postgresql`)", file=sys.stderr, flush=True)


def _ensure_browser() -> None:
    """The approval page's browser tests drive a real headless Chromium: install it (and
    chromedriver) when either is missing and we may."""
    if (os.environ.get("NEXOR_TEST_CHROMIUM") or shutil.which("chromium")) and (
        os.environ.get("NEXOR_TEST_CHROMEDRIVER") or shutil.which("chromedriver")
    ):
        return
    if os.name == "posix" and os.geteuid() == 0 and shutil.which("apt-get"):
        print("installing chromium and chromium-driver (the approval page's browser tests need them)", flush=True)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        install = ["apt-get", "install", "-y", "--no-install-recommends", "chromium", "chromium-driver"]
        if subprocess.run(install, env=env, check=False).returncode != 0:
            subprocess.run(["apt-get", "update"], env=env, check=False)
            subprocess.run(install, env=env, check=False)
        return
    print("WARNING: chromium or chromedriver is not installed, so the approval page's browser tests will FAIL: "
          "install them first (`sudo apt-get install -y chromium chromium-driver`), or name them with "
          "NEXOR_TEST_CHROMIUM and NEXOR_TEST_CHROMEDRIVER", file=sys.stderr, flush=True)


def main(argv: list[str]) -> int:
    if sys.version_info < (3, 11):  # noqa: UP036 - python3 may be older than the project needs
        print(f"nexor-mcp needs Python 3.11 or newer; this is {sys.version.split()[0]}", file=sys.stderr)
        return 2
    python = _venv_python()
    install = [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-e", ".[test]"]
    if subprocess.run(install, cwd=ROOT, check=False).returncode != 0:
        print("installing nexor-mcp with its test extras failed (see pip's output above)", file=sys.stderr)
        return 1
    _ensure_postgresql()
    _ensure_browser()
    return subprocess.run([python, "-m", "pytest", "-q", *argv], cwd=ROOT, check=False).returncode


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
