/*-------------------------------------------------------------------------
 *
 * monitor.c
 *	  The SQL functions that read flusso's shared state: the status views,
 *	  metrics, wait_synced, and requests to the worker that a caller waits on.
 *
 * Everything here runs in ordinary backends.  It reads shared memory
 * under FlussoShared->lock in LW_SHARED mode and copies what it shows; it
 * writes only the request slots (under LW_EXCLUSIVE), never a worker's
 * status.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "access/xlog.h"
#include "access/xlog_internal.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/latch.h"
#include "catalog/pg_type.h"
#include "commands/dbcommands.h"
#include "commands/extension.h"
#include "utils/builtins.h"
#include "utils/pg_lsn.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "base/flusso.h"
#include "base/rights.h"
#include "base/settings.h"
#include "base/settingutil.h"
#include "definition/stored.h"
#include "status/status.h"

/* ---- SQL-callable status functions ---- */

static const char *
phase_name(FlussoPhase phase)
{
	static const char *const names[] = {"starting", "backfilling", "live", "stopped", "standby"};

	return names[phase];
}

static const char *
index_phase_name(FlussoIndexPhase phase)
{
	static const char *const names[] = {
		"pending", "backfilling", "seeded", "paused", "stopped", "rebuilding"
	};

	return names[phase];
}

static const char *
reachability_name(FlussoReachability state)
{
	static const char *const names[] = {
		"unknown", "dry run", "reachable", "unreachable", "unsupported"
	};

	return names[state];
}

#define STATUS_COLS 27

/* Does an error of the index still apply (stopped, waiting, nothing acknowledged since)? */
static bool
error_active(const FlussoIndexSlot *s)
{
	return s->phase == FLUSSO_INDEX_STOPPED || s->waiting_for[0] != '\0' ||
		(s->last_error_at != 0 && s->last_error_at > s->last_ok_at);
}

/* Is everything of a database's worker well: running, engine answering, no index in error? */
static bool
db_healthy(FlussoDbSlot *s)
{
	int			i;

	Assert(LWLockHeldByMe(flusso_shared->lock));
	if (s->pid == 0 || s->phase == FLUSSO_PHASE_STOPPED ||
		(s->search_state != FLUSSO_SEARCH_REACHABLE && s->search_state != FLUSSO_SEARCH_DRY_RUN))
		return false;
	for (i = 0; i < flusso_shared->nindexes; i++)
	{
		FlussoIndexSlot *ix = &flusso_shared->indexes[i];

		if (ix->in_use && ix->dboid == s->dboid && error_active(ix))
			return false;
	}
	return true;
}

/* Seconds since a commit still waiting for OpenSearch (0 when none waits). */
static double
lag_seconds(TimestampTz oldest)
{
	if (oldest == 0)
		return 0.0;
	return Max(0.0, (GetCurrentTimestamp() - oldest) / 1000000.0);
}

