"""test_pull.py — psi pull / list / rm and -m hf:... against fake_hub.py on
127.0.0.1 (no internet): resolution by quant and by file name, the pulled
file byte-identical to the reference GGUF and giving the same greedy ids,
then found in the cache with the hub stopped; resume with a Range request
after the server drops the connection mid-file; refusal of a file whose
SHA-256 is not the published one (nothing left in the cache); 401 without
and success with HF_TOKEN; 404; a split set fetched whole; psi list and
psi rm."""
import hashlib
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time

DATA = os.environ.get("PSI_TEST_DATA", os.path.join(os.path.dirname(__file__), "../../../shared/data"))
PSI = os.environ["PSI"]
TMP = os.path.join(os.environ.get("PSI_TMP", tempfile.gettempdir()), "pull")
REF = os.path.join(DATA, "reference")
Q4 = os.path.join(REF, "llama2-tiny-Q4_0.gguf")
Q4KM = os.path.join(REF, "llama2-tiny-Q4_K_M.gguf")
fails = checks = 0


def check(cond, msg):
    global fails, checks
    checks += 1
    if not cond:
        fails += 1
        print("FAIL:", msg)


def gguf_split(src, prefix, n):
    """Split a GGUF file as llama.cpp's gguf-split does: part k is
    PREFIX-0000k-of-0000n.gguf with split.no = k-1 (u16), split.count = n
    (u16) and split.tensors.count (i32); part 1 keeps all other metadata,
    the tensors are dealt out in order. Returns the part paths."""
    d = open(src, "rb").read()
    pos = 24
    n_t, n_kv = struct.unpack_from("<QQ", d, 8)
    fixed = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}

    def skip_str(p):
        return p + 8 + struct.unpack_from("<Q", d, p)[0]

    def skip_val(p, t):
        if t == 8:
            return skip_str(p)
        if t == 9:
            et, cnt = struct.unpack_from("<IQ", d, p)
            p += 12
            for _ in range(cnt):
                p = skip_val(p, et)
            return p
        return p + fixed[t]
    kvs = []
    for _ in range(n_kv):
        start = pos
        pos = skip_str(pos)
        pos = skip_val(pos + 4, struct.unpack_from("<I", d, pos)[0])
        kvs.append(d[start:pos])
    infos = []
    for _ in range(n_t):
        name_end = skip_str(pos)
        nd = struct.unpack_from("<I", d, name_end)[0]
        dims_end = name_end + 4 + 8 * nd
        ttype, off = struct.unpack_from("<IQ", d, dims_end)
        infos.append((d[pos:dims_end] + struct.pack("<I", ttype), off))
        pos = dims_end + 12
    data_start = (pos + 31) // 32 * 32
    offs = sorted(o for _, o in infos) + [len(d) - data_start]
    size = {o: offs[i + 1] - o for i, o in enumerate(offs[:-1])}

    def s_(x):
        b = x.encode()
        return struct.pack("<Q", len(b)) + b
    paths = []
    per = (n_t + n - 1) // n
    for k in range(n):
        mine = infos[k * per:(k + 1) * per]
        meta = [s_("split.no") + struct.pack("<IH", 2, k), s_("split.count") + struct.pack("<IH", 2, n),
                s_("split.tensors.count") + struct.pack("<Ii", 5, n_t)] + (kvs if k == 0 else [])
        head = b"GGUF" + struct.pack("<IQQ", 3, len(mine), len(meta)) + b"".join(meta)
        body, tinfo = b"", b""
        for info, off in mine:
            tinfo += info + struct.pack("<Q", len(body))
            chunk = d[data_start + off:data_start + off + size[off]]
            body += chunk + b"\0" * (-len(chunk) % 32)
        head += tinfo
        head += b"\0" * (-len(head) % 32)
        path = f"{prefix}-{k + 1:05d}-of-{n:05d}.gguf"
        open(path, "wb").write(head + body)
        paths.append(path)
    return paths


