#!/usr/bin/env python3
"""faultproxy: a fault-injecting HTTP/1.1 reverse proxy for flusso's fault tests.

It sits in front of a real OpenSearch node and forwards every request to it,
injecting faults that are configured at run time through a small admin API:
delays, dropped connections (before the answer or in the middle of it),
injected 429/5xx answers, rewritten _bulk item statuses, and a frozen
(hung) server.  Python 3 standard library only.  See README.md beside this file.

    faultproxy.py --listen 127.0.0.1:PORT --upstream http://127.0.0.1:9200 \
                  --admin 127.0.0.1:ADMINPORT [--state-file F] [--ready-file F] [--verbose]

PORT and ADMINPORT may be 0 (the kernel picks free ports); --ready-file then
tells which were chosen.
"""

import argparse
import gzip
import http.client
import json
import os
import random
import re
import select
import signal
import socket
import socketserver
import struct
import sys
import threading
import time
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

# FAULTPROXY_DUMP=FILE: every forwarded request and its answer appended to FILE (README.md)
DUMP_FILE = os.environ.get("FAULTPROXY_DUMP")
DUMP_LOCK = threading.Lock()

# ------------------------------------------------------------------ settings

DEFAULT_FAULTS = {
    "delay_ms": 0,              # fixed delay before forwarding each request
    "delay_jitter_ms": 0,       # plus a uniform random 0..jitter
    "drop_before_rate": 0.0,    # close the client connection before any answer byte
    "drop_mid_rate": 0.0,       # send status line, headers and part of the body, then close
    "drop_reset": False,        # drops close with a TCP RST instead of a FIN
    "status_rate": 0.0,         # answer directly with one of status_codes
    "status_codes": [429, 503],
    "item_fail_rate": 0.0,      # _bulk only: share of successful items rewritten to a failure
    "item_statuses": [429, 500],
    "paths": None,              # regex (re.search on the request target); faults apply only there
    "only_bulk": False,         # faults apply only to requests whose path contains /_bulk
    "freeze": False,            # hold every (matching) request unanswered until unfrozen
    "discard_abandoned": False, # after a freeze/delay, do not forward requests whose client left
    "seed": None,               # integer seed of the fault decisions (null: random)
}

RATE_KEYS = ("drop_before_rate", "drop_mid_rate", "status_rate", "item_fail_rate")
MS_KEYS = ("delay_ms", "delay_jitter_ms")
BOOL_KEYS = ("drop_reset", "only_bulk", "freeze", "discard_abandoned")
STATUS_LIST_KEYS = ("status_codes", "item_statuses")


def validate_faults(update, base):
    """base updated with the dict update, validated; raises ValueError with a clear message."""
    if not isinstance(update, dict):
        raise ValueError("the faults must be a JSON object")
    unknown = sorted(k for k in update if k not in DEFAULT_FAULTS)
    if unknown:
        raise ValueError("unknown key%s %s; known keys: %s" % (
            "s" if len(unknown) > 1 else "", ", ".join(unknown), ", ".join(sorted(DEFAULT_FAULTS))))
    new = dict(base)
    new.update(update)
    for k in RATE_KEYS:
        v = new[k]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= 1:
            raise ValueError("%s must be a number from 0 to 1, not %s" % (k, json.dumps(v)))
        new[k] = float(v)
    for k in MS_KEYS:
        v = new[k]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= 3600000:
            raise ValueError("%s must be a number of milliseconds from 0 to 3600000, not %s"
                             % (k, json.dumps(v)))
    for k in BOOL_KEYS:
        if not isinstance(new[k], bool):
            raise ValueError("%s must be true or false, not %s" % (k, json.dumps(new[k])))
    for k in STATUS_LIST_KEYS:
        v = new[k]
        if (not isinstance(v, list) or not v or
                any(isinstance(c, bool) or not isinstance(c, int) or not 400 <= c <= 599 for c in v)):
            raise ValueError("%s must be a non-empty list of HTTP statuses from 400 to 599, not %s"
                             % (k, json.dumps(v)))
    p = new["paths"]
    if p is not None:
        if not isinstance(p, str):
            raise ValueError("paths must be a regular expression string or null, not %s" % json.dumps(p))
        try:
            re.compile(p)
        except re.error as e:
            raise ValueError("paths is not a valid regular expression: %s" % e)
    s = new["seed"]
    if s is not None and (isinstance(s, bool) or not isinstance(s, int)):
        raise ValueError("seed must be an integer or null, not %s" % json.dumps(s))
    return new


