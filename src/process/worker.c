/*-------------------------------------------------------------------------
 *
 * worker.c
 *	  The sync worker of one database: its process lifecycle and main loop.
 *
 * The launcher starts one of these per database in flusso.database.  This
 * file owns the process: signals, the database connection, the latch wait,
 * configuration reloads, the periodic checks (is the extension there, does
 * OpenSearch answer) and the catch-per-step error handling.  The pipeline
 * itself is the engine's (engine.c); the loop below only orchestrates.
 *
 * On a hot standby the worker starts too, and waits: nothing may be
 * written there (no slot, no index state), so it only answers
 * flusso.status with phase "standby" and checks OpenSearch, until the
 * server is promoted; then it syncs, without a restart.
 *
 * The loop follows worker_spi: wait on the latch (or on the HTTP sockets
 * while requests are in flight), reset it, CHECK_FOR_INTERRUPTS(), reload
 * the configuration on SIGHUP, then do one step of work.  SIGTERM is die();
 * SIGUSR1 stays with procsignal_sigusr1_handler so that DROP DATABASE's
 * barriers and pg_terminate_backend() get through.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "access/xlog.h"
#include "executor/spi.h"
#include "commands/extension.h"
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
#include "base/redact.h"
#include "base/rights.h"
#include "base/settings.h"
#include "base/settingutil.h"
#include "capture/capture.h"
#include "pipeline/engine.h"
#include "process/worker.h"
#include "sink/http.h"
#include "sink/search.h"
#include "status/status.h"

#define EXTENSION_RECHECK_MS	10000
#define STANDBY_RECHECK_MS		1000
#define ERROR_BACKOFF_MIN_MS	100
#define ERROR_BACKOFF_MAX_MS	30000

typedef struct WorkerState
{
	char		dbname[NAMEDATALEN];
	bool		extension_present;
	Oid			extension_oid;	/* the one being synced: a new one is a restart */
	bool		said_waiting;	/* logged "waiting for CREATE EXTENSION" */
	bool		said_version;	/* logged that the SQL objects are too old */
	bool		standby;		/* waiting for this standby's promotion */
	TimestampTz next_extension_check;
	TimestampTz next_ping;
	int			error_backoff_ms;
	MemoryContext step_context; /* reset after every step */
} WorkerState;

static WorkerState state;

/* The installed version of the extension in this database (and its OID), or NULL. */
static char *
installed_version(Oid *oid)
{
	char	   *version = NULL;
	MemoryContext caller = CurrentMemoryContext;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	*oid = get_extension_oid(FLUSSO_EXTENSION_NAME, true);
	if (OidIsValid(*oid))
	{
		SPI_connect();
		PushActiveSnapshot(GetTransactionSnapshot());
		if (SPI_execute("SELECT extversion FROM pg_catalog.pg_extension WHERE extname = 'flusso'",
						true, 1) == SPI_OK_SELECT && SPI_processed == 1)
			version = MemoryContextStrdup(TopMemoryContext,
										  SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1));
		PopActiveSnapshot();
		SPI_finish();
	}
	CommitTransactionCommand();
	/* the commit left TopMemoryContext current: back to the step's */
	MemoryContextSwitchTo(caller);
	return version;
}

/* The SQL objects must be those of this library's version. */
static bool
version_matches(const char *version)
{
	if (strcmp(version, FLUSSO_VERSION) == 0)
	{
		state.said_version = false;
		return true;
	}
	if (!state.said_version)
		ereport(WARNING,
				(errmsg("flusso in database \"%s\" is at version %s, the library at %s; syncing waits",
						state.dbname, version, FLUSSO_VERSION),
				 errhint("Run ALTER EXTENSION flusso UPDATE in database \"%s\".", state.dbname)));
	state.said_version = true;
	flusso_observer->on_phase(FLUSSO_PHASE_STOPPED);
	flusso_observer->on_activity(psprintf("waiting for ALTER EXTENSION flusso UPDATE (installed %s, library %s)",
										  version, FLUSSO_VERSION));
	return false;
}

static bool
extension_installed(bool *missing, Oid *oid)
{
	char	   *version = installed_version(oid);
	bool		usable = version != NULL && version_matches(version);

	*missing = version == NULL;
	if (version)
		pfree(version);
	return usable;
}

/* Without the extension nobody reads flusso's slot: it goes, or it would hold WAL for ever. */
static void
drop_slots(void)
{
	MemoryContext caller = CurrentMemoryContext;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	flusso_capture_drop_stale_slots(true, psprintf("the flusso extension is not installed in database \"%s\"",
												   state.dbname));
	CommitTransactionCommand();
	MemoryContextSwitchTo(caller);	/* the commit left TopMemoryContext current */
}

