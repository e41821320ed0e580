/*-------------------------------------------------------------------------
 *
 * engine.c
 *	  The sync pipeline of one database: capture, resolve, build, ship, ack.
 *
 * The worker calls flusso_engine_step() once per loop.  A step
 *	1. collects finished bulk requests, applies retries and failure
 *	   policies, and confirms the slot up to the newest live batch whose
 *	   every document OpenSearch acknowledged (batches confirm in order);
 *	2. while fewer than flusso.queue_capacity requests are in flight, builds
 *	   and sends the next chunk of documents of the oldest live batch, or
 *	   decodes more WAL, closing a round into a live batch when it holds
 *	   flusso.batch_size images, when flusso.flush_interval passed, or at
 *	   once when nothing else is in flight;
 *	3. with room left, builds and sends the next backfill chunk of an
 *	   index being (re)built.
 * Closing a round resolves its images to document keys, deduplicated, in
 * one transaction that first waits until every decoded transaction is
 * visible.  Each chunk of keys is then built by the index's prepared build
 * statement in its own transaction.  Documents are versioned by the WAL
 * position of their batch (or of their build), so OpenSearch keeps the
 * newest whatever order requests complete in.
 *
 * Control changes (a definition created, altered or dropped, a request
 * such as reindex) end the round at the commit that made them; the engine
 * then reloads, and the new definitions apply to every change after it.
 *
 * The stages live in their own files, sharing the state in pipeline.h:
 * loader.c (definitions, watches, requests, DDL), rounds.c (decoding and
 * resolving), batches.c (live batches), backfill.c (builds), ship.c (bulk
 * requests and their outcomes).  This file holds the step and the entry
 * points.
 *
 * Error handling: a failed step (the worker catches it) drops everything in
 * flight and closes the decoding context; the next step reopens the slot
 * at its confirmed position and replays.  Nothing acknowledged is lost,
 * nothing unacknowledged was confirmed.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "common/pg_prng.h"
#include "pgstat.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"

#include "base/redact.h"
#include "base/settings.h"
#include "pipeline/engine.h"
#include "pipeline/pipeline.h"

Engine		flusso_engine_state;

/* ---- transactions ---- */

/*
 * The memory context current when the transaction started.  Committing
 * leaves TopMemoryContext current; eng_end_work() goes back to this one,
 * or whatever the step allocates after its first commit would go to
 * TopMemoryContext and never be freed (the worker resets its step context
 * after every step, not TopMemoryContext).
 */
static MemoryContext work_caller_cxt = NULL;

/* Start a transaction for eng_end_work() to commit (no SPI, no snapshot). */
void
eng_begin_transaction(void)
{
	work_caller_cxt = CurrentMemoryContext;
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
}

void
eng_begin_work(const char *what)
{
	eng_begin_transaction();
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, what);
}

void
eng_end_work(void)
{
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	MemoryContextSwitchTo(work_caller_cxt);
	pgstat_report_stat(false);
	pgstat_report_activity(STATE_IDLE, NULL);
}

/* ---- small helpers ---- */

static bool
room(void)
{
	return E.in_flight + E.nretries < flusso_queue_capacity;
}

/* Is some index's build able to send a chunk now? */
static bool
build_waiting(void)
{
	int			i;

	for (i = 0; i < E.nix; i++)
	{
		IndexRuntime *ix = E.ix[i];

		if (flusso_index_active(ix) && ix->build_gen != 0 && !ix->build_exhausted &&
			ix->nwait == 0 && ix->remote_ready)
			return true;
	}
	return false;
}

/*
 * Live changes come first, but while a build waits they leave it one place
 * in the queue, so a rebuild finishes even under a constant live load.
 */
static bool
room_for_live(void)
{
	int			reserve = flusso_queue_capacity > 1 && E.reload_lsn == InvalidXLogRecPtr &&
		build_waiting() ? 1 : 0;

	return E.in_flight + E.nretries < flusso_queue_capacity - reserve;
}

IndexRuntime *
eng_find_index(const char *name)
{
	int			i;

	for (i = 0; i < E.nix; i++)
		if (strcmp(E.ix[i]->name, name) == 0)
			return E.ix[i];
	return NULL;
}

void
eng_log_limited(int level, const char *fmt, const char *arg)
{
	TimestampTz now = GetCurrentTimestamp();

	if (!TimestampDifferenceExceeds(E.last_log, now, 10000))
		return;
	E.last_log = now;
	ereport(level, (errmsg(fmt, flusso_redact(arg))));
}

