"""test_access.py — psi serve --config: two models, one open and one
restricted, and two named keys stored as SHA-256 hashes (alice may use the
restricted model, bob may not). Each key sees exactly its models in
/v1/models; a model the key may not use answers the very 404 (status, body,
headers but Date) of one that does not exist; wrong or missing keys get
401 everywhere but /health; the audit log names keys and models, never the
keys themselves; bad configs stop the server with one line."""
import hashlib
import json
import os
import shutil
import subprocess

from servetest import DATA, L3, PSI, TMP, Results, Server

t = Results()
L2 = os.path.join(DATA, "reference", "llama2-tiny-F32.gguf")
CFG = os.path.join(TMP, "access")
os.makedirs(CFG, exist_ok=True)
KEYS = {"alice": "alice-secret-key-1", "bob": "bob-other-key-2"}
C, P = "/v1/chat/completions", "/v1/completions"


def keyhash(key):
    p = subprocess.run([PSI, "keyhash"], input=key + "\n", capture_output=True, text=True, timeout=30)
    return p.returncode, p.stdout.strip()


def auth(who):
    return {"Authorization": "Bearer " + KEYS.get(who, who)}


def write(name, cfg):
    path = os.path.join(CFG, name)
    with open(path, "w") as f:
        f.write(cfg if isinstance(cfg, str) else json.dumps(cfg))
    return path


# ---- psi keyhash: the SHA-256 of the key on stdin (the newline is not part of it)
for who, key in KEYS.items():
    rc, h = keyhash(key)
    t.check(rc == 0 and h == hashlib.sha256(key.encode()).hexdigest(), f"keyhash {who}: {rc} {h}")
p = subprocess.run([PSI, "keyhash"], input="", capture_output=True, text=True, timeout=30)
t.check(p.returncode == 1 and "no key" in p.stderr, f"keyhash of nothing: {p.returncode} {p.stderr!r}")


def sha(who):
    return hashlib.sha256(KEYS[who].encode()).hexdigest()


# the restricted model's path is relative: relative to the config file's folder
MODELS = [{"name": "tiny", "path": L2, "access": "open"},
          {"name": "secret", "path": os.path.relpath(L3, CFG), "access": "restricted"}]
GOOD = {"models": MODELS,
        "keys": [{"name": "alice", "sha256": sha("alice"), "models": ["secret"]},
                 {"name": "bob", "sha256": sha("bob").upper()}]}
audit = os.path.join(CFG, "audit.jsonl")
if os.path.exists(audit):
    os.unlink(audit)
srv = Server("--config", write("good.json", GOOD), "-c", "256", "-t", "2", "--parallel", "2", "--audit-log", audit,
             model=None)


def ids(who):
    st, _, data = srv.request("GET", "/v1/models", headers=auth(who))
    return st, [m["id"] for m in json.loads(data).get("data", [])] if st == 200 else data


t.check(ids("alice") == (200, ["tiny", "secret"]), f"alice's models: {ids('alice')}")
t.check(ids("bob") == (200, ["tiny"]), f"bob's models: {ids('bob')}")
st, _, data = srv.request("GET", "/v1/models/secret", headers=auth("alice"))
t.check(st == 200 and json.loads(data)["id"] == "secret" and json.loads(data)["license"] == "llama3.1",
        f"alice /v1/models/secret: {st} {data!r}")

# ---- alice completes on both models, on both endpoints
for model in ("tiny", "secret"):
    st, r = srv.post(P, {"model": model, "prompt": "Once upon a time", "max_tokens": 4, "temperature": 0},
                     headers=auth("alice"))
    t.check(st == 200 and r["model"] == model and r["usage"]["completion_tokens"] > 0, f"alice {P} {model}: {st} {r}")
    st, r = srv.post(C, {"model": model, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4},
                     headers=auth("alice"))
    t.check(st == 200 and r["model"] == model and r["usage"]["completion_tokens"] > 0, f"alice {C} {model}: {st} {r}")
