#!/usr/bin/env bash
# Installs what the build, tests and demo need, idempotently: libclang (for bindgen) from
# Debian's packages, and a Python venv (.venv) with moto[server] and boto3 from PyPI.
set -euo pipefail
cd "$(dirname "$0")/../.."

need=()
# libclang.so itself: libclang-cpp (present on some images without libclang) does not serve bindgen
ls /usr/lib/llvm-*/lib/libclang.so* >/dev/null 2>&1 || need+=(libclang-dev)
python3 -c 'import venv, ensurepip' 2>/dev/null || need+=(python3-venv)
if [ ${#need[@]} -gt 0 ]; then
  sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
  echo "setup: installing ${need[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi

if ! .venv/bin/python -c 'import moto, boto3' 2>/dev/null || [ ! -x .venv/bin/moto_server ]; then
  echo "setup: creating .venv with moto[server]"
  python3 -m venv .venv
  .venv/bin/pip install -q --disable-pip-version-check 'moto[server]==5.2.5' 'boto3==1.44.8'
fi