long
eng_backoff_ms(int attempts)
{
	double		base = 100.0 * (1 << Min(attempts, 16));
	double		cap = Min(base, (double) flusso_retry_max_interval);

	return (long) (cap * (0.5 + 0.5 * pg_prng_double(&pg_global_prng_state)));
}

void
eng_save_dirty(void)
{
	int			i;

	for (i = 0; i < E.nix; i++)
		if (E.ix[i]->dirty)
			flusso_index_save_state(E.ix[i]);
}

/* ---- status ---- */

static void
report_phase(void)
{
	int			i;
	bool		backfilling = false;
	char		activity[128] = "streaming changes";

	for (i = 0; i < E.nix; i++)
	{
		IndexRuntime *ix = E.ix[i];

		if (!flusso_index_active(ix) || ix->build_gen == 0)
			continue;
		backfilling |= ix->live_gen == ix->build_gen;
		snprintf(activity, sizeof(activity), "%s %s (generation %d): " INT64_FORMAT " of about " INT64_FORMAT,
				 ix->live_gen == ix->build_gen ? "backfilling" : "reindexing",
				 ix->name, ix->build_gen, ix->build_done, ix->build_total);
	}
	if (E.os_failing)
		strlcpy(activity, "waiting for OpenSearch", sizeof(activity));
	flusso_observer->on_phase(backfilling ? FLUSSO_PHASE_BACKFILLING : FLUSSO_PHASE_LIVE);
	flusso_observer->on_activity(activity);
}

static void
poll_lag(void)
{
	TimestampTz now = GetCurrentTimestamp();
	int64		lag;
	bool		over;

	if (now < E.next_lag_poll)
		return;
	lag = flusso_capture_lag_bytes();
	flusso_observer->on_slot_lag(lag);
	over = flusso_max_lag_bytes > 0 && lag > flusso_max_lag_bytes;
	flusso_observer->on_lag_warning(over);
	if (over && TimestampDifferenceExceeds(E.lag_warned_at, now, 60000))
	{
		ereport(WARNING,
				(errmsg("flusso's replication slot \"%s\" holds " INT64_FORMAT " MB of WAL, more than flusso.max_lag_bytes (%s)",
						flusso_capture_slot_name(), lag / (1024 * 1024), flusso_max_lag_bytes_setting),
				 errdetail("The slot keeps WAL until flusso catches up; OpenSearch may be down or slow."),
				 errhint("See flusso.status; raise flusso.max_lag_bytes if this lag is expected.")));
		E.lag_warned_at = now;
	}
	E.next_lag_poll = TimestampTzPlusMilliseconds(now, flusso_lag_poll_interval);
}

/* ---- the engine's entry points ---- */

void
flusso_engine_init(void)
{
	memset(&E, 0, sizeof(E));
	E.cxt = AllocSetContextCreate(TopMemoryContext, "flusso indexes", ALLOCSET_DEFAULT_SIZES);
	E.batches_cxt = AllocSetContextCreate(TopMemoryContext, "flusso batches", ALLOCSET_DEFAULT_SIZES);
	dlist_init(&E.batches);
	dlist_init(&E.flight);
}

void
flusso_engine_start(void)
{
	E.loaded = false;
}

/* Drop everything in flight; what it held is replayed from the slot. */
void
eng_reset_pipeline(void)
{
	int			i;

	if (E.sink)
		E.sink->abort_all();
	flusso_http_abort_all();
	E.in_flight = 0;
	dlist_init(&E.flight);
	E.retries = NULL;
	E.nretries = 0;
	dlist_init(&E.batches);
	E.nbatches = 0;
	MemoryContextReset(E.batches_cxt);
	eng_free_dead_letters();	/* and the settled ones */
	for (i = 0; i < E.nix; i++)
	{
		/* their requests are gone: none will be acknowledged */
		flusso_index_free_chunks(E.ix[i], true);
		E.ix[i]->next_cursor = E.ix[i]->build_cursor;
		E.ix[i]->build_exhausted = false;
	}
}

void
flusso_engine_stop(void)
{
	eng_reset_pipeline();
	flusso_capture_close();
	eng_forget_indexes();
	E.loaded = false;
	E.marker_lsn = E.reload_lsn = InvalidXLogRecPtr;
}

/*
 * After a reload.  A new sink starts over; new connection settings drop
 * the requests in flight and every kept-alive connection (their batches
 * are sent again: nothing was confirmed for them).
 */
