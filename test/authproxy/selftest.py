#!/usr/bin/env python3
"""Self-test of authproxy.py: every rejection happens and every valid form passes.

Starts a tiny upstream HTTP server inside this process (it echoes what reached it; flusso's real
tests put the proxy in front of a real OpenSearch), starts authproxy.py through authproxy.sh (one
proxy per mode: sigv4/es, sigv4/aoss, basic, apikey, bearer) and sends it requests signed by
curl's own SigV4 signer (curl --aws-sigv4, libcurl's CURLOPT_AWS_SIGV4, the one flusso uses) and
by botocore's, valid ones and tampered ones.  Rejected requests must never reach the upstream.

    python3 test/authproxy/selftest.py [-v] [-k NAME_SUBSTRING]

Needs curl and botocore: when this interpreter lacks botocore, the test runs itself again under
the venv that authproxy.sh makes (botocore from PyPI).  Exits 0 when every check passes.
"""

import base64
import datetime
import faulthandler
import hashlib
import http.client
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import quote, unquote_to_bytes

HERE = os.path.dirname(os.path.abspath(__file__))
PROXY_SH = os.path.join(HERE, "authproxy.sh")
VERBOSE = "-v" in sys.argv
TIMEOUT = 120  # seconds for the whole run

try:
    import botocore.auth
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials
except ImportError:
    if os.environ.get("AUTHPROXY_SELFTEST_REEXEC"):
        raise
    py = subprocess.run([PROXY_SH, "python"], stdout=subprocess.PIPE, check=True).stdout.decode().strip()
    os.environ["AUTHPROXY_SELFTEST_REEXEC"] = "1"
    os.execv(py, [py, os.path.abspath(__file__)] + sys.argv[1:])

REGION = "eu-west-1"
AK_LONG, SK_LONG = "AKIDLONGTERM0001", "long/secret+key0001"
AK_TEMP, SK_TEMP, TOKEN = "ASIATEMPORARY002", "temp/secret+key0002", "FwoGZXIvYXdzE//token+with/slashes=="
AK_OLD, SK_OLD, TOKEN_OLD = "ASIAEXPIRED00003", "old-secret-0003", "expired-token-3"
NOW = time.time()

# ------------------------------------------------------------------ curl


def curl_version():
    out = subprocess.run(["curl", "--version"], stdout=subprocess.PIPE, check=True).stdout.decode()
    m = re.search(r"libcurl/(\d+)\.(\d+)\.(\d+)", out)
    return tuple(int(x) for x in m.groups()) if m else (0, 0, 0)


CURL = curl_version()


class Answer:
    def __init__(self, status, headers, body):
        self.status, self.headers, self.body = status, headers, body

    def h(self, name):
        return self.headers.get(name.lower())

    @property
    def reason(self):
        return self.h("x-authproxy-reason")

    @property
    def hint(self):
        return self.h("x-authproxy-hint") or ""

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return "<%d %s %s %s>" % (self.status, self.reason, self.hint, self.body[:300])


def parse_head_file(path):
    text = open(path, "rb").read().decode("latin-1")
    blocks = [b for b in re.split(r"\r?\n\r?\n", text) if b.startswith("HTTP/")]
    if not blocks:
        return 0, {}
    lines = blocks[-1].splitlines()
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers.setdefault(k.strip().lower(), v.strip())
    return status, headers


def curl(url, *args, sigv4=None, key=None, body=None, tmp=None):
    """One request by the curl command line.  sigv4 'REGION:SERVICE' signs it with curl's signer
    (libcurl's CURLOPT_AWS_SIGV4) and key=(access key, secret); body goes as --data-binary (that
    is CURLOPT_POSTFIELDS, as flusso sends bodies)."""
    hfile = os.path.join(tmp, "curl.head")
    ofile = os.path.join(tmp, "curl.body")
    for f in (hfile, ofile):
        if os.path.exists(f):
            os.unlink(f)
    cmd = ["curl", "-sS", "--max-time", "20", "-D", hfile, "-o", ofile]
    if sigv4:
        cmd += ["--aws-sigv4", "aws:amz:" + sigv4, "--user", "%s:%s" % key]
    if body is not None:
        bfile = os.path.join(tmp, "curl.upload")
        with open(bfile, "wb") as f:
            f.write(body)
        cmd += ["--data-binary", "@" + bfile]
    cmd += list(args) + [url]
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if r.returncode != 0:
        raise AssertionError("curl failed (%d): %s" % (r.returncode, r.stderr.decode()))
    status, headers = parse_head_file(hfile)
    data = open(ofile, "rb").read() if os.path.exists(ofile) else b""
    return Answer(status, headers, data)


# ------------------------------------------------------------------ botocore (as a client)


def boto_send(base, method, target, body=b"", headers=None, creds=None, region=REGION, service="es",
              when=None, sign_target=None, after=None):
    """Signs a request with botocore's SigV4Auth (the way AWS SDKs sign) and sends it with
    http.client exactly as target says on the wire.  sign_target is what botocore is told
    (botocore takes the query as already URI-encoded); after(headers) may tamper with the
    signed headers before sending."""
    creds = creds or Credentials(AK_LONG, SK_LONG)
    req = AWSRequest(method=method, url=base + (sign_target or target), data=body,
                     headers=dict(headers or {}))
    saved = botocore.auth.get_current_datetime
    if when is not None:
        botocore.auth.get_current_datetime = lambda: datetime.datetime.fromtimestamp(
            when, datetime.timezone.utc).replace(tzinfo=None)
    try:
        SigV4Auth(creds, service, region).add_auth(req)
    finally:
        botocore.auth.get_current_datetime = saved
    hdrs = dict(req.headers.items())
    if after:
        after(hdrs)
    host, port = base[len("http://"):].split(":")
    c = http.client.HTTPConnection(host, int(port), timeout=20)
    c.request(method, target, body=body if body else None, headers=hdrs)
    r = c.getresponse()
    data = r.read()
    c.close()
    return Answer(r.status, {k.lower(): v for k, v in r.getheaders()}, data)


