#!/usr/bin/env python3
"""Measuring helpers of the flusso benchmark (test/bench/run.sh runs them).

Runs under the benchmark's virtualenv (Python 3 stdlib plus psycopg2 and
redis, which PGSync brings).  Subcommands, each printing one JSON object:

  procmon     sample CPU (and memory) of process groups until SIGTERM
  cpu         CPU seconds per group between two times of a procmon file
  live        load generator that keeps the tool's backlog bounded, so the
              rate it settles at is the rate the tool sustains
  probe       commit-to-readable latency probes (marker commit, then
              realtime GET /index/_doc/id until the marker shows)
  sentinel    one probe; prints its delay (used to see that a tool drained)
  backlog     the tool's current backlog
  verify      compare a sample of documents with PostgreSQL
  put         merge a JSON value (stdin) into the results file under a key
  peak-rss    VmHWM / current RSS of pids
  memory      a backend's memory contexts (pg_log_backend_memory_contexts,
              read back from the server log) and its RssAnon (soak.sh)

The table and BENCHMARKS.md are made by report.py.
"""
import argparse
import http.client
import json
import os
import queue
import random
import re
import signal
import sys
import threading
import time
import urllib.parse
import uuid

CLK = os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------- utilities

def out(obj):
    print(json.dumps(obj), flush=True)


