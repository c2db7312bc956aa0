#!/usr/bin/env python3
"""Strict S3 proxy for Cairn's tests (python3 stdlib only).

Sits in front of moto's S3 server and forwards every request unchanged (the
Host header is kept exactly as received, since SigV4 signs it). It enforces
rules moto does not check and can inject faults:

  * Body integrity (as S3 checks it): a Content-MD5 must match the MD5 of
    the (decoded) body (BadDigest); an x-amz-checksum-crc32/crc32c/sha1/
    sha256 header must match the body (BadDigest); a hex
    x-amz-content-sha256 must match the body's SHA-256
    (XAmzContentSHA256Mismatch). DeleteObjects (POST ?delete) must carry
    Content-MD5 or an x-amz-checksum-* header (S3: InvalidRequest).
  * Cairn's rule, stricter than S3: every UploadPart (PUT
    ?partNumber&uploadId, not a copy) must carry one of those checks
    (Content-MD5, x-amz-checksum-*, or a signed payload SHA-256), so that a
    part corrupted on the way is refused (InvalidDigest otherwise).
  * Multipart checksum types, as S3: an upload created with
    x-amz-checksum-algorithm A takes only parts carrying x-amz-checksum-A
    (InvalidRequest "Checksum Type mismatch"), and its
    CompleteMultipartUpload must list each part's Checksum<A> equal to the
    part's (InvalidRequest / InvalidPart).
  * CompleteMultipartUpload: all listed parts but the last must have the same
    size and the last must not be larger.
  * Faults and inspection under /__proxy/ (never forwarded):
      POST   /__proxy/faults      append a rule (JSON, see docs/TESTING.md)
      POST   /__proxy/release     let requests held by "hold" rules go on
                                  (?path_contains=X: only those rules')
      DELETE /__proxy/faults      clear the rules
      GET    /__proxy/faults      list the rules with their remaining counts
      GET    /__proxy/log         JSON list of requests seen (?path_contains=X: only those)
      GET    /__proxy/violations  JSON list of rule violations
      DELETE /__proxy/log         clear log and violations
      GET    /__proxy/health      {"ok": true}
    Fault action "corrupt" flips one byte of a matching request's body
    before the rules, as a part damaged on its way would be.

Usage: s3proxy.py --listen-port P --upstream-port U [--host 127.0.0.1]
"""

import argparse
import base64
import hashlib
import http.client
import http.server
import json
import re
import socket
import sys
import threading
import time
import urllib.parse
import xml.etree.ElementTree as ET
import zlib
from xml.sax.saxutils import escape as xml_escape

MAX_BODY = 64 * 1024 * 1024 + 1024 * 1024  # bodies are <= 64 MiB (+ aws-chunked framing)
CHUNK = 64 * 1024
HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "te", "trailer", "upgrade"}


class State:
    def __init__(self):
        self.lock = threading.Lock()
        self.rules = []          # dicts with "remaining"
        self.log = []
        self.violations = []
        self.part_sizes = {}     # upload_id -> {part_number: size}
        self.upload_algorithms = {}  # upload_id -> "" or "CRC32C", ... (uploads created through the proxy)
        self.part_checksums = {}     # upload_id -> {part_number: base64 checksum}

    def take_fault(self, method, path, query, content=b""):
        with self.lock:
            for rule in self.rules:
                if rule["remaining"] <= 0:
                    continue
                if rule.get("method") and rule["method"].upper() != method:
                    continue
                if rule.get("path_contains") and rule["path_contains"] not in path:
                    continue
                if rule.get("path_suffix") and not path.endswith(rule["path_suffix"]):
                    continue
                if rule.get("query_contains") and rule["query_contains"] not in query:
                    continue
                if rule.get("body_contains") and rule["body_contains"].encode() not in content:
                    continue
                rule["remaining"] -= 1
                return dict(rule)
        return None

    def record(self, entry):
        with self.lock:
            self.log.append(entry)

    def violate(self, method, path, query, reason):
        text = "%s %s%s: %s" % (method, path, ("?" + query) if query else "", reason)
        with self.lock:
            self.violations.append(text)
        sys.stderr.write("s3proxy violation: %s\n" % text)
        sys.stderr.flush()


