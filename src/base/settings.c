/*-------------------------------------------------------------------------
 *
 * settings.c
 *	  Defines every flusso.* setting, with its unit, bounds and check hook.
 *
 * This file owns the settings and nothing else: the values live in the
 * variables below and each process reads them directly.  Sizing settings
 * are PGC_POSTMASTER; tunables are PGC_SIGHUP and are picked up by the
 * workers at their next loop.  The search engine's connection settings
 * (URL, TLS, authentication, with their old names) are connection.c's:
 * their endpoints and secrets are GUC_SUPERUSER_ONLY there.  It must not
 * read files nor talk to the search engine.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <ctype.h>
#include <limits.h>
#include <math.h>
#include <sys/stat.h>

#include "commands/dbcommands.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "storage/fd.h"
#include "utils/guc.h"
#include "utils/guc_tables.h"

#include "base/compat.h"
#include "base/connection.h"
#include "base/redact.h"
#include "base/settings.h"
#include "base/settingutil.h"

char	   *flusso_database = NULL;
char	   *flusso_role = NULL;
char	   *flusso_slot_name = NULL;
int			flusso_batch_size = 1000;
int			flusso_batch_bytes = 8 * 1024 * 1024;
int			flusso_flush_interval = 20;
int			flusso_queue_capacity = 4;
int			flusso_lag_poll_interval = 15000;
int			flusso_on_error = FLUSSO_ON_ERROR_STOP;
bool		flusso_skip_backfill = false;
bool		flusso_enabled = true;
int			flusso_max_indexes = 64;
int			flusso_request_timeout = 30000;
int			flusso_retry_max_interval = 30000;
bool		flusso_pretty = false;
bool		flusso_manage_replica_identity = false;
int			flusso_capture_memory = 65536;
char	   *flusso_max_lag_bytes_setting = NULL;
int64		flusso_max_lag_bytes = INT64CONST(1024) * 1024 * 1024;
int			flusso_statement_timeout = 60000;
int			flusso_lock_timeout = 1000;
int			flusso_failover_slots = FLUSSO_FAILOVER_AUTO;

static const struct config_enum_entry on_error_options[] = {
	{"stop", FLUSSO_ON_ERROR_STOP, false},
	{"skip", FLUSSO_ON_ERROR_SKIP, false},
	{"dead_letter", FLUSSO_ON_ERROR_DEAD_LETTER, false},
	{NULL, 0, false}
};

static const struct config_enum_entry failover_slots_options[] = {
	{"auto", FLUSSO_FAILOVER_AUTO, false},
	{"on", FLUSSO_FAILOVER_ON, false},
	{"off", FLUSSO_FAILOVER_OFF, false},
	{"true", FLUSSO_FAILOVER_ON, true},
	{"false", FLUSSO_FAILOVER_OFF, true},
	{"yes", FLUSSO_FAILOVER_ON, true},
	{"no", FLUSSO_FAILOVER_OFF, true},
	{"1", FLUSSO_FAILOVER_ON, true},
	{"0", FLUSSO_FAILOVER_OFF, true},
	{NULL, 0, false}
};

const char *
flusso_on_error_name(int policy)
{
	const struct config_enum_entry *e;

	for (e = on_error_options; e->name; e++)
		if (e->val == policy)
			return e->name;
	return "unknown";
}

int
flusso_on_error_parse(const char *name)
{
	const struct config_enum_entry *e;

	for (e = on_error_options; e->name; e++)
		if (pg_strcasecmp(e->name, name) == 0)
			return e->val;
	return -1;
}

/*
 * A size in bytes, as flusso.max_lag_bytes takes it: a number, bytes when
 * bare, or followed by one of PostgreSQL's memory units (B, kB, MB, GB, TB,
 * in the same letter case).  A fraction is allowed with a unit ("1.5GB")
 * and rounded to the byte.  Returns false with *why saying what is wrong.
 */
static const struct
{
	const char *unit;
	int64		bytes;
}			size_units[] = {
	{"B", 1},
	{"kB", INT64CONST(1) << 10},
	{"MB", INT64CONST(1) << 20},
	{"GB", INT64CONST(1) << 30},
	{"TB", INT64CONST(1) << 40},
};

