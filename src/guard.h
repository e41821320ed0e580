/*-------------------------------------------------------------------------
 *
 * guard.h
 *	  Run a piece of work in a subtransaction, turning an error into a message.
 *
 *-------------------------------------------------------------------------
 */
#ifndef FLUSSO_GUARD_H
#define FLUSSO_GUARD_H

/*
 * Run fn(arg) in an internal subtransaction.  On error the subtransaction
 * is rolled back, *error gets the message (redacted), and false is
 * returned; the surrounding transaction goes on.  Must be called inside a
 * transaction, with SPI connected if fn uses SPI.
 */
extern bool flusso_guard(void (*fn) (void *arg), void *arg, char **error);

#endif							/* FLUSSO_GUARD_H */
