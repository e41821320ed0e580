/*-------------------------------------------------------------------------
 *
 * settingutil.c
 *	  Settings as text: a list setting split, a flusso setting found by
 *	  name, whether a setting was given a value.
 *
 * Both settings.c (the general settings, flusso.check_setting()) and
 * connection.c (the search engine's connection settings and their old
 * names) use these.  It must not define settings nor read the values of
 * particular ones.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <ctype.h>

#include "utils/guc.h"
#include "utils/guc_tables.h"

#include "base/compat.h"
#include "base/settingutil.h"

List *
flusso_split_list(const char *value)
{
	List	   *result = NIL;
	const char *p = value ? value : "";

	while (*p)
	{
		const char *start;
		const char *end;

		while (*p == ',' || isspace((unsigned char) *p))
			p++;
		start = p;
		while (*p && *p != ',')
			p++;
		end = p;
		while (end > start && isspace((unsigned char) end[-1]))
			end--;
		if (end > start)
			result = lappend(result, pnstrdup(start, end - start));
	}
	return result;
}

struct config_generic *
flusso_find_setting(const char *name)
{
	int			n;
	struct config_generic **settings = compat_get_guc_variables(&n);
	int			i;

	if (pg_strncasecmp(name, "flusso.", 7) != 0)
		return NULL;
	for (i = 0; i < n; i++)
		if (pg_strcasecmp(settings[i]->name, name) == 0 &&
			(settings[i]->flags & GUC_CUSTOM_PLACEHOLDER) == 0)
			return settings[i];
	return NULL;
}

bool
flusso_setting_is_set(const char *name)
{
	struct config_generic *setting = flusso_find_setting(name);

	return setting != NULL && setting->source != PGC_S_DEFAULT;
}