# ------------------------------------------------------------------ upstream


class Upstream(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self):
        super().__init__(("127.0.0.1", 0), UpstreamHandler)
        self.lock = threading.Lock()
        self.seen = []
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.server_address[1]

    def count(self):
        with self.lock:
            return len(self.seen)

    def last(self):
        with self.lock:
            return self.seen[-1]


class UpstreamHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def handle_any(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        rec = {"method": self.command, "path": self.path, "len": len(body),
               "sha256": hashlib.sha256(body).hexdigest(),
               "headers": {k.lower(): v for k, v in self.headers.items()}}
        with self.server.lock:
            self.server.seen.append(rec)
        out = json.dumps(rec).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(out)

    do_GET = do_POST = do_PUT = do_HEAD = do_DELETE = handle_any


# ------------------------------------------------------------------ proxies


RUNNING = []


def watchdog():
    sys.stderr.write("selftest: timed out; thread stacks:\n")
    faulthandler.dump_traceback(all_threads=True)
    for p in list(RUNNING):
        p.stop()
    os._exit(1)


class Proxy:
    """One authproxy.py, started by authproxy.sh in its own directory."""

    def __init__(self, name, upstream, tmp, config):
        self.dir = os.path.join(tmp, name)
        os.makedirs(self.dir)
        self.config_path = os.path.join(self.dir, "config.json")
        with open(self.config_path, "w") as f:
            json.dump(config, f)
        r = subprocess.run([PROXY_SH, "start", "--upstream", upstream, "--dir", self.dir, "--verbose",
                            "--config", self.config_path], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        if r.returncode != 0:
            raise RuntimeError("authproxy.sh start failed: %s" % r.stderr.decode())
        self.url = r.stdout.decode().strip()
        RUNNING.append(self)

    def sh(self, *args):
        r = subprocess.run([PROXY_SH] + list(args) + ["--dir", self.dir], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE)
        return r.returncode, r.stdout.decode(), r.stderr.decode()

    def admin(self, method, path):
        base = open(os.path.join(self.dir, "admin")).read().strip()
        c = http.client.HTTPConnection(base[len("http://"):], timeout=10)
        c.request(method, path)
        r = c.getresponse()
        data = json.loads(r.read())
        c.close()
        assert r.status == 200, (method, path, r.status, data)
        return data

    def stats(self):
        return self.admin("GET", "/stats")

    def write_config(self, config):
        """Rewrites the configuration file the way a test would (atomically), no signal."""
        tmp = self.config_path + ".new"
        with open(tmp, "w") as f:
            json.dump(config, f)
        os.replace(tmp, self.config_path)

    def stop(self):
        if self in RUNNING:
            RUNNING.remove(self)
        self.sh("stop")

    def log_tail(self, n=40):
        try:
            return "".join(open(os.path.join(self.dir, "log")).readlines()[-n:])
        except OSError:
            return ""


def es_config(**kw):
    cfg = {"mode": "sigv4", "region": REGION, "service": "es", "credentials": [
        {"access_key": AK_LONG, "secret_key": SK_LONG},
        {"access_key": AK_TEMP, "secret_key": SK_TEMP, "session_token": TOKEN,
         "expires": NOW + 3600},
        {"access_key": AK_OLD, "secret_key": SK_OLD, "session_token": TOKEN_OLD,
         "expires": "2020-01-01T00:00:00Z"},
    ]}
    cfg.update(kw)
    return cfg


def aoss_config():
    return es_config(service="aoss")


def sha(b):
    return hashlib.sha256(b).hexdigest()


def amzdate(t):
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(t))


JSON_DOC = b'{"title": "caf\xc3\xa9", "n": 1}'
NDJSON = (b'{"index":{"_index":"my-index","_id":"1"}}\n{"title":"a"}\n'
          b'{"delete":{"_index":"my-index","_id":"2"}}\n')
BULK_ENCODED = "/_bulk?filter_path=errors%2Citems.%2A.status"
BULK_RAW = "/_bulk?filter_path=errors,items.*.status"


class Ctx:
    def __init__(self, up, tmp):
        self.up, self.tmp = up, tmp
        self.px = {}


def expect(a, status, reason=None, hint=None, message=None):
    assert a.status == status, "expected %d %s, got %r" % (status, reason or "", a)
    if reason is not None:
        assert a.reason == reason, "expected reason %s, got %r" % (reason, a)
    if hint is not None:
        assert hint in a.hint, "expected hint with %r, got %r" % (hint, a)
    if message is not None:
        assert message in a.body.decode(), "expected %r in the body, got %r" % (message, a)


def forwarded_clean(ctx, a, method, path, body=b"", upstream_auth=False):
    """a passed: the upstream got the request unchanged, without the auth headers (but the
    proxy's own Basic credentials with upstream_auth)."""
    assert a.status == 200, "expected 200, got %r" % a
    rec = ctx.up.last()
    assert rec["method"] == method and rec["path"] == path, (rec, method, path)
    assert rec["sha256"] == sha(body), "the body changed on the way: %s" % rec
    for h in ("authorization", "x-amz-date", "x-amz-security-token", "x-amz-content-sha256"):
        if h == "authorization" and upstream_auth:
            continue
        assert h not in rec["headers"], "%s reached the upstream: %s" % (h, rec["headers"])
    return rec


def not_forwarded(ctx, fn):
    n = ctx.up.count()
    a = fn()
    assert ctx.up.count() == n, "a rejected request reached the upstream: %r %s" % (a, ctx.up.last())
    return a


# ------------------------------------------------------------------ tests: sigv4 es


def test_es_curl_valid(ctx):
    """Requests signed by curl's signer, in the forms AWS accepts, pass."""
    px, tmp = ctx.px["es"], ctx.tmp
    s = REGION + ":es"
    a = curl(px.url + "/", sigv4=s, key=(AK_LONG, SK_LONG), tmp=tmp)
    forwarded_clean(ctx, a, "GET", "/")
    a = curl(px.url + "/", "-H", "x-amz-security-token: " + TOKEN, sigv4=s, key=(AK_TEMP, SK_TEMP), tmp=tmp)
    forwarded_clean(ctx, a, "GET", "/")
    a = curl(px.url + "/my-index/_doc/1", "-X", "PUT", "-H", "Content-Type: application/json",
             "-H", "x-amz-security-token: " + TOKEN, sigv4=s, key=(AK_TEMP, SK_TEMP), body=JSON_DOC, tmp=tmp)
    rec = forwarded_clean(ctx, a, "PUT", "/my-index/_doc/1", JSON_DOC)
    assert rec["headers"]["content-type"] == "application/json", rec
    a = curl(px.url + BULK_ENCODED, "-H", "Content-Type: application/x-ndjson", sigv4=s,
             key=(AK_LONG, SK_LONG), body=NDJSON, tmp=tmp)
    forwarded_clean(ctx, a, "POST", BULK_ENCODED, NDJSON)
    a = curl(px.url + "/my-index", "-I", sigv4=s, key=(AK_LONG, SK_LONG), tmp=tmp)
    forwarded_clean(ctx, a, "HEAD", "/my-index")
    a = curl(px.url + "/my-index", "-X", "DELETE", sigv4=s, key=(AK_LONG, SK_LONG), tmp=tmp)
    forwarded_clean(ctx, a, "DELETE", "/my-index")
    # x-amz-content-sha256 given as a custom header: optional for es, and then checked
    a = curl(px.url + "/my-index/_doc/2", "-X", "PUT", "-H", "Content-Type: application/json",
             "-H", "x-amz-content-sha256: " + sha(JSON_DOC), sigv4=s, key=(AK_LONG, SK_LONG),
             body=JSON_DOC, tmp=tmp)
    forwarded_clean(ctx, a, "PUT", "/my-index/_doc/2", JSON_DOC)
    # sorted, encoded, every name with '=': the query form libcurl 7.88 signs right
    a = curl(px.url + "/_search?filter_path=hits.total&q=title%3Aa&size=0", sigv4=s,
             key=(AK_LONG, SK_LONG), tmp=tmp)
    forwarded_clean(ctx, a, "GET", "/_search?filter_path=hits.total&q=title%3Aa&size=0")
    # a 2 MiB body: curl adds "Expect: 100-continue" itself (over 1 MiB), unsigned, and the
    # proxy answers it
    big = NDJSON * (2 * 1024 * 1024 // len(NDJSON) + 1)
    a = curl(px.url + BULK_ENCODED, "-H", "Content-Type: application/x-ndjson", sigv4=s,
             key=(AK_LONG, SK_LONG), body=big, tmp=tmp)
    forwarded_clean(ctx, a, "POST", BULK_ENCODED, big)
    # three requests on one kept-alive connection, each signed anew
    n = ctx.up.count()
    r = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-o", "/dev/null", "-o", "/dev/null",
                        "-w", "%{http_code} %{num_connects}\n", "--aws-sigv4", "aws:amz:" + s,
                        "--user", "%s:%s" % (AK_LONG, SK_LONG),
                        px.url + "/k1", px.url + "/k2", px.url + "/k3"], stdout=subprocess.PIPE, check=True)
    lines = r.stdout.decode().split()
    assert lines == ["200", "1", "200", "0", "200", "0"], lines
    assert ctx.up.count() == n + 3
    return "GET, PUT, POST _bulk (also 2 MiB), HEAD, DELETE, session token, keep-alive (curl %d.%d.%d)" % CURL


