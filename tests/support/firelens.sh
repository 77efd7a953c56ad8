#!/usr/bin/env bash
# make firelens: the plugin for aws-for-fluent-bit images, built here without Docker.
# cargo-zigbuild links against glibc 2.26 (Amazon Linux 2, the oldest target), so the library
# loads on AL2 and on AL2023 alike; objdump then proves the glibc requirement.
# Tools are installed idempotently: ziglang (PyPI) into .venv, cargo-zigbuild into .tools.
set -euo pipefail
cd "$(dirname "$0")/../.."
target=x86_64-unknown-linux-gnu
glibc=2.26

.venv/bin/python -c 'import ziglang' 2>/dev/null || .venv/bin/pip install -q --disable-pip-version-check 'ziglang==0.17.1'
[ -x .tools/bin/cargo-zigbuild ] || cargo install --locked --quiet cargo-zigbuild --version 0.24.1 --root .tools
# cargo-zigbuild runs `python3 -m ziglang` when no zig is on PATH
export PATH="$PWD/.venv/bin:$PWD/.tools/bin:$PATH"

cargo zigbuild --release -p cloudwatch_rs --target "$target.$glibc" --target-dir build/firelens/target
mkdir -p build/firelens
cp "build/firelens/target/$target/release/libcloudwatch_rs.so" build/firelens/libcloudwatch_rs.so
lib=build/firelens/libcloudwatch_rs.so

newest=$(objdump -T "$lib" | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -1)
echo "$lib: needs glibc $newest (Amazon Linux 2 has $glibc); NEEDED: $(readelf -d "$lib" | grep NEEDED | grep -o '\[.*\]' | tr '\n' ' ')"
if [ "$(printf '%s\n%s\n' "$newest" "$glibc" | sort -V | tail -1)" != "$glibc" ]; then
  echo "error: $lib needs glibc $newest, newer than $glibc" >&2
  exit 1
fi
nm -D --defined-only "$lib" | grep -q FLBPluginFlushCtx
