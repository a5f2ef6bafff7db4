"""test_prompt_cache.py — psi serve's prompt cache: a slot keeps the KV
entries of its last request, and a prompt that begins with the same tokens
evaluates only the rest. Every answer must equal, token for token (greedy),
the answer of a server started with --no-prompt-cache; usage says
prompt_tokens_details.cached_tokens, /metrics psi_prompt_tokens_cached_total."""
import concurrent.futures
import json
import os

from servetest import TMP, Results, Server, stream_text

t = Results()
MODEL = "llama3-tiny-Q8_0.gguf"
ARGS = ("--parallel", "2", "-c", "512", "-t", "2")
srv = Server(*ARGS)
ref = Server(*ARGS, "--no-prompt-cache")
reported = 0  # cached_tokens srv has reported so far


def chat(server, msgs, n=12, stream=False):
    """(answer text, usage) of a greedy chat request."""
    global reported
    body = {"model": MODEL, "messages": msgs, "temperature": 0, "max_tokens": n}
    if stream:
        st, ev, done, _ = server.stream("/v1/chat/completions", dict(body, stream_options={"include_usage": True}))
        ok = t.check(st == 200 and done and ev and "usage" in ev[-1], f"stream: {st} {ev[-1:]}")
        text, usage = (stream_text(ev), ev[-1]["usage"]) if ok else (None, None)
    else:
        st, r = server.post("/v1/chat/completions", body)
        ok = t.check(st == 200, f"chat status {st}: {r}")
        text, usage = (r["choices"][0]["message"]["content"], r["usage"]) if ok else (None, None)
    if server is srv and usage:
        reported += usage["prompt_tokens_details"]["cached_tokens"]
    return text, usage


def cached(usage):
    return usage["prompt_tokens_details"]["cached_tokens"] if usage else None


def same(msgs, text, what, n=12):
    """The --no-prompt-cache server gives the same answer, and caches nothing."""
    want, u = chat(ref, msgs, n)
    t.check(text == want, f"{what}: {text!r} != without the cache {want!r}")
    t.check(cached(u) == 0, f"{what}: --no-prompt-cache reports cached_tokens {cached(u)}")


# ---- (1) a multi-turn chat: turn 2 sends turn 1, its answer and a new question
turn1 = [{"role": "user", "content": "Tell me a story about a cat."}]
a1, u1 = chat(srv, turn1)
t.check(cached(u1) == 0, f"turn 1 on a fresh server: cached_tokens {cached(u1)}")
same(turn1, a1, "turn 1")
turn2 = turn1 + [{"role": "assistant", "content": a1}, {"role": "user", "content": "And then?"}]
a2, u2 = chat(srv, turn2)
if u1 and u2:
    # the slot holds turn 1's prompt and the answer's tokens but the last (sampled, never evaluated);
    # the template trims the answer, so its first token may read differently the second time
    t.check(u1["prompt_tokens"] <= cached(u2) <= u1["prompt_tokens"] + u1["completion_tokens"] - 1,
            f"turn 2: cached_tokens {cached(u2)}, turn 1: {u1}")
    t.check(cached(u2) < u2["prompt_tokens"], f"turn 2: cached {cached(u2)} of {u2['prompt_tokens']}")
same(turn2, a2, "turn 2")
# turn 3, streamed: the usage chunk says cached_tokens too
turn3 = turn2 + [{"role": "assistant", "content": a2}, {"role": "user", "content": "Who was there?"}]
a3, u3 = chat(srv, turn3, stream=True)
if u2 and u3:
    t.check(cached(u3) >= u2["prompt_tokens"], f"turn 3 (streamed): cached {cached(u3)} < {u2['prompt_tokens']}")
same(turn3, a3, "turn 3")

# completions (no template): the prompt, then its answer appended — every
# evaluated token of the first request is cached
st, c1 = srv.post("/v1/completions", {"model": MODEL, "prompt": "Once upon a time", "temperature": 0, "max_tokens": 12})
if t.check(st == 200, f"completion: {st} {c1}"):
    reported += cached(c1["usage"])
    st, c2 = srv.post("/v1/completions", {"model": MODEL, "prompt": "Once upon a time" + c1["choices"][0]["text"],
                                         "temperature": 0, "max_tokens": 12})
    if t.check(st == 200, f"completion: {st} {c2}"):
        reported += cached(c2["usage"])
        want = c1["usage"]["prompt_tokens"] + c1["usage"]["completion_tokens"] - 1
        t.check(cached(c2["usage"]) == want, f"prompt + its answer: cached {c2['usage']}, want {want}")
        st, r = ref.post("/v1/completions", {"model": MODEL, "prompt": "Once upon a time" + c1["choices"][0]["text"],
                                            "temperature": 0, "max_tokens": 12})
        t.check(st == 200 and r["choices"][0]["text"] == c2["choices"][0]["text"],
                f"prompt + its answer: {c2['choices'][0]['text']!r} != without the cache {r}")