# (form, curl arguments, path sent, libcurl version that signs it the AWS way, hint when refused)
CURL_FORMS = [
    ("query with ',' and '*' as sent", BULK_RAW, ["-H", "Content-Type: application/x-ndjson"], NDJSON,
     (8, 3, 0), "the query string exactly as sent"),
    ("query not sorted", "/_search?size=0&filter_path=hits.total", [], None, (8, 3, 0),
     "the query string exactly as sent"),
    ("query name without '='", "/_cluster/health?pretty", [], None, (8, 5, 0),
     "the query string exactly as sent"),
    ("path with %7C", "/my-index_1/_doc/a%7Cb", [], None, (8, 14, 0), "the path exactly as sent"),
    ("path with '*' and ','", "/idx-a,idx-*/_search", [], None, (8, 9, 0), "the path exactly as sent"),
    ("header removal 'Expect:'", BULK_ENCODED, ["-H", "Content-Type: application/x-ndjson", "-H", "Expect:"],
     NDJSON, (8, 3, 0), "signed header expect is not in the request"),
]


def test_es_curl_forms(ctx):
    """Request forms AWS accepts, on which libcurl's signer and AWS's rules disagree (by version)."""
    px, tmp = ctx.px["es"], ctx.tmp
    notes = []
    for name, target, args, body, fixed_in, hint in CURL_FORMS:
        a = curl(px.url + target, *args, sigv4=REGION + ":es", key=(AK_LONG, SK_LONG), body=body, tmp=tmp)
        if CURL >= fixed_in:
            forwarded_clean(ctx, a, "POST" if body else "GET", target, body or b"")
            notes.append("%s: passes" % name)
        else:
            expect(a, 403, "signature_mismatch", hint)
            notes.append("%s: refused" % name)
        # botocore signs the same request the AWS way and passes (the form itself is valid)
        path, _, q = target.partition("?")
        enc = aws_query(q)
        hdrs = {"Content-Type": "application/x-ndjson"} if body else {}
        b = boto_send(px.url, "POST" if body else "GET", target, body or b"", hdrs,
                      sign_target=path + ("?" + enc if enc else ""))
        forwarded_clean(ctx, b, "POST" if body else "GET", target, body or b"")
    # a body sent by a read callback (curl -T, CURLOPT_READFUNCTION) is signed as an empty payload
    up = os.path.join(tmp, "upload.ndjson")
    with open(up, "wb") as f:
        f.write(NDJSON)
    a = curl(px.url + BULK_ENCODED, "-X", "POST", "-T", up, "-H", "Content-Type: application/x-ndjson",
             sigv4=REGION + ":es", key=(AK_LONG, SK_LONG), tmp=tmp)
    expect(a, 403, "signature_mismatch", "an empty payload")
    notes.append("body by read callback: refused")
    return "libcurl %d.%d.%d: " % CURL + "; ".join(notes)


