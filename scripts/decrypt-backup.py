#!/usr/bin/env python3
"""Decrypt a Cairn encrypted stream (docs/FORMAT.md, versions 1 and 2) to stdout.

    decrypt-backup.py --key-file FILE [--key-id ID] [--manifest M.manifest.json] [INPUT] > out
    decrypt-backup.py --key-file FILE --manifest M.manifest.json --verify-manifest

Reads INPUT (default: stdin). The output is still zstd-compressed:
pipe it through `zstd -d` to get the pg_dump archive.
With --manifest, the manifest's MAC is verified first (docs/FORMAT.md §8;
a format 1 manifest has none and is refused unless --trust-unauthenticated),
and the stream must be a version 2 stream whose header names that manifest's
backup (job and id), and whose size and SHA-256 are the manifest's for that
object. --verify-manifest only verifies the manifest.
Needs python3 and the `cryptography` package only. Exits non-zero with a
one-line message on any authentication failure, truncation or trailing data;
output written before the failure must then be discarded.
"""

import argparse
import base64
import binascii
import hashlib
import hmac
import json
import os
import stat
import struct
import sys

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

MAGIC = b"CAIRNENC"
VERSIONS = (1, 2)
TAG = 16
KEY_BLOCK = 76
MAX_SEGMENT = 1 << 26


class FormatError(Exception):
    pass


def hkdf(ikm, salt, info, length):
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt or None, info=info).derive(ikm)


