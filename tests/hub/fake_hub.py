"""fake_hub.py — a stand-in for the Hugging Face Hub on 127.0.0.1 for psi's
pull tests (python3 stdlib only). It serves the API psi uses,
GET /api/models/OWNER/REPO/tree/main (a JSON list of {type, path, size,
oid, lfs: {oid (SHA-256), size, pointerSize}}), and the files at
GET /OWNER/REPO/resolve/main/PATH with Range support.

Repositories come from a JSON spec file: {"OWNER/REPO": {"files": {PATH:
LOCAL_FILE}, "token": "secret" (401 without it), "bad_sha": true (publish
a wrong SHA-256), "drop_once": true (the first GET of each file sends half
the body, then closes the connection)}}. Every request is appended to
LOG as one JSON line {method, path, range, auth}.

usage: fake_hub.py SPEC LOG PORTFILE  (writes the port it bound to PORTFILE)
"""
import hashlib
import http.server
import json
import os
import sys
import threading
import urllib.parse

SPEC = json.load(open(sys.argv[1]))
LOG = sys.argv[2]
lock = threading.Lock()
dropped = set()
sha_cache = {}


def sha256(path):
    if path not in sha_cache:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        sha_cache[path] = h.hexdigest()
    return sha_cache[path]


class Hub(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def send(self, code, body, ctype="application/json"):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        with lock, open(LOG, "a") as f:
            f.write(json.dumps({"method": "GET", "path": self.path, "range": self.headers.get("Range"),
                                "auth": self.headers.get("Authorization")}) + "\n")
        parts = self.path.split("?")[0].split("/")
        if self.path.startswith("/api/models/") and len(parts) >= 7 and parts[5:7] == ["tree", "main"]:
            repo_id = parts[3] + "/" + parts[4]
            kind = "api"
        elif len(parts) >= 6 and parts[3:5] == ["resolve", "main"]:
            repo_id = parts[1] + "/" + parts[2]
            kind = "file"
        else:
            return self.send(404, b'{"error": "Not Found"}')
        repo = SPEC.get(repo_id)
        if repo is None:
            return self.send(404, b'{"error": "Repository not found"}')
        if repo.get("token") and self.headers.get("Authorization") != "Bearer " + repo["token"]:
            return self.send(401, b'{"error": "Access to this repository is restricted"}')
        if kind == "api":
            out = []
            for p, local in sorted(repo["files"].items()):
                size = os.path.getsize(local)
                oid = sha256(local)
                if repo.get("bad_sha"):
                    oid = hashlib.sha256(b"not this file").hexdigest()
                out.append({"type": "file", "oid": hashlib.sha1(p.encode()).hexdigest(), "size": size, "path": p,
                            "lfs": {"oid": oid, "size": size, "pointerSize": 134}})
            out.append({"type": "file", "oid": "0" * 40, "size": 12, "path": "README.md"})
            return self.send(200, json.dumps(out).encode())
        path = urllib.parse.unquote("/".join(parts[5:]))  # the file's name, percent-escapes decoded
        local = repo["files"].get(path)
        if local is None:
            return self.send(404, b'{"error": "Entry not found"}')
        data = open(local, "rb").read()
        start = 0
        rng = self.headers.get("Range")
        if rng and rng.startswith("bytes=") and rng.endswith("-"):
            start = int(rng[6:-1])
            if start >= len(data):
                return self.send(416, b"")
        body = data[start:]
        self.send_response(206 if start else 200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.end_headers()
        key = (repo_id, path)
        if repo.get("drop_once") and key not in dropped:
            dropped.add(key)
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(2)
            return
        self.wfile.write(body)


srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hub)
with open(sys.argv[3] + ".tmp", "w") as f:
    f.write(str(srv.server_address[1]))
os.rename(sys.argv[3] + ".tmp", sys.argv[3])
srv.serve_forever()
