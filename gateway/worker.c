/*
 * worker — one thread, one event loop, its own listeners and connections.
 *
 * The kernel balances connections across workers through SO_REUSEPORT, so a
 * worker never hands a connection to another and nothing in a connection's
 * life takes a lock.  The only cross-thread traffic is the mailbox (a policy to
 * publish, a shutdown to begin), signalled through an eventfd.
 *
 * The worker batches its audit records (audit_batch_start): a record waits
 * in the thread until the loop turn that made it ends, when audit_flush_ev
 * (made active by the first record) hands the turn's records on together.
 *
 * Two overload cases are handled here rather than in conn.c because they are
 * about the listening sockets: accept() failing with EMFILE/ENFILE pauses the
 * listeners for a moment instead of spinning (libevent issue 71), and a burst
 * far past max_connections pauses them until connections close, so the excess
 * waits in the kernel backlog.
 */
#include "gateway/worker.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <event2/dns.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "audit/audit.h"
#include "auth/auth.h"
#include "config/config.h"
#include "gateway/conn.h"
#include "gateway/gateway.h"
#include "gateway/log.h"
#include "config/netaddr.h"
#include "gateway/stats.h"
#include "gateway/upstream.h"
#include "policy/policy.h"

#define ACCEPT_PAUSE_MS 200         /* listeners rest this long after EMFILE or a burst */
#define REFUSED_LOG_SECONDS 10      /* at most one proxy-refused line this often per worker */
#define ACCEPT_LOG_MS 10000         /* at most one accept-paused line this often */
#define DRAIN_ACCEPT_MAX 4096       /* a listen backlog's worth, taken at the drain */

static struct log_rate accept_log_rate;

struct listener {
	struct worker *w;
	struct evconnlistener *lev;
	const struct config_listen *cl; /* the configuration's entry */
};

struct worker {
	struct gateway *gw;
	int index;
	pthread_t thread;
	bool started;
	struct event_base *base;
	struct evdns_base *dns;
	struct listener listeners[CONFIG_LISTEN_MAX];
	size_t nlisteners;
	bool listeners_paused;
	struct event *resume_timer;     /* re-enables paused listeners */
	struct event *grace_timer;      /* shutdown_grace expiry */
	struct event *audit_flush_ev;   /* active while audit records wait (see the top) */
	struct conn_env env;            /* what this loop's connections share */
	struct upstream_ctx upstream;   /* what upstream.c needs of this loop */
	struct policy *policy;          /* the worker's current snapshot (one reference) */
	struct auth_loop *auth;         /* where authentications come back, NULL without auth */
	bool draining;
	atomic_bool finished;           /* the loop ended; read by the main thread */
	struct stats *stats;            /* written by this thread only; read by main */
	time_t refused_logged;          /* last proxy-refused log line (monotonic seconds) */
	unsigned long refused_quiet;    /* refusals since then, not logged one by one */

	/* mailbox, written by the main thread under mtx */
	pthread_mutex_t mtx;
	int efd;
	struct event *mail_ev;
	struct policy *mail_policy;     /* a reference handed over, or NULL */
	bool mail_shutdown;
};

static void worker_pause_listeners(struct worker *w);

static int
listen_socket(const struct config_listen *cl, char **err)
{
	int fd, one = 1;

	fd = socket(cl->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1)
		goto fail;
	/* TCP_NODELAY here: every accepted socket inherits it, so no connection
	 * pays a setsockopt of its own (replies and relayed records leave whole). */
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == -1 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) == -1 ||
	    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) == -1)
		goto fail;
	if (cl->addr.ss_family == AF_INET6 &&
	    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) == -1)
		goto fail;
	if (bind(fd, (const struct sockaddr *)&cl->addr, cl->addrlen) == -1)
		goto fail;
	if (listen(fd, 4096) == -1)
		goto fail;
	return fd;
