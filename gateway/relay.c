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
#include <fcntl.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/bufferevent.h>
#include <event2/buffer.h>
#include <event2/event.h>

#include "gateway/tls.h"
#include "lib/clock.h"

#define RELAY_SCRATCH (64 * 1024)   /* one read, and the largest pending remainder */
#define SPLICE_CHUNK (256 * 1024)   /* one splice(2) in, at most (a pipe holds what fits) */
#define PIPE_POOL_MAX 64            /* idle pipes a worker keeps for the next burst */

static __thread char relay_scratch[RELAY_SCRATCH];

/*
 * Zero copy between two plain sockets: socket -> pipe -> socket with
 * splice(2), the bytes never entering user space.  A half holds a pipe only
 * while bytes are in it (an idle tunnel holds none: no descriptors, no
 * pages); drained pipes wait in a small per-thread pool.  Where a pipe
 * cannot be had (out of descriptors) or splice is refused, the half copies
 * through the scratch buffer as before.
 */
struct pipe_pool {
	int fds[PIPE_POOL_MAX][2];
	size_t n;
};

static __thread struct pipe_pool pipe_pool;

/* EGRESSD_NO_SPLICE=1 in the environment: copy always (for measuring both). */
static bool relay_splice_enabled = true;

__attribute__((constructor)) static void
relay_splice_setting(void)
{
	const char *v = getenv("EGRESSD_NO_SPLICE");

	relay_splice_enabled = v == NULL || strcmp(v, "1") != 0;
}

static bool
pipe_get(int p[2])
{
	if (pipe_pool.n > 0) {
		pipe_pool.n--;
		p[0] = pipe_pool.fds[pipe_pool.n][0];
		p[1] = pipe_pool.fds[pipe_pool.n][1];
		return true;
	}
	if (pipe2(p, O_NONBLOCK | O_CLOEXEC) == -1)
		return false;
	/* Room for one SPLICE_CHUNK (pages are taken only as bytes arrive). */
	(void)fcntl(p[1], F_SETPIPE_SZ, SPLICE_CHUNK);
	return true;
}

/* An empty pipe back to the pool (a non-empty one is closed, never reused). */
static void
pipe_put(int p[2], bool empty)
{
	if (empty && pipe_pool.n < PIPE_POOL_MAX) {
		pipe_pool.fds[pipe_pool.n][0] = p[0];
		pipe_pool.fds[pipe_pool.n][1] = p[1];
		pipe_pool.n++;
	} else {
		close(p[0]);
		close(p[1]);
	}
	p[0] = p[1] = -1;
}

struct half {
	struct relay *r;
	int from;                       /* socket read by this half */
	int to;                         /* socket written by this half */
	struct event *rev;              /* readable `from` */
	struct event *wev;              /* writable `to`, armed only while pend_len > 0 */
	char *pend;                     /* bytes the peer has not taken yet */
	size_t pend_off, pend_len;
	bool splice;                    /* plain sockets: move bytes with splice(2) */
	int pipe[2];                    /* while bytes are in flight: the pipe they are in */
	size_t in_pipe;                 /* bytes in it */
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
	/* relay_new_bev: the client side is a (TLS) bufferevent; the halves'
	 * events are unused and the bytes move between these two. */
	struct bufferevent *cbev;       /* borrowed from the caller */
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
	if (r->cbev != NULL)
		bufferevent_disable(r->cbev, EV_READ | EV_WRITE);
	/* relay_new_bev uses only the two events on the server socket. */
	if (r->up.rev != NULL)
		event_del(r->up.rev);
	if (r->up.wev != NULL)
		event_del(r->up.wev);
	if (r->down.rev != NULL)
		event_del(r->down.rev);
	if (r->down.wev != NULL)
		event_del(r->down.wev);
	/* The callback may free the relay: nothing touches r after it. */
	r->cb(who, r->arg);
}

