#!/usr/bin/env python3
"""Bootstraps credentials on a moto server started with signature checking on,
and checks that signatures are enforced.

  moto_iam.py bootstrap --endpoint URL --out FILE
      Makes exactly NO_AUTH_CALLS unauthenticated IAM calls (CreateUser,
      PutUserPolicy, CreateAccessKey); moto must have been started with
      INITIAL_NO_AUTH_ACTION_COUNT=NO_AUTH_CALLS. Writes the access key to FILE
      (mode 600, "KEY_ID SECRET"). Nothing secret is printed.

  moto_iam.py buckets --endpoint URL BUCKET...   (creds from CAIRN_TEST_AWS_*)
      Creates the buckets (ok if they already exist).

  moto_iam.py check --endpoint URL --bucket B    (creds from CAIRN_TEST_AWS_*)
      Prints one "check:" line per assertion; exits 1 if any fails:
      the right key lists the bucket, a wrong secret gets SignatureDoesNotMatch,
      an unsigned request is refused.
"""
import argparse
import os
import sys

import boto3
import botocore
from botocore.config import Config

NO_AUTH_CALLS = 3  # keep in sync with scripts/services (INITIAL_NO_AUTH_ACTION_COUNT)
REGION = "us-east-1"
USER = "cairn-test"
POLICY = """{
  "Version": "2012-10-17",
  "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]
}"""

# one attempt per call: a retried call would throw the unauthenticated count off
CFG = Config(retries={"total_max_attempts": 1, "mode": "standard"}, s3={"addressing_style": "path"},
             connect_timeout=10, read_timeout=60)


def client(service, endpoint, key_id, secret, **kw):
    return boto3.session.Session().client(
        service, endpoint_url=endpoint, region_name=REGION,
        aws_access_key_id=key_id, aws_secret_access_key=secret, config=kw.pop("config", CFG), **kw)


def env_creds():
    return os.environ["CAIRN_TEST_AWS_ACCESS_KEY_ID"], os.environ["CAIRN_TEST_AWS_SECRET_ACCESS_KEY"]


def bootstrap(args):
    iam = client("iam", args.endpoint, "bootstrap", "bootstrap")
    iam.create_user(UserName=USER)                                   # unauthenticated call 1
    iam.put_user_policy(UserName=USER, PolicyName="s3-all",          # unauthenticated call 2
                        PolicyDocument=POLICY)
    key = iam.create_access_key(UserName=USER)["AccessKey"]          # unauthenticated call 3
    fd = os.open(args.out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("%s %s\n" % (key["AccessKeyId"], key["SecretAccessKey"]))
    print("moto: IAM user %s with inline s3:* policy and access key %s created (%d unauthenticated calls)"
          % (USER, key["AccessKeyId"], NO_AUTH_CALLS))


def buckets(args):
    kid, secret = env_creds()
    s3 = client("s3", args.endpoint, kid, secret)
    for b in args.bucket:
        try:
            s3.create_bucket(Bucket=b)
            print("moto: bucket %s created" % b)
        except botocore.exceptions.ClientError as e:
            if e.response["Error"]["Code"] in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                print("moto: bucket %s exists" % b)
            else:
                raise


def check(args):
    kid, secret = env_creds()
    failed = 0
    label = args.label or args.endpoint

    def report(ok, what):
        nonlocal failed
        print("check: %s %s: %s" % ("ok  " if ok else "FAIL", label, what))
        if not ok:
            failed += 1

    try:
        client("s3", args.endpoint, kid, secret).list_objects_v2(Bucket=args.bucket, MaxKeys=1)
        report(True, "signed request with the test key accepted")
    except botocore.exceptions.ClientError as e:
        report(False, "signed request with the test key refused: %s" % e.response["Error"]["Code"])

    wrong = secret[:-1] + ("A" if secret[-1] != "A" else "B")
    try:
        client("s3", args.endpoint, kid, wrong).list_objects_v2(Bucket=args.bucket, MaxKeys=1)
        report(False, "wrong secret accepted (signature checking is off)")
    except botocore.exceptions.ClientError as e:
        code = e.response["Error"]["Code"]
        report(code == "SignatureDoesNotMatch", "wrong secret -> %s" % code)

    try:
        unsigned = Config(signature_version=botocore.UNSIGNED, retries={"total_max_attempts": 1},
                          s3={"addressing_style": "path"})
        client("s3", args.endpoint, None, None, config=unsigned).list_objects_v2(Bucket=args.bucket, MaxKeys=1)
        report(False, "unsigned request accepted")
    except botocore.exceptions.ClientError as e:
        status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        note = " (moto fails on a missing Authorization header; real S3 answers 403)" if status == 500 else ""
        code = e.response["Error"]["Code"]
        code = "" if code == str(status) else " " + code
        report(True, "unsigned request refused -> HTTP %s%s%s" % (status, code, note))
    return 1 if failed else 0


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("bootstrap"); b.add_argument("--endpoint", required=True); b.add_argument("--out", required=True)
    c = sub.add_parser("buckets"); c.add_argument("--endpoint", required=True); c.add_argument("bucket", nargs="+")
    k = sub.add_parser("check"); k.add_argument("--endpoint", required=True); k.add_argument("--bucket", required=True)
    k.add_argument("--label")
    args = ap.parse_args()
    if args.cmd == "bootstrap":
        return bootstrap(args) or 0
    if args.cmd == "buckets":
        return buckets(args) or 0
    return check(args)


if __name__ == "__main__":
    sys.exit(main())
