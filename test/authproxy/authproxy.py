#!/usr/bin/env python3
"""authproxy: a verifying authentication proxy for flusso's tests.

It sits in front of a real OpenSearch (or Elasticsearch) node, checks the credentials of every
request the way a managed service would, answers the invalid ones itself with the service's kind
of error, and forwards only the valid ones, with their authentication headers removed.

Modes: basic (user/password), apikey (Elasticsearch "Authorization: ApiKey <base64(id:key)>"),
bearer ("Authorization: Bearer <token>") and sigv4 (AWS Signature Version 4 for Amazon OpenSearch
Service, service "es", or OpenSearch Serverless, service "aoss").  SigV4 signatures are recomputed
with botocore (AWS's own signer) under AWS's canonicalization rules; see README.md beside this file.

    authproxy.py --listen 127.0.0.1:PORT --upstream http://127.0.0.1:9200 --admin 127.0.0.1:APORT \
                 --config FILE [--ready-file F] [--verbose]

The configuration file (JSON) holds the mode and the valid credentials.  It is read again whenever
it changes (checked on every request) and on SIGHUP, so a test can rotate or expire credentials
while the proxy runs.  botocore is needed for sigv4 only; authproxy.sh runs this file in a venv
that has it.
"""

import argparse
import base64
import binascii
import calendar
import collections
import datetime
import hashlib
import hmac
import http
import importlib.util
import json
import os
import re
import signal
import socket
import socketserver
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import quote, unquote_to_bytes, urlsplit

HERE = os.path.dirname(os.path.abspath(__file__))


def _load_faultproxy():
    """The HTTP plumbing (request reader, kept-alive upstream connection, answer framing) is
    faultproxy's, beside this folder: one implementation for both test proxies."""
    path = os.path.join(HERE, "..", "faultproxy", "faultproxy.py")
    spec = importlib.util.spec_from_file_location("flusso_faultproxy", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


fp = _load_faultproxy()

try:
    from botocore.auth import SigV4Auth, EMPTY_SHA256_HASH, UNSIGNED_PAYLOAD
    from botocore.awsrequest import AWSRequest, HTTPHeaders
    from botocore.credentials import Credentials
    import botocore
    BOTOCORE_VERSION = botocore.__version__
except ImportError:  # checked when a sigv4 configuration is loaded
    SigV4Auth = None
    BOTOCORE_VERSION = None
    EMPTY_SHA256_HASH = hashlib.sha256(b"").hexdigest()
    UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"

# ------------------------------------------------------------------ configuration

MODES = ("basic", "apikey", "bearer", "sigv4")

DEFAULTS = {
    "mode": None,
    "credentials": [],
    # sigv4
    "region": None,
    "service": "es",
    "max_skew_seconds": 300,          # AWS: 5 minutes between x-amz-date and the server's clock
    "clock_offset_seconds": 0,        # added to the proxy's clock (simulates a skewed client)
    "aoss_sha256_must_be_signed": True,
    "aws_ignore_post_query": False,   # AWS: "The service ignores parameters passed in URLs for
                                      # HTTP POST requests that are signed with SigV4"
    # every mode
    "upstream_auth": None,            # "user:password" sent to the upstream as Basic auth
}

CRED_KEYS = {
    "basic": ({"user", "password"}, {"expires"}),
    "apikey": (set(), {"id", "api_key", "encoded", "expires"}),
    "bearer": ({"token"}, {"expires"}),
    "sigv4": ({"access_key", "secret_key"}, {"session_token", "expires"}),
}


def parse_time(v, what):
    """Epoch seconds of an ISO-8601 time ("2030-01-01T00:00:00Z", offsets allowed) or a number."""
    if v is None:
        return None
    if isinstance(v, bool):
        raise ValueError("%s must be an ISO-8601 time or epoch seconds, not %s" % (what, json.dumps(v)))
    if isinstance(v, (int, float)):
        return float(v)
    if isinstance(v, str):
        s = v.strip()
        if s.endswith("Z") or s.endswith("z"):
            s = s[:-1] + "+00:00"
        try:
            d = datetime.datetime.fromisoformat(s)
        except ValueError:
            raise ValueError("%s must be an ISO-8601 time such as 2030-01-01T00:00:00Z, not %s"
                             % (what, json.dumps(v)))
        if d.tzinfo is None:
            d = d.replace(tzinfo=datetime.timezone.utc)
        return d.timestamp()
    raise ValueError("%s must be an ISO-8601 time or epoch seconds, not %s" % (what, json.dumps(v)))


def validate_config(cfg):
    """The configuration cfg, checked and normalized; raises ValueError with a clear message."""
    if not isinstance(cfg, dict):
        raise ValueError("the configuration must be a JSON object")
    unknown = sorted(k for k in cfg if k not in DEFAULTS)
    if unknown:
        raise ValueError("unknown key%s %s; known keys: %s" % (
            "s" if len(unknown) > 1 else "", ", ".join(unknown), ", ".join(sorted(DEFAULTS))))
    new = dict(DEFAULTS)
    new.update(cfg)
    mode = new["mode"]
    if mode not in MODES:
        raise ValueError("mode must be one of %s, not %s" % (", ".join(MODES), json.dumps(mode)))
    creds = new["credentials"]
    if not isinstance(creds, list):
        raise ValueError("credentials must be a list of objects")
    required, optional = CRED_KEYS[mode]
    out = []
    for i, c in enumerate(creds):
        what = "credentials[%d]" % i
        if not isinstance(c, dict):
            raise ValueError("%s must be an object" % what)
        bad = sorted(k for k in c if k not in required | optional)
        if bad:
            raise ValueError("%s: unknown key%s %s for mode %s; known: %s" % (
                what, "s" if len(bad) > 1 else "", ", ".join(bad), mode,
                ", ".join(sorted(required | optional))))
        missing = sorted(k for k in required if k not in c)
        if missing:
            raise ValueError("%s: missing %s" % (what, ", ".join(missing)))
        n = dict(c)
        for k in required | optional:
            if k == "expires" or k not in n or n[k] is None:
                continue
            if not isinstance(n[k], str):
                raise ValueError("%s.%s must be a string" % (what, k))
        n["expires"] = parse_time(c.get("expires"), what + ".expires")
        if mode == "apikey":
            if n.get("encoded"):
                if n.get("id") or n.get("api_key"):
                    raise ValueError("%s: give either encoded or id and api_key" % what)
                try:
                    dec = base64.b64decode(n["encoded"], validate=True).decode()
                except (binascii.Error, UnicodeDecodeError):
                    raise ValueError("%s.encoded is not base64 of id:api_key" % what)
                if ":" not in dec:
                    raise ValueError("%s.encoded is not base64 of id:api_key" % what)
                n["id"], n["api_key"] = dec.split(":", 1)
            elif not n.get("id") or not n.get("api_key"):
                raise ValueError("%s: an API key needs encoded, or id and api_key" % what)
            n["encoded"] = base64.b64encode(("%s:%s" % (n["id"], n["api_key"])).encode()).decode()
        if mode == "sigv4" and not n["access_key"]:
            raise ValueError("%s.access_key must not be empty" % what)
        out.append(n)
    new["credentials"] = out
    if mode == "sigv4":
        if SigV4Auth is None:
            raise ValueError("mode sigv4 needs botocore (run the proxy through authproxy.sh, "
                             "which installs it in a venv)")
        if not isinstance(new["region"], str) or not re.fullmatch(r"[a-z0-9-]+", new["region"]):
            raise ValueError("sigv4 needs region, e.g. \"eu-west-1\", not %s" % json.dumps(new["region"]))
        if new["service"] not in ("es", "aoss"):
            raise ValueError("service must be \"es\" or \"aoss\", not %s" % json.dumps(new["service"]))
    for k in ("max_skew_seconds", "clock_offset_seconds"):
        v = new[k]
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise ValueError("%s must be a number of seconds, not %s" % (k, json.dumps(v)))
    if new["max_skew_seconds"] < 0:
        raise ValueError("max_skew_seconds must not be negative")
    for k in ("aoss_sha256_must_be_signed", "aws_ignore_post_query"):
        if not isinstance(new[k], bool):
            raise ValueError("%s must be true or false, not %s" % (k, json.dumps(new[k])))
    ua = new["upstream_auth"]
    if ua is not None and (not isinstance(ua, str) or ":" not in ua):
        raise ValueError("upstream_auth must be \"user:password\" or null")
    return new


def mask(s):
    if not isinstance(s, str):
        return s
    return s[:4] + "..." if len(s) > 4 else "..."


def public_config(cfg):
    """cfg with its secrets masked (for GET /config and the log)."""
    out = dict(cfg)
    out["credentials"] = []
    for c in cfg["credentials"]:
        d = dict(c)
        for k in ("password", "api_key", "encoded", "token", "secret_key", "session_token"):
            if d.get(k):
                d[k] = mask(d[k])
        if d.get("expires") is not None:
            d["expires"] = iso(d["expires"])
        out["credentials"].append(d)
    if out.get("upstream_auth"):
        out["upstream_auth"] = out["upstream_auth"].split(":", 1)[0] + ":..."
    return out


def iso(t):
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def amz(t):
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")


def write_json(path, obj):
    tmp = "%s.tmp.%d" % (path, os.getpid())
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=1)
        f.write("\n")
    os.replace(tmp, path)


