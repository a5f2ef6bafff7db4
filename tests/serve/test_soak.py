"""test_soak.py — psi serve under a random mix of clients for a while
(PSI_SOAK_SECONDS, default 20; PSI_SOAK_SEED picks the mix, default
random, printed so that a failure can be replayed): 12 client threads,
each taking one action after another at random among

  greedy    a reference prompt, streamed or not, chat or completions:
            its text must equal what that prompt gave alone before
  seeded    a sampled request (temperature, top-p/k, min-p, penalties,
            a seed): the same text as alone before
  sampled   random sampling fields, stop strings, logprobs, logit_bias,
            streamed or not: 200 and a well-formed answer
  cut       a stream the client closes after a few events, or a request
            it closes before (or while) the answer comes
  broken    a valid body mutated at random (truncated, bytes flipped,
            junk inserted): any 4xx, never a 5xx but 503, never a cut
  slow      a request's first bytes, then nothing until the client
            gives up
  info      /health, /metrics, /v1/models

against a server with fewer slots than clients and a short queue, so that
503s (with Retry-After) come too. Afterwards: every slot free, the queue
empty, /health and a normal request answered, the per-action counts
printed, and a clean exit on SIGTERM (no sanitizer report when the
build has one: make test-asan, make test-tsan)."""
import json
import os
import random
import socket
import threading
import time

from servetest import L3, Results, Server, stream_text

t = Results()
seconds = float(os.environ.get("PSI_SOAK_SECONDS", "20"))
seed = int(os.environ.get("PSI_SOAK_SEED", str(random.randrange(1 << 30))))
print(f"test_soak: {seconds:g} s, PSI_SOAK_SEED={seed}", flush=True)
srv = Server("--parallel", "4", "--queue", "6", "-c", "256", "--timeout", "3", "-t", "2", model=L3)
C, P = "/v1/chat/completions", "/v1/completions"
PROMPTS = ["Once upon a time", "The capital of France is", "1, 2, 3, 4,", "Write a poem about the sea",
           "def fib(n):", "Hello"]
SEEDED = {"temperature": 0.9, "top_p": 0.9, "top_k": 40, "min_p": 0.02, "presence_penalty": 0.5,
          "frequency_penalty": 0.3, "seed": 1234}


def greedy_body(i, chat, n):
    b = {"max_tokens": n, "temperature": 0}
    if chat:
        b["messages"] = [{"role": "user", "content": PROMPTS[i]}]
    else:
        b["prompt"] = PROMPTS[i]
    return b


def answer_text(r, chat):
    ch = r["choices"][0]
    return ch["message"]["content"] if chat else ch["text"]


def run_request(path, body, stream):
    """(status, text, error); status 503 is an answer like any other."""
    if stream:
        st, events, done, _ = srv.stream(path, body)
        if st != 200:
            return st, None, events
        if not done:
            return st, None, "no [DONE]"
        return st, stream_text(events), None
    st, r = srv.post(path, body)
    if st != 200:
        return st, None, r
    return st, answer_text(r, path == C), None


# what each reference request gives alone, before the clients come
alone = {}
for i in range(len(PROMPTS)):
    for chat in (False, True):
        st, text, err = run_request(C if chat else P, greedy_body(i, chat, 16), False)
        t.check(st == 200, f"reference {i} chat={chat}: {st} {err}")
        alone[(i, chat, "greedy")] = text
        st, text, err = run_request(C if chat else P, dict(greedy_body(i, chat, 16), **SEEDED), False)
        t.check(st == 200, f"seeded reference {i} chat={chat}: {st} {err}")
        alone[(i, chat, "seeded")] = text

lock = threading.Lock()
counts = {}
failures = []


def note(action, outcome):
    with lock:
        counts.setdefault(action, {}).setdefault(outcome, 0)
        counts[action][outcome] += 1


def fail(msg):
    with lock:
        failures.append(msg)


def busy_or(action, st, what):
    """A 503 is the queue being full (counted); else the status must be 200."""
    if st == 503:
        note(action, "503")
        return False
    if st != 200:
        fail(f"{action}: {what}: status {st}")
        return False
    return True


def act_reference(rng, kind):
    i, chat, stream = rng.randrange(len(PROMPTS)), rng.random() < 0.5, rng.random() < 0.5
    body = greedy_body(i, chat, 16)
    if kind == "seeded":
        body.update(SEEDED)
    st, text, err = run_request(C if chat else P, body, stream)
    if not busy_or(kind, st, f"prompt {i} chat={chat} stream={stream}: {err}"):
        return
    want = alone[(i, chat, kind)]
    if text != want:
        fail(f"{kind}: prompt {i} chat={chat} stream={stream}: {text!r} under load, {want!r} alone")
    note(kind, "200")