def aws_query(q):
    """q in AWS's canonical form (botocore, as AWS SDKs use it, is given URLs already in it)."""
    pairs = []
    for p in q.split("&"):
        if p:
            k, _, v = p.partition("=")
            pairs.append("%s=%s" % (quote(unquote_to_bytes(k), safe="-_.~"),
                                    quote(unquote_to_bytes(v), safe="-_.~")))
    return "&".join(sorted(pairs))


def test_es_botocore_valid(ctx):
    """Requests signed by botocore (as AWS SDKs sign) pass; the wire keeps the client's forms."""
    px = ctx.px["es"]
    temp = Credentials(AK_TEMP, SK_TEMP, TOKEN)
    a = boto_send(px.url, "GET", "/", creds=temp)
    forwarded_clean(ctx, a, "GET", "/")
    a = boto_send(px.url, "PUT", "/my-index/_doc/1", JSON_DOC, {"Content-Type": "application/json"})
    forwarded_clean(ctx, a, "PUT", "/my-index/_doc/1", JSON_DOC)
    a = boto_send(px.url, "POST", BULK_RAW, NDJSON, {"Content-Type": "application/x-ndjson"}, creds=temp,
                  sign_target=BULK_ENCODED)
    forwarded_clean(ctx, a, "POST", BULK_RAW, NDJSON)
    a = boto_send(px.url, "POST", BULK_ENCODED, NDJSON, {"Content-Type": "application/x-ndjson"})
    forwarded_clean(ctx, a, "POST", BULK_ENCODED, NDJSON)
    a = boto_send(px.url, "GET", "/my-index_1/_doc/a%7Cb")
    forwarded_clean(ctx, a, "GET", "/my-index_1/_doc/a%7Cb")
    a = boto_send(px.url, "HEAD", "/my-index", creds=temp)
    forwarded_clean(ctx, a, "HEAD", "/my-index")
    a = boto_send(px.url, "DELETE", "/my-index")
    forwarded_clean(ctx, a, "DELETE", "/my-index")
    # a request signed 4 minutes ago is still inside AWS's 5 minutes
    a = boto_send(px.url, "GET", "/", when=time.time() - 240)
    forwarded_clean(ctx, a, "GET", "/")
    return "GET, PUT, POST _bulk (raw and encoded query), %7C path, HEAD, DELETE, 4 min old"


