/*-------------------------------------------------------------------------
 *
 * indexrun.h
 *	  Running an index's prepared statements: with its owner's rights,
 *	  guarded, rows streamed.
 *
 *-------------------------------------------------------------------------
 */
#ifndef FLUSSO_INDEXRUN_H
#define FLUSSO_INDEXRUN_H

#include "base/guard.h"
#include "base/rights.h"
#include "pipeline/resolve.h"
#include "pipeline/runtime.h"

/*
 * flusso.role, looked up at load: InvalidOid when not set.  It only
 * narrows what an index may read (rights.c).
 */
extern Oid	flusso_sync_role;
extern char *flusso_sync_role_problem;
extern void flusso_index_resolve_role(void);

/*
 * Enter the rights the index's statements run with: its owner's, inside a
 * security-restricted operation (rights.c).  Raises 42501 when flusso.role
 * may not read a table the index reads; flusso_rights_restore() leaves.
 */
extern void flusso_index_rights_enter(IndexRuntime *ix, FlussoRights *rights);

/* Why the index may not be read now (its owner dropped, flusso.role), or NULL. */
extern char *flusso_index_access_problem(IndexRuntime *ix);

/*
 * One result row of a build or backfill statement: (id text, doc text or
 * NULL, key0 text, ...).  The values are valid only during the call.
 */
typedef void (*FlussoRowFn) (void *arg, Datum *values, bool *isnull, int natts);

/*
 * Each runs in its own subtransaction (guard.c) with the rights of the
 * index's owner (rights.c), and returns false with *error filled when the
 * statement failed; rows are handed to fn one by one as the executor makes
 * them, never all held at once.  Inside a transaction, SPI connected.
 */
extern bool flusso_run_build(IndexRuntime *ix, List *ids, FlussoRowFn fn, void *arg,
							 FlussoError *error);
extern bool flusso_run_backfill(IndexRuntime *ix, List *cursor, int limit,
								FlussoRowFn fn, void *arg, FlussoError *error);
extern bool flusso_run_backfill_keys(IndexRuntime *ix, List *cursor, int limit,
									 List **ids, FlussoError *error);
extern bool flusso_run_resolve(IndexRuntime *ix, FlussoWatch *w, List *images,
							   FlussoKeySet *keys, FlussoError *error);
extern bool flusso_run_count(IndexRuntime *ix, int64 *count, FlussoError *error);

/*
 * The path in the definition (such as "children[0].columns[2].expr") of the
 * first filter, expression, value or order_by that fails for the document
 * id, each tried on its own; NULL when none does alone.
 */
extern char *flusso_run_probes(IndexRuntime *ix, const char *id);

#endif							/* FLUSSO_INDEXRUN_H */
