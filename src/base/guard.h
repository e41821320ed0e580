/*-------------------------------------------------------------------------
 *
 * guard.h
 *	  Run a piece of work in a subtransaction, turning an error into a message.
 *
 *-------------------------------------------------------------------------
 */
#ifndef FLUSSO_GUARD_H
#define FLUSSO_GUARD_H

/* An error caught by flusso_guard(). */
typedef struct FlussoError
{
	int			sqlerrcode;
	char	   *message;		/* redacted */
} FlussoError;

/*
 * Run fn(arg) in an internal subtransaction.  On error the subtransaction
 * is rolled back (and with it the user id, the settings and the statement
 * timeout user code ran under), *error gets the error, and false is
 * returned; the surrounding transaction goes on.  Must be called inside a
 * transaction, with SPI connected if fn uses SPI.
 */
extern bool flusso_guard(void (*fn) (void *arg), void *arg, FlussoError *error);

/*
 * The same for a SQL function in a user's backend: the whole error is kept
 * (*error, to free with FreeErrorData), and the session's statement_timeout
 * is left as it is.
 */
extern bool flusso_guard_keeping(void (*fn) (void *arg), void *arg, ErrorData **error);

/* Did the error come from flusso.lock_timeout, or from flusso.statement_timeout? */
extern bool flusso_error_is_lock_wait(const FlussoError *error);
extern bool flusso_error_is_timeout(const FlussoError *error);

#endif							/* FLUSSO_GUARD_H */