shutil.rmtree(TMP, ignore_errors=True)
os.makedirs(os.path.join(TMP, "local"))
parts = gguf_split(Q4, os.path.join(TMP, "local", "tiny-Q4_0"), 3)
spec = {
    "test/tiny-GGUF": {"files": {"llama2-tiny-Q4_0.gguf": Q4, "llama2-tiny-Q4_K_M.gguf": Q4KM}},
    "test/flaky-GGUF": {"files": {"llama2-tiny-Q4_0.gguf": Q4}, "drop_once": True},
    "test/badsha-GGUF": {"files": {"llama2-tiny-Q4_0.gguf": Q4}, "bad_sha": True},
    "test/two-GGUF": {"files": {"a-Q8_0.gguf": Q4, "a-Q5_0.gguf": Q4}},
    "test/gated-GGUF": {"files": {"llama2-tiny-Q4_0.gguf": Q4}, "token": "s3cret"},
    "test/split-GGUF": {"files": {f"Q4_0/tiny-Q4_0-{i:05d}-of-00003.gguf": parts[i - 1] for i in range(1, 4)}},
    # a Hub (or mirror) whose file list points outside the cache: each one the only GGUF of its repo
    "evil/up-GGUF": {"files": {"../../../../escaped-Q4_0.gguf": Q4}},
    "evil/deep-GGUF": {"files": {"Q4_0/../../../escaped-Q4_0.gguf": Q4}},
    "evil/abs-GGUF": {"files": {"/tmp/escaped-Q4_0.gguf": Q4}},
    "evil/dot-GGUF": {"files": {"./Q4_0//escaped-Q4_0.gguf": Q4}},
    "evil/ctl-GGUF": {"files": {"esc\raped\\x-Q4_0.gguf": Q4}},
    # an odd but harmless name: a space and a percent sign, escaped in the URL
    "test/space-GGUF": {"files": {"my model 100%-Q4_0.gguf": Q4}},
}
json.dump(spec, open(os.path.join(TMP, "spec.json"), "w"))
LOG = os.path.join(TMP, "requests.log")
PORTFILE = os.path.join(TMP, "port")
hub = subprocess.Popen([sys.executable, os.path.join(os.path.dirname(__file__), "fake_hub.py"),
                        os.path.join(TMP, "spec.json"), LOG, PORTFILE])
for _ in range(100):
    if os.path.exists(PORTFILE):
        break
    time.sleep(0.05)
port = open(PORTFILE).read()
HOME = os.path.join(TMP, "home")
ENV = dict(os.environ, PSI_HOME=HOME, PSI_HF_ENDPOINT=f"http://127.0.0.1:{port}")
ENV.pop("HF_TOKEN", None)


def psi(*args, env=None):
    r = subprocess.run([PSI, *args], capture_output=True, text=True, env=env or ENV, timeout=300)
    return r.returncode, r.stdout, r.stderr


def requests():
    return [json.loads(l) for l in open(LOG)] if os.path.exists(LOG) else []


def same_file(a, b):
    return open(a, "rb").read() == open(b, "rb").read()