static bool
parse_size(const char *text, int64 *bytes, const char **why)
{
	const char *p = text;
	const char *unit;
	const char *end;
	double		value = 0;
	double		multiplier = 0;
	int			i;

	while (isspace((unsigned char) *p))
		p++;
	if (*p == '-')
	{
		*why = "it is negative";
		return false;
	}
	if (!isdigit((unsigned char) *p))
	{
		*why = "it does not start with a number";
		return false;
	}
	while (isdigit((unsigned char) *p))
		value = value * 10 + (*p++ - '0');
	if (*p == '.' && isdigit((unsigned char) p[1]))
	{
		double		scale = 0.1;

		for (p++; isdigit((unsigned char) *p); p++, scale /= 10)
			value += (*p - '0') * scale;
	}
	while (isspace((unsigned char) *p))
		p++;
	unit = p;
	end = unit + strlen(unit);
	while (end > unit && isspace((unsigned char) end[-1]))
		end--;
	if (end == unit)
		multiplier = 1;
	for (i = 0; i < (int) lengthof(size_units) && multiplier == 0; i++)
		if (strlen(size_units[i].unit) == (size_t) (end - unit) &&
			strncmp(unit, size_units[i].unit, end - unit) == 0)
			multiplier = (double) size_units[i].bytes;
	if (multiplier == 0)
	{
		*why = "its unit is not one of B, kB, MB, GB and TB";
		return false;
	}
	value = rint(value * multiplier);
	if (value >= (double) PG_INT64_MAX)
	{
		*why = "it is larger than 8388607TB";
		return false;
	}
	*bytes = (int64) value;
	return true;
}

/* flusso.max_lag_bytes: kept as given, used as int64 bytes (the extra). */
static bool
check_max_lag_bytes(char **newval, void **extra, GucSource source)
{
	const char *why = NULL;
	int64		bytes;
	int64	   *kept;

	if (!parse_size(*newval, &bytes, &why))
	{
		GUC_check_errdetail("\"%s\" is not a size: %s.", *newval, why);
		GUC_check_errhint("Give flusso.max_lag_bytes in bytes (500000000) or with a unit (500MB, 50GB, 1TB); 0 turns the warning off.");
		return false;
	}
	kept = compat_guc_malloc(sizeof(int64));	/* GUC frees extras itself */
	if (kept == NULL)
		return false;
	*kept = bytes;
	*extra = kept;
	return true;
}

static void
assign_max_lag_bytes(const char *newval, void *extra)
{
	flusso_max_lag_bytes = extra ? *(int64 *) extra : 0;
}

static bool
check_database(char **newval, void **extra, GucSource source)
{
	List	   *names = flusso_split_list(*newval);
	ListCell   *lc;

	foreach(lc, names)
	{
		const char *name = lfirst(lc);
		ListCell   *other;

		if (strlen(name) >= NAMEDATALEN)
		{
			GUC_check_errdetail("Database name \"%s\" is longer than %d bytes.",
								name, NAMEDATALEN - 1);
			return false;
		}
		for (other = lnext(names, lc); other; other = lnext(names, other))
		{
			if (strcmp(name, lfirst(other)) == 0)
			{
				GUC_check_errdetail("Database \"%s\" is listed twice.", name);
				return false;
			}
		}
	}
	return true;
}

/* Slot names follow PostgreSQL's rule: [a-z0-9_], at most NAMEDATALEN-1. */
static bool
check_slot_name(char **newval, void **extra, GucSource source)
{
	const char *p;

	if (**newval == '\0')
	{
		GUC_check_errdetail("The replication slot name must not be empty.");
		return false;
	}
	if (strlen(*newval) >= NAMEDATALEN - 12)
	{
		GUC_check_errdetail("The replication slot name must be shorter than %d bytes.",
							NAMEDATALEN - 12);
		return false;
	}
	for (p = *newval; *p; p++)
	{
		if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_'))
		{
			GUC_check_errdetail("Replication slot names may only contain lower case letters, numbers and the underscore character.");
			return false;
		}
	}
	return true;
}

/*
 * flusso.failover_slots = on asks for what only PostgreSQL 17 and later
 * have (compat.h): refused on an older server, where auto is the default.
 */
static bool
check_failover_slots(int *newval, void **extra, GucSource source)
{
	if (*newval == FLUSSO_FAILOVER_ON && !FLUSSO_HAVE_FAILOVER_SLOTS)
	{
		GUC_check_errdetail("Failover slots need PostgreSQL 17 or later; this server is PostgreSQL %s.",
							PG_MAJORVERSION);
		GUC_check_errhint("Set flusso.failover_slots to auto (failover slots where the server has them) or off.");
		return false;
	}
	return true;
}

bool
flusso_failover_slots_wanted(void)
{
	return flusso_failover_slots == FLUSSO_FAILOVER_ON ||
		(flusso_failover_slots == FLUSSO_FAILOVER_AUTO && FLUSSO_HAVE_FAILOVER_SLOTS);
}

const char *
flusso_failover_slots_name(void)
{
	const struct config_enum_entry *e;

	for (e = failover_slots_options; e->name; e++)
		if (e->val == flusso_failover_slots && !e->hidden)
			return e->name;
	return "unknown";
}

