# shellcheck shell=bash
# install_tools ROOT: put the Python tools of tests/requirements.txt (ansible-core, ansible-lint,
# pytest, ...) into the lab venv ($AIMODEL_LAB/venv, made by tests/lab/lab up), skipping pip when
# the requirements have not changed since the last install. Sourced by tests/lab/demo and tests/run.
install_tools() {
    local root=$1 lab=${AIMODEL_LAB:-/var/tmp/aimodel-lab}
    local stamp="$lab/state/tools.sha256" want
    want=$( { cat "$root/tests/requirements.txt"; "$lab/venv/bin/python" -V; } | sha256sum | cut -d' ' -f1)
    if [ -x "$lab/venv/bin/ansible-test" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
        echo "tests/requirements.txt unchanged since the last install: skipping pip"
        return 0
    fi
    echo "pip install -r tests/requirements.txt into $lab/venv"
    "$lab/venv/bin/python" -m pip install -q --disable-pip-version-check -r "$root/tests/requirements.txt" \
        2> >(grep -v "^WARNING: Location 'file:" >&2) || return 1
    mkdir -p "$(dirname "$stamp")"
    echo "$want" >"$stamp"
}
