#!/usr/bin/env python3
"""serve_bench.py — continuous-batching throughput of `psi serve`.

Starts psi serve on MODEL (127.0.0.1, a free port, --parallel = the largest
stream count), then for each stream count N runs N concurrent streamed
completions (different prompts, -n tokens each, ignore_eos) and prints the
aggregate generation tokens/s (all tokens over the whole run, prefill
included, and decode only: tokens after each stream's first over the time
from the earliest first token to the end), the engine's own generation
rate over its busy time (from /metrics: what the batched forward passes
and sampling give, before HTTP and the client), and the time to first
token (median and worst) under that load. With a count repeated
(`--streams 1,8,1,8,1,8`: rounds interleaved, for a noisy machine) it also
prints each count's medians and their ratios to one stream's medians.
Prints figures; passes or fails on nothing.

  python3 bench/serve_bench.py [-m MODEL] [--streams 1,4,8] [-n 64] [-t THREADS]
Default model: the Llama-3.2-1B-shape Q8_0 file `make bench` builds in
$PSI_BENCH_DIR (~/.cache/psi-bench), else the llama3-tiny reference model.
"""
import argparse
import concurrent.futures
import glob
import http.client
import json
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def default_model():
    cache = os.environ.get("PSI_BENCH_DIR", os.path.expanduser("~/.cache/psi-bench"))
    files = sorted(glob.glob(os.path.join(cache, "*.gguf")))
    for f in files:
        name = os.path.basename(f).lower()
        if "1b" in name and "q8_0" in name:
            return f
    data = os.environ.get("PSI_TEST_DATA", os.path.join(ROOT, "..", "shared", "data"))
    return os.path.join(data, "reference", "llama3-tiny-Q8_0.gguf")


def one_stream(port, prompt, n):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    body = {"prompt": prompt, "max_tokens": n, "temperature": 0, "ignore_eos": True, "stream": True,
            "stream_options": {"include_usage": True}}
    t0 = time.time()
    c.request("POST", "/v1/completions", json.dumps(body), {"Content-Type": "application/json"})
    r = c.getresponse()
    first, tokens, buf = None, 0, b""
    while True:
        chunk = r.read1(65536)
        if not chunk:
            break
        buf += chunk
        while b"\n\n" in buf:
            ev, buf = buf.split(b"\n\n", 1)
            if ev == b"data: [DONE]":
                continue
            e = json.loads(ev[6:])
            if first is None and e["choices"] and e["choices"][0].get("text"):
                first = time.time() - t0
            if e.get("usage"):
                tokens = e["usage"]["completion_tokens"]
    c.close()
    return first or 0.0, tokens, time.time() - t0


def engine_gen(port):
    """(generation tokens, engine seconds spent on them) so far, from /metrics."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    c.request("GET", "/metrics")
    text = c.getresponse().read().decode()
    c.close()
    v = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            k, x = line.split()
            v[k] = float(x)
    tok, rate = v.get("psi_generation_tokens_total", 0.0), v.get("psi_generation_tokens_per_second", 0.0)
    return tok, tok / rate if rate > 0 else 0.0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-m", "--model", default=default_model())
    ap.add_argument("--psi", default=os.path.join(ROOT, "build", "psi"))
    ap.add_argument("--streams", default="1,4,8")
    ap.add_argument("-n", type=int, default=64)
    ap.add_argument("-t", "--threads", type=int, default=0)
    ap.add_argument("-c", "--ctx", type=int, default=512)
    a = ap.parse_args()
    counts = [int(x) for x in a.streams.split(",")]
    args = [a.psi, "serve", "-m", a.model, "--port", "0", "--parallel", str(max(counts)), "-c", str(a.ctx)]
    if a.threads:
        args += ["-t", str(a.threads)]
    srv = subprocess.Popen(args, stderr=subprocess.PIPE, text=True)
    port = None
    for line in srv.stderr:
        if "listening on" in line:
            port = int(line.rsplit(":", 1)[1])
        if "ready" in line or "psi serve:" not in line:
            if "ready" in line:
                break
    if not port:
        sys.exit("psi serve did not start")
    print(f"model {os.path.basename(a.model)}; {a.n} tokens per stream; psi serve --parallel {max(counts)}")
    print(f"{'streams':>8} {'gen tok/s':>10} {'x one':>6} {'decode tok/s':>13} {'x one':>6} {'engine tok/s':>13} "
          f"{'TTFT med':>9} {'TTFT max':>9} {'wall s':>7}")
    base = dbase = None
    runs = {}  # stream count -> [(gen tok/s, decode tok/s, engine tok/s), ...]
    try:
        one_stream(port, "warm up", 4)
        for n in counts:
            prompts = [f"Stream {i} of {n}: once upon a time there was" for i in range(n)]
            e0 = engine_gen(port)
            t0 = time.time()
            with concurrent.futures.ThreadPoolExecutor(n) as ex:
                res = list(ex.map(lambda p: one_stream(port, p, a.n), prompts))
            wall = time.time() - t0
            e1 = engine_gen(port)
            eps = (e1[0] - e0[0]) / (e1[1] - e0[1]) if e1[1] > e0[1] else 0.0
            tps = sum(r[1] for r in res) / wall
            base = base or tps
            ttft = [r[0] for r in res]
            # decode only: the tokens after each stream's first, over the time
            # from the earliest first token to the end (prefill left out)
            dps = sum(max(r[1] - 1, 0) for r in res) / max(wall - min(ttft), 1e-9)
            dbase = dbase or dps
            print(f"{n:>8} {tps:>10.1f} {tps / base:>6.2f} {dps:>13.1f} {dps / dbase:>6.2f} {eps:>13.1f} "
                  f"{statistics.median(ttft) * 1e3:>7.0f}ms {max(ttft) * 1e3:>7.0f}ms {wall:>7.2f}")
            runs.setdefault(n, []).append((tps, dps, eps))
        if any(len(v) > 1 for v in runs.values()) and 1 in runs:
            # repeated counts (e.g. --streams 1,8,1,8,1,8): medians per count
            # and their ratios to one stream's, the figures to compare on a
            # noisy machine
            one = [statistics.median(x[i] for x in runs[1]) for i in range(3)]
            print("medians over the repeated runs (gen, decode, engine tok/s, each × one stream's median):")
            for n in sorted(runs):
                m = [statistics.median(x[i] for x in runs[n]) for i in range(3)]
                r = [m[i] / one[i] if one[i] else 0.0 for i in range(3)]
                print(f"{n:>8} {m[0]:>10.1f} {r[0]:>6.2f} {m[1]:>13.1f} {r[1]:>6.2f} {m[2]:>13.1f} {r[2]:>6.2f}"
                      f"   ({len(runs[n])} runs)")
    finally:
        srv.terminate()
        srv.wait(60)


if __name__ == "__main__":
    main()
