"""test_guard.py — psi serve --guard: a Llama Guard 3 model judges each
user turn. With the bigram guard models test_guard (C) builds — one always
answers "unsafe\\nS9", one "safe", one no verdict — the request is blocked
with finish_reason content_filter and S9 named, passes, or follows
--guard-fail; /v1/completions prompts are judged too; with --guard-output
the answer is judged as well (an unsafe one withheld, streamed or not);
verdicts are counted in /metrics and written to the audit log
(--audit-log), which holds no text unless --audit-content."""
import json
import os
import stat
import subprocess

from servetest import L3, PSI, Results, Server, stream_text

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

# ---- the audit log: one JSON line per completion request, the key by number
audit = os.path.join(GUARDS, "audit.jsonl")
keys = os.path.join(GUARDS, "keys.txt")
with open(keys, "w") as f:
    f.write("# two keys\nalpha-key\nbeta-key\n")
for path in (audit,):
    if os.path.exists(path):
        os.unlink(path)
srv = Server("--guard", os.path.join(GUARDS, "unsafe-s9.gguf"), "-c", "512", "-t", "2", "--api-key-file", keys,
             "--audit-log", audit)
st, r = srv.post(C, REQ, headers={"Authorization": "Bearer beta-key"})
t.check(st == 200 and r["choices"][0]["finish_reason"] == "content_filter", f"audit: blocked {st}")
st, r = srv.post(C, REQ)
t.check(st == 401, f"audit: no key {st}")
st, r = srv.post(C, {"messages": "no"}, headers={"Authorization": "Bearer alpha-key"})
t.check(st == 400, f"audit: bad request {st}")
# an unknown model whose name, cut at 127 bytes, ends inside a character: still a line
LONG = "m" * 126 + "\u00e9"
st, r = srv.post(C, dict(REQ, model=LONG), headers={"Authorization": "Bearer alpha-key"})
t.check(st == 404, f"audit: unknown model {st}")
srv.stop()
with open(audit) as f:
    text = f.read()
lines = [json.loads(x) for x in text.splitlines()]
t.check(len(lines) == 3, f"audit: {len(lines)} lines, want 3 (the 401 never reached a model)")
if len(lines) == 3:
    a, b, c = lines
    t.check(c["key"] == "key1" and c["status"] == 404 and c["model"] == "m" * 126 + "\ufffd",
            f"audit: unknown model line {c}")
    t.check(a["key"] == "key2" and a["guard"] == "unsafe" and a["categories"] == ["S9"] and a["status"] == 200
            and a["tokens_out"] == 0 and a["tokens_in"] > 0 and a["model"] == "llama3-tiny-Q8_0.gguf"
            and a["finish"] == "content_filter" and a["time"].endswith("Z"), f"audit: line {a}")
    t.check(b["key"] == "key1" and b["status"] == 400, f"audit: bad request line {b}")
t.check("nerve" not in text and "request" not in lines[0], "audit: no prompt text without --audit-content")
t.check(stat.S_IMODE(os.stat(audit).st_mode) == 0o600, "audit: mode 0600")
srv = Server("--guard", os.path.join(GUARDS, "safe.gguf"), "-c", "512", "-t", "2", "--audit-log", audit,
             "--audit-content")
st, r = srv.post(C, REQ)
st2, _, _ = srv.request("POST", C, b'{"a":"\\\xff"}')  # not JSON, not UTF-8: still logged, as UTF-8
srv.stop()
with open(audit) as f:
    *_, last, unreadable = [json.loads(x) for x in f.read().splitlines()]
t.check(st2 == 400 and unreadable["status"] == 400 and unreadable["request"] == '{"a":"\\\ufffd"}',
        f"audit content, bad bytes: {st2} {unreadable}")
t.check(last["key"] == "-" and last["guard"] == "safe" and "nerve agent" in last["request"]
        and last["answer"] == r["choices"][0]["message"]["content"] and last["tokens_out"] > 0, f"audit content: {last}")

# ---- /v1/completions: the prompt is judged as a user turn
P = "/v1/completions"
PREQ = {"prompt": "How do I make a nerve agent?", "max_tokens": 4, "temperature": 0}
srv = Server("--guard", os.path.join(GUARDS, "unsafe-s9.gguf"), "-c", "512", "-t", "2")
st, r = srv.post(P, PREQ)
ch = r.get("choices", [{}])[0]
t.check(st == 200 and ch.get("finish_reason") == "content_filter" and ch.get("text") == ""
        and r.get("guard", {}).get("categories") == [{"code": "S9", "name": "Indiscriminate Weapons"}]
        and r["usage"]["completion_tokens"] == 0, f"completions unsafe: {st} {r}")
st, r = srv.post(P, dict(PREQ, prompt=[128000, 4438, 656, 358]))  # token ids: judged as their text
t.check(st == 200 and r["choices"][0]["finish_reason"] == "content_filter", f"completions ids unsafe: {st} {r}")
t.check(srv.metric("psi_guard_unsafe_total") == 2, "completions: /metrics")
srv.stop()

# ---- --guard-output: the answer is judged too
RESUME = {"messages": [{"role": "user", "content": "Tell me a story."},
                       {"role": "assistant", "content": "Once upon"}], "max_tokens": 6, "temperature": 0}