/* Follow CREATE / DROP EXTENSION; returns whether the extension is there. */
static bool
check_extension(void)
{
	TimestampTz now = GetCurrentTimestamp();
	bool		present;
	bool		missing;
	Oid			oid;

	/* while syncing, look again at most twice a second (and after errors) */
	if (state.extension_present && now < state.next_extension_check)
		return true;
	state.next_extension_check = TimestampTzPlusMilliseconds(now, 500);
	present = extension_installed(&missing, &oid);
	if (present && state.extension_present && oid != state.extension_oid)
	{
		/* dropped and created again between two looks: start over */
		ereport(LOG, (errmsg("flusso extension was created again in database \"%s\"; syncing starts over",
							 state.dbname)));
		flusso_engine_stop();
		flusso_status_set_serving(InvalidOid);
		drop_slots();
		state.extension_present = false;
	}
	state.extension_oid = oid;

	if (present && !state.extension_present)
	{
		ereport(LOG, (errmsg("flusso extension found in database \"%s\"; syncing starts",
							 state.dbname)));
		flusso_engine_start();
		flusso_status_set_serving(oid);
	}
	else if (!present && state.extension_present)
	{
		ereport(LOG, (errmsg("flusso extension dropped from database \"%s\"; syncing stops",
							 state.dbname)));
		flusso_engine_stop();
		flusso_status_set_serving(InvalidOid);
	}
	if (!present && missing)
		drop_slots();			/* dropped just now, or while no worker ran */
	if (!present && !state.said_waiting && !state.said_version)
		ereport(LOG,
				(errmsg("flusso sync worker waits for CREATE EXTENSION flusso in database \"%s\"",
						state.dbname)));
	if (!present && !state.said_version)
	{
		state.said_waiting = true;
		flusso_observer->on_phase(FLUSSO_PHASE_STARTING);
		flusso_observer->on_activity("waiting for CREATE EXTENSION flusso");
	}
	state.extension_present = present;
	return present;
}

static void
maybe_ping(void)
{
	TimestampTz now = GetCurrentTimestamp();

	if (now < state.next_ping)
		return;
	flusso_search_ping();
	state.next_ping = TimestampTzPlusMilliseconds(now, flusso_lag_poll_interval);
}

/*
 * PostgreSQL 15.19 and later only load output plugins listed in
 * output_plugin_libraries.  The worker decodes its own slot with its own
 * plugin, so it adds flusso to that list for its own session only; the
 * server-wide allowlist stays as the administrator set it.
 */
static void
allow_own_plugin(void)
{
	const char *current;
	List	   *names;
	ListCell   *lc;

	if (GetConfigOption("output_plugin_libraries", true, false) == NULL)
		return;					/* a minor release without the allowlist */
	(void) set_config_option("output_plugin_libraries", NULL, PGC_SUSET, PGC_S_SESSION,
							 GUC_ACTION_SET, true, 0, false);
	current = GetConfigOption("output_plugin_libraries", true, false);
	names = flusso_split_list(current);
	foreach(lc, names)
		if (strcmp(lfirst(lc), FLUSSO_LIBRARY) == 0)
			return;
	(void) set_config_option("output_plugin_libraries",
							 psprintf("%s%s%s", current, current[0] ? ", " : "", FLUSSO_LIBRARY),
							 PGC_SUSET, PGC_S_SESSION, GUC_ACTION_SET, true, 0, false);
}

static void
reload_settings(void)
{
	ConfigReloadPending = false;
	ProcessConfigFile(PGC_SIGHUP);
	allow_own_plugin();
	flusso_capture_apply_failover();	/* flusso.failover_slots */
	flusso_engine_settings_changed(flusso_search_configure());
	state.next_ping = 0;
}

/* Record an error caught at step level, clean up, and back off. */
static long
recover_from_error(void)
{
	ErrorData  *edata;
	MemoryContext ecxt = MemoryContextSwitchTo(state.step_context);

	edata = CopyErrorData();
	FlushErrorState();
	flusso_http_abort_all();
	AbortOutOfAnyTransaction();
	/* the abort left TopMemoryContext current: the rest goes with the step */
	MemoryContextSwitchTo(state.step_context);
	flusso_engine_after_error();

	flusso_observer->on_error(NULL, edata->message, NULL);
	state.next_extension_check = 0;	/* the extension may be gone */
	ereport(LOG,
			(errmsg("flusso sync worker step failed: %s", flusso_redact(edata->message)),
			 edata->detail ? errdetail_internal("%s", flusso_redact(edata->detail)) : 0,
			 errhint("It retries in %d ms.", state.error_backoff_ms)));
	MemoryContextSwitchTo(ecxt);
	state.error_backoff_ms = Min(state.error_backoff_ms * 2, ERROR_BACKOFF_MAX_MS);
	return state.error_backoff_ms / 2;
}

