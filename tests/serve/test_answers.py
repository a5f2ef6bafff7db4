"""test_answers.py — psi serve gives the answers psi run gives: greedy
chat and completions equal `psi run` on the same prompt; 16 concurrent
streamed greedy requests (long prompts prefilled in chunks while others
generate) each get exactly the text they get alone; stop strings, usage,
logprobs, penalties, logit_bias, seeds, SSE framing; a client that disconnects frees
its slot; SIGTERM shuts down cleanly."""
import concurrent.futures
import json
import math
import signal
import socket
import subprocess
import time

from servetest import L3, PSI, STORIES, Results, Server, llama3_chat_text, psi_run, stream_text

t = Results()
MODEL = "llama3-tiny-Q8_0.gguf"
srv = Server("--parallel", "4", "-c", "256", "-t", "2")

# ---- one request at a time against psi run
q = "What is the capital of France?"
msgs = [{"role": "user", "content": q}]
st, r = srv.post("/v1/chat/completions", {"model": MODEL, "messages": msgs, "temperature": 0, "max_tokens": 8})
want = psi_run("--parse-special", "--no-bos", "-p", llama3_chat_text(msgs), "-n", "8")
t.check(st == 200, f"chat status {st}: {r}")
if st == 200:
    t.check(r["choices"][0]["message"] == {"role": "assistant", "content": want}, f"chat {r} != psi run {want!r}")
    t.check(r["object"] == "chat.completion" and r["model"] == MODEL and r["id"].startswith("chatcmpl-"), f"envelope {r}")
    t.check(r["usage"] == {"prompt_tokens": 17, "completion_tokens": 8, "total_tokens": 25,
                            "prompt_tokens_details": {"cached_tokens": 0}}, f"usage {r['usage']}")
    t.check(r["choices"][0]["finish_reason"] == "length", "finish_reason length")

for prompt in ["Once upon a time", "The quick brown fox", "ü€ 漢字 🙂 and"]:
    st, r = srv.post("/v1/completions", {"model": MODEL, "prompt": prompt, "temperature": 0, "max_tokens": 12})
    want = psi_run("-p", prompt, "-n", "12")
    t.check(st == 200 and r["choices"][0]["text"] == want, f"completion of {prompt!r}: {r} != psi run {want!r}")
    t.check(st == 200 and r["object"] == "text_completion", "completion object")

# token ids as the prompt
st, r = srv.post("/v1/completions", {"prompt": [128000, 12805, 5304, 264, 892], "temperature": 0, "max_tokens": 6})
want = psi_run("--tokens", "128000 12805 5304 264 892", "-n", "6")
t.check(st == 200 and r["choices"][0]["text"] == want, f"token-id prompt: {r} != {want!r}")

# streamed chat: role first, whole characters, finish, usage, [DONE]
st, ev, done, raw = srv.stream("/v1/chat/completions", {"messages": msgs, "temperature": 0, "max_tokens": 8,
                                                        "stream_options": {"include_usage": True}})
want = psi_run("--parse-special", "--no-bos", "-p", llama3_chat_text(msgs), "-n", "8")
t.check(st == 200 and done, f"stream status {st}, [DONE] {done}")
t.check(ev and ev[0]["choices"][0]["delta"].get("role") == "assistant", "first chunk carries the role")
t.check(stream_text(ev) == want, f"streamed text {stream_text(ev)!r} != {want!r}")
t.check(ev and ev[-1]["choices"] == [] and ev[-1]["usage"]["completion_tokens"] == 8, "usage chunk last")
t.check(len(ev) > 2 and ev[-2]["choices"][0]["finish_reason"] == "length", "finish chunk")
t.check(all(e["object"] == "chat.completion.chunk" for e in ev), "chunk objects")
t.check(raw.endswith(b"data: [DONE]\n\n") and raw.startswith(b"data: {"), "SSE framing")

# ---- stop strings: cut before the stop, never leaked partially in a stream
base = psi_run("-p", "Once upon a time", "-n", "12")
words = base.split()
if len(words) >= 3:
    stop = words[2][:4]
    cut = base[: base.index(stop)]
    st, r = srv.post("/v1/completions", {"prompt": "Once upon a time", "temperature": 0, "max_tokens": 12, "stop": [stop]})
    t.check(st == 200 and r["choices"][0]["text"] == cut and r["choices"][0]["finish_reason"] == "stop",
            f"stop {stop!r}: {r} want {cut!r}")
    st, ev, done, _ = srv.stream("/v1/completions", {"prompt": "Once upon a time", "temperature": 0, "max_tokens": 12,
                                                     "stop": stop})
    t.check(stream_text(ev) == cut and done, f"streamed stop: {stream_text(ev)!r} want {cut!r}")
    t.check(ev[-1]["choices"][0]["finish_reason"] == "stop", "streamed finish_reason stop")