try:
    # ---- pull by quant; the cached copy is the reference file
    rc, out, err = psi("pull", "hf:test/tiny-GGUF:Q4_0")
    check(rc == 0, f"pull by quant: {rc} {err}")
    path = out.strip()
    check(path == os.path.join(HOME, "models/hf/test/tiny-GGUF/llama2-tiny-Q4_0.gguf"), f"cache path {path}")
    check(rc == 0 and same_file(path, Q4), "pulled file differs from the reference")
    check("SHA-256 verified" in err, f"no verification said: {err}")
    check(not [f for f in os.listdir(os.path.dirname(path)) if f.endswith(".part")] if rc == 0 else False,
          ".part left behind")
    # by file name; again: already cached, no download
    rc, out, err = psi("pull", "hf:test/tiny-GGUF/llama2-tiny-Q4_K_M.gguf")
    check(rc == 0 and same_file(out.strip(), Q4KM), f"pull by file: {rc} {err}")
    n_before = len([r for r in requests() if "/resolve/" in r["path"]])
    rc, out, err = psi("pull", "hf:test/tiny-GGUF:Q4_0")
    check(rc == 0 and "already in the cache" in err, f"second pull: {rc} {err}")
    check(len([r for r in requests() if "/resolve/" in r["path"]]) == n_before, "second pull downloaded again")
    # no quant and several files, none Q4_K_M... here Q4_K_M exists: it is the default
    rc, out, err = psi("pull", "hf:test/tiny-GGUF")
    check(rc == 0 and out.strip().endswith("llama2-tiny-Q4_K_M.gguf"), f"default quant: {rc} {out} {err}")

    # ---- the pulled model runs and gives the reference's greedy ids (same as the reference file)
    story = json.load(open(os.path.join(REF, "llama2-tiny-Q4_0.story.json")))
    ids = " ".join(str(t) for t in story["tokens"])
    gen = ["run", "--tokens", ids, "-n", "32", "--temp", "0", "--ignore-eos", "--json", "--kv-type", "f32",
           "--accept-license"]  # a split set is a new file under the fixture's Llama licence
    rc1, out1, err1 = psi(*gen[:1], "-m", "hf:test/tiny-GGUF:Q4_0", *gen[1:])
    rc2, out2, _ = psi(*gen[:1], "-m", Q4, *gen[1:])
    check(rc1 == 0 and rc2 == 0, f"run -m hf: {rc1} {err1}")
    if rc1 == 0 and rc2 == 0:
        t1, t2 = json.loads(out1)["tokens"], json.loads(out2)["tokens"]
        check(t1 == t2 and len(t1) == 32, "hf: model and reference file give different ids")
        k = 0
        while k < 32 and t1[k] == story["greedy_32"][k]:
            k += 1
        low = 0  # first step where llama.cpp's top-2 margin is < 1.0 (test_reference's rule for quantized files)
        while low < 32 and story["greedy_margin"][low] >= 1.0:
            low += 1
        print(f"run -m hf:test/tiny-GGUF:Q4_0: {k}/32 greedy ids equal llama.cpp's (first low-margin step {low})")
        check(k >= low, f"greedy ids differ at step {k}, before the first low-margin step {low}")

    # ---- -m hf: on first use pulls, after saying so
    rc, out, err = psi("run", "-m", "hf:test/flaky-GGUF:Q4_0", "--tokens", "1 2 3", "-n", "2", "--temp", "0")
    check(rc == 0 and "not in the cache" in err and "pulling" in err, f"-m hf: first use: {rc} {err}")
    # resume: the server dropped the first transfer half way; psi asked for the rest with Range
    flaky = [r for r in requests() if r["path"].startswith("/test/flaky-GGUF/resolve/")]
    half = os.path.getsize(Q4) // 2
    check(len(flaky) == 2 and flaky[0]["range"] is None and flaky[1]["range"] == f"bytes={half}-",
          f"resume requests: {flaky}")
    check("connection lost" in err and "resuming" in err, f"resume not reported: {err}")
    check(same_file(os.path.join(HOME, "models/hf/test/flaky-GGUF/llama2-tiny-Q4_0.gguf"), Q4), "resumed file differs")

    # ---- resume of a .part left by an earlier, interrupted run
    d = os.path.join(HOME, "models/hf/test/tiny-GGUF")
    os.remove(os.path.join(d, "llama2-tiny-Q4_0.gguf"))
    with open(os.path.join(d, "llama2-tiny-Q4_0.gguf.part"), "wb") as f:
        f.write(open(Q4, "rb").read()[:12345])
    os.remove(os.path.join(HOME, "refs", hashlib.sha256(b"hf:test/tiny-GGUF:Q4_0").hexdigest()))
    rc, out, err = psi("pull", "hf:test/tiny-GGUF:Q4_0")
    last = [r for r in requests() if r["path"].endswith("/llama2-tiny-Q4_0.gguf")][-1]
    check(rc == 0 and last["range"] == "bytes=12345-" and same_file(out.strip(), Q4), f"resume .part: {rc} {last} {err}")

    # ---- a file whose SHA-256 is not the published one is refused and removed
    rc, out, err = psi("pull", "hf:test/badsha-GGUF:Q4_0")
    bd = os.path.join(HOME, "models/hf/test/badsha-GGUF")
    check(rc == 1 and "SHA-256 mismatch" in err and len(err.strip().splitlines()) >= 1, f"bad sha: {rc} {err}")
    check(not os.path.exists(bd) or os.listdir(bd) == [], f"bad file kept: {os.listdir(bd) if os.path.exists(bd) else ''}")

    # ---- 401 without a token, and the Bearer token when HF_TOKEN is set
    rc, out, err = psi("pull", "hf:test/gated-GGUF:Q4_0")
    check(rc == 1 and "HTTP 401" in err and "HF_TOKEN" in err, f"401: {rc} {err}")
    rc, out, err = psi("pull", "hf:test/gated-GGUF:Q4_0", env=dict(ENV, HF_TOKEN="s3cret"))
    check(rc == 0 and same_file(out.strip(), Q4), f"with HF_TOKEN: {rc} {err}")
    check(all(r["auth"] == "Bearer s3cret" for r in requests() if "gated" in r["path"] and r["auth"]), "token sent")

    # ---- 404: no such repo, no such quant, no such file
    for ref, want in [("hf:test/nothere-GGUF", "HTTP 404"), ("hf:test/tiny-GGUF:Q3_K_S", "no GGUF file with Q3_K_S"),
                      ("hf:test/tiny-GGUF/missing.gguf", "no file missing.gguf"), ("hf:nothing", "expected hf:OWNER")]:
        rc, out, err = psi("pull", ref)
        check(rc == 1 and want in err and len(err.strip().splitlines()) == 1, f"{ref}: {rc} {err}")
    # ---- file names from the Hub that would leave the cache are refused, nothing is fetched or written
    n_before = len(requests())
    for repo in ("up", "deep", "abs", "dot", "ctl"):
        rc, out, err = psi("pull", f"hf:evil/{repo}-GGUF")
        check(rc == 1 and "unsafe file name" in err and len(err.strip().splitlines()) == 1,
              f"evil/{repo}: {rc} {err}")
    check(not [r for r in requests()[n_before:] if "/resolve/" in r["path"]], "an unsafe name was fetched")
    escaped = [os.path.join(dp, f) for dp, _, fs in os.walk(TMP) for f in fs if "escaped" in f]
    check(not escaped and not os.path.exists("/tmp/escaped-Q4_0.gguf"), f"written outside the cache: {escaped}")
    rc, out, err = psi("pull", "hf:test/space-GGUF")
    check(rc == 0 and out.strip() == os.path.join(HOME, "models/hf/test/space-GGUF/my model 100%-Q4_0.gguf")
          and same_file(out.strip(), Q4), f"name with a space: {rc} {out} {err}")
    rc, out, err = psi("pull", "hf:test/two-GGUF")
    check(rc == 1 and "2 GGUF files and none is Q4_K_M" in err, f"no default quant: {rc} {err}")
    # a plain URL
    url = f"http://127.0.0.1:{port}/test/tiny-GGUF/resolve/main/llama2-tiny-Q4_0.gguf"
    rc, out, err = psi("pull", url)
    check(rc == 0 and out.strip() == os.path.join(HOME, "models/url", url[7:]) and same_file(out.strip(), Q4),
          f"pull URL: {rc} {out} {err}")
    rc, out, err = psi("run", "-m", "hf:test/nothere-GGUF", "-p", "x")
    check(rc == 1 and "HTTP 404" in err, f"run -m missing repo: {rc} {err}")
    # offline: nothing listens on the endpoint
    rc, out, err = psi("pull", "hf:test/tiny-GGUF:Q5_0", env=dict(ENV, PSI_HF_ENDPOINT="http://127.0.0.1:9"))
    check(rc == 1 and "cannot reach" in err, f"offline: {rc} {err}")

    # ---- a split set is fetched whole and loaded as one model
    rc, out, err = psi("pull", "hf:test/split-GGUF:Q4_0")
    sd = os.path.join(HOME, "models/hf/test/split-GGUF/Q4_0")
    first = os.path.join(sd, "tiny-Q4_0-00001-of-00003.gguf")
    check(rc == 0 and out.strip() == first, f"split: {rc} {out} {err}")
    for i in range(1, 4):
        f = os.path.join(sd, f"tiny-Q4_0-{i:05d}-of-00003.gguf")
        check(os.path.exists(f) and same_file(f, parts[i - 1]), f"split part {i}")
    if rc2 == 0:
        rc3, out3, err3 = psi(*gen[:1], "-m", "hf:test/split-GGUF:Q4_0", *gen[1:])
        check(rc3 == 0 and json.loads(out3)["tokens"] == json.loads(out2)["tokens"],
              f"split set does not run as the whole file: {rc3} {err3}")
    # a set with a part missing is a clear error
    os.rename(os.path.join(sd, "tiny-Q4_0-00003-of-00003.gguf"), os.path.join(TMP, "p3"))
    rc, out, err = psi("inspect", first)
    check(rc == 1 and "tiny-Q4_0-00003-of-00003.gguf: cannot open" in err, f"missing part: {rc} {err}")
    os.rename(os.path.join(TMP, "p3"), os.path.join(sd, "tiny-Q4_0-00003-of-00003.gguf"))

    # ---- list and rm
    rc, out, err = psi("list")
    check(rc == 0 and "hf/test/tiny-GGUF/llama2-tiny-Q4_0.gguf" in out and "Q4_0" in out, f"list: {out} {err}")
    check("split-GGUF/Q4_0/tiny-Q4_0-00001-of-00003.gguf" in out and "(split set)" in out
          and "00002-of" not in out, f"list split: {out}")
    rc, out, err = psi("rm", "hf:test/split-GGUF:Q4_0")
    check(rc == 0 and not any(os.path.exists(os.path.join(sd, f"tiny-Q4_0-{i:05d}-of-00003.gguf")) for i in (1, 2, 3)),
          f"rm split: {rc} {err}")
    rc, out, err = psi("rm", "hf/test/tiny-GGUF/llama2-tiny-Q4_K_M.gguf")
    check(rc == 0 and not os.path.exists(os.path.join(d, "llama2-tiny-Q4_K_M.gguf")), f"rm by name: {rc} {err}")
    rc, out, err = psi("rm", "hf/test/tiny-GGUF/llama2-tiny-Q4_K_M.gguf")
    check(rc == 1 and "not in the cache" in err, f"rm twice: {rc} {err}")
    rc, out, err = psi("rm", "../../etc/passwd")
    check(rc == 1, "rm outside the cache")
finally:
    hub.terminate()
    hub.wait()

# the cache answers -m hf: with the hub gone
rc, out, err = psi("run", "-m", "hf:test/tiny-GGUF:Q4_0", "--tokens", "1 2 3", "-n", "2", "--temp", "0")
check(rc == 0 and "pulling" not in err, f"cached -m hf: with the hub stopped: {rc} {err}")

print(f"test_pull: {checks - fails} passed, {fails} failed")
sys.exit(1 if fails else 0)