fail:
	if (asprintf(err, "listen %s: %s", cl->text, strerror(errno)) == -1)
		*err = NULL;
	if (fd != -1)
		close(fd);
	return -1;
}

/*
 * proxy_protocol_from: may this peer speak PROXY to a proxy_protocol
 * listener?  Asked before a byte is read, since the header is what lets the
 * sender choose the audited client address.  No ranges = anyone (as before).
 */
static bool
worker_proxy_allowed(const struct config *conf, const struct sockaddr *sa)
{
	size_t i;

	if (conf->nproxy_protocol_from == 0)
		return true;
	for (i = 0; i < conf->nproxy_protocol_from; i++)
		if (netaddr_in_cidr(sa, &conf->proxy_protocol_from[i]))
			return true;
	return false;
}

/*
 * A refused connection is closed unanswered and counted; no audit record
 * (a flood of them would flood the audit trail and syslog), and the log
 * line is rate-limited: the first one, then one per REFUSED_LOG_SECONDS
 * with how many were refused in between.
 */
static void
worker_refuse_proxy(struct worker *w, const struct listener *l, evutil_socket_t fd,
    const struct sockaddr *sa)
{
	struct timespec ts;
	char peer[NETADDR_TEXT_MAX];

	close(fd);
	stats_proxy_refused(w->stats);
	clock_gettime(CLOCK_MONOTONIC, &ts);
	if (w->refused_logged != 0 && ts.tv_sec - w->refused_logged < REFUSED_LOG_SECONDS) {
		w->refused_quiet++;
		return;
	}
	log_warnx("worker=%d event=proxy-refused listen=%s client=%s reason=not in "
	    "proxy_protocol_from refused_since_last=%lu", w->index, l->cl->text,
	    netaddr_ntop(sa, peer, sizeof(peer)), w->refused_quiet + 1);
	w->refused_logged = ts.tv_sec > 0 ? ts.tv_sec : 1;
	w->refused_quiet = 0;
}

/*
 * SO_REUSEPORT lets every socket of the same user share a port, so a second
 * egressd started on a running one's address would silently take half of its
 * connections, under its own policy.  Before the workers bind their shared
 * sockets, one socket without SO_REUSEPORT is bound to the address and closed
 * again: EADDRINUSE there means another process holds the address (TIME_WAIT
 * leftovers do not count: SO_REUSEADDR), and the start is refused.
 */
int
worker_probe_listen(const struct config_listen *cl, char **err)
{
	int fd, one = 1, e;

	*err = NULL;
	fd = socket(cl->addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd == -1)
		goto fail;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == -1)
		goto fail;
	if (cl->addr.ss_family == AF_INET6 &&
	    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) == -1)
		goto fail;
	if (bind(fd, (const struct sockaddr *)&cl->addr, cl->addrlen) == -1)
		goto fail;
	close(fd);
	return 0;
fail:
	e = errno;
	if (e == EADDRINUSE) {
		if (asprintf(err, "listen %s: address in use (another process listens on "
		    "it; egressd never shares a port)", cl->text) == -1)
			*err = NULL;
	} else if (asprintf(err, "listen %s: %s", cl->text, strerror(e)) == -1)
		*err = NULL;
	if (fd != -1)
		close(fd);
	return -1;
}

static void
on_accept(struct evconnlistener *lev, evutil_socket_t fd, struct sockaddr *sa, int salen,
    void *arg)
{
	struct listener *l = arg;
	struct worker *w = l->w;
	const struct config *conf = w->gw->conf;
	int open, hard_limit;

	if (l->cl->proxy_protocol && !worker_proxy_allowed(conf, sa)) {
		worker_refuse_proxy(w, l, fd, sa);
		return;
	}
	open = atomic_fetch_add(&w->gw->open_conns, 1) + 1;
	/*
	 * Up to max_connections are served; a little beyond, a connection is
	 * read and answered 503 (with its audit record); far beyond, the
	 * listeners rest and the kernel backlog holds the rest.
	 */
	hard_limit = conf->max_connections + conf->max_connections / 10 + 16;
	if (open > hard_limit) {
		/* Accepted already (libevent takes a batch per wake-up): it still
		 * gets its 503 and record; the pause keeps the rest waiting. */
		worker_pause_listeners(w);
	}
	conn_new(&w->env, fd, sa, (socklen_t)salen, l->cl->proxy_protocol, l->cl->tls,
	    open > conf->max_connections);
	(void)lev;
}

