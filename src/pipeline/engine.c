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
 * The stages live in their own files below this one, each handed the
 * engine's state (Engine, pipeline.h) as eng: loader.c (definitions,
 * watches, requests, DDL), rounds.c (decoding and resolving), backfill.c
 * (builds), batches.c (live batches), ship.c (bulk requests and their
 * outcomes), policy.c (failure policies, dead letters).  This file owns
 * the state, holds the step and the entry points, and wires the one
 * callback that goes up: a backfill chunk acknowledged (ship.c to
 * backfill.c).  It must not do a stage's work itself: the step only
 * orders the stages and computes how long the worker may sleep.
 *
 * Error handling: a failed step (the worker catches it) drops everything in
 * flight and closes the decoding context; the next step reopens the slot
 * at its confirmed position and replays.  Nothing acknowledged is lost,
 * nothing unacknowledged was confirmed.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "utils/memutils.h"

#include "base/settings.h"
#include "pipeline/backfill.h"
#include "pipeline/batches.h"
#include "pipeline/engine.h"
#include "pipeline/loader.h"
#include "pipeline/rounds.h"
#include "pipeline/ship.h"
#include "sink/choose.h"
#include "sink/http.h"

/* The one pipeline of this process. */
static Engine engine;

/* ---- how much may be sent now ---- */

static bool
can_send(Engine *eng)
{
	return eng->in_flight + eng->nretries < flusso_queue_capacity;
}