STAT_KEYS = (
    "connections_total", "connections_open", "requests", "forwarded", "upstream_errors",
    "bad_requests", "delayed", "frozen", "discarded_abandoned", "dropped_before", "dropped_mid",
    "status_injected", "bulk_responses", "bulk_responses_rewritten", "bulk_items_seen",
    "bulk_items_rewritten", "bulk_rewrite_skipped", "bytes_in", "bytes_out",
)


def new_stats():
    s = {k: 0 for k in STAT_KEYS}
    s["responses_by_status"] = {}
    return s


# ------------------------------------------------------------------ error bodies

# (type, reason) of OpenSearch-style whole-request errors answered by status injection
STATUS_ERRORS = {
    400: ("illegal_argument_exception", "injected by faultproxy"),
    404: ("index_not_found_exception", "no such index [injected by faultproxy]"),
    408: ("timeout_exception", "request timed out (injected by faultproxy)"),
    413: ("content_too_long_exception", "request body too large (injected by faultproxy)"),
    429: ("es_rejected_execution_exception",
          "rejected execution of coordinating operation [coordinating_and_primary_bytes=0, "
          "replica_bytes=0, all_bytes=0, coordinating_operation_bytes=0, "
          "max_coordinating_and_primary_bytes=0] (injected by faultproxy)"),
    500: ("internal_server_error", "injected by faultproxy"),
    502: ("bad_gateway_exception", "injected by faultproxy"),
    503: ("cluster_manager_not_discovered_exception", "injected by faultproxy"),
    504: ("process_cluster_event_timeout_exception",
          "failed to process cluster event within 30s (injected by faultproxy)"),
}

# error type of an injected per-item _bulk failure
ITEM_ERROR_TYPES = {
    400: "mapper_parsing_exception",
    404: "index_not_found_exception",
    409: "version_conflict_engine_exception",
    429: "es_rejected_execution_exception",
    500: "internal_server_error",
    503: "unavailable_shards_exception",
}

REASONS = {100: "Continue", 200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
           408: "Request Timeout", 413: "Payload Too Large", 429: "Too Many Requests",
           500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable",
           504: "Gateway Timeout"}


def error_body(status, etype, reason):
    return json.dumps({
        "error": {"root_cause": [{"type": etype, "reason": reason}], "type": etype, "reason": reason},
        "status": status}, separators=(",", ":")).encode()


def injected_error_body(status):
    etype, reason = STATUS_ERRORS.get(status, ("exception", "injected by faultproxy"))
    return error_body(status, etype, reason)


def rewrite_bulk_json(data, rate, statuses, rng):
    """The _bulk answer data (bytes) with a share rate of its successful items turned into failures.

    Returns (new_data, items_seen, items_rewritten), or None when data is not a _bulk answer.
    Works on full answers and on filter_path'ed ones (only errors, items.*.status, items.*.error.*).
    data is returned unchanged (not re-serialized) when no item is rewritten."""
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(doc, dict) or not isinstance(doc.get("items"), list):
        return None
    seen = rewritten = 0
    for item in doc["items"]:
        if not isinstance(item, dict) or len(item) != 1:
            continue
        (op, res), = item.items()
        if not isinstance(res, dict):
            continue
        status = res.get("status")
        if isinstance(status, bool) or not isinstance(status, int):
            continue
        seen += 1
        if not 200 <= status < 300 or rng.random() >= rate:
            continue
        code = rng.choice(statuses)
        new = {}
        for k in ("_index", "_id"):  # what a real failed item keeps from a full answer
            if k in res:
                new[k] = res[k]
        new["status"] = code
        new["error"] = {"type": ITEM_ERROR_TYPES.get(code, "exception"),
                        "reason": "injected by faultproxy"}
        item[op] = new
        rewritten += 1
    if not rewritten:
        return data, seen, 0
    doc["errors"] = True
    return json.dumps(doc, separators=(",", ":")).encode(), seen, rewritten


