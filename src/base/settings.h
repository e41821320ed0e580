/*-------------------------------------------------------------------------
 *
 * settings.h
 *	  The flusso.* configuration settings.
 *
 *-------------------------------------------------------------------------
 */
#ifndef FLUSSO_SETTINGS_H
#define FLUSSO_SETTINGS_H

#include "nodes/pg_list.h"

typedef enum FlussoOnError
{
	FLUSSO_ON_ERROR_STOP,
	FLUSSO_ON_ERROR_SKIP,
	FLUSSO_ON_ERROR_DEAD_LETTER
} FlussoOnError;

typedef enum FlussoFailoverSlots
{
	FLUSSO_FAILOVER_AUTO,		/* where the server has failover slots (17+) */
	FLUSSO_FAILOVER_ON,
	FLUSSO_FAILOVER_OFF
} FlussoFailoverSlots;

extern char *flusso_database;
extern char *flusso_role;
extern char *flusso_slot_name;
extern int	flusso_batch_size;
extern int	flusso_batch_bytes;
extern int	flusso_flush_interval;
extern int	flusso_queue_capacity;
extern int	flusso_lag_poll_interval;
extern int	flusso_on_error;
extern bool flusso_skip_backfill;
extern bool flusso_enabled;
extern int	flusso_max_indexes;
extern int	flusso_request_timeout;
extern int	flusso_retry_max_interval;
extern bool flusso_pretty;
extern bool flusso_manage_replica_identity;
extern int	flusso_capture_memory;
extern char *flusso_max_lag_bytes_setting;	/* as given: "1GB" */
extern int64 flusso_max_lag_bytes;	/* in bytes; 0: no warning */
extern int	flusso_statement_timeout;
extern int	flusso_lock_timeout;
extern int	flusso_failover_slots;

extern void flusso_define_settings(void);

extern const char *flusso_on_error_name(int policy);

/* Should flusso's slot be a failover slot?  flusso.failover_slots, resolved. */
extern bool flusso_failover_slots_wanted(void);
extern const char *flusso_failover_slots_name(void);
extern int	flusso_on_error_parse(const char *name);

#endif							/* FLUSSO_SETTINGS_H */