def test_es_rejections(ctx):
    """Each wrong request is refused with AWS's answer and never reaches the upstream."""
    px, tmp = ctx.px["es"], ctx.tmp
    s = REGION + ":es"

    def c(*args, **kw):
        kw.setdefault("sigv4", s)
        kw.setdefault("key", (AK_LONG, SK_LONG))
        return not_forwarded(ctx, lambda: curl(px.url + kw.pop("path", "/"), *args, tmp=tmp, **kw))

    a = c(key=(AK_LONG, "not-the-secret"))
    expect(a, 403, "signature_mismatch", "no known variant", "The request signature we calculated "
           "does not match the signature you provided")
    assert "The Canonical String for this request should have been" in a.json()["message"]
    assert a.h("x-amzn-errortype") == "InvalidSignatureException"
    expect(c(sigv4="us-east-1:es"), 403, "wrong_region",
           message="Credential should be scoped to a valid region, not 'us-east-1'.")
    expect(c(sigv4=REGION + ":aoss"), 403, "wrong_service",
           message="Credential should be scoped to correct service: 'es'.")
    expect(c(key=("AKIDUNKNOWN00009", SK_LONG)), 403, "unknown_key",
           message="The security token included in the request is invalid.")
    expect(c("-H", "x-amz-security-token: " + TOKEN_OLD, key=(AK_OLD, SK_OLD)), 403, "expired_token",
           message="The security token included in the request is expired")
    expect(c(key=(AK_TEMP, SK_TEMP)), 403, "bad_token", "needs its session token",
           "The security token included in the request is invalid.")
    expect(c("-H", "x-amz-security-token: forged", key=(AK_TEMP, SK_TEMP)), 403, "bad_token")
    expect(c("-H", "x-amz-security-token: " + TOKEN), 403, "bad_token")  # long-term key with a token
    # a date too far from the proxy's clock (curl signs with the X-Amz-Date it is given)
    expect(c("-H", "X-Amz-Date: " + amzdate(time.time() - 20 * 60)), 403, "stale_date",
           message="Signature expired: ")
    expect(c("-H", "X-Amz-Date: " + amzdate(time.time() + 20 * 60)), 403, "future_date",
           message="Signature not yet current: ")
    expect(c(sigv4=None), 403, "missing_auth", message="User: anonymous is not authorized to perform: "
           "es:ESHttpGet")
    # the same mistakes through botocore, and tampering after signing
    b = lambda *a, **kw: not_forwarded(ctx, lambda: boto_send(px.url, *a, **kw))  # noqa: E731
    expect(b("GET", "/", when=time.time() - 6 * 60), 403, "stale_date")
    expect(b("GET", "/", creds=Credentials(AK_LONG, "wrong")), 403, "signature_mismatch")
    expect(b("GET", "/", region="eu-central-1"), 403, "wrong_region")
    expect(b("GET", "/", service="aoss"), 403, "wrong_service")
    expect(b("GET", "/", creds=Credentials(AK_OLD, SK_OLD, TOKEN_OLD)), 403, "expired_token")

    # the body changed after signing: sign one body, send another of the same length
    n = ctx.up.count()
    req = AWSRequest(method="PUT", url=px.url + "/my-index/_doc/1", data=JSON_DOC,
                     headers={"Content-Type": "application/json"})
    SigV4Auth(Credentials(AK_LONG, SK_LONG), "es", REGION).add_auth(req)
    conn = http.client.HTTPConnection("127.0.0.1", int(px.url.rsplit(":", 1)[1]), timeout=10)
    conn.request("PUT", "/my-index/_doc/1", body=JSON_DOC.replace(b"1", b"2"), headers=dict(req.headers.items()))
    r = conn.getresponse()
    a = Answer(r.status, {k.lower(): v for k, v in r.getheaders()}, r.read())
    conn.close()
    assert ctx.up.count() == n
    expect(a, 403, "signature_mismatch", "no known variant")
    # path, query and a signed header changed after signing
    ex = {"Content-Type": "application/json"}
    expect(not_forwarded(ctx, lambda: boto_send(px.url, "GET", "/other-index/_search", sign_target="/my-index/_search")),
           403, "signature_mismatch")
    expect(not_forwarded(ctx, lambda: boto_send(px.url, "GET", "/_search?size=1000", sign_target="/_search?size=10")),
           403, "signature_mismatch")
    expect(b("PUT", "/i/_doc/1", JSON_DOC, ex, after=lambda h: h.update({"Content-Type": "text/plain"})),
           403, "signature_mismatch")
    # an x-amz-content-sha256 that is not the body's hash
    expect(b("PUT", "/i/_doc/1", JSON_DOC, dict(ex, **{"X-Amz-Content-SHA256": sha(b"other")})), 400,
           "content_sha256_mismatch", message="The provided 'x-amz-content-sha256' header does not match")
    # scope date other than x-amz-date's date
    expect(b("GET", "/", after=lambda h: h.update(Authorization=h["Authorization"].replace(
        "/%s/" % amzdate(time.time())[:8], "/20200101/"))), 403, "bad_scope_date")
    # host not signed, malformed Authorization
    expect(b("GET", "/", after=lambda h: h.update(Authorization=re.sub(
        r"SignedHeaders=[^,]*", "SignedHeaders=x-amz-date", h["Authorization"]))), 403, "host_not_signed")
    expect(b("GET", "/", after=lambda h: h.update(Authorization="AWS4-HMAC-SHA256 Credential=%s/x" % AK_LONG)),
           403, "incomplete_signature")
    expect(b("GET", "/", after=lambda h: h.pop("X-Amz-Date")), 403, "missing_date")
    st = px.stats()
    assert st["rejected"] >= 20 and st["rejected_by_reason"]["signature_mismatch"] >= 5, st
    return "%d rejections, none forwarded" % st["rejected"]


# ------------------------------------------------------------------ tests: sigv4 aoss


