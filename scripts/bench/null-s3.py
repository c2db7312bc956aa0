#!/usr/bin/env python3
"""A null S3 sink for upload benchmarks (python3 stdlib only).

null-s3.py PORT: a threaded HTTP/1.1 server on 127.0.0.1:PORT that answers
CreateMultipartUpload, UploadPart, CompleteMultipartUpload and PutObject
as S3 would for a client that only needs the answer's shape (UploadId,
ETag), without checking signatures, digests or checksums. Bodies are read
into one reused buffer and discarded, so the server costs as little CPU
per byte as Python allows: a client's run against it shows the client's
own ceiling (scripts/bench/upload). Everything else: DELETE -> 204,
ListObjectsV2 and ListMultipartUploads -> empty lists, other HEAD/GET ->
404 NoSuchKey (enough for `cairn run` of a backup job). Keep-alive and `Expect: 100-continue` work.
"""
import hashlib
import http.server
import socketserver
import sys
import threading
import uuid

BUF = 1 << 20
counter_lock = threading.Lock()
counter = 0


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def discard_body(self):
        te = self.headers.get("Transfer-Encoding", "")
        buf = bytearray(BUF)
        view = memoryview(buf)
        total = 0
        if "chunked" in te.lower():
            while True:
                line = self.rfile.readline()
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return total
                left = size
                while left:
                    n = self.rfile.readinto(view[:min(left, BUF)])
                    if not n:
                        raise ConnectionError("client closed mid body")
                    left -= n
                total += size
                self.rfile.readline()
        left = int(self.headers.get("Content-Length") or 0)
        while left:
            n = self.rfile.readinto(view[:min(left, BUF)])
            if not n:
                raise ConnectionError("client closed mid body")
            left -= n
            total += n
        return total

    def reply(self, status, body=b"", headers=()):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        if body:
            self.send_header("Content-Type", "application/xml")
        self.end_headers()
        if body and self.command != "HEAD":
            self.wfile.write(body)

    def etag(self):
        global counter
        with counter_lock:
            counter += 1
            n = counter
        return '"%s"' % hashlib.md5(str(n).encode()).hexdigest()

    def do_POST(self):
        self.discard_body()
        path, _, query = self.path.partition("?")
        key = path.split("/", 2)[-1]
        if query.startswith("uploads") or "&uploads" in query:
            xml = ('<?xml version="1.0" encoding="UTF-8"?>\n<InitiateMultipartUploadResult '
                   'xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Bucket>b</Bucket><Key>%s</Key>'
                   '<UploadId>%s</UploadId></InitiateMultipartUploadResult>' % (key, uuid.uuid4().hex))
            return self.reply(200, xml.encode())
        if "uploadId=" in query:
            xml = ('<?xml version="1.0" encoding="UTF-8"?>\n<CompleteMultipartUploadResult '
                   'xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Location>http://null/%s</Location>'
                   '<Bucket>b</Bucket><Key>%s</Key><ETag>%s</ETag></CompleteMultipartUploadResult>'
                   % (key, key, self.etag()[:-1] + '-1"'))
            return self.reply(200, xml.encode())
        if "delete" in query:
            return self.reply(200, b'<?xml version="1.0" encoding="UTF-8"?>\n<DeleteResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"></DeleteResult>')
        return self.reply(400, b"<Error><Code>InvalidRequest</Code><Message>null-s3: unsupported POST</Message></Error>")

    def do_PUT(self):
        self.discard_body()
        return self.reply(200, headers=[("ETag", self.etag())])

    def do_DELETE(self):
        self.discard_body()
        return self.reply(204)

    def do_GET(self):
        query = self.path.partition("?")[2]
        params = dict(p.partition("=")[::2] for p in query.split("&") if p)
        if self.command == "GET" and "uploads" in params:
            # ListMultipartUploads: there are never any in progress
            return self.reply(200, b'<?xml version="1.0" encoding="UTF-8"?>\n<ListMultipartUploadsResult '
                              b'xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Bucket>b</Bucket>'
                              b'<IsTruncated>false</IsTruncated></ListMultipartUploadsResult>')
        if self.command == "GET" and params.get("list-type") == "2":
            # ListObjectsV2: the bucket is always empty
            return self.reply(200, b'<?xml version="1.0" encoding="UTF-8"?>\n<ListBucketResult '
                              b'xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>b</Name><KeyCount>0</KeyCount>'
                              b'<IsTruncated>false</IsTruncated></ListBucketResult>')
        return self.reply(404, b"<Error><Code>NoSuchKey</Code><Message>null-s3 stores nothing</Message></Error>")

    do_HEAD = do_GET


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64


if __name__ == "__main__":
    Server(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