static void
define_connection_settings(void)
{
	DefineCustomStringVariable("flusso.database",
							   "Databases whose indexes flusso keeps in sync (comma-separated).",
							   "One sync worker runs for each database in the list.",
							   &flusso_database, "postgres", PGC_SIGHUP, 0,
							   check_database, NULL, NULL);
	DefineCustomIntVariable("flusso.request_timeout",
							"Time after which a request to OpenSearch is abandoned and retried.",
							NULL, &flusso_request_timeout, 30000, 100, 3600 * 1000,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("flusso.retry_max_interval",
							"Longest wait between two retries of a failed request.",
							"Retries back off exponentially with jitter up to this interval.",
							&flusso_retry_max_interval, 30000, 100, 3600 * 1000,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
}

static void
define_pipeline_settings(void)
{
	DefineCustomStringVariable("flusso.slot_name",
							   "Name of the logical replication slot flusso decodes.",
							   "With several databases, the database's OID is appended.",
							   &flusso_slot_name, "flusso", PGC_POSTMASTER, 0,
							   check_slot_name, NULL, NULL);
	DefineCustomIntVariable("flusso.batch_size",
							"Largest number of documents in one bulk request.",
							NULL, &flusso_batch_size, 1000, 1, 100000,
							PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("flusso.batch_bytes",
							"Largest size of one bulk request body.",
							NULL, &flusso_batch_bytes, 8 * 1024 * 1024,
							64 * 1024, 512 * 1024 * 1024,
							PGC_SIGHUP, GUC_UNIT_BYTE, NULL, NULL, NULL);
	DefineCustomIntVariable("flusso.flush_interval",
							"Longest time a change waits for its batch to fill before it is sent.",
							NULL, &flusso_flush_interval, 20, 0, 60000,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("flusso.queue_capacity",
							"Bulk requests that may be in flight at once.",
							"The next batch is built while earlier ones are being sent.",
							&flusso_queue_capacity, 4, 1, 64,
							PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("flusso.capture_memory",
							"Memory the capture stage may use for changes not yet resolved.",
							"Past it, captured changes spill to a temporary file.",
							&flusso_capture_memory, 65536, 1024, INT_MAX / 2,
							PGC_SIGHUP, GUC_UNIT_KB, NULL, NULL, NULL);
	DefineCustomStringVariable("flusso.max_lag_bytes",
							   "WAL the replication slot may hold before status warns.",
							   "A size: bytes when bare (500000000), or with a unit (500MB, 50GB, 1TB). Past it, flusso.status shows lag_warning and the log says so; 0 turns the warning off.",
							   &flusso_max_lag_bytes_setting, "1GB", PGC_SIGHUP, 0,
							   check_max_lag_bytes, assign_max_lag_bytes, NULL);
	DefineCustomIntVariable("flusso.lag_poll_interval",
							"How often the replication slot's lag is sampled.",
							NULL, &flusso_lag_poll_interval, 15000, 100, 3600 * 1000,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomEnumVariable("flusso.on_error",
							 "What to do with a document OpenSearch rejects.",
							 "stop halts the index, skip logs and counts it, dead_letter keeps it in flusso.dead_letters. An index definition may override it.",
							 &flusso_on_error, FLUSSO_ON_ERROR_STOP, on_error_options,
							 PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomEnumVariable("flusso.failover_slots",
							 "Make flusso's replication slot a failover slot (PostgreSQL 17 and later).",
							 "A failover slot is synchronized to standbys with sync_replication_slots = on, so a promoted standby goes on from it without a rebuild; documents then wait for the standbys in synchronized_standby_slots. auto: on where the server has failover slots, off on PostgreSQL 15.",
							 &flusso_failover_slots, FLUSSO_FAILOVER_AUTO, failover_slots_options,
							 PGC_SIGHUP, 0, check_failover_slots, NULL, NULL);
	DefineCustomBoolVariable("flusso.skip_backfill",
							 "Skip the initial copy of new indexes and only stream changes.",
							 NULL, &flusso_skip_backfill, false,
							 PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomBoolVariable("flusso.enabled",
							 "Run the sync workers.",
							 "When off, the workers stop and the slot keeps the changes until it is on again.",
							 &flusso_enabled, true, PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomBoolVariable("flusso.pretty",
							 "Pretty-print documents in the dry-run sink.",
							 NULL, &flusso_pretty, false, PGC_SIGHUP, 0, NULL, NULL, NULL);
}

static void
define_definition_settings(void)
{
	DefineCustomStringVariable("flusso.role",
							   "Role the sync worker reads the indexed tables as.",
							   "Empty: the bootstrap superuser.  The role needs SELECT on every table an index reads.",
							   &flusso_role, "", PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("flusso.statement_timeout",
							"Longest time one statement the sync worker runs for an index may take.",
							"A build or change resolution that takes longer is cancelled and its documents go to the index's failure policy; the other indexes go on. 0 turns the limit off.",
							&flusso_statement_timeout, 60000, 0, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("flusso.lock_timeout",
							"Longest time the sync worker waits for a lock on a table an index reads.",
							"Past it the index's work is put aside and tried again later, while the other indexes go on; index_status says what it waits for.",
							&flusso_lock_timeout, 1000, 1, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("flusso.max_indexes",
							"Largest number of indexes, over all databases, whose status is kept.",
							NULL, &flusso_max_indexes, 64, 1, 10000,
							PGC_POSTMASTER, 0, NULL, NULL, NULL);
	DefineCustomBoolVariable("flusso.manage_replica_identity",
							 "Let create_index and alter_index set REPLICA IDENTITY FULL where an index needs it.",
							 NULL, &flusso_manage_replica_identity, false,
							 PGC_SUSET, 0, NULL, NULL, NULL);
}

void
flusso_define_settings(void)
{
	flusso_define_connection_settings();
	define_connection_settings();
	define_pipeline_settings();
	define_definition_settings();
	MarkGUCPrefixReserved("flusso");
}

/*
 * What a reload cannot check, because it runs in the postmaster without
 * catalog access: that flusso.role names a role, and that every database
 * in flusso.database exists.  Each problem is a WARNING.
 */
static bool
check_names_exist(const char *setting, const char *value)
{
	bool		ok = true;
	ListCell   *lc;

	if (strcmp(setting, "flusso.role") == 0 && value[0] != '\0' &&
		!OidIsValid(get_role_oid(value, true)))
	{
		ereport(WARNING,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("role \"%s\" named by flusso.role does not exist", value),
				 errdetail("A reload would accept it, and every index would stop at its next build until the role exists."),
				 errhint("Create the role first, or correct flusso.role (empty: no role).")));
		ok = false;
	}
	if (strcmp(setting, "flusso.database") != 0)
		return ok;
	foreach(lc, flusso_split_list(value))
	{
		if (OidIsValid(get_database_oid(lfirst(lc), true)))
			continue;
		ereport(WARNING,
				(errcode(ERRCODE_UNDEFINED_DATABASE),
				 errmsg("database \"%s\" in flusso.database does not exist", (char *) lfirst(lc)),
				 errdetail("A reload would accept it, and no worker would sync it until the database is created."),
				 errhint("Create the database first, or remove it from flusso.database.")));
		ok = false;
	}
	return ok;
}

/*
 * flusso.check_setting(name, value): validate a value for a flusso setting
 * as a configuration reload would, without applying it.  A value a reload
 * would refuse gives false, with the reason as a WARNING carrying the
 * detail and hint the reload would log; so does a role or a database that
 * does not exist (which a reload cannot see).  A name that is not a flusso
 * setting is an error.
 */
PG_FUNCTION_INFO_V1(flusso_check_setting);
Datum
flusso_check_setting(PG_FUNCTION_ARGS)
{
	char	   *name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	char	   *value = text_to_cstring(PG_GETARG_TEXT_PP(1));
	struct config_generic *setting = flusso_find_setting(name);
	bool		restart;
	char	   *problem;
	char	   *hint;

	if (setting == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("\"%s\" is not a flusso setting", name),
				 errhint("The README lists every flusso.* setting.")));

	/*
	 * A restart-only setting is checked as at server start: checked as at a
	 * reload, a new value would only be reported as needing a restart (and
	 * marked pending in this backend).
	 */
	restart = setting->context == PGC_POSTMASTER;
	if (set_config_option(setting->name, value, restart ? PGC_POSTMASTER : PGC_SIGHUP,
						  PGC_S_FILE, GUC_ACTION_SET, false, WARNING, false) == 0)
		PG_RETURN_BOOL(false);
	if (!check_names_exist(setting->name, value))
		PG_RETURN_BOOL(false);
	problem = flusso_connection_problem_with(setting->name, value, &hint);
	if (problem)
	{
		ereport(WARNING,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s", problem),
				 errdetail("A reload would accept it, and the sync worker would send nothing to the search engine until this is fixed."),
				 errhint("%s", hint)));
		PG_RETURN_BOOL(false);
	}
	if (restart)
		ereport(NOTICE,
				(errmsg("%s takes effect only at a server restart", setting->name),
				 errdetail("A reload leaves it as it is, and logs that it cannot be changed without restarting the server.")));
	PG_RETURN_BOOL(true);
}
