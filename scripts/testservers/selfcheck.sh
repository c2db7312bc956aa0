#!/usr/bin/env bash
# Self-check of the test services, through the strict S3 proxy, with awscli.
# Needs running services (scripts/services start). Prints one "ok"/"FAIL" line
# per check and exits non-zero if any failed. Clears the proxy log at the end.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if [ -z "${CAIRN_TEST_S3_PROXY_ENDPOINT:-}" ]; then
  eval "$("$HERE/../services" env)"
fi

P="$CAIRN_TEST_S3_PROXY_ENDPOINT"
B="$CAIRN_TEST_BUCKET"
export AWS_ACCESS_KEY_ID="$CAIRN_TEST_AWS_ACCESS_KEY_ID"
export AWS_SECRET_ACCESS_KEY="$CAIRN_TEST_AWS_SECRET_ACCESS_KEY"
export AWS_DEFAULT_REGION="$CAIRN_TEST_AWS_REGION"
export AWS_CONFIG_FILE=/nonexistent AWS_SHARED_CREDENTIALS_FILE=/nonexistent
export AWS_MAX_ATTEMPTS=1 AWS_RETRY_MODE=standard
unset AWS_PROFILE AWS_SESSION_TOKEN

PREFIX="selfcheck-$$-$(date +%s)"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
FAILED=0

ok() { echo "ok    $*"; }
fail() { echo "FAIL  $*"; FAILED=$((FAILED + 1)); }
check() { local what="$1"; shift; if "$@"; then ok "$what"; else fail "$what"; fi; }
s3api() { aws --endpoint-url "$P" s3api "$@"; }
md5b64() { openssl md5 -binary "$1" | base64; }
ctl() { curl -fsS -X "$1" "$P/__proxy/$2" ${3:+-H 'Content-Type: application/json' --data "$3"}; }
# count log entries for this run's prefix matching a python condition on entry e
logcount() {
  ctl GET log | python3 -c '
import json, sys
prefix, cond = sys.argv[1], sys.argv[2]
print(sum(1 for e in json.load(sys.stdin) if prefix in e["path"] and eval(cond)))' "$PREFIX" "$1"
}

# 1. put / get
head -c 100000 /dev/urandom >"$TMP/small"
s3api put-object --bucket "$B" --key "$PREFIX/small" --body "$TMP/small" --content-md5 "$(md5b64 "$TMP/small")" >/dev/null
s3api get-object --bucket "$B" --key "$PREFIX/small" "$TMP/small.out" >/dev/null
check "put-object + get-object round trip (100000 bytes)" cmp -s "$TMP/small" "$TMP/small.out"

# 2. multipart upload, equal parts + a smaller last part, Content-MD5 on every part
head -c $((5 * 1024 * 1024)) /dev/urandom >"$TMP/p1"
head -c $((5 * 1024 * 1024)) /dev/urandom >"$TMP/p2"
head -c 123457 /dev/urandom >"$TMP/p3"
UPLOAD="$(s3api create-multipart-upload --bucket "$B" --key "$PREFIX/multi" --query UploadId --output text)"
parts=()
for n in 1 2 3; do
  etag="$(s3api upload-part --bucket "$B" --key "$PREFIX/multi" --upload-id "$UPLOAD" --part-number "$n" \
    --body "$TMP/p$n" --content-md5 "$(md5b64 "$TMP/p$n")" --query ETag --output text)"
  parts+=("{\"PartNumber\": $n, \"ETag\": $(printf '%s' "$etag" | python3 -c 'import json,sys; print(json.dumps(sys.stdin.read()))')}")
done
printf '{"Parts": [%s]}' "$(IFS=,; echo "${parts[*]}")" >"$TMP/parts.json"
s3api complete-multipart-upload --bucket "$B" --key "$PREFIX/multi" --upload-id "$UPLOAD" \
  --multipart-upload "file://$TMP/parts.json" >/dev/null
cat "$TMP/p1" "$TMP/p2" "$TMP/p3" >"$TMP/multi"
s3api get-object --bucket "$B" --key "$PREFIX/multi" "$TMP/multi.out" >/dev/null
check "multipart upload (5 MiB + 5 MiB + 123457 B, Content-MD5 per part) round trip" cmp -s "$TMP/multi" "$TMP/multi.out"
check "proxy log shows 3 UploadPart requests with part numbers and upload id" \
  test "$(logcount 'e["part_number"] in (1,2,3) and e["upload_id"] and e["status"] == 200')" = 3