# ---- logprobs: the chosen token is the top one under greedy; probabilities sum to <= 1
st, r = srv.post("/v1/chat/completions", {"messages": msgs, "temperature": 0, "max_tokens": 4, "logprobs": True,
                                          "top_logprobs": 3})
lp = r["choices"][0]["logprobs"]["content"] if st == 200 else []
t.check(len(lp) == 4, f"4 logprobs entries: {r}")
for e in lp:
    t.check(len(e["top_logprobs"]) == 3 and e["top_logprobs"][0]["logprob"] == e["logprob"]
            and e["top_logprobs"][0]["token"] == e["token"] and e["logprob"] <= 0
            and sum(math.exp(x["logprob"]) for x in e["top_logprobs"]) <= 1.0001, f"logprob entry {e}")
t.check("".join(bytes(e["bytes"]).decode("utf-8", "replace") for e in lp) == r["choices"][0]["message"]["content"],
        "logprob bytes spell the answer")
st, r = srv.post("/v1/completions", {"prompt": "Once upon a time", "temperature": 0, "max_tokens": 3, "logprobs": 2})
t.check(st == 200 and len(r["choices"][0]["logprobs"]["tokens"]) == 3, f"completions logprobs {r}")

# ---- sampling: same seed same text
body = {"prompt": "Once upon a time", "temperature": 0.9, "max_tokens": 16, "seed": 42}
a = srv.post("/v1/completions", body)[1]["choices"][0]["text"]
b = srv.post("/v1/completions", body)[1]["choices"][0]["text"]
t.check(a == b, "same seed, same text")

# ---- 4 concurrent streams on the Llama 3 vocabulary (multi-byte characters), each as when alone
def run4(i):
    st, ev, done, _ = srv.stream("/v1/chat/completions", {"messages": [{"role": "user", "content": f"{i}: ü€ 漢字 🙂"}],
                                                          "temperature": 0, "max_tokens": 6})
    return stream_text(ev) if st == 200 and done else None


alone4 = [run4(i) for i in range(4)]
with concurrent.futures.ThreadPoolExecutor(4) as ex:
    together4 = list(ex.map(run4, range(4)))
t.check(None not in alone4 and together4 == alone4, f"4 llama3 streams together {together4} != alone {alone4}")
srv.stop()

# ---- stories260K (a real trained SentencePiece model, fast enough for many streams under ASan):
# greedy equals psi run; frequency/presence penalties change the story
srv = Server("--parallel", "16", "-c", "512", "--prefill-chunk", "64", "-t", "2", model=STORIES)
st, r = srv.post("/v1/completions", {"prompt": "Once upon a time", "temperature": 0, "max_tokens": 40})
want = psi_run("-p", "Once upon a time", "-n", "40", model=STORIES)
t.check(st == 200 and r["choices"][0]["text"] == want, f"stories260K: {r} != psi run {want!r}")
st, p = srv.post("/v1/completions", {"prompt": "Once upon a time", "temperature": 0, "max_tokens": 40,
                                     "frequency_penalty": 1.5, "presence_penalty": 0.5})
t.check(st == 200 and p["choices"][0]["text"] != want and p["usage"]["completion_tokens"] > 0,
        f"penalties change the story: {p}")
# logit_bias: -100 keeps the greedy first token out of the answer, +100 makes a token every token
ids = json.loads(subprocess.run([PSI, "run", "-m", STORIES, "--temp", "0", "-p", "Once upon a time", "-n", "8",
                                 "--json"], capture_output=True, timeout=60).stdout)["tokens"]
st, g = srv.post("/v1/completions", {"prompt": "Once upon a time", "temperature": 0, "max_tokens": 8, "logprobs": 1})
pieces = g["choices"][0]["logprobs"]["tokens"] if st == 200 else []
t.check(len(pieces) == 8 == len(ids), f"greedy pieces {pieces} ids {ids}")
st, b = srv.post("/v1/completions", {"prompt": "Once upon a time", "temperature": 0, "max_tokens": 8, "logprobs": 1,
                                     "logit_bias": {str(ids[0]): -100}})
