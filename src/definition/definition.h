/*-------------------------------------------------------------------------
 *
 * definition.h
 *	  The model of an index definition: a document shape over tables.
 *
 * A definition is parsed from JSON (parse.h), checked against the
 * catalogs (check.h), turned into SQL (sqlgen.h) and into OpenSearch
 * mappings (mapping.h); what is stored is its resolved form (resolved.h).
 * The model is plain palloc'd C structs; this header declares no function.
 *
 *-------------------------------------------------------------------------
 */
#ifndef FLUSSO_DEFINITION_H
#define FLUSSO_DEFINITION_H

#include "nodes/pg_list.h"

#define FLUSSO_MAX_INDEX_NAME	48
#define FLUSSO_MAX_DEPTH		16

typedef enum DefKind
{
	DEF_ROOT,
	DEF_MANY,					/* array of objects (or of scalars with value) */
	DEF_ONE,					/* object or null (or a scalar with value) */
	DEF_COUNT,
	DEF_SUM,
	DEF_MIN,
	DEF_MAX,
	DEF_AVG
} DefKind;

/* One document field of a node: a column, or an expression over the row. */
typedef struct DefField
{
	char	   *name;			/* field name in the document */
	char	   *column;			/* column name, or NULL */
	char	   *expr;			/* SQL expression, or NULL */
	char	   *path;			/* e.g. "columns[2]" */
	Oid			type;			/* filled by check.c */
	int32		typmod;
} DefField;

/* Equal columns between two tables: left[i] = right[i]. */
typedef struct DefJoin
{
	int			ncols;
	char	  **left;
	char	  **right;
	char	   *path;
} DefJoin;

typedef struct DefTable
{
	char	   *text;			/* as written */
	char	   *schema;			/* filled by check.c */
	char	   *relname;
	Oid			relid;
} DefTable;

typedef struct DefNode
{
	int			id;				/* pre-order number, 0 for the root */
	char	   *path;			/* "" for the root, "children[0]" ... */
	char	   *name;			/* field name in the parent (NULL: root) */
	DefKind		kind;
	DefTable	table;
	bool		all_columns;	/* "columns" not given */
	List	   *fields;			/* of DefField */
	char	   *value;			/* scalar expression, or NULL */
	char	   *filter;
	char	   *order_by;
	int			limit;			/* "many": the first rows per parent; 0: all */

	/*
	 * Filled by check.c for "many" and "one": the columns that break ties
	 * in the node's ordering, so that every build orders its rows alike.
	 * The table's primary key (or only unique NOT NULL key); without one,
	 * every column, compared by its text (tiebreak_text).
	 */
	List	   *tiebreak;		/* of char * */
	bool		tiebreak_text;

	/* how the node's rows join its parent's (not for the root) */
	DefJoin		on;				/* left: this table, right: parent */
	bool		has_through;
	DefTable	through;		/* the link table */
	DefJoin		through_parent; /* left: link table, right: parent */
	DefJoin		through_child;	/* left: link table, right: this table */

	Oid			value_type;		/* filled by check.c */
	List	   *children;		/* of DefNode */
	struct DefNode *parent;
} DefNode;

typedef struct IndexDef
{
	char	   *name;
	DefNode    *root;
	List	   *key;			/* root key column names (List of char *) */
	List	   *key_types;		/* their type OIDs (List of Oid), by defcheck */
	int			on_error;		/* -1: the global flusso.on_error */
	char	   *index_settings;	/* JSON text, or NULL */
	char	   *index_mappings;	/* JSON text, or NULL */
	int			nnodes;
	List	   *warnings;		/* of char *, from check.c */
	Oid			owner;			/* the role its statements run as (stored) */
} IndexDef;

/* A definition error: where, what, and what to do. */
typedef struct DefError
{
	int			sqlstate;
	char	   *path;
	char	   *message;
	char	   *detail;
	char	   *hint;
} DefError;

#endif							/* FLUSSO_DEFINITION_H */
