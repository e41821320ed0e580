/*-------------------------------------------------------------------------
 *
 * mapping.h
 *	  The OpenSearch index body (settings and mappings) of a definition.
 *
 *-------------------------------------------------------------------------
 */
#ifndef FLUSSO_MAPPING_H
#define FLUSSO_MAPPING_H

#include "definition/definition.h"

/*
 * {"settings": {...}, "mappings": {...}} for creating a physical index of
 * the definition; database and generation go into _meta.flusso (NULL / 0
 * leaves them out).
 */
extern char *flusso_index_body(IndexDef *def, const char *database, int64 generation);

#endif							/* FLUSSO_MAPPING_H */