static void
db_status_row(FlussoDbSlot *s, bool full_errors, Datum *values, bool *nulls)
{
	uint64		captured = pg_atomic_read_u64(&s->changes_captured);
	uint64		committed = pg_atomic_read_u64(&s->changes_committed);
	uint64		lag = pg_atomic_read_u64(&s->slot_lag_bytes);
	uint64		flushes = pg_atomic_read_u64(&s->flush_count);
	uint64		synced = pg_atomic_read_u64(&s->synced_lsn);
	int			i = 0;

	values[i++] = CStringGetTextDatum(s->dbname);
	values[i++] = CStringGetTextDatum(phase_name(s->phase));
	values[i++] = CStringGetTextDatum(s->activity);
	values[i] = TimestampTzGetDatum(s->started_at);
	nulls[i++] = s->pid == 0;
	if (s->pid != 0)
		values[i] = DirectFunctionCall2(timestamp_mi,
										TimestampTzGetDatum(GetCurrentTimestamp()),
										TimestampTzGetDatum(s->started_at));
	nulls[i++] = s->pid == 0;
	values[i++] = Int64GetDatum((int64) captured);
	values[i++] = Int64GetDatum((int64) committed);
	values[i++] = Int64GetDatum((int64) (captured > committed ? captured - committed : 0));
	values[i++] = Int64GetDatum((int64) pg_atomic_read_u64(&s->documents_built));
	values[i++] = Int64GetDatum((int64) pg_atomic_read_u64(&s->batches));
	values[i] = Int64GetDatum((int64) lag);
	nulls[i++] = lag == PG_UINT64_MAX;
	values[i++] = Int64GetDatum((int64) pg_atomic_read_u64(&s->errors));
	/* errors may carry row values: superusers see them, others see them stripped */
	values[i] = CStringGetTextDatum(full_errors ? s->last_error : s->last_error_public);
	nulls[i++] = s->last_error[0] == '\0';
	values[i] = TimestampTzGetDatum(s->last_error_at);
	nulls[i++] = s->last_error_at == 0;
	values[i] = Int32GetDatum(s->pid);
	nulls[i++] = s->pid == 0;
	values[i] = LSNGetDatum(synced);
	nulls[i++] = synced == 0;
	values[i] = Float8GetDatum(flushes ? pg_atomic_read_u64(&s->flush_us_total) / 1000.0 / flushes : 0);
	nulls[i++] = flushes == 0;
	values[i++] = CStringGetTextDatum(reachability_name(s->search_state));
	values[i] = CStringGetTextDatum(s->search_version);
	nulls[i++] = s->search_version[0] == '\0';
	values[i] = CStringGetTextDatum(s->search_error);
	nulls[i++] = s->search_error[0] == '\0';
	values[i] = TimestampTzGetDatum(s->search_checked_at);
	nulls[i++] = s->search_checked_at == 0;
	values[i] = BoolGetDatum(s->tls_verify);
	nulls[i++] = s->search_checked_at == 0;
	values[i] = Float8GetDatum(lag_seconds(s->oldest_unacked));
	nulls[i++] = s->pid == 0;
	values[i++] = BoolGetDatum(s->lag_warning);
	values[i++] = BoolGetDatum(db_healthy(s));
	/* 0.5.0: the engine (the columns above are 0.4.0's, in their order) */
	values[i] = CStringGetTextDatum(s->search_engine);
	nulls[i++] = s->search_engine[0] == '\0';
	values[i] = CStringGetTextDatum(s->search_version);
	nulls[i++] = s->search_version[0] == '\0';
	Assert(i == STATUS_COLS);
}

