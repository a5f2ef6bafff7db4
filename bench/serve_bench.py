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
With --llama-server PATH (or $LLAMA_SERVER), llama.cpp's llama-server runs
on the same file beside psi (as many slots, each psi's context, the same
threads), the two taking turns round by round, which going first
alternating; then each server's medians and psi / llama.cpp per count.
Prints figures; passes or fails on nothing.

  python3 bench/serve_bench.py [-m MODEL] [--streams 1,4,8] [-n 64] [-t THREADS] [--llama-server PATH]
Default model: the Llama-3.2-1B-shape Q8_0 file `make bench` builds in
$PSI_BENCH_DIR (~/.cache/psi-bench), else the llama3-tiny reference model.
"""
import argparse
import concurrent.futures
import glob
import http.client
import json
import os
import socket
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
    """(generation tokens, engine seconds spent on them) so far, from psi's /metrics."""
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


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_psi(a, parallel):
    args = [a.psi, "serve", "-m", a.model, "--port", "0", "--parallel", str(parallel), "-c", str(a.ctx)]
    if a.threads:
        args += ["-t", str(a.threads)]
    srv = subprocess.Popen(args, stderr=subprocess.PIPE, text=True)
    port, said = None, []
    for line in srv.stderr:
        said.append(line.strip())
        if "listening on" in line:
            port = int(line.rsplit(":", 1)[1])
        if "ready" in line:
            break
    else:  # psi serve exited before it was ready
        srv.wait(60)
        sys.exit(said[-1] if said else "psi serve did not start")
    return srv, port


def start_llama(a, parallel):
    """llama.cpp's llama-server on the same file: as many slots, each with
    psi's context (llama-server's -c is the total it splits among them),
    the same threads, continuous batching (its default)."""
    port = free_port()
    args = [a.llama_server, "-m", a.model, "--host", "127.0.0.1", "--port", str(port), "-np", str(parallel),
            "-c", str(a.ctx * parallel), "-t", str(a.threads or os.cpu_count() or 2)]
    srv = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline:
        if srv.poll() is not None:
            sys.exit(f"llama-server exited ({srv.returncode}): {' '.join(args)}")
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            c.request("GET", "/health")
            if c.getresponse().status == 200:
                return srv, port
        except OSError:
            pass
        time.sleep(0.2)
    srv.kill()
    sys.exit("llama-server did not become ready")


def run_round(port, n, tokens, engine):
    """n concurrent streams: (gen tok/s, decode tok/s, engine tok/s or None, TTFTs, wall s)."""
    prompts = [f"Stream {i} of {n}: once upon a time there was" for i in range(n)]
    e0 = engine_gen(port) if engine else None
    t0 = time.time()
    with concurrent.futures.ThreadPoolExecutor(n) as ex:
        res = list(ex.map(lambda p: one_stream(port, p, tokens), prompts))
    wall = time.time() - t0
    eps = None
    if engine:
        e1 = engine_gen(port)
        eps = (e1[0] - e0[0]) / (e1[1] - e0[1]) if e1[1] > e0[1] else 0.0
    ttft = [r[0] for r in res]
    # decode only: the tokens after each stream's first, over the time from
    # the earliest first token to the end (prefill left out)
    dps = sum(max(r[1] - 1, 0) for r in res) / max(wall - min(ttft), 1e-9)
    return sum(r[1] for r in res) / wall, dps, eps, ttft, wall


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-m", "--model", default=default_model())
    ap.add_argument("--psi", default=os.path.join(ROOT, "build", "psi"))
    ap.add_argument("--llama-server", default=os.environ.get("LLAMA_SERVER"),
                    help="llama.cpp's llama-server binary: run it on the same file, interleaved (default $LLAMA_SERVER)")
    ap.add_argument("--streams", default="1,4,8")
    ap.add_argument("-n", type=int, default=64)
    ap.add_argument("-t", "--threads", type=int, default=0)
    ap.add_argument("-c", "--ctx", type=int, default=512)
    a = ap.parse_args()
    counts = [int(x) for x in a.streams.split(",")]
    parallel = max(counts)
    servers = [("psi",) + start_psi(a, parallel)]
    try:
        if a.llama_server:
            servers.append(("llama.cpp",) + start_llama(a, parallel))
        print(f"model {os.path.basename(a.model)}; {a.n} tokens per stream; --parallel {parallel}; "
              + ", ".join(name for name, _, _ in servers))
        print(f"{'server':>9} {'streams':>8} {'gen tok/s':>10} {'x one':>6} {'decode tok/s':>13} {'x one':>6} "
              f"{'engine tok/s':>13} {'TTFT med':>9} {'TTFT max':>9} {'wall s':>7}")
        runs = {}  # (server, stream count) -> [(gen, decode, engine tok/s, TTFT median), ...]
        first = {}
        for name, _, port in servers:
            one_stream(port, "warm up", 4)
        for k, n in enumerate(counts):
            # the servers take turns, and which goes first alternates
            for name, _, port in (servers if k % 2 == 0 else servers[::-1]):
                tps, dps, eps, ttft, wall = run_round(port, n, a.n, name == "psi")
                base = first.setdefault(name, (tps, dps))
                engine = f"{eps:>13.1f}" if eps is not None else f"{'-':>13}"
                print(f"{name:>9} {n:>8} {tps:>10.1f} {tps / base[0]:>6.2f} {dps:>13.1f} {dps / base[1]:>6.2f} "
                      f"{engine} {statistics.median(ttft) * 1e3:>7.0f}ms {max(ttft) * 1e3:>7.0f}ms {wall:>7.2f}")
                runs.setdefault((name, n), []).append((tps, dps, eps or 0.0, statistics.median(ttft)))
        repeated = any(len(v) > 1 for v in runs.values())
        if repeated or len(servers) > 1:
            # medians per server and count, each against that server's one
            # stream (with 1 among the counts), the figures to compare on a
            # noisy machine
            print("medians (gen, decode, engine tok/s, each × the server's one-stream median; TTFT):")
            med = {key: [statistics.median(x[i] for x in v) for i in range(4)] for key, v in runs.items()}
            for name, _, _ in servers:
                one = med.get((name, 1))
                for n in sorted({n for s, n in runs if s == name}):
                    m = med[(name, n)]
                    # × one stream only where 1 was among the counts
                    r = [f"{m[i] / one[i]:>6.2f}" if one and one[i] else f"{'-':>6}" for i in range(3)]
                    engine = f"{m[2]:>13.1f} {r[2]}" if name == "psi" else f"{'-':>13} {'':>6}"
                    print(f"{name:>9} {n:>8} {m[0]:>10.1f} {r[0]} {m[1]:>13.1f} {r[1]} {engine} "
                          f"{m[3] * 1e3:>7.0f}ms   ({len(runs[(name, n)])} runs)")
            if len(servers) > 1:
                print("psi / llama.cpp, medians: " + "; ".join(
                    f"{n} streams gen {med[('psi', n)][0] / med[('llama.cpp', n)][0]:.2f}×, "
                    f"decode {med[('psi', n)][1] / med[('llama.cpp', n)][1]:.2f}×, "
                    f"TTFT {med[('psi', n)][3] / med[('llama.cpp', n)][3]:.2f}×"
                    for n in sorted({n for _, n in runs})))
    finally:
        for _, srv, _ in servers:
            srv.terminate()
            srv.wait(60)


if __name__ == "__main__":
    main()
