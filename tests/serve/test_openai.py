"""test_openai.py — the official `openai` npm client against psi serve:
chat, streamed chat and completions, greedy, equal to `psi run` on the
same prompt; model list; errors as the client's own exception classes.
The client is installed once from the npm registry into the build tree;
without a reachable registry the test is skipped (exit 77), never failed."""
import json
import os
import shutil
import subprocess
import sys

from servetest import TMP, Results, Server, llama3_chat_text, psi_run

HERE = os.path.dirname(os.path.abspath(__file__))
NODE_SRC = os.path.join(HERE, "..", "node")
NODE_DIR = os.path.join(TMP, "..", "node")
os.makedirs(NODE_DIR, exist_ok=True)
shutil.copy(os.path.join(NODE_SRC, "package.json"), NODE_DIR)
shutil.copy(os.path.join(NODE_SRC, "openai_client.mjs"), NODE_DIR)
if not shutil.which("node") or not shutil.which("npm"):
    print("SKIP: node and npm are not installed (Debian packages nodejs npm)")
    sys.exit(77)
if not os.path.isdir(os.path.join(NODE_DIR, "node_modules", "openai")):
    r = subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--silent"], cwd=NODE_DIR, capture_output=True,
                       text=True, timeout=300)
    if r.returncode != 0:
        ping = subprocess.run(["npm", "ping"], cwd=NODE_DIR, capture_output=True, timeout=60)
        if ping.returncode != 0:
            print("SKIP: the npm registry is unreachable, so the openai client cannot be installed:\n" + r.stderr[-500:])
            sys.exit(77)
        sys.exit("npm install failed:\n" + r.stderr[-2000:])

t = Results()
key = "sk-psi-test-key"
keyfile = os.path.join(TMP, "openai-keys.txt")
with open(keyfile, "w") as f:
    f.write(key + "\n")
MODEL = "llama3-tiny-Q8_0.gguf"
srv = Server("--api-key-file", keyfile, "-c", "256", "-t", "2")
question, prompt = "What is the capital of France?", "Once upon a time"
r = subprocess.run(["node", os.path.join(NODE_DIR, "openai_client.mjs"), f"http://127.0.0.1:{srv.port}/v1", key, MODEL,
                    question, prompt], capture_output=True, text=True, timeout=300)
rc, log = srv.stop()
t.check(r.returncode == 0, f"node client exit {r.returncode}: {r.stderr[-2000:]}")
out = json.loads(r.stdout) if r.returncode == 0 else {}
want_chat = psi_run("--parse-special", "--no-bos", "-p", llama3_chat_text([{"role": "user", "content": question}]),
                    "-n", "8")
want_comp = psi_run("-p", prompt, "-n", "12")
if out:
    t.check(out["chat"]["text"] == want_chat, f"chat {out['chat']} != psi run {want_chat!r}")
    t.check(out["chat"]["usage"]["completion_tokens"] == 8 and out["chat"]["finish"] == "length", str(out["chat"]))
    t.check(out["stream"]["text"] == want_chat, f"stream {out['stream']} != psi run {want_chat!r}")
    t.check(out["stream"]["role"] == "assistant" and out["stream"]["finish"] == "length", str(out["stream"]))
    t.check(out["stream"]["usage"] and out["stream"]["usage"]["total_tokens"] == 25, str(out["stream"]))
    t.check(out["completion"]["text"] == want_comp, f"completion {out['completion']} != psi run {want_comp!r}")
    t.check(out["models"] == [MODEL], str(out["models"]))
    t.check(out["unknown_model"]["status"] == 404 and out["unknown_model"]["type"] == "NotFoundError",
            str(out["unknown_model"]))
    t.check(out["bad_key"]["status"] == 401 and out["bad_key"]["type"] == "AuthenticationError", str(out["bad_key"]))
    print("openai client:", json.dumps(out)[:400])
t.check(rc == 0, f"server exit {rc}: {log[-1000:]}")
t.finish("test_openai")
