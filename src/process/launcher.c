/*-------------------------------------------------------------------------
 *
 * launcher.c
 *	  The launcher: one sync worker per database listed in flusso.database.
 *
 * The launcher is a static background worker, connected to no database,
 * restarted by the postmaster if it dies.  It reads flusso.database at
 * start and after every reload, starts a dynamic "flusso sync" worker for
 * each listed database that exists, stops workers of databases no longer
 * listed (or all of them when flusso.enabled is off), and restarts a worker
 * that exited, with a backoff that doubles up to a minute.  Dynamic workers
 * are BGW_NEVER_RESTART: restarts are the launcher's job alone, so a crash
 * and restart of the whole server never leaves two workers per database.
 *
 * The launcher and the workers start on a hot standby too (at a consistent
 * state), where a worker only waits for the promotion (worker.c); nothing
 * here writes.  Under pg_upgrade (a server started with -b) no launcher is
 * registered at all.
 *
 * It owns only its process-local table of worker handles.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_database.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "base/flusso.h"
#include "base/settings.h"
#include "base/settingutil.h"
#include "process/launcher.h"
#include "status/status.h"

#define BACKOFF_MIN_MS	1000
#define BACKOFF_MAX_MS	60000
#define STABLE_RUN_MS	60000

typedef struct LaunchedWorker
{
	char		dbname[NAMEDATALEN];
	BackgroundWorkerHandle *handle; /* NULL when not running */
	TimestampTz started_at;
	TimestampTz next_start;		/* do not start before this */
	int			backoff_ms;
	bool		warned_missing;
	bool		wanted;
} LaunchedWorker;

static List *workers = NIL;		/* of LaunchedWorker *, in TopMemoryContext */

void
flusso_register_launcher(void)
{
	BackgroundWorker bgw;

	/*
	 * pg_upgrade starts the old and the new server in binary-upgrade mode:
	 * a sync worker would hold the old server's slot, which pg_upgrade (17
	 * and later) checks for changes not consumed ("replication slot
	 * \"flusso\" is active for PID ..."), and write to the new server while
	 * pg_upgrade restores it.
	 */
	if (IsBinaryUpgrade)
		return;
	memset(&bgw, 0, sizeof(bgw));
	bgw.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	bgw.bgw_start_time = BgWorkerStart_ConsistentState;
	bgw.bgw_restart_time = 5;
	snprintf(bgw.bgw_library_name, BGW_MAXLEN, FLUSSO_LIBRARY);
	snprintf(bgw.bgw_function_name, BGW_MAXLEN, "flusso_launcher_main");
	snprintf(bgw.bgw_name, BGW_MAXLEN, FLUSSO_LAUNCHER_TYPE);
	snprintf(bgw.bgw_type, BGW_MAXLEN, FLUSSO_LAUNCHER_TYPE);
	RegisterBackgroundWorker(&bgw);
}

static LaunchedWorker *
find_worker(const char *dbname)
{
	ListCell   *lc;

	foreach(lc, workers)
	{
		LaunchedWorker *w = lfirst(lc);

		if (strcmp(w->dbname, dbname) == 0)
			return w;
	}
	return NULL;
}

static LaunchedWorker *
get_worker(const char *dbname)
{
	LaunchedWorker *w = find_worker(dbname);

	if (w == NULL)
	{
		w = MemoryContextAllocZero(TopMemoryContext, sizeof(LaunchedWorker));
		strlcpy(w->dbname, dbname, NAMEDATALEN);
		w->backoff_ms = BACKOFF_MIN_MS;
		workers = lappend(workers, w);
	}
	return w;
}

/*
 * The OID of a database, or InvalidOid.  The launcher is connected to no
 * database, so it scans the shared catalog pg_database like autovacuum's
 * launcher does (an index scan would need pg_class).
 */
static Oid
database_oid(const char *dbname)
{
	Oid			dboid = InvalidOid;
	Relation	rel;
	TableScanDesc scan;
	HeapTuple	tup;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	(void) GetTransactionSnapshot();
	rel = table_open(DatabaseRelationId, AccessShareLock);
	scan = table_beginscan_catalog(rel, 0, NULL);
	while ((tup = heap_getnext(scan, ForwardScanDirection)) != NULL)
	{
		Form_pg_database db = (Form_pg_database) GETSTRUCT(tup);

		if (strcmp(NameStr(db->datname), dbname) == 0)
		{
			dboid = db->oid;
			break;
		}
	}
	table_endscan(scan);
	table_close(rel, AccessShareLock);
	CommitTransactionCommand();
	return dboid;
}

