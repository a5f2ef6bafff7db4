"""servetest.py — what the psi serve tests share: start a server on
127.0.0.1 with a free port (--port 0, the port read from its log), plain
HTTP requests, SSE streams, and pass/fail counting. Python stdlib only."""
import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time

PSI = os.environ.get("PSI") or sys.exit("run through ctest (PSI not set)")
DATA = os.environ["PSI_TEST_DATA"]
TMP = os.path.join(os.environ.get("PSI_TMP", "/tmp"), "serve")
os.makedirs(TMP, exist_ok=True)
L3 = os.path.join(DATA, "reference", "llama3-tiny-Q8_0.gguf")
STORIES = os.path.join(DATA, "models", "stories260K.gguf")


class Results:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def check(self, cond, desc):
        if cond:
            self.passed += 1
        else:
            self.failed += 1
            print("FAIL:", desc, file=sys.stderr, flush=True)
        return cond

    def finish(self, name):
        print(f"{name}: {self.passed} passed, {self.failed} failed")
        sys.exit(1 if self.failed else 0)


class Server:
    """psi serve in the background; stop() returns (exit status, log). model=None: no -m (--config)."""

    def __init__(self, *args, model=L3, wait_ready=True):
        self.log = []
        m = ["-m", model] if model else []
        self.proc = subprocess.Popen([PSI, "serve", *m, "--host", "127.0.0.1", "--port", "0", *args],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     text=True, errors="replace")
        self.port = None
        deadline = time.time() + 60
        while time.time() < deadline:
            line = self.proc.stderr.readline()
            if not line:
                break
            self.log.append(line)
            if "listening on http://127.0.0.1:" in line:
                self.port = int(line.rsplit(":", 1)[1])
                break
        if self.port is None:
            self.proc.kill()
            raise RuntimeError("psi serve did not start: " + "".join(self.log))
        self.reader = threading.Thread(target=self._drain, daemon=True)
        self.reader.start()
        if wait_ready:  # the model loads after the port opens; a loaded machine (ASan, parallel tests) is slow
            deadline = time.time() + 180
            while time.time() < deadline:
                if self.proc.poll() is not None:
                    time.sleep(0.2)  # let the reader take the last lines
                    raise RuntimeError(f"psi serve exited ({self.proc.returncode}) before it was ready: "
                                       + "".join(self.log))
                if self.request("GET", "/health", timeout=10)[0] == 200:
                    return
                time.sleep(0.05)
            self.proc.kill()
            raise RuntimeError("psi serve never became ready: " + "".join(self.log))

    def _drain(self):
        for line in self.proc.stderr:
            self.log.append(line)

    def conn(self, timeout=120):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def request(self, method, path, body=None, headers=None, timeout=120):
        """(status, headers dict, body bytes); status 0 when the connection failed."""
        h = {"Content-Type": "application/json"}
        h.update(headers or {})
        if isinstance(body, (dict, list)):
            body = json.dumps(body)
        if isinstance(body, str):
            body = body.encode()
        c = self.conn(timeout)
        try:
            c.request(method, path, body=body, headers=h)
            r = c.getresponse()
            data = r.read()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, data
        except (OSError, http.client.HTTPException) as e:
            return 0, {}, str(e).encode()
        finally:
            c.close()

    def post(self, path, body, **kw):
        st, hd, data = self.request("POST", path, body, **kw)
        try:
            return st, json.loads(data)
        except ValueError:
            return st, {"raw": data.decode("utf-8", "replace")}

    def stream(self, path, body, headers=None, on_event=None):
        """POST a streaming request; returns (status, [decoded events], done_seen, raw bytes)."""
        body = dict(body, stream=True)
        c = self.conn()
        h = {"Content-Type": "application/json"}
        h.update(headers or {})
        events, done, raw = [], False, b""
        try:
            c.request("POST", path, body=json.dumps(body), headers=h)
            r = c.getresponse()
            if r.status != 200:
                return r.status, [json.loads(r.read())], False, b""
            buf = b""
            while True:
                chunk = r.read1(65536) if hasattr(r, "read1") else r.read(1)
                if not chunk:
                    break
                raw += chunk
                buf += chunk
                while b"\n\n" in buf:
                    ev, buf = buf.split(b"\n\n", 1)
                    assert ev.startswith(b"data: "), ev
                    payload = ev[6:]
                    if payload == b"[DONE]":
                        done = True
                        continue
                    events.append(json.loads(payload.decode("utf-8")))  # strict UTF-8: whole characters
                    if on_event and on_event(events[-1]) is False:
                        return 200, events, done, raw
            return 200, events, done, raw
        finally:
            c.close()

    def metric(self, name):
        st, _, data = self.request("GET", "/metrics")
        for line in data.decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        return None

    def slots_freed(self, seconds=4):
        """Whether every slot is free again within the time."""
        deadline = time.time() + seconds
        while time.time() < deadline:
            if self.metric("psi_slots_active") == 0:
                return True
            time.sleep(0.02)
        return False

    def stop(self, sig=signal.SIGTERM, timeout=60):
        self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = "hung"
        self.reader.join(5)
        return rc, "".join(self.log)


def stream_text(events):
    """The text of a chat or completions stream."""
    out = []
    for e in events:
        for ch in e.get("choices", []):
            if "delta" in ch:
                out.append(ch["delta"].get("content") or "")
            else:
                out.append(ch.get("text") or "")
    return "".join(out)


def psi_run(*args, model=L3):
    return subprocess.run([PSI, "run", "-m", model, "--temp", "0", *args], capture_output=True,
                          timeout=300).stdout.decode()


def llama3_chat_text(messages):
    """The llama3 template spelled out, as tests/test_cli.sh does for psi chat."""
    t = "<|begin_of_text|>"
    for m in messages:
        t += f"<|start_header_id|>{m['role']}<|end_header_id|>\n\n{m['content']}<|eot_id|>"
    return t + "<|start_header_id|>assistant<|end_header_id|>\n\n"
