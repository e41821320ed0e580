/*-------------------------------------------------------------------------
 *
 * redact.c
 *	  Removes credentials from text before it reaches a log line or a view.
 *
 * Every message that may carry a URL or a server's answer passes through
 * flusso_redact() before it is logged or stored in shared memory: the
 * password part of "scheme://user:password@host" becomes "***", and so
 * does every occurrence of the OpenSearch password (from the setting or
 * the password file).  An emit_log_hook, installed in every process, does
 * the same to every server log line, including PostgreSQL's own (the
 * "parameter changed" line of a reload, a logged ALTER SYSTEM statement).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "lib/stringinfo.h"

#include "flusso.h"
#include "settings.h"
#include "tcop/tcopprot.h"
#include "utils/elog.h"

static char file_secret[1024];	/* the password read from the password file */
static emit_log_hook_type prev_emit_log_hook = NULL;

/* Replace the password of every "://user:password@" in text. */
static char *
redact_userinfo(const char *text)
{
	StringInfoData out;
	const char *p = text;

	initStringInfo(&out);
	while (*p)
	{
		const char *scheme = strstr(p, "://");
		const char *end;
		const char *at = NULL;
		const char *colon = NULL;
		const char *q;

		if (scheme == NULL)
			break;
		end = scheme + 3;
		for (q = end; *q && !strchr("/ \t\r\n\"',;?#", *q); q++)
		{
			if (*q == '@')
				at = q;
			else if (*q == ':' && at == NULL && colon == NULL)
				colon = q;
		}
		if (at != NULL)
		{
			if (colon != NULL && colon < at)
			{
				appendBinaryStringInfo(&out, p, colon - p);
				appendStringInfoString(&out, ":***");
			}
			else
			{
				appendBinaryStringInfo(&out, p, end - p);
				appendStringInfoString(&out, "***");
			}
			p = at;
		}
		else
		{
			appendBinaryStringInfo(&out, p, end - p);
			p = end;
		}
	}
	appendStringInfoString(&out, p);
	return out.data;
}

/* Replace every occurrence of secret in text with "***". */
static char *
redact_secret(char *text, const char *secret)
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

/* "... opensearch_password = 'secret' ..." -> "... opensearch_password = '***' ..." */
static char *
redact_setting_literal(char *text)
{
	char	   *key = text;
	StringInfoData out;
	const char *p;

	while ((key = strstr(key, "opensearch_password")) != NULL)
	{
		char	   *open = strchr(key, '\'');
		char	   *close = open ? strchr(open + 1, '\'') : NULL;

		if (close == NULL)
			break;
		initStringInfo(&out);
		appendBinaryStringInfo(&out, text, open + 1 - text);
		appendStringInfoString(&out, "***");
		p = close;
		appendStringInfoString(&out, p);
		key = out.data + (open + 1 - text) + 3;
		text = out.data;
	}
	return text;
}

void
flusso_redact_secret(const char *secret)
{
	strlcpy(file_secret, secret ? secret : "", sizeof(file_secret));
}

char *
flusso_redact(const char *text)
{
	char	   *result;

	if (text == NULL)
		return NULL;
	result = redact_userinfo(text);
	result = redact_secret(result, flusso_opensearch_password);
	result = redact_secret(result, file_secret);
	return redact_setting_literal(result);
}

static bool
may_hold_secret(const char *text)
{
	return text != NULL &&
		(strstr(text, "://") != NULL || strstr(text, "opensearch_password") != NULL ||
		 (flusso_opensearch_password && flusso_opensearch_password[0] &&
		  strstr(text, flusso_opensearch_password) != NULL) ||
		 (file_secret[0] && strstr(text, file_secret) != NULL));
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
	if (may_hold_secret(debug_query_string))
		edata->hide_stmt = true;	/* the STATEMENT: line would show it */
}

void
flusso_install_log_redaction(void)
{
	prev_emit_log_hook = emit_log_hook;
	emit_log_hook = redact_log_line;
}
