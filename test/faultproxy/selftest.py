#!/usr/bin/env python3
"""Self-test of faultproxy.py's own mechanics (Python 3 standard library only).

Starts a tiny fake upstream HTTP server inside this process (only to test the proxy; flusso's
real fault tests put the proxy in front of a real OpenSearch), starts faultproxy.py as a
subprocess in front of it, and checks pass-through and every fault kind.

    python3 test/faultproxy/selftest.py [-v] [-k NAME_SUBSTRING]

Exits 0 when every check passes, 1 otherwise.
"""

import faulthandler
import gzip
import hashlib
import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

HERE = os.path.dirname(os.path.abspath(__file__))
PROXY_PY = os.path.join(HERE, "faultproxy.py")
PROXY_SH = os.path.join(HERE, "faultproxy.sh")
VERBOSE = "-v" in sys.argv
TIMEOUT = 90  # seconds for the whole run

# ------------------------------------------------------------------ fake upstream


class Upstream(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128  # the default 5 drops SYNs of 10 parallel connections: 1 s retries

    def __init__(self):
        super().__init__(("127.0.0.1", 0), UpstreamHandler)
        self.lock = threading.Lock()
        self.seen = []  # (method, path, client port)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.server_address[1]

    def saw(self, marker):
        with self.lock:
            return sum(1 for m, p, port in self.seen if marker in p)

    def ports(self, marker):
        with self.lock:
            return [port for m, p, port in self.seen if marker in p]


def big_pattern(n):
    block = hashlib.sha256(b"faultproxy").digest() * 2048  # 64 KiB
    reps = n // len(block) + 1
    return (block * reps)[:n]


class UpstreamHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, fmt, *args):
        pass

    def read_body(self):
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            parts = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline()
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def answer(self, status, body, ctype="application/json", headers=(), chunked=False):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        for k, v in headers:
            self.send_header(k, v)
        if chunked and self.command != "HEAD":
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            if self.command != "HEAD":
                for i in range(0, len(body), 1 << 20):
                    piece = body[i:i + (1 << 20)]
                    self.wfile.write(b"%x\r\n" % len(piece) + piece + b"\r\n")
                self.wfile.write(b"0\r\n\r\n")
            return
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def handle_any(self):
        u = urlsplit(self.path)
        q = parse_qs(u.query)
        body = self.read_body()
        with self.server.lock:
            self.server.seen.append((self.command, self.path, self.client_address[1]))
        path = u.path
        if path.startswith("/echo") or path.startswith("/only"):
            obj = {"method": self.command, "path": self.path, "len": len(body),
                   "sha256": hashlib.sha256(body).hexdigest(),
                   "headers": {k.lower(): v for k, v in self.headers.items()},
                   "port": self.client_address[1]}
            return self.answer(200, json.dumps(obj).encode())
        if path == "/big":
            n = int(q["n"][0])
            return self.answer(200, big_pattern(n), "application/octet-stream",
                               [("X-Test", "big")], chunked=True)
        if path == "/slow":
            time.sleep(int(q["ms"][0]) / 1000.0)
            return self.answer(200, b'{"slow":true}')
        if path == "/gzip":
            return self.answer(200, gzip.compress(b'{"hello":"world"}'),
                               headers=[("Content-Encoding", "gzip")])
        if path == "/hop":
            return self.answer(200, b"{}", headers=[("Connection", "X-Private"), ("X-Private", "secret"),
                                                    ("X-Public", "visible")])
        if path == "/close":
            self.close_connection = True
            return self.answer(200, b'{"closing":true}', headers=[("Connection", "close")])
        if path == "/nocontent":
            self.send_response(204)
            self.end_headers()
            return
        if path.endswith("/_bulk"):
            return self.bulk(body, q)
        return self.answer(404, b'{"error":"not found","status":404}')

    def bulk(self, body, q):
        lines = [l for l in body.split(b"\n") if l.strip()]
        items = []
        i = 0
        while i < len(lines):
            action = json.loads(lines[i])
            (op, meta), = action.items()
            source = None
            if op != "delete":
                i += 1
                source = json.loads(lines[i])
            i += 1
            if source is not None and source.get("fail"):
                items.append({op: {"_index": meta.get("_index", "idx"), "_id": meta.get("_id"),
                                   "status": 400,
                                   "error": {"type": "mapper_parsing_exception",
                                             "reason": "failed to parse field [fail]",
                                             "index": meta.get("_index", "idx")}}})
            else:
                items.append({op: {"_index": meta.get("_index", "idx"), "_id": meta.get("_id"),
                                   "_version": 1, "result": "created",
                                   "_shards": {"total": 2, "successful": 1, "failed": 0},
                                   "_seq_no": i, "_primary_term": 1, "status": 201}})
        errors = any(list(it.values())[0]["status"] >= 300 for it in items)
        if "filter_path" in q:
            out = {"errors": errors, "items": []}
            for it in items:
                (op, r), = it.items()
                f = {"status": r["status"]}
                if "error" in r:
                    f["error"] = {"type": r["error"]["type"], "reason": r["error"]["reason"]}
                out["items"].append({op: f})
        else:
            out = {"took": 3, "errors": errors, "items": items}
        data = json.dumps(out, separators=(",", ":")).encode()
        headers = []
        if "gzip" in (self.headers.get("Accept-Encoding") or ""):
            data = gzip.compress(data)
            headers.append(("Content-Encoding", "gzip"))
        return self.answer(200, data, "application/json; charset=UTF-8", headers)

    do_GET = do_POST = do_PUT = do_HEAD = do_DELETE = handle_any


