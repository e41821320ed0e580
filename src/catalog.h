/*-------------------------------------------------------------------------
 *
 * catalog.h
 *	  flusso's own tables: stored definitions and per-index sync state.
 *
 *-------------------------------------------------------------------------
 */
#ifndef FLUSSO_CATALOG_H
#define FLUSSO_CATALOG_H

#include "definition.h"

/*
 * Run as the owner of flusso's tables (the extension's owner) while reading
 * or writing them on behalf of a role that may only call the functions.
 */
extern void flusso_catalog_owner_enter(void);
extern void flusso_catalog_owner_leave(void);

/* Parse and check a definition given as JSON text; raises on error. */
extern IndexDef *flusso_definition_compile(const char *name, const char *json,
										   bool report_warnings);

/*
 * Read a stored definition and compile it (SPI must be connected).
 * Returns NULL when it does not exist and missing_ok.
 */
extern IndexDef *flusso_definition_load(const char *name, bool missing_ok);

/* Names of all stored definitions, sorted (SPI must be connected). */
extern List *flusso_definition_names(void);

/* The stored JSON of a definition, or NULL (SPI must be connected). */
extern char *flusso_definition_json(const char *name);

/* text[] of one element per key column, from a document _id. */
extern List *flusso_id_split(const char *id, int nparts);

#endif							/* FLUSSO_CATALOG_H */
