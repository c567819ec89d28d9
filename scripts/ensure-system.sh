#!/usr/bin/env bash
# Install the Debian packages the stack needs, when they are missing. Fast (no apt) when
# everything is there. Not root and something missing: say what and exit 1.
set -euo pipefail

# package -> a file that proves it is installed
declare -A PROOF=(
  [nginx]=/usr/sbin/nginx
  [libnginx-mod-http-lua]=/usr/lib/nginx/modules/ngx_http_lua_module.so
  [lua-resty-core]=/usr/share/lua/5.1/resty/core.lua
  [lua-resty-lrucache]=/usr/share/lua/5.1/resty/lrucache.lua
  [lua-nginx-redis]=/usr/share/lua/5.1/nginx/redis.lua
  [lua-cjson]=/usr/lib/x86_64-linux-gnu/lua/5.1/cjson.so
  # luajit2 (OpenResty's LuaJIT) for busted; Debian's `luajit` conflicts with the Lua module.
  [luajit2]=/usr/bin/luajit
  [lua-check]=/usr/bin/luacheck
  [lua-busted]=/usr/bin/busted
  [wrk]=/usr/bin/wrk
  [postgresql]=/usr/lib/postgresql
  [redis-server]=/usr/bin/redis-server
  [python3-venv]=/usr/lib/python3/dist-packages/../../python3.11/venv
)
EXTRA=("$@")   # callers may ask for more, e.g. chromium for browser tests
declare -A EXTRA_PROOF=([chromium]=/usr/bin/chromium)

# ENSURE_SYSTEM_ROOT lets a test pretend to be a machine without the packages.
R="${ENSURE_SYSTEM_ROOT:-}"
missing=()
for pkg in "${!PROOF[@]}"; do
  [ -e "$R${PROOF[$pkg]}" ] || missing+=("$pkg")
done
for pkg in "${EXTRA[@]}"; do
  [ -e "$R${EXTRA_PROOF[$pkg]:-/nonexistent}" ] || missing+=("$pkg")
done
# python3-venv: only when the interpreter cannot make a venv by itself.
if [[ " ${missing[*]} " == *" python3-venv "* ]]; then
  if python3 -c 'import venv, ensurepip' 2>/dev/null; then
    missing=("${missing[@]/python3-venv}")
  fi
fi
mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sed '/^$/d' | sort -u)
[ "${#missing[@]}" -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ] || [ -n "${ENSURE_SYSTEM_DRY_RUN:-}" ]; then
  echo "Missing system packages: ${missing[*]}" >&2
  echo "Install them as root:  sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
echo "Installing system packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Debian's nginx package starts a server on :80 on some systems; we run our own.
if command -v systemctl >/dev/null 2>&1; then systemctl disable --now nginx >/dev/null 2>&1 || true; fi
echo "System packages installed."