PG_FUNCTION_INFO_V1(flusso_status);
Datum
flusso_status(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	bool		full_errors;
	int			i;

	flusso_status_require_preload();
	full_errors = superuser();	/* a catalog lookup: not under the lock */
	InitMaterializedSRF(fcinfo, 0);
	LWLockAcquire(flusso_shared->lock, LW_SHARED);
	for (i = 0; i < flusso_shared->ndbs; i++)
	{
		FlussoDbSlot *s = &flusso_shared->dbs[i];
		Datum		values[STATUS_COLS];
		bool		nulls[STATUS_COLS] = {0};

		if (!s->in_use)
			continue;
		db_status_row(s, full_errors, values, nulls);
		/* an older version of the SQL objects asks for fewer columns */
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	LWLockRelease(flusso_shared->lock);
	return (Datum) 0;
}

#define INDEX_STATUS_COLS 19

/* Time left for a running build, from its pace so far; (Datum) 0 if unknown. */
static Datum
eta(FlussoIndexSlot *s)
{
	double		elapsed;
	double		left;
	Interval   *iv;

	if (s->build_generation == 0 || s->backfill_done <= 0 || s->build_started_at == 0)
		return (Datum) 0;
	elapsed = (GetCurrentTimestamp() - s->build_started_at) / 1000000.0;
	left = Max(0, s->backfill_total - s->backfill_done) * elapsed / s->backfill_done;
	iv = palloc0(sizeof(Interval));
	iv->time = (int64) (left * 1000000.0);
	return IntervalPGetDatum(iv);
}

/* An index slot copied out under the lock, with its database's name. */
typedef struct IndexRow
{
	FlussoIndexSlot slot;
	char		dbname[NAMEDATALEN];
	bool		has_db;
} IndexRow;

static void
index_status_row(IndexRow *row, Datum *values, bool *nulls)
{
	FlussoIndexSlot *s = &row->slot;
	int			i = 0;

	values[i] = CStringGetTextDatum(row->dbname);
	nulls[i++] = !row->has_db;
	values[i++] = CStringGetTextDatum(s->name);
	values[i++] = CStringGetTextDatum(index_phase_name(s->phase));
	values[i] = Int32GetDatum(s->live_generation);
	nulls[i++] = s->live_generation == 0;
	values[i] = Int32GetDatum(s->build_generation);
	nulls[i++] = s->build_generation == 0;
	values[i++] = Int64GetDatum((int64) pg_atomic_read_u64(&s->upserted));
	values[i++] = Int64GetDatum((int64) pg_atomic_read_u64(&s->deleted));
	values[i++] = Int64GetDatum((int64) pg_atomic_read_u64(&s->errors));
	values[i++] = Int64GetDatum(s->backfill_done);
	values[i] = Int64GetDatum(s->backfill_total);
	nulls[i++] = s->backfill_total <= 0 && s->backfill_done == 0;
	values[i] = Float8GetDatum(s->build_generation == 0 ? 100.0 :
							   s->backfill_total > 0 ?
							   Min(99.9, 100.0 * s->backfill_done / s->backfill_total) : 0.0);
	nulls[i++] = false;
	/* errors may carry row values: only who may manage the index sees them whole */
	values[i] = CStringGetTextDatum(OidIsValid(s->owner) && flusso_rights_may_manage(s->owner) ?
									s->last_error : s->last_error_public);
	nulls[i++] = s->last_error[0] == '\0';
	values[i] = TimestampTzGetDatum(s->last_error_at);
	nulls[i++] = s->last_error_at == 0;
	values[i++] = Float8GetDatum(lag_seconds(s->oldest_unacked));
	values[i] = eta(s);
	nulls[i] = values[i] == (Datum) 0;
	i++;
	values[i] = CStringGetDatum(OidIsValid(s->owner) ? flusso_role_name(s->owner) : "");
	values[i] = DirectFunctionCall1(namein, values[i]);
	nulls[i++] = !OidIsValid(s->owner);
	values[i] = CStringGetTextDatum(s->waiting_for);
	nulls[i++] = s->waiting_for[0] == '\0';
	values[i] = TimestampTzGetDatum(s->waiting_since);
	nulls[i++] = s->waiting_since == 0;
	values[i++] = BoolGetDatum(error_active(s));
	Assert(i == INDEX_STATUS_COLS);
}

PG_FUNCTION_INFO_V1(flusso_index_status);
Datum
flusso_index_status(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	IndexRow   *rows;
	int			n = 0;
	int			i;

	flusso_status_require_preload();
	InitMaterializedSRF(fcinfo, 0);
	rows = palloc(sizeof(IndexRow) * Max(1, flusso_shared->nindexes));
	LWLockAcquire(flusso_shared->lock, LW_SHARED);
	for (i = 0; i < flusso_shared->nindexes; i++)
	{
		FlussoIndexSlot *s = &flusso_shared->indexes[i];
		FlussoDbSlot *db;

		if (!s->in_use)
			continue;
		memcpy(&rows[n].slot, s, sizeof(FlussoIndexSlot));
		db = flusso_status_db(s->dboid);
		rows[n].has_db = db != NULL;
		strlcpy(rows[n].dbname, db ? db->dbname : "", NAMEDATALEN);
		n++;
	}
	LWLockRelease(flusso_shared->lock);
	/* who may see which errors is a catalog question: asked outside the lock */
	for (i = 0; i < n; i++)
	{
		Datum		values[INDEX_STATUS_COLS];
		bool		nulls[INDEX_STATUS_COLS] = {0};

		index_status_row(&rows[i], values, nulls);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

/* ---- waiting for the worker ---- */

/* The end of the last WAL record written so far (not the next page's header). */
static XLogRecPtr
last_record_end(void)
{
	XLogRecPtr	lsn = GetXLogInsertRecPtr();

	if (lsn % XLOG_BLCKSZ == SizeOfXLogShortPHD && lsn % wal_segment_size != SizeOfXLogLongPHD)
		lsn -= SizeOfXLogShortPHD;
	else if (lsn % wal_segment_size == SizeOfXLogLongPHD)
		lsn -= SizeOfXLogLongPHD;
	return lsn;
}

/* How long a waiting call goes on without a sync worker before it gives up. */
#define NO_WORKER_GRACE_MS 30000

/* Is database dbname in flusso.database? */
static bool
database_synced(void)
{
	ListCell   *lc;

	foreach(lc, flusso_split_list(flusso_database))
	{
		if (strcmp(lfirst(lc), get_database_name(MyDatabaseId)) == 0)
			return true;
	}
	return false;
}

/*
 * A call that waits for the worker must end: when the database has no
 * sync worker, at once; when its worker is gone for NO_WORKER_GRACE_MS
 * (it restarts with a backoff), with an error.  since is when the worker
 * was last seen missing (0: it runs).
 */
static void
check_worker(TimestampTz *since)
{
	FlussoDbSlot *db = flusso_status_db(MyDatabaseId);
	bool		running = db != NULL && db->pid != 0;

	if (RecoveryInProgress())
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("flusso does not sync on a standby"),
				 errdetail("This server is in recovery: the primary's sync worker keeps the indexes in sync, and this server's worker starts once it is promoted."),
				 errhint("Call it on the primary server.")));
	if (!database_synced())
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("no flusso sync worker serves database \"%s\"", get_database_name(MyDatabaseId)),
				 errdetail("flusso.database is \"%s\".", flusso_database),
				 errhint("Add the database to flusso.database and reload the configuration (SELECT pg_reload_conf()).")));
	if (running)
	{
		*since = 0;
		return;
	}
	if (*since == 0)
		*since = GetCurrentTimestamp();
	else if (TimestampDifferenceExceeds(*since, GetCurrentTimestamp(), NO_WORKER_GRACE_MS))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("the flusso sync worker of database \"%s\" is not running", get_database_name(MyDatabaseId)),
				 errhint("The server log says why; flusso.status shows its state.")));
}

