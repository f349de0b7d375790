/*
 * auth — who is asking: Proxy-Authorization: Basic checked against LDAP.
 *
 * The gateway hands the raw header value to auth_begin() and gets back an
 * identity (the user name as stored in the directory, and its groups), a
 * failure, or "directory unavailable".  It never sees LDAP.  A warm cache
 * answers at once, on the calling thread, without any hand-off; everything
 * else runs on a small bounded pool of auth threads and comes back on the
 * caller's event loop through that loop's auth_loop, so a slow or dead
 * directory delays only the requests that need it.
 */
#ifndef EGRESSD_AUTH_AUTH_H
#define EGRESSD_AUTH_AUTH_H

#include <stdbool.h>
#include <stddef.h>

struct event_base;
struct auth;                        /* the process's authenticator (cache, pool, settings) */
struct auth_loop;                   /* one per event loop: where results are delivered */
struct auth_req;                    /* one pending authentication */

/*
 * Operational messages from the authenticator (from any thread): level 0 a
 * warning, 1 information, 2 debug.  msg is one line, with user names already
 * escaped and never a password.
 */
typedef void auth_log_fn(int level, const char *msg);

/* Settings, from egressd.conf; strings are copied by auth_new(). */
struct auth_config {
	const char *const *uris;        /* ldap_uri: servers tried in order */
	size_t nuris;
	bool starttls;                  /* ldap_starttls */
	const char *bind_dn;            /* service account, NULL = anonymous search */
	const char *bind_password_file; /* its password file (refused if others can read it) */
	long secret_owner;              /* besides root, the uid it may belong to; 0 = ours */
	const char *user_base;          /* ldap_user_base */
	const char *user_filter;        /* ldap_user_filter, with %u */
	const char *group_base;         /* ldap_group_base, NULL = no group lookup */
	const char *group_filter;       /* ldap_group_filter, with %d */
	const char *group_attr;         /* ldap_group_attr */
	int timeout;                    /* ldap_timeout, seconds per operation */
	int cache_ttl;                  /* auth_cache_ttl, seconds */
	int negative_ttl;               /* auth_negative_ttl, seconds */
	int threads;                    /* auth threads in the pool (0 = default, 4) */
	int fail_per_client;            /* auth_fail_per_client: failures a minute, 0 = no limit */
	int fail_per_user;              /* auth_fail_per_user: failures a minute, 0 = no limit */
	/* Extensions (zero = default): */
	const char *tls_ca_file;        /* ldap_tls_ca_file: CAs for StartTLS/ldaps;
	                                   NULL = /etc/ssl/certs/ca-certificates.crt */
	const char *user_attr;          /* attribute holding the stored user name;
	                                   NULL = ATTR of a "(ATTR=%u)" filter, else uid */
	auth_log_fn *log;               /* NULL = silent */
};

enum auth_status {
	AUTH_OK,                        /* identity established */
	AUTH_MISSING,                   /* no credentials given: 407, auth_required */
	AUTH_FAILED,                    /* bad header, unknown user, wrong password: 407, auth_failed */
	AUTH_UNAVAILABLE,               /* directory unreachable and not cached: 503, auth_unavailable */
	AUTH_THROTTLED,                 /* too many failures (or exchanges) of this client or
	                                   user: 429, auth_throttled, no directory exchange */
};

/* The outcome; every pointer is valid only during the callback (or until the
 * next auth call on this thread for a synchronous answer): copy what you keep. */
struct auth_result {
	enum auth_status status;
	const char *user;               /* AUTH_OK: the name as stored in the directory;
	                                   AUTH_FAILED, AUTH_THROTTLED: the name as given (for the
	                                   audit), or NULL for a header that did not parse;
	                                   otherwise NULL */
	const char *const *groups;      /* AUTH_OK: the user's group names (ldap_group_attr values);
	                                   never NULL (an empty list otherwise) */
	size_t ngroups;
	int retry_after;                /* AUTH_THROTTLED: seconds until it may be tried again */
};

typedef void auth_cb(const struct auth_result *, void *arg);

/*
 * Start the authenticator (threads, cache).  NULL with *err (malloc'd) on
 * failure.  Reads bind_password_file here (refused if group or others may
 * read it) and sets LDAPNOINIT in the environment: call it before other
 * threads exist.  auth_free() joins the threads, which may take up to a few
 * ldap_timeout if an operation is under way; free every auth_loop first.
 */
struct auth *auth_new(const struct auth_config *, char **err);
void auth_free(struct auth *);

/*
 * Per event loop, created and used on that loop's thread (NULL on failure,
 * with errno).  Results come back through an eventfd watched by an event on
 * that base; no other thread ever calls libevent on it, so the base may be
 * EVENT_BASE_FLAG_NOLOCK.  auth_loop_free() drops the loop's pending requests
 * without calling their callbacks.
 */
struct auth_loop *auth_loop_new(struct auth *, struct event_base *);
void auth_loop_free(struct auth_loop *);

/*
 * Authenticate the Proxy-Authorization value hdr[0..len) (hdr NULL = no header).
 * Returns NULL when answered at once: *now holds the result (missing or bad
 * header, cache hit).  Otherwise returns a handle; cb(result, arg) runs later
 * on the loop's thread, unless auth_cancel() is called first.  The handle is
 * dead once cb has started: never cancel it from (or after) its callback.
 * Requests with the same credentials pending at the same time share one
 * directory exchange.  When too many distinct exchanges are already queued
 * the answer is AUTH_UNAVAILABLE at once.
 */
struct auth_req *auth_begin(struct auth_loop *, const char *hdr, size_t len,
    struct auth_result *now, auth_cb *cb, void *arg);

/*
 * auth_begin for a request from client (its address as text, as audited).
 * Failed authentications are counted per client address and per user name
 * (auth_fail_per_client, auth_fail_per_user): past either limit within a
 * minute the answer is AUTH_THROTTLED at once, with no directory exchange.
 * What counts: a directory "no" (one per exchange, however many requests
 * shared it; every exchange of a user counts while it runs, so concurrent
 * guesses cannot overshoot the per-user limit) and, per client only, a
 * header that does not parse or has an empty password.  A positive cache
 * hit is answered even when throttled: the real user with a password the
 * directory already confirmed is never locked out by someone else's guesses.
 * One client address may also hold at most AUTH_CLIENT_QUEUE_MAX distinct
 * exchanges at a time; beyond that it is AUTH_THROTTLED (retry_after 1),
 * so one address cannot fill the queue for everyone.  client NULL (what
 * auth_begin passes) = no per-client accounting.
 */
#define AUTH_CLIENT_QUEUE_MAX 64        /* distinct exchanges one client address may hold */

struct auth_req *auth_begin_from(struct auth_loop *, const char *client, const char *hdr,
    size_t len, struct auth_result *now, auth_cb *cb, void *arg);
void auth_cancel(struct auth_req *);

/* Counters for the admin socket. */
struct auth_stats {
	unsigned long long cache_hits;  /* answered from the positive or negative cache */
	unsigned long long cache_misses;/* needed the directory */
	unsigned long long ldap_errors; /* directory unreachable or erroring */
	unsigned long long cache_entries; /* entries now cached */
	unsigned long long exchanges;   /* directory exchanges started (after coalescing) */
	unsigned long long throttled;   /* requests answered AUTH_THROTTLED */
};
void auth_get_stats(struct auth *, struct auth_stats *);

#endif