st, r = srv.post(P, {"prompt": "Once", "max_tokens": 2}, headers=auth("alice"))
t.check(st == 400 and "'model' is required" in r["error"]["message"], f"alice, no model: {st} {r}")
# bob may use one model only: a request without `model` goes to it
st, r = srv.post(P, {"prompt": "Once", "max_tokens": 2}, headers=auth("bob"))
t.check(st == 200 and r["model"] == "tiny", f"bob, no model: {st} {r}")
st, r = srv.post(C, {"model": "tiny", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2},
                 headers=auth("bob"))
t.check(st == 200 and r["model"] == "tiny", f"bob tiny: {st} {r}")


# ---- bob and the restricted model: the 404 of a model that does not exist
def same_404(a, b, what):
    (sa, ha, da), (sb, hb, db) = a, b
    ha, hb = dict(ha), dict(hb)
    ha.pop("date", None)
    hb.pop("date", None)
    t.check(sa == sb == 404 and da == db and ha == hb, f"{what}: {sa} {ha} {da!r} / {sb} {hb} {db!r}")


def req(method, path, model, who, s=None):
    s = s or srv
    body = None
    if path == C:
        body = {"model": model, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2}
    elif path == P:
        body = {"model": model, "prompt": "Once", "max_tokens": 2}
    else:
        path = path + model
    return s.request(method, path, body, headers=auth(who))


for path, method in ((C, "POST"), (P, "POST"), ("/v1/models/", "GET")):
    secret, nosuch = req(method, path, "secret", "bob"), req(method, path, "zzzzzz", "bob")
    body = json.loads(secret[2]) if secret[0] == 404 else {}
    t.check(body.get("error", {}).get("code") == "model_not_found", f"bob {path} secret: {secret}")
    # same length name: the bodies differ only by the name asked for
    same_404((secret[0], secret[1], secret[2].replace(b"secret", b"zzzzzz")), nosuch, f"bob {path} secret vs zzzzzz")
    stream = srv.stream(path, {"model": "secret", "messages": [{"role": "user", "content": "Hi"}], "prompt": "x"},
                        headers=auth("bob")) if path != "/v1/models/" else (404,)
    t.check(stream[0] == 404, f"bob {path} secret streamed: {stream[0]}")

# the same request to a server where "secret" does not exist at all: byte for byte the same answer
open_only = {"models": MODELS[:1], "keys": [{"name": "bob", "sha256": sha("bob")}]}
other = Server("--config", write("open-only.json", open_only), "-c", "256", "-t", "2", "--parallel", "1", model=None)
for path, method in ((C, "POST"), (P, "POST"), ("/v1/models/", "GET")):
    same_404(req(method, path, "secret", "bob"), req(method, path, "secret", "bob", other),
             f"bob {path} secret: restricted vs absent")
t.check(other.request("GET", "/v1/models", headers=auth("bob"))[2] ==
        srv.request("GET", "/v1/models", headers=auth("bob"))[2], "bob's /v1/models: the same on both servers")
other.stop()

# a config without keys: open models for anyone; a restricted model no key lists: a note, and nobody sees it
anyone = Server("--config", write("nokeys-open.json", {"models": MODELS[:1]}), "-c", "128", "-t", "2",
                "--parallel", "1", model=None)
st, _, data = anyone.request("GET", "/v1/models")
t.check(st == 200 and [m["id"] for m in json.loads(data)["data"]] == ["tiny"], f"no keys: /v1/models {st} {data!r}")
st, r = anyone.post(P, {"prompt": "Once", "max_tokens": 2})
t.check(st == 200 and r["model"] == "tiny", f"no keys: completion {st} {r}")
anyone.stop()
unlisted = Server("--config", write("unlisted.json", {"models": MODELS, "keys": [{"name": "bob", "sha256": sha("bob")}]}),
                  "-c", "128", "-t", "2", "--parallel", "1", model=None)
st, _, data = unlisted.request("GET", "/v1/models", headers=auth("bob"))
_, log = unlisted.stop()
t.check(st == 200 and [m["id"] for m in json.loads(data)["data"]] == ["tiny"]
        and "no key lists the restricted model 'secret'" in log, f"unlisted restricted model: {st} {data!r} {log}")

