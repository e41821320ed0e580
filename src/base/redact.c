/*-------------------------------------------------------------------------
 *
 * redact.c
 *	  Removes credentials from text before it reaches a log line or a view,
 *	  and row values from errors shown to monitoring roles.
 *
 * Every message that may carry a URL or a server's answer passes through
 * flusso_redact() before it is logged or stored in shared memory, and an
 * emit_log_hook, installed in every process, does the same to every server
 * log line, PostgreSQL's own included (the "parameter changed" line of a
 * reload, a logged ALTER SYSTEM statement).  Three rules, each on its own
 * so that no spelling sidesteps all of them:
 *	1. every known secret (the password, API key and bearer token settings
 *	   under every name, the content of the files that hold them, the AWS
 *	   secret key and session token, the password of every configured URL)
 *	   is masked wherever it appears, as written and as SQL writes it ('' for ');
 *	2. the password of any "scheme://user:password@host" is masked, up to
 *	   the last "@" of the URL, whatever characters it holds;
 *	3. a text that names a secret setting (in any letter case, quoted or
 *	   not) has every string in it masked: SQL literals ('...', E'...',
 *	   $tag$...$tag$) and double-quoted values, except the setting names
 *	   themselves; a string holding a URL keeps all but its password.
 *
 * flusso_strip_values() is the other direction's guard: errors shown to
 * members of pg_monitor carry no row values (quoted values, answers after
 * "HTTP nnn:", key values).
 *
 * It must not raise errors: it runs inside the log hook.  It reads no
 * setting: connection.c tells it the secrets as they are set, and
 * sink/credentials.c what the files hold (flusso_redact_remember()).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <ctype.h>

#include "lib/stringinfo.h"
#include "tcop/tcopprot.h"
#include "utils/elog.h"

#include "base/redact.h"

/* What settings.c told us (flusso_redact_remember()); NULL: nothing. */
static const char *known[FLUSSO_SECRETS];
static emit_log_hook_type prev_emit_log_hook = NULL;

/*
 * Settings whose values are secret, or hold a URL that may carry one.  A
 * text naming one of these in any letter case names it: "search_password"
 * is in flusso.search_password, flusso.opensearch_password and
 * flusso.search_password_file alike.
 */
static const char *const secret_settings[] = {
	"search_password", "search_url", "search_api_key", "search_bearer_token",
	"aws_secret", "aws_session_token", NULL
};

/* ---- URLs ---- */

static bool
is_scheme_char(char c)
{
	return isalnum((unsigned char) c) || c == '+' || c == '-' || c == '.';
}

/*
 * Where the URL that starts at scheme_end ("://" + 3) ends: at white space
 * or a quote, or where the next URL of a list begins.
 */
static const char *
url_end(const char *p)
{
	for (; *p; p++)
	{
		if (isspace((unsigned char) *p) || *p == '"')
			return p;
		if (*p == ',' && (strncmp(p + 1, "http", 4) == 0 ||
						  (p[1] == ' ' && strncmp(p + 2, "http", 4) == 0)))
			return p;
	}
	return p;
}

/*
 * The userinfo of a URL, from start (after "://") to end: *at is its last
 * '@' and *colon the first ':' before that (NULL when there is none).
 */
static void
find_userinfo(const char *start, const char *end, const char **at, const char **colon)
{
	const char *q;

	*at = *colon = NULL;
	for (q = start; q < end; q++)
	{
		if (*q == '@')
			*at = q;
	}
	for (q = start; *at && q < *at && *colon == NULL; q++)
	{
		if (*q == ':')
			*colon = q;
	}
}

/*
 * Mask the password of every "scheme://user:password@host" in text: the
 * userinfo ends at the last "@" of the URL, so a password holding ";",
 * "'", "/" or "@" is masked whole.  With stop_at_quote, a single quote ends
 * a URL too (text that is not one URL, such as a log line).
 */
static char *
redact_userinfo(const char *text, bool stop_at_quote)
{
	StringInfoData out;
	const char *p = text;
	const char *scheme;

	initStringInfo(&out);
	while ((scheme = strstr(p, "://")) != NULL)
	{
		const char *start = scheme + 3;
		const char *end = url_end(start);
		const char *at;
		const char *colon;

		if (stop_at_quote)
		{
			const char *quote = memchr(start, '\'', end - start);

			if (quote)
				end = quote;
		}
		find_userinfo(start, end, &at, &colon);
		if (at == NULL || scheme == text || !is_scheme_char(scheme[-1]))
		{
			appendBinaryStringInfo(&out, p, start - p);
			p = start;
			continue;
		}
		appendBinaryStringInfo(&out, p, (colon ? colon + 1 : start) - p);
		appendStringInfoString(&out, "***");
		p = at;
	}
	appendStringInfoString(&out, p);
	return out.data;
}

/* ---- known secrets ---- */

