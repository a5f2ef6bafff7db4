#!/bin/bash
# device_cpu.sh — psi's CPU checks on a borrowed machine, in one run of
# at most 9.5 minutes: what the development machine (Zen 3, AVX2 only)
# cannot time or run natively, the AVX-512 and AMX kernels.
#
#   bash bench/device_pack.sh          # here, once: .device/psi-device.tar.gz
#   run(command="bash bench/device_cpu.sh", carry=[".device"], timeout_s=600)
#
# Steps (each under its own time limit, each logged with the time):
# 1. the machine: CPU, its AVX-512/AMX flags, cores, read bandwidth;
# 2. test_kernels: every kernel on every path the CPU runs, bit for bit
#    against the reference (also the amx checks that need AMX hardware);
# 3. the Llama-3.2-1B-shape files (bench/gen_model, psi quantize: F16,
#    Q8_0, Q4_0, Q4_K_M) and, for each, a 25-token prompt's logits (AMX's
#    16-token tile and the 8-token one) and 16 greedy tokens on every
#    path, which must equal avx2's bit for bit (the kernels are the
#    reference's bit for bit, the float tiles share one order);
# 4. bench_kernels, one thread, 1, 8 and 32 tokens, for the types whose
#    AVX-512/AMX tiles have never been timed (Q4_K, Q5_K, Q6_K, F16) and
#    Q4_0/Q8_0 for scale;
# 4b. pp512 and tg32 of the Q4_0 and Q4_K_M files on every core (how the
#    decode chunks and the pool do with many threads);
# 5. run_bench.py --cpu avx2,avx512,amx: pp512 and tg32 of each file on
#    each path, interleaved (and llama.cpp's llama-bench beside them when
#    the pack has one), -t 2 as the issue's figures are; a round at a
#    time while the time allows (the whole script stays under 9.5 minutes).
# Output: the log (also $OUT/device_cpu.log) and $OUT/results-N.md.
# Env: THREADS (2), ROUNDS (2), LEVELS ("avx2 avx512 amx"); PSI_DEVICE_DIR
# (/tmp/psi-device) where the pack is unpacked; PSI_BENCH_DIR
# (/tmp/psi-bench) where the models go.
set -u
START=$(date +%s)
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${OUT:-/tmp/psi-device-out}
mkdir -p "$OUT"
exec > >(tee "$OUT/device_cpu.log") 2>&1

W=${PSI_DEVICE_DIR:-/tmp/psi-device}
if [ ! -x "$W/build/psi" ]; then
    PACK=$ROOT/.device/psi-device.tar.gz
    [ -f "$PACK" ] || { echo "device_cpu: no $PACK (run bench/device_pack.sh first)"; exit 1; }
    mkdir -p "$W" && tar xzf "$PACK" -C "$W" --strip-components=1 || exit 1
fi
export PSI_BUILD=$W/build PSI=$W/build/psi PSI_GEN_MODEL=$W/build/bench/gen_model PSI_TEST_DATA=$W/data
export PSI_BENCH_DIR=${PSI_BENCH_DIR:-/tmp/psi-bench} PYTHONUNBUFFERED=1
unset PSI_CPU
T=${THREADS:-2}
ROUNDS=${ROUNDS:-2}
NCPU=$(nproc)
step() { printf '\n=== %s (%s UTC)\n' "$*" "$(date -u +%T)"; }

step "1. machine (psi $(cat "$W/commit"))"
grep -m1 'model name' /proc/cpuinfo
echo "cores: $NCPU; flags: $(grep -m1 '^flags' /proc/cpuinfo | tr ' ' '\n' | grep -E '^(avx512|amx)' | tr '\n' ' ')"
"$PSI_BUILD/bench/membw" -t "$T"
"$PSI" run -m "$W/data/models/stories260K.gguf" -p Once -n 1 -v 2>&1 >/dev/null | grep -i 'cpu kernels'

# the paths this CPU runs: psi names the one it took (-v), avx512e/amxe never here
LV=()
for l in ${LEVELS:-avx2 avx512 amx}; do
    got=$(PSI_CPU=$l "$PSI" run -m "$W/data/models/stories260K.gguf" -p Once -n 1 -v 2>&1 >/dev/null |
        sed -n 's/.*cpu kernels \([a-z0-9]*\).*/\1/p' | head -1)
    if [ "$got" = "$l" ]; then LV+=("$l"); else echo "PSI_CPU=$l: this CPU runs ${got:-nothing} instead, left out"; fi
done
echo "paths: ${LV[*]}"