def percentile(values, p):
    if not values:
        return None
    v = sorted(values)
    k = (len(v) - 1) * p / 100.0
    lo = int(k)
    hi = min(lo + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (k - lo)


def pg_connect(dsn, autocommit=True):
    import psycopg2
    conn = psycopg2.connect(dsn)
    conn.autocommit = autocommit
    return conn


def pg_one(conn, sql, args=None):
    with conn.cursor() as cur:
        cur.execute(sql, args)
        row = cur.fetchone()
    return row


class OS:
    """A tiny keep-alive HTTP client of OpenSearch."""

    def __init__(self, url, timeout=60):
        u = urllib.parse.urlsplit(url)
        self.host, self.port = u.hostname, u.port or 80
        self.timeout = timeout
        self.conn = None

    def request(self, method, path, body=None):
        for attempt in range(3):
            try:
                if self.conn is None:
                    self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
                headers = {"Content-Type": "application/json"} if body is not None else {}
                if isinstance(body, (dict, list)):
                    body = json.dumps(body)
                self.conn.request(method, path, body=body, headers=headers)
                r = self.conn.getresponse()
                return r.status, r.read()
            except (http.client.HTTPException, OSError):
                try:
                    self.conn.close()
                except Exception:
                    pass
                self.conn = None
                if attempt == 2:
                    raise
                time.sleep(0.05)

    def json(self, method, path, body=None):
        st, data = self.request(method, path, body)
        return st, json.loads(data) if data else None


# ---------------------------------------------------------------- procmon

def read_stat(pid):
    try:
        with open("/proc/%d/stat" % pid, "rb") as f:
            s = f.read().decode("ascii", "replace")
    except OSError:
        return None
    rp = s.rfind(")")
    fields = s[rp + 2:].split()
    # fields[0] is state (field 3); ppid is field 4, utime 14, stime 15
    return int(fields[1]), int(fields[11]) + int(fields[12])


def read_cmdline(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return f.read().replace(b"\0", b" ").decode("utf-8", "replace").strip()
    except OSError:
        return ""


def read_status_kb(pid, keys=("VmRSS", "VmHWM", "RssAnon", "RssFile", "RssShmem")):
    res = {}
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in keys:
                    res[k] = int(v.split()[0])
    except OSError:
        return None
    return res


def total_busy_ticks():
    with open("/proc/stat") as f:
        parts = f.readline().split()
    v = [int(x) for x in parts[1:]]
    # user nice system idle iowait irq softirq steal
    return v[0] + v[1] + v[2] + v[5] + v[6] + (v[7] if len(v) > 7 else 0)


def cmd_procmon(a):
    """Group processes and sample their cumulative CPU.

    Groups: flusso_worker (the 'flusso sync' backend), flusso_other (its
    launcher), postgres (every other process of our postmaster), opensearch
    (our JVM), redis, pgsync (processes of our virtualenv's pgsync, bootstrap,
    parallel_sync and their children), loadgen (pgbench, bench.py live/probe),
    harness (everything else below run.sh), foreign (all the rest of the
    machine: other users of these two cores).
    """
    roots = {}
    for spec in a.root:
        name, _, pid = spec.partition(":")
        if pid:
            roots[int(pid)] = name
    venv = a.venv
    seen = {}          # pid -> [group, base_ticks, last_ticks]
    special = {}       # pid -> group by command line, or None
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    busy0 = total_busy_ticks()
    first = True
    rss_pids = {}
    with open(a.out, "a") as fout:
        while True:
            procs = {}
            for d in os.listdir("/proc"):
                if d.isdigit():
                    st = read_stat(int(d))
                    if st:
                        procs[int(d)] = st
            children = {}
            for pid, (ppid, _) in procs.items():
                children.setdefault(ppid, []).append(pid)
            group_of = {}

            def mark(pid, g):
                stack = [pid]
                while stack:
                    p = stack.pop()
                    if p in group_of:
                        continue
                    group_of[p] = g
                    stack.extend(children.get(p, []))

            # the subtrees of our roots (postmaster, OpenSearch, Redis, run.sh);
            # within them, some processes are told apart by their command
            # line (cached): the flusso worker, pgbench and the load
            # generator, PGSync.  A process keeps its first group.
            ours = {}
            for rpid, name in roots.items():
                stack = [rpid] if rpid in procs else []
                while stack:
                    p = stack.pop()
                    if p in ours:
                        continue
                    ours[p] = name
                    stack.extend(children.get(p, []))
            for pid in procs:
                if pid not in special:
                    c = read_cmdline(pid)
                    words = c.split(" ")
                    cl = None
                    if venv and venv + "/bin/" in c and not any(w.endswith("bench.py") for w in words[:3]):
                        cl = "pgsync"
                    elif pid in ours and ours[pid] == "postgres":
                        if c.startswith("postgres: flusso sync"):
                            cl = "flusso_worker"
                        elif c.startswith("postgres: flusso"):
                            cl = "flusso_other"
                    elif pid in ours and ours[pid] == "harness":
                        if words[0].endswith("pgbench") or (
                                any(w.endswith("bench.py") for w in words[:3]) and
                                any(w in ("live", "probe", "sentinel") for w in words[:4])):
                            cl = "loadgen"
                    special[pid] = cl
                if special[pid]:
                    mark(pid, special[pid])
            for rpid, name in roots.items():
                if rpid in procs:
                    mark(rpid, name)
            for pid in procs:
                if pid in seen and pid in group_of:
                    group_of[pid] = seen[pid][0]
            # postgres backends serving pgsync / the load generator stay "postgres"
            now_busy = total_busy_ticks()
            t = time.time()
            for pid, (ppid, ticks) in procs.items():
                g = group_of.get(pid)
                if g is None:
                    continue
                if pid in seen:
                    seen[pid][2] = ticks
                else:
                    seen[pid] = [g, ticks if first else 0, ticks]
            first = False
            groups = {}
            for pid, (g, base, last) in seen.items():
                groups[g] = groups.get(g, 0) + (last - base)
            ours = sum(groups.values())
            rec = {"t": t, "busy": (now_busy - busy0) / CLK,
                   "cpu": {g: v / CLK for g, v in groups.items()}}
            rec["cpu"]["foreign"] = max(0.0, (now_busy - busy0 - ours) / CLK)
            # memory of the flusso worker and of pgsync's processes
            mem = {}
            for pid, (ppid, _) in procs.items():
                g = group_of.get(pid)
                if g in ("flusso_worker", "pgsync", "redis"):
                    s = read_status_kb(pid)
                    if s:
                        m = mem.setdefault(g, {"VmRSS": 0, "RssAnon": 0, "RssShmem": 0, "VmHWM": 0, "pids": 0})
                        for k in ("VmRSS", "RssAnon", "RssShmem", "VmHWM"):
                            m[k] += s.get(k, 0)
                        m["pids"] += 1
            rec["mem_kb"] = mem
            fout.write(json.dumps(rec) + "\n")
            fout.flush()
            if stop.wait(a.interval):
                break


def load_samples(path):
    res = []
    with open(path) as f:
        for line in f:
            try:
                res.append(json.loads(line))
            except ValueError:
                pass
    return res


def nearest(samples, t):
    best = None
    for s in samples:
        if best is None or abs(s["t"] - t) < abs(best["t"] - t):
            best = s
    return best


def cmd_cpu(a):
    s = load_samples(a.file)
    if not s:
        out({})
        return
    s0 = nearest(s, a.since) if a.since else s[0]
    s1 = nearest(s, a.until) if a.until else s[-1]
    wall = s1["t"] - s0["t"]
    groups = set(s0["cpu"]) | set(s1["cpu"])
    res = {"wall_s": round(wall, 2), "cores": {}, "cpu_s": {}}
    for g in sorted(groups):
        d = s1["cpu"].get(g, 0) - s0["cpu"].get(g, 0)
        res["cpu_s"][g] = round(d, 2)
        res["cores"][g] = round(d / wall, 3) if wall > 0 else None
    peaks = {}
    for x in s:
        if s0["t"] <= x["t"] <= s1["t"]:
            for g, m in x.get("mem_kb", {}).items():
                p = peaks.setdefault(g, {})
                for k, v in m.items():
                    p[k] = max(p.get(k, 0), v)
    res["mem_peak_kb"] = peaks
    out(res)


# ---------------------------------------------------------------- backlog

def pgsync_status(path):
    """(notifications received, queued in Redis, documents written) from the
    last status line PGSync's daemon prints every LOG_INTERVAL:
    'Sync DB:INDEX Xlog: [0] => Db: [22,409] => Redis: [21,409] => OpenSearch: [528]...'"""
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            size = f.tell()
            f.seek(max(0, size - 8192))
            tail = f.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return None
    for line in reversed(tail):
        if line.startswith("Sync ") and "OpenSearch: [" in line and line.endswith("..."):
            nums = []
            for part in line.split("[")[1:]:
                nums.append(int(part.split("]")[0].replace(",", "")))
            if len(nums) >= 4:
                return nums[1], nums[2], nums[3]
    return None


class Backlog:
    """The tool's own progress: flusso.status.changes_committed (row changes
    acknowledged by OpenSearch) or the documents PGSync's daemon reports as
    written (its status line).  backlog = row changes committed by the load
    minus those."""

    def __init__(self, a):
        self.tool = a.tool
        self.conn = pg_connect(a.dsn)
        self.redis = None
        self.log = getattr(a, "pgsync_log", None)
        if self.tool == "pgsync":
            import redis
            self.redis = redis.Redis(host="127.0.0.1", port=a.redis_port)
            self.key = a.redis_key
        self.base = self.done_count()

    def done_count(self):
        if self.tool == "flusso":
            return int(pg_one(self.conn, "SELECT changes_committed FROM flusso.status WHERE database = current_database()")[0])
        st = None
        for _ in range(50):
            st = pgsync_status(self.log)
            if st:
                break
            time.sleep(0.1)
        return st[2] if st else 0

    def slot_lag(self):
        row = pg_one(self.conn, "SELECT coalesce(max(pg_current_wal_lsn() - confirmed_flush_lsn), 0)::bigint "
                                "FROM pg_replication_slots WHERE database = current_database()")
        return int(row[0])

    def sample(self, produced):
        """(backlog in changes, processed changes, slot lag bytes or Redis queue)"""
        done = self.done_count() - self.base
        if self.tool == "flusso":
            return max(0, produced - done), done, self.slot_lag()
        return max(0, produced - done), done, self.redis.llen(self.key)


def cmd_backlog(a):
    b = Backlog(a)
    if a.tool == "flusso":
        row = pg_one(b.conn, "SELECT changes_in_flight, changes_captured, changes_committed, documents_built "
                             "FROM flusso.status WHERE database = current_database()")
        out({"in_flight": row[0], "captured": row[1], "committed": row[2], "documents_built": row[3],
             "slot_lag_bytes": b.slot_lag()})
    else:
        st = pgsync_status(b.log)
        out({"queue": b.redis.llen(b.key), "received": st and st[0], "written": st and st[2],
             "slot_lag_bytes": b.slot_lag()})


# ---------------------------------------------------------------- live load

def cmd_live(a):
    """Closed loop: T connections commit transactions of R root + R child
    updates as fast as they can while the tool's backlog is under --limit
    row changes, and wait while it is over.  The commit rate then settles at
    what the tool sustains, with a bounded (not growing) lag."""
    rows = a.rows
    n, items = a.n, a.items
    prefix = "L" + a.tool[0]      # Lf..., Lp...: the users this tool's live phase renamed
    backlog = Backlog(a)
    lock = threading.Lock()
    state = {"produced": 0, "commits": 0, "errors": 0, "backlog": 0, "waits": 0}
    stop = threading.Event()
    gate = threading.Event()
    gate.set()

    def worker(seed):
        rnd = random.Random(seed)
        conn = pg_connect(a.dsn)
        cur = conn.cursor()
        while not stop.is_set():
            if not gate.wait(0.05):
                continue
            users = sorted(rnd.sample(range(1, n + 1), rows))
            its = sorted(rnd.sample(range(1, items + 1), rows))
            sql = ["BEGIN;"]
            for u in users:
                sql.append("UPDATE users SET name = '%s%d-%d' WHERE id = %d;" % (prefix, u, rnd.getrandbits(30), u))
            for i in its:
                sql.append("UPDATE order_items SET qty = qty + 1 WHERE id = %d;" % i)
            sql.append("COMMIT;")
            try:
                cur.execute("".join(sql))
            except Exception:
                with lock:
                    state["errors"] += 1
                try:
                    conn.rollback()
                except Exception:
                    conn = pg_connect(a.dsn)
                    cur = conn.cursor()
                continue
            with lock:
                state["produced"] += 2 * rows
                state["commits"] += 1

    series = []
    threads = [threading.Thread(target=worker, args=(k,), daemon=True) for k in range(a.threads)]
    t0 = time.time()
    for th in threads:
        th.start()
    next_rec = t0
    max_backlog = 0
    max_lag = 0
    while True:
        now = time.time()
        if now - t0 >= a.seconds:
            break
        with lock:
            produced = state["produced"]
        bl, done, lag = backlog.sample(produced)
        max_backlog = max(max_backlog, bl)
        max_lag = max(max_lag, lag)
        if bl >= a.limit:
            if gate.is_set():
                state["waits"] += 1
            gate.clear()
        else:
            gate.set()
        if now >= next_rec:
            series.append({"t": round(now - t0, 2), "produced": produced, "backlog": bl,
                           "processed": done, "lag": lag})
            next_rec += 1.0
        time.sleep(a.poll)
    stop.set()
    gate.set()
    for th in threads:
        th.join(timeout=30)
    t1 = time.time()
    with lock:
        produced = state["produced"]
    bl, done, lag = backlog.sample(produced)
    series.append({"t": round(t1 - t0, 2), "produced": produced, "backlog": bl, "processed": done,
                   "lag": lag})
    dur = t1 - t0

    # rates per 10 s window of what the tool processed (produced - backlog)
    windows = []
    for k in range(0, int(dur), 10):
        s0 = nearest(series, k)
        s1 = nearest(series, min(k + 10, dur))
        if s1["t"] > s0["t"]:
            windows.append(round((s1["processed"] - s0["processed"]) / (s1["t"] - s0["t"]), 1))
    out({"tool": a.tool, "seconds": round(dur, 2), "commits": state["commits"], "changes": produced,
         "errors": state["errors"], "backlog_end": bl, "backlog_max": max_backlog,
         "lag_max": max_lag, "lag_unit": "slot bytes" if a.tool == "flusso" else "Redis queue",
         "gate_closed": state["waits"],
         "commit_rate": round(state["commits"] / dur, 1),
         "processed_rate": round(done / dur, 1), "processed": done,
         "window_rates": windows, "limit": a.limit, "rows_per_kind": rows,
         "t_start": t0, "t_end": t1, "series": series})


# ---------------------------------------------------------------- probes

class ProbeTargets:
    def __init__(self, conn, users):
        self.users = users
        # one order item of each probe user (its first order's first item)
        with conn.cursor() as cur:
            cur.execute("""SELECT DISTINCT ON (o.user_id) o.user_id, i.id
                             FROM orders o JOIN order_items i ON i.order_id = o.id
                            WHERE o.user_id = ANY(%s) ORDER BY o.user_id, o.id, i.id""", (users,))
            self.item = dict(cur.fetchall())


def commit_marker(cur, conn, kind, user, item, marker):
    if kind == "root":
        cur.execute("UPDATE users SET name = %s WHERE id = %s", (marker, user))
    else:
        cur.execute("UPDATE order_items SET sku = %s WHERE id = %s", (marker, item))
    conn.commit()


def wait_visible(osc, index, doc_id, marker, poll, timeout, t_commit):
    path = "/%s/_doc/%s" % (index, doc_id)
    needle = marker.encode()
    deadline = t_commit + timeout
    polls = 0
    while True:
        st, data = osc.request("GET", path)
        polls += 1
        now = time.monotonic()
        if st == 200 and needle in data:
            return now - t_commit, polls
        if now > deadline:
            return None, polls
        time.sleep(poll)


def marker_shown(src, kind, marker):
    if not src:
        return False
    if kind == "root":
        return src.get("name") == marker
    for o in src.get("orders") or []:
        for i in o.get("items") or []:
            if i.get("sku") == marker:
                return True
    return False


def cmd_probe(a):
    """Commit markers at a fixed rate; one poller thread fetches every
    pending document with one realtime _mget every --poll seconds, so the
    probing load on OpenSearch stays the same however late the tool is."""
    conn = pg_connect(a.dsn, autocommit=False)
    users = list(range(a.first_user, a.first_user + a.users))
    targets = ProbeTargets(conn, users)
    users = [u for u in users if u in targets.item]
    cur = conn.cursor()
    results = []
    pending = {}
    lock = threading.Lock()
    sending_done = threading.Event()
    run_id = uuid.uuid4().hex[:8]
    path = "/%s/_mget?_source_includes=name,orders.items.sku" % a.index
    stats = {"mgets": 0}

    def poller():
        osc = OS(a.url)
        while True:
            t_cycle = time.monotonic()
            with lock:
                items = list(pending.items())
            if not items:
                if sending_done.is_set():
                    return
                time.sleep(a.poll)
                continue
            ids = sorted(set(str(v[0]) for _, v in items))
            st, data = osc.request("POST", path, {"ids": ids})
            now = time.monotonic()
            stats["mgets"] += 1
            src = {}
            if st == 200:
                for d in json.loads(data).get("docs", []):
                    if d.get("found"):
                        src[d["_id"]] = d.get("_source")
            with lock:
                for k, (user, kind, marker, t_commit, t_sched, commit_ms) in items:
                    lat = None
                    if marker_shown(src.get(str(user)), kind, marker):
                        lat = now - t_commit
                    elif now - t_commit <= a.timeout:
                        continue
                    del pending[k]
                    results.append({"k": k, "kind": kind, "t": round(t_sched, 3),
                                    "latency_ms": None if lat is None else round(lat * 1000, 2),
                                    "commit_ms": round(commit_ms, 2)})
            spent = time.monotonic() - t_cycle
            if spent < a.poll:
                time.sleep(a.poll - spent)

    th = threading.Thread(target=poller, daemon=True)
    th.start()
    interval = 1.0 / a.rate
    t0 = time.monotonic()
    k = 0
    while True:
        t_sched = t0 + k * interval
        if t_sched - t0 >= a.seconds:
            break
        delay = t_sched - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        user = users[k % len(users)]
        kind = "root" if k % 2 == 0 else "child"
        marker = "P%s-%d" % (run_id, k)
        tc0 = time.monotonic()
        commit_marker(cur, conn, kind, user, targets.item[user], marker)
        t_commit = time.monotonic()
        with lock:
            pending[k] = (user, kind, marker, t_commit, t_sched - t0, (t_commit - tc0) * 1000)
        k += 1
    sent_s = time.monotonic() - t0
    sending_done.set()
    th.join(a.timeout + 10)
    lats = [r["latency_ms"] for r in results if r["latency_ms"] is not None]
    timeouts = sum(1 for r in results if r["latency_ms"] is None)
    half = sorted(results, key=lambda r: r["k"])
    first = [r["latency_ms"] for r in half[: len(half) // 2] if r["latency_ms"] is not None]
    second = [r["latency_ms"] for r in half[len(half) // 2:] if r["latency_ms"] is not None]
    res = {"probes": len(results), "probe_rate": round(k / sent_s, 2), "timeouts": timeouts,
           "p50_ms": percentile(lats, 50), "p95_ms": percentile(lats, 95), "p99_ms": percentile(lats, 99),
           "max_ms": max(lats) if lats else None, "mean_ms": sum(lats) / len(lats) if lats else None,
           "p50_first_half_ms": percentile(first, 50), "p50_second_half_ms": percentile(second, 50),
           "root_p50_ms": percentile([r["latency_ms"] for r in results if r["kind"] == "root" and r["latency_ms"] is not None], 50),
           "child_p50_ms": percentile([r["latency_ms"] for r in results if r["kind"] == "child" and r["latency_ms"] is not None], 50),
           "commit_p50_ms": percentile([r["commit_ms"] for r in results], 50),
           "mget_requests": stats["mgets"], "poll_ms": a.poll * 1000, "timeout_s": a.timeout}
    for key in list(res):
        if isinstance(res[key], float):
            res[key] = round(res[key], 2)
    if a.samples:
        with open(a.samples, "w") as f:
            json.dump(sorted(results, key=lambda r: r["k"]), f)
    out(res)


def cmd_sentinel(a):
    conn = pg_connect(a.dsn, autocommit=False)
    cur = conn.cursor()
    marker = "S%s" % uuid.uuid4().hex[:12]
    commit_marker(cur, conn, "root", a.id, None, marker)
    t = time.monotonic()
    lat, polls = wait_visible(OS(a.url), a.index, a.id, marker, 0.005, a.timeout, t)
    out({"visible_s": None if lat is None else round(lat, 3), "marker": marker})
    if lat is None:
        sys.exit(1)


def cmd_pgsync_drain(a):
    """Wait until PGSync caught up: its Redis queue is empty and every change
    it received is written (received - written back at its idle value, or
    written not moving for 15 s with an empty queue), then a marker committed
    now must become readable.  PGSync's two workers take 1,000 queued changes
    at a time each, so a marker alone can overtake older changes."""
    import redis
    r = redis.Redis(host="127.0.0.1", port=a.redis_port)
    t0 = time.monotonic()
    deadline = t0 + a.timeout
    last_written, since = None, time.monotonic()
    ok = False
    while time.monotonic() < deadline:
        st = pgsync_status(a.pgsync_log)
        q = r.llen(a.redis_key)
        if st:
            received, _, written = st
            if written != last_written:
                last_written, since = written, time.monotonic()
            if q == 0 and (received - written <= a.base or time.monotonic() - since > 15):
                ok = True
                break
        time.sleep(0.2)
    res = {"caught_up": ok, "status": pgsync_status(a.pgsync_log), "queue": r.llen(a.redis_key)}
    if ok:
        conn = pg_connect(a.dsn, autocommit=False)
        marker = "S%s" % uuid.uuid4().hex[:12]
        commit_marker(conn.cursor(), conn, "root", a.id, None, marker)
        t = time.monotonic()
        lat, _ = wait_visible(OS(a.url), a.index, a.id, marker, 0.005, max(1, deadline - t), t)
        ok = lat is not None
    res.update({"drained": ok, "seconds": round(time.monotonic() - t0, 3)})
    out(res)
    if not ok:
        sys.exit(1)


def cmd_pgsync_lag(a):
    st = pgsync_status(a.pgsync_log)
    out({"received": st and st[0], "queued": st and st[1], "written": st and st[2],
         "lag": st and st[0] - st[2]})


# ---------------------------------------------------------------- verify

def cmd_verify(a):
    """Compare name and the items' quantities of a random sample of users."""
    conn = pg_connect(a.dsn)
    with conn.cursor() as cur:
        cur.execute("SELECT id FROM users WHERE name LIKE ANY (%s) ORDER BY random() LIMIT %s",
                    (a.like, a.sample))
        ids = [r[0] for r in cur.fetchall()]
        if not ids:
            cur.execute("SELECT id FROM users ORDER BY random() LIMIT %s", (a.sample,))
            ids = [r[0] for r in cur.fetchall()]
        cur.execute("""SELECT u.id, u.name,
                              (SELECT coalesce(array_agg(i.qty ORDER BY i.qty), '{}')
                                 FROM orders o JOIN order_items i ON i.order_id = o.id
                                WHERE o.user_id = u.id)
                         FROM users u WHERE u.id = ANY(%s)""", (ids,))
        want = {str(r[0]): (r[1], list(r[2])) for r in cur.fetchall()}
    osc = OS(a.url)
    st, res = osc.json("POST", "/%s/_mget" % a.index, {"ids": list(want)})
    bad = []
    for d in res.get("docs", []):
        w = want.get(d["_id"])
        if not d.get("found"):
            bad.append({"id": d["_id"], "why": "missing"})
            continue
        src = d["_source"]
        qty = sorted(i.get("qty") for o in src.get("orders") or [] for i in o.get("items") or [])
        if src.get("name") != w[0]:
            bad.append({"id": d["_id"], "why": "name", "pg": w[0], "os": src.get("name")})
        elif qty != w[1]:
            bad.append({"id": d["_id"], "why": "items.qty"})
    out({"checked": len(want), "mismatches": len(bad), "examples": bad[:3]})


# ---------------------------------------------------------------- misc

def cmd_put(a):
    value = json.load(sys.stdin) if a.value is None else json.loads(a.value)
    try:
        with open(a.file) as f:
            data = json.load(f)
    except (OSError, ValueError):
        data = {}
    node = data
    parts = a.key.split(".")
    for p in parts[:-1]:
        node = node.setdefault(p, {})
    node[parts[-1]] = value
    tmp = a.file + ".tmp"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=1, sort_keys=True)
    os.replace(tmp, a.file)


def cmd_peak_rss(a):
    res = {}
    for pid in a.pids:
        s = read_status_kb(int(pid))
        if s:
            res[pid] = s
    tot = {k: sum(v.get(k, 0) for v in res.values()) for k in ("VmHWM", "VmRSS", "RssAnon", "RssShmem")}
    out({"pids": res, "sum_kb": tot})


# ---------------------------------------------------------------- memory

MEM_TOP = re.compile(r"level: 0; TopMemoryContext: (\d+) total in \d+ blocks; \d+ free \(\d+ chunks\); (\d+) used")
MEM_GRAND = re.compile(r"Grand total: (\d+) bytes in \d+ blocks; \d+ free \(\d+ chunks\); (\d+) used")
MEM_CONTEXT = re.compile(r"level: (\d+); ([^:]+): (\d+) total in \d+ blocks; \d+ free \(\d+ chunks\); (\d+) used")


def cmd_memory(a):
    """Ask a backend to log its memory contexts; parse them from the log."""
    import subprocess
    offset = os.path.getsize(a.log)
    subprocess.run([a.psql, "-X", "-q", "-At", "-d", a.dsn, "-c",
                    "SELECT pg_log_backend_memory_contexts(%d)" % a.pid],
                   check=True, stdout=subprocess.DEVNULL)
    tag = "[%d]" % a.pid
    res = None
    deadline = time.time() + a.timeout
    while time.time() < deadline:
        with open(a.log, errors="replace") as f:
            f.seek(offset)
            lines = [l for l in f.read().split("\n") if tag in l]
        top = grand = None
        contexts = {}
        for line in lines:
            m = MEM_TOP.search(line)
            if m:
                top = (int(m.group(1)), int(m.group(2)))
            m = MEM_CONTEXT.search(line)
            if m and int(m.group(1)) == 1:
                name = m.group(2)
                contexts[name] = contexts.get(name, 0) + int(m.group(4))
            m = MEM_GRAND.search(line)
            if m:
                grand = (int(m.group(1)), int(m.group(2)))
        if top and grand:
            res = {"pid": a.pid, "top_total": top[0], "top_used": top[1],
                   "grand_total": grand[0], "grand_used": grand[1],
                   "children_used": dict(sorted(contexts.items(), key=lambda kv: -kv[1])[:12])}
            break
        time.sleep(0.1)
    if res is None:
        sys.exit("no memory context dump of PID %d in %s" % (a.pid, a.log))
    res.update({k: v for k, v in (read_status_kb(a.pid) or {}).items()})
    out(res)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)

    p = sub.add_parser("procmon")
    p.add_argument("--out", required=True)
    p.add_argument("--interval", type=float, default=0.5)
    p.add_argument("--root", action="append", default=[], help="group:pid (with its subtree)")
    p.add_argument("--venv", default="")
    p.set_defaults(fn=cmd_procmon)

    p = sub.add_parser("cpu")
    p.add_argument("file")
    p.add_argument("--since", type=float)
    p.add_argument("--until", type=float)
    p.set_defaults(fn=cmd_cpu)

    def tool_args(p):
        p.add_argument("--dsn", required=True)
        p.add_argument("--tool", choices=["flusso", "pgsync"], required=True)
        p.add_argument("--redis-port", type=int, default=0)
        p.add_argument("--redis-key", default="")
        p.add_argument("--pgsync-log", default="", help="PGSync daemon's stdout (its status lines)")

    p = sub.add_parser("backlog")
    tool_args(p)
    p.set_defaults(fn=cmd_backlog)

    p = sub.add_parser("live")
    tool_args(p)
    p.add_argument("--seconds", type=float, default=60)
    p.add_argument("--threads", type=int, default=4)
    p.add_argument("--rows", type=int, default=5, help="root rows and child rows per transaction")
    p.add_argument("--limit", type=int, default=20000, help="backlog (row changes) above which the load pauses")
    p.add_argument("--poll", type=float, default=0.1)
    p.add_argument("--n", type=int, required=True, help="users 1..n are updated")
    p.add_argument("--items", type=int, required=True, help="order_items 1..items are updated")
    p.set_defaults(fn=cmd_live)

    p = sub.add_parser("probe")
    p.add_argument("--dsn", required=True)
    p.add_argument("--url", required=True)
    p.add_argument("--index", required=True)
    p.add_argument("--rate", type=float, default=20)
    p.add_argument("--seconds", type=float, default=20)
    p.add_argument("--first-user", type=int, required=True)
    p.add_argument("--users", type=int, default=500)
    p.add_argument("--poll", type=float, default=0.005)
    p.add_argument("--timeout", type=float, default=30)
    p.add_argument("--samples", help="write every probe here")
    p.set_defaults(fn=cmd_probe)

    p = sub.add_parser("sentinel")
    p.add_argument("--dsn", required=True)
    p.add_argument("--url", required=True)
    p.add_argument("--index", required=True)
    p.add_argument("--id", type=int, required=True)
    p.add_argument("--timeout", type=float, default=600)
    p.set_defaults(fn=cmd_sentinel)

    p = sub.add_parser("pgsync-drain")
    p.add_argument("--dsn", required=True)
    p.add_argument("--url", required=True)
    p.add_argument("--index", required=True)
    p.add_argument("--id", type=int, required=True)
    p.add_argument("--pgsync-log", required=True)
    p.add_argument("--redis-port", type=int, required=True)
    p.add_argument("--redis-key", required=True)
    p.add_argument("--base", type=int, default=0, help="received - written when PGSync is idle")
    p.add_argument("--timeout", type=float, default=300)
    p.set_defaults(fn=cmd_pgsync_drain)

    p = sub.add_parser("pgsync-lag")
    p.add_argument("--pgsync-log", required=True)
    p.set_defaults(fn=cmd_pgsync_lag)

    p = sub.add_parser("verify")
    p.add_argument("--dsn", required=True)
    p.add_argument("--url", required=True)
    p.add_argument("--index", required=True)
    p.add_argument("--sample", type=int, default=500)
    p.add_argument("--like", nargs="+", default=["L%"])
    p.set_defaults(fn=cmd_verify)

    p = sub.add_parser("put")
    p.add_argument("file")
    p.add_argument("key")
    p.add_argument("value", nargs="?")
    p.set_defaults(fn=cmd_put)

    p = sub.add_parser("peak-rss")
    p.add_argument("pids", nargs="+")
    p.set_defaults(fn=cmd_peak_rss)

    p = sub.add_parser("memory")
    p.add_argument("--dsn", required=True)
    p.add_argument("--pid", type=int, required=True)
    p.add_argument("--log", required=True, help="the server log (stderr of the postmaster)")
    p.add_argument("--psql", default="psql")
    p.add_argument("--timeout", type=float, default=30)
    p.set_defaults(fn=cmd_memory)

    a = ap.parse_args()
    a.fn(a)


if __name__ == "__main__":
    main()
