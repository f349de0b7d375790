/*
 * upstream — find and reach the destination: resolve, filter, connect.
 *
 * The security of the internal-address check rests on one rule: the address
 * that was checked is the address that is connected to.  Names are resolved
 * once, every answer is filtered here (never re-resolved later), and connect()
 * is given exactly the checked sockaddr.  An answer list that mixes public and
 * internal addresses keeps only the public ones; a list with nothing left is a
 * 403 naming the first refused address.  IPv4-mapped addresses are turned
 * into the IPv4 address first, literal or answer alike.
 *
 * evdns may complete a lookup inside evdns_getaddrinfo() itself (hosts file,
 * literal) and calls back on cancel; results are therefore always delivered
 * through a deferred event, so the caller never sees its callback run inside
 * its own call.
 */
#include "gateway/upstream.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/dns.h>
#include <event2/event.h>
#include <event2/util.h>

#include "gateway/log.h"
#include "config/netaddr.h"

#define UPSTREAM_ADDRS_MAX 16       /* addresses kept from one answer */

struct upstream_addrs {
	size_t n;
	size_t next;                    /* the next one upstream_connect tries */
	struct sockaddr_storage addr[UPSTREAM_ADDRS_MAX];
	socklen_t len[UPSTREAM_ADDRS_MAX];
};

/* One connect in progress to addrs->addr[idx]. */
struct upstream_attempt {
	struct upstream_req *req;
	size_t idx;
	int fd;                         /* -1 once closed or handed over */
	struct event *ev;               /* fd became writable: connected or refused */
};

struct upstream_req {
	const struct upstream_ctx *ctx;
	upstream_cb *cb;
	void *arg;
	uint16_t port;
	struct evdns_getaddrinfo_request *dns;
	bool dns_returned;              /* evdns called back */
	bool cancelled;                 /* cancelled while evdns still owned us */
	struct event *done_ev;          /* delivers res from the loop */
	struct upstream_attempt attempt[UPSTREAM_ADDRS_MAX]; /* connect: begun so far */
	size_t nattempts;
	size_t npending;                /* attempts still waiting for an answer */
	struct event *stagger;          /* starts the next address early */
	struct event *timer;            /* connect_timeout, total */
	struct upstream_addrs *addrs;   /* resolve: built here; connect: borrowed */
	bool owns_addrs;                /* addrs is freed with the request */
	int fd;
	struct upstream_result res;
};

static void upstream_req_free(struct upstream_req *);
static void attempt_close(struct upstream_attempt *);

static void
on_done(evutil_socket_t fd, short what, void *arg)
{
	struct upstream_req *req = arg;

	/* On success the fd or the address list passes to the callback. */
	req->cb(&req->res, req->arg);
	if (req->res.status == 0) {
		req->fd = -1;
		if (req->res.addrs != NULL)
			req->owns_addrs = false;
	}
	upstream_req_free(req);
	(void)fd;
	(void)what;
}

static void
upstream_deliver(struct upstream_req *req)
{
	event_active(req->done_ev, EV_TIMEOUT, 0);
}

static struct upstream_req *
upstream_req_new(const struct upstream_ctx *ctx, upstream_cb *cb, void *arg)
{
	struct upstream_req *req;

	if ((req = calloc(1, sizeof(*req))) == NULL)
		return NULL;
	req->ctx = ctx;
	req->cb = cb;
	req->arg = arg;
	req->fd = -1;
	req->done_ev = event_new(ctx->base, -1, 0, on_done, req);
	if (req->done_ev == NULL) {
		free(req);
		return NULL;
	}
	return req;
}

static void
upstream_req_free(struct upstream_req *req)
{
	size_t i;

	if (req->done_ev != NULL)
		event_free(req->done_ev);
	for (i = 0; i < req->nattempts; i++)
		attempt_close(&req->attempt[i]);
	if (req->stagger != NULL)
		event_free(req->stagger);
	if (req->timer != NULL)
		event_free(req->timer);
	if (req->fd != -1)
		close(req->fd);
	if (req->owns_addrs)
		upstream_addrs_free(req->addrs);
	free(req);
}