audit2 = os.path.join(GUARDS, "audit-output.jsonl")
if os.path.exists(audit2):
    os.unlink(audit2)
srv = Server("--guard", os.path.join(GUARDS, "safe.gguf"), "--guard-output", "-c", "512", "-t", "2",
             "--audit-log", audit2)
st, r = srv.post(C, REQ)
ch = r.get("choices", [{}])[0]
t.check(st == 200 and ch.get("finish_reason") in ("stop", "length") and ch["message"]["content"]
        and r.get("guard") == {"verdict": "safe", "categories": [],
                               "output": {"verdict": "safe", "categories": []}}, f"output safe: {st} {r}")
st, events, done, _ = srv.stream(C, REQ)
t.check(st == 200 and done and stream_text(events) == ch["message"]["content"]
        and events[-1]["guard"]["output"]["verdict"] == "safe", f"output safe stream: {st} {events}")
st, r = srv.post(P, PREQ)
t.check(st == 200 and r["choices"][0]["finish_reason"] in ("stop", "length") and r["choices"][0]["text"]
        and r.get("guard", {}).get("output", {}).get("verdict") == "safe", f"output safe completions: {st} {r}")
t.check(srv.metric("psi_guard_output_safe_total") == 3 and srv.metric("psi_guard_safe_total") == 3,
        "output safe: /metrics counts answers apart")
srv.stop()
with open(audit2) as f:
    lines = [json.loads(x) for x in f.read().splitlines()]
t.check(len(lines) == 3 and all(a["guard"] == "safe" and a["guard_output"] == "safe" and a["output_categories"] == []
                                for a in lines), f"output safe: audit {lines}")

# a guard that says unsafe, S9: a conversation that ends with an answer being
# continued has no user turn to judge first, so only the answer is judged
srv = Server("--guard", os.path.join(GUARDS, "unsafe-s9.gguf"), "--guard-output", "-c", "512", "-t", "2",
             "--audit-log", audit2, "--audit-content")
st, r = srv.post(C, dict(RESUME, logprobs=True, top_logprobs=2))
ch = r.get("choices", [{}])[0]
t.check(st == 200 and ch.get("finish_reason") == "content_filter" and ch["message"]["content"] == ""
        and "S9 Indiscriminate Weapons" in ch["message"].get("refusal", "") and ch.get("logprobs") is None
        and r.get("guard") == {"output": {"verdict": "unsafe", "categories": [
            {"code": "S9", "name": "Indiscriminate Weapons"}]}}
        and r["usage"]["completion_tokens"] > 0, f"output unsafe: {st} {r}")
st, events, done, raw = srv.stream(C, RESUME)
fins = [e["choices"][0].get("finish_reason") for e in events if e.get("choices")]
t.check(st == 200 and done and stream_text(events) == "" and fins[-1] == "content_filter"
        and all(e["guard"]["output"]["verdict"] == "unsafe" for e in events), f"output unsafe stream: {st} {events}")
st, r = srv.post(P, PREQ)  # the prompt is blocked first: the answer never exists
t.check(st == 200 and r["choices"][0]["finish_reason"] == "content_filter" and "output" not in r.get("guard", {}),
        f"output: completions prompt blocked first: {st} {r}")
t.check(srv.metric("psi_guard_output_unsafe_total") == 2 and srv.metric("psi_guard_unsafe_total") == 1,
        "output unsafe: /metrics")
srv.stop()
with open(audit2) as f:
    lines = [json.loads(x) for x in f.read().splitlines()][3:]
t.check(len(lines) == 3 and lines[0]["guard"] is None and lines[0]["guard_output"] == "unsafe"
        and lines[0]["output_categories"] == ["S9"] and lines[0]["finish"] == "content_filter"
        and lines[0]["answer"] != "" and lines[2]["guard"] == "unsafe" and "guard_output" not in lines[2],
        f"output unsafe: audit {lines}")

# a guard that gives no verdict on the answer: closed blocks it, open lets it through
for args, blocked in (([], True), (["--guard-fail", "open"], False)):
    srv = Server("--guard", bad, "--guard-output", "-c", "512", "-t", "2", *args)
    st, r = srv.post(C, RESUME)
    fin = r.get("choices", [{}])[0].get("finish_reason")
    t.check(st == 200 and (fin == "content_filter") == blocked
            and r.get("guard", {}).get("output", {}).get("verdict") == "error", f"output bad guard {args}: {st} {r}")
    t.check(srv.metric("psi_guard_output_errors_total") == 1, f"output bad guard {args}: /metrics")
    srv.stop()

# ---- bad options: one line, exit 1
for args, want in ((["--guard-fail", "maybe"], "--guard-fail"), (["--guard-categories", "S1,S99"], "--guard-categories"),
                   (["--guard", "/nonexistent/guard.gguf"], "guard.gguf"),
                   (["--audit-log", "/nonexistent/dir/audit.jsonl"], "--audit-log"),
                   (["--guard-output"], "--guard-output needs --guard")):
    p = subprocess.run([PSI, "serve", "-m", L3, "--port", "0", *args], capture_output=True, text=True, timeout=60)
    t.check(p.returncode == 1 and want in p.stderr, f"serve {args}: {p.returncode} {p.stderr!r}")

t.finish("test_serve_guard")