# ------------------------------------------------------------------ proxy process


RUNNING = []  # ProxyProcess instances, stopped by the watchdog on a hang


def watchdog():
    """A hang fails the run (instead of blocking CI) and leaves no proxy behind."""
    sys.stderr.write("selftest: timed out; thread stacks:\n")
    faulthandler.dump_traceback(all_threads=True)
    for p in list(RUNNING):
        p.proc.kill()
    os._exit(1)


class ProxyProcess:
    def __init__(self, upstream_url, tmp, extra=(), name="proxy", env=None):
        self.ready = os.path.join(tmp, name + ".ready.json")
        self.logpath = os.path.join(tmp, name + ".log")
        self.log = open(self.logpath, "w")
        self.proc = subprocess.Popen(
            [sys.executable, PROXY_PY, "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0",
             "--upstream", upstream_url, "--ready-file", self.ready, "--verbose"] + list(extra),
            stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=dict(os.environ, **(env or {})))
        RUNNING.append(self)
        deadline = time.monotonic() + 10
        while not os.path.exists(self.ready):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("proxy did not start: %s" % open(self.logpath).read())
            time.sleep(0.02)
        info = json.load(open(self.ready))
        self.url, self.admin_url = info["url"], info["admin"]
        self.port = int(self.url.rsplit(":", 1)[1])
        self.admin_port = int(self.admin_url.rsplit(":", 1)[1])

    def conn(self, timeout=30):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def admin(self, method, path, body=None, raw=None):
        c = http.client.HTTPConnection("127.0.0.1", self.admin_port, timeout=10)
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        c.request(method, path, body=data, headers={"Content-Type": "application/json"})
        r = c.getresponse()
        obj = json.loads(r.read())
        c.close()
        return r.status, obj

    def faults(self, **kw):
        status, obj = self.admin("PUT", "/faults", kw)
        assert status == 200, "PUT /faults %s -> %s %s" % (kw, status, obj)
        return obj

    def stats(self):
        return self.admin("GET", "/stats")[1]

    def stop(self):
        if self in RUNNING:
            RUNNING.remove(self)
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def get(px, path, conn=None, method="GET", body=None, headers=None, timeout=30):
    c = conn or px.conn(timeout)
    c.request(method, path, body=body, headers=headers or {})
    r = c.getresponse()
    data = r.read()
    if conn is None:
        c.close()
    return r, data