class ConfigSource:
    """The configuration: from a file, read again whenever it changes (a stat on every request)
    and on SIGHUP (reload()), or given once (path None).  A file that does not load leaves the
    previous configuration in force (error says why).  raw is the JSON as given, cfg its
    validated form."""

    def __init__(self, path, initial=None):
        self.path = path
        self.lock = threading.Lock()
        self.raw = self.cfg = self.sig = self.error = None
        self.reloads = self.errors = 0
        if initial is not None:
            self.cfg, self.raw = validate_config(initial), initial
        if path:
            self.reload(force=True)
            if self.cfg is None:
                raise ValueError("%s: %s" % (path, self.error))

    def _stat(self):
        try:
            st = os.stat(self.path)
        except OSError as e:
            return ("missing", str(e))
        return (st.st_ino, st.st_size, st.st_mtime_ns)

    def reload(self, force=False):
        if not self.path:
            return
        with self.lock:
            sig = self._stat()
            if not force and sig == self.sig:
                return
            self.sig = sig
            try:
                with open(self.path) as f:
                    raw = json.load(f)
                cfg = validate_config(raw)
            except (OSError, ValueError) as e:
                self.error = str(e)
                self.errors += 1
                sys.stderr.write("authproxy: configuration %s not loaded: %s\n" % (self.path, e))
                sys.stderr.flush()
                return
            self.raw, self.cfg, self.error = raw, cfg, None
            self.reloads += 1

    def get(self):
        self.reload()
        with self.lock:
            return self.cfg

    def replace(self, raw, merge=False):
        """Validates raw (merged over the current raw configuration's top-level keys with merge),
        writes it to the file (atomically) and puts it in force at once."""
        self.reload()
        with self.lock:
            if merge:
                if not isinstance(raw, dict):
                    raise ValueError("the configuration must be a JSON object")
                raw = dict(self.raw or {}, **raw)
            cfg = validate_config(raw)
            if self.path:
                write_json(self.path, raw)
                self.sig = self._stat()
            self.raw, self.cfg, self.error = raw, cfg, None
            self.reloads += 1
            return cfg


# ------------------------------------------------------------------ verdicts


