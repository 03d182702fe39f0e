"""SigV4 verifier for the Bedrock mock upstream (integration-tests/src/bedrock_mock.rs).

Reads one JSON request per line on stdin and answers one JSON line on stdout:
{"ok": true} or {"ok": false, "error": "<Bedrock exception name>", "reason": "..."}.
The expected signature is recomputed with botocore's own SigV4 signer
(botocore.auth.SigV4Auth), the reference implementation the AWS CLI and boto3 use, over the
request exactly as the mock received it: method, raw path and query, the headers named in
SignedHeaders, and the body. The venv comes from scripts/setup-botocore.sh.
"""

import base64
import datetime
import hashlib
import hmac
import json
import sys

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

MAX_SKEW = datetime.timedelta(minutes=5)


def fail(error, reason):
    return {"ok": False, "error": error, "reason": reason}


def verify(r):
    headers = {}
    for name, value in r["headers"]:
        headers.setdefault(name.lower(), value)
    auth_header = headers.get("authorization")
    if not auth_header:
        return fail("MissingAuthenticationTokenException", "no Authorization header")
    algorithm, _, rest = auth_header.partition(" ")
    if algorithm != "AWS4-HMAC-SHA256":
        return fail("IncompleteSignatureException", f"algorithm {algorithm!r}")
    try:
        fields = dict(p.strip().split("=", 1) for p in rest.split(","))
        access_key, date, region, service, terminator = fields["Credential"].split("/")
        signed_headers = fields["SignedHeaders"].split(";")
        signature = fields["Signature"]
    except (KeyError, ValueError) as e:
        return fail("IncompleteSignatureException", f"malformed Authorization: {e}")
    if access_key != r["access_key_id"]:
        return fail("UnrecognizedClientException", "unknown access key id")
    if region != r["region"] or service != "bedrock" or terminator != "aws4_request":
        return fail("InvalidSignatureException", f"credential scope {date}/{region}/{service}")
    for required in ("host", "x-amz-date"):
        if required not in signed_headers:
            return fail("IncompleteSignatureException", f"{required} is not signed")
    missing = [h for h in signed_headers if h not in headers]
    if missing:
        return fail("IncompleteSignatureException", f"signed headers absent: {missing}")
    amz_date = headers["x-amz-date"]
    if not amz_date.startswith(date):
        return fail("InvalidSignatureException", "x-amz-date outside the credential scope")
    when = datetime.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=datetime.timezone.utc)
    if abs(datetime.datetime.now(datetime.timezone.utc) - when) > MAX_SKEW:
        return fail("InvalidSignatureException", "Signature expired")
    token = r.get("session_token")
    if token is not None and headers.get("x-amz-security-token") != token:
        return fail("UnrecognizedClientException", "missing or wrong session token")
    body = base64.b64decode(r["body_b64"])
    declared = headers.get("x-amz-content-sha256")
    if declared is not None and declared != hashlib.sha256(body).hexdigest():
        return fail("InvalidSignatureException", "x-amz-content-sha256 does not match the body")

    request = AWSRequest(
        method=r["method"],
        url=r["url"],
        data=body,
        headers={name: headers[name] for name in signed_headers},
    )
    request.context["timestamp"] = amz_date
    signer = SigV4Auth(Credentials(access_key, r["secret_access_key"], token), "bedrock", r["region"])
    canonical = signer.canonical_request(request)
    expected = signer.signature(signer.string_to_sign(request, canonical), request)
    if not hmac.compare_digest(expected, signature):
        return fail("InvalidSignatureException", "signature mismatch; canonical request was:\n" + canonical)
    return {"ok": True}


def main():
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        try:
            answer = verify(json.loads(line))
        except Exception as e:  # an unreadable request is a refused one, never a crash
            answer = fail("InvalidSignatureException", f"verifier error: {e!r}")
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
