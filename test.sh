#!/usr/bin/env bash
# The whole test suite, from a fresh clone: system packages, two virtual environments
# (ai-edge-litert + TensorFlow for the trainer; tflite-runtime 2.14 + numpy<2 for the
# runtime tests), lint, types, then pytest. `.ci/run` runs exactly this.
set -euo pipefail
cd "$(dirname "$0")"

need=()
command -v ffmpeg >/dev/null || need+=(ffmpeg)
command -v systemd-analyze >/dev/null || need+=(systemd)
# Throw-away database servers, one per test session (tests/servers.py).
compgen -G "/usr/lib/postgresql/*/bin/pg_ctl" >/dev/null || need+=(postgresql)
command -v mariadb-install-db >/dev/null || need+=(mariadb-server)
# A real headless browser renders `tagger report --html` (tests/test_report_html.py).
command -v chromium >/dev/null || need+=(chromium)
if ((${#need[@]})); then
    if [ "$(id -u)" = 0 ]; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
    else
        echo "missing ${need[*]}: install them (sudo apt-get install ${need[*]}) or tests needing them are skipped" >&2
    fi
fi

PYTHON=${PYTHON:-python3}
export PIP_DISABLE_PIP_VERSION_CHECK=1
if [ ! -x .venv/bin/python ]; then "$PYTHON" -m venv .venv; fi
.venv/bin/pip install -q -e ".[train,plot,beets,postgres,mysql,cluster,dev]"

echo "== ruff (lint, format), mypy"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy

# One pytest worker per core (pytest-xdist; a test module stays on one worker, its fixtures built once); each worker
# starts its own throw-away database servers.
PARALLEL=(-n auto --dist loadscope)
echo "== pytest (ai-edge-litert, tensorflow)"
.venv/bin/python -m pytest -q -p no:cacheprovider "${PARALLEL[@]}" "$@"

# tflite-runtime publishes no wheels past Python 3.11: the second runtime is tested where it exists, on the tests of
# the runtime itself (marker `runtime`: model files and outputs, worker processes, whole scans); the tagging logic
# above them does not depend on which runtime computed the scores.
if "$PYTHON" -c 'import sys; sys.exit(sys.version_info[:2] > (3, 11))'; then
    echo "== pytest -m runtime (tflite-runtime 2.14, numpy<2)"
    if [ ! -x .venv-tflite/bin/python ]; then "$PYTHON" -m venv .venv-tflite; fi
    .venv-tflite/bin/pip install -q -e ".[tflite-runtime,dev]"
    TAGGER_TFLITE_RUNTIME=tflite-runtime .venv-tflite/bin/python -m pytest -q -p no:cacheprovider -m "runtime and not train" "${PARALLEL[@]}" "$@"
fi
