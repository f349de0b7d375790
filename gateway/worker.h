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

struct config_listen;
struct gateway;
struct policy;
struct stats;

struct worker;

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

/* From the main thread: has the worker's loop ended (drained or grace over)? */
bool worker_finished(struct worker *);

/* The worker's counters: written on its thread, read (stats_sum,
 * stats_tunnels) from the main thread; valid until worker_free. */
struct stats *worker_stats(struct worker *);

#endif