/* Keep sa if the gateway may connect to it; remember the first refusal. */
static void
upstream_filter_one(struct upstream_req *req, const struct sockaddr *sa, socklen_t salen,
    bool *refused)
{
	const struct upstream_ctx *ctx = req->ctx;
	struct upstream_addrs *a = req->addrs;
	struct sockaddr_storage ss;
	size_t i;

	if (salen > sizeof(ss) || (sa->sa_family != AF_INET && sa->sa_family != AF_INET6))
		return;
	memset(&ss, 0, sizeof(ss));
	memcpy(&ss, sa, salen);
	/*
	 * An IPv4-mapped answer (a hosts line "::ffff:127.0.0.1 name", an AAAA
	 * record) is the IPv4 address: a dual-stack socket would reach a.b.c.d.
	 * It is checked, connected to and recorded as that address.
	 */
	(void)netaddr_unmap(&ss, &salen);
	if (ss.ss_family == AF_INET)
		((struct sockaddr_in *)&ss)->sin_port = htons(req->port);
	else
		((struct sockaddr_in6 *)&ss)->sin6_port = htons(req->port);

	if (!netaddr_destination_allowed((struct sockaddr *)&ss, ctx->allow_internal,
	    ctx->nallow_internal) || ctx->is_own_address((struct sockaddr *)&ss, ctx->own_arg)) {
		if (!*refused)
			netaddr_ntop((struct sockaddr *)&ss, req->res.dst_ip,
			    sizeof(req->res.dst_ip));
		*refused = true;
		return;
	}
	for (i = 0; i < a->n; i++)
		if (netaddr_equal((struct sockaddr *)&a->addr[i], (struct sockaddr *)&ss))
			return;
	if (a->n == UPSTREAM_ADDRS_MAX)
		return;
	a->addr[a->n] = ss;
	a->len[a->n] = salen;
	a->n++;
}

static void
upstream_resolve_finish(struct upstream_req *req, bool refused)
{
	if (req->addrs->n > 0) {
		netaddr_interleave_families(req->addrs->addr, req->addrs->len, req->addrs->n);
		req->res.status = 0;
		req->res.addrs = req->addrs;
		req->res.dst_ip[0] = '\0';
	} else if (refused) {
		req->res.status = 403;
		req->res.reason = "internal_destination";
	} else {
		req->res.status = 502;
		req->res.reason = "dns_failure";
	}
	upstream_deliver(req);
}

static void
on_dns(int result, struct evutil_addrinfo *ai, void *arg)
{
	struct upstream_req *req = arg;
	struct evutil_addrinfo *p;
	bool refused = false;

	req->dns = NULL;
	req->dns_returned = true;
	if (req->cancelled) {
		if (ai != NULL)
			evutil_freeaddrinfo(ai);
		upstream_req_free(req);
		return;
	}
	if (result == 0)
		for (p = ai; p != NULL; p = p->ai_next)
			upstream_filter_one(req, p->ai_addr, (socklen_t)p->ai_addrlen, &refused);
	if (ai != NULL)
		evutil_freeaddrinfo(ai);
	upstream_resolve_finish(req, refused);
}