# ------------------------------------------------------------------ HTTP plumbing

HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization",
              "proxy-connection", "te", "trailer", "trailers", "transfer-encoding", "upgrade",
              "expect", "content-length"}

MAX_LINE = 65536
MAX_HEADERS = 256


class BadRequest(Exception):
    pass


class ClientGone(Exception):
    pass


class Request:
    __slots__ = ("method", "target", "version", "headers", "body", "has_body", "keep_alive",
                 "wire_bytes")


def header_tokens(headers, name):
    out = set()
    for k, v in headers:
        if k.lower() == name:
            out.update(t.strip().lower() for t in v.split(",") if t.strip())
    return out


def read_line(rfile):
    line = rfile.readline(MAX_LINE + 1)
    if len(line) > MAX_LINE:
        raise BadRequest("line too long")
    return line


def read_request(rfile, sock, on_bytes_out):
    """One request from the client connection; None at a clean end of the connection."""
    n = 0
    line = b""
    while line in (b"", b"\r\n", b"\n"):  # tolerate empty lines between requests
        line = read_line(rfile)
        if not line:
            return None
        n += len(line)
    parts = line.decode("latin-1").rstrip("\r\n").split()
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise BadRequest("malformed request line %r" % line[:200])
    req = Request()
    req.method, req.target, req.version = parts
    headers = []
    while True:
        line = read_line(rfile)
        if not line:
            raise ClientGone()
        n += len(line)
        if line in (b"\r\n", b"\n"):
            break
        if line[:1] in (b" ", b"\t") and headers:  # obsolete line folding
            k, v = headers[-1]
            headers[-1] = (k, v + " " + line.decode("latin-1").strip())
            continue
        k, sep, v = line.decode("latin-1").partition(":")
        if not sep or not k or k != k.strip():
            raise BadRequest("malformed header line %r" % line[:200])
        headers.append((k, v.strip()))
        if len(headers) > MAX_HEADERS:
            raise BadRequest("too many headers")
    req.headers = headers
    conn_tokens = header_tokens(headers, "connection")
    if req.version == "HTTP/1.0":
        req.keep_alive = "keep-alive" in conn_tokens
    else:
        req.keep_alive = "close" not in conn_tokens
    te = [v for k, v in headers if k.lower() == "transfer-encoding"]
    cl = [v for k, v in headers if k.lower() == "content-length"]
    chunked = False
    length = 0
    if te:
        codings = [c.strip().lower() for v in te for c in v.split(",") if c.strip()]
        if not codings or codings[-1] != "chunked":
            raise BadRequest("unsupported Transfer-Encoding %s" % ", ".join(te))
        chunked = True
    elif cl:
        values = {v.strip() for v in ",".join(cl).split(",")}
        if len(values) != 1 or not next(iter(values)).isdigit():
            raise BadRequest("bad Content-Length %s" % ", ".join(cl))
        length = int(values.pop())
    req.has_body = chunked or bool(cl)
    if req.has_body and "100-continue" in header_tokens(headers, "expect") and req.version != "HTTP/1.0":
        msg = b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(msg)
        on_bytes_out(len(msg))
    if chunked:
        pieces = []
        while True:
            line = read_line(rfile)
            if not line:
                raise ClientGone()
            n += len(line)
            size_text = line.split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                raise BadRequest("bad chunk size %r" % line[:100])
            if size == 0:
                while True:  # trailers, dropped
                    line = read_line(rfile)
                    if not line:
                        raise ClientGone()
                    n += len(line)
                    if line in (b"\r\n", b"\n"):
                        break
                break
            data = rfile.read(size)
            if len(data) < size:
                raise ClientGone()
            pieces.append(data)
            crlf = read_line(rfile)
            n += size + len(crlf)
            if crlf not in (b"\r\n", b"\n"):
                raise BadRequest("chunk not followed by CRLF")
        req.body = b"".join(pieces)
    elif length:
        req.body = rfile.read(length)
        if len(req.body) < length:
            raise ClientGone()
        n += length
    else:
        req.body = b""
    req.wire_bytes = n
    return req


