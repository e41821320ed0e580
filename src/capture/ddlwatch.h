/*-------------------------------------------------------------------------
 *
 * ddlwatch.h
 *	  Noticing DDL on the tables the indexes read.
 *
 *-------------------------------------------------------------------------
 */
#ifndef FLUSSO_DDLWATCH_H
#define FLUSSO_DDLWATCH_H

#include "nodes/pg_list.h"

/* Remember the shape of these tables (an OID list); inside a transaction. */
extern void flusso_ddl_remember(List *relids);

/* An invalidation arrived for one of them since the last check. */
extern bool flusso_ddl_touched(void);

/*
 * True once one of them was renamed, moved, dropped, or had a column
 * added, dropped, renamed or retyped since flusso_ddl_remember.  Cheap
 * while no invalidation arrived for them; inside a transaction.
 */
extern bool flusso_ddl_changed(void);

#endif							/* FLUSSO_DDLWATCH_H */