static void
half_shut(struct half *h)
{
	struct relay *r = h->r;
	struct half *other = h == &r->up ? &r->down : &r->up;

	if (!h->shut) {
		h->shut = true;
		/* Errors are irrelevant here: a peer that already left needs no FIN.
		 * With the other half shut too the relay finishes now, and closing a
		 * socket whose EOF was read sends the same FIN. */
		if (!other->shut)
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

/* Move what is in the pipe to the peer.  false: the relay finished. */
static bool
half_splice_out(struct half *h)
{
	ssize_t w;

	while (h->in_pipe > 0) {
		w = splice(h->pipe[0], NULL, h->to, NULL, h->in_pipe,
		    SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
		if (w > 0) {
			h->in_pipe -= (size_t)w;
			continue;
		}
		if (w == -1 && (errno == EAGAIN || errno == EINTR))
			break;
		relay_finish(h->r, h->side_to);
		return false;
	}
	if (h->in_pipe == 0) {
		pipe_put(h->pipe, true);
		return true;
	}
	/* The peer is slow: stop reading until the pipe drains. */
	event_del(h->rev);
	event_add(h->wev, NULL);
	return true;
}

/*
 * The splice path of a readable half.  Returns 1 when it handled the event,
 * 0 when the half must copy instead (no pipe to be had, splice refused for
 * these sockets: the half then copies from now on, or an error recv() will
 * name), -1 at EOF.
 */
static int
half_splice_in(struct half *h)
{
	struct relay *r = h->r;
	ssize_t n;

	if (h->pipe[0] == -1 && !pipe_get(h->pipe))
		return 0;
	n = splice(h->from, NULL, h->pipe[1], NULL, SPLICE_CHUNK,
	    SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
	if (n > 0) {
		h->in_pipe = (size_t)n;
		half_count(h, (uint64_t)n);
		relay_touch(r);
		(void)half_splice_out(h);
		return 1;
	}
	pipe_put(h->pipe, true);
	if (n == -1 && (errno == EINVAL || errno == ENOSYS)) {
		h->splice = false;      /* these descriptors cannot splice */
		return 0;
	}
	if (n == -1 && (errno == EAGAIN || errno == EINTR))
		return 1;
	return n == 0 ? -1 : 0;
}

/* h->from sent EOF: pass it on. */
static void
half_eof(struct half *h)
{
	struct relay *r = h->r;

	h->eof = true;
	if (!r->have_first_eof) {
		r->have_first_eof = true;
		r->first_eof = h->side_from;
	}
	event_del(h->rev);
	relay_touch(r);
	half_shut(h);
}

static void
on_readable(evutil_socket_t fd, short what, void *arg)
{
	struct half *h = arg;
	struct relay *r = h->r;
	ssize_t n;
	int spliced;

	if (h->splice && (spliced = half_splice_in(h)) != 0) {
		if (spliced == -1)
			half_eof(h);
		return;
	}
	n = recv(h->from, relay_scratch, sizeof(relay_scratch), 0);
	if (n > 0) {
		half_count(h, (uint64_t)n);
		relay_touch(r);
		(void)half_send(h, relay_scratch, (size_t)n);
		return;
	}
	if (n == 0) {
		half_eof(h);
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

	if (h->in_pipe > 0) {
		/* a spliced remainder */
		if (!half_splice_out(h) || h->in_pipe > 0)
			return;
		relay_touch(h->r);
		event_del(h->wev);
		event_add(h->rev, NULL);
		return;
	}
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

/* A relay with no pipe in either half (0 is a descriptor: -1 is none). */
static struct relay *
relay_alloc(void)
{
	struct relay *r;

	if ((r = calloc(1, sizeof(*r))) == NULL)
		return NULL;
	r->up.pipe[0] = r->up.pipe[1] = -1;
	r->down.pipe[0] = r->down.pipe[1] = -1;
	return r;
}

struct relay *
relay_new(struct event_base *base, int client_fd, int server_fd, const void *up,
    size_t up_len, const void *down, size_t down_len, relay_done_cb *cb, void *arg,
    int64_t *last_activity_ms)
{
	struct relay *r;

	if ((r = relay_alloc()) == NULL)
		return NULL;
	r->base = base;
	r->cb = cb;
	r->arg = arg;
	r->last_activity_ms = last_activity_ms;
	if (half_init(r, &r->up, client_fd, server_fd, RELAY_END_CLIENT, RELAY_END_SERVER) == -1 ||
	    half_init(r, &r->down, server_fd, client_fd, RELAY_END_SERVER, RELAY_END_CLIENT) == -1)
		goto fail;
	r->up.splice = r->down.splice = relay_splice_enabled;
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
	if (r->cbev != NULL) {
		/* The client's bufferevent goes back to its owner, quiet. */
		bufferevent_setcb(r->cbev, NULL, NULL, NULL, NULL);
		bufferevent_disable(r->cbev, EV_READ);
		bufferevent_setwatermark(r->cbev, EV_READ | EV_WRITE, 0, 0);
	}
	halves[0] = &r->up;
	halves[1] = &r->down;
	for (i = 0; i < 2; i++) {
		if (halves[i]->rev != NULL)
			event_free(halves[i]->rev);
		if (halves[i]->wev != NULL)
			event_free(halves[i]->wev);
		free(halves[i]->pend);
		if (halves[i]->pipe[0] != -1)
			pipe_put(halves[i]->pipe, halves[i]->in_pipe == 0);
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

/* ---- the client side through a bufferevent (a TLS client) ---------------
 *
 * TLS records must be decrypted and encrypted, so these bytes cannot move
 * socket to socket (nor be spliced).  The client side is the caller's
 * bufferevent; the server side stays a plain socket with two events, read
 * 64 KiB at a time (libevent 2.1's own socket reads stop at 4 KiB, which
 * would cost a loop turn and a small TLS record per 4 KiB).
 *
 *   up:   client bufferevent input --evbuffer_write--> server_fd
 *   down: server_fd --recv(scratch)--> client bufferevent output
 *
 * Backpressure: up stops reading the client while server_fd does not take
 * what is buffered; down stops reading server_fd while the client's output
 * holds RELAY_BEV_HIGH, until its write callback reports it below
 * RELAY_BEV_LOW.  EOF passes on as shutdown(SHUT_WR) towards the server and
 * as a TLS close_notify towards the client, once what came before is written.
 */

#define RELAY_BEV_HIGH  (256 * 1024)
#define RELAY_BEV_LOW   (64 * 1024)

static void
tls_done_if_shut(struct relay *r)
{
	if (r->up.shut && r->down.shut)
		relay_finish(r, r->have_first_eof ? r->first_eof : RELAY_END_CLIENT);
}

static void
tls_note_eof(struct relay *r, enum relay_end who)
{
	if (!r->have_first_eof) {
		r->have_first_eof = true;
		r->first_eof = who;
	}
}

/* Client bytes to the server; what it cannot take stays in the input. */
static void
tls_up_flush(struct relay *r)
{
	struct evbuffer *in = bufferevent_get_input(r->cbev);
	int n;

	while (evbuffer_get_length(in) > 0) {
		n = evbuffer_write(in, r->up.to);
		if (n > 0) {
			half_count(&r->up, (uint64_t)n);
			relay_touch(r);
			continue;
		}
		if (n == -1 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
			relay_finish(r, RELAY_END_SERVER);
			return;
		}
		break;
	}
	if (evbuffer_get_length(in) > 0) {
		bufferevent_disable(r->cbev, EV_READ);
		event_add(r->up.wev, NULL);
		return;
	}
	event_del(r->up.wev);
	if (!r->up.eof) {
		bufferevent_enable(r->cbev, EV_READ);
		return;
	}
	if (!r->up.shut) {
		r->up.shut = true;
		(void)shutdown(r->up.to, SHUT_WR);
	}
	tls_done_if_shut(r);
}

static void
tls_down_shut(struct relay *r)
{
	if (r->down.shut)
		return;
	r->down.shut = true;
	/* close_notify; the client may still send (a TLS 1.3 half-close). */
	tls_bev_close_notify(r->cbev);
	tls_done_if_shut(r);
}

static void
tls_on_client_read(struct bufferevent *bev, void *arg)
{
	tls_up_flush(arg);
	(void)bev;
}

/* The client's output drained below its low watermark (or emptied). */
static void
tls_on_client_write(struct bufferevent *bev, void *arg)
{
	struct relay *r = arg;
	size_t left = evbuffer_get_length(bufferevent_get_output(bev));

	relay_touch(r);
	if (r->down.eof) {
		if (left == 0)
			tls_down_shut(r);
		return;
	}
	if (left < RELAY_BEV_HIGH)
		event_add(r->down.rev, NULL);
}

static void
tls_on_client_event(struct bufferevent *bev, short what, void *arg)
{
	struct relay *r = arg;

	if (what & BEV_EVENT_CONNECTED)
		return;
	if ((what & BEV_EVENT_ERROR) || !(what & BEV_EVENT_EOF)) {
		relay_finish(r, RELAY_END_CLIENT);
		return;
	}
	r->up.eof = true;
	tls_note_eof(r, RELAY_END_CLIENT);
	bufferevent_disable(bev, EV_READ);
	tls_bev_keep_writing(bev);      /* the down half goes on */
	tls_up_flush(r);                /* what came before the EOF, then the FIN */
}

static void
tls_on_server_writable(evutil_socket_t fd, short what, void *arg)
{
	tls_up_flush(arg);
	(void)fd;
	(void)what;
}

static void
tls_on_server_readable(evutil_socket_t fd, short what, void *arg)
{
	struct relay *r = arg;
	struct evbuffer *out = bufferevent_get_output(r->cbev);
	ssize_t n;

	if (evbuffer_get_length(out) >= RELAY_BEV_HIGH) {
		event_del(r->down.rev);
		return;
	}
	n = recv(fd, relay_scratch, sizeof(relay_scratch), 0);
	if (n > 0) {
		half_count(&r->down, (uint64_t)n);
		relay_touch(r);
		if (evbuffer_add(out, relay_scratch, (size_t)n) == -1) {
			relay_finish(r, RELAY_END_CLIENT);
			return;
		}
		if (evbuffer_get_length(out) >= RELAY_BEV_HIGH)
			event_del(r->down.rev);
		return;
	}
	if (n == -1) {
		if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
			relay_finish(r, RELAY_END_SERVER);
		return;
	}
	r->down.eof = true;
	tls_note_eof(r, RELAY_END_SERVER);
	event_del(r->down.rev);
	relay_touch(r);
	if (evbuffer_get_length(out) == 0)
		tls_down_shut(r);
	else    /* the write callback fires once it is all written */
		bufferevent_setwatermark(r->cbev, EV_WRITE, 0, 0);
	(void)what;
}

struct relay *
relay_new_bev(struct event_base *base, struct bufferevent *client, int server_fd,
    relay_done_cb *cb, void *arg, int64_t *last_activity_ms)
{
	struct relay *r;

	if ((r = relay_alloc()) == NULL)
		return NULL;
	r->base = base;
	r->cb = cb;
	r->arg = arg;
	r->last_activity_ms = last_activity_ms;
	r->up.r = r->down.r = r;
	r->up.to = r->down.from = server_fd;
	r->up.from = r->down.to = -1;
	r->up.side_from = r->down.side_to = RELAY_END_CLIENT;
	r->up.side_to = r->down.side_from = RELAY_END_SERVER;
	r->up.wev = event_new(base, server_fd, EV_WRITE | EV_PERSIST, tls_on_server_writable, r);
	r->down.rev = event_new(base, server_fd, EV_READ | EV_PERSIST, tls_on_server_readable, r);
	r->cbev = client;
	if (r->up.wev == NULL || r->down.rev == NULL) {
		relay_free(r);
		return NULL;
	}
	bufferevent_setcb(r->cbev, tls_on_client_read, tls_on_client_write, tls_on_client_event, r);
	bufferevent_setwatermark(r->cbev, EV_READ, 0, RELAY_SCRATCH);
	bufferevent_setwatermark(r->cbev, EV_WRITE, RELAY_BEV_LOW, 0);
	relay_touch(r);
	event_add(r->down.rev, NULL);
	if (bufferevent_enable(r->cbev, EV_READ | EV_WRITE) == -1) {
		relay_free(r);
		return NULL;
	}
	/* Bytes that came with the CONNECT head go first. */
	tls_up_flush(r);
	return r;
}
