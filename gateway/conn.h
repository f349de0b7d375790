/*
 * conn — one client connection, from accept to close.  See conn.c.
 */
#ifndef EGRESSD_GATEWAY_CONN_H
#define EGRESSD_GATEWAY_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/queue.h>
#include <sys/socket.h>

struct auth_loop;
struct config;
struct conn;
struct event_base;
struct gateway;
struct policy;
struct stats;
struct upstream_ctx;

/*
 * What the connections of one event loop share, owned and filled in by the
 * loop's owner (worker.c) and outliving every connection in it.  policy is
 * the loop's current snapshot, swapped by the owner on reload; a connection
 * takes its own reference when it decides.  on_removed runs after a
 * connection left the list (the owner's drain waits for the last one).
 */
struct conn_env {
	struct event_base *base;
	const struct config *conf;
	struct gateway *gw;             /* open-connection count, ids */
	struct stats *stats;            /* this loop's counters */
	struct auth_loop *auth;         /* NULL under "auth none" */
	struct policy *policy;          /* borrowed */
	const struct upstream_ctx *upstream;
	void (*on_removed)(void *arg);
	void *owner;                    /* on_removed's argument */
	TAILQ_HEAD(conn_list, conn) conns;  /* every open connection of the loop */
	size_t nconns;
};

/*
 * Take over the accepted socket fd.  proxy_protocol: a PROXY header comes
 * first.  tls: then a TLS handshake (gateway/tls.c's pair).  over_capacity: the gateway is past max_connections; the request is
 * read and answered 503.
 */
void conn_new(struct conn_env *env, int fd, const struct sockaddr *peer, socklen_t peerlen,
    bool proxy_protocol, bool tls, bool over_capacity);

/*
 * The loop is draining.  now=false: close every connection that is idle (no
 * request or tunnel under way), let the others finish.  now=true: the grace
 * time is over, close them all whatever they are doing (reason "shutdown").
 */
void conn_shutdown_all(struct conn_env *env, bool now);

#endif
