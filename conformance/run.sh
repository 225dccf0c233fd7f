#!/usr/bin/env bash
# The official MCP conformance suite (@modelcontextprotocol/conformance, server scenarios) against
# `nexor-mcp http`, with the sandbox as its Nexor API.
#
#     bash conformance/run.sh            # needs the project's Python environment, npm, the npm registry
#
# - Python is the project's environment, never the system python3 (whose packages may be too old):
#   $PYTHON if set, else the active virtual environment's python (CI activates one), else the
#   clone's .venv (`python3 scripts/test.py` creates it). It must import nexor_mcp, checked first.
# - Node 22 and the suite come from the npm registry at the versions pinned in
#   conformance/package-lock.json (`npm ci`), into a temporary folder with its own npm cache; the
#   system Node (20 here) is not used by the suite, and nothing is cached outside that folder.
# - The suite's client cannot send our X-API-Key header, so the server runs single-tenant:
#   NEXOR_API_KEY is the sandbox key and no access token is set, which nexor-mcp allows only on
#   loopback. Every tool group is enabled, so `tools-list` checks all the published tools.
# - It runs twice: one process, then `--workers 2` (requests spread over processes, as over replicas).
# - conformance/expected-failures.yml lists the scenarios that need the suite's own fixtures (tools
#   like test_image_content, resources, prompts, sampling). The suite exits 1 on any other failure
#   and on a baseline entry that now passes (stale), and so does this script.
# - Bounded: npm ci gets CONFORMANCE_INSTALL_SECONDS (default 300), each suite run 120 s, each
#   process start 30 s, and a process that exits while starting fails the run at once. Servers'
#   stderr goes to the temp folder and is shown only on failure.
set -euo pipefail
cd "$(dirname "$0")/.."

install_seconds="${CONFORMANCE_INSTALL_SECONDS:-300}"
key="nxr_live_sandbox_demo_key"
baseline="${CONFORMANCE_BASELINE:-conformance/expected-failures.yml}"

work="$(mktemp -d)"
pids=()
cleanup() {
    local pid
    for pid in "${pids[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 141' PIPE
trap 'exit 143' TERM

# --- the project's Python, checked before anything is installed ------------------------------------
if [[ -n "${PYTHON:-}" ]]; then
    python="$PYTHON"
    python_from="PYTHON"
elif [[ -n "${VIRTUAL_ENV:-}" && -x "$VIRTUAL_ENV/bin/python" ]]; then
    python="$VIRTUAL_ENV/bin/python"
    python_from="the active virtual environment"
elif [[ -x .venv/bin/python ]]; then
    python="$PWD/.venv/bin/python"
    python_from="the clone's .venv"
else
    echo "conformance: no project environment: activate a virtual environment with nexor-mcp installed," \
        "or run \`python3 scripts/test.py\` once (it creates .venv), or set PYTHON to a python that has it" >&2
    exit 1
fi
if ! import_error="$("$python" -c 'import nexor_mcp.cli, nexor_mcp.http, nexor_mcp.sandbox.runner' 2>&1)"; then
    printf '%s\n' "$import_error" | tail -n 5 >&2
    echo "conformance: $python (from $python_from) cannot run nexor-mcp (see above): install it into that" \
        "environment (\`$python -m pip install -e .\`), or use the .venv that \`python3 scripts/test.py\` creates" >&2
    exit 1
fi
echo "conformance: python $("$python" -c 'import platform; print(platform.python_version())') from $python_from ($python)"

# --- Node 22 and the suite, pinned, into the temp folder ------------------------------------------
if ! command -v npm > /dev/null; then
    echo "conformance: npm is needed (any version) to install Node 22 and the suite from the npm registry" >&2
    exit 1
fi
echo "conformance: installing Node and @modelcontextprotocol/conformance (pinned by package-lock.json)"
mkdir -p "$work/tools"
cp conformance/package.json conformance/package-lock.json "$work/tools/"
start=$SECONDS
if ! npm_config_cache="$work/npm-cache" npm_config_update_notifier=false npm_config_audit=false \
    npm_config_fund=false npm_config_loglevel=error \
    timeout "$install_seconds" npm ci --prefix "$work/tools" > "$work/npm.log" 2>&1; then
    cat "$work/npm.log" >&2
    echo "conformance: npm ci failed or took more than ${install_seconds}s" >&2
    exit 1
fi
export PATH="$work/tools/node_modules/.bin:$PATH"
node_version="$(node --version)"
case "$node_version" in
    v2[2-9].* | v[3-9][0-9].*) ;;
    *) echo "conformance: the suite needs Node >= 22, got $node_version from $(command -v node)" >&2; exit 1 ;;
