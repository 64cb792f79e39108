#!/usr/bin/env bash
# Real third-party web apps for tests/integration/real_apps.rs, installed when missing:
# Apache with mod_wsgi (Debian), and Trac 1.6 and Django 5.2 from PyPI in a virtualenv of
# Debian's Python (the one mod_wsgi is built for). Safe to run again: each step checks first.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
[ -x /usr/sbin/apache2 ] || need_apt+=(apache2)
[ -e /usr/lib/apache2/modules/mod_wsgi.so ] || need_apt+=(libapache2-mod-wsgi-py3)
/usr/bin/python3 -c 'import venv, ensurepip' 2>/dev/null || need_apt+=(python3-venv)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "installing: ${need_apt[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

venv=target/real-apps-venv
want='Trac==1.6 Django==5.2.19'
if [ "$(cat "$venv/.installed" 2>/dev/null)" != "$want" ]; then
  rm -rf "$venv"
  /usr/bin/python3 -m venv "$venv"
  # shellcheck disable=SC2086
  "$venv/bin/pip" install --quiet --disable-pip-version-check $want
  echo "$want" > "$venv/.installed"
fi
