#!/usr/bin/env python3
"""Alert receivers for Cairn's tests, on 127.0.0.1 only (docs/TESTING.md).

One process runs:
  - an HTTP receiver (and the same on HTTPS with a test CA) that records every
    request and checks it against the documented shape of the service its
    path names, answering as that service does:
      /hook/...                                   generic webhook (Cairn's signed JSON)
      /slack/...                                  Slack incoming webhook: JSON {"text"}; answers "ok"
      /twilio/2010-04-01/Accounts/AC.../Messages.json
                                                  basic auth SID:token, form To/From/Body; 201 JSON with sid
      /termii/api/sms/send                        JSON to/from/sms/type/channel/api_key; 200 JSON with message_id
      /sentry/api/N/store/                        X-Sentry-Auth, JSON event; 200 {"id": event_id}
      /ping/...                                   healthchecks-style pings; 200 "OK"
  - an SMTP server (aiosmtpd) with STARTTLS required and AUTH (PLAIN/LOGIN)
    required, and an SMTPS (implicit TLS) port, recording every message.

Control API on the HTTP port (never recorded):
  GET    /__control/health
  GET    /__control/requests[?path_prefix=X]     recorded HTTP requests (JSON list)
  DELETE /__control/requests[?path_prefix=X]
  GET    /__control/mail[?rcpt=ADDR]             recorded messages (JSON list)
  DELETE /__control/mail
  POST   /__control/fail  {"path_prefix": "/hook/t1", "status": 503, "count": 2, "action": "status"|"drop"}
         the next `count` (default: until cleared) requests under the prefix get `status`
         (or, with "drop", the connection is closed without an answer: the receiver looks down).
         path_prefix "smtp:" applies to SMTP messages (answered `status`, e.g. 451 or 550, at DATA).
  DELETE /__control/fail[?path_prefix=X]
"""

import argparse
import base64
import binascii
import datetime
import email
import email.policy
import email.utils
import ipaddress
import json
import os
import re
import secrets
import ssl
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOCK = threading.Lock()
REQUESTS = []
MAIL = []
RULES = []  # {"path_prefix", "status", "remaining" (None = unlimited), "action"}

SMTP_USER = "cairn-test"
SMTP_PASSWORD = "smtp-test-password"


def fault_for(path):
    with LOCK:
        for r in RULES:
            if path.startswith(r["path_prefix"]) and (r["remaining"] is None or r["remaining"] > 0):
                if r["remaining"] is not None:
                    r["remaining"] -= 1
                return dict(r)
    return None


# ---------------------------------------------------------------- validators
# Each returns (status, content_type, body, violations).

def _json(body):
    try:
        v = json.loads(body.decode("utf-8"))
        return v if isinstance(v, dict) else None
    except Exception:
        return None


def check_hook(method, path, headers, body):
    v = []
    if method != "POST":
        v.append("method must be POST")
    if not headers.get("content-type", "").startswith("application/json"):
        v.append("Content-Type must be application/json")
    sig = headers.get("x-cairn-signature", "")
    if not re.fullmatch(r"sha256=[0-9a-f]{64}", sig):
        v.append("X-Cairn-Signature must be sha256=<64 lower-case hex>")
    ts = headers.get("x-cairn-timestamp", "")
    if not ts.isdigit():
        v.append("X-Cairn-Timestamp must be Unix seconds")
    doc = _json(body)
    if doc is None:
        v.append("body must be a JSON object")
    else:
        for k in ("event", "job", "host", "message", "command", "timestamp"):
            if k not in doc:
                v.append(f"body lacks {k}")
        if ts.isdigit() and doc.get("timestamp") != int(ts):
            v.append("body timestamp differs from X-Cairn-Timestamp")
    if v:
        return 400, "application/json", json.dumps({"error": v}).encode(), v
    return 200, "application/json", b'{"ok": true}', v


def check_slack(method, path, headers, body):
    v = []
    doc = _json(body)
    if method != "POST":
        v.append("method must be POST")
    if not headers.get("content-type", "").startswith("application/json"):
        v.append("Content-Type must be application/json")
    if doc is None or not isinstance(doc.get("text"), str) or not doc["text"]:
        v.append("body must be JSON with a non-empty text")
        return 400, "text/plain", b"invalid_payload", v
    return 200, "text/plain", b"ok", v


TWILIO_PATH = re.compile(r"^/twilio/2010-04-01/Accounts/(AC[0-9a-fA-F]{32})/Messages\.json$")


