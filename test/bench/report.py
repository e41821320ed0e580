#!/usr/bin/env python3
"""Turns the benchmark's results.json into the table (stdout) and BENCHMARKS.md.

Usage: report.py --results FILE [--write BENCHMARKS.md]

BENCHMARKS.md is rewritten up to the line NOTES_MARKER; whatever follows
that line (notes written by hand after a run) is kept.
"""
import argparse
import json
import os

NOTES_MARKER = "<!-- everything below this line is kept when run.sh rewrites the file -->"


def g(d, path, default=None):
    for p in path.split("."):
        if not isinstance(d, dict) or p not in d:
            return default
        d = d[p]
    return d


def num(v, digits=0, unit=""):
    if v is None:
        return "–"
    if isinstance(v, str):
        return v
    if digits == 0:
        s = "{:,.0f}".format(v)
    else:
        s = "{:,.{}f}".format(v, digits)
    return s + unit


def ratio(a, b, digits=2):
    if a is None or b in (None, 0):
        return "–"
    return "{:.{}f}×".format(a / b, digits)


def lat(step):
    if not step:
        return "–"
    if "skipped" in step:
        return step["skipped"]
    s = "{} / {} / {}".format(num(step.get("p50_ms")), num(step.get("p95_ms")), num(step.get("p99_ms")))
    extra = []
    if step.get("timeouts"):
        extra.append("{} of {} probes timed out (30 s)".format(step["timeouts"], step["probes"]))
    if step.get("target_rate") == "probe":
        extra.append("{:g} probes/s".format(step.get("probe_rate") or 0))
    elif step.get("commit_rate") is not None:
        extra.append("{:,.0f} commits/s reached".format(step["commit_rate"]))
    if step.get("drain_s") == -1:
        extra.append("did not catch up")
    return s + (" (" + "; ".join(extra) + ")" if extra else "")


def met(ok):
    if ok is None:
        return "not measured"
    return "**met**" if ok else "**not met**"