/*
 * Is this server a standby?  Then there is nothing to sync from it, and
 * nothing may be written: the worker waits for the promotion, saying so in
 * flusso.status (phase "standby"), and once promoted it syncs from the slot
 * it finds (on 17 and later the one synchronized from the old primary, on
 * 15 none: it is created, and every index is rebuilt behind its alias).
 */
static bool
in_standby(void)
{
	if (!RecoveryInProgress())
	{
		if (state.standby)
		{
			ereport(LOG,
					(errmsg("the server was promoted: flusso starts syncing database \"%s\"",
							state.dbname)));
			state.standby = false;
			state.next_extension_check = 0;
		}
		return false;
	}
	if (!state.standby)
	{
		ereport(LOG,
				(errmsg("flusso sync worker for database \"%s\" waits: this server is a standby",
						state.dbname),
				 errdetail("flusso syncs from the primary; it starts here when this server is promoted.")));
		flusso_observer->on_phase(FLUSSO_PHASE_STANDBY);
		flusso_observer->on_activity("standby: syncing starts when this server is promoted");
	}
	state.standby = true;
	return true;
}

/* One step of work; returns how long the loop may sleep (ms). */
static long
run_step(void)
{
	long		sleep_ms = EXTENSION_RECHECK_MS;

	if (in_standby())
	{
		maybe_ping();
		return Min(STANDBY_RECHECK_MS,
				   TimestampDifferenceMilliseconds(GetCurrentTimestamp(), state.next_ping));
	}
	if (!check_extension())
		return sleep_ms;
	maybe_ping();
	sleep_ms = flusso_engine_step();
	state.error_backoff_ms = ERROR_BACKOFF_MIN_MS;
	return Min(sleep_ms, TimestampDifferenceMilliseconds(GetCurrentTimestamp(),
														 state.next_ping));
}

static long
run_step_guarded(void)
{
	long		sleep_ms;
	MemoryContext old = MemoryContextSwitchTo(state.step_context);

	PG_TRY();
	{
		sleep_ms = run_step();
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(old);
		sleep_ms = recover_from_error();
	}
	PG_END_TRY();
	MemoryContextSwitchTo(old);
	MemoryContextReset(state.step_context);
	return sleep_ms;
}

static void
wait_for_work(long sleep_ms)
{
	int			rc;

	if (sleep_ms <= 0)
		return;
	if (flusso_http_in_flight() > 0)
		rc = flusso_http_wait(sleep_ms, PG_WAIT_EXTENSION);
	else
		rc = WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
					   sleep_ms, PG_WAIT_EXTENSION);
	if (rc & WL_LATCH_SET)
		ResetLatch(MyLatch);
}

void
flusso_worker_main(Datum main_arg)
{
	char	   *dbname = state.dbname;

	flusso_in_sync_worker = true;
	strlcpy(dbname, MyBgworkerEntry->bgw_extra, NAMEDATALEN);
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(dbname, NULL, 0);

	flusso_status_attach_worker(MyDatabaseId, dbname);
	pgstat_report_appname(FLUSSO_WORKER_TYPE);
	state.step_context = AllocSetContextCreate(TopMemoryContext, "flusso step",
											   ALLOCSET_DEFAULT_SIZES);
	state.error_backoff_ms = ERROR_BACKOFF_MIN_MS;
	allow_own_plugin();
	/* short statements, run many times: JIT compilation only costs here */
	SetConfigOption("jit", "off", PGC_SUSET, PGC_S_OVERRIDE);
	flusso_rights_pin_session();
	flusso_search_configure();
	flusso_engine_init();
	flusso_engine_settings_changed(false);

	for (;;)
	{
		long		sleep_ms;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			/* what a reload allocates for the moment goes with the step context */
			MemoryContext old = MemoryContextSwitchTo(state.step_context);

			reload_settings();
			MemoryContextSwitchTo(old);
			MemoryContextReset(state.step_context);
		}
		pgstat_report_activity(STATE_RUNNING, NULL);
		sleep_ms = run_step_guarded();
		pgstat_report_activity(STATE_IDLE, NULL);
		wait_for_work(sleep_ms);
	}
}