def check_twilio(method, path, headers, body):
    v = []
    m = TWILIO_PATH.match(path)
    if not m:
        return 404, "application/json", json.dumps({"code": 20404, "message": "The requested resource was not found", "status": 404}).encode(), ["unknown Twilio path"]
    sid = m.group(1)
    auth = headers.get("authorization", "")
    user = None
    if auth.startswith("Basic "):
        try:
            user, _, token = base64.b64decode(auth[6:]).decode().partition(":")
        except Exception:
            user = None
    if user != sid or not token:
        v.append("basic auth must be ACCOUNT_SID:AUTH_TOKEN")
        return 401, "application/json", json.dumps({"code": 20003, "message": "Authenticate", "status": 401}).encode(), v
    if method != "POST":
        v.append("method must be POST")
    if not headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        v.append("Content-Type must be application/x-www-form-urlencoded")
    form = urllib.parse.parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    for k in ("To", "From", "Body"):
        if len(form.get(k, [])) != 1 or not form[k][0]:
            v.append(f"form field {k} missing")
    if v:
        return 400, "application/json", json.dumps({"code": 21604, "message": "; ".join(v), "status": 400}).encode(), v
    answer = {"sid": "SM" + secrets.token_hex(16), "account_sid": sid, "to": form["To"][0], "from": form["From"][0],
              "body": form["Body"][0], "status": "queued", "num_segments": "1",
              "date_created": email.utils.formatdate(usegmt=True), "api_version": "2010-04-01"}
    return 201, "application/json", json.dumps(answer).encode(), v


def check_termii(method, path, headers, body):
    v = []
    if path != "/termii/api/sms/send":
        return 404, "application/json", b'{"message": "not found"}', ["unknown Termii path"]
    if method != "POST":
        v.append("method must be POST")
    if not headers.get("content-type", "").startswith("application/json"):
        v.append("Content-Type must be application/json")
    doc = _json(body)
    if doc is None:
        v.append("body must be a JSON object")
    else:
        for k in ("to", "from", "sms", "type", "channel", "api_key"):
            if not isinstance(doc.get(k), str) or not doc[k]:
                v.append(f"{k} missing")
        if doc.get("type") != "plain":
            v.append("type must be plain")
        if doc.get("channel") not in ("generic", "dnd", "whatsapp"):
            v.append("channel must be generic, dnd or whatsapp")
        if isinstance(doc.get("to"), str) and not doc["to"].isdigit():
            v.append("to must be digits in international format without +")
    if v:
        return 400, "application/json", json.dumps({"message": "; ".join(v)}).encode(), v
    answer = {"message_id": str(secrets.randbelow(10**16)), "message": "Successfully Sent", "balance": 99, "user": "Cairn Test"}
    return 200, "application/json", json.dumps(answer).encode(), v


SENTRY_PATH = re.compile(r"^/sentry/api/(\d+)/store/$")


def check_sentry(method, path, headers, body):
    v = []
    if not SENTRY_PATH.match(path):
        return 404, "application/json", b'{"detail": "not found"}', ["unknown Sentry path"]
    auth = headers.get("x-sentry-auth", "")
    fields = dict(p.strip().split("=", 1) for p in auth[len("Sentry "):].split(",") if "=" in p) if auth.startswith("Sentry ") else {}
    if fields.get("sentry_version") != "7" or not fields.get("sentry_key") or not fields.get("sentry_client"):
        v.append("X-Sentry-Auth must carry sentry_version=7, sentry_client and sentry_key")
        return 401, "application/json", json.dumps({"detail": "missing authorization information"}).encode(), v
    doc = _json(body)
    if method != "POST":
        v.append("method must be POST")
    if doc is None:
        v.append("body must be a JSON event")
    else:
        if not re.fullmatch(r"[0-9a-f]{32}", str(doc.get("event_id", ""))):
            v.append("event_id must be 32 lower-case hex digits")
        if "timestamp" not in doc:
            v.append("timestamp missing")
        if doc.get("level") not in ("fatal", "error", "warning", "info", "debug"):
            v.append("level invalid")
    if v:
        return 400, "application/json", json.dumps({"detail": "; ".join(v)}).encode(), v
    return 200, "application/json", json.dumps({"id": doc["event_id"]}).encode(), v


def check_ping(method, path, headers, body):
    if method not in ("GET", "POST", "HEAD"):
        return 405, "text/plain", b"method not allowed", ["method must be GET, POST or HEAD"]
    return 200, "text/plain", b"OK", []


