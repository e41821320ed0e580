#!/usr/bin/env python3
"""The raw limit: a plain _bulk loader (Python stdlib only).

Reads documents exported as "id<TAB>json" lines (psql -At -F '\t' over
flusso.documents(name)), builds every _bulk body in memory first (so that the
timing is OpenSearch's ingestion alone), then sends them with N threads, each
with its own keep-alive connection, as flusso does (batch 1000 documents,
4 requests in flight by default).  Prints one JSON object:

  {"docs": .., "send_s": .., "docs_per_s": .., "searchable_s": .., "bytes": ..}

send_s is from the first request to the last acknowledged one; searchable_s
adds the final _refresh until _count equals the number of documents.

Usage: bulkload.py --url URL --index NAME --docs FILE [--body FILE]
                   [--batch 1000] [--concurrency 4]
"""
import argparse
import http.client
import json
import queue
import sys
import threading
import time
import urllib.parse


def connect(url):
    u = urllib.parse.urlsplit(url)
    return http.client.HTTPConnection(u.hostname, u.port or 80, timeout=300)


def request(conn, method, path, body=None, ctype="application/json"):
    headers = {"Content-Type": ctype} if body is not None else {}
    conn.request(method, path, body=body, headers=headers)
    resp = conn.getresponse()
    data = resp.read()
    return resp.status, data


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--index", required=True)
    ap.add_argument("--docs", required=True)
    ap.add_argument("--body", help="index settings/mappings JSON to create the index with")
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--external-version", type=int, default=0,
                    help="send every action with this version and version_type external_gte, as flusso does")
    args = ap.parse_args()
    version = b""
    if args.external_version:
        version = b',"version":%d,"version_type":"external_gte"' % args.external_version

    # Build every bulk body up front.
    bodies = []
    lines = []
    ndocs = 0
    total_bytes = 0
    with open(args.docs, "rb") as f:
        for raw in f:
            raw = raw.rstrip(b"\n")
            if not raw:
                continue
            doc_id, doc = raw.split(b"\t", 1)
            lines.append(b'{"index":{"_id":' + json.dumps(doc_id.decode()).encode() + version + b"}}\n")
            lines.append(doc + b"\n")
            ndocs += 1
            if len(lines) == 2 * args.batch:
                bodies.append(b"".join(lines))
                lines = []
    if lines:
        bodies.append(b"".join(lines))
    total_bytes = sum(len(b) for b in bodies)

    conn = connect(args.url)
    request(conn, "DELETE", "/" + args.index)
    body = open(args.body, "rb").read() if args.body else b"{}"
    status, data = request(conn, "PUT", "/" + args.index, body)
    if status >= 300:
        sys.exit("cannot create index %s: %s %s" % (args.index, status, data[:500]))

    work = queue.Queue()
    for b in bodies:
        work.put(b)
    errors = []
    path = "/%s/_bulk" % args.index

    def worker():
        c = connect(args.url)
        while True:
            try:
                b = work.get_nowait()
            except queue.Empty:
                return
            st, resp = request(c, "POST", path, b, "application/x-ndjson")
            if st >= 300 or b'"errors":true' in resp[:200]:
                errors.append((st, resp[:300]))

    t0 = time.monotonic()
    threads = [threading.Thread(target=worker) for _ in range(args.concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    t1 = time.monotonic()
    count = -1
    while time.monotonic() - t1 < 600:
        request(conn, "POST", "/%s/_refresh" % args.index)
        st, data = request(conn, "GET", "/%s/_count" % args.index)
        count = json.loads(data).get("count", -1)
        if count >= ndocs:
            break
        time.sleep(0.05)
    t2 = time.monotonic()
    out = {
        "docs": ndocs, "requests": len(bodies), "bytes": total_bytes,
        "send_s": round(t1 - t0, 3), "docs_per_s": round(ndocs / (t1 - t0), 1),
        "searchable_s": round(t2 - t0, 3), "count": count,
        "errors": len(errors),
    }
    if errors:
        out["first_error"] = repr(errors[0])[:500]
    print(json.dumps(out))


if __name__ == "__main__":
    main()