def build(r):
    m = r.get("meta", {})
    n = m.get("n")
    lines = []
    bf_f = g(r, "backfill.flusso.docs_per_s")
    bf_full = g(r, "backfill.flusso_full.docs_per_s")
    bf_p = g(r, "backfill.pgsync.docs_per_s")
    raw = g(r, "raw.docs_per_s")
    lv_f = g(r, "live.flusso.sustained_per_s")
    lv_p = g(r, "live.pgsync.sustained_per_s")
    fp_f = g(r, "footprint.flusso.vmhwm_mb")
    fp_p = g(r, "footprint.pgsync.vmhwm_mb")
    idle_f = g(r, "idle.flusso.pct_of_core")
    idle_p = g(r, "idle.pgsync.pct_of_core")
    sc = g(r, "scale.flusso.docs_per_s")
    sc_n = g(r, "scale.n")

    rows = []
    rows.append(("Raw limit: plain `_bulk` loader, docs/s (batch 1000, 4 in flight)", "–", "–", num(raw), "–", "–"))
    rows.append(("Backfill, docs/s until all searchable (common definition)", num(bf_f), num(bf_p), num(raw),
                 ratio(bf_f, raw), ratio(bf_f, bf_p, 1)))
    rows.append(("Backfill, wall time until `_count` = N (s)", num(g(r, "backfill.flusso.wall_s"), 1),
                 num(g(r, "backfill.pgsync.wall_s"), 1) + (" (bootstrap {} + sync {})".format(
                     num(g(r, "backfill.pgsync.bootstrap_s"), 1), num(g(r, "backfill.pgsync.sync_s"), 1))
                     if g(r, "backfill.pgsync") else ""),
                 num(g(r, "raw.searchable_s"), 1), "–", "–"))
    def per_cpu(key, groups):
        c = g(r, key + ".cpu.cpu_s")
        docs = g(r, key + ".docs")
        if not c or not docs:
            return None
        used = sum(c.get(x, 0) for x in groups)
        return docs / used if used else None

    pc_f = per_cpu("backfill.flusso", ["flusso_worker", "flusso_other", "postgres", "opensearch"])
    pc_p = per_cpu("backfill.pgsync", ["pgsync", "postgres", "opensearch", "redis"])
    pc_r = per_cpu("raw", ["opensearch", "harness"])
    rows.append(("Backfill, documents per CPU-second of its own processes (incl. PostgreSQL, OpenSearch; "
                 "independent of other load on the machine)", num(pc_f), num(pc_p), num(pc_r),
                 ratio(pc_f, pc_r), ratio(pc_f, pc_p, 1)))
    rows.append(("Backfill docs/s on the freshly started OpenSearch (the run's first documents, cold JIT; common definition)",
                 num(g(r, "backfill.flusso_cold.docs_per_s")), "–", "–", "–", "–"))
    rows.append(("Backfill docs/s, flusso's full definition (`users_index.json`: + filter, expression, order_by, count, sum)",
                 num(bf_full), "cannot express it", "–", "–", "–"))
    rows.append(("`flusso.documents()` alone (the SQL build, no OpenSearch), docs/s", num(g(r, "export.docs_per_s")),
                 "–", "–", "–", "–"))
    def sustained(tool, v):
        if v is None:
            return "–"
        if g(r, "live.%s.drain_s" % tool) == -1:
            return num(v, 1) + " (rate while loaded; it did not catch up)"
        return num(v)

    rows.append(("Live: row changes/s sustained (load + catch-up, lag bounded)", sustained("flusso", lv_f),
                 sustained("pgsync", lv_p), "–", "–", ratio(lv_f, lv_p, 0)))
    rows.append(("Live: largest backlog during the load (row changes)", num(g(r, "live.flusso.backlog_max")),
                 num(g(r, "live.pgsync.backlog_max")), "–", "–", "–"))
    def catchup(tool):
        d = g(r, "live.%s.drain_s" % tool)
        return "did not catch up within the wait" if d == -1 else num(d, 1)

    rows.append(("Live: catch-up after the load stopped (s)", catchup("flusso"), catchup("pgsync"), "–", "–", "–"))
    rows.append(("Live: sampled documents differing from PostgreSQL after catch-up",
                 "{} of {}".format(g(r, "live.flusso.verify.mismatches", "–"), g(r, "live.flusso.verify.checked", "–")),
                 ("not checked: it did not catch up" if g(r, "live.pgsync.drain_s") == -1 else
                  "{} of {}".format(g(r, "live.pgsync.verify.mismatches", "–"), g(r, "live.pgsync.verify.checked", "–")))
                 if g(r, "live.pgsync") else "–", "–", "–", "–"))
    for key, label in [("rprobe", "probes only, nothing else"), ("r100", "100 commits/s"),
                       ("r1000", "1,000 commits/s"), ("r5000", "5,000 commits/s")]:
        rows.append(("Latency p50 / p95 / p99 (ms), " + label, lat(g(r, "latency.flusso." + key)),
                     lat(g(r, "latency.pgsync." + key)), "–", "–", "–"))
    anon = g(r, "footprint.flusso.cpu.mem_peak_kb.flusso_worker.RssAnon")
    shm = g(r, "footprint.flusso.after.RssShmem")
    rows.append(("Peak RSS in one {:,}-row UPDATE (MB, VmHWM)".format(g(r, "footprint.flusso.rows", 0) or 0),
                 num(fp_f, 1) + " (worker{})".format(
                     "; private peak {:.0f} MB, shared buffers touched {:.0f} MB".format(anon / 1024, shm / 1024)
                     if anon and shm else ""),
                 (num(fp_p, 1) + " (PGSync) + {} (Redis){}".format(
                     num(g(r, "footprint.pgsync.redis_vmhwm_mb"), 1),
                     "" if g(r, "footprint.pgsync.finished") else
                     "; not finished after {} s".format(num(g(r, "footprint.pgsync.watched_after_commit_s"))))
                  if g(r, "footprint.pgsync") else "–"), "–", "–", "–"))
    rows.append(("Time to sync that UPDATE after its commit (s)", num(g(r, "footprint.flusso.sync_after_commit_s"), 1) +
                 (" (handled as {})".format(g(r, "footprint.flusso.handled_as")) if g(r, "footprint.flusso.handled_as") else ""),
                 ("> {} (queue left: {:,})".format(num(g(r, "footprint.pgsync.watched_after_commit_s")),
                                                   g(r, "footprint.pgsync.queue_left") or 0)
                  if g(r, "footprint.pgsync") and not g(r, "footprint.pgsync.finished") else
                  num(g(r, "footprint.pgsync.watched_after_commit_s"), 1)), "–", "–", "–"))
    rows.append(("Duration of that UPDATE itself (s)", num(g(r, "footprint.flusso.update_s"), 1),
                 num(g(r, "footprint.pgsync.update_s"), 1), "–", "–", "–"))
    rows.append(("Idle CPU over {} s (% of one core)".format(num(g(r, "idle.flusso.seconds"))),
                 num(idle_f, 2), (num(idle_p, 2) + " (+ Redis {} CPU-s)".format(g(r, "idle.redis_cpu_s", "–")))
                 if g(r, "idle.pgsync") else "–", "–", "–", "–"))
    if sc is not None:
        rows.append(("Backfill docs/s at N = {:,} (common definition)".format(sc_n), num(sc), "–", "–", "–", "–"))
        pc_s = per_cpu("scale.flusso", ["flusso_worker", "flusso_other", "postgres", "opensearch"])
        rows.append(("Backfill at N = {:,}, documents per CPU-second of its own processes".format(sc_n), num(pc_s),
                     "–", "–", "–", "–"))

    table = ["| Figure (N = {:,} users) | flusso | PGSync | raw limit | flusso / raw | flusso / PGSync |".format(n or 0),
             "| --- | --- | --- | --- | --- | --- |"]
    for row in rows:
        table.append("| " + " | ".join(row) + " |")

    p99_1000 = g(r, "latency.flusso.r1000.p99_ms")
    targets = [
        ("flusso backfill / raw limit ≥ 0.85", ratio(bf_f, raw), None if not (bf_f and raw) else bf_f / raw >= 0.85),
        ("flusso backfill / PGSync ≥ 10", ratio(bf_f, bf_p, 1), None if not (bf_f and bf_p) else bf_f / bf_p >= 10),
        ("live sustained flusso / PGSync ≥ 5", ratio(lv_f, lv_p, 1), None if not (lv_f and lv_p) else lv_f / lv_p >= 5),
        ("live p99 at 1,000 commits/s ≤ 250 ms", num(p99_1000, 0, " ms"),
         None if p99_1000 is None else (p99_1000 <= 250 and not g(r, "latency.flusso.r1000.timeouts"))),
        ("worker peak RSS in the 2M-row UPDATE ≤ 150 MB", num(fp_f, 1, " MB"), None if fp_f is None else fp_f <= 150),
        ("worker idle CPU < 1% of a core", num(idle_f, 2, " %"), None if idle_f is None else idle_f < 1),
        ("backfill docs/s at 2M within 20% of 200k", (num(sc) + " vs " + num(bf_f)) if sc else "–",
         None if not (sc and bf_f) else abs(sc - bf_f) / bf_f <= 0.20),
    ]
    ttable = ["| Target | Measured | |", "| --- | --- | --- |"]
    for name, v, ok in targets:
        ttable.append("| {} | {} | {} |".format(name, v, met(ok)))

    # CPU: where it went, per phase
    groups = ["flusso_worker", "postgres", "opensearch", "pgsync", "redis", "loadgen", "harness", "foreign"]
    phases = [("flusso backfill", "backfill.flusso.cpu"), ("raw limit", "raw.cpu"),
              ("PGSync initial sync", "backfill.pgsync.cpu"),
              ("flusso live", "live.flusso.cpu"), ("PGSync live", "live.pgsync.cpu"),
              ("flusso 1,000 commits/s", "latency.flusso.r1000.cpu"),
              ("PGSync 100 commits/s", "latency.pgsync.r100.cpu"),
              ("flusso 2M-row UPDATE", "footprint.flusso.cpu"), ("PGSync 2M-row UPDATE", "footprint.pgsync.cpu")]
    if sc is not None:
        phases.append(("flusso backfill at scale", "scale.flusso.cpu"))
    ctable = ["| Phase (wall s) | " + " | ".join(groups) + " |", "| --- |" + " --- |" * len(groups)]
    for label, key in phases:
        c = g(r, key)
        if not c or not c.get("cores"):
            continue
        ctable.append("| {} ({}) | ".format(label, num(c.get("wall_s"))) + " | ".join(
            "{:.2f}".format(c["cores"][k]) if c["cores"].get(k) is not None else "–" for k in groups) + " |")
    return m, table, ttable, ctable