def act_sampled(rng):
    chat, stream = rng.random() < 0.5, rng.random() < 0.5
    body = greedy_body(rng.randrange(len(PROMPTS)), chat, rng.randint(1, 24))
    body["temperature"] = rng.choice([0, 0.5, 1.0, 1.5])
    for k, v in (("top_p", rng.random()), ("top_k", rng.randint(0, 50)), ("min_p", rng.random() * 0.2),
                 ("presence_penalty", rng.uniform(-2, 2)), ("frequency_penalty", rng.uniform(-2, 2)),
                 ("seed", rng.randrange(1 << 31)), ("stop", rng.choice([".", ["\n", " the"], "a"])),
                 ("logit_bias", {str(rng.randrange(128000)): rng.uniform(-100, 100)})):
        if rng.random() < 0.4:
            body[k] = v
    if rng.random() < 0.3:
        if chat:
            body["logprobs"], body["top_logprobs"] = True, rng.randint(0, 5)
        else:
            body["logprobs"] = rng.randint(0, 5)
    if stream and rng.random() < 0.5:
        body["stream_options"] = {"include_usage": True}
    path = C if chat else P
    if not stream:
        st, r = srv.post(path, body)
        if busy_or("sampled", st, f"{body}: {r}"):
            ok = (isinstance(answer_text(r, chat), str) and r["choices"][0]["finish_reason"] in ("stop", "length")
                  and r["usage"]["completion_tokens"] <= body["max_tokens"])
            if not ok:
                fail(f"sampled: {body}: answer {r}")
            note("sampled", "200")
        return
    st, events, done, _ = srv.stream(path, body)
    if busy_or("sampled", st, f"stream {body}: {events}"):
        finals = [e for e in events if e.get("choices") and e["choices"][0].get("finish_reason")]
        if not done or len(finals) != 1:
            fail(f"sampled stream: {body}: [DONE] {done}, {len(finals)} finish_reason chunks")
        if body.get("stream_options") and not (events and events[-1].get("usage")):
            fail(f"sampled stream: {body}: no usage chunk")
        note("sampled", "200 stream")


def raw_request(body, path=P):
    data = json.dumps(body).encode() if not isinstance(body, bytes) else body
    return (b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
            % (path.encode(), len(data)) + data)


def act_cut(rng):
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=30)
    try:
        stream = rng.random() < 0.6
        body = {"prompt": rng.choice(PROMPTS), "max_tokens": 40, "ignore_eos": True, "stream": stream}
        s.sendall(raw_request(body))
        if stream:  # read a few events, then leave
            want, got = rng.randint(0, 6), b""
            while got.count(b"data: ") < want:
                more = s.recv(4096)
                if not more:
                    break
                got += more
            if b" 503 " in got[:20]:
                note("cut", "503")
                return
        else:
            time.sleep(rng.random() * 0.3)
        note("cut", "stream" if stream else "wait")
    except OSError as e:
        fail(f"cut: {e}")
    finally:
        s.close()


def act_broken(rng):
    i = rng.randrange(len(PROMPTS))
    data = bytearray(json.dumps(dict(greedy_body(i, True, 4), stream=rng.random() < 0.5)).encode())
    for _ in range(rng.randint(1, 4)):
        op, at = rng.randrange(3), rng.randrange(len(data))
        if op == 0:
            del data[at:]
            if not data:
                data = bytearray(b"{")
        elif op == 1:
            data[at] = rng.randrange(256)
        else:
            data[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
    st, _, out = srv.request("POST", rng.choice([C, P]), bytes(data))
    if st == 0 or (st >= 500 and st != 503):
        fail(f"broken: body {bytes(data)!r}: status {st} {out[:200]!r}")
    else:
        note("broken", str(st))


def act_slow(rng):
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=30)
    try:
        whole = raw_request(greedy_body(0, False, 2))
        s.sendall(whole[:rng.randrange(1, len(whole))])
        time.sleep(rng.random() * 0.5)
        note("slow", "left")
    finally:
        s.close()


def act_info(rng):
    path = rng.choice(["/health", "/metrics", "/v1/models"])
    st, _, out = srv.request("GET", path)
    if st != 200:
        fail(f"info: GET {path}: {st} {out[:200]!r}")
    note("info", "200")


ACTIONS = [(lambda r: act_reference(r, "greedy"), 4), (lambda r: act_reference(r, "seeded"), 2), (act_sampled, 4),
           (act_cut, 2), (act_broken, 3), (act_slow, 1), (act_info, 1)]
WEIGHTS = [w for _, w in ACTIONS]
end = time.time() + seconds


def client(k):
    rng = random.Random(seed * 100 + k)
    while time.time() < end:
        act = rng.choices(ACTIONS, WEIGHTS)[0][0]
        try:
            act(rng)
        except Exception as e:  # a client-side surprise (a malformed answer) is a failure, not a crash
            fail(f"client {k}: {type(e).__name__}: {e}")


threads = [threading.Thread(target=client, args=(k,)) for k in range(12)]
for th in threads:
    th.start()
for th in threads:
    th.join(seconds + 300)
    t.check(not th.is_alive(), "a client thread finished")
for f in failures[:20]:
    t.check(False, f)
t.check(not failures, f"{len(failures)} failures under load")
total = sum(sum(c.values()) for c in counts.values())
print(f"{total} actions: " + "; ".join(f"{a} {dict(sorted(c.items()))}" for a, c in sorted(counts.items())))
t.check(counts.get("greedy", {}).get("200", 0) >= 3, f"greedy requests answered under load: {counts.get('greedy')}")
t.check(srv.slots_freed(10), "every slot free afterwards")
t.check(srv.metric("psi_queue_depth") == 0, "queue empty afterwards")
st, text, err = run_request(P, greedy_body(0, False, 16), False)
t.check(st == 200 and text == alone[(0, False, "greedy")], f"a normal request afterwards: {st} {text!r} {err}")
rc, log = srv.stop()
t.check(rc == 0 and "Sanitizer" not in log, f"SIGTERM: exit {rc}: {log[-3000:]}")
t.finish("test_soak")