typedef enum SyncVerdict
{
	SYNC_WAIT,
	SYNC_DONE,
	SYNC_NEVER					/* an index is stopped or paused */
} SyncVerdict;

static SyncVerdict
sync_verdict(XLogRecPtr target, List *names)
{
	FlussoDbSlot *db = flusso_status_db(MyDatabaseId);
	SyncVerdict verdict = SYNC_DONE;
	ListCell   *lc;

	/*
	 * Until the worker has read up to the target, requests may still change
	 * things; until it serves this CREATE EXTENSION (one dropped and created
	 * again is noticed within half a second), what it says is of the old one.
	 */
	if (db == NULL || db->pid == 0 || pg_atomic_read_u64(&db->synced_lsn) < target ||
		db->serving_extension != get_extension_oid(FLUSSO_EXTENSION_NAME, false))
		return SYNC_WAIT;
	LWLockAcquire(flusso_shared->lock, LW_SHARED);
	foreach(lc, names)
	{
		FlussoIndexSlot *s = flusso_status_find_index(MyDatabaseId, lfirst(lc));

		if (s && (s->phase == FLUSSO_INDEX_STOPPED || s->phase == FLUSSO_INDEX_PAUSED))
		{
			verdict = SYNC_NEVER;
			break;
		}
		if (s == NULL || s->phase != FLUSSO_INDEX_SEEDED || s->build_generation != 0)
			verdict = SYNC_WAIT;
	}
	LWLockRelease(flusso_shared->lock);
	return verdict;
}

