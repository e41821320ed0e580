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

/* The secrets to mask wherever they appear; connection.c and credentials.c tell them as they change. */
typedef enum FlussoSecret
{
	FLUSSO_SECRET_PASSWORD,		/* flusso.opensearch_password */
	FLUSSO_SECRET_SEARCH_PASSWORD,	/* flusso.search_password */
	FLUSSO_SECRET_PASSWORD_FILE,	/* what the password file holds */
	FLUSSO_SECRET_API_KEY,		/* flusso.search_api_key */
	FLUSSO_SECRET_API_KEY_FILE, /* what the API key file holds */
	FLUSSO_SECRET_API_KEY_SENT, /* the API key as sent (base64 of id:api_key) */
	FLUSSO_SECRET_BEARER_TOKEN, /* flusso.search_bearer_token */
	FLUSSO_SECRET_BEARER_TOKEN_FILE,	/* what the bearer token file holds */
	FLUSSO_SECRET_AWS_SECRET_KEY,	/* SecretAccessKey of the AWS credentials file */
	FLUSSO_SECRET_AWS_SESSION_TOKEN,	/* its Token */
	FLUSSO_SECRET_URLS,			/* flusso.opensearch_url, with its passwords */
	FLUSSO_SECRET_SEARCH_URLS,	/* flusso.search_url, with its passwords */
	FLUSSO_SECRETS
} FlussoSecret;

extern void flusso_redact_remember(FlussoSecret which, const char *value);

/* An emit_log_hook that redacts every server log line of this process. */
extern void flusso_install_log_redaction(void);

#endif							/* FLUSSO_REDACT_H */
