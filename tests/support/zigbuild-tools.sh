# Sourced by firelens.sh and arm64-host.sh: cargo-zigbuild (into .tools) and the zig it runs
# (ziglang from PyPI, into .venv), installed idempotently and put on PATH.
.venv/bin/python -c 'import ziglang' 2>/dev/null || .venv/bin/pip install -q --disable-pip-version-check 'ziglang==0.17.1'
[ -x .tools/bin/cargo-zigbuild ] || cargo install --locked --quiet cargo-zigbuild --version 0.24.1 --root .tools
# cargo-zigbuild runs `python3 -m ziglang` when no zig is on PATH
export PATH="$PWD/.venv/bin:$PWD/.tools/bin:$PATH"
# Where every zigbuild of the repository goes: the host tools and build scripts are shared.
zig_target_dir=build/firelens/target
# Amazon Linux 2's glibc, the oldest an aws-for-fluent-bit image has.
glibc=2.26

# Adds aarch64-unknown-linux-gnu to the toolchain unless it is there; fails (with rustup's
# reason on stderr) where rustup is absent or cannot download it.
aarch64_target() {
  rustup target list --installed 2>/dev/null | grep -qx aarch64-unknown-linux-gnu && return 0
  command -v rustup >/dev/null || { echo "rustup is not installed" >&2; return 1; }
  rustup target add aarch64-unknown-linux-gnu >/dev/null
}