/* Replace every occurrence of secret in text with "***". */
static char *
mask_secret(char *text, const char *secret)
{
	StringInfoData out;
	const char *p = text;
	const char *hit;
	size_t		len;

	if (secret == NULL || *secret == '\0' || strstr(text, secret) == NULL)
		return text;
	len = strlen(secret);
	initStringInfo(&out);
	while ((hit = strstr(p, secret)) != NULL)
	{
		appendBinaryStringInfo(&out, p, hit - p);
		appendStringInfoString(&out, "***");
		p = hit + len;
	}
	appendStringInfoString(&out, p);
	return out.data;
}

/* A secret as written, and as an SQL literal writes it ('' for '). */
static char *
mask_known(char *text, const char *secret)
{
	StringInfoData doubled;
	const char *p;

	if (secret == NULL || *secret == '\0')
		return text;
	text = mask_secret(text, secret);
	if (strchr(secret, '\'') == NULL)
		return text;
	initStringInfo(&doubled);
	for (p = secret; *p; p++)
	{
		if (*p == '\'')
			appendStringInfoChar(&doubled, '\'');
		appendStringInfoChar(&doubled, *p);
	}
	return mask_secret(text, doubled.data);
}

/* The passwords of the configured URLs (flusso.search_url or flusso.opensearch_url). */
static char *
mask_url_passwords(char *text, const char *urls)
{
	const char *p = urls;
	const char *scheme;

	while (p && (scheme = strstr(p, "://")) != NULL)
	{
		const char *start = scheme + 3;
		const char *end = url_end(start);
		const char *at;
		const char *colon;

		find_userinfo(start, end, &at, &colon);
		if (colon && at > colon + 1)
		{
			char	   *secret = pnstrdup(colon + 1, at - colon - 1);

			text = mask_known(text, secret);
		}
		p = end;
	}
	return text;
}

/* ---- texts that name a secret setting ---- */

static bool
names_secret_setting(const char *text)
{
	int			i;

	for (i = 0; text && secret_settings[i]; i++)
	{
		const char *name = secret_settings[i];
		size_t		len = strlen(name);
		const char *p;

		for (p = text; *p; p++)
		{
			if (pg_strncasecmp(p, name, len) == 0)
				return true;
		}
	}
	return false;
}

/* Is the string s[0..len) a setting's name (flusso.x, "flusso"."x", x)? */
static bool
is_setting_name(const char *s, size_t len)
{
	int			i;

	if (len > 7 && pg_strncasecmp(s, "flusso.", 7) == 0)
	{
		s += 7;
		len -= 7;
	}
	if (len > 4 && pg_strncasecmp(s, "open", 4) == 0)
	{
		s += 4;					/* the old name: opensearch_password */
		len -= 4;
	}
	for (i = 0; secret_settings[i]; i++)
	{
		if (len >= strlen(secret_settings[i]) &&
			pg_strncasecmp(s, secret_settings[i], strlen(secret_settings[i])) == 0 &&
			(len == strlen(secret_settings[i]) || pg_strncasecmp(s + len - 5, "_file", 5) == 0))
			return true;
	}
	return len == 6 && pg_strncasecmp(s, "flusso", 6) == 0;
}

/* What stands in for a string: its URL without the password, or "***". */
static void
append_masked(StringInfo out, const char *s, size_t len)
{
	char	   *value = pnstrdup(s, len);

	if (is_setting_name(s, len))
		appendBinaryStringInfo(out, s, len);
	else if (strstr(value, "://"))
		appendStringInfoString(out, redact_userinfo(value, false));
	else
		appendStringInfoString(out, "***");
}

/* The end of a quoted string opened at p (quote char q, doubled to escape; backslashes when escapes). */
static const char *
quoted_end(const char *p, char q, bool escapes)
{
	for (p++; *p; p++)
	{
		if (escapes && *p == '\\' && p[1])
			p++;
		else if (*p == q && p[1] == q)
			p++;
		else if (*p == q)
			return p;
	}
	return p;
}

/* A dollar-quote tag starting at p ("$tag$" or "$$"), its length, or 0. */
static size_t
dollar_tag(const char *p)
{
	const char *q = p + 1;

	while (*q && (isalnum((unsigned char) *q) || *q == '_'))
		q++;
	return *q == '$' ? (size_t) (q - p + 1) : 0;
}