class Verdict:
    """The outcome of checking one request: ok (forward it) or the answer to give instead."""
    __slots__ = ("ok", "status", "body", "headers", "reason", "hint", "who")

    def __init__(self, ok, status=200, body=None, headers=(), reason="ok", hint=None, who=None):
        self.ok, self.status, self.body, self.headers = ok, status, body, list(headers)
        self.reason, self.hint, self.who = reason, hint, who


def accept(who):
    return Verdict(True, who=who)


# ---- Elasticsearch-style answers (basic, apikey, bearer)

ES_CHALLENGES = [("WWW-Authenticate", 'Basic realm="security" charset="UTF-8"'),
                 ("WWW-Authenticate", 'ApiKey'),
                 ("WWW-Authenticate", 'Bearer realm="security"')]


def es_reject(reason_code, message, additional=None, headers=None, hint=None):
    err = {"type": "security_exception", "reason": message}
    if additional:
        err["additional_unsuccessful_credentials"] = additional
    hdrs = headers if headers is not None else ES_CHALLENGES
    err["header"] = {"WWW-Authenticate": [v for k, v in hdrs if k == "WWW-Authenticate"]}
    body = {"error": {"root_cause": [dict(err)], **err}, "status": 401}
    return Verdict(False, 401, body, hdrs, reason_code, hint)


def get_auth(headers):
    vals = [v for k, v in headers if k.lower() == "authorization"]
    if not vals:
        return None, None
    scheme, _, rest = vals[0].strip().partition(" ")
    return scheme.lower(), rest.strip()


def now_ok(c, now):
    return c.get("expires") is None or now < c["expires"]