def test_aoss(ctx):
    """OpenSearch Serverless: x-amz-content-sha256 required, checked against the body, signed."""
    px, tmp = ctx.px["aoss"], ctx.tmp
    s = REGION + ":aoss"
    k = (AK_LONG, SK_LONG)
    empty = sha(b"")
    a = curl(px.url + "/", "-H", "x-amz-content-sha256: " + empty, sigv4=s, key=k, tmp=tmp)
    forwarded_clean(ctx, a, "GET", "/")
    a = curl(px.url + "/my-index/_doc/1", "-X", "PUT", "-H", "Content-Type: application/json",
             "-H", "x-amz-content-sha256: " + sha(JSON_DOC), "-H", "x-amz-security-token: " + TOKEN,
             sigv4=s, key=(AK_TEMP, SK_TEMP), body=JSON_DOC, tmp=tmp)
    forwarded_clean(ctx, a, "PUT", "/my-index/_doc/1", JSON_DOC)
    a = curl(px.url + BULK_ENCODED, "-H", "Content-Type: application/x-ndjson", "-H",
             "x-amz-content-sha256: " + sha(NDJSON), sigv4=s, key=k, body=NDJSON, tmp=tmp)
    forwarded_clean(ctx, a, "POST", BULK_ENCODED, NDJSON)
    a = curl(px.url + "/my-index", "-I", "-H", "x-amz-content-sha256: " + empty, sigv4=s, key=k, tmp=tmp)
    forwarded_clean(ctx, a, "HEAD", "/my-index")
    a = curl(px.url + "/my-index", "-X", "DELETE", "-H", "x-amz-content-sha256: " + empty, sigv4=s, key=k,
             tmp=tmp)
    forwarded_clean(ctx, a, "DELETE", "/my-index")
    a = curl(px.url + BULK_ENCODED, "-H", "Content-Type: application/x-ndjson", "-H",
             "x-amz-content-sha256: UNSIGNED-PAYLOAD", sigv4=s, key=k, body=NDJSON, tmp=tmp)
    forwarded_clean(ctx, a, "POST", BULK_ENCODED, NDJSON)

    def c(*args, **kw):
        return not_forwarded(ctx, lambda: curl(px.url + kw.pop("path", "/"), *args, sigv4=kw.pop("sigv4", s),
                                               key=k, tmp=tmp, **kw))
    # no x-amz-content-sha256: curl does not add it (before 8.0 not at all, later for s3 only)
    a = c(path=BULK_ENCODED, body=NDJSON)
    expect(a, 403, "missing_content_sha256")
    assert a.h("x-aoss-response-hint") == "X01:gw-helper-deny", a.headers
    expect(c(), 403, "missing_content_sha256")  # a GET needs it too
    # curl signs the header's value as the payload hash: a value that is not the body's is
    # consistent with the signature, and still refused
    expect(c("-H", "x-amz-content-sha256: " + sha(b"another body"), path=BULK_ENCODED, body=NDJSON), 400,
           "content_sha256_mismatch")
    expect(c("-H", "x-amz-content-sha256: " + empty, sigv4=REGION + ":es"), 403, "wrong_service",
           message="Credential should be scoped to correct service: 'aoss'.")
    # botocore: the header signed passes; added after signing (unsigned) is refused
    b = boto_send(px.url, "POST", BULK_RAW, NDJSON, {"Content-Type": "application/x-ndjson",
                  "X-Amz-Content-SHA256": sha(NDJSON)}, service="aoss", sign_target=BULK_ENCODED)
    forwarded_clean(ctx, b, "POST", BULK_RAW, NDJSON)
    b = not_forwarded(ctx, lambda: boto_send(
        px.url, "POST", BULK_ENCODED, NDJSON, {"Content-Type": "application/x-ndjson"}, service="aoss",
        after=lambda h: h.update({"X-Amz-Content-SHA256": sha(NDJSON)})))
    expect(b, 400, "content_sha256_not_signed", message="x-amz-content-sha256 header must be signed in SigV4")
    return "GET, PUT, POST _bulk, HEAD, DELETE, UNSIGNED-PAYLOAD pass; 5 refusals"


# ------------------------------------------------------------------ tests: changing credentials


def test_rotation(ctx):
    """Credentials rotated and expired while the proxy runs: file rewrite, admin API, SIGHUP."""
    px, tmp = ctx.px["es"], ctx.tmp
    s = REGION + ":es"
    new_secret = "rotated-secret-0001"
    g = lambda key, *args: curl(px.url + "/", *args, sigv4=s, key=key, tmp=tmp)  # noqa: E731
    assert g((AK_LONG, SK_LONG)).status == 200
    # 1. the test rewrites the file: in force for the next request, no signal needed
    cfg = es_config()
    cfg["credentials"][0]["secret_key"] = new_secret
    px.write_config(cfg)
    expect(g((AK_LONG, SK_LONG)), 403, "signature_mismatch")
    assert g((AK_LONG, new_secret)).status == 200
    # 2. a session token expires, then is renewed (new key, new token)
    cfg["credentials"][1]["expires"] = time.time() - 1
    px.write_config(cfg)
    expect(g((AK_TEMP, SK_TEMP), "-H", "x-amz-security-token: " + TOKEN), 403, "expired_token")
    cfg["credentials"][1] = {"access_key": "ASIARENEWED00004", "secret_key": "renewed",
                             "session_token": "renewed-token", "expires": time.time() + 900}
    px.write_config(cfg)
    assert g(("ASIARENEWED00004", "renewed"), "-H", "x-amz-security-token: renewed-token").status == 200
    expect(g((AK_TEMP, SK_TEMP), "-H", "x-amz-security-token: " + TOKEN), 403, "unknown_key")
    # 3. a broken file leaves the configuration in force, and says so
    with open(px.config_path, "w") as f:
        f.write('{"mode": "sigv4", "credentials": ')
    assert g((AK_LONG, new_secret)).status == 200
    st = px.stats()
    assert st["config_error"] and st["config_errors"] >= 1, st
    # 4. through authproxy.sh config (admin API: validated, written to the file)
    rc, out, err = px.sh("config", json.dumps(es_config()))
    assert rc == 0, err
    assert g((AK_LONG, SK_LONG)).status == 200
    rc, out, err = px.sh("config", '{"mode": "sigv4", "region": "x y"}')
    assert rc != 0 and "region" in err, (rc, out, err)
    assert g((AK_LONG, SK_LONG)).status == 200  # the bad one changed nothing
    rc, out, err = px.sh("config", "--merge", '{"clock_offset_seconds": 3600}')
    assert rc == 0, err
    expect(g((AK_LONG, SK_LONG)), 403, "stale_date")  # the proxy's clock is an hour ahead
    rc, out, err = px.sh("config", "--merge", '{"clock_offset_seconds": 0}')
    assert g((AK_LONG, SK_LONG)).status == 200
    rc, out, err = px.sh("config")
    shown = json.loads(out)
    assert SK_LONG not in out and shown["credentials"][0]["secret_key"].endswith("..."), out
    rc, out, err = px.sh("stats")
    assert rc == 0 and json.loads(out)["accepted"] >= 1, (rc, out, err)
    # 5. SIGHUP reads the file again
    before = px.stats()["config_reloads"]
    rc, out, err = px.sh("reload")
    assert rc == 0, err
    deadline = time.time() + 5
    while px.stats()["config_reloads"] == before:
        assert time.time() < deadline, "SIGHUP did not reload"
        time.sleep(0.02)
    assert g((AK_LONG, SK_LONG)).status == 200
    return "file rewrite, expiry, renewal, broken file kept out, admin PUT/PATCH, clock offset, SIGHUP"


