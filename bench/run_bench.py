#!/usr/bin/env python3
"""psi's model benchmark (make bench): speed on the Llama-3.2-1B shape.

1. Creates once, in $PSI_BENCH_DIR (default ~/.cache/psi-bench, outside the
   tree), a GGUF with seeded random weights in the exact shape of
   Llama-3.2-1B in F16 (bench/gen_model), then Q8_0, Q4_0 and Q4_K_M
   versions with `psi quantize` (a type psi cannot make yet is skipped and
   said so).
2. Measures the machine's memory read bandwidth (bench/membw), generation's
   ceiling, and its f32 multiply-add rate (bench/fmapeak), the ceiling of
   prompt processing with float weights. The bandwidth is measured again
   next to every generation run (a shorter probe just before the psi bench
   or llama-bench invocation, which runs pp first when there is one), and each
   tg figure is also given as the median over the runs of its share of that
   adjacent reading: on a machine whose bandwidth moves by ±15% from minute
   to minute, a share against one reading taken minutes earlier says as
   much about the minute as about psi.
3. Runs `psi bench` (pp512, tg128) on every file; when $LLAMA_BENCH names a
   llama.cpp llama-bench binary, runs it on the same files, interleaved
   with psi run by run, and prints psi/llama.cpp per file and test. With
   --cpu avx2,avx512,amx, psi runs once per kernel path (PSI_CPU) in every
   round, interleaved too; a path the CPU cannot run (psi then warns and
   takes another) is said and skipped. With --no-mmap, psi also runs with
   the weights read into memory (2 MiB pages) in every round.
4. Adds the run to bench/RESULTS.md (CPU, date, commit, figures): a new
   section under the title and its opening paragraphs, newest first; what
   the file held is kept.

Figures are medians over the runs (-r, default 3); each run is one
invocation with its own warm-up. Nothing here passes or fails on a timing.
"""
import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.environ.get("PSI_BUILD") or os.path.join(ROOT, "build")  # binaries built elsewhere: bench/device_cpu.sh
PSI = os.path.join(BUILD, "psi")


# bench/gen_model's shape (Llama-3.2-1B; tied embeddings: the output matrix is token_embd)
SHAPE = dict(n_layer=16, n_embd=2048, n_head=32, n_head_kv=8, n_ff=8192, n_vocab=128256)
FLOAT_FILES = ("F16", "BF16", "F32")


def macs_per_token(n_prompt):
    """Multiply-adds per token of a pp<n_prompt> test: every weight matrix
    once, plus attention's q·k and p·v over the (n_prompt + 1) / 2 positions
    a token sees on average in a causal prompt."""
    L, e, ff = SHAPE["n_layer"], SHAPE["n_embd"], SHAPE["n_ff"]
    kv = e * SHAPE["n_head_kv"] // SHAPE["n_head"]
    weights = L * (2 * e * e + 2 * e * kv + 3 * e * ff) + SHAPE["n_vocab"] * e
    return weights + L * 2 * e * (n_prompt + 1) / 2


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def run(cmd, **kw):
    log("+ " + " ".join(cmd))
    return subprocess.run(cmd, check=True, text=True, capture_output=True, **kw).stdout


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def make_models(cache, data, types):
    os.makedirs(cache, exist_ok=True)
    f16 = os.path.join(cache, "llama-3.2-1b-shape-F16.gguf")
    if not os.path.exists(f16):
        vocab = os.path.join(data, "vocab", "llama3-vocab.gguf")
        run([os.path.join(BUILD, "bench", "gen_model"), "-o", f16, "--vocab", vocab])
    files = [("F16", f16)]
    for t in dict.fromkeys(t.lower() for t in types):  # once each; F16 is always there
        if t == "f16":
            continue
        out = os.path.join(cache, "llama-3.2-1b-shape-%s.gguf" % t.upper())
        if not os.path.exists(out):
            try:
                run([PSI, "quantize", f16, out, t])
            except subprocess.CalledProcessError as e:
                log("skipping %s: psi quantize says: %s" % (t, e.stderr.strip()))
                continue
        files.append((t.upper(), out))
    return files


