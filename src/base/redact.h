/*-------------------------------------------------------------------------
 *
 * redact.h
 *	  Credentials out of text that may reach a log or a view, and row
 *	  values out of errors shown to monitoring roles.
 *
 *-------------------------------------------------------------------------
 */
#ifndef FLUSSO_REDACT_H
#define FLUSSO_REDACT_H

/* text with every credential masked (NULL stays NULL) */
extern char *flusso_redact(const char *text);

/* the password part of each URL of a URL list, masked (for pg_settings) */
extern char *flusso_redact_url_list(const char *value);

/* an error without row values, for roles that may not see rows */
extern char *flusso_strip_values(const char *message);

/* The secrets to mask wherever they appear; settings.c tells them as they change. */
typedef enum FlussoSecret
{
	FLUSSO_SECRET_PASSWORD,		/* flusso.opensearch_password */
	FLUSSO_SECRET_PASSWORD_FILE,	/* what the password file holds */
	FLUSSO_SECRET_URLS,			/* flusso.opensearch_url, with its passwords */
	FLUSSO_SECRETS
} FlussoSecret;

extern void flusso_redact_remember(FlussoSecret which, const char *value);

/* An emit_log_hook that redacts every server log line of this process. */
extern void flusso_install_log_redaction(void);

#endif							/* FLUSSO_REDACT_H */
