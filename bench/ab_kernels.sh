#!/bin/sh
# ab_kernels.sh — one weight type's repacked AVX2 tile from two versions of
# src/kernels/x86_avx2.c, side by side in one process (bench/ab_kernels.c).
#
#   bench/ab_kernels.sh A B TYPE [n] [rows] [tokens] [rounds]
#
# A and B: a git revision (HEAD, a1b2c3d, main~2) or . for the working
# tree. TYPE: Q8_0 Q4_0 Q4_1 Q5_0 Q5_1 Q4_K Q5_K Q6_K. Defaults: n 2048,
# 256 rows (in the L2 cache; 65536 streams from memory), 8 tokens, 41
# rounds. Needs the build (make) for build/bench/ab_kernels. Run A against
# A first: code placement alone moves a tight loop by a few percent, and
# that range is the floor under any difference measured.
set -eu
if [ $# -lt 3 ]; then
    sed -n '4,12p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
fi
a=$1 b=$2
shift 2
root=$(git rev-parse --show-toplevel)
drv=$root/build/bench/ab_kernels
[ -x "$drv" ] || { echo "ab_kernels.sh: $drv missing: run make first" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# A tree's sources: the working tree itself, or a revision unpacked in tmp.
tree() {
    if [ "$1" = . ]; then
        echo "$root"
    else
        mkdir -p "$tmp/$2"
        git -C "$root" archive "$1" src | tar -x -C "$tmp/$2"
        echo "$tmp/$2"
    fi
}
ta=$(tree "$a" a)
tb=$(tree "$b" b)
for t in "$ta" "$tb"; do
    # the driver reads the sides' tables with the working tree's layout
    for h in src/kernels/kernels.h src/types.h; do
        cmp -s "$t/$h" "$root/$h" || {
            echo "ab_kernels.sh: $h differs from the working tree's in $t: the two cannot share a driver" >&2
            exit 1
        }
    done
done
# The flags CMakeLists.txt gives x86_avx2.c, as a shared object.
cc=${CC:-cc}
for s in a b; do
    t=$ta
    [ $s = b ] && t=$tb
    $cc -O3 -mavx2 -mfma -mf16c -ffp-contract=off -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -fPIC -shared \
        -I"$t/src" -I"$root/include" "$t/src/kernels/x86_avx2.c" -o "$tmp/$s.so"
done
echo "A: $a  B: $b"
"$drv" "$tmp/a.so" "$tmp/b.so" "$@"
