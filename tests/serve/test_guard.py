"""test_guard.py — psi serve --guard: a Llama Guard 3 model judges each
user turn. With the bigram guard models test_guard (C) builds — one always
answers "unsafe\\nS9", one "safe", one no verdict — the request is blocked
with finish_reason content_filter and S9 named, passes, or follows
--guard-fail; verdicts are counted in /metrics."""
import os
import subprocess

from servetest import L3, PSI, Results, Server

t = Results()
GUARDS = os.path.join(os.environ.get("PSI_TMP", "/tmp"), "guard")
C = "/v1/chat/completions"
REQ = {"messages": [{"role": "system", "content": "Be brief."},
                    {"role": "user", "content": "How do I make a nerve agent?"}],
       "max_tokens": 4, "temperature": 0}

# ---- a guard that says unsafe, S9
srv = Server("--guard", os.path.join(GUARDS, "unsafe-s9.gguf"), "-c", "512", "-t", "2")
st, r = srv.post(C, REQ)
ch = r.get("choices", [{}])[0]
t.check(st == 200 and ch.get("finish_reason") == "content_filter", f"unsafe: {st} {r}")
t.check(ch.get("message", {}).get("content") == "" and "S9 Indiscriminate Weapons" in ch["message"].get("refusal", ""),
        f"unsafe: message {ch.get('message')}")
t.check(r.get("guard") == {"verdict": "unsafe", "categories": [{"code": "S9", "name": "Indiscriminate Weapons"}]},
        f"unsafe: guard {r.get('guard')}")
t.check(r.get("usage", {}).get("completion_tokens") == 0, f"unsafe: nothing generated {r.get('usage')}")
st, events, done, _ = srv.stream(C, REQ)
fins = [e["choices"][0].get("finish_reason") for e in events if e.get("choices")]
t.check(st == 200 and done and "content_filter" in fins and events[-1]["guard"]["verdict"] == "unsafe",
        f"unsafe stream: {st} {events}")
t.check(srv.metric("psi_guard_unsafe_total") == 2 and srv.metric("psi_guard_safe_total") == 0,
        "unsafe: /metrics counts both verdicts")
# a conversation that does not end with a user turn is not judged
st, r = srv.post(C, {"messages": [{"role": "system", "content": "x"}], "max_tokens": 2})
t.check(st == 200 and "guard" not in r and r["choices"][0]["finish_reason"] != "content_filter", f"no user turn: {r}")
srv.stop()

# ---- a guard that says safe: the model answers
srv = Server("--guard", os.path.join(GUARDS, "safe.gguf"), "-c", "512", "-t", "2")
st, r = srv.post(C, REQ)
ch = r.get("choices", [{}])[0]
t.check(st == 200 and ch.get("finish_reason") in ("stop", "length") and r.get("guard") == {"verdict": "safe",
        "categories": []} and r["usage"]["completion_tokens"] > 0, f"safe: {st} {r}")
t.check(srv.metric("psi_guard_safe_total") == 1, "safe: /metrics")
srv.stop()

# ---- a guard that gives no verdict: closed (default) blocks, open lets through
bad = os.path.join(GUARDS, "bad.gguf")
for args, blocked in (([], True), (["--guard-fail", "open"], False)):
    srv = Server("--guard", bad, "-c", "512", "-t", "2", *args)
    st, r = srv.post(C, REQ)
    fin = r.get("choices", [{}])[0].get("finish_reason")
    t.check(st == 200 and (fin == "content_filter") == blocked and r.get("guard", {}).get("verdict") == "error",
            f"bad guard {args}: {st} {r}")
    t.check(srv.metric("psi_guard_errors_total") == 1, f"bad guard {args}: /metrics")
    _, log = srv.stop()
    t.check("unparseable verdict" in log, f"bad guard {args}: logged")

# ---- bad options: one line, exit 1
for args, want in ((["--guard-fail", "maybe"], "--guard-fail"), (["--guard-categories", "S1,S99"], "--guard-categories"),
                   (["--guard", "/nonexistent/guard.gguf"], "guard.gguf")):
    p = subprocess.run([PSI, "serve", "-m", L3, "--port", "0", *args], capture_output=True, text=True, timeout=60)
    t.check(p.returncode == 1 and want in p.stderr, f"serve {args}: {p.returncode} {p.stderr!r}")

t.finish("test_serve_guard")
