#!/usr/bin/env bash
# For tests/arm64.rs (make test), which runs the arm64 library under qemu: qemu-user and
# Debian's aarch64 glibc (the sysroot `qemu-aarch64 -L /usr/aarch64-linux-gnu` loads) installed
# idempotently, and the test host built for aarch64 into build/arm64-test-host/. Where apt-get
# or the aarch64 Rust target is missing, one line says so and the test skips.
set -euo pipefail
cd "$(dirname "$0")/../.."
. tests/support/zigbuild-tools.sh

need=()
command -v qemu-aarch64 >/dev/null || need+=(qemu-user)
[ -e /usr/aarch64-linux-gnu/lib/ld-linux-aarch64.so.1 ] || need+=(libc6-arm64-cross)
if [ ${#need[@]} -gt 0 ]; then
  if command -v apt-get >/dev/null; then
    sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
    echo "arm64-host: installing ${need[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  else
    echo "arm64-host: no apt-get to install ${need[*]}: tests/arm64.rs will skip"
  fi
fi

if ! why=$(aarch64_target 2>&1); then
  echo "arm64-host: aarch64 test host not built: cannot add the aarch64-unknown-linux-gnu target ($(echo "$why" | tail -1))"
  rm -f build/arm64-test-host/cwrs-test-host
  exit 0
fi
target=aarch64-unknown-linux-gnu
cargo zigbuild --release --locked -p cwrs-test-host --target "$target.$glibc" --target-dir "$zig_target_dir"
mkdir -p build/arm64-test-host
cp "$zig_target_dir/$target/release/cwrs-test-host" build/arm64-test-host/cwrs-test-host