/* The first audit record of a loop turn waits: flush after the turn's other callbacks. */
static void
worker_audit_wake(void *arg)
{
	struct worker *w = arg;

	event_active(w->audit_flush_ev, EV_TIMEOUT, 0);
}

/* libevent runs an event made active during a turn after those already active. */
static void
on_audit_flush(evutil_socket_t fd, short what, void *arg)
{
	audit_batch_flush();
	(void)fd;
	(void)what;
	(void)arg;
}

static void
on_resume(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;
	size_t i;

	if (w->draining)
		return;
	for (i = 0; i < w->nlisteners; i++)
		evconnlistener_enable(w->listeners[i].lev);
	w->listeners_paused = false;
	(void)fd;
	(void)what;
}

static void
worker_pause_listeners(struct worker *w)
{
	struct timeval tv = { 0, ACCEPT_PAUSE_MS * 1000 };
	size_t i;

	if (w->listeners_paused)
		return;
	for (i = 0; i < w->nlisteners; i++)
		evconnlistener_disable(w->listeners[i].lev);
	w->listeners_paused = true;
	evtimer_add(w->resume_timer, &tv);
}

static void
on_accept_error(struct evconnlistener *lev, void *arg)
{
	struct listener *l = arg;
	uint64_t quiet;
	int e = EVUTIL_SOCKET_ERROR();

	if (e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM) {
		/* Every worker pauses every ACCEPT_PAUSE_MS while it lasts: one
		 * line per ACCEPT_LOG_MS for all of them, with the count. */
		if (log_rate_allow(&accept_log_rate, ACCEPT_LOG_MS, &quiet))
			log_warnx("event=accept-paused listener=proxy worker=%d reason=\"%s\" "
			    "pause_ms=%d repeated=%llu", l->w->index, strerror(e),
			    ACCEPT_PAUSE_MS, (unsigned long long)quiet);
		worker_pause_listeners(l->w);
		return;
	}
	/* ECONNABORTED and friends: the connection is gone, keep accepting. */
	(void)lev;
}

static void
worker_close_listeners(struct worker *w)
{
	size_t i;

	for (i = 0; i < w->nlisteners; i++) {
		if (w->listeners[i].lev != NULL)
			evconnlistener_free(w->listeners[i].lev);
		w->listeners[i].lev = NULL;
	}
	w->nlisteners = 0;
}

/*
 * Before a draining worker closes its listeners: the connections the kernel
 * has already completed in their queues would be reset by the close (a
 * balancer would see a failure it cannot retry), so they are accepted and
 * served like any other; only what arrives after the close is refused.
 */
