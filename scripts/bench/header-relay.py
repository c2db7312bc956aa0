#!/usr/bin/env python3
"""A TCP relay that logs the HTTP request heads clients send (python3 stdlib).

header-relay.py LISTEN_PORT UPSTREAM_HOST UPSTREAM_PORT LOG_FILE: forwards
every connection unchanged (the signed Host header reaches the server as
sent) and appends one JSON line per request to LOG_FILE: connection number,
request line, headers in the order sent, body length, and how many write
calls (recv()s on the relay) the body arrived in. Bodies are not logged.
Responses are relayed unparsed. Used to compare Cairn's requests with
awscli's (docs/BENCHMARKS.md, "Upload, issue 15").
"""
import json, socket, sys, threading

LOCK = threading.Lock()
CONN = 0


def log(path, entry):
    with LOCK, open(path, "a") as f:
        f.write(json.dumps(entry) + "\n")


def client_to_server(src, dst, conn_no, path):
    buf = b""
    state = "head"
    remaining = 0
    entry = None
    try:
        while True:
            data = src.recv(1 << 20)
            if not data:
                break
            dst.sendall(data)
            buf += data
            while buf:
                if state == "head":
                    end = buf.find(b"\r\n\r\n")
                    if end < 0:
                        break
                    head = buf[:end].decode("latin-1").split("\r\n")
                    buf = buf[end + 4:]
                    headers = [h.split(":", 1) for h in head[1:]]
                    headers = [[k.strip(), v.strip()] for k, v in headers]
                    clen = next((int(v) for k, v in headers if k.lower() == "content-length"), 0)
                    if any(k.lower() == "transfer-encoding" for k, _ in headers):
                        clen = -1  # not parsed further
                    entry = {"conn": conn_no, "request": head[0], "headers": headers,
                             "body_bytes": clen, "body_recvs": 0}
                    if clen <= 0:
                        log(path, entry)
                        if clen < 0:
                            state = "opaque"
                        continue
                    remaining = clen
                    state = "body"
                elif state == "body":
                    n = min(len(buf), remaining)
                    entry["body_recvs"] += 1
                    remaining -= n
                    buf = buf[n:]
                    if remaining == 0:
                        log(path, entry)
                        state = "head"
                else:
                    buf = b""
    except OSError:
        pass
    finally:
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass


def server_to_client(src, dst):
    try:
        while True:
            data = src.recv(1 << 16)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    finally:
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass


def main():
    global CONN
    port, host, uport, path = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", port))
    ls.listen(64)
    while True:
        c, _ = ls.accept()
        u = socket.create_connection((host, uport))
        with LOCK:
            CONN += 1
            n = CONN
        threading.Thread(target=client_to_server, args=(c, u, n, path), daemon=True).start()
        threading.Thread(target=server_to_client, args=(u, c), daemon=True).start()


if __name__ == "__main__":
    main()
