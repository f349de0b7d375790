/*
 * control — the admin socket (`admin_socket`): egressctl status, tunnels, reload.
 *
 * A unix stream socket served by the main thread's event loop, so nothing an
 * admin client does (or fails to do) reaches a worker.  The protocol is one
 * request line per connection:
 *
 *   request:   COMMAND [ARG] LF       at most CONTROL_LINE_MAX bytes; a CR before LF is ignored
 *              status | status json | tunnels | tunnels json | reload
 *   response:  "ok" LF  or  "error" LF      the outcome (reload: refused = error)
 *              payload lines                a line that starts with "." gets one more "."
 *              "." LF                       end of the response; then the daemon closes
 *
 * A request over the line limit, an unknown command, or a client that has not
 * sent its line within CONTROL_TIMEOUT seconds gets an error (or is simply
 * closed); at most CONTROL_CLIENTS_MAX clients are served at once, and the
 * rest are answered "error" and closed at once.
 */
#ifndef EGRESSD_GATEWAY_CONTROL_H
#define EGRESSD_GATEWAY_CONTROL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "audit/audit.h"
#include "auth/auth.h"
#include "gateway/stats.h"

#define CONTROL_LINE_MAX 1024       /* request line, LF included */
#define CONTROL_TIMEOUT 5           /* seconds for a client's whole exchange */
#define CONTROL_CLIENTS_MAX 16      /* admin clients served at once */

struct event_base;
struct control;
struct policy;

/* Everything `status` and /metrics show, gathered by main.c on request. */
struct control_report {
	struct stats_totals t;          /* summed over the workers */
	bool auth_enabled;              /* auth ldap */
	struct auth_stats auth;         /* valid if auth_enabled */
	struct audit_stats audit;
	const char *version;
	long pid;
	int workers;
	int64_t start_ms;               /* wall clock, ms since the epoch */
	int64_t now_ms;
	const char *policy_file;        /* as the configuration names it */
	size_t policy_rules;
	unsigned policy_generation;     /* policies loaded so far (1 = the one at start) */
	int64_t policy_loaded_ms;       /* wall clock of that load */
	int64_t policy_load_us;         /* how long it took to read and compile */
	const struct policy *policy;    /* the policy in force (borrowed, for the call), or NULL */
	bool tls;                       /* a tls listener exists */
	int64_t tls_cert_expiry;        /* its certificate's notAfter, Unix time */
};

/* What the daemon provides; every call runs on the main thread. */
struct control_ops {
	void (*report)(void *arg, struct control_report *);
	/* Open tunnels of every worker, malloc'd (*n entries); -1: out of memory. */
	int (*tunnels)(void *arg, struct stats_tunnel **list, size_t *n);
	/* Re-read the policy as SIGHUP does: 0 with *msg "ok (N rules)", or -1
	 * with *msg the "FILE:LINE: message" lines; *msg malloc'd (may be NULL). */
	int (*reload)(void *arg, char **msg);
};

/*
 * Create the socket at path, safely: the parent folder must exist; an
 * existing file that is not a socket (a planted symlink, say) is refused; an
 * existing socket is replaced only when nothing answers on it (a live one
 * means another egressd: refused).  Mode 0660.  NULL with *err (malloc'd).
 */
struct control *control_new(struct event_base *, const char *path, const struct control_ops *,
    void *arg, char **err);
/* Close every client and the socket, and remove the socket file. */
void control_free(struct control *);

/* The report as JSON text (one line, malloc'd) or as text for a person. */
char *control_status_json(const struct control_report *);
char *control_status_text(const struct control_report *);

#endif