def check_basic(cfg, method, target, headers, now):
    path = target.split("?", 1)[0]
    scheme, rest = get_auth(headers)
    if scheme != "basic":
        return es_reject("missing_auth", "missing authentication credentials for REST request [%s]" % path)
    try:
        user, _, password = base64.b64decode(rest, validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return es_reject("bad_auth", "unable to authenticate user for REST request [%s]" % path,
                         hint="the Basic credentials are not base64 of user:password")
    for c in cfg["credentials"]:
        if c["user"] == user:
            if not hmac.compare_digest(c["password"].encode(), password.encode()):
                break
            if not now_ok(c, now):
                return es_reject("expired", "unable to authenticate user [%s] for REST request [%s]"
                                 % (user, path), hint="the password of this user has expired")
            return accept(user)
    return es_reject("bad_auth", "unable to authenticate user [%s] for REST request [%s]" % (user, path))


ANON = "unable to authenticate with provided credentials and anonymous access is not allowed for this request"


def check_apikey(cfg, method, target, headers, now):
    path = target.split("?", 1)[0]
    scheme, rest = get_auth(headers)
    if scheme != "apikey":
        return es_reject("missing_auth", "missing authentication credentials for REST request [%s]" % path)
    try:
        kid, sep, key = base64.b64decode(rest, validate=True).decode("utf-8").partition(":")
        if not sep:
            raise ValueError
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return es_reject("bad_auth", ANON, "API key: invalid ApiKey value",
                         hint="the ApiKey value is not base64 of id:api_key")
    for c in cfg["credentials"]:
        if c["id"] == kid:
            if not hmac.compare_digest(c["api_key"].encode(), key.encode()):
                return es_reject("bad_auth", ANON, "API key: invalid credentials for API key [%s]" % kid)
            if not now_ok(c, now):
                return es_reject("expired", ANON, "API key: api key [%s] has expired" % kid)
            return accept(kid)
    return es_reject("bad_auth", ANON, "API key: unable to find apikey with id %s" % kid)


def check_bearer(cfg, method, target, headers, now):
    path = target.split("?", 1)[0]
    scheme, rest = get_auth(headers)
    if scheme != "bearer":
        return es_reject("missing_auth", "missing authentication credentials for REST request [%s]" % path)
    for c in cfg["credentials"]:
        if hmac.compare_digest(c["token"].encode(), rest.encode()):
            if not now_ok(c, now):
                return es_reject("expired", "token expired", headers=[(
                    "WWW-Authenticate", 'Bearer realm="security", error="invalid_token", '
                    'error_description="The access token expired"')])
            return accept(mask(c["token"]))
    return es_reject("bad_auth", ANON, "oauth2 token: token malformed or unknown")


# ---- SigV4

MISMATCH = ("The request signature we calculated does not match the signature you provided. "
            "Check your AWS Secret Access Key and signing method. Consult the service "
            "documentation for details.")

AUTH_PARAM_RE = re.compile(r"\s*([A-Za-z]+)\s*=\s*([^,\s]*)\s*(?:,|$)")
AMZ_DATE_RE = re.compile(r"^\d{8}T\d{6}Z$")


AWS_ERROR_TYPES = {
    "missing_auth": "AccessDeniedException",
    "unknown_key": "UnrecognizedClientException", "bad_token": "UnrecognizedClientException",
    "expired_token": "ExpiredTokenException",
    "incomplete_signature": "IncompleteSignatureException", "bad_algorithm": "IncompleteSignatureException",
    "missing_date": "IncompleteSignatureException", "bad_date": "IncompleteSignatureException",
    "content_sha256_mismatch": "XAmzContentSHA256Mismatch",
    "content_sha256_not_signed": "ValidationException",
    "missing_content_sha256": "AccessDeniedException",
}


def aws_reject(status, message, reason, hint=None, extra_headers=(), key="message"):
    hdrs = [("x-amzn-RequestId", str(uuid.uuid4())),
            ("x-amzn-ErrorType", AWS_ERROR_TYPES.get(reason, "InvalidSignatureException"))]
    hdrs.extend(extra_headers)
    return Verdict(False, status, {key: message}, hdrs, reason, hint)


def aws_encode(b):
    """URI-encode bytes per SigV4: everything but A-Z a-z 0-9 - _ . ~, uppercase hex."""
    return quote(b, safe="-_.~")


def aws_canonical_query(query):
    """The query string in AWS's canonical form, from the query as sent (its bytes, as the
    request reader decoded them: latin-1): each name and value percent-decoded and encoded again
    (RFC 3986 unreserved characters kept), a name without '=' gets an empty value, pairs joined
    by '&' (botocore sorts them)."""
    pairs = []
    for piece in query.encode("latin-1", "replace").split(b"&"):
        if not piece:
            continue
        k, _, v = piece.partition(b"=")
        pairs.append("%s=%s" % (aws_encode(unquote_to_bytes(k)), aws_encode(unquote_to_bytes(v))))
    return "&".join(pairs)


def header_text(v):
    """A header value (or the path) as the characters whose UTF-8 bytes the client sent (the
    request reader decodes bytes as latin-1); kept as is when the bytes are not UTF-8."""
    try:
        return v.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return v


if SigV4Auth is not None:
    class VerifyingSigV4(SigV4Auth):
        """botocore's SigV4 signer, used to recompute a received request's signature the way the
        server does: the headers are exactly those the client listed in SignedHeaders (botocore
        as a client would sign all but a few), and, for the diagnosis of a mismatch only, the
        canonical path, query and payload hash can be forced to other (non-AWS) forms."""

        def __init__(self, credentials, service, region, signed_names,
                     path=None, query=None, payload_hash=None):
            super().__init__(credentials, service, region)
            self.signed_names = signed_names
            self.force_path, self.force_query, self.force_payload = path, query, payload_hash

        def headers_to_sign(self, request):
            hm = HTTPHeaders()
            for name in self.signed_names:
                for v in request.headers.get_all(name) or []:
                    hm[name] = v
            return hm

        def canonical_query_string(self, request):
            if self.force_query is not None:
                return self.force_query
            return super().canonical_query_string(request)

        def _normalize_url_path(self, path):
            if self.force_path is not None:
                return self.force_path
            return super()._normalize_url_path(path)

        def payload(self, request):
            if self.force_payload is not None:
                return self.force_payload
            return super().payload(request)

        def compute(self, request):
            canonical = self.canonical_request(request)
            sts = self.string_to_sign(request, canonical)
            return self.signature(sts, request), canonical, sts


def parse_sigv4_authorization(value):
    """(credential, signed_headers, signature) of an Authorization header value, or raises
    ValueError with AWS's message."""
    algo, _, rest = value.strip().partition(" ")
    if algo != "AWS4-HMAC-SHA256":
        raise ValueError("Unsupported AWS 'algorithm': '%s'" % algo, "bad_algorithm")
    params = {}
    for m in AUTH_PARAM_RE.finditer(rest):
        params[m.group(1)] = m.group(2)
    missing = [p for p in ("Credential", "Signature", "SignedHeaders") if not params.get(p)]
    if missing:
        raise ValueError(" ".join("Authorization header requires '%s' parameter." % p for p in missing)
                         + " Authorization=" + value, "incomplete_signature")
    return params["Credential"], params["SignedHeaders"], params["Signature"]


def check_sigv4(cfg, method, target, headers, body, now):
    region, service = cfg["region"], cfg["service"]
    hmap = collections.defaultdict(list)
    for k, v in headers:
        hmap[k.lower()].append(v)
    auths = hmap.get("authorization")
    if not auths:
        if "X-Amz-Signature" in target or "x-amz-signature" in target.lower():
            return aws_reject(403, "authproxy does not accept presigned URLs (query-string SigV4)",
                              "missing_auth")
        action = "%s:ESHttp%s" % (service, method[:1].upper() + method[1:].lower())
        return aws_reject(403, "User: anonymous is not authorized to perform: %s because no "
                          "resource-based policy allows the %s action" % (action, action),
                          "missing_auth", key="Message")
    auth = auths[0]
    try:
        credential, signed_headers, signature = parse_sigv4_authorization(auth)
    except ValueError as e:
        return aws_reject(403, e.args[0], e.args[1])
    parts = credential.split("/")
    if len(parts) != 5:
        return aws_reject(403, "Credential must have exactly 5 slash-delimited elements, e.g. "
                          "keyid/date/region/service/term, got '%s'" % credential, "incomplete_signature")
    akid, sdate, sregion, sservice, term = parts
    if term != "aws4_request":
        return aws_reject(403, "Credential should be scoped with a valid terminator: 'aws4_request', "
                          "not '%s'." % term, "bad_scope")
    if sregion != region:
        return aws_reject(403, "Credential should be scoped to a valid region, not '%s'." % sregion,
                          "wrong_region", "the proxy's region is %s" % region)
    if sservice != service:
        return aws_reject(403, "Credential should be scoped to correct service: '%s'." % service,
                          "wrong_service", "the request was signed for service %s" % sservice)

    dates = hmap.get("x-amz-date")
    if not dates:
        return aws_reject(403, "Authorization header requires existence of either a 'X-Amz-Date' or "
                          "a 'Date' header. Authorization=" + auth, "missing_date",
                          "authproxy accepts x-amz-date only, not Date")
    amzdate = dates[0].strip()
    if not AMZ_DATE_RE.match(amzdate):
        return aws_reject(403, "Date must be in ISO-8601 'basic format'. Got '%s'. See "
                          "http://en.wikipedia.org/wiki/ISO_8601" % amzdate, "bad_date")
    if sdate != amzdate[:8]:
        return aws_reject(403, "Date in Credential scope does not match YYYYMMDD from ISO-8601 version "
                          "of date from HTTP: '%s' != '%s', from '%s'." % (sdate, amzdate[:8], amzdate),
                          "bad_scope_date")
    try:
        t = calendar.timegm(time.strptime(amzdate, "%Y%m%dT%H%M%SZ"))
    except ValueError:
        return aws_reject(403, "Date must be in ISO-8601 'basic format'. Got '%s'." % amzdate, "bad_date")
    skew = cfg["max_skew_seconds"]
    minutes = "%g min." % (skew / 60.0)
    if t < now - skew:
        return aws_reject(403, "Signature expired: %s is now earlier than %s (%s - %s)" % (
            amzdate, amz(now - skew), amz(now), minutes), "stale_date",
            "x-amz-date is %.0f s behind the proxy's clock" % (now - t))
    if t > now + skew:
        return aws_reject(403, "Signature not yet current: %s is still later than %s (%s + %s)" % (
            amzdate, amz(now + skew), amz(now), minutes), "future_date",
            "x-amz-date is %.0f s ahead of the proxy's clock" % (t - now))

    names = signed_headers.split(";")
    if "host" not in names:
        return aws_reject(403, "'Host' or ':authority' must be a 'SignedHeader' in the AWS "
                          "Authorization.", "host_not_signed")

    cred = None
    for c in cfg["credentials"]:
        if c["access_key"] == akid:
            cred = c
            break
    if cred is None:
        return aws_reject(403, "The security token included in the request is invalid.", "unknown_key",
                          "no credential with access key id %s" % akid)
    tokens = hmap.get("x-amz-security-token", [])
    if cred.get("session_token"):
        if not tokens:
            return aws_reject(403, "The security token included in the request is invalid.", "bad_token",
                              "this access key needs its session token in x-amz-security-token")
        if not hmac.compare_digest(tokens[0].strip().encode(), cred["session_token"].encode()):
            return aws_reject(403, "The security token included in the request is invalid.", "bad_token",
                              "x-amz-security-token is not this access key's session token")
    elif tokens:
        return aws_reject(403, "The security token included in the request is invalid.", "bad_token",
                          "x-amz-security-token sent for an access key without a session token")
    if not now_ok(cred, now):
        return aws_reject(403, "The security token included in the request is expired", "expired_token",
                          "the credential expired at %s" % iso(cred["expires"]))

    body_hash = hashlib.sha256(body).hexdigest()
    shas = hmap.get("x-amz-content-sha256")
    if service == "aoss" and not shas:
        return aws_reject(403, "x-amz-content-sha256 header is required by OpenSearch Serverless "
                          "(authproxy's wording)", "missing_content_sha256",
                          extra_headers=[("X-Aoss-Response-Hint", "X01:gw-helper-deny")])
    if shas:
        v = shas[0].strip()
        if v != UNSIGNED_PAYLOAD and v != body_hash:
            return aws_reject(400, "The provided 'x-amz-content-sha256' header does not match what "
                              "was computed.", "content_sha256_mismatch",
                              "the body's SHA-256 is %s" % body_hash)
        if service == "aoss" and cfg["aoss_sha256_must_be_signed"] and "x-amz-content-sha256" not in names:
            return aws_reject(400, "x-amz-content-sha256 header must be signed in SigV4",
                              "content_sha256_not_signed")

    absent = [n for n in names if n not in hmap]
    if absent:
        return aws_reject(403, MISMATCH, "signature_mismatch",
                          "signed header%s %s not in the request (libcurl before 8.3 signs a header "
                          "removal such as \"Expect:\" given in CURLOPT_HTTPHEADER)"
                          % ("s" if len(absent) > 1 else "", ", ".join(absent)
                             + (" are" if len(absent) > 1 else " is")))

    path, _, query = target.partition("?")
    path = header_text(path)  # botocore URI-encodes the path's characters as UTF-8
    creds = Credentials(cred["access_key"], cred["secret_key"], cred.get("session_token"))
    hdrs = HTTPHeaders()
    for k, v in headers:
        if k.lower() in names:
            hdrs[k.lower()] = header_text(v)

    def make_request(q):
        # the signed host is the Host header (in hdrs); the URL's host only carries the path
        r = AWSRequest(method=method, url="http://authproxy.invalid%s%s" % (
            path if path.startswith("/") else "/" + path, "?" + q if q else ""), data=body)
        r.headers = hdrs
        r.context["timestamp"] = amzdate
        return r

    req = make_request(aws_canonical_query(query))
    expected, canonical, sts = VerifyingSigV4(creds, service, region, names).compute(req)
    if hmac.compare_digest(expected, signature.lower()):
        return accept(akid)

    hint = diagnose(creds, service, region, names, make_request, path, query, signature)
    message = (MISMATCH + "\n\nThe Canonical String for this request should have been\n'%s'\n\n"
               "The String-to-Sign should have been\n'%s'\n" % (canonical, sts))
    return aws_reject(403, message, "signature_mismatch", hint)


def diagnose(creds, service, region, names, make_request, path, query, signature):
    """Which non-AWS canonical form the client signed, if any (only after a mismatch)."""
    raw_request = make_request(query)
    aws_query = aws_canonical_query(query)
    aws_request = make_request(aws_query)
    once = quote(path or "/", safe="/~%")  # the path encoded once, its %XX kept (S3's rule)
    variants = [  # one difference from AWS's form first, then two
        ("the query string exactly as sent (AWS URI-encodes each name and value, e.g. ',' as %2C "
         "and '*' as %2A, gives a name without '=' an empty value, and sorts them; libcurl before "
         "8.3 does none of that)", raw_request, dict(query=query)),
        ("the path exactly as sent (non-S3 services URI-encode the path twice, e.g. %7C as %257C; "
         "libcurl before 8.14 does not)", aws_request, dict(path=path or "/")),
        ("the path URI-encoded once (S3's rule, libcurl 8.9 to 8.13); non-S3 services encode it twice",
         aws_request, dict(path=once)),
        ("the path and the query exactly as sent (no URI-encoding, no sorting of the query); "
         "libcurl before 8.3 signs that way", raw_request, dict(path=path or "/", query=query)),
        ("an empty payload (the hash of an empty body): libcurl hashes CURLOPT_POSTFIELDS only, "
         "a body sent by a read callback is signed as empty", aws_request,
         dict(payload_hash=EMPTY_SHA256_HASH)),
        ("an empty payload, with the path and query exactly as sent", raw_request,
         dict(path=path or "/", query=query, payload_hash=EMPTY_SHA256_HASH)),
    ]
    for text, req, kw in variants:
        try:
            sig = VerifyingSigV4(creds, service, region, names, **kw).compute(req)[0]
        except Exception:  # a diagnosis never turns a 403 into a 500
            continue
        if hmac.compare_digest(sig, signature.lower()):
            return "the client signed " + text
    return ("no known variant matches: wrong secret key, or the request was changed after it "
            "was signed (body, path, query or a signed header)")


# ------------------------------------------------------------------ the proxy


class Stats:
    KEYS = ("requests", "accepted", "rejected", "forwarded", "upstream_errors", "bad_requests",
            "connections_total", "connections_open")

    def __init__(self):
        self.lock = threading.Lock()
        self.reset()

    def reset(self):
        with self.lock:
            open_ = getattr(self, "d", {}).get("connections_open", 0)
            self.d = {k: 0 for k in self.KEYS}
            self.d["connections_open"] = open_
            self.d["rejected_by_reason"] = {}
            self.d["accepted_by"] = {}
            self.d["responses_by_status"] = {}
            self.last = collections.deque(maxlen=20)

    def count(self, key, n=1):
        with self.lock:
            self.d[key] += n

    def bump(self, table, key):
        with self.lock:
            t = self.d[table]
            t[str(key)] = t.get(str(key), 0) + 1

    def rejection(self, entry):
        with self.lock:
            self.last.append(entry)

    def get(self):
        with self.lock:
            out = json.loads(json.dumps(self.d))
            out["last_rejections"] = list(self.last)
            return out


class Proxy:
    def __init__(self, upstream_url, config, verbose=False, upstream_timeout=300.0):
        u = urlsplit(upstream_url)
        if u.scheme != "http" or not u.hostname:
            raise ValueError("--upstream must be an http:// URL, not %r" % upstream_url)
        if u.path not in ("", "/") or u.query:
            raise ValueError("--upstream must not have a path: %r" % upstream_url)
        self.up_host, self.up_port = u.hostname, u.port or 80
        self.upstream_url = upstream_url
        self.upstream_timeout = upstream_timeout
        self.config = config
        self.verbose = verbose
        self.stats = Stats()

    def log(self, text):
        if self.verbose:
            sys.stderr.write("%s %s\n" % (time.strftime("%H:%M:%S"), text))
            sys.stderr.flush()

    def check(self, cfg, req, target, now):
        mode = cfg["mode"]
        if mode == "sigv4":
            return check_sigv4(cfg, req.method, target, req.headers, req.body, now)
        fn = {"basic": check_basic, "apikey": check_apikey, "bearer": check_bearer}[mode]
        return fn(cfg, req.method, target, req.headers, now)

    def send(self, sock, data):
        sock.sendall(data)

    def serve(self, req, sock, upstream, client):
        started = time.monotonic()
        target = req.target
        if target.startswith(("http://", "https://")):  # absolute-form
            u = urlsplit(target)
            target = (u.path or "/") + ("?" + u.query if u.query else "")
        self.stats.count("requests")
        cfg = self.config.get()
        now = time.time() + cfg["clock_offset_seconds"]
        try:
            v = self.check(cfg, req, target, now)
        except Exception as e:  # a bug in a check answers 500, never forwards
            v = Verdict(False, 500, {"message": "authproxy internal error: %s: %s" % (type(e).__name__, e)},
                        (), "internal_error")
        if not v.ok:
            self.stats.count("rejected")
            self.stats.bump("rejected_by_reason", v.reason)
            self.stats.bump("responses_by_status", v.status)
            self.stats.rejection({"time": iso(time.time()), "method": req.method, "target": target,
                                  "status": v.status, "reason": v.reason, "hint": v.hint})
            body = (json.dumps(v.body) + "\n").encode() if req.method != "HEAD" else b""
            extra = [("X-Authproxy-Reason", v.reason)]
            if v.hint:
                extra.append(("X-Authproxy-Hint", v.hint.encode("ascii", "replace").decode()))
            head = fp.build_head(v.status, http.HTTPStatus(v.status).phrase,
                                 [("Content-Type", "application/json")] + v.headers,
                                 len(body), req, extra)
            self.send(sock, head + body)
            self.log("%s %s %s -> %d %s%s" % (client, req.method, target, v.status, v.reason,
                                               " (%s)" % v.hint if v.hint else ""))
            return req.keep_alive

        self.stats.count("accepted")
        self.stats.bump("accepted_by", v.who)
        strip = {"authorization"}
        if cfg["mode"] == "sigv4":
            strip |= {"x-amz-date", "x-amz-security-token", "x-amz-content-sha256"}
        req.headers = [(k, val) for k, val in req.headers if k.lower() not in strip]
        if cfg["upstream_auth"]:
            req.headers.append(("Authorization", "Basic " + base64.b64encode(
                cfg["upstream_auth"].encode()).decode()))
        fwd_target = target
        if cfg["mode"] == "sigv4" and cfg["aws_ignore_post_query"] and req.method == "POST":
            fwd_target = target.split("?", 1)[0]
        try:
            status, reason, headers, body = upstream.request(req, fwd_target)
        except fp.UpstreamError as e:
            self.stats.count("upstream_errors")
            self.stats.bump("responses_by_status", 502)
            body = fp.error_body(502, "authproxy_upstream_error",
                                 "authproxy could not reach %s: %s" % (self.upstream_url, e))
            head = fp.build_head(502, None, [("Content-Type", "application/json; charset=UTF-8")],
                                 len(body), req, [("X-Authproxy-Reason", "upstream_error")])
            self.send(sock, head + body)
            self.log("%s %s %s -> 502 upstream error: %s" % (client, req.method, target, e))
            return req.keep_alive
        self.stats.count("forwarded")
        self.stats.bump("responses_by_status", status)
        head = fp.build_head(status, reason, headers, len(body), req)
        self.send(sock, head + body)
        self.log("%s %s %s -> %d forwarded (%s) %.1fms" % (client, req.method, target, status, v.who,
                                                           (time.monotonic() - started) * 1000))
        return req.keep_alive


class ClientHandler(socketserver.BaseRequestHandler):
    def handle(self):
        proxy = self.server.proxy
        sock = self.request
        client = "%s:%s" % self.client_address[:2]
        proxy.stats.count("connections_total")
        proxy.stats.count("connections_open")
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        rfile = sock.makefile("rb", buffering=65536)
        upstream = fp.Upstream(proxy.up_host, proxy.up_port, proxy.upstream_timeout)
        try:
            while True:
                try:
                    req = fp.read_request(rfile, sock, lambda n: None)
                except fp.BadRequest as e:
                    proxy.stats.count("bad_requests")
                    body = fp.error_body(400, "authproxy_bad_request", str(e))
                    try:
                        proxy.send(sock, fp.build_head(400, None, [("content-type", "application/json")],
                                                       len(body), None) + body)
                    except OSError:
                        pass
                    break
                if req is None:
                    break
                if not proxy.serve(req, sock, upstream, client):
                    break
        except (fp.ClientGone, OSError):
            pass
        finally:
            proxy.stats.count("connections_open", -1)
            upstream.close()
            try:
                rfile.close()
            except OSError:
                pass


class ProxyServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024
    block_on_close = False

    def __init__(self, addr, proxy):
        self.address_family = socket.AF_INET6 if ":" in addr[0] else socket.AF_INET
        self.proxy = proxy
        super().__init__(addr, ClientHandler)

    def shutdown_request(self, request):
        try:
            request.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        request.close()


# ------------------------------------------------------------------ admin API

ADMIN_HELP = {
    "GET /config": "the configuration in force (secrets masked)",
    "PUT /config": "replace the configuration (JSON object); written to the file, in force at once",
    "PATCH /config": "change only the top-level keys given (credentials is replaced whole)",
    "POST /reload": "read the configuration file again",
    "GET /stats": "counters, the last rejections",
    "POST /stats/reset": "zero the counters",
}


class AdminHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server_version = "authproxy-admin"

    def log_message(self, fmt, *args):
        if self.server.proxy.verbose:
            sys.stderr.write("admin: %s\n" % (fmt % args))

    def reply(self, status, obj, extra=()):
        body = (json.dumps(obj, indent=1) + "\n").encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def body_json(self):
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n else b""
        try:
            return json.loads(raw or b"null")
        except ValueError as e:
            raise ValueError("the body is not valid JSON: %s" % e)

    def route(self):
        path = self.path.split("?", 1)[0].rstrip("/") or "/"
        proxy = self.server.proxy
        src = proxy.config
        allowed = {"/": ("GET",), "/config": ("GET", "PUT", "PATCH"), "/reload": ("POST",),
                   "/stats": ("GET",), "/stats/reset": ("POST",)}
        if path not in allowed or self.command not in allowed[path]:
            n = int(self.headers.get("Content-Length") or 0)
            if n:
                self.rfile.read(n)
            if path not in allowed:
                return self.reply(404, {"error": "no such admin path %s" % path, "paths": ADMIN_HELP})
            return self.reply(405, {"error": "%s %s is not supported" % (self.command, path),
                                    "paths": ADMIN_HELP}, [("Allow", ", ".join(allowed[path]))])
        if path == "/":
            return self.reply(200, {"upstream": proxy.upstream_url, "config_file": src.path,
                                    "botocore": BOTOCORE_VERSION, "paths": ADMIN_HELP})
        if path == "/config" and self.command == "GET":
            cfg = src.get()
            return self.reply(200, dict(public_config(cfg), config_file=src.path,
                                        config_error=src.error, config_reloads=src.reloads))
        if path == "/config":
            try:
                cfg = src.replace(self.body_json(), merge=self.command == "PATCH")
            except ValueError as e:
                return self.reply(400, {"error": str(e)})
            proxy.log("configuration replaced through the admin API: %s" % json.dumps(public_config(cfg)))
            return self.reply(200, public_config(cfg))
        if path == "/reload":
            src.reload(force=True)
            return self.reply(200 if src.error is None else 400,
                              {"config_reloads": src.reloads, "config_error": src.error})
        if path == "/stats":
            s = proxy.stats.get()
            s["config_reloads"], s["config_errors"], s["config_error"] = src.reloads, src.errors, src.error
            return self.reply(200, s)
        if path == "/stats/reset":
            proxy.stats.reset()
            return self.reply(200, proxy.stats.get())

    do_GET = do_PUT = do_PATCH = do_POST = do_DELETE = route


class AdminServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, addr, proxy):
        self.address_family = socket.AF_INET6 if ":" in addr[0] else socket.AF_INET
        self.proxy = proxy
        super().__init__(addr, AdminHandler)


