#!/usr/bin/env bash
# make firelens: the plugin for aws-for-fluent-bit images, one library per architecture, built
# here without Docker, into build/firelens/<arch>/libcloudwatch_rs.so where <arch> is Docker's
# TARGETARCH (amd64, arm64), so the Dockerfile copies build/firelens/$TARGETARCH/ as it is.
# cargo-zigbuild links against glibc 2.26 (Amazon Linux 2, the oldest base), so each library
# loads on AL2 and AL2023 alike; objdump then proves the glibc requirement and readelf the
# machine. Both targets go to one cargo run: their fat-LTO links are single-threaded and run
# side by side. Where the aarch64 target cannot be added to the toolchain (rustup absent or
# offline), arm64 is skipped with one line and amd64 is still built.
set -euo pipefail
cd "$(dirname "$0")/../.."
. tests/support/zigbuild-tools.sh

# arch (Docker's name) : Rust target : readelf's Machine
libs=("amd64:x86_64-unknown-linux-gnu:Advanced Micro Devices X86-64")
if why=$(aarch64_target 2>&1); then
  libs+=("arm64:aarch64-unknown-linux-gnu:AArch64")
else
  echo "firelens: arm64 skipped: cannot add the aarch64-unknown-linux-gnu target ($(echo "$why" | tail -1))"
  # never leave an older arm64 library where an image build would copy it
  rm -f build/firelens/arm64/libcloudwatch_rs.so
fi

targets=()
for lib in "${libs[@]}"; do
  IFS=: read -r _ target _ <<<"$lib"
  targets+=(--target "$target.$glibc")
done
cargo zigbuild --release --locked -p cloudwatch_rs "${targets[@]}" --target-dir "$zig_target_dir"

failed=0
for lib in "${libs[@]}"; do
  IFS=: read -r arch target machine <<<"$lib"
  so=build/firelens/$arch/libcloudwatch_rs.so
  mkdir -p "build/firelens/$arch"
  cp "$zig_target_dir/$target/release/libcloudwatch_rs.so" "$so"
  newest=$(objdump -T "$so" | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -1)
  is=$(readelf -h "$so" | sed -n 's/^ *Machine: *//p')
  echo "firelens: $so: $is, needs glibc $newest (at most $glibc allowed), NEEDED: $(readelf -d "$so" | grep NEEDED | grep -o '\[.*\]' | paste -sd ' ')"
  if [ "$is" != "$machine" ]; then
    echo "error: $so is built for $is, not $machine" >&2
    failed=1
  fi
  if [ -z "$newest" ] || [ "$(printf '%s\n%s\n' "$newest" "$glibc" | sort -V | tail -1)" != "$glibc" ]; then
    echo "error: $so needs glibc ${newest:-(no versioned symbols found)}, newer than $glibc" >&2
    failed=1
  fi
  nm -D --defined-only "$so" | grep -q FLBPluginFlushCtx || { echo "error: $so exports no FLBPluginFlushCtx" >&2; failed=1; }
done
exit $failed
