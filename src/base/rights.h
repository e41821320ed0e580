/*-------------------------------------------------------------------------
 *
 * rights.h
 *	  With whose rights each statement flusso runs is run.
 *
 * The model is written out in rights.c.
 *
 *-------------------------------------------------------------------------
 */
#ifndef FLUSSO_RIGHTS_H
#define FLUSSO_RIGHTS_H

/*
 * This process is a sync worker (worker.c sets it first thing): user code
 * run as an index's owner gets flusso.statement_timeout and
 * flusso.lock_timeout, and the SQL functions that wait for the worker
 * refuse to run inside it.
 */
extern bool flusso_in_sync_worker;

/* The fixed search_path of every statement flusso runs. */
#define FLUSSO_SAFE_SEARCH_PATH "pg_catalog, pg_temp"

/* What entering a set of rights changed, to restore it. */
typedef struct FlussoRights
{
	Oid			saved_user;
	int			saved_sec;
	int			nestlevel;
	bool		timeout_armed;
	bool		active;
} FlussoRights;

/*
 * Run user code as the owner of an index: the owner's user id inside a
 * security-restricted operation, a fixed search_path, row security on, and
 * a GUC nest level whose changes are all rolled back by
 * flusso_rights_restore().  In the sync worker the index's statement and
 * lock timeouts (flusso.statement_timeout, flusso.lock_timeout) are armed
 * too.
 */
extern void flusso_rights_as_owner(Oid owner, FlussoRights *r);

/*
 * The same, but keeping the caller's search_path: for checking a new
 * definition, whose names are resolved the way its author reads them.
 */
extern void flusso_rights_as_owner_resolving(Oid owner, FlussoRights *r);

/*
 * Read or write flusso's own tables as the extension's owner (the owner of
 * flusso.definitions), inside a security-restricted operation with the
 * fixed search_path.
 */
extern void flusso_rights_as_extension(FlussoRights *r);

/* Undo flusso_rights_as_*(), rolling back every setting changed meanwhile. */
extern void flusso_rights_restore(FlussoRights *r);

/* After an error: the statement timeout armed for user code is cleared. */
extern void flusso_rights_after_error(void);

/*
 * May the current user manage the index owned by owner?  Superusers and
 * members of the owner role may; anyone else gets 42501 naming the action.
 */
extern void flusso_rights_check_owner(const char *index, Oid owner, const char *action);
extern bool flusso_rights_may_manage(Oid owner);

/* The sync worker: pin its session's search_path for good. */
extern void flusso_rights_pin_session(void);

/* The name of a role for messages, even a dropped one. */
extern char *flusso_role_name(Oid role);

#endif							/* FLUSSO_RIGHTS_H */
