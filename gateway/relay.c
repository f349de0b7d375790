/*
 * relay — the tunnel's byte pump: two symmetric halves between two sockets.
 *
 *        client_fd                              server_fd
 *   read ---------> [ up half:   scratch -> write ] ---------> write
 *  write <--------- [ down half: write <- scratch ] <--------- read
 *
 * A half is in one of two modes: reading (its read event armed), or flushing
 * (a remainder the peer could not take is pending; its read event is off and
 * the peer's write event is armed).  That is the whole of backpressure: at
 * most one scratch-sized remainder per direction, and only while the peer is
 * slow.  EOF on a half, once its remainder is flushed, becomes shutdown(SHUT_WR)
 * on the peer; the relay is done when both halves are shut, or at the first
 * error.  The scratch buffer is per thread: every worker has its own loop.
 */
#include "gateway/relay.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

#include "lib/clock.h"

#define RELAY_SCRATCH (64 * 1024)   /* one read, and the largest pending remainder */

static __thread char relay_scratch[RELAY_SCRATCH];

struct half {
	struct relay *r;
	int from;                       /* socket read by this half */
	int to;                         /* socket written by this half */
	struct event *rev;              /* readable `from` */
	struct event *wev;              /* writable `to`, armed only while pend_len > 0 */
	char *pend;                     /* bytes the peer has not taken yet */
	size_t pend_off, pend_len;
	/* Payload bytes moved by this half.  Atomic only so that the main thread
	 * may read it (egressctl tunnels, /metrics): this thread is the one
	 * writer, so an update is a relaxed load and store, no locked add. */
	_Atomic uint64_t bytes;
	bool eof;                       /* `from` sent EOF */
	bool shut;                      /* shutdown(to, SHUT_WR) done */
	enum relay_end side_from;       /* who `from` is */
	enum relay_end side_to;         /* who `to` is */
};

struct relay {
	struct event_base *base;
	struct half up;                 /* client -> server */
	struct half down;               /* server -> client */
	relay_done_cb *cb;
	void *arg;
	int64_t *last_activity_ms;
	bool have_first_eof;
	enum relay_end first_eof;
	bool finished;
};

static void
half_count(struct half *h, uint64_t n)
{
	atomic_store_explicit(&h->bytes, atomic_load_explicit(&h->bytes,
	    memory_order_relaxed) + n, memory_order_relaxed);
}

static void
relay_touch(struct relay *r)
{
	if (r->last_activity_ms != NULL)
		*r->last_activity_ms = clock_mono_coarse_ms();
}

static void
relay_finish(struct relay *r, enum relay_end who)
{
	if (r->finished)
		return;
	r->finished = true;
	event_del(r->up.rev);
	event_del(r->up.wev);
	event_del(r->down.rev);
	event_del(r->down.wev);
	/* The callback may free the relay: nothing touches r after it. */
	r->cb(who, r->arg);
}

static void
half_shut(struct half *h)
{
	struct relay *r = h->r;

	if (!h->shut) {
		h->shut = true;
		/* Errors are irrelevant here: a peer that already left needs no FIN. */
		(void)shutdown(h->to, SHUT_WR);
	}
	if (r->up.shut && r->down.shut)
		relay_finish(r, r->have_first_eof ? r->first_eof : RELAY_END_CLIENT);
}

/* Keep what the peer could not take, and wait for it to drain. */
static bool
half_hold(struct half *h, const char *buf, size_t len)
{
	h->pend = malloc(len);
	if (h->pend == NULL)
		return false;
	memcpy(h->pend, buf, len);
	h->pend_off = 0;
	h->pend_len = len;
	event_del(h->rev);
	event_add(h->wev, NULL);
	return true;
}

/*
 * Start a half with bytes already in hand.  They usually fit in the socket
 * buffer, so try at once rather than wait a loop turn for writability; an
 * error is left for the write event to report.
 */
static bool
half_start_with(struct half *h, const char *buf, size_t len)
{
	ssize_t w;

	w = send(h->to, buf, len, MSG_NOSIGNAL);
	if (w > 0) {
		buf += w;
		len -= (size_t)w;
	}
	if (len == 0) {
		event_add(h->rev, NULL);
		return true;
	}
	return half_hold(h, buf, len);
}

