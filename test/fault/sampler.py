#!/usr/bin/python3
"""Checks, while faults are injected, that flusso never confirms its slot
past what OpenSearch acknowledged.

A canary row is updated every --interval seconds, one transaction each:
after each commit, pg_current_wal_lsn() is an upper bound U(n) of the
commit's LSN for counter value n.  Between updates the sampler reads the
slot's confirmed_flush_lsn C, then GETs the canary document from OpenSearch
(a real-time read).  Every value n with U(n) <= C was committed before C, so
flusso must have had it acknowledged before confirming C: the document must
hold at least the largest such n.  A smaller value is a violation.

Every sample is one JSON line in --out; SIGTERM ends the run and prints a
summary line.  Connection errors (PostgreSQL or OpenSearch restarting) skip
the sample and are counted.
"""
import argparse
import bisect
import json
import signal
import sys
import time
import urllib.request

import psycopg2


def lsn(text):
    hi, lo = text.split("/")
    return (int(hi, 16) << 32) | int(lo, 16)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dsn", required=True)
    ap.add_argument("--os-url", required=True, help="one or more comma-separated node URLs")
    ap.add_argument("--index", required=True, help="the canary index (alias)")
    ap.add_argument("--slot", default="flusso")
    ap.add_argument("--out", required=True)
    ap.add_argument("--interval", type=float, default=0.1)
    args = ap.parse_args()

    stop = []
    signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
    urls = args.os_url.split(",")
    bounds, values = [], []          # U(n) ascending, n
    stats = {"samples": 0, "checks": 0, "violations": 0, "pg_errors": 0, "os_errors": 0,
             "updates": 0}
    conn = None
    out = open(args.out, "a", buffering=1)

    def connect():
        c = psycopg2.connect(args.dsn, connect_timeout=3)
        c.autocommit = True
        return c

    def get_doc():
        for i in range(len(urls)):
            url = urls[(stats["samples"] + i) % len(urls)]
            try:
                with urllib.request.urlopen("%s/%s/_doc/1" % (url, args.index), timeout=3) as r:
                    return json.load(r)["_source"]["n"]
            except urllib.error.HTTPError as e:
                if e.code == 404:
                    return 0
            except Exception:
                pass
        return None

    while not stop:
        time.sleep(args.interval)
        try:
            if conn is None:
                conn = connect()
            cur = conn.cursor()
            cur.execute("UPDATE fault_canary SET n = n + 1 WHERE id = 1 RETURNING n")
            n = cur.fetchone()[0]
            cur.execute("SELECT pg_current_wal_lsn()")
            u = lsn(cur.fetchone()[0])
            bounds.append(u)
            values.append(n)
            stats["updates"] += 1
            cur.execute("SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = %s",
                        (args.slot,))
            row = cur.fetchone()
            if row is None or row[0] is None:
                continue
            c = lsn(row[0])
        except Exception:
            stats["pg_errors"] += 1
            try:
                conn.close()
            except Exception:
                pass
            conn = None
            continue
        got = get_doc()
        stats["samples"] += 1
        if got is None:
            stats["os_errors"] += 1
            continue
        k = bisect.bisect_right(bounds, c)
        must = values[k - 1] if k > 0 else 0
        stats["checks"] += 1
        ok = got >= must
        if not ok:
            stats["violations"] += 1
        out.write(json.dumps({"t": time.time(), "confirmed": "%X/%X" % (c >> 32, c & 0xFFFFFFFF),
                              "acknowledged": got, "must": must, "ok": ok}) + "\n")
    out.write(json.dumps({"summary": stats}) + "\n")
    out.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