# ------------------------------------------------------------------ main

def parse_addr(text, what):
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise SystemExit("authproxy: %s must be HOST:PORT, not %r" % (what, text))
    return host.strip("[]") or "127.0.0.1", int(port)


def url_of(addr):
    host, port = addr[:2]
    return "http://%s:%d" % ("[%s]" % host if ":" in host else host, port)


def config_from_flags(a):
    """A configuration from the command-line flags (None when no --mode)."""
    if not a.mode:
        return None
    cfg = {"mode": a.mode, "credentials": []}
    for k in ("region", "service", "max_skew_seconds", "upstream_auth"):
        if getattr(a, k) is not None:
            cfg[k] = getattr(a, k)
    if a.aws_ignore_post_query:
        cfg["aws_ignore_post_query"] = True
    exp = {"expires": a.expires} if a.expires else {}
    if a.mode == "basic":
        for u in a.user or []:
            user, _, pw = u.partition(":")
            cfg["credentials"].append(dict(user=user, password=pw, **exp))
    elif a.mode == "apikey":
        for k in a.api_key or []:
            if ":" in k:
                i, _, key = k.partition(":")
                cfg["credentials"].append(dict(id=i, api_key=key, **exp))
            else:
                cfg["credentials"].append(dict(encoded=k, **exp))
    elif a.mode == "bearer":
        for t in a.token or []:
            cfg["credentials"].append(dict(token=t, **exp))
    elif a.mode == "sigv4":
        if a.access_key:
            c = dict(access_key=a.access_key, secret_key=a.secret_key or "", **exp)
            if a.session_token:
                c["session_token"] = a.session_token
            cfg["credentials"].append(c)
    return cfg


