/*-------------------------------------------------------------------------
 *
 * flusso.c
 *	  Module entry: _PG_init and the hooks every backend runs.
 *
 * _PG_init refuses to load outside shared_preload_libraries, defines the
 * settings, asks for shared memory, registers the launcher and installs
 * two small hooks that run in every backend:
 *	- a transaction callback that sets the sync worker's latch when a
 *	  transaction that wrote commits, so changes are picked up at once
 *	  rather than on a timer;
 *	- a ProcessUtility hook that, before DROP DATABASE, stops the sync
 *	  worker of that database (and keeps the launcher from restarting it),
 *	  so the worker never blocks the drop.
 * It owns nothing else.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "commands/dbcommands.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/utility.h"
#include "utils/acl.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "base/compat.h"
#include "base/redact.h"
#include "base/rights.h"
#include "base/settings.h"
#include "process/launcher.h"
#include "status/status.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;
static ProcessUtility_hook_type prev_process_utility_hook = NULL;

/* Did the current top-level transaction write? (set at PRE_COMMIT) */
static bool xact_wrote = false;

static void
shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	flusso_status_shmem_request();
}

static void
shmem_startup(void)
{
	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	flusso_status_shmem_startup();
}

static void
xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_PRE_COMMIT:
		case XACT_EVENT_PARALLEL_PRE_COMMIT:
			xact_wrote = TransactionIdIsValid(GetTopTransactionIdIfAny());
			break;
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
			/* the sync worker's own writes (its state) need no wakeup */
			if (xact_wrote && OidIsValid(MyDatabaseId) && !flusso_in_sync_worker)
				flusso_wake_worker(MyDatabaseId);
			xact_wrote = false;
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
			xact_wrote = false;
			break;
		default:
			break;
	}
}

/* Stop the sync worker of a database about to be dropped; wait for it. */
static void
stop_worker_for_drop(const char *dbname)
{
	Oid			dboid = get_database_oid(dbname, true);
	FlussoDbSlot *slot;
	int			waited_ms = 0;

	if (!OidIsValid(dboid) || !pg_database_ownercheck(dboid, GetUserId()))
		return;					/* dropdb reports the error itself */
	slot = flusso_status_db(dboid);
	if (slot == NULL)
		return;
	flusso_status_hold(dboid, 30000);
	while (waited_ms < 10000)
	{
		int			pid;

		LWLockAcquire(flusso_shared->lock, LW_SHARED);
		pid = slot->in_use && slot->dboid == dboid ? slot->pid : 0;
		LWLockRelease(flusso_shared->lock);
		if (pid == 0)
			break;
		if (waited_ms == 0)
			kill(pid, SIGTERM);
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 10, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		waited_ms += 10;
	}
}

static void
process_utility(PlannedStmt *pstmt, const char *queryString, bool readOnlyTree,
				ProcessUtilityContext context, ParamListInfo params,
				QueryEnvironment *queryEnv, DestReceiver *dest, QueryCompletion *qc)
{
	Node	   *parsetree = pstmt->utilityStmt;
	volatile Oid dropped = InvalidOid;

	if (IsA(parsetree, DropdbStmt) && flusso_shared != NULL)
	{
		const char *dbname = ((DropdbStmt *) parsetree)->dbname;

		dropped = get_database_oid(dbname, true);
		stop_worker_for_drop(dbname);
	}
	PG_TRY();
	{
		if (prev_process_utility_hook)
			prev_process_utility_hook(pstmt, queryString, readOnlyTree, context,
									  params, queryEnv, dest, qc);
		else
			standard_ProcessUtility(pstmt, queryString, readOnlyTree, context,
									params, queryEnv, dest, qc);
	}
	PG_CATCH();
	{
		if (OidIsValid(dropped))
		{
			flusso_status_hold(dropped, 0);
			flusso_wake_launcher();
		}
		PG_RE_THROW();
	}
	PG_END_TRY();
	if (OidIsValid(dropped))
	{
		flusso_status_forget_db(dropped);
		flusso_status_hold(dropped, 0);
		flusso_wake_launcher();
	}
	if (IsA(parsetree, CreatedbStmt) && flusso_shared != NULL)
		flusso_wake_launcher();	/* it may be waiting for this database */
}

void
_PG_init(void)
{
	if (!process_shared_preload_libraries_in_progress)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("flusso must be loaded via shared_preload_libraries"),
				 errdetail("flusso runs background workers and keeps its status in shared memory, which only a library loaded at server start can do."),
				 errhint("Add flusso to shared_preload_libraries in postgresql.conf and restart the server.")));

	flusso_define_settings();

	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = shmem_startup;
	prev_process_utility_hook = ProcessUtility_hook;
	ProcessUtility_hook = process_utility;
	RegisterXactCallback(xact_callback, NULL);
	flusso_install_log_redaction();

	flusso_register_launcher();
}
