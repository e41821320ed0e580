/*-------------------------------------------------------------------------
 *
 * guard.c
 *	  Run a piece of work in a subtransaction, turning an error into a message.
 *
 * An error in one index's work (a definition that no longer compiles after
 * DDL, a plan that fails) must not stop the others: the engine runs such
 * work through flusso_guard(), the way PL/pgSQL runs an exception block.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "executor/spi.h"
#include "utils/memutils.h"
#include "utils/resowner.h"

#include "base/guard.h"
#include "base/redact.h"
#include "base/rights.h"

/*
 * Run fn(arg) in an internal subtransaction; on error, roll it back and
 * return false with the error copied into the caller's memory context.
 * clear_timeout: the statement timeout armed for user code
 * (flusso_rights_as_owner() in the worker) is cleared before the rollback.
 */
static bool
run_guarded(void (*fn) (void *arg), void *arg, bool clear_timeout, ErrorData **edata)
{
	MemoryContext cxt = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	volatile bool ok = true;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(cxt);
	PG_TRY();
	{
		fn(arg);
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(cxt);
		CurrentResourceOwner = owner;
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(cxt);
		*edata = CopyErrorData();
		FlushErrorState();
		if (clear_timeout)
			flusso_rights_after_error();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(cxt);
		CurrentResourceOwner = owner;
		ok = false;
	}
	PG_END_TRY();
	return ok;
}

bool
flusso_guard(void (*fn) (void *arg), void *arg, FlussoError *error)
{
	ErrorData  *edata;

	error->message = NULL;
	error->sqlerrcode = 0;
	if (run_guarded(fn, arg, true, &edata))
		return true;
	error->message = flusso_redact(edata->message);
	error->sqlerrcode = edata->sqlerrcode;
	FreeErrorData(edata);
	return false;
}

bool
flusso_guard_keeping(void (*fn) (void *arg), void *arg, ErrorData **error)
{
	return run_guarded(fn, arg, false, error);
}

bool
flusso_error_is_lock_wait(const FlussoError *error)
{
	return error->sqlerrcode == ERRCODE_LOCK_NOT_AVAILABLE;
}

bool
flusso_error_is_timeout(const FlussoError *error)
{
	return error->sqlerrcode == ERRCODE_QUERY_CANCELED;
}
