/*-------------------------------------------------------------------------
 *
 * rights.c
 *	  With whose rights each statement flusso runs is run.
 *
 * The security model, enforced here and only here:
 *
 * 1. Every index has an owner: the role that created it (flusso.definitions
 *	  .owner, shown in flusso.indexes).  Only a superuser hands an index to
 *	  another role (flusso.alter_index_owner).  Only the owner, a member of
 *	  the owner role, or a superuser may alter, drop, reindex, pause, resume
 *	  or retry an index, or look at what it builds (preview, documents,
 *	  document_ids, affected_documents, explain, index_body); each role sees
 *	  only the definitions and dead letters of the indexes it may manage.
 *
 * 2. Everything a definition makes run -- its filters, expressions, values
 *	  and orderings, the functions and operators they call, the row-level
 *	  security policies of its tables -- runs with the rights of the index's
 *	  owner, never with the worker's or the caller's: builds, backfills,
 *	  change resolution, row counts, previews and documents() all go through
 *	  flusso_rights_as_owner().  That is PostgreSQL's own answer for user code
 *	  run on behalf of an object (REFRESH MATERIALIZED VIEW, index
 *	  expressions during VACUUM, the logical replication apply worker): the
 *	  owner's user id inside a security-restricted operation (no SET ROLE, no
 *	  temporary objects, no session state that outlives it), a GUC nest level
 *	  rolled back afterwards (so a set_config() in user code changes nothing
 *	  that follows), and a fixed search_path.  Privileges and row security are
 *	  checked by the executor at every execution, so a revoked grant or a new
 *	  policy takes effect at the next build.  flusso.role, if set, only
 *	  narrows this: every table an index reads must also be readable by it.
 *
 * 3. flusso's own statements -- on flusso.definitions, index_state,
 *	  requests, dead_letters -- run as the extension's owner, also inside a
 *	  security-restricted operation with the fixed search_path
 *	  (flusso_rights_as_extension()), in the SQL-callable functions as in the
 *	  worker, whose whole session has its search_path pinned.  Every function,
 *	  operator and table in generated SQL is schema-qualified besides
 *	  (CVE-2018-1058): a role that can create objects in public or in a schema
 *	  named like a user cannot put its own code in their way.
 *
 * 4. Names in a definition are resolved once, when create_index or
 *	  alter_index checks it, under the caller's search_path; what is stored is
 *	  the definition with every table schema-qualified and every expression
 *	  as PostgreSQL deparses it under the fixed search_path.
 *
 * 5. What each role sees: superusers everything; members of an index's owner
 *	  its definition, documents, dead letters and full errors; pg_monitor
 *	  members the status views and metrics, with errors stripped of anything
 *	  taken from rows (flusso_public_error); nobody but superusers the
 *	  settings that hold credentials, paths, user names and URLs.
 *
 * This file must not run SQL itself; it only switches rights and checks them.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"
#include "utils/timeout.h"

#include "base/flusso.h"
#include "base/rights.h"
#include "base/settings.h"

bool		flusso_in_sync_worker = false;

/* The owner of flusso.definitions: the extension's owner. */
static Oid
extension_owner(void)
{
	Oid			nsp = get_namespace_oid(FLUSSO_EXTENSION_NAME, false);
	Oid			relid = get_relname_relid("definitions", nsp);
	HeapTuple	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	Oid			owner;

	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for flusso.definitions");
	owner = ((Form_pg_class) GETSTRUCT(tup))->relowner;
	ReleaseSysCache(tup);
	return owner;
}

static void
set_in_nest(const char *name, const char *value)
{
	(void) set_config_option(name, value, PGC_SUSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
}

static void
enter(Oid user, bool fixed_path, FlussoRights *r)
{
	GetUserIdAndSecContext(&r->saved_user, &r->saved_sec);
	SetUserIdAndSecContext(user, r->saved_sec | SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);
	r->nestlevel = NewGUCNestLevel();
	if (fixed_path)
		set_in_nest("search_path", FLUSSO_SAFE_SEARCH_PATH);
	r->timeout_armed = false;
	r->active = true;
}

void
flusso_rights_as_owner_resolving(Oid owner, FlussoRights *r)
{
	enter(owner, false, r);
}

void
flusso_rights_as_owner(Oid owner, FlussoRights *r)
{
	enter(owner, true, r);
	set_in_nest("row_security", "on");
	set_in_nest("jit", "off");	/* short generated statements: JIT only costs */
	if (!flusso_in_sync_worker)
		return;					/* a backend's own statement_timeout applies */
	set_in_nest("lock_timeout", psprintf("%d", flusso_lock_timeout));
	if (flusso_statement_timeout > 0)
	{
		enable_timeout_after(STATEMENT_TIMEOUT, flusso_statement_timeout);
		r->timeout_armed = true;
	}
}

void
flusso_rights_as_extension(FlussoRights *r)
{
	enter(extension_owner(), true, r);
}

void
flusso_rights_restore(FlussoRights *r)
{
	if (!r->active)
		return;
	if (r->timeout_armed)
		disable_timeout(STATEMENT_TIMEOUT, false);
	AtEOXact_GUC(false, r->nestlevel);
	SetUserIdAndSecContext(r->saved_user, r->saved_sec);
	r->active = false;
}

void
flusso_rights_after_error(void)
{
	if (get_timeout_active(STATEMENT_TIMEOUT))
		disable_timeout(STATEMENT_TIMEOUT, false);
}

bool
flusso_rights_may_manage(Oid owner)
{
	return has_privs_of_role(GetUserId(), owner);
}

char *
flusso_role_name(Oid role)
{
	char	   *name = GetUserNameFromId(role, true);

	return name ? name : psprintf("(dropped role %u)", role);
}

void
flusso_rights_check_owner(const char *index, Oid owner, const char *action)
{
	if (flusso_rights_may_manage(owner))
		return;
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("permission denied to %s index \"%s\"", action, index),
			 errdetail("Index \"%s\" belongs to role \"%s\"; only its owner, members of that role and superusers may %s it.",
					   index, flusso_role_name(owner), action),
			 errhint("Ask the owner, or a superuser (flusso.alter_index_owner hands an index over).")));
}

/*
 * The worker's session: statements it runs outside an owner's rights use
 * the fixed search_path, and user code cannot change it (an override
 * outranks any SET or set_config()).
 */
void
flusso_rights_pin_session(void)
{
	SetConfigOption("search_path", FLUSSO_SAFE_SEARCH_PATH, PGC_SUSET, PGC_S_OVERRIDE);
	SetConfigOption("row_security", "on", PGC_SUSET, PGC_S_OVERRIDE);
}