# 3. unequal part sizes are refused on CompleteMultipartUpload
head -c $((6 * 1024 * 1024)) /dev/urandom >"$TMP/big"
UPLOAD2="$(s3api create-multipart-upload --bucket "$B" --key "$PREFIX/unequal" --query UploadId --output text)"
e1="$(s3api upload-part --bucket "$B" --key "$PREFIX/unequal" --upload-id "$UPLOAD2" --part-number 1 \
  --body "$TMP/p1" --content-md5 "$(md5b64 "$TMP/p1")" --query ETag --output text)"
e2="$(s3api upload-part --bucket "$B" --key "$PREFIX/unequal" --upload-id "$UPLOAD2" --part-number 2 \
  --body "$TMP/big" --content-md5 "$(md5b64 "$TMP/big")" --query ETag --output text)"
printf '{"Parts": [{"PartNumber": 1, "ETag": %s}, {"PartNumber": 2, "ETag": %s}]}' \
  "$(python3 -c 'import json,sys; print(json.dumps(sys.argv[1]))' "$e1")" \
  "$(python3 -c 'import json,sys; print(json.dumps(sys.argv[1]))' "$e2")" >"$TMP/parts2.json"
if out="$(s3api complete-multipart-upload --bucket "$B" --key "$PREFIX/unequal" --upload-id "$UPLOAD2" \
  --multipart-upload "file://$TMP/parts2.json" 2>&1)"; then
  fail "complete with a last part larger than the first was accepted"
else
  check "complete with parts 5 MiB, 6 MiB refused: $(echo "$out" | grep -o 'InvalidPart' | head -n 1)" grep -q InvalidPart <<<"$out"
fi
s3api abort-multipart-upload --bucket "$B" --key "$PREFIX/unequal" --upload-id "$UPLOAD2" >/dev/null

# 4. fault injection: two 503 SlowDown on PUTs of one key; the CLI retries through them
ctl POST faults "{\"method\": \"PUT\", \"path_contains\": \"$PREFIX/fault\", \"action\": \"status\", \"status\": 503, \"code\": \"SlowDown\", \"count\": 2}" >/dev/null
if out="$(s3api put-object --bucket "$B" --key "$PREFIX/fault" --body "$TMP/small" 2>&1)"; then
  fail "PUT with a 503 fault and no retries succeeded"
else
  check "503 fault fires: put-object without retries fails with $(echo "$out" | grep -o 'SlowDown' | head -n 1)" grep -q SlowDown <<<"$out"
fi
AWS_MAX_ATTEMPTS=3 s3api put-object --bucket "$B" --key "$PREFIX/fault" --body "$TMP/small" >/dev/null
check "second 503 fires, then the rule is exhausted: put-object with 3 attempts succeeds" \
  test "$(logcount '"/fault" in e["path"] and e["fault"] == "status" and e["status"] == 503'):$(logcount '"/fault" in e["path"] and e["fault"] is None and e["status"] == 200')" = "2:1"