def client_gone(sock):
    """Has the client closed its end? (Pipelined data counts as alive.)"""
    try:
        # select first: recv on a socket with a timeout waits for data despite MSG_DONTWAIT
        if not select.select([sock], [], [], 0)[0]:
            return False
        return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except (BlockingIOError, InterruptedError, socket.timeout):
        return False
    except OSError:
        return True


class UpstreamError(Exception):
    pass


class Upstream:
    """One keep-alive connection to the upstream, owned by one client connection."""

    def __init__(self, host, port, timeout):
        self.host, self.port, self.timeout = host, port, timeout
        self.hostheader = host if port == 80 else "%s:%d" % (host, port)
        if ":" in host and port != 80:
            self.hostheader = "[%s]:%d" % (host, port)
        self.conn = None
        self.used = False

    def close(self):
        if self.conn is not None:
            self.conn.close()
        self.conn = None
        self.used = False

    def request(self, req, target):
        """(status, reason, headers, body) of the upstream's answer to req."""
        hop = HOP_BY_HOP | {"host"} | header_tokens(req.headers, "connection")
        if self.conn is not None and self.conn.sock is not None and client_gone(self.conn.sock):
            self.close()  # the upstream closed the idle kept-alive connection
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
                self.used = False
                try:
                    self.conn.connect()
                    # http.client sends headers and body in two writes: without this, Nagle
                    # and the upstream's delayed ACK add 40 ms to every request with a body
                    self.conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                except OSError as e:
                    self.close()
                    raise UpstreamError("cannot connect: %s: %s" % (type(e).__name__, e))
            reused = self.used
            conn = self.conn
            try:
                conn.putrequest(req.method, target, skip_host=True, skip_accept_encoding=True)
                conn.putheader("Host", self.hostheader)
                for k, v in req.headers:
                    if k.lower() not in hop:
                        conn.putheader(k, v)
                if req.has_body or req.body or req.method in ("POST", "PUT", "PATCH"):
                    conn.putheader("Content-Length", str(len(req.body)))
                conn.endheaders(req.body if req.body else None)
                resp = conn.getresponse()
                self.used = True
                body = resp.read()
                headers = resp.getheaders()
                status, reason = resp.status, resp.reason
                if resp.will_close:
                    self.close()
                return status, reason, headers, body
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as e:
                self.close()
                # a kept-alive connection the upstream closed while idle: retry once, fresh
                if reused and attempt == 0:
                    continue
                raise UpstreamError("%s: %s" % (type(e).__name__, e))
            except (OSError, http.client.HTTPException) as e:
                self.close()
                raise UpstreamError("%s: %s" % (type(e).__name__, e))
        raise UpstreamError("unreachable")


def no_body_status(status):
    return 100 <= status < 200 or status in (204, 304)


