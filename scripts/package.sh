#!/usr/bin/env bash
# Builds dist/caguard-functions.zip, ready for `az functionapp deployment source config-zip`:
#   host.json, one folder per function (<Name>/function.json) and the `caguard`
#   binary (exec bit set) at the zip root, plus caguard.toml when one exists.
#
# The binary links against glibc 2.28 at most, so it runs on the Azure Functions
# Linux images. The musl target cannot be installed here (rustup downloads
# nothing), so cargo-zigbuild with zig from PyPI (`ziglang`) pins the glibc baseline.
set -euo pipefail
cd "$(dirname "$0")/.."

TARGET=x86_64-unknown-linux-gnu
GLIBC=2.28
ZIGLANG_VERSION=0.17.1
ZIGBUILD_VERSION=0.24.1

if ! python3 -c "import ziglang" 2>/dev/null; then
  python3 -m pip install --quiet --disable-pip-version-check "ziglang==${ZIGLANG_VERSION}" \
    || python3 -m pip install --quiet --disable-pip-version-check ziglang
fi
if ! command -v cargo-zigbuild >/dev/null 2>&1; then
  cargo install --quiet --locked cargo-zigbuild --version "${ZIGBUILD_VERSION}" \
    || cargo install --quiet --locked cargo-zigbuild
fi

# CAGUARD_PACKAGE_PROFILE=package-check (the package test) builds the same package
# unoptimised, in a fraction of the time, as dist/caguard-functions-package-check.zip;
# what you deploy is the default, release.
PROFILE="${CAGUARD_PACKAGE_PROFILE:-release}"
case "$PROFILE" in
  release) OUT=dist/caguard-functions.zip ;;
  package-check) OUT=dist/caguard-functions-package-check.zip ;;
  *) echo "package.sh: CAGUARD_PACKAGE_PROFILE must be release or package-check, not '$PROFILE'" >&2; exit 64 ;;
esac

cargo zigbuild --profile "$PROFILE" --quiet -p caguard --target "${TARGET}.${GLIBC}"
BIN="target/${TARGET}/${PROFILE}/caguard"

python3 - "$BIN" "$OUT" <<'PY'
import json, os, sys, zipfile
binary = sys.argv[1]
os.makedirs("dist", exist_ok=True)
out = sys.argv[2]
host = json.load(open("host.json"))
exe = host["customHandler"]["description"]["defaultExecutablePath"]

def add(z, path, arcname, mode):
    info = zipfile.ZipInfo(arcname, date_time=(2026, 1, 1, 0, 0, 0))
    info.external_attr = (0o100000 | mode) << 16  # regular file + permissions
    info.compress_type = zipfile.ZIP_DEFLATED
    with open(path, "rb") as f:
        z.writestr(info, f.read())

with zipfile.ZipFile(out + ".tmp", "w") as z:
    add(z, "host.json", "host.json", 0o644)
    for name in sorted(os.listdir("function-definitions")):
        definition = os.path.join("function-definitions", name, "function.json")
        if os.path.isfile(definition):
            add(z, definition, f"{name}/function.json", 0o644)
    add(z, binary, exe, 0o755)
    if os.path.isfile("caguard.toml"):
        add(z, "caguard.toml", "caguard.toml", 0o644)
os.replace(out + ".tmp", out)
print(out)
PY