# ---- wrong key, no key: 401 on every endpoint but /health
for who, h in (("wrong key", {"Authorization": "Bearer alice-secret-key-"}), ("no key", {}),
               ("hash as key", {"Authorization": "Bearer " + sha("alice")}), ("not bearer", {"Authorization": "Basic x"})):
    for method, path, body in (("GET", "/v1/models", None), ("GET", "/v1/models/tiny", None), ("GET", "/metrics", None),
                               ("POST", C, {"model": "tiny", "messages": [{"role": "user", "content": "Hi"}]}),
                               ("POST", P, {"model": "tiny", "prompt": "Once"})):
        st, hd, data = srv.request(method, path, body, headers=h)
        t.check(st == 401 and hd.get("www-authenticate") == "Bearer", f"{who} {method} {path}: {st}")
    st, _, data = srv.request("GET", "/health", headers=h)
    t.check(st == 200, f"{who} /health: {st}")
st, _, data = srv.request("GET", "/metrics", headers=auth("bob"))
t.check(st == 200 and b"psi_completions_total" in data, f"bob /metrics: {st}")
rc, log = srv.stop()
t.check(rc == 0, f"stopped: {rc}")
t.check("'secret' (restricted)" in log, "the log says which model is restricted")

# ---- the audit log: key names and models, never a key
with open(audit) as f:
    text = f.read()
lines = [json.loads(x) for x in text.splitlines()]
seen = {(a["key"], a["model"], a["status"]) for a in lines}
for want in (("alice", "tiny", 200), ("alice", "secret", 200), ("bob", "tiny", 200), ("bob", "secret", 404),
             ("bob", "zzzzzz", 404), ("alice", "", 400)):
    t.check(want in seen, f"audit: a line {want} in {sorted(seen)}")
t.check(len(lines) == 15, f"audit: {len(lines)} lines, want 15 (the completion requests that passed the key check)")
t.check(all(k not in text for k in KEYS.values()) and sha("alice") not in text and sha("bob") not in text,
        "audit: no key, no hash")

# ---- bad configs: one line, exit 1, before anything listens
ALICE = {"name": "alice", "sha256": sha("alice"), "models": ["secret"]}
BAD = [
    ("broken.json", '{"models": [{"name": "tiny", "path": "x"', "not valid JSON"),
    ("notobj.json", "[]", "must be a JSON object"),
    ("dupfield.json", '{"models": [], "models": []}', "duplicate"),
    ("nomodels.json", {"models": []}, "'models' must be a non-empty array"),
    ("unknowntop.json", {"models": MODELS, "keys": [ALICE], "guard": {}}, "unknown field 'guard'"),
    ("unknownfield.json", {"models": [{"name": "tiny", "path": L2, "acess": "open"}]}, "unknown field 'acess'"),
    ("noaccess.json", {"models": [{"name": "tiny", "path": L2}]}, "'access' is required"),
    ("badaccess.json", {"models": [{"name": "tiny", "path": L2, "access": "public"}]}, "must be \"open\" or"),
    ("dupname.json", {"models": [MODELS[0], dict(MODELS[1], name="tiny")], "keys": [ALICE]},
     "a second model of this name"),
    ("missing.json", {"models": [dict(MODELS[0], path="/nonexistent/m.gguf")]}, "/nonexistent/m.gguf"),
    ("restrictedmissing.json", {"models": [MODELS[0], dict(MODELS[1], path="nowhere/secret.gguf")],
                                "keys": [ALICE]}, "nowhere/secret.gguf"),
    ("shorthash.json", {"models": MODELS, "keys": [dict(ALICE, sha256=sha("alice")[:63])]}, "64 hexadecimal"),
    ("nothex.json", {"models": MODELS, "keys": [dict(ALICE, sha256="g" * 64)]}, "64 hexadecimal"),
    ("prefixhash.json", {"models": MODELS, "keys": [dict(ALICE, sha256="sha256:" + sha("alice"))]}, "64 hexadecimal"),
    ("dupkey.json", {"models": MODELS, "keys": [ALICE, dict(ALICE, sha256=sha("bob"))]}, "a second key of this name"),
    ("samehash.json", {"models": MODELS, "keys": [ALICE, dict(ALICE, name="carol")]}, "the same key as 'alice'"),
    ("unknownmodel.json", {"models": MODELS, "keys": [dict(ALICE, models=["secret", "gpt"])]}, "'gpt'"),
    ("nokeys.json", {"models": MODELS}, "nobody could use it"),
    ("badtemplate.json", {"models": [dict(MODELS[0], chat_template="llama9")]}, "unknown chat_template"),
    ("badpub.json", {"models": [dict(MODELS[0], require_signed="none.pub")]}, "none.pub"),
    ("keyfield.json", {"models": MODELS, "keys": [dict(ALICE, key="alice-secret-key-1")]}, "unknown field 'key'"),
]
for name, cfg, want in BAD:
    p = subprocess.run([PSI, "serve", "--config", write(name, cfg), "--port", "0"], capture_output=True, text=True,
                       timeout=60)
    lines = p.stderr.strip().splitlines()
    t.check(p.returncode == 1 and len(lines) == 1 and want in lines[0] and "listening" not in p.stderr,
            f"{name}: {p.returncode} {p.stderr!r}")