static List *
definition_names(void)
{
	List	   *names = NIL;
	uint64		i;
	MemoryContext caller = CurrentMemoryContext;
	FlussoRights rights;
	int			rc;

	SPI_connect();
	flusso_rights_as_extension(&rights);
	rc = SPI_execute("SELECT d.name FROM flusso.definitions d", true, 0);
	flusso_rights_restore(&rights);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "could not read flusso.definitions");
	for (i = 0; i < SPI_processed; i++)
	{
		char	   *name = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1);
		MemoryContext spi = MemoryContextSwitchTo(caller);

		names = lappend(names, pstrdup(name));
		MemoryContextSwitchTo(spi);
	}
	SPI_finish();
	return names;
}

/*
 * Ask the worker to refresh every index (make what it wrote searchable),
 * and wait for it until deadline; false when it could not.
 */
static bool
refresh_indexes(TimestampTz deadline)
{
	uint32		id = flusso_status_post_request(MyDatabaseId, "", true);
	TimestampTz no_worker_since = 0;
	int			generation;
	char	   *error = NULL;

	flusso_wake_worker(MyDatabaseId);
	while (!flusso_status_request_result(id, &generation, &error))
	{
		if (GetCurrentTimestamp() >= deadline)
		{
			flusso_status_abandon_request(id);
			return false;
		}
		check_worker(&no_worker_since);
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 10, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
	if (error)
		ereport(WARNING,
				(errmsg("flusso.wait_synced(refresh => true): %s", error),
				 errdetail("Everything is acknowledged by OpenSearch, but not yet searchable.")));
	return error == NULL;
}

/*
 * flusso.wait_synced(timeout): true once everything committed before the
 * call is acknowledged by OpenSearch in every index of this database (and
 * no index is still being built); false on timeout, or at once when an
 * index is stopped or paused.
 */
PG_FUNCTION_INFO_V1(flusso_wait_synced);
Datum
flusso_wait_synced(PG_FUNCTION_ARGS)
{
	Interval   *timeout = PG_GETARG_INTERVAL_P(0);
	bool		refresh = PG_NARGS() > 1 && PG_GETARG_BOOL(1);
	int64		timeout_ms = (timeout->time +
							  (timeout->day + (int64) timeout->month * DAYS_PER_MONTH) * USECS_PER_DAY) / 1000;
	TimestampTz deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), timeout_ms);
	XLogRecPtr	target;
	List	   *names;
	TimestampTz no_worker_since = 0;

	flusso_status_require_preload();
	if (flusso_in_sync_worker)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("flusso.wait_synced() cannot be called by the sync worker itself"),
				 errdetail("An expression of an index called it: the worker would wait for itself.")));
	if (TransactionIdIsValid(GetTopTransactionIdIfAny()))
		ereport(ERROR,
				(errcode(ERRCODE_ACTIVE_SQL_TRANSACTION),
				 errmsg("flusso.wait_synced() cannot wait for changes of its own transaction"),
				 errdetail("This transaction has written and not committed; flusso only sees committed changes."),
				 errhint("Call flusso.wait_synced() after COMMIT.")));
	check_worker(&no_worker_since);
	names = definition_names();
	target = last_record_end();
	XLogFlush(target);
	flusso_wake_worker(MyDatabaseId);
	for (;;)
	{
		SyncVerdict v = sync_verdict(target, names);

		if (v != SYNC_WAIT)
			PG_RETURN_BOOL(v == SYNC_DONE && (!refresh || refresh_indexes(deadline)));
		if (GetCurrentTimestamp() >= deadline)
			PG_RETURN_BOOL(false);
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 10, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
}

/* ---- reindex ---- */

/* The index must exist and the caller must be allowed to manage it. */
static void
check_reindex(const char *name)
{
	SPI_connect();
	(void) flusso_definition_managed(name, "reindex");
	SPI_finish();
}