step "2. test_kernels (every path, bit for bit)"
timeout 300 "$PSI_BUILD/tests/test_kernels" >"$OUT/test_kernels.log" 2>&1
echo "test_kernels exit $?"
grep -E -i 'fail|checks|check:|checked|not run' "$OUT/test_kernels.log" | tail -30

step "3. the 1B-shape files, and the same logits and greedy text on every path"
timeout 400 python3 - "$ROOT" <<'EOF'
import os, sys
sys.path.insert(0, os.path.join(sys.argv[1], "bench"))
import run_bench
files = run_bench.make_models(os.environ["PSI_BENCH_DIR"], os.environ["PSI_TEST_DATA"], ["q8_0", "q4_0", "q4_k_m"])
print("\n".join("%s %s" % f for f in files))
EOF
PROMPT="Once upon a time, in a valley between two rivers, there lived an old clockmaker who had never once been late"
for f in F16 Q8_0 Q4_0 Q4_K_M; do
    m=$PSI_BENCH_DIR/llama-3.2-1b-shape-$f.gguf
    [ -f "$m" ] || { echo "$f: no file"; continue; }
    for l in "${LV[@]}"; do
        PSI_CPU=$l timeout 120 "$PSI" logits -m "$m" -p "$PROMPT" -o "/tmp/logits-$f-$l.f32" -t "$NCPU" 2>/dev/null ||
            echo "$f $l: psi logits failed"
        PSI_CPU=$l timeout 120 "$PSI" run -m "$m" -p "$PROMPT" -n 16 --temp 0 --ignore-eos -t "$NCPU" \
            >"/tmp/text-$f-$l.txt" 2>/dev/null || echo "$f $l: psi run failed"
    done
    python3 - "$f" "${LV[@]}" <<'EOF'
import array, sys
f, levels = sys.argv[1], sys.argv[2:]
def load(l):
    a = array.array("f")
    with open("/tmp/logits-%s-%s.f32" % (f, l), "rb") as fh:
        a.frombytes(fh.read())
    return a
base = load(levels[0])
text = open("/tmp/text-%s-%s.txt" % (f, levels[0]), "rb").read()
for l in levels[1:]:
    x = load(l)
    same_text = open("/tmp/text-%s-%s.txt" % (f, l), "rb").read() == text
    if len(x) != len(base):
        print("%s %s: %d logits against %d" % (f, l, len(x), len(base)))
        continue
    d = max(abs(p - q) for p, q in zip(base, x))
    print("%s %s against %s: logits %s (max |d| %.3g over %d), greedy text %s" % (
        f, l, levels[0], "bit for bit" if x == base else "DIFFER", d, len(x), "equal" if same_text else "DIFFERS"))
EOF
done

step "4. bench_kernels, one thread (n 2048, 4096 rows)"
for ny in 1 8 32; do
    timeout 120 "$PSI_BUILD/bench/bench_kernels" 2048 4096 "$ny" Q4_K,Q5_K,Q6_K,F16,Q4_0,Q8_0 2>&1
done

step "4b. every core: psi bench -t $NCPU (default path), Q4_0 and Q4_K_M"
for f in Q4_0 Q4_K_M; do
    timeout 60 "$PSI" bench -m "$PSI_BENCH_DIR/llama-3.2-1b-shape-$f.gguf" -p 512 -n 32 -r 1 -t "$NCPU" 2>&1 | grep -E 'pp512|tg32'
done

step "5. psi bench by path, -t $T, up to $ROUNDS rounds"
[ -x "$W/build/llama-bench" ] && export LLAMA_BENCH=$W/build/llama-bench && echo "with llama.cpp: $LLAMA_BENCH"
# one run_bench.py a round (-r 1: its runs interleave the paths), each
# round's table printed as it ends; a round starts only while 4 minutes of
# the 9.5 minutes from the start remain, so the run ends with its figures
# inside one 10-minute device call
for r in $(seq 1 "$ROUNDS"); do
    left=$((START + 570 - $(date +%s)))
    [ "$left" -ge 240 ] || { echo "round $r: ${left} s left, not started"; break; }
    timeout "$left" python3 "$ROOT/bench/run_bench.py" --cpu "$(echo "${LV[@]}" | tr ' ' ,)" -r 1 -p 512 -n 32 \
        -t "$T" --types q8_0,q4_0,q4_k_m --no-results >"$OUT/results-$r.md" 2>"$OUT/run_bench-$r.log"
    echo "round $r: run_bench exit $?"
    grep '^|' "$OUT/results-$r.md"
done
step "done"