def build_head(status, reason, headers, body_len, req, extra=()):
    """Status line and headers for the client; headers come from the upstream (filtered)."""
    lines = ["HTTP/1.1 %d %s" % (status, reason or REASONS.get(status, "Unknown"))]
    hop = HOP_BY_HOP | header_tokens(headers, "connection")
    upstream_cl = None
    for k, v in headers:
        lk = k.lower()
        if lk == "content-length":
            upstream_cl = v
        if lk not in hop:
            lines.append("%s: %s" % (k, v))
    lines.extend("%s: %s" % kv for kv in extra)
    if not no_body_status(status):
        if req is not None and req.method == "HEAD":
            if upstream_cl is not None:
                lines.append("Content-Length: %s" % upstream_cl)
        else:
            lines.append("Content-Length: %d" % body_len)
    if req is None or not req.keep_alive:
        lines.append("Connection: close")
    elif req.version == "HTTP/1.0":
        lines.append("Connection: keep-alive")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


# ------------------------------------------------------------------ the proxy

class Proxy:
    def __init__(self, upstream_url, faults, state_file=None, verbose=False, upstream_timeout=300.0):
        u = urlsplit(upstream_url)
        if u.scheme != "http" or not u.hostname:
            raise ValueError("--upstream must be an http:// URL, not %r" % upstream_url)
        if u.path not in ("", "/") or u.query:
            raise ValueError("--upstream must not have a path: %r" % upstream_url)
        self.up_host, self.up_port = u.hostname, u.port or 80
        self.upstream_url = upstream_url
        self.upstream_timeout = upstream_timeout
        self.verbose = verbose
        self.state_file = state_file
        self.lock = threading.Lock()
        self.cond = threading.Condition(self.lock)
        self.stats = new_stats()
        self.set_faults(faults)

    # ---- settings and counters

    def set_faults(self, faults):
        with self.lock:
            self.faults = faults
            self.paths_re = re.compile(faults["paths"]) if faults["paths"] is not None else None
            self.rng = random.Random(faults["seed"] if faults["seed"] is not None else os.urandom(16))
            self.cond.notify_all()
        if self.state_file:
            tmp = "%s.tmp.%d" % (self.state_file, os.getpid())
            with open(tmp, "w") as f:
                json.dump(faults, f, indent=1)
                f.write("\n")
            os.replace(tmp, self.state_file)

    def get_faults(self):
        with self.lock:
            return dict(self.faults)

    def count(self, key, n=1):
        with self.lock:
            self.stats[key] += n

    def count_status(self, status):
        with self.lock:
            d = self.stats["responses_by_status"]
            d[str(status)] = d.get(str(status), 0) + 1

    def get_stats(self):
        with self.lock:
            s = dict(self.stats)
            s["responses_by_status"] = dict(s["responses_by_status"])
            return s

    def reset_stats(self):
        with self.lock:
            open_ = self.stats["connections_open"]
            self.stats = new_stats()
            self.stats["connections_open"] = open_

    def _applies(self, target, is_bulk):
        f = self.faults
        if f["only_bulk"] and not is_bulk:
            return False
        return self.paths_re is None or self.paths_re.search(target) is not None

    def plan(self, target, is_bulk):
        """The faults for one request, drawn at once (a fixed number of draws per request, so a
        seeded sequence of requests always gets the same faults).  None when none apply."""
        with self.lock:
            f = self.faults
            if not self._applies(target, is_bulk):
                return None
            r = self.rng
            draws = [r.random() for _ in range(5)]
            sub_seed = r.getrandbits(64)
            p = {
                "delay": (f["delay_ms"] + draws[0] * f["delay_jitter_ms"]) / 1000.0,
                "drop_before": draws[1] < f["drop_before_rate"],
                "status": (f["status_codes"][int(draws[3] * len(f["status_codes"]))]
                           if draws[2] < f["status_rate"] else None),
                "drop_mid": draws[4] < f["drop_mid_rate"],
                "drop_reset": f["drop_reset"],
                "item_rate": f["item_fail_rate"] if is_bulk else 0.0,
                "item_statuses": list(f["item_statuses"]),
                "discard_abandoned": f["discard_abandoned"],
                "rng": random.Random(sub_seed),
            }
            return p

    def wait_unfrozen(self, target, is_bulk):
        """Blocks while frozen (for this request); True if it had to wait."""
        waited = False
        with self.cond:
            while self.faults["freeze"] and self._applies(target, is_bulk):
                if not waited:
                    self.stats["frozen"] += 1
                    waited = True
                self.cond.wait(1.0)
        return waited

    # ---- one request

    def log(self, req, client, status, fault, started, nout):
        if self.verbose:
            sys.stderr.write("%s %s %s %s -> %s fault=%s %.1fms in=%d out=%d\n" % (
                time.strftime("%H:%M:%S"), client, req.method, req.target,
                status if status is not None else "-", fault or "-",
                (time.monotonic() - started) * 1000, req.wire_bytes, nout))
            sys.stderr.flush()

    def send(self, sock, data):
        sock.sendall(data)
        self.count("bytes_out", len(data))

    def abort(self, sock, reset):
        """Close the client connection at once (FIN, or RST with reset)."""
        try:
            if reset:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            else:
                sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        sock.close()

    def serve(self, req, sock, upstream, client):
        """Answers req; False when the client connection must be closed."""
        started = time.monotonic()
        target = req.target
        if target.startswith(("http://", "https://")):  # absolute-form
            u = urlsplit(target)
            target = (u.path or "/") + ("?" + u.query if u.query else "")
        is_bulk = "/_bulk" in target.split("?", 1)[0]
        self.count("requests")
        self.count("bytes_in", req.wire_bytes)
        faults = []

        if self.wait_unfrozen(target, is_bulk):
            faults.append("freeze")
        p = self.plan(target, is_bulk)
        if p is not None and p["delay"] > 0:
            faults.append("delay")
            self.count("delayed")
            time.sleep(p["delay"])
        if faults and p is not None and p["discard_abandoned"] and client_gone(sock):
            self.count("discarded_abandoned")
            self.log(req, client, None, "+".join(faults + ["abandoned"]), started, 0)
            return False

        if p is not None and p["drop_before"]:
            self.count("dropped_before")
            self.abort(sock, p["drop_reset"])
            self.log(req, client, None, "+".join(faults + ["drop_before"]), started, 0)
            return False

        if p is not None and p["status"] is not None:
            status = p["status"]
            self.count("status_injected")
            self.count_status(status)
            body = injected_error_body(status) if req.method != "HEAD" else b""
            head = build_head(status, None, [("content-type", "application/json; charset=UTF-8")],
                              len(body), req, [("X-Faultproxy", "status")])
            self.send(sock, head + body)
            self.log(req, client, status, "+".join(faults + ["status"]), started, len(head) + len(body))
            return req.keep_alive

        try:
            status, reason, headers, body = upstream.request(req, target)
        except UpstreamError as e:
            self.count("upstream_errors")
            self.count_status(502)
            body = error_body(502, "faultproxy_upstream_error",
                              "faultproxy could not reach %s: %s" % (self.upstream_url, e))
            head = build_head(502, None, [("content-type", "application/json; charset=UTF-8")],
                              len(body), req, [("X-Faultproxy", "upstream-error")])
            self.send(sock, head + body)
            self.log(req, client, 502, "+".join(faults + ["upstream_error"]), started,
                     len(head) + len(body))
            return req.keep_alive
        self.count("forwarded")
        if DUMP_FILE:
            record = b"".join([("=== %.6f %s %s %d\n" % (time.time(), req.method, target, status)).encode(),
                               req.body or b"", b"\n--- answer\n", body or b"", b"\n"])
            with DUMP_LOCK, open(DUMP_FILE, "ab") as f:
                f.write(record)

        extra = []
        if is_bulk and status == 200 and req.method != "HEAD":
            self.count("bulk_responses")
            if p is not None and p["item_rate"] > 0:
                new = self.rewrite_bulk(headers, body, p)
                if new is not None:
                    body = new
                    faults.append("item_fail")
                    extra.append(("X-Faultproxy", "item_fail"))

        if p is not None and p["drop_mid"]:
            head = build_head(status, reason, headers, len(body), req, extra)
            if len(body) >= 2:
                part = head + body[:len(body) // 2]
            else:
                part = head[:len(head) // 2]
            self.count("dropped_mid")
            self.count_status(status)
            try:
                self.send(sock, part)
            except OSError:
                pass
            self.abort(sock, p["drop_reset"])
            self.log(req, client, status, "+".join(faults + ["drop_mid"]), started, len(part))
            return False

        self.count_status(status)
        head = build_head(status, reason, headers, len(body), req, extra)
        if len(body) < 65536:
            self.send(sock, head + body)
        else:
            self.send(sock, head)
            self.send(sock, body)
        self.log(req, client, status, "+".join(faults), started, len(head) + len(body))
        return req.keep_alive

    def rewrite_bulk(self, headers, body, p):
        """The rewritten _bulk answer body, or None when nothing was rewritten."""
        enc = ",".join(v for k, v in headers if k.lower() == "content-encoding").strip().lower()
        try:
            if enc in ("", "identity"):
                raw = body
            elif enc in ("gzip", "x-gzip"):
                raw = gzip.decompress(body)
            elif enc == "deflate":
                raw = zlib.decompress(body)
            else:
                raw = None
        except (OSError, EOFError, zlib.error):
            raw = None
        res = rewrite_bulk_json(raw, p["item_rate"], p["item_statuses"], p["rng"]) if raw is not None else None
        if res is None:
            self.count("bulk_rewrite_skipped")
            return None
        new, seen, rewritten = res
        self.count("bulk_items_seen", seen)
        if not rewritten:
            return None
        self.count("bulk_items_rewritten", rewritten)
        self.count("bulk_responses_rewritten")
        if enc in ("gzip", "x-gzip"):
            new = gzip.compress(new)
        elif enc == "deflate":
            new = zlib.compress(new)
        return new


class ClientHandler(socketserver.BaseRequestHandler):
    def handle(self):
        proxy = self.server.proxy
        sock = self.request
        client = "%s:%s" % self.client_address[:2]
        proxy.count("connections_total")
        proxy.count("connections_open")
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        rfile = sock.makefile("rb", buffering=65536)
        upstream = Upstream(proxy.up_host, proxy.up_port, proxy.upstream_timeout)
        try:
            while True:
                try:
                    req = read_request(rfile, sock, lambda n: proxy.count("bytes_out", n))
                except BadRequest as e:
                    proxy.count("bad_requests")
                    body = error_body(400, "faultproxy_bad_request", str(e))
                    try:
                        proxy.send(sock, build_head(400, None, [("content-type", "application/json")],
                                                    len(body), None) + body)
                    except OSError:
                        pass
                    break
                if req is None:
                    break
                if not proxy.serve(req, sock, upstream, client):
                    break
        except (ClientGone, OSError):
            pass
        finally:
            proxy.count("connections_open", -1)
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
    "GET /faults": "current fault settings",
    "PUT /faults": "replace the fault settings (JSON object; keys not given get their defaults)",
    "PATCH /faults": "change only the keys given",
    "POST /faults/reset": "turn every fault off",
    "GET /stats": "counters",
    "POST /stats/reset": "zero the counters",
}


class AdminHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server_version = "faultproxy-admin"

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
        allowed = {"/": ("GET",), "/faults": ("GET", "PUT", "PATCH"), "/faults/reset": ("POST",),
                   "/stats": ("GET",), "/stats/reset": ("POST",)}
        if path not in allowed:
            # drain any body so the connection stays usable
            n = int(self.headers.get("Content-Length") or 0)
            if n:
                self.rfile.read(n)
            return self.reply(404, {"error": "no such admin path %s" % path, "paths": ADMIN_HELP})
        if self.command not in allowed[path]:
            n = int(self.headers.get("Content-Length") or 0)
            if n:
                self.rfile.read(n)
            return self.reply(405, {"error": "%s %s is not supported" % (self.command, path),
                                    "paths": ADMIN_HELP}, [("Allow", ", ".join(allowed[path]))])
        if path == "/":
            return self.reply(200, {"upstream": proxy.upstream_url, "paths": ADMIN_HELP})
        if path == "/faults" and self.command == "GET":
            return self.reply(200, proxy.get_faults())
        if path == "/faults":
            try:
                update = self.body_json()
                base = DEFAULT_FAULTS if self.command == "PUT" else proxy.get_faults()
                new = validate_faults(update, base)
            except ValueError as e:
                return self.reply(400, {"error": str(e)})
            proxy.set_faults(new)
            return self.reply(200, new)
        if path == "/faults/reset":
            proxy.set_faults(dict(DEFAULT_FAULTS))
            return self.reply(200, proxy.get_faults())
        if path == "/stats":
            return self.reply(200, proxy.get_stats())
        if path == "/stats/reset":
            proxy.reset_stats()
            return self.reply(200, proxy.get_stats())

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
        raise SystemExit("faultproxy: %s must be HOST:PORT, not %r" % (what, text))
    host = host.strip("[]") or "127.0.0.1"
    return host, int(port)


def url_of(addr):
    host, port = addr[:2]
    return "http://%s:%d" % ("[%s]" % host if ":" in host else host, port)


def main(argv=None):
    ap = argparse.ArgumentParser(description="fault-injecting HTTP proxy in front of OpenSearch")
    ap.add_argument("--listen", required=True, help="HOST:PORT the proxy listens on (PORT 0: any free)")
    ap.add_argument("--upstream", required=True, help="http://HOST:PORT of the real OpenSearch node")
    ap.add_argument("--admin", required=True, help="HOST:PORT of the admin API (PORT 0: any free)")
    ap.add_argument("--state-file", help="JSON file of the fault settings: read at start if it "
                    "exists, rewritten at every change")
    ap.add_argument("--faults", help="initial fault settings (JSON object), applied over the state file")
    ap.add_argument("--ready-file", help="written once both ports listen: JSON with pid, url, admin")
    ap.add_argument("--upstream-timeout", type=float, default=300.0,
                    help="seconds to wait on the upstream (default 300)")
    ap.add_argument("--verbose", action="store_true", help="log one line per request to stderr")
    a = ap.parse_args(argv)

    faults = dict(DEFAULT_FAULTS)
    try:
        if a.state_file and os.path.exists(a.state_file) and os.path.getsize(a.state_file) > 0:
            with open(a.state_file) as f:
                faults = validate_faults(json.load(f), faults)
        if a.faults:
            faults = validate_faults(json.loads(a.faults), faults)
    except ValueError as e:
        raise SystemExit("faultproxy: bad fault settings: %s" % e)
    try:
        proxy = Proxy(a.upstream, faults, a.state_file, a.verbose, a.upstream_timeout)
    except ValueError as e:
        raise SystemExit("faultproxy: %s" % e)

    server = ProxyServer(parse_addr(a.listen, "--listen"), proxy)
    admin = AdminServer(parse_addr(a.admin, "--admin"), proxy)
    threading.Thread(target=admin.serve_forever, name="admin", daemon=True).start()

    def stop(signum, frame):
        raise SystemExit(0)
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    info = {"pid": os.getpid(), "url": url_of(server.server_address),
            "admin": url_of(admin.server_address), "upstream": a.upstream}
    if a.ready_file:
        tmp = "%s.tmp.%d" % (a.ready_file, os.getpid())
        with open(tmp, "w") as f:
            json.dump(info, f)
            f.write("\n")
        os.replace(tmp, a.ready_file)
    if a.verbose:
        sys.stderr.write("faultproxy: %s -> %s, admin %s\n" % (info["url"], a.upstream, info["admin"]))
        sys.stderr.flush()
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
        admin.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