static void
start_worker(LaunchedWorker *w)
{
	BackgroundWorker bgw;

	memset(&bgw, 0, sizeof(bgw));
	bgw.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	bgw.bgw_start_time = BgWorkerStart_ConsistentState;
	bgw.bgw_restart_time = BGW_NEVER_RESTART;
	snprintf(bgw.bgw_library_name, BGW_MAXLEN, FLUSSO_LIBRARY);
	snprintf(bgw.bgw_function_name, BGW_MAXLEN, "flusso_worker_main");
	snprintf(bgw.bgw_name, BGW_MAXLEN, "flusso sync worker for database %s", w->dbname);
	snprintf(bgw.bgw_type, BGW_MAXLEN, FLUSSO_WORKER_TYPE);
	strlcpy(bgw.bgw_extra, w->dbname, BGW_EXTRALEN);
	bgw.bgw_notify_pid = MyProcPid;

	if (!RegisterDynamicBackgroundWorker(&bgw, &w->handle))
	{
		w->handle = NULL;
		w->next_start = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), BACKOFF_MAX_MS);
		ereport(WARNING,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("could not start the flusso sync worker for database \"%s\"",
						w->dbname),
				 errdetail("All background worker slots are in use."),
				 errhint("Raise max_worker_processes and restart the server.")));
		return;
	}
	w->started_at = GetCurrentTimestamp();
}

/* Has a started worker exited?  If so, schedule its restart. */
static void
check_exited(LaunchedWorker *w)
{
	pid_t		pid;
	TimestampTz now = GetCurrentTimestamp();

	if (w->handle == NULL ||
		GetBackgroundWorkerPid(w->handle, &pid) != BGWH_STOPPED)
		return;
	pfree(w->handle);
	w->handle = NULL;
	if (TimestampDifferenceExceeds(w->started_at, now, STABLE_RUN_MS))
		w->backoff_ms = BACKOFF_MIN_MS;
	w->next_start = TimestampTzPlusMilliseconds(now, w->backoff_ms);
	if (w->wanted)
		ereport(LOG,
				(errmsg("flusso sync worker for database \"%s\" exited; restarting it in %d ms",
						w->dbname, w->backoff_ms)));
	w->backoff_ms = Min(w->backoff_ms * 2, BACKOFF_MAX_MS);
}

static void
reconcile_one(LaunchedWorker *w, TimestampTz now)
{
	Oid			dboid;

	check_exited(w);
	if (!w->wanted)
	{
		if (w->handle)
			TerminateBackgroundWorker(w->handle);
		return;
	}
	if (w->handle != NULL || now < w->next_start)
		return;
	dboid = database_oid(w->dbname);
	if (!OidIsValid(dboid))
	{
		if (!w->warned_missing)
			ereport(LOG,
					(errmsg("flusso waits for database \"%s\", which does not exist",
							w->dbname),
					 errhint("Create the database, or remove it from flusso.database.")));
		w->warned_missing = true;
		return;					/* CREATE DATABASE wakes us */
	}
	w->warned_missing = false;
	if (flusso_status_held(dboid))
	{
		w->next_start = TimestampTzPlusMilliseconds(now, 1000);
		return;
	}
	start_worker(w);
}

/* Start, stop and restart workers to match the settings; return the next deadline. */
static long
reconcile(void)
{
	List	   *wanted = flusso_enabled ? flusso_split_list(flusso_database) : NIL;
	TimestampTz now = GetCurrentTimestamp();
	TimestampTz next = TimestampTzPlusMilliseconds(now, 10000);
	ListCell   *lc;

	foreach(lc, workers)
		((LaunchedWorker *) lfirst(lc))->wanted = false;
	foreach(lc, wanted)
		get_worker(lfirst(lc))->wanted = true;
	foreach(lc, workers)
	{
		LaunchedWorker *w = lfirst(lc);

		reconcile_one(w, now);
		if (w->wanted && w->handle == NULL && w->next_start < next)
			next = w->next_start;
	}
	list_free_deep(wanted);
	return Max(10, TimestampDifferenceMilliseconds(now, next));
}

void
flusso_launcher_main(Datum main_arg)
{
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(NULL, NULL, 0);
	flusso_status_set_launcher();
	pgstat_report_activity(STATE_IDLE, NULL);

	for (;;)
	{
		long		timeout;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		timeout = reconcile();
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 timeout, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}