/* Mask every string of a text that names a secret setting (rule 3). */
static char *
mask_strings(const char *text)
{
	StringInfoData out;
	const char *p = text;

	initStringInfo(&out);
	while (*p)
	{
		size_t		tag = *p == '$' ? dollar_tag(p) : 0;
		const char *end;

		if (*p == '\'' || *p == '"')
		{
			bool		escapes = *p == '\'' && p > text && (p[-1] == 'E' || p[-1] == 'e');

			end = quoted_end(p, *p, escapes);
			appendStringInfoChar(&out, *p);
			append_masked(&out, p + 1, end - p - 1);
			if (*end)
				appendStringInfoChar(&out, *end++);
			p = end;
		}
		else if (tag > 0)
		{
			char	   *close = pnstrdup(p, tag);
			const char *body = p + tag;
			const char *stop = strstr(body, close);

			end = stop ? stop : body + strlen(body);
			appendBinaryStringInfo(&out, p, tag);
			append_masked(&out, body, end - body);
			if (stop)
				appendBinaryStringInfo(&out, stop, tag);
			p = stop ? stop + tag : end;
		}
		else
			appendStringInfoChar(&out, *p++);
	}
	return out.data;
}

/*
 * Remember a secret to mask.  value must stay as it is until the next call
 * for the same secret: the settings' own values do (GUC keeps a value
 * until the assign hook that replaces it has run), and settings.c keeps
 * the password file's content in a buffer of its own.
 */
void
flusso_redact_remember(FlussoSecret which, const char *value)
{
	known[which] = value;
}

char *
flusso_redact(const char *text)
{
	char	   *result;
	int			which;

	if (text == NULL)
		return NULL;
	result = redact_userinfo(text, true);
	for (which = 0; which < FLUSSO_SECRET_URLS; which++)
		result = mask_known(result, known[which]);
	result = mask_url_passwords(result, known[FLUSSO_SECRET_URLS]);
	result = mask_url_passwords(result, known[FLUSSO_SECRET_SEARCH_URLS]);
	if (names_secret_setting(result))
		result = mask_strings(result);
	return result;
}

/* The password part of each URL of a URL list setting, masked (for pg_settings). */
char *
flusso_redact_url_list(const char *value)
{
	return redact_userinfo(value, false);
}

/*
 * An error without row values, for roles that may see that something went
 * wrong but not the rows: quoted values become "…", an engine's answer
 * after "HTTP nnn:" and key values after "=(" go.
 */
char *
flusso_strip_values(const char *message)
{
	StringInfoData out;
	const char *p = message;

	if (message == NULL)
		return NULL;
	initStringInfo(&out);
	while (*p)
	{
		if (*p == '\'' || *p == '"')
		{
			const char *end = quoted_end(p, *p, false);

			appendStringInfo(&out, "%c…%c", *p, *p);
			p = *end ? end + 1 : end;
		}
		else if (strncmp(p, "HTTP ", 5) == 0 && isdigit((unsigned char) p[5]) &&
				 strchr(p + 5, ':') != NULL)
		{
			appendBinaryStringInfo(&out, p, strchr(p + 5, ':') - p);
			break;
		}
		else if (strncmp(p, "=(", 2) == 0)
		{
			appendStringInfoString(&out, "=(…)");
			p = strchr(p, ')') ? strchr(p, ')') + 1 : p + strlen(p);
		}
		else
			appendStringInfoChar(&out, *p++);
	}
	return out.data;
}

/* Does text hold a known secret (a URL password aside)? */
static bool
holds_known_secret(const char *text)
{
	int			which;

	for (which = 0; which < FLUSSO_SECRET_URLS; which++)
		if (known[which] && known[which][0] && strstr(text, known[which]) != NULL)
			return true;
	return false;
}

static bool
may_hold_secret(const char *text)
{
	return text != NULL &&
		(strstr(text, "://") != NULL || names_secret_setting(text) ||
		 holds_known_secret(text) ||
		 (known[FLUSSO_SECRET_URLS] && strchr(known[FLUSSO_SECRET_URLS], '@')) ||
		 (known[FLUSSO_SECRET_SEARCH_URLS] && strchr(known[FLUSSO_SECRET_SEARCH_URLS], '@')));
}

static void
redact_log_line(ErrorData *edata)
{
	if (prev_emit_log_hook)
		prev_emit_log_hook(edata);
	if (may_hold_secret(edata->message))
		edata->message = flusso_redact(edata->message);
	if (may_hold_secret(edata->detail))
		edata->detail = flusso_redact(edata->detail);
	if (may_hold_secret(edata->detail_log))
		edata->detail_log = flusso_redact(edata->detail_log);
	if (may_hold_secret(edata->hint))
		edata->hint = flusso_redact(edata->hint);
	if (may_hold_secret(edata->context))
		edata->context = flusso_redact(edata->context);
	if (may_hold_secret(edata->internalquery))
		edata->internalquery = flusso_redact(edata->internalquery);
	if (may_hold_secret(debug_query_string) &&
		strcmp(flusso_redact(debug_query_string), debug_query_string) != 0)
		edata->hide_stmt = true;	/* the STATEMENT: line would show it */
}

void
flusso_install_log_redaction(void)
{
	prev_emit_log_hook = emit_log_hook;
	emit_log_hook = redact_log_line;
}