void
flusso_engine_settings_changed(bool connection_changed)
{
	static char *role = NULL;

	/* flusso.role narrows what every index may read: load them all again */
	if (role == NULL || strcmp(role, flusso_role) != 0)
	{
		if (role != NULL && E.loaded)
		{
			ereport(LOG, (errmsg("flusso.role changed; the indexes are loaded again")));
			flusso_engine_after_error();
			E.loaded = false;
		}
		if (role)
			pfree(role);
		role = MemoryContextStrdup(TopMemoryContext, flusso_role);
	}
	if (E.loaded && E.sink != flusso_sink())
	{
		ereport(LOG, (errmsg("flusso switches to the %s sink", flusso_sink()->name)));
		flusso_engine_after_error();
		E.loaded = false;
	}
	else if (connection_changed)
	{
		int			i;

		ereport(LOG, (errmsg("flusso reconnects to OpenSearch with the new connection settings")));
		flusso_engine_after_error();
		for (i = 0; E.loaded && i < E.nix; i++)
			memset(&E.ix[i]->remote_backoff, 0, sizeof(Backoff));	/* try at once */
	}
	if (connection_changed)
		flusso_http_reset();
}

void
flusso_engine_after_error(void)
{
	eng_reset_pipeline();
	flusso_capture_close();
	E.round_started = 0;
	E.marker_lsn = E.reload_lsn = InvalidXLogRecPtr;
	if (E.loaded)
	{
		int			i;

		for (i = 0; i < E.nix; i++)
			E.ix[i]->remote_ready = false;
	}
}

/*
 * Prepare the OpenSearch side of every index that is due, whether or not
 * a change or a build needs it now: after a start or a reload an idle
 * index would otherwise stay unprepared while sleep_time() kept waking
 * the worker for it.
 */
static void
prepare_remotes(void)
{
	int			i;

	for (i = 0; i < E.nix; i++)
	{
		if (flusso_index_remote_wait_ms(E.ix[i]) == 0)
			(void) flusso_index_ensure_remote(E.ix[i], E.sink);
	}
}

static long
sleep_time(bool worked)
{
	CaptureRound *round = flusso_capture_round();
	long		ms = flusso_lag_poll_interval;
	long		retry = eng_next_retry_ms();
	int			i;

	if (worked && room())
		return 0;
	if (round->nimages > 0 && E.round_started)
		ms = Min(ms, Max(1, flusso_flush_interval -
						 TimestampDifferenceMilliseconds(E.round_started, GetCurrentTimestamp())));
	if (retry >= 0)
		ms = Min(ms, Max(1, E.os_failing ? Min(retry, 1000) : retry));
	for (i = 0; i < E.nix; i++)
	{
		long		remote = flusso_index_remote_wait_ms(E.ix[i]);
		long		finish = flusso_index_finish_wait_ms(E.ix[i]);
		long		locked = flusso_index_lock_wait_ms(E.ix[i]);

		if (E.ix[i]->build_gen && E.ix[i]->nwait > 0)
			ms = Min(ms, 100);
		if (remote >= 0)
			ms = Min(ms, Max(1, remote));
		if (finish >= 0)
			ms = Min(ms, Max(1, finish));
		if (locked >= 0)
			ms = Min(ms, Max(1, locked));
	}
	return ms;
}

long
flusso_engine_step(void)
{
	bool		worked = false;
	LiveBatch  *b;

	if (E.loaded && !flusso_capture_is_open() && flusso_capture_slot_state() != SLOT_OK)
		E.loaded = false;		/* the slot vanished or was invalidated */
	if (!E.loaded)
		eng_load();
	if (!flusso_capture_is_open())
		flusso_capture_open();
	eng_take_requests();
	eng_check_ddl();
	eng_rebuild_vanished();
	prepare_remotes();
	eng_collect_completions();
	eng_probe_opensearch();
	eng_send_due_retries();
	eng_confirm_done_batches();
	if (E.reload_lsn != InvalidXLogRecPtr && eng_drained())
	{
		eng_reload(E.reload_lsn);
		/* see report_batch(); a dead-letter retry reports it when acknowledged */
		if (dlist_is_empty(&E.batches))
			flusso_observer->on_caught_up(E.reload_lsn);
		E.reload_lsn = InvalidXLogRecPtr;
		worked = true;
	}
	while (room_for_live())
	{
		if ((b = eng_unbuilt_batch()) != NULL)
		{
			if (!eng_build_live_chunk(b))
				break;
		}
		else if (E.reload_lsn != InvalidXLogRecPtr || E.nbatches >= MAX_LIVE_BATCHES ||
				 !eng_decode_step())
			break;
		worked = true;
	}
	while (E.reload_lsn == InvalidXLogRecPtr && room() && eng_backfill_step())
		worked = true;
	eng_collect_completions();
	eng_confirm_done_batches();
	eng_finish_builds();
	eng_drop_retired();
	eng_report_lag();
	poll_lag();
	report_phase();
	return sleep_time(worked);
}