def settings_md(r):
    m = r.get("meta", {})
    out = []
    mc = m.get("machine", {})
    v = m.get("versions", {})
    out.append("- Machine: {} ({} cores), {} GiB RAM, Linux {}".format(mc.get("cpu"), mc.get("cores"), mc.get("ram_gib"),
                                                                         mc.get("kernel")))
    out.append("- PostgreSQL {} (throw-away cluster of `test/lib/pg.sh`: fsync off, `wal_level = logical`, "
               "`max_wal_size = 8GB`, `checkpoint_timeout = 30min`, otherwise defaults: `shared_buffers = 128MB`)".format(
                   v.get("postgresql")))
    out.append("- OpenSearch {} (one node, `test/opensearch/opensearch.sh`, heap {}; indexes with OpenSearch's default "
               "settings: 1 shard, 1 replica left unassigned)".format(v.get("opensearch"), m.get("opensearch_heap")))
    out.append("- PGSync {} (PyPI, in a virtualenv, {}), Redis {} (Debian, own port, no persistence)".format(
        v.get("pgsync"), v.get("python"), v.get("redis")))
    fs = m.get("flusso_settings") or {}
    shown = {k: fs[k] for k in sorted(fs) if k in ("flusso.batch_size", "flusso.batch_bytes", "flusso.queue_capacity",
                                                   "flusso.flush_interval", "flusso.capture_memory",
                                                   "flusso.lag_poll_interval")}
    out.append("- flusso at commit {}{}: every setting at its default ({})".format(
        m.get("commit"), " plus uncommitted changes to " + m["uncommitted"].strip() if (m.get("uncommitted") or "").strip() else "",
        ", ".join("`{} = {}`".format(k, v) for k, v in shown.items())))
    ps = m.get("pgsync_settings") or {}
    out.append("- PGSync settings (environment): " + ", ".join("`{}={}`".format(k, v) for k, v in sorted(ps.items())
                                                              if k != "mode" and k != "OPENSEARCH_HEAP"))
    out.append("- PGSync mode: " + str(ps.get("mode", "–")))
    out.append("- Dataset: `test/bench/dataset.sql` with N = {:,} (loaded in {} s); order_items = 15 N".format(
        m.get("n") or 0, num(m.get("dataset_load_s"), 0)))
    return out