# ---- (2) the same prompt twice: all but the last token cached, the same answer
for stream in (False, True):
    p = [{"role": "user", "content": f"Count to ten, {'streamed' if stream else 'plainly'}."}]
    b1, v1 = chat(srv, p, stream=stream)
    b2, v2 = chat(srv, p, stream=stream)
    t.check(v2 and cached(v2) == v2["prompt_tokens"] - 1, f"same prompt twice: {v2}")
    t.check(b1 == b2, f"same prompt twice: {b1!r} then {b2!r}")
    same(p, b2, f"same prompt twice (stream {stream})")

# ---- a prompt that shares only part of what the slot holds (an earlier turn
# edited): the entries past the shared part are overwritten, never read
edited = [{"role": "user", "content": "Tell me a story about a dog."}]
e1, w1 = chat(srv, edited)
if u1 and w1:
    t.check(0 < cached(w1) < u1["prompt_tokens"] - 1, f"edited prompt: cached {cached(w1)} of {u1['prompt_tokens']}")
same(edited, e1, "edited prompt")
# a prompt that is a strict prefix of what the slot holds (turn 1 again after turn 2 there)
x2, _ = chat(srv, turn2)
x1, y1 = chat(srv, turn1)
t.check(y1 and u1 and cached(y1) == u1["prompt_tokens"] - 1, f"turn 1 after turn 2: {y1}")
t.check(x1 == a1 and x2 == a2, f"turn 1 after turn 2: {x1!r} != {a1!r} or {x2!r} != {a2!r}")

# ---- (3) --parallel 2, two conversations interleaved: each finds its own slot
convs = [[{"role": "user", "content": "Describe the sea."}], [{"role": "user", "content": "List three fruits."}]]
pool = concurrent.futures.ThreadPoolExecutor(2)
for turn in range(3):
    got = list(pool.map(lambda m: chat(srv, m, 10), convs))
    for i, (text, usage) in enumerate(got):
        same(convs[i], text, f"conversation {i} turn {turn + 1}", 10)
        if turn and usage:
            t.check(cached(usage) >= prev[i]["prompt_tokens"],
                    f"conversation {i} turn {turn + 1}: cached {cached(usage)} < {prev[i]['prompt_tokens']}")
    prev = [u for _, u in got]
    convs = [c + [{"role": "assistant", "content": g[0]}, {"role": "user", "content": "More."}]
             for c, g in zip(convs, got)]
pool.shutdown()

# ---- (4) the counter: the sum of what the answers reported
n = srv.metric("psi_prompt_tokens_cached_total")
t.check(n is not None and n > 0 and n == reported, f"psi_prompt_tokens_cached_total {n}, answers reported {reported}")
t.check(ref.metric("psi_prompt_tokens_cached_total") == 0, "--no-prompt-cache: the counter stays 0")

# ---- a slot's tokens serve only the API key that left them (cached_tokens
# would tell one key what another key's prompts begin with)
keyfile = os.path.join(TMP, "prompt_cache_keys.txt")
with open(keyfile, "w") as f:
    f.write("sk-cache-one\nsk-cache-two\n")
audit = os.path.join(TMP, "prompt_cache_audit.jsonl")
if os.path.exists(audit):
    os.unlink(audit)
ks = Server("--api-key-file", keyfile, "--parallel", "1", "-c", "256", "-t", "2", "--audit-log", audit)
p = {"model": MODEL, "messages": [{"role": "user", "content": "Hello there."}], "temperature": 0, "max_tokens": 4}
seen = []
for key in ("one", "one", "two", "two", "one"):
    st, r = ks.post("/v1/chat/completions", p, headers={"Authorization": "Bearer sk-cache-" + key})
    seen.append((st, cached(r.get("usage")), r.get("usage", {}).get("prompt_tokens")))
n = seen[0][2]
t.check(seen == [(200, 0, n), (200, n - 1, n), (200, 0, n), (200, n - 1, n), (200, 0, n)],
        f"keys one, one, two, two, one: (status, cached, prompt) {seen}")
rc, log = ks.stop()
t.check(rc == 0, f"clean exit {rc}: {log[-500:]}")
with open(audit) as f:
    lines = [json.loads(x) for x in f]
t.check([(a["key"], a["tokens_cached"], a["tokens_in"]) for a in lines] ==
        [("key" + ("1" if k == "one" else "2"), c, p) for k, (_, c, p) in zip(("one", "one", "two", "two", "one"), seen)],
        f"audit log tokens_cached: {lines}")

for s in (srv, ref):
    rc, log = s.stop()
    t.check(rc == 0, f"clean exit {rc}: {log[-500:]}")
t.finish("test_serve_prompt_cache")