banned = b["choices"][0]["logprobs"]["tokens"] if st == 200 else []
t.check(st == 200 and len(banned) > 0 and banned[0] != pieces[0] and b["choices"][0]["text"] != g["choices"][0]["text"],
        f"logit_bias -100 on {ids[0]} ({pieces[:1]}): {b}")
st, f = srv.post("/v1/completions", {"prompt": "Once upon a time", "temperature": 0.7, "seed": 3, "max_tokens": 5,
                                     "logprobs": 1, "logit_bias": {str(ids[3]): 100, str(ids[4]): -5}})
forced = f["choices"][0]["logprobs"]["tokens"] if st == 200 else []
t.check(st == 200 and len(pieces) > 3 and forced == [pieces[3]] * 5, f"logit_bias +100 on {ids[3]}: {forced}")

# ---- 16 concurrent streamed greedy requests, each as when alone
filler = " ".join(["the little dog ran to the park and"] * 20)  # ~180 tokens: prefilled in 64-token chunks
starts = ["Once upon a time", "Lily and Tom", "The sun was", "One day, a cat", "There was a big"]
prompts = [f"{starts[i % 5]} {i}" + (" " + filler if i % 4 == 0 else "") for i in range(16)]


def one(i, stream=True):
    body = {"prompt": prompts[i], "temperature": 0, "max_tokens": 48}
    if stream:
        st, ev, done, _ = srv.stream("/v1/completions", body)
        return st, stream_text(ev), done
    st, r = srv.post("/v1/completions", body)
    return st, r["choices"][0]["text"], True


alone = [one(i) for i in range(16)]
t.check(all(a[0] == 200 and a[2] for a in alone), "every request alone finished")
for i in (0, 5, 7):
    t.check(alone[i][1] == psi_run("-p", prompts[i], "-n", "48", "-c", "512", model=STORIES), f"alone {i} == psi run")
t0 = time.time()
with concurrent.futures.ThreadPoolExecutor(16) as ex:
    together = list(ex.map(one, range(16)))
dt = time.time() - t0
t.check(all(x[0] == 200 and x[2] for x in together), f"all 16 concurrent streams finished: {[x[0] for x in together]}")
for i in range(16):
    t.check(together[i][1] == alone[i][1], f"stream {i} together {together[i][1]!r} != alone {alone[i][1]!r}")
print(f"16 concurrent streams in {dt:.2f} s; {srv.metric('psi_engine_steps_total'):.0f} engine steps so far")

# ---- a client that disconnects mid-stream frees its slot within a step
seen = []
gen0 = srv.metric("psi_generation_tokens_total")
st, ev, done, _ = srv.stream("/v1/completions", {"prompt": "Once upon a time", "temperature": 0, "max_tokens": 500,
                                                 "ignore_eos": True}, on_event=lambda e: len(seen.append(e) or seen) < 3)
t.check(st == 200 and not done, "stream cut by the client")
t.check(srv.slots_freed(), "slot freed after the client left")
gen = srv.metric("psi_generation_tokens_total")
t.check(gen - gen0 < 500, f"generation stopped early: {gen - gen0:.0f} of 500 tokens")
time.sleep(0.3)
t.check(srv.metric("psi_generation_tokens_total") == gen, "no tokens generated for a departed client")

# /metrics
st, _, data = srv.request("GET", "/metrics")
text = data.decode()
for name in ["psi_http_requests_total", "psi_prompt_tokens_total", "psi_generation_tokens_total", "psi_queue_depth",
             "psi_slots_active", "psi_prompt_tokens_per_second", "psi_generation_tokens_per_second"]:
    t.check(f"# TYPE {name} " in text and f"\n{name} " in text, f"/metrics has {name}")

# ---- shutdown with a request in flight: SIGTERM ends it, exit 0
sock = socket.create_connection(("127.0.0.1", srv.port))
sock.sendall(b'POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 64\r\n\r\n'
             + b'{"prompt":"Once upon a time","max_tokens":5000,"stream":true}   ')
assert len(b'{"prompt":"Once upon a time","max_tokens":5000,"stream":true}   ') == 64
time.sleep(0.3)
rc, log = srv.stop(signal.SIGTERM)
t.check(rc == 0, f"exit status after SIGTERM: {rc}\n{log[-2000:]}")
t.check("shutting down" in log and "ERROR: AddressSanitizer" not in log and "runtime error" not in log, log[-3000:])
sock.close()
t.finish("test_answers")
