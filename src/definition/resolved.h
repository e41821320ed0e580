/*-------------------------------------------------------------------------
 *
 * resolved.h
 *	  The JSON stored for a checked definition: every name resolved.
 *
 *-------------------------------------------------------------------------
 */
#ifndef FLUSSO_RESOLVED_H
#define FLUSSO_RESOLVED_H

#include "definition/definition.h"

/*
 * The JSON to store for a checked definition: json as given, with every
 * table and expression replaced by its resolved form.
 */
extern char *flusso_def_resolved_json(IndexDef *def, const char *json);

#endif							/* FLUSSO_RESOLVED_H */