ROUTES = [("/hook/", check_hook), ("/slack/", check_slack), ("/twilio/", check_twilio),
          ("/termii/", check_termii), ("/sentry/", check_sentry), ("/ping/", check_ping)]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    scheme = "http"

    def log_message(self, fmt, *args):
        sys.stderr.write("%s %s\n" % (self.scheme, fmt % args))

    def _send(self, status, ctype, body):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n > 0 else b""

    def _control(self, method, path, query, body):
        q = urllib.parse.parse_qs(query)
        prefix = q.get("path_prefix", [None])[0]
        if path == "/__control/health":
            return self._send(200, "application/json", b'{"ok": true}')
        if path == "/__control/requests":
            with LOCK:
                if method == "DELETE":
                    REQUESTS[:] = [r for r in REQUESTS if prefix and not r["path"].startswith(prefix)]
                    return self._send(200, "application/json", b'{"ok": true}')
                out = [r for r in REQUESTS if not prefix or r["path"].startswith(prefix)]
            return self._send(200, "application/json", json.dumps(out).encode())
        if path == "/__control/mail":
            rcpt = q.get("rcpt", [None])[0]
            with LOCK:
                if method == "DELETE":
                    MAIL.clear()
                    return self._send(200, "application/json", b'{"ok": true}')
                out = [m for m in MAIL if not rcpt or rcpt in m["rcpt_tos"]]
            return self._send(200, "application/json", json.dumps(out).encode())
        if path == "/__control/fail":
            with LOCK:
                if method == "POST":
                    rule = json.loads(body or b"{}")
                    RULES.append({"path_prefix": rule.get("path_prefix", "/"), "status": int(rule.get("status", 503)),
                                  "remaining": rule.get("count"), "action": rule.get("action", "status")})
                    return self._send(200, "application/json", json.dumps({"ok": True, "rules": len(RULES)}).encode())
                if method == "DELETE":
                    RULES[:] = [r for r in RULES if prefix and r["path_prefix"] != prefix]
                    return self._send(200, "application/json", b'{"ok": true}')
                return self._send(200, "application/json", json.dumps(RULES).encode())
        return self._send(404, "application/json", b'{"error": "unknown control path"}')

    def _handle(self):
        parsed = urllib.parse.urlsplit(self.path)
        path, query = parsed.path, parsed.query
        body = self._body()
        if path.startswith("/__control/"):
            return self._control(self.command, path, query, body)
        headers = {k.lower(): v for k, v in self.headers.items()}
        entry = {"method": self.command, "path": path, "query": query, "headers": headers,
                 "body": body.decode("utf-8", "replace"), "body_base64": base64.b64encode(body).decode(),
                 "scheme": self.scheme, "time": time.time(), "status": None, "fault": None, "violations": []}
        fault = fault_for(path)
        if fault:
            entry["fault"] = fault["action"]
            if fault["action"] == "drop":
                with LOCK:
                    REQUESTS.append(entry)
                self.close_connection = True
                try:
                    self.connection.shutdown(2)
                except OSError:
                    pass
                return
            entry["status"] = fault["status"]
            with LOCK:
                REQUESTS.append(entry)
            return self._send(fault["status"], "application/json", json.dumps({"error": "injected failure"}).encode())
        for prefix, check in ROUTES:
            if path.startswith(prefix):
                status, ctype, answer, violations = check(self.command, path, headers, body)
                break
        else:
            status, ctype, answer, violations = 404, "text/plain", b"no such receiver", ["unknown path"]
        entry["status"] = status
        entry["violations"] = violations
        with LOCK:
            REQUESTS.append(entry)
        self._send(status, ctype, answer)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _handle


# ---------------------------------------------------------------- TLS material