def details_md(r):
    out = []
    for tool in ("flusso", "pgsync"):
        lv = g(r, "live." + tool)
        if lv:
            out.append("- {} live: {:,} commits ({:,} row changes) in {} s, {} commits/s; processed {} changes/s "
                       "during the load (per 10 s: {}); backlog max {:,}, at the end {:,}; {} max {:,}; "
                       "caught up {} s after the load".format(
                           tool, lv["commits"], lv["changes"], lv["seconds"], lv["commit_rate"], lv["processed_rate"],
                           ", ".join(str(x) for x in lv.get("window_rates", [])), lv["backlog_max"],
                           lv["backlog_end"], lv.get("lag_unit", "lag"), lv.get("lag_max", 0), lv.get("drain_s")))
    for tool in ("flusso", "pgsync"):
        lt = g(r, "latency." + tool) or {}
        for key in ("rprobe", "r100", "r1000", "r5000"):
            s = lt.get(key)
            if not s or "skipped" in s:
                continue
            out.append("- {} latency at {}: {} probes (root/child alternating), p50 {} (root {}, child {}), "
                       "p95 {}, p99 {}, max {} ms; first/second half p50 {} / {} ms; commit itself p50 {} ms; "
                       "{:,.0f} commits/s in all; caught up {} s after; during the step OpenSearch indexed {:,} "
                       "documents in {:,} refreshes and {:,} merges{}".format(
                           tool, s.get("target_rate"), s["probes"], num(s["p50_ms"]), num(s.get("root_p50_ms")),
                           num(s.get("child_p50_ms")), num(s["p95_ms"]), num(s["p99_ms"]), num(s["max_ms"]),
                           num(s.get("p50_first_half_ms")), num(s.get("p50_second_half_ms")),
                           num(s.get("commit_p50_ms"), 2), s.get("commit_rate") or 0, s.get("drain_s"),
                           s.get("os_indexed", 0), s.get("os_refreshes", 0), s.get("os_merges", 0),
                           "; flusso sent {:,} batches".format(s["tool_batches"]) if s.get("tool_batches") else ""))
    rounds = g(r, "rounds") or {}
    if rounds:
        def fmt(tool):
            return ", ".join("{:,.0f}".format(v["docs_per_s"]) for _, v in sorted((rounds.get(tool) or {}).items()))
        out.append("- backfill rounds on the warm node (docs/s, best kept): flusso {}; raw limit {} (after a warm-up "
                   "load of {:,.0f} docs/s); flusso on the cold node before them {:,.0f}".format(
                       fmt("flusso"), fmt("raw"), g(r, "raw_warmup.docs_per_s", 0) or 0,
                       g(r, "backfill.flusso_cold.docs_per_s", 0) or 0))
    f = g(r, "footprint.flusso")
    if f:
        out.append("- flusso footprint: UPDATE of {:,} rows took {} s; {:,} changes captured, handled as {} "
                   "({:,} documents built live, {:,} rebuilt), synced {} s after the commit; worker VmHWM {:,} kB "
                   "(peak RssAnon sampled twice a second {:,} kB; at the end RssAnon {:,} kB, RssShmem {:,} kB; "
                   "before: VmRSS {:,} kB)".format(
                       f["rows"], f["update_s"], f["changes_captured"], f.get("handled_as", "?"), f["documents_built"],
                       f.get("rebuilt_documents") or 0, f["sync_after_commit_s"], f["after"]["VmHWM"],
                       g(f, "cpu.mem_peak_kb.flusso_worker.RssAnon", 0), f["after"]["RssAnon"],
                       f["after"]["RssShmem"], f["before"]["VmRSS"]))
    p = g(r, "footprint.pgsync")
    if p:
        out.append("- PGSync footprint: UPDATE of {:,} rows took {} s (its triggers fire per row); watched {} s after "
                   "the commit, finished: {}, queue left {:,}; PGSync VmHWM {:,} kB, Redis VmHWM {:,} kB".format(
                       p["rows"], p["update_s"], p["watched_after_commit_s"], p["finished"], p["queue_left"] or 0,
                       p["pgsync"]["VmHWM"], p["redis"]["VmHWM"]))
    sc = g(r, "scale")
    if sc:
        out.append("- scale: N = {:,}, dataset loaded in {} s, backfill {:,} documents in {} s ({} docs/s); "
                   "command `{}`".format(sc.get("n", 0), num(sc.get("load_s")), g(sc, "flusso.docs", 0),
                                        num(g(sc, "flusso.wall_s"), 1), num(g(sc, "flusso.docs_per_s")),
                                        sc.get("command")))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--results", required=True)
    ap.add_argument("--write")
    a = ap.parse_args()
    r = json.load(open(a.results))
    m, table, ttable, ctable = build(r)
    print("\n".join(table))
    print()
    print("\n".join(ttable))
    print()
    print("\n".join(ctable))
    if not a.write:
        return
    kept = ""
    if os.path.exists(a.write):
        old = open(a.write).read()
        if NOTES_MARKER in old:
            kept = old.split(NOTES_MARKER, 1)[1]
    doc = []
    doc.append("# Benchmarks")
    doc.append("")
    doc.append("flusso against the raw `_bulk` limit and against PGSync, on one machine, with the same data, the same "
               "OpenSearch node and the same index definition, measured by `test/bench/run.sh` "
               "(method: the comment at the top of that script and the sections below).")
    doc.append("")
    doc.append("Run {} in {} s, with:".format(m.get("date"), m.get("run_s")))
    doc.append("")
    doc.append("```")
    doc.append(m.get("command", "test/bench/run.sh"))
    if g(r, "scale.command") and g(r, "scale.command") != m.get("command"):
        doc.append(g(r, "scale.command") + "    # the N = {:,} row, {}".format(g(r, "scale.n") or 0, g(r, "scale.date")))
    doc.append("```")
    doc.append("")
    doc.append("## Results")
    doc.append("")
    doc.extend(table)
    doc.append("")
    doc.append("## Targets")
    doc.append("")
    doc.extend(ttable)
    doc.append("")
    doc.append("## Setup")
    doc.append("")
    doc.extend(settings_md(r))
    doc.append("")
    doc.append("## Method")
    doc.append("")
    doc.extend([
        "- Index definition: users with addresses, orders with their items, company and tags "
        "(`test/bench/users_common_index.json` for flusso, `test/bench/pgsync_schema.json` for PGSync). It is the largest "
        "part of flusso's `test/bench/users_index.json` that PGSync can express: PGSync has no root filter "
        "(`deleted_at IS NULL`), no computed column (`created_at::date`), no child ordering and no count/sum "
        "aggregates. Every comparison with PGSync and the raw limit uses this common definition; the full "
        "definition is backfilled by flusso once for reference.",
        "- Backfill: from `create_index` (flusso) or from the start of `bootstrap` (PGSync: bootstrap, then one "
        "`pgsync` run without `-d`) until `_count` after `_refresh` equals N; docs/s = N / that time. Each into a fresh index.",
        "- Warm OpenSearch: a freshly started node runs its indexing code cold (the JIT compiles it as it goes), and "
        "its first 200,000 documents cost it 2-2.5x the CPU per document of later ones, whoever sends them. The first "
        "flusso backfill runs on the cold node and is shown on a row of its own; then the raw loader loads the "
        "documents once as a warm-up, and flusso and the raw loader run in rounds (`BENCH_ROUNDS`, default 2), the "
        "best round of each kept. PGSync's initial sync comes later in the run, on the same warm node.",
        "- Raw limit: `flusso.documents('users')` exported once as id/JSON lines, then `test/bench/bulkload.py` "
        "(Python, http.client, 4 threads) builds every `_bulk` body of 1,000 documents in memory and sends them "
        "4 at a time into a fresh index with the same settings and mappings (`flusso.index_body`); the same "
        "`_count` criterion.",
        "- Live throughput: `bench.py live`, 4 connections committing transactions of 5 `users.name` and 5 "
        "`order_items.qty` updates of random documents, for the whole phase, pausing whenever the tool's backlog "
        "(row changes committed minus the changes the tool reports done: flusso `flusso.status.changes_committed`, "
        "PGSync the documents its daemon's status line reports written) is above a bound (20,000 for flusso, 20 for "
        "PGSync), so the commit rate settles at what the tool sustains without its lag growing. Sustained = row "
        "changes / (load time + catch-up time until a marker committed afterwards is readable). Each row change "
        "changes one document. Then 500 updated documents are compared with PostgreSQL.",
        "- Latency: `bench.py probe` commits markers (alternately in `users.name` and in an `order_items.sku` of "
        "users the load does not touch); one poller fetches every pending document with one realtime `_mget` every "
        "5 ms until its marker shows; the delay is counted from the moment the commit returned. 'Probes only' runs "
        "right after the idle phase, with nothing else writing, at 5 markers/s or, for a tool slower than that, at a "
        "fifth of 1 / the delay of a first marker (at least 0.1/s, for up to 60 s). At the fixed rates, `pgbench -R` "
        "commits single-row updates (root or child) at the rate minus 20/s and the probe adds 20 markers/s; a rate "
        "above 1.5x what the tool sustained in the live phase is not run (it would only measure a growing queue). "
        "Before each step the tool has caught up and OpenSearch and PostgreSQL are quiet (merges done, at most 30 s).",
        "- Footprint: `echo 5 > /proc/PID/clear_refs` resets the peak, then one `UPDATE order_items SET qty = qty + 1 "
        "WHERE id <= 2000000`; VmHWM of the flusso worker (its pid from `flusso.status`) after flusso acknowledged it, "
        "or of PGSync's processes (and Redis) after at most the watch window. Note that a PostgreSQL backend's RSS "
        "includes the shared buffers it touched (RssShmem).",
        "- Idle CPU: utime + stime from `/proc/PID/stat` over the idle period, with no writes to the database.",
        "- Tools run one after the other on the same cluster (flusso first, then flusso is switched off and its slot "
        "dropped, the tables vacuumed, and PGSync bootstrapped), so they never compete for the two cores.",
        "- CPU accounting: `bench.py procmon` samples every process twice a second; `postgres` includes the backends "
        "that run PGSync's queries and the load generator's transactions; `foreign` is CPU used on this machine by "
        "processes the benchmark did not start (other work sharing the two cores).",
    ])
    doc.append("")
    doc.append("## Where the CPU went (average cores busy per group)")
    doc.append("")
    doc.extend(ctable)
    doc.append("")
    doc.append("## Details")
    doc.append("")
    doc.extend(details_md(r))
    doc.append("")
    doc.append(NOTES_MARKER)
    body = "\n".join(doc) + (kept if kept else "\n")
    with open(a.write, "w") as f:
        f.write(body)
    print("\nwrote " + a.write)


if __name__ == "__main__":
    main()