/* Wait until the index's generation g is live and nothing is being built. */
static void
wait_for_generation(const char *name, int g)
{
	TimestampTz no_worker_since = 0;

	for (;;)
	{
		FlussoIndexSlot *s;
		bool		done = false;
		FlussoIndexPhase phase = FLUSSO_INDEX_PENDING;

		LWLockAcquire(flusso_shared->lock, LW_SHARED);
		s = flusso_status_find_index(MyDatabaseId, name);
		if (s)
		{
			done = s->live_generation >= g && s->build_generation == 0;
			phase = s->phase;
		}
		LWLockRelease(flusso_shared->lock);
		if (done)
			return;
		if (phase == FLUSSO_INDEX_STOPPED || phase == FLUSSO_INDEX_PAUSED)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("index \"%s\" %s while it was being rebuilt", name,
							phase == FLUSSO_INDEX_PAUSED ? "was paused" : "stopped"),
					 errhint("flusso.index_status shows why.")));
		check_worker(&no_worker_since);
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 50, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
}

/*
 * flusso.reindex(name, wait): rebuild the index into a new generation, fill
 * it while live changes keep flowing to both, then swap the alias.  The
 * request goes to the worker through shared memory, so it is seen at once
 * (even inside a transaction); with wait, the call returns after the swap.
 */
PG_FUNCTION_INFO_V1(flusso_reindex);
Datum
flusso_reindex(PG_FUNCTION_ARGS)
{
	char	   *name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	bool		wait = PG_NARGS() > 1 && !PG_ARGISNULL(1) && PG_GETARG_BOOL(1);
	uint32		id;
	int			generation = 0;
	char	   *error = NULL;

	TimestampTz no_worker_since = 0;

	flusso_status_require_preload();
	flusso_require_current_sql();
	if (flusso_in_sync_worker)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("flusso.reindex() cannot be called by the sync worker itself")));
	check_reindex(name);
	check_worker(&no_worker_since);
	id = flusso_status_post_request(MyDatabaseId, name, wait);
	flusso_wake_worker(MyDatabaseId);
	if (!wait)
		PG_RETURN_VOID();
	while (!flusso_status_request_result(id, &generation, &error))
	{
		check_worker(&no_worker_since);
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 50, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
	if (error)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("could not reindex \"%s\": %s", name, error)));
	wait_for_generation(name, generation);
	PG_RETURN_VOID();
}

/* ---- metrics ---- */