static void
worker_take_backlog(struct worker *w)
{
	struct sockaddr_storage ss;
	socklen_t len;
	size_t i;
	int lfd, fd, n;

	for (i = 0; i < w->nlisteners; i++) {
		if (w->listeners[i].lev == NULL)
			continue;
		lfd = evconnlistener_get_fd(w->listeners[i].lev);
		for (n = 0; n < DRAIN_ACCEPT_MAX; n++) {
			len = sizeof(ss);
			fd = accept4(lfd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
			if (fd == -1)
				break;          /* EAGAIN: the queue is empty */
			on_accept(w->listeners[i].lev, fd, (struct sockaddr *)&ss, (int)len,
			    &w->listeners[i]);
		}
	}
}

static void
worker_maybe_finish(struct worker *w)
{
	if (w->draining && w->env.nconns == 0)
		event_base_loopexit(w->base, NULL);
}

static void
on_grace_expired(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;

	/* Close what is still open; each gets its audit record on the way out. */
	conn_shutdown_all(&w->env, true);
	worker_maybe_finish(w);
	(void)fd;
	(void)what;
}

static void
worker_begin_drain(struct worker *w)
{
	struct timeval tv = { w->gw->conf->shutdown_grace, 0 };

	if (w->draining)
		return;
	w->draining = true;
	worker_take_backlog(w);
	worker_close_listeners(w);
	evtimer_del(w->resume_timer);
	/* Idle connections (no request under way) go now; the rest may finish. */
	conn_shutdown_all(&w->env, false);
	evtimer_add(w->grace_timer, &tv);
	worker_maybe_finish(w);
}

static void
on_mail(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;
	struct policy *p;
	uint64_t v;
	bool stop;

	if (read(w->efd, &v, sizeof(v)) == -1 && errno != EAGAIN)
		log_warn("worker=%d mailbox read", w->index);
	pthread_mutex_lock(&w->mtx);
	p = w->mail_policy;
	w->mail_policy = NULL;
	stop = w->mail_shutdown;
	pthread_mutex_unlock(&w->mtx);

	if (p != NULL) {
		/* Connections hold their own references: nothing in flight changes. */
		policy_unref(w->policy);
		w->policy = p;
		w->env.policy = p;
	}
	if (stop)
		worker_begin_drain(w);
	(void)fd;
	(void)what;
}

static void
worker_post(struct worker *w)
{
	uint64_t one = 1;

	if (write(w->efd, &one, sizeof(one)) == -1 && errno != EAGAIN)
		log_warn("worker=%d mailbox write", w->index);
}

void
worker_post_policy(struct worker *w, struct policy *p)
{
	struct policy *old;

	policy_ref(p);
	pthread_mutex_lock(&w->mtx);
	old = w->mail_policy;
	w->mail_policy = p;
	pthread_mutex_unlock(&w->mtx);
	if (old != NULL)
		policy_unref(old);
	worker_post(w);
}

void
worker_post_shutdown(struct worker *w)
{
	pthread_mutex_lock(&w->mtx);
	w->mail_shutdown = true;
	pthread_mutex_unlock(&w->mtx);
	worker_post(w);
}

static int
worker_dns_init(struct worker *w, char **err)
{
	const struct config *conf = w->gw->conf;
	char tmo[16];
	int r;

	/* No defaults: nameservers and options come from dns_resolv_conf only,
	 * and without DNS_OPTION_SEARCH the search list is never applied. */
	w->dns = evdns_base_new(w->base, 0);
	if (w->dns == NULL)
		goto fail;
	r = evdns_base_resolv_conf_parse(w->dns, DNS_OPTION_NAMESERVERS | DNS_OPTION_MISC,
	    conf->dns_resolv_conf);
	if (r != 0 && r != 6) {         /* 6: no nameservers listed; 127.0.0.1 is used */
		if (asprintf(err, "%s: cannot read resolver configuration (evdns error %d)",
		    conf->dns_resolv_conf, r) == -1)
			*err = NULL;
		return -1;
	}
	/* A dead nameserver must fail a lookup within about connect_timeout,
	 * not evdns's default 5 s x 3 attempts. */
	snprintf(tmo, sizeof(tmo), "%d", conf->connect_timeout < 5 ? conf->connect_timeout : 5);
	evdns_base_set_option(w->dns, "timeout:", tmo);
	evdns_base_set_option(w->dns, "attempts:", "2");
	if (evdns_base_load_hosts(w->dns, conf->dns_hosts_file) != 0) {
		if (asprintf(err, "%s: cannot read hosts file", conf->dns_hosts_file) == -1)
			*err = NULL;
		return -1;
	}
	return 0;
fail:
	*err = strdup("cannot create DNS resolver");
	return -1;
}

static bool worker_is_own_address(const struct sockaddr *, void *);
static void worker_conn_removed(void *);

/* The views of this worker its connections and upstream.c get. */
static void
worker_env_init(struct worker *w)
{
	const struct config *conf = w->gw->conf;

	w->upstream.base = w->base;
	w->upstream.dns = w->dns;
	w->upstream.allow_internal = conf->allow_internal;
	w->upstream.nallow_internal = conf->nallow_internal;
	w->upstream.is_own_address = worker_is_own_address;
	w->upstream.own_arg = w;

	w->env.base = w->base;
	w->env.conf = conf;
	w->env.gw = w->gw;
	w->env.stats = w->stats;
	w->env.auth = NULL;             /* made on the worker's thread (worker_main) */
	w->env.policy = w->policy;
	w->env.upstream = &w->upstream;
	w->env.on_removed = worker_conn_removed;
	w->env.owner = w;
	TAILQ_INIT(&w->env.conns);
	w->env.nconns = 0;
}

/* While draining, the last connection to go ends the loop.  (Paused
 * listeners resume on their own timer, not here.) */
static void
worker_conn_removed(void *arg)
{
	worker_maybe_finish(arg);
}

struct worker *
worker_new(struct gateway *gw, int index, struct policy *policy, char **err)
{
	const struct config *conf = gw->conf;
	struct event_config *ecfg;
	struct worker *w;
	size_t i;
	int fd;

	*err = NULL;
	if ((w = calloc(1, sizeof(*w))) == NULL) {
		*err = strdup("out of memory");
		return NULL;
	}
	w->gw = gw;
	w->index = index;
	w->efd = -1;
	pthread_mutex_init(&w->mtx, NULL);
	w->policy = policy_ref(policy);
	if ((w->stats = stats_new()) == NULL)
		goto nomem;

	/* Each base is used by one thread only: no libevent locking at all. */
	ecfg = event_config_new();
	if (ecfg == NULL)
		goto nomem;
	event_config_set_flag(ecfg, EVENT_BASE_FLAG_NOLOCK);
	/* Batch the add/del churn of a connection's events into one epoll_ctl. */
	event_config_set_flag(ecfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
	w->base = event_base_new_with_config(ecfg);
	event_config_free(ecfg);
	if (w->base == NULL)
		goto nomem;
	if (worker_dns_init(w, err) == -1)
		goto fail;

	w->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (w->efd == -1)
		goto nomem;
	w->mail_ev = event_new(w->base, w->efd, EV_READ | EV_PERSIST, on_mail, w);
	w->resume_timer = evtimer_new(w->base, on_resume, w);
	w->grace_timer = evtimer_new(w->base, on_grace_expired, w);
	w->audit_flush_ev = event_new(w->base, -1, 0, on_audit_flush, w);
	if (w->mail_ev == NULL || w->resume_timer == NULL || w->grace_timer == NULL ||
	    w->audit_flush_ev == NULL)
		goto nomem;
	event_add(w->mail_ev, NULL);
	worker_env_init(w);

	for (i = 0; i < conf->nlisten; i++) {
		struct listener *l = &w->listeners[i];

		if ((fd = listen_socket(&conf->listen[i], err)) == -1)
			goto fail;
		l->w = w;
		l->cl = &conf->listen[i];
		l->lev = evconnlistener_new(w->base, on_accept, l,
		    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 0, fd);
		if (l->lev == NULL) {
			close(fd);
			goto nomem;
		}
		evconnlistener_set_error_cb(l->lev, on_accept_error);
		w->nlisteners++;
	}
	return w;
nomem:
	if (*err == NULL)
		*err = strdup("out of memory");
fail:
	worker_free(w);
	return NULL;
}

static void *
worker_main(void *arg)
{
	struct worker *w = arg;

	/* The auth loop belongs to this thread's base: made and freed here. */
	if (w->gw->auth != NULL && (w->auth = auth_loop_new(w->gw->auth, w->base)) == NULL)
		fatal("worker=%d auth_loop_new", w->index);
	w->env.auth = w->auth;
	audit_batch_start(worker_audit_wake, w);
	event_base_dispatch(w->base);
	audit_batch_stop();             /* the last turn's records, before the stop record */
	w->env.auth = NULL;
	if (w->auth != NULL)
		auth_loop_free(w->auth);
	w->auth = NULL;
	atomic_store(&w->finished, true);
	return NULL;
}

int
worker_start(struct worker *w)
{
	if (pthread_create(&w->thread, NULL, worker_main, w) != 0)
		return -1;
	w->started = true;
	return 0;
}

void
worker_join(struct worker *w)
{
	if (w->started)
		pthread_join(w->thread, NULL);
	w->started = false;
}

void
worker_free(struct worker *w)
{
	if (w == NULL)
		return;
	worker_close_listeners(w);
	if (w->mail_ev != NULL)
		event_free(w->mail_ev);
	if (w->resume_timer != NULL)
		event_free(w->resume_timer);
	if (w->grace_timer != NULL)
		event_free(w->grace_timer);
	if (w->audit_flush_ev != NULL)
		event_free(w->audit_flush_ev);
	if (w->dns != NULL)
		evdns_base_free(w->dns, 0);
	if (w->base != NULL)
		event_base_free(w->base);
	if (w->efd != -1)
		close(w->efd);
	if (w->mail_policy != NULL)
		policy_unref(w->mail_policy);
	if (w->policy != NULL)
		policy_unref(w->policy);
	stats_free(w->stats);
	pthread_mutex_destroy(&w->mtx);
	free(w);
}

bool
worker_finished(struct worker *w)
{
	return atomic_load(&w->finished);
}

struct stats *
worker_stats(struct worker *w)
{
	return w->stats;
}

/*
 * Does a connection to dst (unmapped) reach the listener bound to l?  A
 * listener on one address is reached through that address (in any spelling:
 * l is unmapped too) and through the unspecified address; a wildcard
 * listener (0.0.0.0 or ::) through every address of the host, of either
 * family to be safe, not only the internal ones.
 */
static bool
listener_reached(const struct sockaddr *l, const struct sockaddr *dst)
{
	struct sockaddr_storage ls;

	if (netaddr_port(l) == 0 || netaddr_port(l) != netaddr_port(dst))
		return false;
	memset(&ls, 0, sizeof(ls));
	memcpy(&ls, l, l->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) :
	    sizeof(struct sockaddr_in));
	(void)netaddr_unmap(&ls, NULL);
	if (netaddr_is_unspecified((struct sockaddr *)&ls))
		return netaddr_is_local(dst);
	return netaddr_equal((struct sockaddr *)&ls, dst) || netaddr_is_unspecified(dst);
}

static bool
worker_is_own_address(const struct sockaddr *sa, void *arg)
{
	const struct worker *w = arg;
	const struct config *conf = w->gw->conf;
	struct sockaddr_storage dst;
	size_t i;

	if (sa->sa_family != AF_INET && sa->sa_family != AF_INET6)
		return true;
	memset(&dst, 0, sizeof(dst));
	memcpy(&dst, sa, sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) :
	    sizeof(struct sockaddr_in));
	(void)netaddr_unmap(&dst, NULL);
	/* Only a destination on a listener's port costs more than a compare. */
	for (i = 0; i < conf->nlisten; i++)
		if (listener_reached((const struct sockaddr *)&conf->listen[i].addr,
		    (const struct sockaddr *)&dst))
			return true;
	return conf->has_metrics_listen &&
	    listener_reached((const struct sockaddr *)&conf->metrics_listen,
	    (const struct sockaddr *)&dst);
}