def load_key(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise FormatError(f"key file {path} is not a regular file")
        if st.st_mode & 0o077:
            raise FormatError(f"key file {path} is accessible by group or others: run chmod 600 {path}")
        data = os.read(fd, 4097)
    finally:
        os.close(fd)
    if len(data) == 32:
        return data
    text = data.strip()
    if len(text) == 64:
        try:
            return binascii.unhexlify(text)
        except binascii.Error:
            pass
    try:
        key = base64.b64decode(text + b"=" * (-len(text) % 4), validate=True)
        if len(key) == 32:
            return key
    except binascii.Error:
        pass
    raise FormatError(f"key file {path} must hold exactly 32 raw bytes, 64 hex characters, or base64 of 32 bytes")


def read_exactly(f, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = f.read(n - len(buf))
        if not chunk:
            break
        buf += chunk
    return bytes(buf)


def nonce(prefix, counter, last):
    return prefix + struct.pack(">IB", counter, 1 if last else 0)


def parse_context(data):
    """Version 2 context: three (u8 length, UTF-8) fields: job, backup id, object; None if empty."""
    if not data:
        return None
    fields, i = [], 0
    while i < len(data) and len(fields) < 3:
        n = data[i]
        field = data[i + 1:i + 1 + n]
        if n == 0 or len(field) < n:
            raise FormatError(f"malformed header: bad context field {len(fields) + 1}")
        try:
            fields.append(field.decode("utf-8"))
        except UnicodeDecodeError:
            raise FormatError(f"malformed header: bad context field {len(fields) + 1}")
        i += 1 + n
    if len(fields) != 3 or i != len(data):
        raise FormatError("malformed header: the context is not exactly three fields")
    return tuple(fields)


def describe(ctx):
    return f"the {ctx[2]} of backup {ctx[1]} of job {ctx[0]}"


def read_header(f, master_key, expected_key_id):
    """Returns (segment cipher, nonce prefix, segment size, header bytes, context or None)."""
    head = read_exactly(f, 10)
    if head[:8] != MAGIC[:len(head[:8])]:
        raise FormatError("not a Cairn encrypted stream (bad magic)")
    if len(head) < 10:
        raise FormatError("truncated: the stream ends inside the header")
    version = head[8]
    if version not in VERSIONS:
        raise FormatError(f"unsupported encrypted stream version {version}")
    k = head[9]
    if k == 0:
        raise FormatError("malformed header: empty key id")
    header = head
    if version == 2:
        # key id, then u16 BE context length
        more = read_exactly(f, k + 2)
        if len(more) < k + 2:
            raise FormatError("truncated: the stream ends inside the header")
        header += more
        (c,) = struct.unpack(">H", header[10 + k:12 + k])
        aad_end = 12 + k + c
        rest_len = c + 152
    else:
        aad_end = 10 + k
        rest_len = k + 152
    rest = read_exactly(f, rest_len)
    if len(rest) < rest_len:
        raise FormatError("truncated: the stream ends inside the header")
    header += rest
    key_id = header[10:10 + k].decode("utf-8", errors="replace")
    context = parse_context(header[12 + k:aad_end]) if version == 2 else None
    off = aad_end
    salt = header[off:off + 32]; off += 32
    prefix = header[off:off + 7]; off += 7
    (seg,) = struct.unpack(">I", header[off:off + 4]); off += 4
    kb_len = header[off]; off += 1
    if not 1 <= seg <= MAX_SEGMENT:
        raise FormatError(f"malformed header: segment size {seg}")
    if kb_len != KEY_BLOCK:
        raise FormatError(f"malformed header: key block length {kb_len}")
    kcv = header[off:off + 16]; off += 16
    wrap_nonce = header[off:off + 12]; off += 12
    wrapped = header[off:off + 48]; off += 48
    mac_offset = off
    mac = header[off:off + 32]
    if expected_key_id is not None and key_id != expected_key_id:
        raise FormatError(f'key id "{key_id}" is not in the keyring (have "{expected_key_id}")')

    kek = hkdf(master_key, b"", b"cairn v1 key wrap", 32)
    our_kcv = hkdf(master_key, b"", b"cairn v1 key check", 16)
    try:
        data_key = AESGCM(kek).decrypt(wrap_nonce, wrapped, header[:aad_end])
    except InvalidTag:
        data_key = None
    if not hmac.compare_digest(kcv, our_kcv):
        if data_key is None:
            raise FormatError(f'wrong key for key id "{key_id}"')
        raise FormatError("header failed authentication (key check value altered)")
    if data_key is None:
        raise FormatError("header failed authentication (wrapped data key altered)")
    hk = hkdf(data_key, salt, b"cairn v1 header key", 32)
    if not hmac.compare_digest(hmac.new(hk, header[:mac_offset], hashlib.sha256).digest(), mac):
        raise FormatError("header failed authentication (header MAC mismatch)")
    sk = hkdf(data_key, salt, b"cairn v1 segment key", 32)
    return AESGCM(sk), prefix, seg, header, context


MANIFEST_TRAILER_HEAD = b',\n  "mac" : "'
MANIFEST_TRAILER_TAIL = b'"\n}\n'


def verify_manifest(data, master_key, trust_unauthenticated):
    """Checks a stored manifest's MAC (docs/FORMAT.md §8); returns the manifest as a dict."""
    try:
        manifest = json.loads(data)
    except ValueError as e:
        raise FormatError(f"manifest is not valid JSON: {e}")
    version = manifest.get("formatVersion")
    if version == 1:
        if trust_unauthenticated:
            return manifest
        raise FormatError("manifest is unauthenticated: a format 1 manifest carries no MAC (pass --trust-unauthenticated to accept it)")
    if version != 2:
        raise FormatError(f"manifest format version {version} is not one this script reads (1, 2)")
    size = len(MANIFEST_TRAILER_HEAD) + 64 + len(MANIFEST_TRAILER_TAIL)
    trailer = data[-size:]
    hexmac = trailer[len(MANIFEST_TRAILER_HEAD):len(MANIFEST_TRAILER_HEAD) + 64]
    if (len(data) <= size or not trailer.startswith(MANIFEST_TRAILER_HEAD) or not trailer.endswith(MANIFEST_TRAILER_TAIL)
            or any(c not in b"0123456789abcdef" for c in hexmac)):
        raise FormatError("manifest is unauthenticated: it has no MAC although its format requires one")
    signed = data[:-size]
    mac_key = hkdf(master_key, b"", b"cairn v1 manifest mac", 32)
    if not hmac.compare_digest(hmac.new(mac_key, signed, hashlib.sha256).hexdigest().encode(), hexmac):
        raise FormatError(f'manifest is unauthenticated: its MAC does not verify under key id "{manifest.get("keyId")}" (edited without the key?)')
    return manifest


class HashingReader:
    """Counts and hashes the bytes read through it."""

    def __init__(self, f):
        self.f, self.size, self.sha = f, 0, hashlib.sha256()

    def read(self, n):
        b = self.f.read(n)
        self.size += len(b)
        self.sha.update(b)
        return b


def decrypt(f, out, master_key, expected_key_id, manifest=None):
    if manifest is not None:
        f = HashingReader(f)
    gcm, prefix, seg, _, context = read_header(f, master_key, expected_key_id)
    record = None
    if manifest is not None:
        want = (manifest["job"], manifest["id"])
        if manifest["formatVersion"] >= 2 and context is None:
            raise FormatError(f"the stream names no backup (version 1 or empty context), but manifest {manifest['id']} requires one")
        if context is not None:
            if (context[0], context[1]) != want or context[2] not in ("dump", "globals"):
                raise FormatError(f"encrypted stream does not belong to backup {want[1]} of job {want[0]}: its header names {describe(context)}")
            record = manifest.get(context[2])
            if record is None:
                raise FormatError(f"manifest {manifest['id']} has no {context[2]} object")
    full = seg + TAG
    counter = 0
    chunk = read_exactly(f, full)
    while True:
        # A full-size chunk followed by more bytes is a non-last segment.
        following = read_exactly(f, full) if len(chunk) == full else b""
        last = not following
        if len(chunk) < TAG:
            raise FormatError(f"truncated: the stream ends inside segment {counter}")
        try:
            plain = gcm.decrypt(nonce(prefix, counter, last), chunk, None)
        except InvalidTag:
            if last:
                if len(chunk) == full:
                    try:
                        gcm.decrypt(nonce(prefix, counter, False), chunk, None)
                        raise FormatError(f"truncated: the stream ends after segment {counter}, which is not the last")
                    except InvalidTag:
                        pass
                raise FormatError(f"truncated or corrupted: no authentic last segment (segment {counter})")
            try:
                gcm.decrypt(nonce(prefix, counter, True), chunk, None)
                raise FormatError(f"trailing data after the last segment (segment {counter})")
            except InvalidTag:
                pass
            raise FormatError(f"authentication failed at segment {counter}")
        out.write(plain)
        if last:
            if record is not None and (f.size != record["ciphertextSize"] or f.sha.hexdigest() != record["ciphertextSHA256"]):
                raise FormatError(f"stored object does not match the manifest's {context[2]} (size or SHA-256)")
            return
        if counter == 0xFFFFFFFF:
            raise FormatError("too many segments")
        counter += 1
        chunk = following


def main():
    p = argparse.ArgumentParser(description="Decrypt a Cairn encrypted backup stream (docs/FORMAT.md) to stdout.")
    p.add_argument("--key-file", required=True, help="master key: 32 raw bytes, 64 hex chars or base64; mode 600")
    p.add_argument("--key-id", help="key id the stream must name (default: accept the stream's key id)")
    p.add_argument("--manifest", help="the backup's stored .manifest.json: verify its MAC and that the stream belongs to it")
    p.add_argument("--verify-manifest", action="store_true", help="only verify --manifest's MAC, decrypt nothing")
    p.add_argument("--trust-unauthenticated", action="store_true", help="accept a format 1 manifest (it has no MAC)")
    p.add_argument("input", nargs="?", help="encrypted file (default: stdin)")
    args = p.parse_args()
    if args.verify_manifest and not args.manifest:
        p.error("--verify-manifest needs --manifest")
    try:
        key = load_key(args.key_file)
        manifest = None
        if args.manifest:
            with open(args.manifest, "rb") as mf:
                manifest = verify_manifest(mf.read(), key, args.trust_unauthenticated)
            if args.verify_manifest:
                print(f"manifest {manifest['id']} of job {manifest['job']}: "
                      + ("authenticated" if manifest["formatVersion"] >= 2 else "format 1, unauthenticated (trusted)"), file=sys.stderr)
                return
        f = open(args.input, "rb") if args.input else sys.stdin.buffer
        with f:
            decrypt(f, sys.stdout.buffer, key, args.key_id, manifest)
        sys.stdout.buffer.flush()
    except FormatError as e:
        print(f"decrypt-backup: {e}", file=sys.stderr)
        sys.exit(1)
    except OSError as e:
        print(f"decrypt-backup: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
