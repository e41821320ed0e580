/*-------------------------------------------------------------------------
 *
 * check.h
 *	  A parsed index definition checked against the catalogs.
 *
 *-------------------------------------------------------------------------
 */
#ifndef FLUSSO_CHECK_H
#define FLUSSO_CHECK_H

#include "definition/definition.h"

/*
 * Resolve against the catalogs; raises errors.  Afterwards every table's
 * text is its schema-qualified name and every expression is PostgreSQL's
 * deparsed form of it under the fixed search_path.
 */
extern void flusso_def_check(IndexDef *def, bool report);
extern void flusso_def_raise(const DefError *err);

/*
 * Can role read every table the definition reads?  NULL if so, else a
 * message naming the first table (or schema) it cannot.
 */
extern char *flusso_def_access(IndexDef *def, Oid role);

#endif							/* FLUSSO_CHECK_H */