# 5. drop and drop_mid_response, seen by a raw SigV4-signed GET (moto refuses presigned URLs:
#    it requires an Authorization header)
rawget() { # key -> prints "status=S content_length=L received=R error=E"
  python3 - "$P" "$B" "$1" <<'PY'
import http.client, sys, urllib.parse, os
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
endpoint, bucket, key = sys.argv[1:4]
url = "%s/%s/%s" % (endpoint, bucket, urllib.parse.quote(key))
u = urllib.parse.urlsplit(url)
req = AWSRequest(method="GET", url=url, headers={"Host": u.netloc})
S3SigV4Auth(Credentials(os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"]),
            "s3", os.environ["AWS_DEFAULT_REGION"]).add_auth(req)
conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
status = length = None; got = 0; err = "none"
try:
    conn.putrequest("GET", u.path, skip_host=True, skip_accept_encoding=True)
    for k, v in req.headers.items():
        conn.putheader(k, v)
    conn.endheaders()
    resp = conn.getresponse()
    status, length = resp.status, resp.getheader("Content-Length")
    while True:
        try:
            b = resp.read(65536)
        except http.client.IncompleteRead as e:
            got += len(e.partial); err = "IncompleteRead"; break
        if not b:
            break
        got += len(b)
    if length is not None and got < int(length):
        err = "IncompleteRead"
except Exception as e:
    err = type(e).__name__
print("status=%s content_length=%s received=%d error=%s" % (status, length, got, err))
PY
}
ctl POST faults "{\"method\": \"GET\", \"path_contains\": \"$PREFIX/multi\", \"action\": \"drop\", \"count\": 1}" >/dev/null
r="$(rawget "$PREFIX/multi")"
check "drop fault: connection closed without a response ($r)" grep -q "status=None .*error=RemoteDisconnected" <<<"$r"
ctl POST faults "{\"method\": \"GET\", \"path_contains\": \"$PREFIX/multi\", \"action\": \"drop_mid_response\", \"count\": 1}" >/dev/null
r="$(rawget "$PREFIX/multi")"
check "drop_mid_response fault: headers and half the body, then closed ($r)" \
  grep -q "status=200 content_length=10609217 received=5304608 error=IncompleteRead" <<<"$r"
r="$(rawget "$PREFIX/multi")"
check "after the faults are used up the GET is whole ($r)" grep -q "status=200 content_length=10609217 received=10609217 error=none" <<<"$r"

# 6. integrity rules: Content-MD5, x-amz-checksum-*, signed payload SHA-256
UPLOAD3="$(s3api create-multipart-upload --bucket "$B" --key "$PREFIX/md5" --query UploadId --output text)"
if out="$(s3api upload-part --bucket "$B" --key "$PREFIX/md5" --upload-id "$UPLOAD3" --part-number 1 \
  --body "$TMP/p3" --content-md5 "$(md5b64 "$TMP/small")" 2>&1)"; then
  fail "upload-part with a wrong Content-MD5 was accepted"
else
  check "upload-part with a wrong Content-MD5 refused: $(echo "$out" | grep -o 'BadDigest' | head -n 1)" grep -q BadDigest <<<"$out"
fi
if out="$(s3api upload-part --bucket "$B" --key "$PREFIX/md5" --upload-id "$UPLOAD3" --part-number 1 \
  --body "$TMP/p3" --checksum-crc32 AAAAAA== 2>&1)"; then
  fail "upload-part with a wrong x-amz-checksum-crc32 was accepted"
else
  check "upload-part with a wrong x-amz-checksum-crc32 refused: $(echo "$out" | grep -o 'BadDigest' | head -n 1)" grep -q BadDigest <<<"$out"
fi
ctl POST faults '{"action":"corrupt","method":"PUT","path_contains":"'"$PREFIX/md5"'","query_contains":"partNumber=1","count":1}' >/dev/null
if out="$(s3api upload-part --bucket "$B" --key "$PREFIX/md5" --upload-id "$UPLOAD3" --part-number 1 \
  --body "$TMP/p3" 2>&1)"; then
  fail "upload-part corrupted on its way (corrupt fault) was accepted"
else
  check "upload-part corrupted on its way refused: $(echo "$out" | grep -oE 'BadDigest|XAmzContentSHA256Mismatch' | head -n 1)" grep -qE 'BadDigest|XAmzContentSHA256Mismatch' <<<"$out"
fi
# A part with no integrity check at all (UNSIGNED-PAYLOAD, no Content-MD5, no checksum):
# botocore signs it by hand, since the CLI always adds a check.
status="$(python3 - "$P/$B/$PREFIX/md5?partNumber=1&uploadId=$UPLOAD3" "$TMP/p3" <<'PY'
import os, sys, urllib.request, urllib.error
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
class Unsigned(S3SigV4Auth):
    def payload(self, request): return "UNSIGNED-PAYLOAD"
url, path = sys.argv[1], sys.argv[2]
body = open(path, "rb").read()
req = AWSRequest(method="PUT", url=url, data=body)
Unsigned(Credentials(os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"]), "s3", os.environ["AWS_DEFAULT_REGION"]).add_auth(req)
r = urllib.request.Request(url, data=body, method="PUT", headers=dict(req.headers))
try:
    with urllib.request.urlopen(r) as resp: print(resp.status)
except urllib.error.HTTPError as e:
    print(e.code, "InvalidDigest" if b"InvalidDigest" in e.read() else "")
PY
)"
check "upload-part without any integrity check refused: $status" grep -q "400 InvalidDigest" <<<"$status"
s3api abort-multipart-upload --bucket "$B" --key "$PREFIX/md5" --upload-id "$UPLOAD3" >/dev/null
nviol="$(ctl GET violations | python3 -c '
import json, sys
print(sum(1 for v in json.load(sys.stdin) if sys.argv[1] in v))' "$PREFIX")"
check "violations recorded for this run: $nviol (unequal parts, bad MD5, bad CRC32, corrupted part, no check)" test "$nviol" = 5
ctl GET violations | python3 -c '
import json, sys
for v in json.load(sys.stdin):
    if sys.argv[1] in v: print("      violation:", v[:160])' "$PREFIX"

# cleanup
for k in small multi fault; do s3api delete-object --bucket "$B" --key "$PREFIX/$k" >/dev/null; done
ctl DELETE faults >/dev/null
ctl DELETE log >/dev/null
echo "selfcheck: proxy log, violations and faults cleared"

if [ "$FAILED" -ne 0 ]; then
  echo "selfcheck: $FAILED check(s) failed"
  exit 1
fi
echo "selfcheck: all checks passed"