def add_mode_flags(ap):
    g = ap.add_argument_group("configuration by flags (instead of --config)")
    g.add_argument("--mode", choices=MODES)
    g.add_argument("--user", action="append", help="basic: USER:PASSWORD (repeatable)")
    g.add_argument("--api-key", action="append",
                   help="apikey: ID:API_KEY or the base64 'encoded' form (repeatable)")
    g.add_argument("--token", action="append", help="bearer: TOKEN (repeatable)")
    g.add_argument("--region", help="sigv4: e.g. eu-west-1")
    g.add_argument("--service", choices=("es", "aoss"), help="sigv4: es (default) or aoss")
    g.add_argument("--access-key", help="sigv4: access key id")
    g.add_argument("--secret-key", help="sigv4: secret access key")
    g.add_argument("--session-token", help="sigv4: session token (x-amz-security-token)")
    g.add_argument("--expires", help="the credential's expiry: ISO-8601 time or epoch seconds")
    g.add_argument("--max-skew-seconds", type=float, dest="max_skew_seconds")
    g.add_argument("--aws-ignore-post-query", action="store_true",
                   help="sigv4: forward POST requests without their query string, as AWS does")
    g.add_argument("--upstream-auth", help="USER:PASSWORD sent to the upstream as Basic auth")


def main(argv=None):
    ap = argparse.ArgumentParser(description="verifying authentication proxy in front of OpenSearch")
    ap.add_argument("--listen", required=True, help="HOST:PORT the proxy listens on (PORT 0: any free)")
    ap.add_argument("--upstream", required=True, help="http://HOST:PORT of the real engine")
    ap.add_argument("--admin", required=True, help="HOST:PORT of the admin API (PORT 0: any free)")
    ap.add_argument("--config", help="JSON configuration file: mode and credentials; re-read when it "
                    "changes and on SIGHUP")
    ap.add_argument("--write-config", action="store_true",
                    help="with --config and --mode: write the flags' configuration to the file first")
    ap.add_argument("--check-config", action="store_true", help="validate and print, then exit")
    ap.add_argument("--ready-file", help="written once both ports listen: JSON with pid, url, admin")
    ap.add_argument("--upstream-timeout", type=float, default=300.0,
                    help="seconds to wait on the upstream (default 300)")
    ap.add_argument("--verbose", action="store_true", help="log one line per request to stderr")
    add_mode_flags(ap)
    a = ap.parse_args(argv)

    flags_cfg = config_from_flags(a)
    try:
        if a.config and flags_cfg is not None:
            if not a.write_config:
                raise SystemExit("authproxy: give --config FILE or --mode and its flags, not both "
                                 "(or add --write-config to write the flags' configuration to FILE)")
            validate_config(flags_cfg)
            write_json(a.config, flags_cfg)
            src = ConfigSource(a.config)
        elif a.config:
            src = ConfigSource(a.config)
        elif flags_cfg is not None:
            src = ConfigSource(None, flags_cfg)
        else:
            raise SystemExit("authproxy: give --config FILE or --mode and its flags")
    except ValueError as e:
        raise SystemExit("authproxy: bad configuration: %s" % e)
    if a.check_config:
        print(json.dumps(public_config(src.get()), indent=1))
        return 0
    try:
        proxy = Proxy(a.upstream, src, a.verbose, a.upstream_timeout)
    except ValueError as e:
        raise SystemExit("authproxy: %s" % e)

    server = ProxyServer(parse_addr(a.listen, "--listen"), proxy)
    admin = AdminServer(parse_addr(a.admin, "--admin"), proxy)
    threading.Thread(target=admin.serve_forever, name="admin", daemon=True).start()

    def stop(signum, frame):
        raise SystemExit(0)

    def hup(signum, frame):
        # reload in a thread: the handler must not take the config lock a request may hold
        threading.Thread(target=src.reload, kwargs={"force": True}, daemon=True).start()
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGHUP, hup)

    info = {"pid": os.getpid(), "url": url_of(server.server_address),
            "admin": url_of(admin.server_address), "upstream": a.upstream,
            "mode": src.get()["mode"], "botocore": BOTOCORE_VERSION}
    if a.ready_file:
        tmp = "%s.tmp.%d" % (a.ready_file, os.getpid())
        with open(tmp, "w") as f:
            json.dump(info, f)
            f.write("\n")
        os.replace(tmp, a.ready_file)
    sys.stderr.write("authproxy: %s -> %s, admin %s, mode %s, botocore %s\n" % (
        info["url"], a.upstream, info["admin"], info["mode"], BOTOCORE_VERSION))
    sys.stderr.flush()
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
        admin.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
