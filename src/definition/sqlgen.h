/*-------------------------------------------------------------------------
 *
 * sqlgen.h
 *	  The SQL generated from a checked index definition.
 *
 *-------------------------------------------------------------------------
 */
#ifndef FLUSSO_SQLGEN_H
#define FLUSSO_SQLGEN_H

#include "access/attnum.h"

#include "definition/definition.h"

typedef enum FlussoWatchRole
{
	WATCH_ROOT,					/* the root table: its key is the document */
	WATCH_NODE,					/* a child's table */
	WATCH_LINK					/* a child's link table ("through") */
} FlussoWatchRole;

/*
 * One place where an index reads a table.  A change to a row of relid
 * affects the documents whose root keys the resolve statement returns,
 * given the values of columns[] in the row's old and new image.
 */
typedef struct FlussoWatch
{
	Oid			relid;
	FlussoWatchRole role;
	DefNode    *node;
	char	   *path;			/* where in the definition */
	int			ncols;
	char	  **columns;
	AttrNumber *attnums;
	char	   *columns_text;	/* "orders.user_id", for messages */

	/*
	 * The resolve statement: parameters $1..$ncols are text[] of the column
	 * values, it returns the root key columns as text.  NULL when the values
	 * are the root key already; then key_map[i] is the column holding key
	 * column i.
	 */
	char	   *resolve_sql;
	int		   *key_map;
} FlussoWatch;

/* Every table the index reads, with how a change maps to documents. */
extern List *flusso_sql_watches(IndexDef *def);

/*
 * Build statement: $1..$k are text[] of the root key columns; returns
 * (id text, doc text, k0 text, ...) with doc NULL for a key whose row is
 * gone or filtered out (a delete).
 */
extern char *flusso_sql_build(IndexDef *def);

/*
 * Backfill statements, keyset-paginated in key order: the first takes
 * ($1 int limit), the next ($1..$k text key of the last row, $k+1 limit).
 * Same result columns as the build statement.
 */
extern char *flusso_sql_backfill(IndexDef *def, bool first);

/* The ids of a backfill page, keys only and without the root filter. */
extern char *flusso_sql_backfill_keys(IndexDef *def, bool first);

/*
 * The parameter types of the statements, laid out once: n text[], for a
 * build or a probe (n key columns) and a watch's resolve statement (n
 * watched columns); and those of a backfill statement or its keys
 * (*nargs of them: the limit, or each key column as text and the limit).
 */
extern Oid *flusso_sql_array_types(int n);
extern Oid *flusso_sql_backfill_types(IndexDef *def, bool first, int *nargs);

/* SELECT of every document _id (for the consistency checker). */
extern char *flusso_sql_document_ids(IndexDef *def);

/* SELECT count(*) estimate source: the root table and filter. */
extern char *flusso_sql_count(IndexDef *def);

/*
 * A probe: one expression of one node (a filter, a field's expr, a value,
 * an order_by) evaluated over that node's rows under the root keys $1..$k
 * (text[] each, like the build statement), to tell which part of a
 * definition a document that cannot be built fails in.  A filter is
 * evaluated over the rows before it, the others over the rows it keeps.
 */
typedef enum FlussoProbeKind
{
	PROBE_FILTER,
	PROBE_VALUE,
	PROBE_ORDER
} FlussoProbeKind;

extern char *flusso_sql_probe(IndexDef *def, DefNode *node, const char *text,
							  FlussoProbeKind kind);

/* User SQL text, made safe to embed before a closing parenthesis. */
extern char *flusso_sql_fragment(const char *text);

/*
 * The equality operator joining a column of ltype to one of rtype, found
 * without the search_path: the types' default btree operator family, or
 * one side's own equality after an implicit conversion of the other side
 * to its type (*common, when not NULL, is then that type).  InvalidOid
 * when there is none.
 */
extern Oid	flusso_sql_equality(Oid ltype, Oid rtype, Oid *common);

/* "OPERATOR(schema.name)": an operator named so that no search_path matters. */
extern char *flusso_sql_operator_name(Oid opno);

#endif							/* FLUSSO_SQLGEN_H */
