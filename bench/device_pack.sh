#!/bin/bash
# device_pack.sh — packs what bench/device_cpu.sh needs into
# .device/psi-device.tar.gz (git-ignored), for a machine that cannot build
# psi: the borrowed GPU machine has a compiler but none of psi's libraries
# and no package registry.
#
# The pack holds the Release binaries (psi, the benchmark tools,
# test_kernels), every shared library they load with the loader and libc
# among them (each binary runs through the packed loader, so the host's
# glibc does not matter), and the test data those programs read: the
# stories260K model, the llama2-tiny Q4_0 and Q4_K_M reference models, and
# the Llama 3 vocabulary that bench/gen_model builds the 1B-shape models
# with. It stays well under the 64 MiB that may travel to that machine.
# Then, from the project root, one device call does everything:
#
#   run(command="bash bench/device_cpu.sh", carry=[".device"], timeout_s=600)
#
# LLAMA_BENCH=/path/to/llama-bench bench/device_pack.sh packs that binary
# too (with its libraries), and device_cpu.sh then runs it beside psi. Build
# it for the target CPU yourself (llama.cpp with GGML_NATIVE=OFF and the
# AVX-512/AMX options on); it is never committed.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DATA=${PSI_TEST_DATA:-$ROOT/../shared/data}
BUILD=$ROOT/build
LIMIT=$((60 * 1024 * 1024))

[ -f "$BUILD/CMakeCache.txt" ] || cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
grep -q 'CMAKE_BUILD_TYPE:STRING=Release' "$BUILD/CMakeCache.txt" ||
    { echo "device_pack: $BUILD is not a Release build (make build makes one)" >&2; exit 1; }
cmake --build "$BUILD" -j "$(nproc)" --target psi gen_model membw fmapeak bench_kernels test_kernels >/dev/null

STAGE=$(mktemp -d)
trap 'rm -rf "$STAGE"' EXIT
P=$STAGE/psi-device
mkdir -p "$P/real" "$P/lib" "$P/build/bench" "$P/build/tests" "$P/data/models" "$P/data/reference" "$P/data/vocab"

# NAME PATH-UNDER-build: the binary goes to real/NAME, a wrapper that runs it
# through the packed loader to build/PATH (where run_bench.py and the tests
# look for it).
pack_bin() {
    local name=$1 rel=$2 src=$3 up
    cp "$src" "$P/real/$name"
    up=$(dirname "build/$rel" | sed 's|[^/]*|..|g')
    cat >"$P/build/$rel" <<EOF
#!/bin/sh
D=\$(cd "\$(dirname "\$0")/$up" && pwd)
exec "\$D/lib/ld-linux-x86-64.so.2" --library-path "\$D/lib" "\$D/real/$name" "\$@"
EOF
    chmod +x "$P/build/$rel"
    # every library it loads, under the name it asks for
    ldd "$src" | awk '$2 == "=>" && $3 ~ /^\// {print $1, $3} $1 ~ /^\/.*ld-linux/ {print "ld-linux-x86-64.so.2", $1}' |
        while read -r soname path; do cp -L "$path" "$P/lib/$soname"; done
}
pack_bin psi psi "$BUILD/psi"
for b in gen_model membw fmapeak bench_kernels; do pack_bin "$b" "bench/$b" "$BUILD/bench/$b"; done
pack_bin test_kernels tests/test_kernels "$BUILD/tests/test_kernels"
if [ -n "${LLAMA_BENCH:-}" ]; then pack_bin llama-bench llama-bench "$LLAMA_BENCH"; fi

cp "$DATA/models/stories260K.gguf" "$P/data/models/"
cp "$DATA/reference/llama2-tiny-Q4_0.gguf" "$DATA/reference/llama2-tiny-Q4_K_M.gguf" "$P/data/reference/"
cp "$DATA/vocab/llama3-vocab.gguf" "$P/data/vocab/"
git -C "$ROOT" rev-parse --short HEAD >"$P/commit" 2>/dev/null || echo unknown >"$P/commit"

mkdir -p "$ROOT/.device"
tar czf "$ROOT/.device/psi-device.tar.gz" -C "$STAGE" psi-device
size=$(stat -c %s "$ROOT/.device/psi-device.tar.gz")
if [ "$size" -gt "$LIMIT" ]; then
    echo "device_pack: the pack is $((size >> 20)) MiB, over the 60 MiB left to it of what may travel" >&2
    exit 1
fi
echo "device_pack: .device/psi-device.tar.gz, $((size >> 20)) MiB, psi $(cat "$P/commit")"
echo "device_pack: now run(command=\"bash bench/device_cpu.sh\", carry=[\".device\"], timeout_s=600)"
