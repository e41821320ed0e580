/*-------------------------------------------------------------------------
 *
 * settingutil.h
 *	  Settings as text: a list setting split, a flusso setting found by
 *	  name, whether a setting was given a value.
 *
 *-------------------------------------------------------------------------
 */
#ifndef FLUSSO_SETTINGUTIL_H
#define FLUSSO_SETTINGUTIL_H

#include "nodes/pg_list.h"

struct config_generic;

/* "a, b" -> list of palloc'd, trimmed, non-empty strings */
extern List *flusso_split_list(const char *value);

/* A flusso setting by name, in any letter case, or NULL. */
extern struct config_generic *flusso_find_setting(const char *name);

/* Was the setting given a value (a configuration file, ALTER SYSTEM, SET), rather than left at its default? */
extern bool flusso_setting_is_set(const char *name);

#endif							/* FLUSSO_SETTINGUTIL_H */
