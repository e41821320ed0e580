/*-------------------------------------------------------------------------
 *
 * stored.h
 *	  flusso's own tables: stored definitions and per-index sync state.
 *
 *-------------------------------------------------------------------------
 */
#ifndef FLUSSO_STORED_H
#define FLUSSO_STORED_H

#include "definition/definition.h"

/* A row of flusso.definitions. */
typedef struct StoredDefinition
{
	char	   *name;
	char	   *json;
	Oid			owner;
} StoredDefinition;

/*
 * Read one stored definition as the extension's owner, with the fixed
 * search_path (SPI must be connected); NULL when there is none.
 */
extern StoredDefinition *flusso_definition_stored(const char *name);

/* Parse and check a definition given as JSON text; raises on error. */
extern IndexDef *flusso_definition_compile(const char *name, const char *json,
										   bool report_warnings);

/* Compile a stored definition with the rights of sd->owner. */
extern IndexDef *flusso_definition_compile_stored(StoredDefinition *sd);

/*
 * Read a stored definition and compile it with its owner's rights (SPI
 * must be connected).  Returns NULL when it does not exist and missing_ok.
 * def->owner is set.
 */
extern IndexDef *flusso_definition_load(const char *name, bool missing_ok);

/*
 * The same, for a caller who must be allowed to manage the index: raises
 * 42501 naming action ("preview", "reindex"...) otherwise.
 */
extern IndexDef *flusso_definition_load_managed(const char *name, const char *action);

/* Raise when the index does not exist (42704) or the caller may not manage it (42501). */
extern StoredDefinition *flusso_definition_managed(const char *name, const char *action);

/*
 * The SQL-callable functions need this library's SQL objects: raise a
 * clear error while ALTER EXTENSION flusso UPDATE has not been run.
 */
extern void flusso_require_current_sql(void);

#endif							/* FLUSSO_STORED_H */