# ------------------------------------------------------------------ tests: basic, apikey, bearer


def test_basic(ctx):
    px, tmp = ctx.px["basic"], ctx.tmp
    a = curl(px.url + "/_bulk", "-u", "flusso:pw-1", "-H", "Content-Type: application/x-ndjson",
             body=NDJSON, tmp=tmp)
    forwarded_clean(ctx, a, "POST", "/_bulk", NDJSON)
    a = curl(px.url + "/", "-u", "old:pw-old", tmp=tmp)
    rec = forwarded_clean(ctx, a, "GET", "/")
    assert "authorization" not in rec["headers"]
    c = lambda *args: not_forwarded(ctx, lambda: curl(px.url + "/_bulk", *args, tmp=tmp))  # noqa: E731
    a = c("-u", "flusso:wrong")
    expect(a, 401, "bad_auth", message="unable to authenticate user [flusso] for REST request [/_bulk]")
    assert 'Basic realm="security"' in a.h("www-authenticate"), a.headers
    expect(c(), 401, "missing_auth", message="missing authentication credentials for REST request [/_bulk]")
    expect(c("-u", "nobody:pw-1"), 401, "bad_auth")
    expect(c("-u", "expired:pw-x"), 401, "expired")
    expect(c("-H", "Authorization: Bearer abc"), 401, "missing_auth")
    # a password change
    px.write_config({"mode": "basic", "credentials": [{"user": "flusso", "password": "pw-2"}],
                     "upstream_auth": "engine:engine-pw"})
    expect(c("-u", "flusso:pw-1"), 401, "bad_auth")
    a = curl(px.url + "/", "-u", "flusso:pw-2", tmp=tmp)
    rec = forwarded_clean(ctx, a, "GET", "/", upstream_auth=True)
    assert rec["headers"]["authorization"] == "Basic ZW5naW5lOmVuZ2luZS1wdw==", rec  # upstream_auth
    return "valid, wrong, missing, unknown, expired, other scheme, password change, upstream_auth"


def test_apikey(ctx):
    px, tmp = ctx.px["apikey"], ctx.tmp
    enc = base64.b64encode(b"key-id-1:the-api-key").decode()
    a = curl(px.url + BULK_RAW, "-H", "Authorization: ApiKey " + enc, "-H",
             "Content-Type: application/x-ndjson", body=NDJSON, tmp=tmp)
    forwarded_clean(ctx, a, "POST", BULK_RAW, NDJSON)
    a = curl(px.url + "/", "-H", "Authorization: ApiKey " + base64.b64encode(b"key-id-2:second").decode(),
             tmp=tmp)
    forwarded_clean(ctx, a, "GET", "/")
    c = lambda *args: not_forwarded(ctx, lambda: curl(px.url + "/", *args, tmp=tmp))  # noqa: E731
    bad = base64.b64encode(b"key-id-1:wrong").decode()
    a = c("-H", "Authorization: ApiKey " + bad)
    expect(a, 401, "bad_auth", message="invalid credentials for API key [key-id-1]")
    assert a.json()["error"]["type"] == "security_exception" and a.json()["status"] == 401
    expect(c("-H", "Authorization: ApiKey " + base64.b64encode(b"nope:x").decode()), 401, "bad_auth",
           message="unable to find apikey with id nope")
    expect(c("-H", "Authorization: ApiKey " + base64.b64encode(b"key-id-old:old").decode()), 401, "expired",
           message="has expired")
    expect(c("-H", "Authorization: ApiKey !!!"), 401, "bad_auth")
    expect(c(), 401, "missing_auth")
    expect(c("-u", "key-id-1:the-api-key"), 401, "missing_auth")
    # rotation: a new key, the old one revoked
    px.write_config({"mode": "apikey", "credentials": [{"id": "key-id-3", "api_key": "third"}]})
    expect(c("-H", "Authorization: ApiKey " + enc), 401, "bad_auth")
    a = curl(px.url + "/", "-H", "Authorization: ApiKey " + base64.b64encode(b"key-id-3:third").decode(),
             tmp=tmp)
    forwarded_clean(ctx, a, "GET", "/")
    return "valid (encoded and id/api_key), wrong, unknown, expired, malformed, missing, rotation"


