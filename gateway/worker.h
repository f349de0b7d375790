/*
 * worker — one thread, one event loop, its own listeners and connections.
 *
 * Each worker has its own event_base, its own evdns base and its own
 * SO_REUSEPORT listening socket per `listen` address, so the kernel spreads
 * connections over the workers and nothing on the per-connection or per-byte
 * path is shared or locked.  The main thread talks to a worker only through a
 * small mailbox: it sets a field under the worker's mutex and writes to the
 * worker's eventfd; the worker picks the message up in its own loop (a new
 * policy to publish, or "drain and stop").
 */
#ifndef EGRESSD_GATEWAY_WORKER_H
#define EGRESSD_GATEWAY_WORKER_H

#include <stdbool.h>
#include <sys/queue.h>
#include <sys/socket.h>

struct auth_loop;
struct conn;
struct config;
struct config_listen;
struct gateway;
struct policy;
struct event_base;
struct evdns_base;
struct stats;

struct worker;

/* Linkage of a connection in its worker's list; embedded in struct conn. */
struct conn_node {
	TAILQ_ENTRY(conn_node) entry;
	struct conn *conn;              /* the connection this node belongs to */
};

/*
 * Before any worker binds: fail (-1, *err "listen ADDR: address in use ...")
 * when another process already listens on cl's address.
 */
int worker_probe_listen(const struct config_listen *cl, char **err);

/* Create worker `index` (listeners bound now, so errors surface before start). */
struct worker *worker_new(struct gateway *gw, int index, struct policy *policy, char **err);
int worker_start(struct worker *);
void worker_join(struct worker *);
void worker_free(struct worker *);

/* From the main thread: publish a new policy (the worker takes a reference). */
void worker_post_policy(struct worker *, struct policy *);
/* From the main thread: stop accepting, drain for shutdown_grace, then stop. */
void worker_post_shutdown(struct worker *);

/* For conn.c and upstream.c, on the worker's own thread. */
struct event_base *worker_base(struct worker *);
struct evdns_base *worker_dns(struct worker *);
struct gateway *worker_gateway(struct worker *);
const struct config *worker_config(struct worker *);
struct policy *worker_policy(struct worker *);  /* borrowed: ref it to keep it */
struct auth_loop *worker_auth(struct worker *); /* NULL under "auth none" */
bool worker_draining(struct worker *);
/* The worker's counters: written on its thread, read (stats_sum,
 * stats_tunnels) from the main thread; valid until worker_free. */
struct stats *worker_stats(struct worker *);
void worker_conn_add(struct worker *, struct conn_node *);
void worker_conn_remove(struct worker *, struct conn_node *);
/*
 * true if a connection to sa would reach one of the daemon's own listeners
 * (every listen address and metrics_listen): the same address in any form
 * (IPv4-mapped included), or, for a wildcard listener, any address of this
 * host on that port.  A destination on no listener's port costs a compare.
 */
bool worker_is_own_address(struct worker *, const struct sockaddr *);

#endif