esac
install_took=$((SECONDS - start))
echo "conformance: node $node_version, suite $(conformance --version) (installed in ${install_took}s)"

# --- helpers ---------------------------------------------------------------------------------------
free_port() {
    "$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_until() {  # wait_until WHAT PID LOG COMMAND...: until COMMAND succeeds; fail at once if PID exits, or after 30 s
    local what="$1" pid="$2" log="$3" deadline=$((SECONDS + 30)) status=0
    shift 3
    until "$@" 2>/dev/null; do
        if ! kill -0 "$pid" 2>/dev/null; then
            wait "$pid" 2>/dev/null || status=$?
            cat "$log" >&2
            echo "conformance: $what exited while starting (exit status $status; its output is above)" >&2
            exit 1
        fi
        if ((SECONDS >= deadline)); then
            cat "$log" >&2
            echo "conformance: $what did not become ready within 30s" >&2
            exit 1
        fi
        sleep 0.1
    done
}

answers_200() {  # answers_200 URL
    "$python" -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=1)' "$1"
}

# --- the sandbox -----------------------------------------------------------------------------------
sandbox_port="$(free_port)"
"$python" -m nexor_mcp sandbox --port "$sandbox_port" < /dev/null > "$work/sandbox.log" 2>&1 &
sandbox_pid="$!"
pids+=("$sandbox_pid")
base_url="http://127.0.0.1:$sandbox_port/api/public"
# The sandbox has no health route: its first stdout line says it is listening.
wait_until "the sandbox" "$sandbox_pid" "$work/sandbox.log" grep -q "listening on" "$work/sandbox.log"

# The per-scenario progress is long: show the summary (in full once) and the baseline verdict, with
# the colours stripped and "N passed, N failed" reworded, since CI reads such a line as a test
# runner's closing count.
full_summary=yes
summary() {  # summary LOG yes|no
    local text
    text="$(sed -n '/=== SUMMARY ===/,$p' "$1" | sed -E -e $'s/\x1b\\[[0-9;]*m//g' \
        -e 's/([0-9]+) passed, ([0-9]+) failed/\1 ok, \2 not ok/')"
    if [[ "$2" == yes ]]; then
        printf '%s\n' "$text"
    else
        printf '%s\n' "$text" | grep -E '^(Total|Baseline|Unexpected|Stale)' || true
    fi
}

# --- one pass: start nexor-mcp http, run the suite with the baseline, stop the server -------------
run_pass() {  # run_pass LABEL [extra http flags...]
    local label="$1"
    shift
    local port log pid status=0
    port="$(free_port)"
    log="$work/server-$label.log"
    NEXOR_API_KEY="$key" NEXOR_TOOLS="read,write,automation,outreach" \
        "$python" -m nexor_mcp --base-url "$base_url" http --host 127.0.0.1 --port "$port" "$@" \
        < /dev/null > "$work/server-$label.stdout" 2> "$log" &
    pid="$!"
    pids+=("$pid")
    wait_until "nexor-mcp http ($label, http://127.0.0.1:$port)" "$pid" "$log" answers_200 "http://127.0.0.1:$port/healthz"
    echo
    echo "== conformance ($label): conformance server --url http://127.0.0.1:$port/mcp --expected-failures $baseline"
    timeout 120 conformance server --url "http://127.0.0.1:$port/mcp" --expected-failures "$baseline" \
        -o "$work/results-$label" > "$work/suite-$label.log" 2>&1 || status=$?
    summary "$work/suite-$label.log" "$full_summary"
    full_summary=no
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    if [[ -s "$work/server-$label.stdout" ]]; then
        echo "conformance ($label): the server wrote to stdout, which only the protocol may use:" >&2
        head -c 2000 "$work/server-$label.stdout" >&2
        status=1
    fi
    if ((status != 0)); then
        if ((status == 124)); then
            echo "conformance ($label): the suite took more than 120s" >&2
        fi
        echo "conformance ($label): FAILED (exit $status). Full suite output:" >&2
        cat "$work/suite-$label.log" >&2
        echo "-- failing checks (checks.json):" >&2
        "$python" - "$work/results-$label" >&2 <<'EOF' || true
import json, pathlib, sys
for path in sorted(pathlib.Path(sys.argv[1]).glob("*/checks.json")):
    for check in json.loads(path.read_text()):
        if check.get("status") in ("FAILURE", "WARNING"):
            print(path.parent.name, check.get("status"), check.get("id"), check.get("errorMessage") or check.get("details"))
EOF
        echo "-- server stderr:" >&2
        tail -n 50 "$log" >&2
        return 1
    fi
}

started=$SECONDS
run_pass 1-process
run_pass 2-workers --workers 2
echo
echo "conformance: both passes match the baseline (install ${install_took}s, servers and suite $((SECONDS - started))s)"