def make_certs(directory):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    os.makedirs(directory, exist_ok=True)
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "cairn test alert CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(hours=1))
          .not_valid_after(now + datetime.timedelta(days=30))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                                       key_encipherment=False, data_encipherment=False, key_agreement=False,
                                       encipher_only=False, decipher_only=False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                                        x509.DNSName("localhost")]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = {n: os.path.join(directory, n) for n in ("ca.pem", "server.pem", "server.key")}
    with open(paths["ca.pem"], "wb") as f:
        f.write(ca.public_bytes(serialization.Encoding.PEM))
    with open(paths["server.pem"], "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with os.fdopen(os.open(paths["server.key"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(paths["server.pem"], paths["server.key"])
    return ctx


# ---------------------------------------------------------------- SMTP

def check_mail(data):
    v = []
    msg = email.message_from_bytes(data, policy=email.policy.compat32)
    for h in ("Date", "From", "To", "Subject", "Message-ID", "MIME-Version", "Content-Type", "Content-Transfer-Encoding"):
        if msg.get(h) is None:
            v.append(f"header {h} missing")
    date = msg.get("Date")
    if date:
        if not re.fullmatch(r"(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d{2}:\d{2}:\d{2} [+-]\d{4}", date):
            v.append("Date is not in RFC 5322 form")
        else:
            try:
                email.utils.parsedate_to_datetime(date)
            except Exception:
                v.append("Date does not parse")
    mid = msg.get("Message-ID")
    if mid and not re.fullmatch(r"<[^<>@\s]+@[^<>@\s]+>", mid):
        v.append("Message-ID is not <id@host>")
    if b"\r\n" not in data or re.search(rb"(?<!\r)\n", data):
        v.append("lines must end in CRLF")
    return msg, v


class MailHandler:
    def __init__(self, implicit_tls=False):
        # aiosmtpd sets session.ssl only after STARTTLS; the SMTPS port is TLS from the first byte.
        self.implicit_tls = implicit_tls

    async def handle_DATA(self, server, session, envelope):
        fault = fault_for("smtp:")
        data = envelope.original_content or envelope.content
        msg, violations = check_mail(data)
        body = msg.get_payload(decode=True) or b""
        entry = {"mail_from": envelope.mail_from, "rcpt_tos": list(envelope.rcpt_tos),
                 "data": data.decode("utf-8", "replace"), "subject": str(email.header.make_header(email.header.decode_header(msg.get("Subject", "")))),
                 "body": body.decode("utf-8", "replace"),
                 "headers": {k: v for k, v in msg.items()}, "tls": self.implicit_tls or session.ssl is not None, "implicit_tls": self.implicit_tls,
                 "auth_user": (session.auth_data.decode() if isinstance(session.auth_data, bytes) else session.auth_data),
                 "authenticated": bool(session.authenticated), "violations": violations, "time": time.time(),
                 "status": fault["status"] if fault else 250}
        with LOCK:
            MAIL.append(entry)
        if fault:
            return f"{fault['status']} {'4.3.0' if fault['status'] < 500 else '5.3.0'} injected failure"
        return "250 2.0.0 OK: queued"


def authenticator(server, session, envelope, mechanism, auth_data):
    from aiosmtpd.smtp import AuthResult
    ok = auth_data.login == SMTP_USER.encode() and auth_data.password == SMTP_PASSWORD.encode()
    return AuthResult(success=ok, auth_data=auth_data.login.decode() if ok else None, handled=False)


def start_smtp(port, smtps_port, tls_ctx):
    import email.header  # noqa: F401  (used in MailHandler)
    from aiosmtpd.controller import Controller

    starttls = Controller(MailHandler(), hostname="127.0.0.1", port=port, server_hostname="127.0.0.1",
                          tls_context=tls_ctx, require_starttls=True, authenticator=authenticator,
                          auth_required=True, auth_require_tls=True)
    starttls.start()
    # aiosmtpd only knows TLS it negotiated itself (STARTTLS): on the implicit-TLS
    # port the whole session is TLS, so AUTH needs no further TLS requirement.
    implicit = Controller(MailHandler(implicit_tls=True), hostname="127.0.0.1", port=smtps_port, server_hostname="127.0.0.1",
                          ssl_context=tls_ctx, authenticator=authenticator, auth_required=True, auth_require_tls=False)
    implicit.start()
    return starttls, implicit


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--http-port", type=int, required=True)
    ap.add_argument("--https-port", type=int, required=True)
    ap.add_argument("--smtp-port", type=int, required=True)
    ap.add_argument("--smtps-port", type=int, required=True)
    ap.add_argument("--dir", required=True, help="where the test CA and server certificate are written")
    args = ap.parse_args()

    tls_ctx = make_certs(args.dir)
    smtp = start_smtp(args.smtp_port, args.smtps_port, tls_ctx)

    http = ThreadingHTTPServer(("127.0.0.1", args.http_port), Handler)
    http.daemon_threads = True

    class TLSHandler(Handler):
        scheme = "https"

    https = ThreadingHTTPServer(("127.0.0.1", args.https_port), TLSHandler)
    https.daemon_threads = True
    https.socket = tls_ctx.wrap_socket(https.socket, server_side=True)
    threading.Thread(target=https.serve_forever, daemon=True).start()
    print(f"alert receiver: http {args.http_port} https {args.https_port} smtp {args.smtp_port} smtps {args.smtps_port}", flush=True)
    try:
        http.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        for c in smtp:
            c.stop()


if __name__ == "__main__":
    import email.header  # noqa: F401
    import signal

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    main()
