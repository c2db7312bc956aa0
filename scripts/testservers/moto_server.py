#!/usr/bin/env python3
"""Starts moto's server with one fix for signature checking.

moto's Flask adapter hands its handlers `request.url`, which werkzeug rebuilds
from the *decoded* path and re-quotes with its own rules (it leaves `+`, `=`,
`&`, `%` and non-ASCII differently encoded than the client sent them). moto
then computes the SigV4 canonical request from that rebuilt URL, so every
correctly signed request for a key such as `a+b`, `50%.jpg` or `été.jpg`, or
with a query value containing `/`, fails with SignatureDoesNotMatch (awscli
fails the same way). Real S3 signs the path exactly as sent. This launcher
passes the raw request URI through instead — what moto's in-process mode gets
from botocore anyway — and otherwise runs moto unchanged.
"""
import sys

from moto.core import utils as moto_utils

_orig_call = moto_utils.convert_to_flask_response.__call__


def _call_with_raw_uri(self, args=None, **kwargs):
    from flask import request

    raw = request.environ.get("RAW_URI") or request.environ.get("REQUEST_URI")
    if raw:
        # werkzeug's cached property: set the raw URL before the handler reads it
        request.__dict__["url"] = f"{request.scheme}://{request.host}{raw}"
    return _orig_call(self, args, **kwargs)


moto_utils.convert_to_flask_response.__call__ = _call_with_raw_uri

if __name__ == "__main__":
    from moto.server import main

    sys.exit(main(sys.argv[1:]))
