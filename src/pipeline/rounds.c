/*-------------------------------------------------------------------------
 *
 * rounds.c
 *	  Rounds: decoded changes resolved to the documents they affect.
 *
 * A round is what capture decoded since the last one: deduplicated row
 * images of the watched tables, the transactions they came from, and
 * tables to rebuild (TRUNCATE, or a transaction too large to capture).
 * Closing a round waits until every decoded transaction is visible, then
 * resolves the images to the ids of the documents they affect, per index,
 * in one guarded transaction, and turns them into a live batch.
 *
 * It must not build or send documents: batches.c does.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "pgstat.h"
#include "storage/lmgr.h"
#include "utils/lsyscache.h"
#include "utils/snapmgr.h"

#include "base/settings.h"
#include "pipeline/batches.h"
#include "pipeline/indexrun.h"
#include "pipeline/resolve.h"
#include "pipeline/rounds.h"

/* ---- rounds ---- */

static void
wait_visible(CaptureRound *round)
{
	int			i;

	for (i = 0; i < round->nxids; i++)
		XactLockTableWait(round->xids[i], NULL, NULL, XLTW_None);
}

static List *
use_images(CaptureRel *cr, CaptureUse *use)
{
	List	   *out = NIL;
	ListCell   *lc;

	foreach(lc, cr->images)
	{
		char	  **image = lfirst(lc);
		char	  **values = palloc(sizeof(char *) * use->watch->ncols);
		int			i;

		for (i = 0; i < use->watch->ncols; i++)
			values[i] = image[use->pos[i]];
		out = lappend(out, values);
	}
	return out;
}

/* Keep images whose resolution waits for a lock in the batch's memory. */
static void
defer(LiveBatch *b, int index, FlussoWatch *w, List *images)
{
	MemoryContext old = MemoryContextSwitchTo(b->cxt);
	DeferredImages *d = palloc(sizeof(DeferredImages));
	ListCell   *lc;

	d->watch = w;
	d->images = NIL;
	foreach(lc, images)
	{
		char	  **src = lfirst(lc);
		char	  **copy = palloc(sizeof(char *) * w->ncols);
		int			i;

		for (i = 0; i < w->ncols; i++)
			copy[i] = src[i] ? pstrdup(src[i]) : NULL;
		d->images = lappend(d->images, copy);
	}
	b->deferred[index] = lappend(b->deferred[index], d);
	MemoryContextSwitchTo(old);
}

static void
resolve_rel(Engine *eng, CaptureRel *cr, LiveBatch *b)
{
	ListCell   *lc;

	foreach(lc, cr->watches)
	{
		CaptureUse *use = lfirst(lc);
		IndexRuntime *ix = eng->ix[use->index];
		List	   *images;
		FlussoError error;

		if (!flusso_index_active(ix))
			continue;
		images = use_images(cr, use);
		if (flusso_index_lock_waiting(ix) || b->deferred[use->index] != NIL)
			defer(b, use->index, use->watch, images);	/* in order, after the waiting ones */
		else if (flusso_run_resolve(ix, use->watch, images, b->keys[use->index], &error))
			flusso_index_lock_granted(ix);
		else if (flusso_error_is_lock_wait(&error))
		{
			flusso_index_lock_wait(ix);
			defer(b, use->index, use->watch, images);
		}
		else if (error.sqlerrcode == ERRCODE_INSUFFICIENT_PRIVILEGE)
			flusso_index_no_access(ix, error.message);
		else
			flusso_index_set_error(ix, psprintf("resolving changes of %s for index \"%s\" failed: %s",
												get_rel_name(cr->relid), ix->name, error.message), true);
	}
}

/* Resolve the round's images into the batch's document ids. */
static void
resolve_round(Engine *eng, CaptureRound *round, LiveBatch *b)
{
	ListCell   *lc;
	int			i;

	for (i = 0; i < eng->nix; i++)
		b->keys[i] = flusso_keyset_create(b->cxt);
	eng_begin_transaction(eng);
	wait_visible(round);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, "flusso: resolving changes");
	foreach(lc, flusso_capture_rels())
	{
		CaptureRel *cr = lfirst(lc);

		if (cr->images != NIL)
			resolve_rel(eng, cr, b);
	}
	eng_save_dirty(eng);
	eng_end_work(eng);
	for (i = 0; i < eng->nix; i++)
		b->ids[i] = flusso_keyset_ids(b->keys[i]);
}

static void
start_rebuilds(Engine *eng, CaptureRound *round)
{
	int			i;

	eng_begin_work(eng, "flusso: starting rebuilds");
	for (i = 0; i < eng->nix; i++)
	{
		IndexRuntime *ix = eng->ix[i];
		ListCell   *lc;
		bool		hit = false;

		if (ix->def == NULL)
			continue;
		foreach(lc, ix->watches)
			hit |= list_member_oid(round->rebuild_relids, ((FlussoWatch *) lfirst(lc))->relid);
		if (hit)
			flusso_index_start_build(ix, round->end_lsn, round->rebuild_reason);
	}
	eng_save_dirty(eng);
	eng_end_work(eng);
}

static void
close_round(Engine *eng)
{
	CaptureRound *round = flusso_capture_round();
	LiveBatch  *b = eng_new_batch(eng, round->end_lsn, true);
	bool		control = round->control_changed;

	b->nchanges = round->nchanges;
	b->oldest_commit = round->oldest_commit;
	if (round->nimages > 0)
		resolve_round(eng, round, b);
	if (round->rebuild_relids != NIL)
		start_rebuilds(eng, round);
	flusso_capture_reset_round();
	eng->round_started = 0;
	if (control || eng->ddl_reload)
		eng->reload_lsn = b->end_lsn;
	eng->ddl_reload = false;
	eng_report_lag(eng);		/* at once: building it may take a while */
}

static bool
pipeline_idle(Engine *eng)
{
	return eng->in_flight == 0 && eng->nretries == 0 && eng_unbuilt_batch(eng) == NULL;
}

/* Decode more WAL; close the round when it is ready.  True if work was done. */
bool
eng_decode_step(Engine *eng)
{
	CaptureRound *round = flusso_capture_round();
	int64		before = round->nchanges;
	TimestampTz now;

	flusso_capture_decode(ROUND_IMAGES);
	if (round->nchanges > before)
		flusso_observer->on_changes_captured(round->nchanges - before);
	now = GetCurrentTimestamp();
	if (round->nimages > 0 && eng->round_started == 0)
		eng->round_started = now;
	if (round->control_changed || round->rebuild_relids != NIL || eng->ddl_reload ||
		round->nimages >= ROUND_IMAGES ||
		(round->reached_end && round->nimages > 0 &&
		 (pipeline_idle(eng) || TimestampDifferenceExceeds(eng->round_started, now, flusso_flush_interval))))
	{
		close_round(eng);
		return true;
	}
	if (round->reached_end && round->nimages == 0 && round->end_lsn > eng->marker_lsn)
	{
		LiveBatch  *marker = eng_new_batch(eng, round->end_lsn, true);

		marker->nchanges = round->nchanges;
		marker->built = true;
		eng->marker_lsn = round->end_lsn;
		flusso_capture_reset_round();
		eng_confirm_done_batches(eng);
	}
	return !round->reached_end;
}