struct upstream_req *
upstream_resolve(const struct upstream_ctx *ctx, const char *host, enum host_kind kind, uint16_t port,
    upstream_cb *cb, void *arg)
{
	struct evutil_addrinfo hints;
	struct evdns_getaddrinfo_request *dr;
	struct upstream_req *req;
	bool refused = false;

	if ((req = upstream_req_new(ctx, cb, arg)) == NULL)
		return NULL;
	req->port = port;
	if ((req->addrs = calloc(1, sizeof(*req->addrs))) == NULL) {
		upstream_req_free(req);
		return NULL;
	}
	req->owns_addrs = true;

	if (kind != HOST_NAME) {
		struct sockaddr_storage ss;
		socklen_t sl;
		uint8_t addr[16];
		int family;

		memset(&ss, 0, sizeof(ss));
		if (ip_literal_parse(host, strlen(host), &family, addr) == -1) {
			upstream_resolve_finish(req, false);
			return req;
		}
		if (family == AF_INET) {
			struct sockaddr_in *sin = (struct sockaddr_in *)&ss;

			sin->sin_family = AF_INET;
			memcpy(&sin->sin_addr, addr, 4);
			sl = sizeof(*sin);
		} else {
			struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;

			sin6->sin6_family = AF_INET6;
			memcpy(&sin6->sin6_addr, addr, 16);
			sl = sizeof(*sin6);
		}
		upstream_filter_one(req, (struct sockaddr *)&ss, sl, &refused);
		upstream_resolve_finish(req, refused);
		return req;
	}

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_protocol = IPPROTO_TCP;
	dr = evdns_getaddrinfo(ctx->dns, host, NULL, &hints, on_dns, req);
	if (!req->dns_returned)
		req->dns = dr;
	return req;
}

/* ---- connect -------------------------------------------------------- */

/*
 * A simple Happy Eyeballs (RFC 8305): the addresses are tried in the order
 * upstream_order() gave them (families interleaved), the next one started
 * ATTEMPT_DELAY_MS after the previous one if that has not answered yet, or at
 * once when it fails.  Earlier attempts stay open, so a slow but working
 * address can still win; the first connect that completes wins and the others
 * are closed.  connect_timeout caps them all together.  One address that drops
 * SYNs therefore costs ATTEMPT_DELAY_MS, not the whole connect_timeout.
 */
#define ATTEMPT_DELAY_MS 250
#define UPSTREAM_LOG_MS 10000       /* at most one upstream-exhausted line this often */

static void upstream_start_next(struct upstream_req *req);

static void
attempt_close(struct upstream_attempt *at)
{
	if (at->ev != NULL)
		event_free(at->ev);
	at->ev = NULL;
	if (at->fd != -1)
		close(at->fd);
	at->fd = -1;
}

static void
upstream_close_attempts(struct upstream_req *req)
{
	size_t i;

	for (i = 0; i < req->nattempts; i++)
		attempt_close(&req->attempt[i]);
	req->npending = 0;
	if (req->stagger != NULL)
		event_del(req->stagger);
	if (req->timer != NULL)
		event_del(req->timer);
}

/* at connected: it wins, every other attempt is closed. */
static void
upstream_connected(struct upstream_req *req, struct upstream_attempt *at)
{
	int one = 1;

	req->fd = at->fd;
	at->fd = -1;
	netaddr_ntop((const struct sockaddr *)&req->addrs->addr[at->idx], req->res.dst_ip,
	    sizeof(req->res.dst_ip));
	upstream_close_attempts(req);
	(void)setsockopt(req->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	req->res.status = 0;
	req->res.fd = req->fd;
	upstream_deliver(req);
}

/* Nothing is pending and nothing is left to try. */
static void
upstream_all_failed(struct upstream_req *req)
{
	upstream_close_attempts(req);
	req->res.status = 502;
	req->res.reason = "connect_failed";
	upstream_deliver(req);
}

static void
on_attempt_writable(evutil_socket_t fd, short what, void *arg)
{
	struct upstream_attempt *at = arg;
	struct upstream_req *req = at->req;
	socklen_t len = sizeof(int);
	int err = 0;

	if (getsockopt(at->fd, SOL_SOCKET, SO_ERROR, &err, &len) == -1)
		err = errno;
	if (err == 0) {
		upstream_connected(req, at);
		return;
	}
	attempt_close(at);
	req->npending--;
	/* A refusal answers at once: the next address need not wait its turn. */
	upstream_start_next(req);
	(void)fd;
	(void)what;
}

static void
on_stagger(evutil_socket_t fd, short what, void *arg)
{
	upstream_start_next(arg);
	(void)fd;
	(void)what;
}

static void
on_connect_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct upstream_req *req = arg;

	upstream_close_attempts(req);
	req->res.status = 504;
	req->res.reason = "connect_timeout";
	upstream_deliver(req);
	(void)fd;
	(void)what;
}