def raw_exchange(port, data, timeout=10):
    """Sends data on a fresh socket and reads until the server closes (or timeout)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.sendall(data)
    out = b""
    try:
        while True:
            b = s.recv(65536)
            if not b:
                break
            out += b
    except socket.timeout:
        pass
    s.close()
    return out


def bulk_body(n, prefix="d", fail_every=0):
    lines = []
    for i in range(n):
        lines.append(json.dumps({"index": {"_index": "idx", "_id": "%s%d" % (prefix, i),
                                           "version": 10 + i, "version_type": "external"}}))
        src = {"n": i}
        if fail_every and i % fail_every == 0:
            src["fail"] = True
        lines.append(json.dumps(src))
    return ("\n".join(lines) + "\n").encode()


FILTER = "filter_path=errors,items.*.status,items.*.error.type,items.*.error.reason"

# ------------------------------------------------------------------ tests


def test_passthrough(up, px, tmp):
    c = px.conn()
    payload = os.urandom(20 * 1024 * 1024)
    t0 = time.monotonic()
    r, data = get(px, "/echo?pt=1", c, "POST", payload,
                  {"Content-Type": "application/x-ndjson", "X-Custom": "abc"})
    sock1 = c.sock
    assert r.status == 200, r.status
    obj = json.loads(data)
    assert obj["len"] == len(payload) and obj["sha256"] == hashlib.sha256(payload).hexdigest(), obj
    assert obj["headers"]["content-type"] == "application/x-ndjson", obj["headers"]
    assert obj["headers"]["x-custom"] == "abc"
    t_cl = time.monotonic() - t0

    # chunked request body, 20 MB, same client connection
    def gen():
        for i in range(0, len(payload), 1 << 20):
            yield payload[i:i + (1 << 20)]
    c.request("POST", "/echo?pt=2", body=gen(), encode_chunked=True,
              headers={"Content-Type": "application/x-ndjson", "Transfer-Encoding": "chunked"})
    r = c.getresponse()
    obj = json.loads(r.read())
    assert obj["len"] == len(payload) and obj["sha256"] == hashlib.sha256(payload).hexdigest(), obj
    assert "transfer-encoding" not in obj["headers"], obj["headers"]
    assert obj["headers"]["content-length"] == str(len(payload))

    # 20 MB chunked response
    r, data = get(px, "/big?n=20000000&pt=3", c)
    assert r.status == 200 and len(data) == 20000000 and data == big_pattern(20000000)
    assert r.getheader("X-Test") == "big" and r.getheader("Content-Type") == "application/octet-stream"
    assert r.getheader("Content-Length") == "20000000"

    # Content-Encoding passes both ways
    gz = gzip.compress(b'{"a":1}')
    r, data = get(px, "/echo?pt=4", c, "POST", gz,
                  {"Content-Encoding": "gzip", "Content-Type": "application/json"})
    assert json.loads(data)["headers"]["content-encoding"] == "gzip"
    r, data = get(px, "/gzip?pt=5", c)
    assert r.getheader("Content-Encoding") == "gzip" and gzip.decompress(data) == b'{"hello":"world"}'

    # hop-by-hop headers dropped both ways
    r, data = get(px, "/echo?pt=6", c, headers={"Connection": "keep-alive, X-Hop", "X-Hop": "1",
                                                 "Keep-Alive": "300", "TE": "trailers"})
    h = json.loads(data)["headers"]
    assert "x-hop" not in h and "keep-alive" not in h and "te" not in h, h
    r, data = get(px, "/hop?pt=7", c)
    assert r.getheader("X-Private") is None and r.getheader("X-Public") == "visible"

    # HEAD and 204 keep the framing right on a kept-alive connection
    r, data = get(px, "/big?n=1234&pt=8", c, "HEAD")
    assert r.status == 200 and data == b"" and r.getheader("Content-Length") == "1234", r.getheaders()
    r, data = get(px, "/nocontent?pt=9", c)
    assert r.status == 204 and data == b""
    r, data = get(px, "/echo?pt=10", c)
    assert r.status == 200 and json.loads(data)["method"] == "GET"

    assert c.sock is sock1, "the proxy closed the client connection"
    ports = up.ports("pt=")
    assert len(ports) == 10 and len(set(ports)) == 1, "upstream connections not kept alive: %s" % ports
    c.close()

    # Expect: 100-continue
    body = b'{"x":1}'
    s = socket.create_connection(("127.0.0.1", px.port), timeout=5)
    s.sendall(b"POST /echo?expect=1 HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Content-Length: %d\r\nExpect: 100-continue\r\n\r\n" % len(body))
    first = s.recv(100)
    assert first == b"HTTP/1.1 100 Continue\r\n\r\n", first
    s.sendall(body)
    f = s.makefile("rb")
    resp = http.client.HTTPResponse(s, method="POST")
    resp.fp = f
    resp.begin()
    obj = json.loads(resp.read())
    assert obj["len"] == len(body) and "expect" not in obj["headers"], obj
    s.close()

    # HTTP/1.0 without keep-alive: answered, then closed
    out = raw_exchange(px.port, b"GET /echo?v10=1 HTTP/1.0\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 200") and b"Connection: close" in out, out[:300]

    # the upstream closes its side: the next request reconnects
    c = px.conn()
    r, data = get(px, "/close", c)
    assert r.status == 200
    r, data = get(px, "/echo?after_close=1", c)
    assert r.status == 200
    c.close()
    return "20 MB Content-Length body in %.2fs" % t_cl


def test_concurrency(up, px, tmp):
    results = []

    def one():
        r, data = get(px, "/slow?ms=1000")
        results.append(r.status)
    t0 = time.monotonic()
    ts = [threading.Thread(target=one) for _ in range(10)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    dt = time.monotonic() - t0
    assert results == [200] * 10, results
    assert dt < 1.8, "10 parallel 1 s requests took %.2fs" % dt
    return "10 x 1 s in %.2fs" % dt


def test_delay(up, px, tmp):
    px.faults(delay_ms=300)
    t0 = time.monotonic()
    r, _ = get(px, "/echo?delay=1")
    dt = time.monotonic() - t0
    assert r.status == 200 and 0.3 <= dt < 0.8, dt
    px.faults(delay_ms=100, delay_jitter_ms=200, seed=3)
    c = px.conn()
    times = []
    for i in range(5):
        t0 = time.monotonic()
        r, _ = get(px, "/echo?jitter=%d" % i, c)
        times.append(time.monotonic() - t0)
    c.close()
    assert all(0.1 <= t < 0.45 for t in times), times
    assert max(times) - min(times) > 0.02, "no jitter: %s" % times
    assert px.stats()["delayed"] == 6
    return "300 ms -> %.0f ms; jitter %s ms" % (dt * 1000, [round(t * 1000) for t in times])


def test_drop_before(up, px, tmp):
    px.faults(drop_before_rate=1.0)
    try:
        get(px, "/echo?dropb=1", method="POST", body=b"x" * 100000)
        raise AssertionError("no connection error")
    except (http.client.RemoteDisconnected, ConnectionError) as e:
        err1 = type(e).__name__
    px.faults(drop_before_rate=1.0, drop_reset=True)
    try:
        get(px, "/echo?dropb=2")
        raise AssertionError("no connection error")
    except ConnectionResetError as e:
        err2 = type(e).__name__
    assert up.saw("dropb=") == 0, "a dropped request reached the upstream"
    # curl's view: an empty reply
    px.faults(drop_before_rate=1.0)
    out = raw_exchange(px.port, b"GET /echo?dropb=3 HTTP/1.1\r\nHost: x\r\n\r\n")
    assert out == b"", out
    st = px.stats()
    assert st["dropped_before"] == 3 and st["forwarded"] == 0, st
    return "client saw %s / %s" % (err1, err2)


def test_drop_mid(up, px, tmp):
    px.faults(drop_mid_rate=1.0)
    c = px.conn()
    c.request("GET", "/big?n=100000&dropm=1")
    r = c.getresponse()
    assert r.status == 200
    try:
        r.read()
        raise AssertionError("no truncation")
    except http.client.IncompleteRead as e:
        assert len(e.partial) == 50000, len(e.partial)
    c.close()
    out = raw_exchange(px.port, b"GET /echo?dropm=2 HTTP/1.1\r\nHost: x\r\n\r\n")
    head, _, body = out.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK"), out[:200]
    cl = int([l.split(b":")[1] for l in head.split(b"\r\n") if l.lower().startswith(b"content-length")][0])
    assert 0 < len(body) < cl, (len(body), cl)
    assert up.saw("dropm=") == 2, "a drop_mid request must have been forwarded"
    st = px.stats()
    assert st["dropped_mid"] == 2 and st["forwarded"] == 2, st
    return "got %d of %d bytes" % (len(body), cl)


def test_status(up, px, tmp):
    px.faults(status_rate=0.3, status_codes=[429, 503], seed=42)
    c = px.conn()
    sock = None
    seq = []
    for i in range(300):
        r, data = get(px, "/echo?st=%d" % i, c)
        sock = sock or c.sock
        seq.append(r.status)
        if r.status != 200:
            obj = json.loads(data)
            assert obj["status"] == r.status and obj["error"]["type"] and obj["error"]["reason"], obj
            assert r.getheader("Content-Type").startswith("application/json")
            if r.status == 429:
                assert obj["error"]["type"] == "es_rejected_execution_exception", obj
    assert c.sock is sock, "an injected status closed the connection"
    c.close()
    injected = sum(1 for s in seq if s != 200)
    assert 0.22 <= injected / 300 <= 0.38, injected
    assert {429, 503} <= set(seq) <= {200, 429, 503}, set(seq)
    assert up.saw("st=") == 300 - injected
    st = px.stats()
    assert st["status_injected"] == injected and st["forwarded"] == 300 - injected, st
    assert st["responses_by_status"].get("429", 0) + st["responses_by_status"].get("503", 0) == injected
    # the same seed gives the same sequence
    px.faults(status_rate=0.3, status_codes=[429, 503], seed=42)
    c = px.conn()
    seq2 = [get(px, "/echo?st2=%d" % i, c)[0].status for i in range(300)]
    c.close()
    assert seq2 == seq, "seeded faults are not reproducible"
    return "%d/300 injected at rate 0.3" % injected


def check_bulk_answer(r, data, n, filtered, upstream_failed=()):
    assert r.status == 200
    assert int(r.getheader("Content-Length")) == len(data)
    doc = json.loads(data)
    assert len(doc["items"]) == n
    rewritten = 0
    for i, it in enumerate(doc["items"]):
        (op, res), = it.items()
        assert op == "index"
        if i in upstream_failed:
            assert res["status"] == 400 and res["error"]["type"] == "mapper_parsing_exception", res
            continue
        if res["status"] == 201:
            assert "error" not in res
            if not filtered:
                assert res["result"] == "created", res
            continue
        rewritten += 1
        assert res["status"] in (429, 500), res
        want = {429: "es_rejected_execution_exception", 500: "internal_server_error"}[res["status"]]
        assert res["error"] == {"type": want, "reason": "injected by faultproxy"}, res
        if filtered:
            assert set(res) == {"status", "error"}, res
        else:
            assert set(res) == {"_index", "_id", "status", "error"}, res
            assert res["_id"] == "d%d" % i
    assert doc["errors"] is (rewritten > 0 or bool(upstream_failed)), doc["errors"]
    if not filtered:
        assert "took" in doc
    return rewritten


def test_bulk_items(up, px, tmp):
    n = 200
    # no item faults: the answer is the upstream's, byte for byte
    r, plain = get(px, "/_bulk?" + FILTER, method="POST", body=bulk_body(n),
                   headers={"Content-Type": "application/x-ndjson"})
    assert check_bulk_answer(r, plain, n, True) == 0 and r.getheader("X-Faultproxy") is None
    px.faults(item_fail_rate=0.3, item_statuses=[429, 500], seed=5)
    c = px.conn()
    r, data = get(px, "/_bulk?" + FILTER, c, "POST", bulk_body(n),
                  {"Content-Type": "application/x-ndjson"})
    rw_f = check_bulk_answer(r, data, n, True)
    r, data = get(px, "/idx/_bulk", c, "POST", bulk_body(n), {"Content-Type": "application/x-ndjson"})
    rw_full = check_bulk_answer(r, data, n, False)
    # items that failed upstream are never rewritten
    r, data = get(px, "/_bulk", c, "POST", bulk_body(n, fail_every=10),
                  {"Content-Type": "application/x-ndjson"})
    rw_mixed = check_bulk_answer(r, data, n, False, upstream_failed=set(range(0, n, 10)))
    # a gzip'ed answer is rewritten and compressed again
    r, data = get(px, "/_bulk?" + FILTER, c, "POST", bulk_body(n),
                  {"Content-Type": "application/x-ndjson", "Accept-Encoding": "gzip"})
    assert r.getheader("Content-Encoding") == "gzip"
    assert int(r.getheader("Content-Length")) == len(data)
    doc = json.loads(gzip.decompress(data))
    rw_gz = sum(1 for it in doc["items"] if it["index"]["status"] != 201)
    assert doc["errors"] is True
    # rate 1: every item; non-bulk paths untouched
    px.faults(item_fail_rate=1.0, item_statuses=[500])
    r, data = get(px, "/_bulk?" + FILTER, c, "POST", bulk_body(20), {"Content-Type": "application/x-ndjson"})
    assert check_bulk_answer(r, data, 20, True) == 20
    r, data = get(px, "/echo?notbulk=1", c, "POST", bulk_body(20))
    assert "items" not in json.loads(data)
    c.close()
    for rw in (rw_f, rw_full, rw_gz):
        assert 0.2 * n <= rw <= 0.4 * n, (rw_f, rw_full, rw_gz)
    assert 0.2 * 180 <= rw_mixed <= 0.4 * 180, rw_mixed
    st = px.stats()
    assert st["bulk_items_rewritten"] == rw_f + rw_full + rw_mixed + rw_gz + 20, st
    assert st["bulk_responses_rewritten"] == 5 and st["bulk_responses"] == 6, st
    return "rewritten %d/%d filtered, %d/%d full, %d/180 mixed, %d/%d gzip" % (
        rw_f, n, rw_full, n, rw_mixed, rw_gz, n)


def test_paths(up, px, tmp):
    px.faults(status_rate=1.0, paths="^/only")
    assert get(px, "/only/x")[0].status in (429, 503)
    assert get(px, "/echo?paths=1")[0].status == 200
    px.faults(status_rate=1.0, only_bulk=True, status_codes=[503])
    assert get(px, "/echo?paths=2")[0].status == 200
    r, data = get(px, "/idx/_bulk", method="POST", body=bulk_body(2))
    assert r.status == 503 and json.loads(data)["status"] == 503
    return ""


def test_freeze(up, px, tmp):
    px.faults(freeze=True)
    out = {}

    def one(name, path, timeout):
        t0 = time.monotonic()
        try:
            r, data = get(px, path, timeout=timeout)
            out[name] = (r.status, time.monotonic() - t0)
        except (socket.timeout, OSError) as e:
            out[name] = (type(e).__name__, time.monotonic() - t0)
    t = threading.Thread(target=one, args=("held", "/echo?frz=1", 10))
    t.start()
    t_abandon = threading.Thread(target=one, args=("abandoned", "/echo?frz=2", 0.5))
    t_abandon.start()
    time.sleep(1.0)
    assert "held" not in out, out
    assert out["abandoned"][0] in ("timeout", "TimeoutError"), out
    st = px.stats()
    assert st["frozen"] == 2 and st["forwarded"] == 0, st
    # a new connection is still accepted and its request read, but not answered
    s = socket.create_connection(("127.0.0.1", px.port), timeout=0.5)
    s.sendall(b"GET /echo?frz=3 HTTP/1.1\r\nHost: x\r\n\r\n")
    try:
        got = s.recv(100)
        raise AssertionError("frozen proxy answered: %r" % got)
    except socket.timeout:
        pass
    s.close()
    t0 = time.monotonic()
    px.faults(freeze=False)
    t.join(5)
    t_unfreeze = time.monotonic() - t0
    assert out["held"][0] == 200 and t_unfreeze < 1.5, (out, t_unfreeze)
    time.sleep(0.3)
    # by default a request whose client left during the freeze is still forwarded
    assert up.saw("frz=2") == 1 and up.saw("frz=3") == 1
    # discard_abandoned: it is not
    px.faults(freeze=True, discard_abandoned=True)
    one("abandoned2", "/echo?frz=4", 0.5)
    px.faults(freeze=False, discard_abandoned=True)
    time.sleep(0.5)
    assert up.saw("frz=4") == 0, "abandoned request forwarded despite discard_abandoned"
    assert px.stats()["discarded_abandoned"] == 1
    return "answered %.2fs after unfreeze" % t_unfreeze


def test_admin(up, px, tmp):
    before = px.faults(status_rate=0.1, seed=9)
    bad = [
        ({"bogus": 1}, "unknown key bogus"),
        ({"drop_before_rate": 1.5}, "drop_before_rate must be a number from 0 to 1"),
        ({"status_rate": "0.5"}, "status_rate must be a number"),
        ({"delay_ms": -1}, "delay_ms must be"),
        ({"status_codes": []}, "status_codes must be a non-empty list"),
        ({"item_statuses": [200]}, "item_statuses must be"),
        ({"paths": "("}, "paths is not a valid regular expression"),
        ({"freeze": 1}, "freeze must be true or false"),
        ({"seed": "x"}, "seed must be an integer"),
        ([1, 2], "must be a JSON object"),
    ]
    for body, msg in bad:
        status, obj = px.admin("PUT", "/faults", body)
        assert status == 400 and msg in obj["error"], (body, status, obj)
    status, obj = px.admin("PUT", "/faults", raw=b"{not json")
    assert status == 400 and "not valid JSON" in obj["error"], obj
    status, obj = px.admin("PATCH", "/faults", {"nope": True, "status_rate": 0.2})
    assert status == 400 and "unknown key nope" in obj["error"]
    assert px.admin("GET", "/faults")[1] == before, "a rejected change was applied"
    # PATCH merges, PUT replaces
    status, obj = px.admin("PATCH", "/faults", {"delay_ms": 5})
    assert status == 200 and obj["delay_ms"] == 5 and obj["status_rate"] == 0.1 and obj["seed"] == 9
    status, obj = px.admin("PUT", "/faults", {"delay_ms": 7})
    assert obj["delay_ms"] == 7 and obj["status_rate"] == 0 and obj["seed"] is None
    status, obj = px.admin("POST", "/faults/reset")
    assert status == 200 and obj["delay_ms"] == 0
    assert px.admin("GET", "/nope")[0] == 404
    assert px.admin("DELETE", "/faults")[0] == 405
    assert px.admin("GET", "/")[0] == 200
    return "%d invalid settings rejected" % (len(bad) + 2)


def test_stats(up, px, tmp):
    px.admin("POST", "/stats/reset")
    body = b"y" * 5000
    c = px.conn()
    for i in range(3):
        r, data = get(px, "/echo?stats=%d" % i, c, "POST", body)
    c.close()
    st = px.stats()
    assert st["requests"] == 3 and st["forwarded"] == 3, st
    assert 15000 < st["bytes_in"] < 16000, st
    assert len(data) * 3 < st["bytes_out"] < len(data) * 3 + 1000, st
    assert st["responses_by_status"] == {"200": 3}, st
    assert st["connections_total"] == 1, st
    status, st = px.admin("POST", "/stats/reset")
    assert status == 200 and st["requests"] == 0 and st["bytes_in"] == 0 and st["responses_by_status"] == {}
    return ""


def test_upstream_down(up, px, tmp):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    dead = s.getsockname()[1]
    s.close()
    p2 = ProxyProcess("http://127.0.0.1:%d" % dead, tmp, name="dead")
    try:
        r, data = get(p2, "/x")
        obj = json.loads(data)
        assert r.status == 502 and obj["status"] == 502 and obj["error"]["type"] == "faultproxy_upstream_error"
        assert p2.stats()["upstream_errors"] == 1
    finally:
        p2.stop()
    return ""


def test_state_file(up, px, tmp):
    sf = os.path.join(tmp, "state.json")
    with open(sf, "w") as f:
        json.dump({"status_rate": 1.0, "status_codes": [503]}, f)
    p2 = ProxyProcess(up.url, tmp, ["--state-file", sf], name="state")
    try:
        assert get(p2, "/echo?sf=1")[0].status == 503
        p2.faults(delay_ms=1)
        assert json.load(open(sf)) == p2.admin("GET", "/faults")[1]
        assert get(p2, "/echo?sf=2")[0].status == 200
    finally:
        p2.stop()
    status = subprocess.run([sys.executable, PROXY_PY, "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0",
                             "--upstream", up.url, "--faults", '{"x":1}'],
                            capture_output=True, text=True, timeout=10)
    assert status.returncode != 0 and "unknown key x" in status.stderr, status
    return ""


def test_dump(up, px, tmp):
    dump = os.path.join(tmp, "dump")
    p2 = ProxyProcess(up.url, tmp, name="dump", env={"FAULTPROXY_DUMP": dump})
    try:
        assert get(p2, "/echo?dump=1")[0].status == 200
        assert get(p2, "/echo?dump=2")[0].status == 200
    finally:
        p2.stop()
    data = open(dump, "rb").read()
    heads = [l for l in data.split(b"\n") if l.startswith(b"=== ")]
    assert len(heads) == 2 and heads[0].endswith(b" GET /echo?dump=1 200"), heads
    assert data.count(b"\n--- answer\n") == 2, data
    return ""


def test_helper_script(up, px, tmp):
    d = os.path.join(tmp, "sh")

    def sh(*args, check=True):
        p = subprocess.run(["bash", PROXY_SH] + list(args), capture_output=True, text=True, timeout=30)
        if check:
            assert p.returncode == 0, (args, p.stdout, p.stderr)
        return p
    url = sh("start", "--upstream", up.url, "--dir", d).stdout.strip()
    try:
        assert url == open(os.path.join(d, "url")).read().strip() and url.startswith("http://127.0.0.1:")
        admin = open(os.path.join(d, "admin")).read().strip()
        pid = int(open(os.path.join(d, "pid")).read())
        os.kill(pid, 0)
        host, port = urlsplit(url).hostname, urlsplit(url).port
        c = http.client.HTTPConnection(host, port, timeout=5)
        c.request("GET", "/echo?sh=1")
        assert c.getresponse().status == 200
        c.close()
        p = sh("start", "--upstream", up.url, "--dir", d, check=False)
        assert p.returncode != 0 and "already runs" in p.stderr, p.stderr
        obj = json.loads(sh("faults", "--dir", d, '{"status_rate": 1, "status_codes": [429]}').stdout)
        assert obj["status_rate"] == 1.0
        c = http.client.HTTPConnection(host, port, timeout=5)
        c.request("GET", "/echo?sh=2")
        assert c.getresponse().status == 429
        c.close()
        p = sh("faults", "--dir", d, '{"statusrate": 1}', check=False)
        assert p.returncode != 0 and "unknown key statusrate" in p.stderr, p.stderr
        assert json.loads(sh("faults", "--dir", d, "--merge", '{"delay_ms": 3}').stdout)["status_rate"] == 1.0
        assert json.loads(sh("stats", "--dir", d).stdout)["status_injected"] == 1
        assert json.loads(sh("reset", "--dir", d).stdout)["status_rate"] == 0
        assert admin.startswith("http://127.0.0.1:")
    finally:
        sh("stop", "--dir", d)
    try:
        with open("/proc/%d/stat" % pid) as f:  # gone, or a zombie its new parent has not reaped yet
            state = f.read().rsplit(")", 1)[1].split()[0]
        assert state == "Z", "proxy pid %d still alive after stop (state %s)" % (pid, state)
    except FileNotFoundError:
        pass
    return ""


TESTS = [test_passthrough, test_concurrency, test_delay, test_drop_before, test_drop_mid, test_status,
         test_bulk_items, test_paths, test_freeze, test_admin, test_stats, test_upstream_down,
         test_state_file, test_dump, test_helper_script]


def main():
    timer = threading.Timer(TIMEOUT, watchdog)
    timer.daemon = True
    timer.start()
    only = sys.argv[sys.argv.index("-k") + 1] if "-k" in sys.argv else None
    tmp = tempfile.mkdtemp(prefix="faultproxy-selftest.")
    up = Upstream()
    px = ProxyProcess(up.url, tmp)
    failed = []
    t_all = time.monotonic()
    try:
        for test in TESTS:
            if only and only not in test.__name__:
                continue
            px.admin("POST", "/faults/reset")
            px.admin("POST", "/stats/reset")
            t0 = time.monotonic()
            try:
                note = test(up, px, tmp)
                print("ok   %-20s %5.2fs  %s" % (test.__name__[5:], time.monotonic() - t0, note or ""))
            except Exception:
                failed.append(test.__name__)
                print("FAIL %-20s %5.2fs" % (test.__name__[5:], time.monotonic() - t0))
                traceback.print_exc()
            sys.stdout.flush()
    finally:
        px.stop()
        up.shutdown()
        if failed or VERBOSE:
            print("--- proxy log (%s):" % px.logpath)
            print("".join(open(px.logpath).readlines()[-40:]))
        if not failed:
            shutil.rmtree(tmp, ignore_errors=True)
    print("%s: %d failed, %.1fs" % ("FAIL" if failed else "PASS", len(failed), time.monotonic() - t_all))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
