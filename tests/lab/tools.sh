# shellcheck shell=bash
# install_tools ROOT: put the Python tools of tests/requirements.txt (ansible-core, ansible-lint,
# pytest, ...) into the lab venv ($AIMODEL_LAB/venv, made by tests/lab/lab up), skipping pip when
# the requirements have not changed since the last install. Sourced by tests/lab/demo and tests/run.
install_tools() {
    local root=$1 lab=${AIMODEL_LAB:-/var/tmp/aimodel-lab}
    local stamp="$lab/state/tools.sha256" want
    want=$(cat "$root/tests/requirements.txt" "$root/tests/lab/requirements.txt" | sha256sum | cut -d' ' -f1)
    if [ -x "$lab/venv/bin/ansible-playbook" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
        return 0
    fi
    "$lab/venv/bin/python" -m pip install -q --disable-pip-version-check -r "$root/tests/requirements.txt"
    mkdir -p "$(dirname "$stamp")"
    echo "$want" >"$stamp"
}
