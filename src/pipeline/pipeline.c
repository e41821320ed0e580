/*-------------------------------------------------------------------------
 *
 * pipeline.c
 *	  What every stage of the pipeline shares: the unit of work, and small
 *	  helpers over the engine's state.
 *
 * A unit of work is one transaction, as worker_spi has it: the statement
 * start time, the transaction, SPI, a snapshot and the activity shown in
 * pg_stat_activity, then a commit that comes back to the caller's memory
 * context (a commit leaves TopMemoryContext current, and what a step
 * allocated there after its first commit would never be freed).
 *
 * It must not call any stage: every file of the pipeline calls down to it.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "common/pg_prng.h"
#include "pgstat.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"

#include "base/redact.h"
#include "base/settings.h"
#include "pipeline/pipeline.h"
#include "sink/http.h"

/* ---- the unit of work ---- */

/* Start a transaction for eng_end_work() to commit (no SPI, no snapshot). */
void
eng_begin_transaction(Engine *eng)
{
	eng->work_caller_cxt = CurrentMemoryContext;
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
}

void
eng_begin_work(Engine *eng, const char *what)
{
	eng_begin_transaction(eng);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, what);
}

void
eng_end_work(Engine *eng)
{
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	MemoryContextSwitchTo(eng->work_caller_cxt);
	pgstat_report_stat(false);
	pgstat_report_activity(STATE_IDLE, NULL);
}

void
eng_save_dirty(Engine *eng)
{
	int			i;

	for (i = 0; i < eng->nix; i++)
		if (eng->ix[i]->dirty)
			flusso_index_save_state(eng->ix[i]);
}

/* ---- small helpers ---- */

IndexRuntime *
eng_find_index(Engine *eng, const char *name)
{
	int			i;

	for (i = 0; i < eng->nix; i++)
		if (strcmp(eng->ix[i]->name, name) == 0)
			return eng->ix[i];
	return NULL;
}

void
eng_log_limited(Engine *eng, int level, const char *fmt, const char *arg)
{
	TimestampTz now = GetCurrentTimestamp();

	if (!TimestampDifferenceExceeds(eng->last_log, now, 10000))
		return;
	eng->last_log = now;
	ereport(level, (errmsg(fmt, flusso_redact(arg))));
}

long
eng_backoff_ms(int attempts)
{
	double		base = 100.0 * (1 << Min(attempts, 16));
	double		cap = Min(base, (double) flusso_retry_max_interval);

	return (long) (cap * (0.5 + 0.5 * pg_prng_double(&pg_global_prng_state)));
}

/* ---- dropping what is in flight ---- */

/* Forget the settled letters (in eng->cxt). */
static void
free_settled_letters(Engine *eng)
{
	ListCell   *lc;

	foreach(lc, eng->settled_letters)
	{
		SettledLetters *s = lfirst(lc);

		pfree(s->index);
		list_free_deep(s->ids);
		pfree(s);
	}
	list_free(eng->settled_letters);
	eng->settled_letters = NIL;
}

void
eng_free_dead_letters(Engine *eng)
{
	ListCell   *lc;

	foreach(lc, eng->dead_letters)
	{
		List	   *row = lfirst(lc);
		ListCell   *field;

		foreach(field, row)
		{
			if (lfirst(field))
				pfree(lfirst(field));
		}
		list_free(row);
	}
	list_free(eng->dead_letters);
	eng->dead_letters = NIL;
	free_settled_letters(eng);
}

void
eng_reset_pipeline(Engine *eng)
{
	int			i;

	if (eng->sink)
		eng->sink->abort_all();
	flusso_http_abort_all();
	eng->in_flight = 0;
	dlist_init(&eng->flight);
	eng->retries = NULL;
	eng->nretries = 0;
	dlist_init(&eng->batches);
	eng->nbatches = 0;
	MemoryContextReset(eng->batches_cxt);
	eng_free_dead_letters(eng);
	for (i = 0; i < eng->nix; i++)
	{
		/* their requests are gone: none will be acknowledged */
		flusso_index_free_chunks(eng->ix[i], true);
		eng->ix[i]->next_cursor = eng->ix[i]->build_cursor;
		eng->ix[i]->build_exhausted = false;
	}
}