static void
metric_head(StringInfo out, const char *name, const char *type, const char *help)
{
	appendStringInfo(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static char *
label(const char *value)
{
	StringInfoData out;
	const char *p;

	initStringInfo(&out);
	for (p = value; *p; p++)
	{
		if (*p == '\\' || *p == '"')
			appendStringInfoChar(&out, '\\');
		if (*p == '\n')
			appendStringInfoString(&out, "\\n");
		else
			appendStringInfoChar(&out, *p);
	}
	return out.data;
}

typedef struct DbMetric
{
	const char *name;
	const char *type;
	const char *help;
} DbMetric;

static const DbMetric db_metrics[] = {
	{"flusso_up", "gauge", "1 when the sync worker runs."},
	{"flusso_changes_captured_total", "counter", "Row changes of indexed tables decoded."},
	{"flusso_changes_committed_total", "counter", "Captured changes whose documents OpenSearch acknowledged."},
	{"flusso_changes_in_flight", "gauge", "Captured changes not yet acknowledged."},
	{"flusso_documents_built_total", "counter", "Documents built for live changes."},
	{"flusso_batches_total", "counter", "Batches acknowledged."},
	{"flusso_errors_total", "counter", "Errors met."},
	{"flusso_slot_lag_bytes", "gauge", "WAL the replication slot holds (sampled)."},
	{"flusso_lag_seconds", "gauge", "Age of the oldest committed change not yet acknowledged."},
	{"flusso_lag_warning", "gauge", "1 when the slot lag is past flusso.max_lag_bytes."},
	{"flusso_opensearch_reachable", "gauge", "1 when the search engine answered the last check and is one flusso supports."},
	{"flusso_uptime_seconds", "gauge", "Seconds since the sync worker started."},
	{"flusso_healthy", "gauge", "1 when the worker runs, OpenSearch answers and no index has an error that still applies."},
};

static double
db_metric_value(FlussoDbSlot *s, int m)
{
	uint64		captured = pg_atomic_read_u64(&s->changes_captured);
	uint64		committed = pg_atomic_read_u64(&s->changes_committed);
	uint64		lag = pg_atomic_read_u64(&s->slot_lag_bytes);

	switch (m)
	{
		case 0:
			return s->pid != 0;
		case 1:
			return captured;
		case 2:
			return committed;
		case 3:
			return captured > committed ? captured - committed : 0;
		case 4:
			return pg_atomic_read_u64(&s->documents_built);
		case 5:
			return pg_atomic_read_u64(&s->batches);
		case 6:
			return pg_atomic_read_u64(&s->errors);
		case 7:
			return lag == PG_UINT64_MAX ? 0 : lag;
		case 8:
			return lag_seconds(s->oldest_unacked);
		case 9:
			return s->lag_warning;
		case 10:
			return s->search_state == FLUSSO_SEARCH_REACHABLE;
		case 11:
			return s->pid ? (GetCurrentTimestamp() - s->started_at) / 1000000.0 : 0;
		default:
			return db_healthy(s);
	}
}

static void
append_db_metrics(StringInfo out)
{
	int			m;
	int			i;

	for (m = 0; m < (int) lengthof(db_metrics); m++)
	{
		metric_head(out, db_metrics[m].name, db_metrics[m].type, db_metrics[m].help);
		for (i = 0; i < flusso_shared->ndbs; i++)
		{
			FlussoDbSlot *s = &flusso_shared->dbs[i];

			if (s->in_use)
				appendStringInfo(out, "%s{database=\"%s\"} %.17g\n", db_metrics[m].name,
								 label(s->dbname), db_metric_value(s, m));
		}
	}
}

/* The engine each worker found, as labels of an info metric (none before one answered). */
static void
append_engine_info(StringInfo out)
{
	const char *name = "flusso_search_engine_info";
	int			i;

	metric_head(out, name, "gauge", "The search engine and version the worker found (GET /); 1 when flusso supports it, 0 when it refuses it.");
	for (i = 0; i < flusso_shared->ndbs; i++)
	{
		FlussoDbSlot *s = &flusso_shared->dbs[i];

		if (s->in_use && s->search_engine[0] != '\0')
			appendStringInfo(out, "%s{database=\"%s\",engine=\"%s\",version=\"%s\"} %d\n",
							 name, label(s->dbname), label(s->search_engine),
							 label(s->search_version), s->search_state != FLUSSO_SEARCH_UNSUPPORTED);
	}
}

static void
append_latency_histogram(StringInfo out)
{
	const char *name = "flusso_bulk_request_duration_seconds";
	int			i;

	metric_head(out, name, "histogram", "Time from sending a bulk request to its answer.");
	for (i = 0; i < flusso_shared->ndbs; i++)
	{
		FlussoDbSlot *s = &flusso_shared->dbs[i];
		char	   *db;
		uint64		cumulative = 0;
		int			b;

		if (!s->in_use)
			continue;
		db = label(s->dbname);
		for (b = 0; b < FLUSSO_LATENCY_BUCKETS; b++)
		{
			cumulative += pg_atomic_read_u64(&s->latency_buckets[b]);
			if (b < FLUSSO_LATENCY_BUCKETS - 1)
				appendStringInfo(out, "%s_bucket{database=\"%s\",le=\"%g\"} " UINT64_FORMAT "\n",
								 name, db, flusso_latency_bounds_ms[b] / 1000.0, cumulative);
			else
				appendStringInfo(out, "%s_bucket{database=\"%s\",le=\"+Inf\"} " UINT64_FORMAT "\n",
								 name, db, cumulative);
		}
		appendStringInfo(out, "%s_sum{database=\"%s\"} %.6f\n", name, db,
						 pg_atomic_read_u64(&s->flush_us_total) / 1000000.0);
		appendStringInfo(out, "%s_count{database=\"%s\"} " UINT64_FORMAT "\n", name, db,
						 pg_atomic_read_u64(&s->flush_count));
	}
}

static const DbMetric index_metrics[] = {
	{"flusso_index_documents_upserted_total", "counter", "Documents written."},
	{"flusso_index_documents_deleted_total", "counter", "Documents deleted."},
	{"flusso_index_errors_total", "counter", "Documents OpenSearch rejected, and other errors."},
	{"flusso_index_generation", "gauge", "The live generation (the alias points at it)."},
	{"flusso_index_building_generation", "gauge", "The generation being built, 0 when none."},
	{"flusso_index_backfill_ratio", "gauge", "Progress of the running build, 0 to 1 (1 when none runs)."},
	{"flusso_index_lag_seconds", "gauge", "Age of the oldest committed change to this index not yet acknowledged."},
	{"flusso_index_error_active", "gauge", "1 while an error of the index still applies (stopped, waiting for a lock, nothing acknowledged since)."},
	{"flusso_index_waiting_seconds", "gauge", "How long the index has been waiting for a lock, 0 when it is not."},
};

static double
index_metric_value(FlussoIndexSlot *s, int m)
{
	switch (m)
	{
		case 0:
			return pg_atomic_read_u64(&s->upserted);
		case 1:
			return pg_atomic_read_u64(&s->deleted);
		case 2:
			return pg_atomic_read_u64(&s->errors);
		case 3:
			return s->live_generation;
		case 4:
			return s->build_generation;
		case 5:
			return s->build_generation == 0 ? 1.0 :
				s->backfill_total > 0 ? Min(1.0, (double) s->backfill_done / s->backfill_total) : 0.0;
		case 6:
			return lag_seconds(s->oldest_unacked);
		case 7:
			return error_active(s);
		default:
			return s->waiting_since ? lag_seconds(s->waiting_since) : 0;
	}
}

static void
append_index_metrics(StringInfo out)
{
	int			m;
	int			i;

	for (m = 0; m < (int) lengthof(index_metrics); m++)
	{
		metric_head(out, index_metrics[m].name, index_metrics[m].type, index_metrics[m].help);
		for (i = 0; i < flusso_shared->nindexes; i++)
		{
			FlussoIndexSlot *s = &flusso_shared->indexes[i];
			FlussoDbSlot *db;

			if (!s->in_use || (db = flusso_status_db(s->dboid)) == NULL)
				continue;
			appendStringInfo(out, "%s{database=\"%s\",index=\"%s\"} %.17g\n",
							 index_metrics[m].name, label(db->dbname), label(s->name),
							 index_metric_value(s, m));
		}
	}
	metric_head(out, "flusso_index_state", "gauge", "1 for the state the index is in.");
	for (i = 0; i < flusso_shared->nindexes; i++)
	{
		FlussoIndexSlot *s = &flusso_shared->indexes[i];
		FlussoDbSlot *db;

		if (s->in_use && (db = flusso_status_db(s->dboid)) != NULL)
			appendStringInfo(out, "flusso_index_state{database=\"%s\",index=\"%s\",state=\"%s\"} 1\n",
							 label(db->dbname), label(s->name), index_phase_name(s->phase));
	}
}

/* flusso.metrics(): every status figure in the Prometheus text format. */
PG_FUNCTION_INFO_V1(flusso_metrics);
Datum
flusso_metrics(PG_FUNCTION_ARGS)
{
	StringInfoData out;

	flusso_status_require_preload();
	initStringInfo(&out);
	LWLockAcquire(flusso_shared->lock, LW_SHARED);
	append_db_metrics(&out);
	append_engine_info(&out);
	append_latency_histogram(&out);
	append_index_metrics(&out);
	LWLockRelease(flusso_shared->lock);
	PG_RETURN_TEXT_P(cstring_to_text(out.data));
}
