#!/usr/bin/env python3
"""A fake EC2 instance metadata service (IMDSv2 only) for the credentials tests.

Binds 127.0.0.1 on a free port and prints the port as the first line of
stdout. Exits when its stdin closes (so it never outlives the test).

  PUT /latest/api/token                              needs X-aws-ec2-metadata-token-ttl-seconds
  GET /latest/meta-data/iam/security-credentials/    role name      (needs a valid token)
  GET /latest/meta-data/iam/security-credentials/R   role JSON      (needs a valid token)
  GET /__count                                       request counters as JSON (no token)

Options:
  --expires-in SECONDS   Expiration of the credentials, relative to each request (default 21600)
  --token-uses N         a token is accepted for N GETs, then answers 401 (default: unlimited)
  --role NAME            role name (default cairn-role)
"""
import argparse, datetime, http.server, json, sys, threading

ap = argparse.ArgumentParser()
ap.add_argument("--expires-in", type=int, default=21600)
ap.add_argument("--token-uses", type=int, default=0)
ap.add_argument("--role", default="cairn-role")
args = ap.parse_args()

lock = threading.Lock()
counts = {"token": 0, "list": 0, "creds": 0, "unauthorized": 0, "other": 0}
tokens = {}  # token -> remaining uses (None = unlimited)
last_ttl = [None]
ROLE_PATH = "/latest/meta-data/iam/security-credentials/"


class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def _send(self, code, body, ctype="text/plain"):
        if isinstance(body, str):
            body = body.encode()
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_PUT(self):
        n = int(self.headers.get("Content-Length", "0") or 0)
        if n:
            self.rfile.read(n)
        if self.path != "/latest/api/token":
            return self._send(404, "not found")
        ttl = self.headers.get("X-aws-ec2-metadata-token-ttl-seconds")
        if not ttl or not ttl.isdigit() or not (1 <= int(ttl) <= 21600):
            return self._send(400, "missing or invalid ttl")
        with lock:
            counts["token"] += 1
            last_ttl[0] = int(ttl)
            token = "TOKEN-%d" % counts["token"]
            tokens[token] = args.token_uses or None
        self._send(200, token)

    def _authorized(self):
        tok = self.headers.get("X-aws-ec2-metadata-token")
        with lock:
            if tok not in tokens:
                return False
            left = tokens[tok]
            if left is None:
                return True
            if left <= 0:
                return False
            tokens[tok] = left - 1
            return True

    def do_GET(self):
        if self.path == "/__count":
            with lock:
                body = dict(counts, last_ttl=last_ttl[0])
            return self._send(200, json.dumps(body), "application/json")
        if not self._authorized():
            with lock:
                counts["unauthorized"] += 1
            return self._send(401, "unauthorized")
        if self.path == ROLE_PATH:
            with lock:
                counts["list"] += 1
            return self._send(200, args.role + "\n")
        if self.path == ROLE_PATH + args.role:
            with lock:
                counts["creds"] += 1
                n = counts["creds"]
            exp = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=args.expires_in)
            doc = {
                "Code": "Success",
                "LastUpdated": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "Type": "AWS-HMAC",
                "AccessKeyId": "ASIAIMDSTEST%04d" % n,
                "SecretAccessKey": "imds-secret-%d" % n,
                "Token": "imds-session-token-%d" % n,
                "Expiration": exp.strftime("%Y-%m-%dT%H:%M:%SZ"),
            }
            return self._send(200, json.dumps(doc), "application/json")
        with lock:
            counts["other"] += 1
        self._send(404, "not found")


srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
srv.daemon_threads = True
print(srv.server_address[1], flush=True)
threading.Thread(target=lambda: (sys.stdin.read(), srv.shutdown()), daemon=True).start()
srv.serve_forever()