def psi_once(path, threads, n_prompt, n_gen, psi=PSI, cpu=None, no_mmap=False):
    """One `psi bench --json` run; cpu: a PSI_CPU kernel path, None for psi's own choice;
    no_mmap: the weights read into memory (--no-mmap) instead of mapped."""
    env = dict(os.environ, PSI_CPU=cpu) if cpu else None
    out = run([psi, "bench", "-m", path, "-p", str(n_prompt), "-n", str(n_gen), "-r", "1",
               "-t", str(threads), "--json"] + (["--no-mmap"] if no_mmap else []), env=env)
    return json.loads(out)


def llama_once(binary, path, threads, n_prompt, n_gen):
    out = run([binary, "-m", path, "-p", str(n_prompt), "-n", str(n_gen), "-r", "1", "-t", str(threads),
               "-o", "json"])
    return json.loads(out)


def membw(threads, *args):
    """bench/membw's line and its best reading (GB/s)."""
    line = run([os.path.join(BUILD, "bench", "membw"), "-t", str(threads)] + list(args)).strip()
    return line, float(line.split("GB/s best")[0].split()[-1])


def probe_best(threads):
    """The read bandwidth now: the best of 5 runs over 512 MiB (GB/s)."""
    return membw(threads, "-s", "512", "-r", "5")[1]