def test_bearer(ctx):
    px, tmp = ctx.px["bearer"], ctx.tmp
    a = curl(px.url + "/", "-H", "Authorization: Bearer tok-1", tmp=tmp)
    forwarded_clean(ctx, a, "GET", "/")
    c = lambda *args: not_forwarded(ctx, lambda: curl(px.url + "/", *args, tmp=tmp))  # noqa: E731
    expect(c("-H", "Authorization: Bearer tok-x"), 401, "bad_auth")
    a = c("-H", "Authorization: Bearer tok-old")
    expect(a, 401, "expired", message="token expired")
    assert 'error="invalid_token"' in a.h("www-authenticate"), a.headers
    expect(c(), 401, "missing_auth")
    cfg = {"mode": "bearer", "credentials": [{"token": "tok-1", "expires": time.time() - 1}]}
    px.write_config(cfg)
    expect(c("-H", "Authorization: Bearer tok-1"), 401, "expired")
    return "valid, unknown, expired, missing, expiry while running"


def test_post_query(ctx):
    """aws_ignore_post_query: POST goes upstream without its query string, as AWS documents."""
    px, tmp = ctx.px["es"], ctx.tmp
    rc, out, err = px.sh("config", "--merge", '{"aws_ignore_post_query": true}')
    assert rc == 0, err
    try:
        a = curl(px.url + BULK_ENCODED, "-H", "Content-Type: application/x-ndjson", sigv4=REGION + ":es",
                 key=(AK_LONG, SK_LONG), body=NDJSON, tmp=tmp)
        forwarded_clean(ctx, a, "POST", "/_bulk", NDJSON)
        a = curl(px.url + "/_search?size=0", sigv4=REGION + ":es", key=(AK_LONG, SK_LONG), tmp=tmp)
        forwarded_clean(ctx, a, "GET", "/_search?size=0")
    finally:
        px.sh("config", "--merge", '{"aws_ignore_post_query": false}')
    return "POST query dropped, GET query kept"


TESTS = [test_es_curl_valid, test_es_curl_forms, test_es_botocore_valid, test_es_rejections, test_aoss,
         test_basic, test_apikey, test_bearer, test_post_query, test_rotation]


def main():
    timer = threading.Timer(TIMEOUT, watchdog)
    timer.daemon = True
    timer.start()
    only = sys.argv[sys.argv.index("-k") + 1] if "-k" in sys.argv else None
    tmp = tempfile.mkdtemp(prefix="authproxy-selftest.")
    up = Upstream()
    ctx = Ctx(up, tmp)
    failed = []
    passed = 0
    t_all = time.monotonic()
    try:
        configs = {
            "es": es_config(),
            "aoss": aoss_config(),
            "basic": {"mode": "basic", "credentials": [
                {"user": "flusso", "password": "pw-1"}, {"user": "old", "password": "pw-old"},
                {"user": "expired", "password": "pw-x", "expires": "2021-06-01T00:00:00+02:00"}]},
            "apikey": {"mode": "apikey", "credentials": [
                {"id": "key-id-1", "api_key": "the-api-key"},
                {"encoded": "a2V5LWlkLTI6c2Vjb25k"},  # key-id-2:second
                {"id": "key-id-old", "api_key": "old", "expires": 1600000000}]},
            "bearer": {"mode": "bearer", "credentials": [
                {"token": "tok-1"}, {"token": "tok-old", "expires": "2020-01-01T00:00:00Z"}]},
        }
        threads = []
        errors = []

        def start(name):
            try:
                ctx.px[name] = Proxy(name, up.url, tmp, configs[name])
            except Exception as e:
                errors.append("%s: %s" % (name, e))
        for name in configs:
            threads.append(threading.Thread(target=start, args=(name,)))
            threads[-1].start()
        for t in threads:
            t.join()
        if errors:
            raise RuntimeError("; ".join(errors))
        print("proxies up in %.1fs (botocore %s, libcurl %d.%d.%d)" % (
            time.monotonic() - t_all, botocore.__version__, *CURL))
        for test in TESTS:
            if only and only not in test.__name__:
                continue
            for p in ctx.px.values():
                p.admin("POST", "/stats/reset")
            t0 = time.monotonic()
            try:
                note = test(ctx)
                passed += 1
                print("ok   %-20s %5.2fs  %s" % (test.__name__[5:], time.monotonic() - t0, note or ""))
            except Exception:
                failed.append(test.__name__)
                print("FAIL %-20s %5.2fs" % (test.__name__[5:], time.monotonic() - t0))
                traceback.print_exc()
            sys.stdout.flush()
    finally:
        stoppers = [threading.Thread(target=p.stop) for p in list(ctx.px.values())]
        for t in stoppers:
            t.start()
        for t in stoppers:
            t.join()
        up.shutdown()
        if failed or VERBOSE:
            for name, p in ctx.px.items():
                print("--- %s proxy log (%s):" % (name, p.dir))
                print(p.log_tail())
        if not failed:
            shutil.rmtree(tmp, ignore_errors=True)
    print("authproxy selftest: %d passed, %d failed (%.1fs)" % (passed, len(failed), time.monotonic() - t_all))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
