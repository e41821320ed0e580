/*-------------------------------------------------------------------------
 *
 * redact.c
 *	  Removes credentials from text before it reaches a log line or a view.
 *
 * Every message that may carry a URL or a server's answer passes through
 * flusso_redact() before it is logged or stored in shared memory: the
 * password part of "scheme://user:password@host" becomes "***", and so
 * does every occurrence of the configured flusso.opensearch_password.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "lib/stringinfo.h"

#include "flusso.h"
#include "settings.h"

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

char *
flusso_redact(const char *text)
{
	char	   *result;

	if (text == NULL)
		return NULL;
	result = redact_userinfo(text);
	return redact_secret(result, flusso_opensearch_password);
}
