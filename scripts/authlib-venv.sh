#!/usr/bin/env bash
# Prepares the Python virtualenv of the interoperability test that runs a
# stock client library's private_key_jwt (Authlib's PrivateKeyJWT) against
# tokengw (internal/server: TestAuthlibPrivateKeyJWT), and prints the path
# of its python. Idempotent: a venv with the pinned versions is reused.
# Needs python3 with the venv module (apt-get install python3-venv) and
# PyPI; about 20 s the first time, instant afterwards.
set -euo pipefail
VENV=${TOKENGW_AUTHLIB_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/tokengw-authlib-venv}
PINS="authlib==1.9.10 requests==2.34.2"
if [ -x "$VENV/bin/python" ] && [ "$(cat "$VENV/.tokengw-pins" 2>/dev/null)" = "$PINS" ]; then
  echo "$VENV/bin/python"
  exit 0
fi
if ! python3 -m venv --help >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq >&2 && apt-get install -y -qq python3-venv >&2
  else
    echo "authlib-venv: python3 with the venv module is required" >&2
    exit 1
  fi
fi
rm -rf "$VENV"
python3 -m venv "$VENV" >&2
# shellcheck disable=SC2086
"$VENV/bin/pip" install -q --disable-pip-version-check $PINS >&2
echo "$PINS" > "$VENV/.tokengw-pins"
echo "$VENV/bin/python"
