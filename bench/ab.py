#!/usr/bin/env python3
"""ab.py — two psi builds side by side on one model, for a noisy machine.

Runs `psi bench --json` of build A and build B alternately (A B B A A B …,
so neither always goes first), -r rounds, one repetition each with its own
warm-up, and prints every round's tokens/s, each build's median, and the
median and range of B/A over the rounds (each round's B against the A
run beside it). A change smaller than that range has not been measured.
Prints figures; passes or fails on nothing.

  python3 bench/ab.py A/psi B/psi -m MODEL [-p 512] [-n 128] [-t 2] [-r 6]
A build to compare against: git worktree add /tmp/old REV && make -C /tmp/old
(or copy build/psi aside before the change). Two kernel paths of one build:
  python3 bench/ab.py build/psi build/psi --cpu-a avx512 --cpu-b amx -m MODEL
"""
import argparse
import os
import statistics
import subprocess
import sys

from run_bench import psi_once, test_name


def bench(psi, model, p, n, threads, cpu):
    res = psi_once(model, threads, p, n, psi=psi, cpu=cpu)
    got = res[0].get("cpu_kernels") if res else None
    if cpu and got != cpu:  # psi warns and takes another path where the CPU lacks this one
        sys.exit(f"ab.py: PSI_CPU={cpu}: {psi} runs {got} on this CPU")
    return {test_name(t): t["avg_ts"] for t in res}


def main():
    ap = argparse.ArgumentParser(description="two psi builds side by side (psi bench, alternating)")
    ap.add_argument("a", help="build A's psi binary (the baseline)")
    ap.add_argument("b", help="build B's psi binary")
    ap.add_argument("-m", "--model", required=True)
    ap.add_argument("-p", type=int, default=512, help="prompt tokens (0: no prompt test)")
    ap.add_argument("-n", type=int, default=128, help="generated tokens (0: no generation test)")
    ap.add_argument("-t", "--threads", type=int, default=os.cpu_count() or 2, help="threads (default: all cores)")
    ap.add_argument("-r", "--rounds", type=int, default=6)
    ap.add_argument("--cpu-a", help="PSI_CPU for build A (a kernel path: avx2, avx512, amx, generic)")
    ap.add_argument("--cpu-b", help="PSI_CPU for build B")
    a = ap.parse_args()
    if a.rounds < 1 or (a.p <= 0 and a.n <= 0):
        sys.exit("ab.py: need at least one round and one test (-p or -n)")
    runs = {"A": [], "B": []}
    for i in range(a.rounds):
        order = ("A", "B") if i % 2 == 0 else ("B", "A")
        for who in order:
            try:
                runs[who].append(bench(a.a if who == "A" else a.b, a.model, a.p, a.n, a.threads,
                                       a.cpu_a if who == "A" else a.cpu_b))
            except subprocess.CalledProcessError as e:
                sys.exit(f"ab.py: build {who} failed: {e.stderr.strip() or e}")
        print(f"round {i + 1}: " + "  ".join(f"{t} A {runs['A'][-1][t]:.1f} B {runs['B'][-1][t]:.1f}"
                                             for t in runs["A"][-1]), flush=True)
    print(f"{'test':>7} {'A median':>9} {'B median':>9} {'B/A median':>11} {'B/A range':>14}   ({a.rounds} rounds)")
    for t in runs["A"][0]:
        va = [r[t] for r in runs["A"]]
        vb = [r[t] for r in runs["B"]]
        ratios = [y / x for x, y in zip(va, vb) if x > 0]
        print(f"{t:>7} {statistics.median(va):>9.1f} {statistics.median(vb):>9.1f} "
              f"{statistics.median(ratios):>11.3f} {min(ratios):>6.3f}–{max(ratios):.3f}")


if __name__ == "__main__":
    main()