static bool
upstream_out_of_resources(int e)
{
	return e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM;
}

/*
 * The gateway itself cannot open another connection (descriptors, memory or
 * local ports used up): that is 503 over_capacity, never the origin's fault
 * (502), and it is said on the log, at most once per UPSTREAM_LOG_MS.
 */
static void
upstream_exhausted(struct upstream_req *req, int e)
{
	static struct log_rate rate;
	uint64_t quiet;

	if (log_rate_allow(&rate, UPSTREAM_LOG_MS, &quiet))
		log_warnx("event=upstream-exhausted reason=\"%s\" answer=503 repeated=%llu",
		    strerror(e), (unsigned long long)quiet);
	upstream_close_attempts(req);
	req->res.status = 503;
	req->res.reason = "over_capacity";
	upstream_deliver(req);
}

/*
 * Start the next address: a connect that completes or fails at once is
 * decided at once; one in progress waits for its answer while the stagger
 * timer starts the one after it.
 */
static void
upstream_start_next(struct upstream_req *req)
{
	struct upstream_addrs *a = req->addrs;
	struct timeval tv = { 0, ATTEMPT_DELAY_MS * 1000 };

	while (a->next < a->n && req->nattempts < UPSTREAM_ADDRS_MAX) {
		struct upstream_attempt *at = &req->attempt[req->nattempts];
		const struct sockaddr *sa = (const struct sockaddr *)&a->addr[a->next];
		socklen_t sl = a->len[a->next];

		at->req = req;
		at->idx = a->next++;
		req->nattempts++;
		/* Until one connects, the record names the last address tried. */
		netaddr_ntop(sa, req->res.dst_ip, sizeof(req->res.dst_ip));
		at->fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (at->fd == -1 && upstream_out_of_resources(errno)) {
			upstream_exhausted(req, errno);
			return;
		}
		if (at->fd == -1)
			continue;
		if (connect(at->fd, sa, sl) == 0) {
			upstream_connected(req, at);
			return;
		}
		if (errno == EADDRNOTAVAIL) {
			/* No local port left: the gateway is full, not the origin. */
			upstream_exhausted(req, errno);
			return;
		}
		if (errno == EINPROGRESS) {
			at->ev = event_new(req->ctx->base, at->fd, EV_WRITE,
			    on_attempt_writable, at);
			if (at->ev != NULL && event_add(at->ev, NULL) == 0) {
				req->npending++;
				if (a->next < a->n)
					evtimer_add(req->stagger, &tv);
				return;
			}
		}
		attempt_close(at);
	}
	if (req->npending == 0)
		upstream_all_failed(req);
}

struct upstream_req *
upstream_connect(const struct upstream_ctx *ctx, struct upstream_addrs *addrs, int timeout_s,
    upstream_cb *cb, void *arg)
{
	struct timeval tv = { timeout_s, 0 };
	struct upstream_req *req;
	size_t i;

	if ((req = upstream_req_new(ctx, cb, arg)) == NULL)
		return NULL;
	req->addrs = addrs;
	for (i = 0; i < UPSTREAM_ADDRS_MAX; i++)
		req->attempt[i].fd = -1;
	req->timer = evtimer_new(ctx->base, on_connect_timeout, req);
	req->stagger = evtimer_new(ctx->base, on_stagger, req);
	if (req->timer == NULL || req->stagger == NULL) {
		upstream_req_free(req);
		return NULL;
	}
	evtimer_add(req->timer, &tv);
	upstream_start_next(req);
	return req;
}

void
upstream_cancel(struct upstream_req *req)
{
	if (req == NULL)
		return;
	if (req->dns != NULL) {
		/* evdns calls on_dns with EVUTIL_EAI_CANCEL, which frees req. */
		req->cancelled = true;
		evdns_getaddrinfo_cancel(req->dns);
		return;
	}
	upstream_req_free(req);
}

void
upstream_addrs_free(struct upstream_addrs *a)
{
	free(a);
}