/* Write buf to h->to; keep what does not fit.  false: the relay finished. */
static bool
half_send(struct half *h, const char *buf, size_t len)
{
	ssize_t w;

	w = send(h->to, buf, len, MSG_NOSIGNAL);
	if (w == -1) {
		if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
			relay_finish(h->r, h->side_to);
			return false;
		}
		w = 0;
	}
	if ((size_t)w < len && !half_hold(h, buf + w, len - (size_t)w)) {
		relay_finish(h->r, h->side_to);
		return false;
	}
	return true;
}

static void
on_readable(evutil_socket_t fd, short what, void *arg)
{
	struct half *h = arg;
	struct relay *r = h->r;
	ssize_t n;

	n = recv(h->from, relay_scratch, sizeof(relay_scratch), 0);
	if (n > 0) {
		half_count(h, (uint64_t)n);
		relay_touch(r);
		(void)half_send(h, relay_scratch, (size_t)n);
		return;
	}
	if (n == 0) {
		h->eof = true;
		if (!r->have_first_eof) {
			r->have_first_eof = true;
			r->first_eof = h->side_from;
		}
		event_del(h->rev);
		relay_touch(r);
		half_shut(h);
		return;
	}
	if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
		return;
	relay_finish(r, h->side_from);
	(void)fd;
	(void)what;
}

static void
on_writable(evutil_socket_t fd, short what, void *arg)
{
	struct half *h = arg;
	ssize_t w;

	w = send(h->to, h->pend + h->pend_off, h->pend_len - h->pend_off, MSG_NOSIGNAL);
	if (w == -1) {
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
			return;
		relay_finish(h->r, h->side_to);
		return;
	}
	relay_touch(h->r);
	h->pend_off += (size_t)w;
	if (h->pend_off < h->pend_len)
		return;
	free(h->pend);
	h->pend = NULL;
	h->pend_off = h->pend_len = 0;
	event_del(h->wev);
	if (h->eof)
		half_shut(h);
	else
		event_add(h->rev, NULL);
	(void)fd;
	(void)what;
}

static int
half_init(struct relay *r, struct half *h, int from, int to, enum relay_end side_from,
    enum relay_end side_to)
{
	h->r = r;
	h->from = from;
	h->to = to;
	h->side_from = side_from;
	h->side_to = side_to;
	h->rev = event_new(r->base, from, EV_READ | EV_PERSIST, on_readable, h);
	h->wev = event_new(r->base, to, EV_WRITE | EV_PERSIST, on_writable, h);
	return h->rev != NULL && h->wev != NULL ? 0 : -1;
}

struct relay *
relay_new(struct event_base *base, int client_fd, int server_fd, const void *up,
    size_t up_len, const void *down, size_t down_len, relay_done_cb *cb, void *arg,
    int64_t *last_activity_ms)
{
	struct relay *r;

	if ((r = calloc(1, sizeof(*r))) == NULL)
		return NULL;
	r->base = base;
	r->cb = cb;
	r->arg = arg;
	r->last_activity_ms = last_activity_ms;
	if (half_init(r, &r->up, client_fd, server_fd, RELAY_END_CLIENT, RELAY_END_SERVER) == -1 ||
	    half_init(r, &r->down, server_fd, client_fd, RELAY_END_SERVER, RELAY_END_CLIENT) == -1)
		goto fail;
	relay_touch(r);
	/* Held bytes go first; the half reads again only once they are written. */
	if (up_len > 0) {
		half_count(&r->up, up_len);
		if (!half_start_with(&r->up, up, up_len))
			goto fail;
	} else
		event_add(r->up.rev, NULL);
	if (down_len > 0) {
		if (!half_start_with(&r->down, down, down_len))
			goto fail;
	} else
		event_add(r->down.rev, NULL);
	return r;
fail:
	relay_free(r);
	return NULL;
}

void
relay_free(struct relay *r)
{
	struct half *halves[2];
	size_t i;

	if (r == NULL)
		return;
	halves[0] = &r->up;
	halves[1] = &r->down;
	for (i = 0; i < 2; i++) {
		if (halves[i]->rev != NULL)
			event_free(halves[i]->rev);
		if (halves[i]->wev != NULL)
			event_free(halves[i]->wev);
		free(halves[i]->pend);
	}
	free(r);
}

void
relay_add_bytes(struct relay *r, uint64_t up, uint64_t down)
{
	half_count(&r->up, up);
	half_count(&r->down, down);
}

uint64_t
relay_bytes_up(const struct relay *r)
{
	return atomic_load_explicit(&r->up.bytes, memory_order_relaxed);
}

uint64_t
relay_bytes_down(const struct relay *r)
{
	return atomic_load_explicit(&r->down.bytes, memory_order_relaxed);
}
