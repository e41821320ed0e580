/*-------------------------------------------------------------------------
 *
 * parse.h
 *	  An index definition from JSON into the model, its form checked.
 *
 *-------------------------------------------------------------------------
 */
#ifndef FLUSSO_PARSE_H
#define FLUSSO_PARSE_H

#include "definition/definition.h"

/* JSON text -> model; false (and *err filled) when invalid */
extern bool flusso_def_parse(const char *name, const char *json, IndexDef **result,
							 DefError *err);
extern bool flusso_index_name_valid(const char *name, const char **why);
extern const char *flusso_def_kind_name(DefKind kind);

/* the node list in pre-order */
extern List *flusso_def_nodes(IndexDef *def);

#endif							/* FLUSSO_PARSE_H */
