#!/usr/bin/env python3
"""Decrypt a Cairn encrypted stream (docs/FORMAT.md, version 1) to stdout.

    decrypt-backup.py --key-file FILE [--key-id ID] [INPUT] > out

Reads INPUT (default: stdin). The output is still zstd-compressed:
pipe it through `zstd -d` to get the pg_dump archive.
Needs python3 and the `cryptography` package only. Exits non-zero with a
one-line message on any authentication failure, truncation or trailing data;
output written before the failure must then be discarded.
"""

import argparse
import base64
import binascii
import hashlib
import hmac
import os
import stat
import struct
import sys

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

MAGIC = b"CAIRNENC"
VERSION = 1
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


def read_header(f, master_key, expected_key_id):
    head = read_exactly(f, 10)
    if head[:8] != MAGIC[:len(head[:8])]:
        raise FormatError("not a Cairn encrypted stream (bad magic)")
    if len(head) < 10:
        raise FormatError("truncated: the stream ends inside the header")
    if head[8] != VERSION:
        raise FormatError(f"unsupported encrypted stream version {head[8]}")
    k = head[9]
    if k == 0:
        raise FormatError("malformed header: empty key id")
    rest = read_exactly(f, 152 + k)
    if len(rest) < 152 + k:
        raise FormatError("truncated: the stream ends inside the header")
    header = head + rest
    key_id = header[10:10 + k].decode("utf-8", errors="replace")
    off = 10 + k
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
    mac = header[off:off + 32]
    if expected_key_id is not None and key_id != expected_key_id:
        raise FormatError(f'key id "{key_id}" is not in the keyring (have "{expected_key_id}")')

    kek = hkdf(master_key, b"", b"cairn v1 key wrap", 32)
    our_kcv = hkdf(master_key, b"", b"cairn v1 key check", 16)
    try:
        data_key = AESGCM(kek).decrypt(wrap_nonce, wrapped, header[:10 + k])
    except InvalidTag:
        data_key = None
    if not hmac.compare_digest(kcv, our_kcv):
        if data_key is None:
            raise FormatError(f'wrong key for key id "{key_id}"')
        raise FormatError("header failed authentication (key check value altered)")
    if data_key is None:
        raise FormatError("header failed authentication (wrapped data key altered)")
    hk = hkdf(data_key, salt, b"cairn v1 header key", 32)
    if not hmac.compare_digest(hmac.new(hk, header[:130 + k], hashlib.sha256).digest(), mac):
        raise FormatError("header failed authentication (header MAC mismatch)")
    sk = hkdf(data_key, salt, b"cairn v1 segment key", 32)
    return AESGCM(sk), prefix, seg


def decrypt(f, out, master_key, expected_key_id):
    gcm, prefix, seg = read_header(f, master_key, expected_key_id)
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
            return
        if counter == 0xFFFFFFFF:
            raise FormatError("too many segments")
        counter += 1
        chunk = following


def main():
    p = argparse.ArgumentParser(description="Decrypt a Cairn encrypted backup stream (docs/FORMAT.md) to stdout.")
    p.add_argument("--key-file", required=True, help="master key: 32 raw bytes, 64 hex chars or base64; mode 600")
    p.add_argument("--key-id", help="key id the stream must name (default: accept the stream's key id)")
    p.add_argument("input", nargs="?", help="encrypted file (default: stdin)")
    args = p.parse_args()
    try:
        key = load_key(args.key_file)
        f = open(args.input, "rb") if args.input else sys.stdin.buffer
        with f:
            decrypt(f, sys.stdout.buffer, key, args.key_id)
        sys.stdout.buffer.flush()
    except FormatError as e:
        print(f"decrypt-backup: {e}", file=sys.stderr)
        sys.exit(1)
    except OSError as e:
        print(f"decrypt-backup: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
