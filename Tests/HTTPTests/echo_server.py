#!/usr/bin/env python3
"""A small HTTP/1.1 server for the HTTP client tests. Prints its port first."""
import hashlib, http.server, json, socket, sys, threading, time, urllib.parse

class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass

    def _body(self):
        n = int(self.headers.get("Content-Length", "0") or 0)
        data = b""
        while len(data) < n:
            chunk = self.rfile.read(min(1 << 20, n - len(data)))
            if not chunk: break
            data += chunk
        return data

    def _send(self, code, body, ctype="application/json", extra=None):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items(): self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD": self.wfile.write(body)

    def handle_any(self):
        u = urllib.parse.urlsplit(self.path)
        q = dict(urllib.parse.parse_qsl(u.query))
        body = self._body()
        if u.path == "/echo":
            info = {"method": self.command, "path": u.path, "query": u.query, "length": len(body),
                    "sha256": hashlib.sha256(body).hexdigest(),
                    "headers": {k.lower(): v for k, v in self.headers.items()},
                    "expect": self.headers.get("Expect"),
                    "transfer_encoding": self.headers.get("Transfer-Encoding"),
                    "peer_port": self.client_address[1]}
            self._send(200, json.dumps(info).encode())
        elif u.path == "/bytes":
            n = int(q.get("n", "0"))
            self.send_response(200)
            self.send_header("Content-Length", str(n))
            self.send_header("X-Sha256", hashlib.sha256(pattern(n)).hexdigest())
            self.end_headers()
            sent = 0
            block = pattern(251 * 256)
            while sent < n:
                k = min(len(block), n - sent)
                self.wfile.write(block[:k]); sent += k
        elif u.path == "/status":
            self._send(int(q.get("code", "500")), b"<Error><Code>Test</Code></Error>", "application/xml")
        elif u.path == "/stall":
            self.send_response(200)
            self.send_header("Content-Length", "1000000")
            self.end_headers()
            self.wfile.write(b"x" * 10)
            self.wfile.flush()
            time.sleep(float(q.get("s", "30")))
        elif u.path == "/close-once":
            # The first request with this token: body read, then the connection
            # closes with no answer (a keep-alive connection the server dropped).
            # Later ones are answered like /echo.
            token = q.get("token", "")
            with HITS_LOCK:
                HITS[token] = HITS.get(token, 0) + 1
                n = HITS[token]
            if n == 1:
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            self._send(200, json.dumps({"length": len(body), "sha256": hashlib.sha256(body).hexdigest(), "hits": n}).encode())
        elif u.path == "/drop":
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            self.wfile.write(b"y" * 100)
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True
        else:
            self._send(404, b"{}")

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = handle_any

HITS = {}
HITS_LOCK = threading.Lock()

def pattern(n):
    base = bytes((i * 7 + 3) % 251 for i in range(251))
    return (base * (n // 251 + 1))[:n]

srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
srv.daemon_threads = True
print(srv.server_address[1], flush=True)
threading.Thread(target=lambda: (sys.stdin.read(), srv.shutdown()), daemon=True).start()
srv.serve_forever()