def test_name(r):
    return "pp%d" % r["n_prompt"] if r["n_prompt"] else "tg%d" % r["n_gen"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-r", type=int, default=3, help="runs per file and test (default 3)")
    ap.add_argument("-t", type=int, default=os.cpu_count() or 2, help="threads (default: all cores)")
    ap.add_argument("-p", type=int, default=512)
    ap.add_argument("-n", type=int, default=128)
    ap.add_argument("--types", default="q8_0,q4_0,q4_k_m")
    ap.add_argument("--cpu", default="", help="kernel paths to run psi on, side by side (PSI_CPU: avx2,avx512,amx)")
    ap.add_argument("--no-mmap", action="store_true",
                    help="also run psi with the weights read into memory (--no-mmap), side by side")
    ap.add_argument("--no-results", action="store_true", help="do not write bench/RESULTS.md")
    a = ap.parse_args()
    cpus = [c for c in a.cpu.split(",") if c] or [None]
    modes = [False, True] if a.no_mmap else [False]

    data = os.environ.get("PSI_TEST_DATA", os.path.join(ROOT, "..", "shared", "data"))
    cache = os.environ.get("PSI_BENCH_DIR", os.path.join(os.path.expanduser("~"), ".cache", "psi-bench"))
    llama = os.environ.get("LLAMA_BENCH")
    files = make_models(cache, data, [t for t in a.types.split(",") if t])

    bw_line, bw = membw(a.t)
    log(bw_line)
    peak_line = run([os.path.join(BUILD, "bench", "fmapeak"), "-t", str(a.t)]).strip()
    peak = float(peak_line.split("GMAC/s best")[0].split()[-1])
    log(peak_line)

    # samples[(file label, engine, test)] = [tokens/s, ...]; shares[(label, engine)] =
    # [tg weight bytes a second ÷ the probe reading just before that run, ...]
    samples, sizes, rss, shares = {}, {}, {}, {}
    paths = []  # the kernel paths psi ran on, in order (psi bench's cpu_kernels)
    for rep in range(a.r):
        for label, path in files:
            for cpu, no_mmap in [(c, m) for c in list(cpus) for m in modes]:
                if cpu not in cpus:
                    continue
                near = probe_best(a.t) if a.n else None
                res = psi_once(path, a.t, a.p, a.n, cpu=cpu, no_mmap=no_mmap)
                if cpu and any(r.get("cpu_kernels") != cpu for r in res):  # psi fell back to another path
                    log("skipping PSI_CPU=%s: this CPU runs %s instead" % (cpu, res[0].get("cpu_kernels")))
                    cpus.remove(cpu)
                    continue
                for r in res:
                    k = r.get("cpu_kernels", "?") + (" --no-mmap" if no_mmap else "")
                    if k not in paths:
                        paths.append(k)
                    samples.setdefault((label, "psi " + k, test_name(r)), []).append(r["avg_ts"])
                    log("  psi %s %s %s: %.2f t/s" % (k, label, test_name(r), r["avg_ts"]))
                    if r["n_gen"] and near:
                        shares.setdefault((label, "psi " + k), []).append(r["model_size"] * r["avg_ts"] / 1e9 / near)
                    sizes[label] = r["model_size"]
                    rss[label] = max(rss.get(label, 0), r.get("peak_rss_bytes", 0))
            if llama:
                near = probe_best(a.t) if a.n else None
                for r in llama_once(llama, path, a.t, a.p, a.n):
                    if r["n_gen"] and near:
                        shares.setdefault((label, "llama.cpp"), []).append(r["model_size"] * r["avg_ts"] / 1e9 / near)
                    samples.setdefault((label, "llama.cpp", test_name(r)), []).append(r["avg_ts"])
                    log("  llama.cpp %s %s: %.2f t/s" % (label, test_name(r), r["avg_ts"]))

    tests = ["pp%d" % a.p, "tg%d" % a.n]
    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], text=True,
                            capture_output=True).stdout.strip() or "unknown"
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "## make bench, %s, commit %s" % (when, commit),
        "",
        "- CPU: %s, %d threads" % (cpu_name(), a.t),
        "- model: random weights in the shape of Llama-3.2-1B (bench/gen_model), quantized by `psi quantize`",
        "- %s" % bw_line,
        "- %s" % peak_line,
        "- %d runs per figure, interleaved%s; median tokens/s (min–max)" % (a.r, " with llama.cpp (%s)" % llama if llama else ""),
        "",
        "At the ceiling:",
    ] + ([
        "tg, weight bytes read a second (file size × tokens/s), their share of the",
        "best read bandwidth above, and (paired) the median over the runs of each run's share of the",
        "probe's reading just before it%s" % (";" if a.p else "."),
    ] if a.n else []) + ([
        "pp, multiply-adds a second (%.2f G a token at pp%d: the weights once, and" % (macs_per_token(a.p) / 1e9, a.p),
        "attention) and, for float weights, their share of the best f32 FMA rate.",
    ] if a.p else []) + [
        "",
        "| file | size | test | psi kernels | psi t/s | psi at the ceiling | llama.cpp t/s | llama.cpp at the ceiling | psi / llama.cpp | psi peak RSS |",
        "| --- | ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]

    def ceiling(label, t, ts, engine):
        if t.startswith("tg"):
            g = sizes[label] * ts / 1e9
            sh = shares.get((label, engine))
            paired = "; paired %.0f%%" % (100 * statistics.median(sh)) if sh else ""
            return "%.1f GB/s (%.0f%%%s)" % (g, 100 * g / bw, paired)
        g = macs_per_token(a.p) * ts / 1e9
        return "%.1f GMAC/s (%.0f%%)" % (g, 100 * g / peak) if label in FLOAT_FILES else "%.1f GMAC/s" % g

    for label, _ in files:
        for t in tests:
            ls = samples.get((label, "llama.cpp", t))
            lt = "%.2f (%.2f–%.2f)" % (statistics.median(ls), min(ls), max(ls)) if ls else "—"
            lc = ceiling(label, t, statistics.median(ls), "llama.cpp") if ls else "—"
            for k in paths:
                ps = samples.get((label, "psi " + k, t))
                if not ps:
                    continue
                med = statistics.median(ps)
                ratio = "%.2f" % (med / statistics.median(ls)) if ls else "—"
                lines.append("| %s | %.2f GiB | %s | %s | %.2f (%.2f–%.2f) | %s | %s | %s | %s | %.2f GiB |" % (
                    label, sizes[label] / 2**30, t, k, med, min(ps), max(ps), ceiling(label, t, med, "psi " + k), lt, lc, ratio,
                    rss[label] / 2**30))
    text = "\n".join(lines) + "\n"
    print(text)
    if not a.no_results:
        add_results(os.path.join(ROOT, "bench", "RESULTS.md"), text)


def add_results(path, section):
    """Puts section under the file's title and the paragraphs that follow it
    (up to the first "## " heading), above the earlier runs and notes,
    through a temporary file renamed over the old one (nothing is lost if
    the run is cut short)."""
    try:
        with open(path) as f:
            old = f.read()
    except FileNotFoundError:
        old = "# psi benchmark results\n"
    at = old.find("\n## ")
    head, rest = (old, "") if at < 0 else (old[:at + 1], old[at + 1:])
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(head.rstrip("\n") + "\n\n" + section + ("\n" + rest if rest else ""))
    os.replace(tmp, path)


if __name__ == "__main__":
    main()
