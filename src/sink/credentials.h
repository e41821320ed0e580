/*-------------------------------------------------------------------------
 *
 * credentials.h
 *	  What a request to the search engine authenticates with: read from
 *	  the settings and from the files they name.
 *
 *-------------------------------------------------------------------------
 */
#ifndef FLUSSO_CREDENTIALS_H
#define FLUSSO_CREDENTIALS_H

#include "datatype/timestamp.h"

#include "base/connection.h"

typedef struct FlussoCredentials
{
	FlussoAuthMethod method;
	const char *user;			/* basic: the user; SigV4: the access key id */
	const char *password;		/* basic: the password; SigV4: the secret key */
	const char *authorization;	/* "ApiKey ..." or "Bearer ...", or NULL */
	const char *aws_sigv4;		/* "aws:amz:<region>:<service>", or NULL */
	const char *aws_session_token;	/* or NULL */
	bool		aws_content_sha256; /* send x-amz-content-sha256 (aoss) */
	TimestampTz aws_expiration; /* 0: none given */
	const char *problem;		/* why nothing can be sent, or NULL */
} FlussoCredentials;

/* Take the connection settings and read the files they name (start, reload). */
extern void flusso_credentials_load(const FlussoConnection *conn);

/*
 * The credentials to send now.  Read again first when the AWS
 * credentials' Expiration has passed or a file could not be read (at most
 * once a second).
 */
extern const FlussoCredentials *flusso_credentials_current(void);

/* Read the files again (the engine said the token expired); true when what is sent changed. */
extern bool flusso_credentials_reread(void);

/* Everything that is sent, as one string, to tell a change. */
extern char *flusso_credentials_fingerprint(void);

#endif							/* FLUSSO_CREDENTIALS_H */
