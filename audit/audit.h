/*
 * audit — what happened, as one JSON record per event for the security team.
 *
 * The gateway fills a struct audit_event as a connection goes (a value struct
 * owned by the connection) and hands it to audit_emit() exactly once, when the
 * tunnel or request ends.  audit/ knows nothing of connections, credentials or
 * policy internals: it encodes what it is told.  Every contract field is always
 * present; a NULL string or a negative number is written as JSON null.
 */
#ifndef EGRESSD_AUDIT_AUDIT_H
#define EGRESSD_AUDIT_AUDIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One record.  Strings are borrowed for the duration of audit_emit(). */
struct audit_event {
	const char *event;              /* "tunnel", "request", "reload", "start", "stop", "audit_loss" */
	const char *id;                 /* unique per record within a run */
	const char *client_ip;          /* client address text, NULL if none */
	int client_port;                /* -1 = null */
	const char *user;               /* authenticated (or, on failure, given) user name */
	const char *method;             /* request method */
	const char *host;               /* normalized host */
	int port;                       /* destination port, -1 = null */
	const char *url;                /* absolute-form URL without userinfo */
	const char *dst_ip;             /* address connected to or refused */
	const char *sni;                /* ClientHello server name, normalized */
	const char *decision;           /* "allow" or "deny" */
	const char *reason;             /* contract reason, or "ok" */
	const char *rule;               /* "FILE:LINE" or NULL */
	int status;                     /* HTTP status sent, 0 if none */
	int64_t bytes_up;               /* client -> destination payload bytes, -1 = null */
	int64_t bytes_down;             /* destination -> client payload bytes, -1 = null */
	int64_t duration_ms;            /* first request byte to end, -1 = null */
	const char *close;              /* "client", "server", "idle_timeout", ... */
	int64_t lost;                   /* audit_loss: records lost, -1 = absent */
	const char *message;            /* reload/start/stop: free text (errors), NULL = absent */
	int64_t end_ms;                 /* end time, ms since the epoch; 0 = now */
};

struct audit_config {
	const char *socket_path;        /* syslog socket */
	int facility;                   /* syslog facility number */
	const char *tag;                /* APP-NAME */
	bool deny_on_failure;           /* audit_on_failure deny */
};

/* Start the audit writer; returns 0 or -1. */
int audit_open(const struct audit_config *);
void audit_close(void);

/* Encode and queue one record; never blocks.  Thread-safe. */
void audit_emit(const struct audit_event *);

/* false while records cannot be delivered (for audit_on_failure deny). */
bool audit_available(void);

/* Encode ev as one JSON object into a malloc'd NUL-terminated string (pure). */
char *audit_encode(const struct audit_event *ev);

#endif
