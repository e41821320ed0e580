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

bool
flusso_guard(void (*fn) (void *arg), void *arg, FlussoError *error)
{
	MemoryContext cxt = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	volatile bool ok = true;

	error->message = NULL;
	error->sqlerrcode = 0;
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
		ErrorData  *edata;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		flusso_rights_after_error();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(cxt);
		CurrentResourceOwner = owner;
		error->message = flusso_redact(edata->message);
		error->sqlerrcode = edata->sqlerrcode;
		FreeErrorData(edata);
		ok = false;
	}
	PG_END_TRY();
	return ok;
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