good = write("good.json", GOOD)
for args, want in ((["--config", os.path.join(CFG, "absent.json")], "absent.json"),
                   (["--config", good, "-m", L2], "not both"),
                   (["--config", good, "--api-key-file", good], "exclude each other"),
                   (["--config", good, "--alias", "x"], "exclude each other")):
    p = subprocess.run([PSI, "serve", *args, "--port", "0"], capture_output=True, text=True, timeout=60)
    t.check(p.returncode == 1 and len(p.stderr.strip().splitlines()) == 1 and want in p.stderr,
            f"serve {args}: {p.returncode} {p.stderr!r}")

# ---- licences and signatures apply to every model of the config

signed = os.path.join(CFG, "signed.gguf")
shutil.copyfile(os.path.join(DATA, "reference", "llama2-tiny-Q4_0.gguf"), signed)
me = os.path.join(CFG, "me")
for ext in (".key", ".pub", ""):
    if os.path.exists(me + ext):
        os.unlink(me + ext)
subprocess.run([PSI, "keygen", me], capture_output=True, timeout=60, check=True)
subprocess.run([PSI, "sign", "--key", me + ".key", signed], capture_output=True, timeout=120, check=True)
SIGNED = {"name": "signed", "path": "signed.gguf", "access": "open", "require_signed": "me.pub"}
UNSIGNED_OWN = dict(MODELS[1], access="open", require_signed="me.pub")  # the model's own key, no .sig


def serve_once(cfg, *args, env=None):
    p = subprocess.run([PSI, "serve", "--config", cfg, "--port", "0", "-c", "128", "-t", "2", *args],
                       capture_output=True, text=True, timeout=120, env=env)
    return p.returncode, p.stderr


srv = Server("--config", write("signed.json", {"models": [SIGNED]}), "--accept-license", "-c", "128", "-t", "2",
             model=None)
st, r = srv.post(P, {"prompt": "Once", "max_tokens": 2})
_, log = srv.stop()
t.check(st == 200 and r["model"] == "signed" and "signature by" in log, f"model's own require_signed: {st} {log}")
rc, err = serve_once(write("own-unsigned.json", {"models": [SIGNED, UNSIGNED_OWN]}), "--accept-license")
t.check(rc == 1 and "refusing the model" in err and "llama3-tiny-Q8_0.gguf" in err, f"own key, unsigned: {rc} {err}")
signed_plain = {k: v for k, v in SIGNED.items() if k != "require_signed"}
rc, err = serve_once(write("global-signed.json", {"models": [signed_plain, MODELS[0]]}),
                     "--accept-license", "--require-signed", me + ".pub")
t.check(rc == 1 and "refusing the model" in err and "llama2-tiny-F32.gguf" in err,
        f"--require-signed, second model unsigned: {rc} {err}")
# a licence not accepted: the second model stops the server, as psi serve -m would
fresh = dict(os.environ, XDG_CONFIG_HOME=os.path.join(CFG, "xdg-empty"))
shutil.rmtree(fresh["XDG_CONFIG_HOME"], ignore_errors=True)
rc, err = serve_once(write("licence.json", {"models": [MODELS[0]]}), env=fresh)
t.check(rc == 1 and "psi license accept" in err and "llama2-tiny-F32.gguf" in err, f"licence refused: {rc} {err}")

t.finish("test_serve_access")