/* Is some index's build able to send a chunk now? */
static bool
build_waiting(Engine *eng)
{
	int			i;

	for (i = 0; i < eng->nix; i++)
	{
		IndexRuntime *ix = eng->ix[i];

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
can_send_live(Engine *eng)
{
	int			reserve = flusso_queue_capacity > 1 && eng->reload_lsn == InvalidXLogRecPtr &&
		build_waiting(eng) ? 1 : 0;

	return eng->in_flight + eng->nretries < flusso_queue_capacity - reserve;
}

/* ---- status ---- */

static void
report_phase(Engine *eng)
{
	int			i;
	bool		backfilling = false;
	char		activity[128] = "streaming changes";

	for (i = 0; i < eng->nix; i++)
	{
		IndexRuntime *ix = eng->ix[i];

		if (!flusso_index_active(ix) || ix->build_gen == 0)
			continue;
		backfilling |= ix->live_gen == ix->build_gen;
		snprintf(activity, sizeof(activity), "%s %s (generation %d): " INT64_FORMAT " of about " INT64_FORMAT,
				 ix->live_gen == ix->build_gen ? "backfilling" : "reindexing",
				 ix->name, ix->build_gen, ix->build_done, ix->build_total);
	}
	if (eng->search_failing)
		strlcpy(activity, "waiting for OpenSearch", sizeof(activity));
	flusso_observer->on_phase(backfilling ? FLUSSO_PHASE_BACKFILLING : FLUSSO_PHASE_LIVE);
	flusso_observer->on_activity(activity);
}

static void
poll_lag(Engine *eng)
{
	TimestampTz now = GetCurrentTimestamp();
	int64		lag;
	bool		over;

	if (now < eng->next_lag_poll)
		return;
	lag = flusso_capture_lag_bytes();
	flusso_observer->on_slot_lag(lag);
	over = flusso_max_lag_bytes > 0 && lag > flusso_max_lag_bytes;
	flusso_observer->on_lag_warning(over);
	if (over && TimestampDifferenceExceeds(eng->lag_warned_at, now, 60000))
	{
		ereport(WARNING,
				(errmsg("flusso's replication slot \"%s\" holds " INT64_FORMAT " MB of WAL, more than flusso.max_lag_bytes (%s)",
						flusso_capture_slot_name(), lag / (1024 * 1024), flusso_max_lag_bytes_setting),
				 errdetail("The slot keeps WAL until flusso catches up; OpenSearch may be down or slow."),
				 errhint("See flusso.status; raise flusso.max_lag_bytes if this lag is expected.")));
		eng->lag_warned_at = now;
	}
	eng->next_lag_poll = TimestampTzPlusMilliseconds(now, flusso_lag_poll_interval);
}

/* ---- the engine's entry points ---- */

void
flusso_engine_init(void)
{
	Engine	   *eng = &engine;

	memset(eng, 0, sizeof(Engine));
	eng->cxt = AllocSetContextCreate(TopMemoryContext, "flusso indexes", ALLOCSET_DEFAULT_SIZES);
	eng->batches_cxt = AllocSetContextCreate(TopMemoryContext, "flusso batches", ALLOCSET_DEFAULT_SIZES);
	eng->chunk_acked = eng_chunk_acked;
	dlist_init(&eng->batches);
	dlist_init(&eng->flight);
}

void
flusso_engine_start(void)
{
	engine.loaded = false;
}

void
flusso_engine_stop(void)
{
	Engine	   *eng = &engine;

	eng_reset_pipeline(eng);
	flusso_capture_close();
	eng_forget_indexes(eng);
	eng->loaded = false;
	eng->marker_lsn = eng->reload_lsn = InvalidXLogRecPtr;
}

/* Drop what is in flight and close the slot: the next step replays. */
static void
start_over(Engine *eng)
{
	eng_reset_pipeline(eng);
	flusso_capture_close();
	eng->round_started = 0;
	eng->marker_lsn = eng->reload_lsn = InvalidXLogRecPtr;
	if (eng->loaded)
	{
		int			i;

		for (i = 0; i < eng->nix; i++)
			eng->ix[i]->remote_ready = false;
	}
}

/*
 * After a reload.  A new sink starts over; new connection settings drop
 * the requests in flight and every kept-alive connection (their batches
 * are sent again: nothing was confirmed for them).
 */
void
flusso_engine_settings_changed(bool connection_changed)
{
	Engine	   *eng = &engine;

	/* flusso.role narrows what every index may read: load them all again */
	if (eng->role == NULL || strcmp(eng->role, flusso_role) != 0)
	{
		if (eng->role != NULL && eng->loaded)
		{
			ereport(LOG, (errmsg("flusso.role changed; the indexes are loaded again")));
			start_over(eng);
			eng->loaded = false;
		}
		if (eng->role)
			pfree(eng->role);
		eng->role = MemoryContextStrdup(TopMemoryContext, flusso_role);
	}
	if (eng->loaded && eng->sink != flusso_sink())
	{
		ereport(LOG, (errmsg("flusso switches to the %s sink", flusso_sink()->name)));
		start_over(eng);
		eng->loaded = false;
	}
	else if (connection_changed)
	{
		int			i;

		ereport(LOG, (errmsg("flusso reconnects to OpenSearch with the new connection settings")));
		start_over(eng);
		for (i = 0; eng->loaded && i < eng->nix; i++)
			memset(&eng->ix[i]->remote_backoff, 0, sizeof(Backoff));	/* try at once */
	}
	if (connection_changed)
		flusso_http_reset();
}

void
flusso_engine_after_error(void)
{
	start_over(&engine);
}

/*
 * Prepare the OpenSearch side of every index that is due, whether or not
 * a change or a build needs it now: after a start or a reload an idle
 * index would otherwise stay unprepared while sleep_time() kept waking
 * the worker for it.
 */
static void
prepare_remotes(Engine *eng)
{
	int			i;

	for (i = 0; i < eng->nix; i++)
	{
		if (flusso_index_remote_wait_ms(eng->ix[i]) == 0)
			(void) flusso_index_ensure_remote(eng->ix[i], eng->sink);
	}
}

static long
sleep_time(Engine *eng, bool worked)
{
	CaptureRound *round = flusso_capture_round();
	long		ms = flusso_lag_poll_interval;
	long		retry = eng_next_retry_ms(eng);
	int			i;

	if (worked && can_send(eng))
		return 0;
	if (round->nimages > 0 && eng->round_started)
		ms = Min(ms, Max(1, flusso_flush_interval -
						 TimestampDifferenceMilliseconds(eng->round_started, GetCurrentTimestamp())));
	if (retry >= 0)
		ms = Min(ms, Max(1, eng->search_failing ? Min(retry, 1000) : retry));
	for (i = 0; i < eng->nix; i++)
	{
		long		remote = flusso_index_remote_wait_ms(eng->ix[i]);
		long		finish = flusso_index_finish_wait_ms(eng->ix[i]);
		long		locked = flusso_index_lock_wait_ms(eng->ix[i]);

		if (eng->ix[i]->build_gen && eng->ix[i]->nwait > 0)
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
	Engine	   *eng = &engine;
	bool		worked = false;
	LiveBatch  *b;

	if (eng->loaded && !flusso_capture_is_open() && flusso_capture_slot_state() != SLOT_OK)
		eng->loaded = false;	/* the slot vanished or was invalidated */
	if (!eng->loaded)
		eng_load(eng);
	if (!flusso_capture_is_open())
		flusso_capture_open();
	eng_take_requests(eng);
	eng_check_ddl(eng);
	eng_rebuild_vanished(eng);
	prepare_remotes(eng);
	eng_collect_completions(eng);
	eng_probe_search(eng);
	eng_send_due_retries(eng);
	eng_confirm_done_batches(eng);
	if (eng->reload_lsn != InvalidXLogRecPtr && eng_drained(eng))
	{
		eng_reload(eng, eng->reload_lsn);
		/* see report_batch(); a dead-letter retry reports it when acknowledged */
		if (dlist_is_empty(&eng->batches))
			flusso_observer->on_caught_up(eng->reload_lsn);
		eng->reload_lsn = InvalidXLogRecPtr;
		worked = true;
	}
	while (can_send_live(eng))
	{
		if ((b = eng_unbuilt_batch(eng)) != NULL)
		{
			if (!eng_build_live_chunk(eng, b))
				break;
		}
		else if (eng->reload_lsn != InvalidXLogRecPtr || eng->nbatches >= MAX_LIVE_BATCHES ||
				 !eng_decode_step(eng))
			break;
		worked = true;
	}
	while (eng->reload_lsn == InvalidXLogRecPtr && can_send(eng) && eng_backfill_step(eng))
		worked = true;
	eng_collect_completions(eng);
	eng_confirm_done_batches(eng);
	eng_finish_builds(eng);
	eng_drop_retired(eng);
	eng_report_lag(eng);
	poll_lag(eng);
	report_phase(eng);
	return sleep_time(eng, worked);
}