STATE = State()
UPSTREAM = ("127.0.0.1", 0)


def s3_error_xml(code, message, resource=""):
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        "<Error><Code>%s</Code><Message>%s</Message><Resource>%s</Resource>"
        "<RequestId>s3proxy</RequestId></Error>"
        % (xml_escape(code), xml_escape(message), xml_escape(resource))
    ).encode()


def _crc_table(poly):
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ (poly if c & 1 else 0)
        table.append(c)
    return table


CRC32C_TABLE = _crc_table(0x82F63B78)


def crc32c(data):
    # Pure Python (no crc32c module in the stdlib): ~10 MB/s, enough for tests.
    t = CRC32C_TABLE
    c = 0xFFFFFFFF
    for b in data:
        c = t[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def checksum_b64(algo, content):
    algo = algo.lower()
    if algo == "crc32":
        raw = zlib.crc32(content).to_bytes(4, "big")
    elif algo == "crc32c":
        raw = crc32c(content).to_bytes(4, "big")
    elif algo == "sha1":
        raw = hashlib.sha1(content).digest()
    elif algo == "sha256":
        raw = hashlib.sha256(content).digest()
    else:
        return None
    return base64.b64encode(raw).decode()


CHECKSUM_ALGOS = ("crc32", "crc32c", "sha1", "sha256")


def decode_aws_chunked(body):
    """Decode an aws-chunked body (STREAMING-* payloads) into the raw content."""
    out = bytearray()
    pos = 0
    while True:
        eol = body.index(b"\r\n", pos)
        header = body[pos:eol].split(b";", 1)[0].strip()
        size = int(header, 16)
        pos = eol + 2
        if size == 0:
            break
        out += body[pos:pos + size]
        pos += size + 2  # data + CRLF
    return bytes(out)


def list_parts_with_checksums(xml, upload_id):
    """S3's ListParts names each part's checksum (ChecksumCRC32C, ...) when
    the upload declared an algorithm; moto's does not. Adds, to each <Part>
    that lacks it, the checksum the part carried through this proxy."""
    with STATE.lock:
        algo = STATE.upload_algorithms.get(upload_id)
        sums = dict(STATE.part_checksums.get(upload_id, {}))
    if not algo or not sums:
        return xml
    tag = ("Checksum" + algo).encode()

    def amend(m):
        part = m.group(0)
        if tag in part:
            return part
        n = re.search(rb"<PartNumber>\s*(\d+)\s*</PartNumber>", part)
        value = sums.get(int(n.group(1))) if n else None
        if not value:
            return part
        return part.replace(b"</Part>", b"<" + tag + b">" + value.encode() + b"</" + tag + b"></Part>")

    return re.sub(rb"<Part>.*?</Part>", amend, xml, flags=re.S)


def parse_query(query):
    return urllib.parse.parse_qs(query, keep_blank_values=True)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "cairn-s3proxy"
    sys_version = ""
    timeout = 300  # idle keep-alive connections are closed after this

    def log_message(self, fmt, *args):  # quiet; the JSON log is the record
        pass

    # ---- plumbing -------------------------------------------------------

    def read_body(self):
        """Returns (raw_body_bytes, was_chunked)."""
        te = self.headers.get("Transfer-Encoding", "")
        if "chunked" in te.lower():
            data = bytearray()
            while True:
                line = self.rfile.readline(65537)
                if not line:
                    raise ConnectionError("client closed mid chunked body")
                size = int(line.split(b";", 1)[0].strip(), 16)
                if size == 0:
                    # trailers until empty line
                    while True:
                        t = self.rfile.readline(65537)
                        if t in (b"\r\n", b"\n", b""):
                            break
                    break
                data += self.rfile.read(size)
                self.rfile.readline(3)
                if len(data) > MAX_BODY:
                    raise ValueError("body too large")
            return bytes(data), True
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            raise ValueError("body too large")
        body = self.rfile.read(length) if length else b""
        if len(body) != length:
            raise ConnectionError("client closed mid body")
        return body, False

    def send_simple(self, status, body, content_type="application/xml", extra=None):
        self.send_response(status)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self.wfile.flush()

    def send_json(self, status, obj):
        self.send_simple(status, json.dumps(obj, indent=1).encode() + b"\n", "application/json")

    # ---- dispatch -------------------------------------------------------

    def do_GET(self): self.handle_any()
    def do_PUT(self): self.handle_any()
    def do_POST(self): self.handle_any()
    def do_DELETE(self): self.handle_any()
    def do_HEAD(self): self.handle_any()
    def do_OPTIONS(self): self.handle_any()
    def do_PATCH(self): self.handle_any()

    def handle_any(self):
        try:
            self._handle()
        except (ConnectionError, BrokenPipeError, socket.timeout, TimeoutError):
            self.close_connection = True
        except Exception as exc:  # keep the server alive; report to the client
            self.close_connection = True
            sys.stderr.write("s3proxy error: %r\n" % (exc,))
            try:
                self.send_simple(500, s3_error_xml("InternalError", "s3proxy: %r" % (exc,)))
            except Exception:
                pass

    def _handle(self):
        raw_path, _, query = self.path.partition("?")
        method = self.command
        body, chunked = self.read_body()

        if raw_path.startswith("/__proxy/"):
            return self.control(method, raw_path, body)

        q = parse_query(query)
        part_number = q.get("partNumber", [None])[0]
        upload_id = q.get("uploadId", [None])[0]
        entry = {
            "method": method,
            "path": raw_path,
            "query": query,
            "status": None,
            "body_bytes": len(body),
            "part_number": int(part_number) if part_number and part_number.isdigit() else None,
            "upload_id": upload_id,
            "fault": None,
            "violation": None,
            "time": round(time.time(), 3),
        }

        # decoded content (aws-chunked streaming payloads carry chunk framing)
        content = body
        sha_hdr = self.headers.get("x-amz-content-sha256", "")
        if sha_hdr.startswith("STREAMING-") or "aws-chunked" in self.headers.get("Content-Encoding", ""):
            try:
                content = decode_aws_chunked(body)
            except Exception:
                content = body
        entry["body_bytes"] = len(content)

        # 1. injected faults
        fault = STATE.take_fault(method, raw_path, query, content)
        if fault:
            entry["fault"] = fault["action"]
            action = fault["action"]
            if action == "status":
                status = int(fault.get("status") or 503)
                entry["status"] = status
                STATE.record(entry)
                code = fault.get("code") or "SlowDown"
                extra = {"Retry-After": "0"} if status in (429, 503) else None
                return self.send_simple(status, s3_error_xml(code, "injected fault (s3proxy)", raw_path), extra=extra)
            if action == "delete_error":
                # A DeleteObjects answered as S3 answers a key it refuses
                # (Object Lock): 200, an <Error> per key containing
                # body_contains; nothing is forwarded, so use it on requests
                # that hold only such keys.
                entry["status"] = 200
                STATE.record(entry)
                code = fault.get("code") or "AccessDenied"
                errors = "".join(
                    "<Error><Key>%s</Key><Code>%s</Code><Message>injected refusal (s3proxy)</Message></Error>"
                    % (xml_escape(k), xml_escape(code))
                    for k in re.findall(r"<Key>(.*?)</Key>", content.decode("utf-8", "replace"))
                    if fault.get("body_contains", "") in k)
                return self.send_simple(200, ('<?xml version="1.0" encoding="UTF-8"?>\n<DeleteResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">%s</DeleteResult>' % errors).encode())
            if action == "drop":
                STATE.record(entry)
                return self.hard_close()
            if action == "delay":
                # Hold the request (a slow or hung server), then forward it.
                # Logged now too, so that a test sees the request arrive.
                STATE.record(dict(entry, status=None))
                time.sleep(float(fault.get("seconds") or 5))
            if action == "hold":
                # Hold the request until the test releases it (POST
                # /__proxy/release), or `seconds` pass (a guard against a
                # test that never does), then forward it.
                STATE.record(dict(entry, status=None))
                fault["event"].wait(float(fault.get("seconds") or 300))
            if action == "corrupt":
                # One byte of the body flipped on its way (after the client's
                # digests): the integrity rules below must refuse it.
                if content:
                    plain = content is body
                    i = len(content) // 2
                    content = content[:i] + bytes([content[i] ^ 0xFF]) + content[i + 1:]
                    if plain:
                        body = content  # what is forwarded, should a server take it
            # drop_mid_response: forwarded below, cut after half the body

        # 2. strict rules
        violation = self.check_rules(method, raw_path, query, q, content, upload_id, part_number)
        if violation:
            status, code, message = violation
            entry["status"] = status
            entry["violation"] = message
            STATE.violate(method, raw_path, query, message)
            STATE.record(entry)
            return self.send_simple(status, s3_error_xml(code, message, raw_path))

        # 3. forward. A client that vanished while the answer was on its way
        # (killed mid-request) still had its request carried out upstream:
        # that is logged too, with the upstream status and client_gone.
        self.upstream_status = None
        self.captured = None
        try:
            is_list_parts = method == "GET" and upload_id is not None and part_number is None
            status = self.forward(method, body, chunked,
                                  cut_half=bool(fault and fault["action"] == "drop_mid_response"),
                                  capture=(method == "POST" and "uploads" in q),
                                  rewrite=(lambda xml: list_parts_with_checksums(xml, upload_id)) if is_list_parts else None)
        except ConnectionError:
            if self.upstream_status is not None:
                STATE.record(dict(entry, status=self.upstream_status, client_gone=True))
            raise
        entry["status"] = status
        STATE.record(entry)

        # 4. bookkeeping for part sizes and checksum types
        if status == 200 and method == "POST" and "uploads" in q and self.captured is not None:
            m = re.search(rb"<UploadId>([^<]+)</UploadId>", self.captured)
            if m:
                with STATE.lock:
                    STATE.upload_algorithms[m.group(1).decode()] = self.headers.get("x-amz-checksum-algorithm", "").upper()
        if status == 200 and upload_id:
            with STATE.lock:
                if method == "PUT" and part_number and "x-amz-copy-source" not in self.headers:
                    STATE.part_sizes.setdefault(upload_id, {})[int(part_number)] = len(content)
                    algo = STATE.upload_algorithms.get(upload_id)
                    if algo:
                        STATE.part_checksums.setdefault(upload_id, {})[int(part_number)] = \
                            self.headers.get("x-amz-checksum-" + algo.lower())
                elif method == "DELETE" or method == "POST":
                    STATE.part_sizes.pop(upload_id, None)
                    STATE.part_checksums.pop(upload_id, None)
                    STATE.upload_algorithms.pop(upload_id, None)

    def hard_close(self):
        self.close_connection = True
        try:
            self.wfile.flush()
        except Exception:
            pass
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.connection.close()

    # ---- rules ----------------------------------------------------------

    def check_rules(self, method, path, query, q, content, upload_id, part_number):
        is_upload_part = (method == "PUT" and part_number is not None and upload_id is not None
                          and "x-amz-copy-source" not in self.headers)
        is_delete_objects = method == "POST" and "delete" in q
        md5_header = self.headers.get("Content-MD5")
        checksum_headers = [(a, self.headers.get("x-amz-checksum-" + a)) for a in CHECKSUM_ALGOS
                            if self.headers.get("x-amz-checksum-" + a) is not None]
        sha_hdr = self.headers.get("x-amz-content-sha256", "")
        signed_sha = re.fullmatch(r"[0-9a-fA-F]{64}", sha_hdr or "") is not None

        if is_delete_objects and md5_header is None and not checksum_headers:
            return (400, "InvalidRequest",
                    "Missing required header for this request: Content-MD5 or x-amz-checksum-* (DeleteObjects)")
        if is_upload_part and md5_header is None and not checksum_headers and not signed_sha:
            return (400, "InvalidDigest",
                    "UploadPart without an integrity check: Content-MD5, x-amz-checksum-* or a signed "
                    "x-amz-content-sha256 is required (Cairn's rule)")
        # The signed payload hash first: it is part of the request's signature,
        # checked as the body arrives, before any checksum header.
        if signed_sha and hashlib.sha256(content).hexdigest() != sha_hdr.lower():
            return (400, "XAmzContentSHA256Mismatch",
                    "The provided 'x-amz-content-sha256' header does not match what was computed.")
        if md5_header is not None:
            try:
                want = base64.b64decode(md5_header.strip(), validate=True)
            except Exception:
                want = b""
            if len(want) != 16:
                return (400, "InvalidDigest", "The Content-MD5 you specified was invalid: %r" % md5_header)
            got = hashlib.md5(content).digest()
            if got != want:
                return (400, "BadDigest",
                        "The Content-MD5 you specified did not match what we received "
                        "(header %s, body %s)" % (md5_header.strip(), base64.b64encode(got).decode()))
        for algo, value in checksum_headers:
            got = checksum_b64(algo, content)
            if got != value.strip():
                return (400, "BadDigest", "The %s you specified did not match the calculated checksum "
                        "(header %s, body %s)" % (algo.upper(), value.strip(), got))

        if is_upload_part:
            with STATE.lock:
                algo = STATE.upload_algorithms.get(upload_id)
            # Only the direction S3 is documented to refuse (a declared algorithm the part
            # lacks); parts with a checksum on an undeclared upload are let through:
            # botocore >= 1.36 sends CRC32 on every part by default.
            if algo:
                sent = [a for a, _ in checksum_headers]
                if sent != [algo.lower()]:
                    return (400, "InvalidRequest",
                            "Checksum Type mismatch occurred, expected checksum Type: %s, actual checksum Type: %s"
                            % (algo.lower() or "null", ",".join(sent) or "null"))

        if method == "POST" and upload_id is not None and "uploadId" in q:
            try:
                root = ET.fromstring(content)
            except ET.ParseError:
                return None  # let the server answer MalformedXML
            numbers = []
            for el in root.iter():
                if el.tag.split("}")[-1] == "Part":
                    for child in el:
                        if child.tag.split("}")[-1] == "PartNumber":
                            try:
                                numbers.append(int((child.text or "").strip()))
                            except ValueError:
                                return None
            with STATE.lock:
                sizes = dict(STATE.part_sizes.get(upload_id, {}))
                algo = STATE.upload_algorithms.get(upload_id)
                sums = dict(STATE.part_checksums.get(upload_id, {}))
            if algo:
                tag = "Checksum" + algo
                for el in root.iter():
                    if el.tag.split("}")[-1] != "Part":
                        continue
                    fields = {c.tag.split("}")[-1]: (c.text or "").strip() for c in el}
                    n = int(fields.get("PartNumber") or 0)
                    if tag not in fields:
                        return (400, "InvalidRequest",
                                "The upload was created using a %s checksum. The complete request must include "
                                "the checksum for each part. It was missing for part %d in the request."
                                % (algo.lower(), n))
                    if n in sums and sums[n] != fields[tag]:
                        return (400, "InvalidPart", "part %d: %s %s does not match the part's %s"
                                % (n, tag, fields[tag], sums[n]))
            if len(numbers) >= 2 and all(n in sizes for n in numbers):
                listed = [sizes[n] for n in numbers]
                first = listed[0]
                bad = [n for n, s in zip(numbers[:-1], listed[:-1]) if s != first]
                if bad or listed[-1] > first:
                    return (400, "InvalidPart",
                            "unequal part sizes: %s" % ", ".join(
                                "part %d=%d" % (n, s) for n, s in zip(numbers, listed)))
        return None

    # ---- forwarding -----------------------------------------------------

    def forward(self, method, body, chunked, cut_half=False, capture=False, rewrite=None):
        conn = http.client.HTTPConnection(UPSTREAM[0], UPSTREAM[1], timeout=300)
        headers_sent = False
        try:
            conn.putrequest(method, self.path, skip_host=True, skip_accept_encoding=True)
            for name, value in self.headers.items():
                if name.lower() in HOP_BY_HOP:
                    continue
                conn.putheader(name, value)
            conn.endheaders()
            if chunked:
                if body:
                    conn.send(b"%x\r\n" % len(body) + body + b"\r\n")
                conn.send(b"0\r\n\r\n")
            elif body:
                conn.send(body)
            resp = conn.getresponse()
            self.upstream_status = resp.status
            if rewrite is not None and resp.status == 200 and not cut_half:
                # a small XML answer, read whole and amended (see list_parts_with_checksums)
                data = rewrite(resp.read())
                headers_sent = True
                self.send_response_only(resp.status, resp.reason)
                for name, value in resp.getheaders():
                    if name.lower() in HOP_BY_HOP or name.lower() in ("transfer-encoding", "content-length"):
                        continue
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                if self.close_connection:
                    self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(data)
                self.wfile.flush()
                return resp.status

            headers_sent = True
            self.send_response_only(resp.status, resp.reason)
            length = resp.getheader("Content-Length")
            no_body = method == "HEAD" or resp.status in (204, 304) or 100 <= resp.status < 200
            upstream_chunked = length is None and not no_body
            for name, value in resp.getheaders():
                ln = name.lower()
                if ln in HOP_BY_HOP or ln == "transfer-encoding":
                    continue
                self.send_header(name, value)
            if upstream_chunked:
                if cut_half:
                    # unknown length: read it all to know what half is
                    data = resp.read()
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data[: len(data) // 2])
                    self.hard_close()
                    return resp.status
                self.send_header("Transfer-Encoding", "chunked")
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()

            if no_body:
                if cut_half:
                    self.hard_close()
                self.wfile.flush()
                return resp.status

            if cut_half:
                total = int(length)
                half = total // 2
                sent = 0
                while sent < half:
                    data = resp.read(min(CHUNK, half - sent))
                    if not data:
                        break
                    self.wfile.write(data)
                    sent += len(data)
                self.hard_close()
                return resp.status

            while True:
                data = resp.read(CHUNK)
                if not data:
                    break
                if capture:
                    self.captured = (self.captured or b"") + data
                if upstream_chunked:
                    self.wfile.write(b"%x\r\n" % len(data) + data + b"\r\n")
                else:
                    self.wfile.write(data)
            if upstream_chunked:
                self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
            return resp.status
        except (http.client.HTTPException, OSError) as exc:
            self.close_connection = True
            if headers_sent:
                # client went away, or upstream failed mid-response: nothing sane to send
                raise ConnectionError(str(exc))
            sys.stderr.write("s3proxy upstream error: %r\n" % (exc,))
            self.send_simple(502, s3_error_xml("BadGateway", "s3proxy upstream error: %r" % (exc,)))
            return 502
        finally:
            conn.close()

    # ---- control API ----------------------------------------------------

    def control(self, method, path, body):
        if path == "/__proxy/health" and method in ("GET", "HEAD"):
            return self.send_json(200, {"ok": True})
        if path == "/__proxy/faults":
            if method == "POST":
                try:
                    rule = json.loads(body or b"{}")
                    if not isinstance(rule, dict):
                        raise ValueError("rule must be a JSON object")
                    action = rule.get("action", "status")
                    if action not in ("status", "drop", "drop_mid_response", "delay", "hold", "delete_error", "corrupt"):
                        raise ValueError("action must be status, drop, drop_mid_response, delay, hold, delete_error or corrupt")
                    clean = {
                        "method": rule.get("method"),
                        "path_contains": rule.get("path_contains"),
                        "path_suffix": rule.get("path_suffix"),
                        "query_contains": rule.get("query_contains"),
                        "body_contains": rule.get("body_contains"),
                        "action": action,
                        "status": int(rule.get("status") or 503),
                        "code": rule.get("code") or "SlowDown",
                        "seconds": float(rule.get("seconds") or 5),
                        "count": int(rule.get("count", 1)),
                    }
                    clean["remaining"] = clean["count"]
                    if action == "hold":
                        clean["event"] = threading.Event()
                except (ValueError, TypeError) as exc:
                    return self.send_json(400, {"error": str(exc)})
                with STATE.lock:
                    STATE.rules.append(clean)
                    n = len(STATE.rules)
                return self.send_json(200, {"ok": True, "rules": n})
            if method == "DELETE":
                # ?path_contains=X removes only the rules with that path_contains
                # (tests run in parallel: one test must not clear another's rules).
                scope = urllib.parse.parse_qs(self.path.split("?", 1)[1] if "?" in self.path else "").get("path_contains", [None])[0]
                with STATE.lock:
                    for r in STATE.rules:
                        if "event" in r and (scope is None or r.get("path_contains") == scope):
                            r["event"].set()
                    if scope is None:
                        STATE.rules.clear()
                    else:
                        STATE.rules[:] = [r for r in STATE.rules if r.get("path_contains") != scope]
                return self.send_json(200, {"ok": True})
            if method == "GET":
                with STATE.lock:
                    rules = [{k: v for k, v in r.items() if k != "event"} for r in STATE.rules]
                return self.send_json(200, rules)
        if path == "/__proxy/release" and method == "POST":
            scope = urllib.parse.parse_qs(self.path.split("?", 1)[1] if "?" in self.path else "").get("path_contains", [None])[0]
            released = 0
            with STATE.lock:
                for r in STATE.rules:
                    if "event" in r and (scope is None or r.get("path_contains") == scope):
                        r["event"].set()
                        released += 1
            return self.send_json(200, {"ok": True, "released": released})
        if path == "/__proxy/log":
            if method == "GET":
                # ?path_contains=X: only the entries whose path contains X (the
                # whole log of a long test run is large).
                scope = urllib.parse.parse_qs(self.path.split("?", 1)[1] if "?" in self.path else "").get("path_contains", [None])[0]
                with STATE.lock:
                    log = [e for e in STATE.log if scope is None or scope in e["path"]]
                return self.send_json(200, log)
            if method == "DELETE":
                with STATE.lock:
                    STATE.log.clear()
                    STATE.violations.clear()
                return self.send_json(200, {"ok": True})
        if path == "/__proxy/violations" and method == "GET":
            with STATE.lock:
                v = list(STATE.violations)
            return self.send_json(200, v)
        return self.send_json(404, {"error": "unknown control endpoint %s %s" % (method, path)})


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


def main():
    global UPSTREAM
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--listen-port", type=int, required=True)
    ap.add_argument("--upstream-host", default="127.0.0.1")
    ap.add_argument("--upstream-port", type=int, required=True)
    args = ap.parse_args()
    UPSTREAM = (args.upstream_host, args.upstream_port)
    srv = Server((args.host, args.listen_port), Handler)
    sys.stderr.write("s3proxy listening on %s:%d -> %s:%d\n" % (args.host, args.listen_port, *UPSTREAM))
    sys.stderr.flush()
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
