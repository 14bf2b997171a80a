# Sourced by bin/up and bin/test: make sure .venv exists and holds what the given
# requirements file pins; reinstall only when that file changed since the last install.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ensure_venv() {
  local req="$1" stamp
  if [ ! -x "$ROOT/.venv/bin/python" ]; then
    echo "Creating the virtualenv in .venv ..."
    python3 -m venv "$ROOT/.venv"
    "$ROOT/.venv/bin/pip" install --quiet --upgrade pip
  fi
  stamp="$ROOT/.venv/.installed-$(basename "$req")"
  if [ ! -f "$stamp" ] || ! cmp -s <(cat "$ROOT/requirements.txt" "$ROOT/$req") "$stamp"; then
    echo "Installing $req into .venv ..."
    "$ROOT/.venv/bin/pip" install --quiet --disable-pip-version-check -r "$ROOT/$req"
    cat "$ROOT/requirements.txt" "$ROOT/$req" > "$stamp"
  fi
}
