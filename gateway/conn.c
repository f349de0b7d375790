/*
 * conn — one client connection, from accept to close: the whole life in one file.
 *
 *   accept -> [PROXY header] -> READ_REQUEST -> AUTHENTICATING -> DECIDING
 *          -> RESOLVING -> CONNECTING
 *     CONNECT:       -> 200 -> SNI_PEEK (unless sni=off) -> RELAYING (relay.c) -> close
 *                    a ClientHello read: -> SNI_SERVER_HELLO -> [HelloRetryRequest:
 *                    SNI_SECOND_HELLO] -> RELAYING
 *     absolute-form: -> FORWARDING (request out, response back) -> READ_REQUEST ...
 *   every failure:   conn_fail(status, reason) -> conn_close()
 *
 * conn_run() is the state machine and the only place a state changes (with
 * conn_close()): a loop around a switch in lifetime order, whose cases enter
 * the next state and continue when their work is done and break out when
 * they must wait.  Callbacks from libevent, upstream.c, auth/ and relay.c
 * only record what happened (timed_out, client_event, server_eof, the
 * upstream answer, relay_ended, ...) and call conn_run(), which takes those
 * facts first; they never decide.  conn_close() is the one exit: it
 * emits the pending audit record exactly once, cancels every outstanding
 * handle, and frees everything (after flushing an error response and a short
 * lingering read, so the client sees the response instead of a reset).
 *
 * Limits that protect the gateway: the request head is bounded (431), every
 * wait has a total deadline (header_timeout is not reset by trickled bytes),
 * body and response bytes move through bounded buffers with watermarks, and a
 * rejected CONNECT never looks at the bytes that followed its head (RFC 9931).
 */
#include "gateway/conn.h"

#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "audit/audit.h"
#include "auth/auth.h"
#include "gateway/http/body.h"
#include "config/config.h"
#include "gateway/bigread.h"
#include "gateway/gateway.h"
#include "gateway/http/http_msg.h"
#include "gateway/http/http_parse.h"
#include "gateway/log.h"
#include "config/netaddr.h"
#include "gateway/proxy_proto.h"
#include "gateway/relay.h"
#include "gateway/sni.h"
#include "gateway/stats.h"
#include "gateway/tls.h"
#include "gateway/upstream.h"
#include "lib/clock.h"
#include "lib/fmt.h"
#include "policy/policy.h"

/* style(9)'s FALLTHROUGH comment, in a form both gcc and clang check. */
#define FALLTHROUGH __attribute__((__fallthrough__))

#define BODY_HIGH_WM (256 * 1024)   /* stop reading a side when its peer's output passes this */
#define BODY_LOW_WM (64 * 1024)     /* ... and resume when it drains below this */
#define FORWARD_READ_MAX (256 * 1024)   /* one read from an origin at most (bigread.h) */
#define FORWARD_WRITE_MAX (1024 * 1024) /* one write to either side at most */
#define LINGER_SECONDS 2            /* reading and discarding after an error response */
#define LINGER_MAX_BYTES (256 * 1024)
#define METHOD_MAX 32               /* longest method kept */
#define PARSE_EARLY_MAX 4096        /* incomplete heads up to this size are parsed on each read */
#define AUTH_WAIT_OPERATIONS 3      /* an authentication waits at most this many ldap_timeouts */

enum conn_state {                   /* in lifetime order; conn_state_name() mirrors it */
	CONN_PROXY_HEADER,              /* listen ... proxy_protocol: waiting for the PROXY header */
	CONN_READ_REQUEST,              /* bytes -> http_parse until a complete head */
	CONN_AUTHENTICATING,            /* waiting for auth_begin()'s answer */
	CONN_DECIDING,                  /* policy_decide(), synchronous */
	CONN_RESOLVING,                 /* waiting for upstream_resolve() */
	CONN_CONNECTING,                /* waiting for upstream_connect() */
	CONN_SNI_PEEK,                  /* CONNECT: holding client bytes until the ClientHello is judged */
	CONN_SNI_SERVER_HELLO,          /* hello passed on; holding the rest until the server answers */
	CONN_SNI_SECOND_HELLO,          /* after a HelloRetryRequest: judging the client's next hello */
	CONN_RELAYING,                  /* CONNECT: relay.c pumps both directions */
	CONN_FORWARDING,                /* absolute-form: request out, response back */
	CONN_LINGER,                    /* closed: flushing the last response, discarding input */
};

static const char *const conn_state_names[] = {
	"PROXY_HEADER", "READ_REQUEST", "AUTHENTICATING", "DECIDING", "RESOLVING", "CONNECTING",
	"SNI_PEEK", "SNI_SERVER_HELLO", "SNI_SECOND_HELLO", "RELAYING", "FORWARDING", "LINGER",
};

/* A body moving from one buffer to another, re-framed on the way. */
struct body_pump {
	enum http_body_kind in;         /* framing of the incoming body */
	enum http_body_kind out;        /* framing written: LENGTH, CHUNKED or CLOSE */
	uint64_t remaining;             /* HTTP_BODY_LENGTH: bytes still to come */
	struct chunked_decoder dec;     /* HTTP_BODY_CHUNKED in */
	bool last_chunk_written;        /* "0\r\n" written (trailers may follow) */
	bool done;                      /* the whole body has been moved */
	uint64_t in_bytes;              /* bytes taken from the source, framing included */
	uint64_t out_bytes;             /* bytes written to the destination, framing included */
};

/*
 * A plain socket the connection reads itself into its bufferevent's input
 * (bigread), as on_server_readable reads the origin: libevent's own reads ask
 * FIONREAD before each one (a system call per read) and take 4 KiB at most.
 * The bufferevent still writes.  ev is added exactly while reading is wanted
 * and the input has room below max; the input drains inside conn_run, which
 * ends in conn_settle_io, which looks again (sock_in_watch).
 */
struct sock_in {
	struct event *ev;               /* the socket is readable; NULL: the bufferevent reads */
	struct conn *conn;              /* whose conn_run a read wakes */
	struct bufferevent *bev;        /* whose input the bytes go to (and who writes) */
	short *event;                   /* where EOF or an error is recorded, as BEV_EVENT_* */
	bool wanted;                    /* reading is wanted ... */
	size_t max;                     /* ... while the input holds fewer bytes than this */
	bool added;                     /* ev is added (both of the above) */
};

struct conn {
	TAILQ_ENTRY(conn) entry;        /* in env->conns */
	struct conn_env *env;           /* the loop's shared state (conn.h) */
	struct event_base *base;
	const struct config *conf;
	uint64_t id;
	enum conn_state state;
	bool closing;                   /* conn_close() ran */
	bool linger_eof;                /* lingering, the client sent EOF: write, then end */
	bool freeing;                   /* the final free is scheduled */
	bool draining;                  /* the worker is shutting down: no new requests */
	bool over_capacity;             /* accepted past max_connections: answer 503 */

	int cfd;                        /* client socket (owned; -1 once a TLS bufferevent owns it) */
	struct bufferevent *client;     /* client I/O outside the relay (TLS: also inside it) */
	struct sock_in client_in;       /* plain: its reads, done by the connection */
	bool tls;                       /* a tls listener: c->client is an OpenSSL bufferevent */
	bool insecure_authz;            /* auth_require_tls: credentials came on a plain listener */
	int sfd;                        /* destination socket (owned), -1 if none */
	struct bufferevent *server;     /* destination I/O when forwarding (writes; reads: server_rev) */
	struct event *server_rev;       /* the destination is readable: on_server_readable */
	bool server_reading;            /* ... and that event is added */
	struct event *timer;            /* the deadline of the current wait */
	struct event *free_ev;          /* frees the connection from the loop */
	struct upstream_req *up_req;    /* pending resolve or connect */
	struct upstream_addrs *addrs;   /* resolved, checked addresses */
	struct relay *relay;            /* CONNECT tunnel */
	int64_t last_activity_ms;       /* for idle_timeout */

	char client_ip[NETADDR_TEXT_MAX];
	int client_port;
	size_t head_scan;               /* bytes of the current head already searched */
	unsigned nrequests;             /* requests and tunnels begun on this connection */

	/* the request under way (reset between keep-alive requests) */
	bool in_request;                /* a record is owed for it */
	bool is_connect;
	int version_minor;
	char method[METHOD_MAX];
	char *url;                      /* absolute-form target for the record */
	char *target;                   /* the request-target as sent, for bad_request records */
	size_t target_len;
	char host[HOST_BUF];            /* normalized */
	enum host_kind host_kind;
	uint16_t port;
	struct evbuffer *fwd_head;      /* absolute-form: the head to send the origin */
	struct http_framing req_framing;
	char *authz;                    /* Proxy-Authorization value until auth_begin() took it */
	size_t authz_len;
	struct auth_req *auth_req;      /* pending authentication */
	bool auth_started;              /* auth_begin() was called for this request */
	bool auth_done;                 /* its answer is in auth_status/user/groups */
	enum auth_status auth_status;
	int auth_retry_after;           /* AUTH_THROTTLED: seconds, for Retry-After */
	char *user;                     /* directory name (AUTH_OK) or the name given (AUTH_FAILED) */
	char **groups;                  /* AUTH_OK: the user's groups */
	size_t ngroups;
	bool sni_final;                 /* no more ClientHello bytes will come (EOF, sni_timeout) */
	char sni[HOST_BUF];             /* the ClientHello server name, "" if none read */
	bool sni_hello;                 /* a ClientHello was read: the server's answer is watched */
	bool sni_hrr;                   /* the server's first message is a HelloRetryRequest */
	size_t sni_consumed;            /* bytes the hello just judged took, records included */
	struct bufferevent *sni_server; /* the destination while its first message is awaited */
	struct sock_in sni_in;          /* ... its reads */
	struct policy *policy;          /* snapshot the decision used (one reference) */
	struct policy_decision decision;
	char dst_ip[NETADDR_TEXT_MAX];
	int64_t start_ms;               /* monotonic, first byte of the request */
	int status;                     /* HTTP status sent, 0 if none */
	const char *reason;             /* audit reason */
	uint64_t bytes_up, bytes_down;
	/* for egressctl and /metrics (gateway/stats.h) */
	int64_t start_us;               /* monotonic, first byte of the request (setup time) */
	int64_t auth_began_us;          /* auth_begin() went to the directory at this time */
	struct stats_tunnel_entry *tunnel; /* registered while relaying; removed before relay_free */

	/* absolute-form forwarding */
	struct body_pump req_body;
	struct body_pump resp_body;
	bool resp_head_done;
	bool resp_keep_alive;           /* the origin will keep its connection */
	bool client_keep_alive;         /* the client connection continues after this response */
	bool server_reused;             /* this request went out on a kept connection */
	bool server_eof;
	bool client_eof;                /* the client half-closed after its request */
	uint64_t resp_bytes_seen;       /* response bytes read from the origin */
	char server_host[HOST_BUF];     /* what the kept server connection is for */
	uint16_t server_port;
	char server_ip[NETADDR_TEXT_MAX];
	size_t resp_scan;

	/* facts recorded by the callbacks, taken by conn_run() */
	bool running;                   /* conn_run() is on the stack */
	bool rerun;                     /* ... and was asked to look again */
	bool timed_out;                 /* the current wait's deadline passed */
	short client_event;             /* BEV_EVENT_* from the client socket, 0 if none */
	short sni_server_event;         /* ... from the destination during the SNI check */
	bool relay_ended;               /* the tunnel ended, relay_end says how */
	enum relay_end relay_end;
	int up_status;                  /* upstream's answer: 0, or the HTTP status to send */
	const char *up_reason;          /* ... and the audit reason */
};

static void conn_run(struct conn *);
static void conn_close(struct conn *, const char *why);
static void on_client_read(struct bufferevent *, void *);
static void on_client_write(struct bufferevent *, void *);
static void on_client_event(struct bufferevent *, short, void *);
static void on_server_readable(evutil_socket_t, short, void *);
static void on_sock_in_readable(evutil_socket_t, short, void *);
static void sock_in_release(struct sock_in *);
static void on_server_write(struct bufferevent *, void *);
static void on_server_event(struct bufferevent *, short, void *);
static int conn_tls_wrap_filter(struct conn *);

static void
conn_enter(struct conn *c, enum conn_state next)
{
	log_debug("conn=%016" PRIx64 " state=%s -> %s", c->id, conn_state_names[c->state],
	    conn_state_names[next]);
	c->state = next;
}

static void
conn_arm_timer(struct conn *c, int seconds)
{
	struct timeval tv = { seconds, 0 };

	evtimer_add(c->timer, &tv);
}

/* ---- the audit record ------------------------------------------------ */

static const char *
close_for_reason(const char *reason)
{
	static const char *const denied[] = {
		"policy", "default_deny", "auth_required", "auth_failed", "internal_destination",
		"policy_error", "over_capacity", "audit_unavailable", "auth_unavailable",
		"auth_throttled", "insecure_credentials", NULL,
	};
	size_t i;

	if (strncmp(reason, "sni_", 4) == 0 || strcmp(reason, "not_tls") == 0)
		return "sni_check";
	for (i = 0; denied[i] != NULL; i++)
		if (strcmp(reason, denied[i]) == 0)
			return "denied";
	return "error";
}

/* The record's id, "%016x-%u" of the connection and its request: 40 bytes hold it. */
static void
conn_record_id(const struct conn *c, char id[40])
{
	size_t n;

	fmt_hex64(id, c->id);
	id[16] = '-';
	n = fmt_u64(id + 17, c->nrequests);
	id[17 + n] = '\0';
}

static void
conn_emit_record(struct conn *c, const char *close_why)
{
	struct audit_event ev;
	char id[40];
	bool ok;

	if (!c->in_request)
		return;
	c->in_request = false;
	if (c->reason == NULL)
		c->reason = "ok";
	ok = strcmp(c->reason, "ok") == 0;
	conn_record_id(c, id);

	memset(&ev, 0, sizeof(ev));
	ev.event = c->is_connect ? "tunnel" : "request";
	ev.id = id;
	ev.client_ip = c->client_ip;
	ev.client_port = c->client_port;
	ev.user = c->user;
	ev.method = c->method[0] != '\0' ? c->method : NULL;
	ev.host = c->host[0] != '\0' ? c->host : NULL;
	ev.port = c->port != 0 ? c->port : -1;
	ev.url = c->is_connect ? NULL : c->url;
	ev.dst_ip = c->dst_ip[0] != '\0' ? c->dst_ip : NULL;
	ev.sni = c->sni[0] != '\0' ? c->sni : NULL;
	ev.decision = ok ? "allow" : "deny";
	ev.reason = c->reason;
	ev.rule = c->decision.rule;
	ev.report = c->decision.report;
	policy_report_count(c->policy, &c->decision);
	ev.status = c->status;
	if (c->relay != NULL) {
		c->bytes_up = relay_bytes_up(c->relay);
		c->bytes_down = relay_bytes_down(c->relay);
	}
	if (!c->is_connect) {
		/* A request's bodies count however it ended: completed, cut
		 * short by either side, or broken in its framing. */
		c->bytes_up += c->req_body.in_bytes;
		c->bytes_down += c->resp_body.out_bytes;
		c->req_body.in_bytes = c->resp_body.out_bytes = 0;
	}
	ev.bytes_up = (int64_t)c->bytes_up;
	ev.bytes_down = (int64_t)c->bytes_down;
	ev.duration_ms = c->start_ms != 0 ? clock_mono_ms() - c->start_ms : 0;
	ev.close = close_why;
	if (strcmp(c->reason, "bad_request") == 0 && c->target_len > 0) {
		ev.target = c->target;
		ev.target_len = c->target_len;
	}
	ev.client_tls = c->tls ? AUDIT_BOOL_TRUE : AUDIT_BOOL_FALSE;
	ev.lost = -1;
	audit_emit(&ev);
	stats_record(c->env->stats, c->is_connect, c->reason, c->bytes_up, c->bytes_down,
	    c->tunnel != NULL, strcmp(c->reason, "bad_request") == 0 &&
	    strcmp(close_why, "client") == 0);
	/* The audit record says it all; the log repeats it only when debugging. */
	log_debug("conn=%016" PRIx64 " event=%s id=%s status=%d reason=%s close=%s", c->id,
	    ev.event, id, c->status, c->reason, close_why);
}

/* Forget the request that just ended; keep the connection. */
static void
conn_forget_authz(struct conn *c)
{
	if (c->authz != NULL) {
		explicit_bzero(c->authz, c->authz_len);
		free(c->authz);
	}
	c->authz = NULL;
	c->authz_len = 0;
}

static void
conn_forget_identity(struct conn *c)
{
	size_t i;

	conn_forget_authz(c);
	if (c->auth_req != NULL)
		auth_cancel(c->auth_req);
	c->auth_req = NULL;
	c->auth_started = c->auth_done = false;
	free(c->user);
	c->user = NULL;
	for (i = 0; i < c->ngroups; i++)
		free(c->groups[i]);
	free(c->groups);
	c->groups = NULL;
	c->ngroups = 0;
}

static void
conn_reset_request(struct conn *c)
{
	conn_forget_identity(c);
	c->insecure_authz = false;
	c->sni[0] = '\0';
	c->sni_final = false;
	c->sni_hello = c->sni_hrr = false;
	c->sni_consumed = 0;
	free(c->url);
	c->url = NULL;
	c->target_len = 0;
	if (c->fwd_head != NULL)
		evbuffer_free(c->fwd_head);
	c->fwd_head = NULL;
	if (c->policy != NULL)
		policy_unref(c->policy);
	c->policy = NULL;
	memset(&c->decision, 0, sizeof(c->decision));
	c->is_connect = false;
	c->method[0] = '\0';
	c->host[0] = '\0';
	c->port = 0;
	c->dst_ip[0] = '\0';
	c->start_ms = 0;
	c->status = 0;
	c->reason = NULL;
	c->bytes_up = c->bytes_down = 0;
	c->head_scan = 0;
	c->resp_scan = 0;
	c->resp_head_done = false;
	c->resp_keep_alive = false;
	c->server_reused = false;
	c->resp_bytes_seen = 0;
	memset(&c->req_body, 0, sizeof(c->req_body));
	memset(&c->resp_body, 0, sizeof(c->resp_body));
	if (c->addrs != NULL)
		upstream_addrs_free(c->addrs);
	c->addrs = NULL;
}

/* ---- closing --------------------------------------------------------- */

static void
conn_free(struct conn *c)
{
	struct conn_env *env = c->env;

	free(c->target);
	if (c->timer != NULL)
		event_free(c->timer);
	if (c->free_ev != NULL)
		event_free(c->free_ev);
	sock_in_release(&c->client_in);
	if (c->client != NULL)
		bufferevent_free(c->client);    /* TLS: frees the SSL too (and its socket) */
	if (c->cfd != -1)
		close(c->cfd);
	stats_conn_close(env->stats);
	TAILQ_REMOVE(&env->conns, c, entry);
	env->nconns--;
	atomic_fetch_sub(&env->gw->open_conns, 1);
	free(c);
	if (env->on_removed != NULL)
		env->on_removed(env->owner);
}

static void
on_free_deferred(evutil_socket_t fd, short what, void *arg)
{
	conn_free(arg);
	(void)fd;
	(void)what;
}

static void
conn_free_later(struct conn *c)
{
	/* Callers are still on the stack: free from the loop. */
	if (c->freeing)
		return;
	c->freeing = true;
	if (c->timer != NULL)
		evtimer_del(c->timer);
	sock_in_release(&c->client_in);
	if (c->client != NULL)
		bufferevent_disable(c->client, EV_READ | EV_WRITE);
	/* Made with the connection, so this cannot fail: nothing frees it
	 * under a caller (conn_run's loop reads c after every step). */
	event_active(c->free_ev, EV_TIMEOUT, 0);
}

/*
 * A bufferevent on a plain socket.  libevent makes one with EV_WRITE on; here
 * it is off until bytes wait that the socket would not take, since
 * conn_settle_io writes the rest itself (see conn_write_now).
 */
static struct bufferevent *
conn_socket_bev(struct conn *c, int fd)
{
	struct bufferevent *bev = bufferevent_socket_new(c->base, fd, 0);

	if (bev != NULL)
		bufferevent_disable(bev, EV_WRITE);
	return bev;
}

/* Add or remove ev; only a change reaches libevent (each add or delete is a
 * changelist entry, and an epoll_ctl when the loop next waits). */
static void
event_watch(struct event *ev, bool *added, bool want)
{
	if (want == *added)
		return;
	*added = want;
	if (want)
		event_add(ev, NULL);
	else
		event_del(ev);
}

/* Free a read event kept by event_watch (ev may be NULL). */
static void
event_watch_free(struct event **ev, bool *added)
{
	if (*ev != NULL)
		event_free(*ev);
	*ev = NULL;
	*added = false;
}

static void
conn_release_server(struct conn *c)
{
	event_watch_free(&c->server_rev, &c->server_reading);
	if (c->server != NULL)
		bufferevent_free(c->server);
	c->server = NULL;
	if (c->sfd != -1)
		close(c->sfd);
	c->sfd = -1;
	c->server_host[0] = '\0';
	c->server_port = 0;
	c->server_eof = false;
}

/* Bytes still to reach the client (TLS: encrypted ones below it too). */
static size_t
conn_client_unsent(struct conn *c)
{
	if (c->tls)
		return tls_bev_unsent(c->client);
	return evbuffer_get_length(bufferevent_get_output(c->client));
}

/* A tls listener's connection that ended before its first request (often a
 * failed handshake: plaintext, an old version, a scanner).  No record: nothing
 * was requested; the debug log says why, for whoever looks at one client. */
static void
conn_log_tls_end(struct conn *c, short what)
{
	char buf[256];
	const char *why = tls_bev_error(c->client, buf, sizeof(buf));

	if (why != NULL)
		log_debug("conn=%016" PRIx64 " client=%s event=tls-handshake-failed "
		    "reason=\"%s\"", c->id, c->client_ip, why);
	else
		log_debug("conn=%016" PRIx64 " client=%s event=tls-end-before-request "
		    "what=0x%x", c->id, c->client_ip, (unsigned)what);
}

/* The response is out: end the client's direction (a TLS client gets close_notify). */
static void
conn_client_shut_write(struct conn *c)
{
	if (c->tls) {
		tls_bev_close_notify(c->client);
		return;
	}
	(void)shutdown(c->cfd, SHUT_WR);
}

static void
on_linger_read(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	size_t n = evbuffer_get_length(in);

	/* Discarded unread, never parsed. */
	evbuffer_drain(in, n);
	c->bytes_up += n;
	if (c->bytes_up > LINGER_MAX_BYTES)
		conn_free_later(c);
}

static void
on_linger_write(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;

	if (evbuffer_get_length(bufferevent_get_output(bev)) > 0)
		return;
	conn_client_shut_write(c);
	/* Both directions are done; what a TLS filter still holds below gets
	 * the linger timer's time. */
	if (c->linger_eof && conn_client_unsent(c) == 0)
		conn_free_later(c);
}

/*
 * EOF while the response is still going out: the client has sent all it
 * will (it half-closed, as `printf ... | nc` does), so stop reading and
 * write the rest; an error means it is gone.
 */
static void
on_linger_event(struct bufferevent *bev, short what, void *arg)
{
	struct conn *c = arg;

	if ((what & BEV_EVENT_EOF) && !(what & BEV_EVENT_ERROR) && conn_client_unsent(c) > 0) {
		c->linger_eof = true;
		bufferevent_disable(bev, EV_READ);
		if (c->tls)
			tls_bev_keep_writing(bev);
		return;
	}
	conn_free_later(c);
}

static void
on_linger_timeout(evutil_socket_t fd, short what, void *arg)
{
	conn_free_later(arg);
	(void)fd;
	(void)what;
}

/*
 * The one exit.  Emits the record owed for the current request, cancels every
 * pending operation, and frees the connection; a response still being written
 * to the client is flushed first, followed by a short lingering read that
 * discards whatever the client sends, so closing with unread input does not
 * turn into a reset that destroys the response in flight.
 */
static void
conn_close(struct conn *c, const char *why)
{
	struct timeval tv = { LINGER_SECONDS, 0 };

	if (c->closing)
		return;
	c->closing = true;
	conn_emit_record(c, why);
	log_debug("conn=%016" PRIx64 " state=%s event=closed reason=%s", c->id,
	    conn_state_names[c->state], why);

	if (c->up_req != NULL)
		upstream_cancel(c->up_req);
	c->up_req = NULL;
	if (c->tunnel != NULL) {
		/* Out of the registry while the relay (whose counters it reads)
		 * still exists; its final bytes join the totals. */
		stats_tunnel_remove(c->env->stats, c->tunnel, relay_bytes_up(c->relay),
		    relay_bytes_down(c->relay));
		c->tunnel = NULL;
	}
	relay_free(c->relay);
	c->relay = NULL;
	sock_in_release(&c->sni_in);
	if (c->sni_server != NULL)
		bufferevent_free(c->sni_server);    /* the socket is closed just below */
	c->sni_server = NULL;
	conn_release_server(c);
	conn_reset_request(c);
	if (c->timer != NULL)
		evtimer_del(c->timer);

	if (c->client != NULL && conn_client_unsent(c) > 0) {
		conn_enter(c, CONN_LINGER);
		c->bytes_up = 0;
		sock_in_release(&c->client_in);     /* the rest is drained by the bufferevent */
		bufferevent_setcb(c->client, on_linger_read, on_linger_write, on_linger_event, c);
		bufferevent_setwatermark(c->client, EV_WRITE, 0, 0);
		bufferevent_setwatermark(c->client, EV_READ, 0, 0);
		bufferevent_enable(c->client, EV_READ | EV_WRITE);
		evbuffer_drain(bufferevent_get_input(c->client),
		    evbuffer_get_length(bufferevent_get_input(c->client)));
		event_free(c->timer);
		c->timer = evtimer_new(c->base, on_linger_timeout, c);
		if (c->timer != NULL && evtimer_add(c->timer, &tv) == 0)
			return;
	}
	if (c->tls && c->client != NULL)
		conn_client_shut_write(c);
	conn_free_later(c);
}

/* Answer with a gateway error and close. */
static void
conn_fail(struct conn *c, int status, const char *reason)
{
	char realm[256];
	const char *extra = NULL;

	c->status = status;
	c->reason = reason;
	if (status == 407) {
		snprintf(realm, sizeof(realm), "Proxy-Authenticate: Basic realm=\"%s\"",
		    c->conf->auth_realm);
		extra = realm;
	} else if (status == 429) {
		snprintf(realm, sizeof(realm), "Retry-After: %d",
		    c->auth_retry_after > 0 ? c->auth_retry_after : 60);
		extra = realm;
	}
	if (c->client != NULL && status != 0) {
		struct evbuffer *out = bufferevent_get_output(c->client);
		size_t before = evbuffer_get_length(out);

		if (strcmp(reason, "insecure_credentials") == 0)
			http_write_error_text(out, status, extra, "Credentials are refused on this "
			    "listener, where they would cross the network in clear text: use the "
			    "gateway's TLS listener (an https:// proxy address).");
		else
			http_write_error(out, status, extra);
		/* A tunnel's counts exclude the CONNECT exchange: only requests
		 * count what was sent to the client. */
		if (!c->is_connect)
			c->bytes_down += evbuffer_get_length(out) - before;
	}
	conn_close(c, close_for_reason(reason));
}

/*
 * Keep the first len bytes of the request-target for a bad_request record.
 * The buffer is made on the first request and given back when a tunnel
 * starts (a tunnel's record is never a bad_request): an open tunnel does not
 * carry it.  Out of memory, the record just has no target.
 */
static void
conn_note_target(struct conn *c, const char *target, size_t len)
{
	if (c->target == NULL && (c->target = malloc(AUDIT_TARGET_MAX)) == NULL)
		return;
	if (len > AUDIT_TARGET_MAX)
		len = AUDIT_TARGET_MAX;
	memcpy(c->target, target, len);
	c->target_len = len;
}

/*
 * The request-target of a head that did not parse: the second word of the
 * first line as far as it goes, so the record shows what was attempted.
 */
static void
conn_note_raw_target(struct conn *c)
{
	struct evbuffer *in = bufferevent_get_input(c->client);
	size_t len = evbuffer_get_length(in), i, start;
	const char *p;

	if (c->target_len > 0 || len == 0)
		return;
	if (len > PARSE_EARLY_MAX)
		len = PARSE_EARLY_MAX;
	p = (const char *)evbuffer_pullup(in, (ssize_t)len);
	for (i = 0; i < len && p[i] != ' ' && p[i] != '\r' && p[i] != '\n'; i++)
		;
	if (i == len || p[i] != ' ')
		return;
	start = ++i;
	for (; i < len && p[i] != ' ' && p[i] != '\r' && p[i] != '\n'; i++)
		;
	if (i > start)
		conn_note_target(c, p + start, i - start);
}

/*
 * A head that never became a request: what was received of it counts as
 * bytes from the client, then the error goes out (or, status 0, nothing).
 */
static void
conn_fail_head(struct conn *c, int status, const char *close_why)
{
	conn_note_raw_target(c);
	c->bytes_up += evbuffer_get_length(bufferevent_get_input(c->client));
	if (status != 0) {
		conn_fail(c, status, "bad_request");
		return;
	}
	c->reason = "bad_request";
	conn_close(c, close_why);
}

/* ---- reading the request ---------------------------------------------- */

enum step {
	STEP_WAIT,                      /* waiting for an event */
	STEP_DONE,                      /* this state's work is done: go on */
	STEP_CLOSED,                    /* conn_close() ran */
	STEP_RETRY,                     /* forwarding: send the request again on a new connection */
};

static enum step
conn_read_proxy_header(struct conn *c)
{
	struct evbuffer *in = bufferevent_get_input(c->client);
	size_t len = evbuffer_get_length(in), consumed = 0;
	struct proxy_info info;
	const char *err = "malformed";
	enum proxy_result r;
	unsigned char *p;

	if (len == 0)
		return STEP_WAIT;
	if (len > PROXY_V2_MAX)
		len = PROXY_V2_MAX;
	p = evbuffer_pullup(in, (ssize_t)len);
	r = proxy_parse(p, len, &info, &consumed, &err);
	if (r == PROXY_NEED_MORE && len < PROXY_V2_MAX)
		return STEP_WAIT;
	if (r != PROXY_DONE) {
		log_warnx("conn=%016" PRIx64 " client=%s event=proxy-header-rejected reason=%s",
		    c->id, c->client_ip, r == PROXY_NEED_MORE ? "too long" : err);
		conn_close(c, "error");
		return STEP_CLOSED;
	}
	evbuffer_drain(in, consumed);
	if (info.has_address) {
		netaddr_ntop((struct sockaddr *)&info.src, c->client_ip, sizeof(c->client_ip));
		c->client_port = netaddr_port((struct sockaddr *)&info.src);
	}
	return STEP_DONE;
}

/*
 * Keep the Proxy-Authorization value for auth_begin() (only where LDAP is in
 * use; under "auth none" the field is simply never forwarded).  Two of them is
 * a malformed request.  Returns 0 or -1.
 */
static int
conn_take_authz(struct conn *c, const struct http_request *req)
{
	const struct http_header *found = NULL;
	size_t i;

	for (i = 0; i < req->nheaders; i++) {
		if (!http_header_is(&req->headers[i], "Proxy-Authorization"))
			continue;
		if (found != NULL)
			return -1;
		found = &req->headers[i];
	}
	if (found != NULL && c->conf->auth_require_tls && !c->tls) {
		/* Never checked, never sent anywhere: the answer is 403. */
		c->insecure_authz = true;
		return 0;
	}
	if (found == NULL || c->env->auth == NULL)
		return 0;
	if ((c->authz = malloc(found->value_len + 1)) == NULL)
		return -1;
	memcpy(c->authz, found->value, found->value_len);
	c->authz[found->value_len] = '\0';
	c->authz_len = found->value_len;
	return 0;
}

/*
 * Turn a complete, parsed head into the request's fields.  Returns 0, or an
 * HTTP status to answer with reason bad_request.
 */
static int
conn_take_request(struct conn *c, const struct http_request *req)
{
	struct http_target t;
	const char *err = NULL;

	c->version_minor = req->version_minor;
	conn_note_target(c, req->target, req->target_len);
	if (req->method_len >= sizeof(c->method))
		return 501;
	memcpy(c->method, req->method, req->method_len);
	c->method[req->method_len] = '\0';
	/* Methods are case-sensitive: "connect" is some other method, so its
	 * target must be absolute-form http:// and it is forwarded, never tunneled. */
	c->is_connect = strcmp(c->method, "CONNECT") == 0;

	if (c->is_connect) {
		if (http_parse_authority(req->target, req->target_len, &t, &err) == -1)
			return 400;
	} else {
		if (req->target_len < 7 || strncasecmp(req->target, "http://", 7) != 0)
			return 400;     /* origin-form, asterisk-form, https:// ... */
		if (http_parse_absolute_url(req->target, req->target_len, &t, &err) == -1)
			return 400;
		if ((c->url = strndup(req->target, req->target_len)) == NULL)
			return 500;
	}
	if (http_request_framing(req, &c->req_framing, &err) == -1)
		return 400;
	if (conn_take_authz(c, req) == -1)
		return 400;
	if (c->is_connect && c->req_framing.kind != HTTP_BODY_NONE)
		return 400;         /* a CONNECT carries no content */
	if (host_normalize(t.host, t.host_len, c->host, sizeof(c->host), &c->host_kind,
	    &err) == -1) {
		c->host[0] = '\0';
		return 400;
	}
	/* Brackets hold IPv6 text and nothing else; an IPv4-mapped one is
	 * HOST_IPV4 now, so it is the ':' that tells. */
	if (t.host_bracketed != (memchr(t.host, ':', t.host_len) != NULL))
		return 400;
	c->port = t.port;

	if (!c->is_connect) {
		if ((c->fwd_head = evbuffer_new()) == NULL)
			return 500;
		http_write_request_head(c->fwd_head, req, &t, c->host, &c->req_framing);
	}
	return 0;
}

static enum step
conn_read_request(struct conn *c)
{
	static __thread struct http_request req;
	struct evbuffer *in = bufferevent_get_input(c->client);
	size_t len = evbuffer_get_length(in), head_len;
	struct evbuffer_ptr pos;
	enum http_parse_result r;
	const char *err = NULL;
	const char *p;
	int status;

	if (len == 0)
		return STEP_WAIT;
	if (c->start_ms == 0) {
		/* First byte of a request: its total header deadline starts now. */
		c->start_ms = clock_mono_ms();
		c->start_us = clock_mono_us();
		c->in_request = true;
		c->nrequests++;
		if (c->nrequests > 1)
			conn_arm_timer(c, c->conf->header_timeout);
	}

	if (evbuffer_ptr_set(in, &pos, c->head_scan > 3 ? c->head_scan - 3 : 0,
	    EVBUFFER_PTR_SET) == -1)
		return STEP_WAIT;
	pos = evbuffer_search(in, "\r\n\r\n", 4, &pos);
	if (pos.pos == -1) {
		c->head_scan = len;
		if (len > HTTP_HEAD_MAX) {
			conn_fail_head(c, 431, NULL);
			return STEP_CLOSED;
		}
		/* Refuse garbage early instead of waiting for a head that never ends. */
		if (len <= PARSE_EARLY_MAX) {
			p = (const char *)evbuffer_pullup(in, (ssize_t)len);
			if (http_parse_request(p, len, &req, &err) == HTTP_PARSE_ERROR) {
				conn_fail_head(c, 400, NULL);
				return STEP_CLOSED;
			}
		}
		return STEP_WAIT;
	}
	head_len = (size_t)pos.pos + 4;
	if (head_len > HTTP_HEAD_MAX) {
		conn_fail_head(c, 431, NULL);
		return STEP_CLOSED;
	}
	p = (const char *)evbuffer_pullup(in, (ssize_t)head_len);
	r = http_parse_request(p, head_len, &req, &err);
	if (r == HTTP_PARSE_TOO_LARGE) {
		conn_fail_head(c, 431, NULL);
		return STEP_CLOSED;
	}
	if (r != HTTP_PARSE_DONE) {
		conn_fail_head(c, 400, NULL);
		return STEP_CLOSED;
	}
	status = conn_take_request(c, &req);
	evbuffer_drain(in, req.head_len);
	if (!c->is_connect)
		c->bytes_up += req.head_len;
	if (status != 0) {
		conn_fail(c, status, "bad_request");
		return STEP_CLOSED;
	}
	evtimer_del(c->timer);
	return STEP_DONE;
}

/* ---- authenticating ---------------------------------------------------- */

static void
conn_store_auth(struct conn *c, const struct auth_result *res)
{
	size_t i;

	c->auth_done = true;
	c->auth_status = res->status;
	c->auth_retry_after = res->retry_after;
	if (res->user != NULL && (res->status == AUTH_OK || res->status == AUTH_FAILED ||
	    res->status == AUTH_THROTTLED))
		c->user = strdup(res->user);
	if (res->status != AUTH_OK || res->ngroups == 0)
		return;
	if ((c->groups = calloc(res->ngroups, sizeof(*c->groups))) == NULL)
		return;
	for (i = 0; i < res->ngroups; i++)
		if ((c->groups[c->ngroups] = strdup(res->groups[i])) != NULL)
			c->ngroups++;
}

static void on_auth_done(const struct auth_result *, void *);

/*
 * Each request is authenticated by its own Proxy-Authorization field: an
 * identity belongs to a request, not to the connection.  No field (or "auth
 * none") means an anonymous request; the policy may then answer 407.
 */
static enum step
conn_authenticate(struct conn *c)
{
	struct auth_result now;

	if (c->insecure_authz) {
		conn_fail(c, 403, "insecure_credentials");
		return STEP_CLOSED;
	}
	if (!c->auth_started) {
		c->auth_started = true;
		if (c->env->auth == NULL)
			return STEP_DONE;
		memset(&now, 0, sizeof(now));
		c->auth_req = auth_begin_from(c->env->auth, c->client_ip, c->authz,
		    c->authz_len, &now, on_auth_done, c);
		conn_forget_authz(c);   /* auth_begin took what it needs */
		if (c->auth_req != NULL) {
			c->auth_began_us = clock_mono_us();
			/* A queued exchange waits for a thread: bound the whole wait
			 * by what one exchange may take (search, bind, group search). */
			conn_arm_timer(c, AUTH_WAIT_OPERATIONS * c->conf->ldap_timeout);
			return STEP_WAIT;
		}
		conn_store_auth(c, &now);
	}
	if (!c->auth_done)
		return STEP_WAIT;
	evtimer_del(c->timer);
	switch (c->auth_status) {
	case AUTH_OK:
	case AUTH_MISSING:
		return STEP_DONE;
	case AUTH_FAILED:
		conn_fail(c, 407, "auth_failed");
		return STEP_CLOSED;
	case AUTH_THROTTLED:
		conn_fail(c, 429, "auth_throttled");
		return STEP_CLOSED;
	case AUTH_UNAVAILABLE:
	default:
		conn_fail(c, 503, "auth_unavailable");
		return STEP_CLOSED;
	}
}

/* ---- deciding ---------------------------------------------------------- */

/* The policy question for this request, with host as the destination name. */
static void
conn_policy_request(struct conn *c, const char *host, struct policy_request *pr)
{
	memset(pr, 0, sizeof(*pr));
	if (c->auth_done && c->auth_status == AUTH_OK)
		pr->user = c->user;
	pr->groups = (const char *const *)c->groups;
	pr->ngroups = c->ngroups;
	pr->no_identity = c->conf->auth == CONFIG_AUTH_NONE;
	pr->method = c->method;
	pr->host = host;
	pr->port = c->port;
}

/*
 * May a request be served at all?  Checked before authentication, so that an
 * overloaded gateway (or one that cannot audit) never adds directory load on
 * top: the 503 costs nothing but the answer.
 */
static enum step
conn_admit(struct conn *c)
{
	if (c->over_capacity) {
		conn_fail(c, 503, "over_capacity");
		return STEP_CLOSED;
	}
	if (!audit_available() && c->conf->audit_on_failure_deny) {
		audit_note_refused();
		conn_fail(c, 503, "audit_unavailable");
		return STEP_CLOSED;
	}
	return STEP_DONE;
}

static enum step
conn_decide(struct conn *c)
{
	struct policy_request pr;

	c->policy = policy_ref(c->env->policy);
	conn_policy_request(c, c->host, &pr);
	policy_decide(c->policy, &pr, &c->decision);
	if (c->decision.need_credentials) {
		conn_fail(c, 407, "auth_required");
		return STEP_CLOSED;
	}
	if (!c->decision.allow) {
		conn_fail(c, 403, c->decision.reason);
		return STEP_CLOSED;
	}
	return STEP_DONE;
}

/* ---- forwarding an absolute-form request ------------------------------ */

static void
pump_init(struct body_pump *p, enum http_body_kind in, enum http_body_kind out, uint64_t length)
{
	memset(p, 0, sizeof(*p));
	p->in = in;
	p->out = out;
	p->remaining = length;
	chunked_init(&p->dec);
	if (in == HTTP_BODY_NONE || (in == HTTP_BODY_LENGTH && length == 0))
		p->done = true;
}

static void
pump_write_data(struct body_pump *p, struct evbuffer *dst, const void *data, size_t n,
    struct evbuffer *src, bool move)
{
	if (n == 0)
		return;
	if (p->out == HTTP_BODY_CHUNKED)
		evbuffer_add_printf(dst, "%zx\r\n", n);
	if (move)
		evbuffer_remove_buffer(src, dst, n);
	else
		evbuffer_add(dst, data, n);
	if (p->out == HTTP_BODY_CHUNKED)
		evbuffer_add(dst, "\r\n", 2);
}

/*
 * Move body bytes from src to dst, re-framed, while dst is under the high
 * watermark.  src_eof: the source has closed.  Returns 0 (more to come or
 * done: see p->done), or -1 on a framing error or a premature end.
 */
static int
pump_body(struct body_pump *p, struct evbuffer *src, struct evbuffer *dst, bool src_eof)
{
	size_t dst_before = evbuffer_get_length(dst);
	int rc = 0;

	while (!p->done && evbuffer_get_length(dst) < BODY_HIGH_WM) {
		size_t avail = evbuffer_get_length(src);

		if (p->in == HTTP_BODY_LENGTH) {
			size_t n = avail < p->remaining ? avail : (size_t)p->remaining;

			if (n == 0)
				break;
			pump_write_data(p, dst, NULL, n, src, true);
			p->remaining -= n;
			p->in_bytes += n;
			if (p->remaining == 0)
				p->done = true;
		} else if (p->in == HTTP_BODY_CLOSE) {
			size_t n = avail > BODY_HIGH_WM ? BODY_HIGH_WM : avail;

			if (n > 0) {
				pump_write_data(p, dst, NULL, n, src, true);
				p->in_bytes += n;
				continue;
			}
			if (src_eof) {
				p->done = true;
				if (p->out == HTTP_BODY_CHUNKED)
					evbuffer_add(dst, "0\r\n\r\n", 5);
			}
			break;
		} else {
			size_t want = avail > 65536 ? 65536 : avail, consumed = 0, off = 0, n = 0;
			enum chunked_result r;
			const char *buf;

			if (want == 0)
				break;
			buf = (const char *)evbuffer_pullup(src, (ssize_t)want);
			r = chunked_decode(&p->dec, buf, want, &consumed, &off, &n);
			if (r == CHUNKED_ERROR) {
				rc = -1;
				break;
			}
			if (r == CHUNKED_DATA)
				pump_write_data(p, dst, buf + off, n, NULL, false);
			if ((r == CHUNKED_TRAILER || r == CHUNKED_DONE) && !p->last_chunk_written) {
				if (p->out == HTTP_BODY_CHUNKED)
					evbuffer_add(dst, "0\r\n", 3);
				p->last_chunk_written = true;
			}
			/* Trailers are filtered like fields: no framing, no credentials. */
			if (r == CHUNKED_TRAILER && p->out == HTTP_BODY_CHUNKED &&
			    http_trailer_forwardable(buf + off, n)) {
				evbuffer_add(dst, buf + off, n);
				evbuffer_add(dst, "\r\n", 2);
			}
			if (r == CHUNKED_DONE) {
				if (p->out == HTTP_BODY_CHUNKED)
					evbuffer_add(dst, "\r\n", 2);
				p->done = true;
			}
			evbuffer_drain(src, consumed);
			p->in_bytes += consumed;
			if (r == CHUNKED_NEED_MORE && consumed == 0 && want == avail)
				break;
		}
	}
	if (!p->done && src_eof && evbuffer_get_length(src) == 0 && p->in != HTTP_BODY_CLOSE)
		rc = -1;            /* the body ended before its framing did */
	p->out_bytes += evbuffer_get_length(dst) - dst_before;
	return rc;
}

/* Read fd into bev's input from now on (off until sock_in_set); -1 if out of memory. */
static int
sock_in_open(struct sock_in *r, struct conn *c, struct bufferevent *bev, int fd, short *event)
{
	r->conn = c;
	r->bev = bev;
	r->event = event;
	r->ev = event_new(c->base, fd, EV_READ | EV_PERSIST, on_sock_in_readable, r);
	return r->ev != NULL ? 0 : -1;
}

/* Add or remove the read event as wanted and room say (struct sock_in). */
static void
sock_in_watch(struct sock_in *r)
{
	bool want;

	if (r->ev == NULL)
		return;
	want = r->wanted && evbuffer_get_length(bufferevent_get_input(r->bev)) < r->max;
	event_watch(r->ev, &r->added, want);
}

static void
sock_in_set(struct sock_in *r, bool wanted, size_t max)
{
	r->wanted = wanted;
	r->max = max;
	sock_in_watch(r);
}

/* Before the bufferevent is freed, or reads through it (linger). */
static void
sock_in_release(struct sock_in *r)
{
	event_watch_free(&r->ev, &r->added);
}

/*
 * The socket is readable: read in one piece what fits below max.  Returns as
 * bigread; at EOF or an error reading is no longer wanted, as a bufferevent's
 * own reading ends there.
 */
static ssize_t
sock_in_read(struct sock_in *r, int fd)
{
	struct evbuffer *in = bufferevent_get_input(r->bev);
	size_t len = evbuffer_get_length(in);
	ssize_t n;

	if (len >= r->max) {
		sock_in_watch(r);
		errno = EAGAIN;
		return -1;
	}
	evbuffer_unfreeze(in, 0);       /* a bufferevent keeps the end frozen between its reads */
	n = bigread(in, fd, r->max - len);
	evbuffer_freeze(in, 0);
	if (n == 0 || (n == -1 && errno != EAGAIN))
		r->wanted = false;
	sock_in_watch(r);
	return n;
}

/* The client's reading on or off.  Only a change reaches libevent, which
 * re-adds an event that is already on (and leaves one a watermark suspended
 * alone either way). */
static void
conn_client_reading(struct conn *c, bool on)
{
	bool is_on;

	if (c->client_in.ev != NULL) {
		sock_in_set(&c->client_in, on, c->client_in.max);
		return;
	}
	is_on = (bufferevent_get_enabled(c->client) & EV_READ) != 0;
	if (on && !is_on)
		bufferevent_enable(c->client, EV_READ);
	else if (!on && is_on)
		bufferevent_disable(c->client, EV_READ);
}

/*
 * At most high bytes of the client's kept in its input: libevent reads no
 * further until they are taken.  Only a change reaches libevent, which
 * re-adds the read event whenever the mark is set.
 */
static void
conn_client_read_limit(struct conn *c, size_t high)
{
	size_t low, cur;

	if (c->client_in.ev != NULL) {
		sock_in_set(&c->client_in, c->client_in.wanted, high);
		return;
	}
	if (bufferevent_getwatermark(c->client, EV_READ, &low, &cur) == 0 && low == 0 &&
	    cur == high)
		return;
	bufferevent_setwatermark(c->client, EV_READ, 0, high);
}

/* Watch the origin for bytes (on_server_readable), or stop (backpressure);
 * as above, only a change reaches libevent. */
static void
conn_server_reading(struct conn *c, bool on)
{
	if (c->server_rev != NULL)
		event_watch(c->server_rev, &c->server_reading, on);
}

/* Start forwarding on c->server: the head, then whatever body is ready. */
static void
conn_forward_start(struct conn *c)
{
	struct evbuffer *out = bufferevent_get_output(c->server);
	enum http_body_kind out_kind;

	out_kind = c->req_framing.kind == HTTP_BODY_CHUNKED ? HTTP_BODY_CHUNKED :
	    c->req_framing.kind;
	pump_init(&c->req_body, c->req_framing.kind, out_kind, c->req_framing.length);
	/* Keep the head until the response starts, in case a kept connection
	 * turns out to be closed and the request must go out on a new one. */
	evbuffer_add(out, evbuffer_pullup(c->fwd_head, -1), evbuffer_get_length(c->fwd_head));
	c->resp_head_done = false;
	c->resp_scan = 0;
	c->server_eof = false;
	bufferevent_setcb(c->server, NULL, on_server_write, on_server_event, c);
	bufferevent_setwatermark(c->server, EV_WRITE, BODY_LOW_WM, 0);
	bufferevent_set_max_single_write(c->server, FORWARD_WRITE_MAX);
	bufferevent_set_max_single_write(c->client, FORWARD_WRITE_MAX);
	conn_server_reading(c, true);
	conn_client_reading(c, true);
	c->last_activity_ms = clock_mono_coarse_ms();
	conn_arm_timer(c, c->conf->idle_timeout);
}

/*
 * Parse the origin's response head.  Returns STEP_DONE when the final head was
 * sent to the client, STEP_WAIT for more bytes, STEP_CLOSED on failure.
 */
static enum step
conn_read_response_head(struct conn *c)
{
	static __thread struct http_response resp;
	struct evbuffer *in = bufferevent_get_input(c->server);
	struct evbuffer *out = bufferevent_get_output(c->client);
	struct http_framing f;
	struct evbuffer_ptr pos;
	const char *err = NULL;
	size_t len, before;
	enum http_body_kind in_kind, out_kind;
	const char *p;

	for (;;) {
		len = evbuffer_get_length(in);
		if (len == 0)
			return STEP_WAIT;
		if (evbuffer_ptr_set(in, &pos, c->resp_scan > 3 ? c->resp_scan - 3 : 0,
		    EVBUFFER_PTR_SET) == -1)
			return STEP_WAIT;
		pos = evbuffer_search(in, "\r\n\r\n", 4, &pos);
		if (pos.pos == -1) {
			c->resp_scan = len;
			if (len > HTTP_HEAD_MAX || c->server_eof)
				goto bad;
			/* A head already known to be malformed (a bare LF, say)
			 * is answered now, not when the origin closes. */
			if (len <= PARSE_EARLY_MAX && http_parse_response((const char *)
			    evbuffer_pullup(in, (ssize_t)len), len, &resp, &err) == HTTP_PARSE_ERROR)
				goto bad;
			return STEP_WAIT;
		}
		p = (const char *)evbuffer_pullup(in, pos.pos + 4);
		if (http_parse_response(p, (size_t)pos.pos + 4, &resp, &err) != HTTP_PARSE_DONE)
			goto bad;
		if (http_response_framing(&resp, c->method, strlen(c->method), &f, &err) == -1)
			goto bad;
		c->resp_bytes_seen += resp.head_len;
		if (resp.status >= 100 && resp.status < 200) {
			/* Interim responses pass through; 101 was never asked for. */
			if (resp.status == 101)
				goto bad;
			before = evbuffer_get_length(out);
			http_write_response_head(out, &resp, &f, true);
			c->bytes_down += evbuffer_get_length(out) - before;
			evbuffer_drain(in, resp.head_len);
			c->resp_scan = 0;
			continue;
		}
		break;
	}

	c->status = resp.status;
	c->resp_keep_alive = f.keep_alive && f.kind != HTTP_BODY_CLOSE;
	c->client_keep_alive = c->req_framing.keep_alive && !c->draining && !c->client_eof;
	in_kind = out_kind = f.kind;
	if (f.kind == HTTP_BODY_CHUNKED && c->version_minor == 0)
		out_kind = HTTP_BODY_CLOSE;     /* an HTTP/1.0 client cannot read chunks */
	if (f.kind == HTTP_BODY_CLOSE && c->version_minor == 1 && c->client_keep_alive)
		out_kind = HTTP_BODY_CHUNKED;   /* re-chunk to keep the client connection */
	if (out_kind == HTTP_BODY_CLOSE)
		c->client_keep_alive = false;
	f.kind = out_kind;

	before = evbuffer_get_length(out);
	http_write_response_head(out, &resp, &f, c->client_keep_alive);
	c->bytes_down += evbuffer_get_length(out) - before;
	evbuffer_drain(in, resp.head_len);
	pump_init(&c->resp_body, in_kind, out_kind, f.length);
	c->resp_head_done = true;       /* on_server_readable: reads are no longer capped */
	bufferevent_setwatermark(c->client, EV_WRITE, BODY_LOW_WM, 0);
	return STEP_DONE;
bad:
	log_warnx("conn=%016" PRIx64 " host=%s event=bad-response reason=%s", c->id, c->host,
	    err != NULL ? err : "malformed or too large");
	if (c->resp_bytes_seen == 0) {
		conn_fail(c, 502, "connect_failed");   /* the exchange with the origin failed */
		return STEP_CLOSED;
	}
	/* Part of a response already went out: all the client can be told is EOF. */
	conn_close(c, "error");
	return STEP_CLOSED;
}

/* The request and its response are both complete: record it, ready the next one. */
static enum step
conn_forward_finish(struct conn *c)
{
	bool keep_server = c->resp_keep_alive && c->req_body.done && !c->server_eof &&
	    evbuffer_get_length(bufferevent_get_input(c->server)) == 0;

	if (!c->client_keep_alive || !c->req_body.done) {
		conn_close(c, "server");
		return STEP_CLOSED;
	}
	conn_emit_record(c, "server");
	if (keep_server) {
		/* Idle until the next request; any byte or EOF from it retires it. */
		str_copy(c->server_host, sizeof(c->server_host), c->host);
		c->server_port = c->port;
		str_copy(c->server_ip, sizeof(c->server_ip), c->dst_ip);
		bufferevent_setwatermark(c->server, EV_WRITE, 0, 0);
		conn_server_reading(c, true);   /* a byte or EOF from it retires it */
	} else
		conn_release_server(c);
	conn_reset_request(c);
	conn_client_read_limit(c, HTTP_HEAD_MAX + 1);
	bufferevent_setwatermark(c->client, EV_WRITE, 0, 0);
	conn_client_reading(c, true);
	conn_arm_timer(c, c->conf->idle_timeout);
	return STEP_DONE;       /* conn_run() reads the next request */
}

/*
 * May the request go out again after a kept origin connection closed under
 * it?  Only if the origin cannot have acted on it (no byte of a response, no
 * body sent) and only for safe methods.  RFC 9110 9.2.2 would allow PUT and
 * DELETE as idempotent, but a second DELETE reaching an origin is visible
 * there, and a proxy cannot know the origin implements them idempotently.
 */
static bool
conn_may_retry(struct conn *c)
{
	static const char *const safe[] = { "GET", "HEAD", "OPTIONS", "TRACE", NULL };
	size_t i;

	if (!c->server_reused || c->resp_bytes_seen > 0 || c->req_body.in_bytes > 0 ||
	    c->req_framing.kind != HTTP_BODY_NONE)
		return false;
	for (i = 0; safe[i] != NULL; i++)
		if (strcmp(c->method, safe[i]) == 0)
			return true;
	return false;
}

/* Move what can be moved in both directions; finish when both are done. */
static enum step
conn_forward(struct conn *c)
{
	struct evbuffer *cin = bufferevent_get_input(c->client);
	struct evbuffer *cout = bufferevent_get_output(c->client);
	struct evbuffer *sin = bufferevent_get_input(c->server);
	struct evbuffer *sout = bufferevent_get_output(c->server);
	enum step s;

	if (!c->req_body.done) {
		if (pump_body(&c->req_body, cin, sout, false) == -1) {
			if (c->resp_head_done) {
				conn_close(c, "client");
				return STEP_CLOSED;
			}
			conn_fail(c, 400, "bad_request");
			return STEP_CLOSED;
		}
		/* Backpressure: stop reading the client while the origin is slow. */
		if (evbuffer_get_length(sout) >= BODY_HIGH_WM)
			conn_client_reading(c, false);
		else if (!c->req_body.done)
			conn_client_reading(c, true);
	}

	if (!c->resp_head_done) {
		s = conn_read_response_head(c);
		if (s != STEP_DONE) {
			if (s == STEP_WAIT && c->server_eof && conn_may_retry(c))
				return STEP_RETRY;
			if (s == STEP_WAIT && c->server_eof) {
				if (c->resp_bytes_seen == 0) {
					conn_fail(c, 502, "connect_failed");
					return STEP_CLOSED;
				}
				conn_close(c, "server");
				return STEP_CLOSED;
			}
			return s;
		}
	}
	if (!c->resp_body.done) {
		size_t before = evbuffer_get_length(sin);

		if (pump_body(&c->resp_body, sin, cout, c->server_eof) == -1) {
			/* The head went out already: the client can only see the
			 * body stop.  The record says so; the log says why. */
			log_warnx("conn=%016" PRIx64 " host=%s event=bad-response-body reason=\"%s\"",
			    c->id, c->host, c->server_eof && evbuffer_get_length(sin) == 0 ?
			    "origin closed before the body's end" : "malformed body framing");
			conn_close(c, "error");
			return STEP_CLOSED;
		}
		c->resp_bytes_seen += before - evbuffer_get_length(sin);
		if (evbuffer_get_length(cout) >= BODY_HIGH_WM)
			conn_server_reading(c, false);
		else if (!c->resp_body.done)
			conn_server_reading(c, true);
	}
	if (!c->resp_body.done)
		return STEP_WAIT;
	if (!c->req_body.done) {
		/* The origin answered before the body was sent (e.g. 413): the
		 * rest of the body cannot be skipped safely, so the client
		 * connection ends after this response. */
		c->client_keep_alive = false;
	}
	return conn_forward_finish(c);
}

/* ---- the SNI check of a tunnel ----------------------------------------- */

static enum step
conn_sni_fail(struct conn *c, const char *reason, const char *why)
{
	log_info("conn=%016" PRIx64 " host=%s event=sni-refused reason=%s why=\"%s\"", c->id,
	    c->host, reason, why != NULL ? why : "");
	c->reason = reason;
	conn_close(c, "sni_check");
	return STEP_CLOSED;
}

/*
 * Judge a ClientHello before a single byte of it reaches the destination:
 * the client's first bytes, or (second) its answer to a HelloRetryRequest.
 * Under sni=require a complete ClientHello with one valid server name is
 * needed; under sni=optional only a name that is there is checked, and only
 * bytes that are plainly not TLS go on unchecked.  A name is checked twice:
 * it must equal the CONNECT host when that is a name, and the policy, asked
 * again with the name as host (same user, port, method), must allow it, so a
 * tunnel to an allowed name cannot carry TLS to another.  A second hello
 * must be a ClientHello with the first one's name.  On STEP_DONE,
 * c->sni_hello says whether a hello was read (c->sni_consumed its bytes).
 */
static enum step
conn_sni_judge(struct conn *c, bool second)
{
	static const uint8_t nothing[1];
	struct evbuffer *in = bufferevent_get_input(c->client);
	size_t len = evbuffer_get_length(in);
	bool require = c->decision.sni == POLICY_SNI_REQUIRE;
	struct policy_decision d;
	struct policy_request pr;
	struct sni_hello hello;
	const char *why = NULL;
	enum sni_result r;

	c->sni_hello = false;
	if (len == 0 && !c->sni_final)
		return STEP_WAIT;
	if (len > SNI_MAX_HELLO)
		len = SNI_MAX_HELLO;
	r = sni_read_hello(len > 0 ? evbuffer_pullup(in, (ssize_t)len) : nothing, len,
	    second ? SNI_AFTER_HRR : 0, &hello, &why);
	switch (r) {
	case SNI_NEED_MORE:
		if (!c->sni_final)
			return STEP_WAIT;
		/*
		 * Nothing came, or a TLS handshake started and stalled.  Under
		 * optional a silent client goes on unchecked; one that began a
		 * ClientHello does not, or stalling one byte short of the end
		 * would smuggle any name past the check.
		 */
		if (require || second || len > 0)
			return conn_sni_fail(c, "not_tls", "no complete ClientHello in time");
		return STEP_DONE;
	case SNI_NOT_TLS:
		if (second)
			return conn_sni_fail(c, "not_tls",
			    "the answer to a HelloRetryRequest is not a ClientHello");
		return require ? conn_sni_fail(c, "not_tls", why) : STEP_DONE;
	case SNI_MALFORMED:
		return conn_sni_fail(c, "not_tls", why);
	case SNI_INVALID:
		return conn_sni_fail(c, "sni_invalid", why);
	case SNI_NO_NAME:
	case SNI_FOUND:
		break;
	}
	if (require && hello.ech)
		return conn_sni_fail(c, "sni_invalid", "Encrypted Client Hello hides the server name");
	if (second && strcmp(hello.name, c->sni) != 0) {
		str_copy(c->sni, sizeof(c->sni), hello.name);
		return conn_sni_fail(c, "sni_mismatch",
		    "the second ClientHello names another server than the first");
	}
	if (r == SNI_NO_NAME) {
		if (require)
			return conn_sni_fail(c, "sni_missing", why);
	} else {
		str_copy(c->sni, sizeof(c->sni), hello.name);
		if (c->host_kind == HOST_NAME && strcmp(c->sni, c->host) != 0)
			return conn_sni_fail(c, "sni_mismatch",
			    "server name differs from the CONNECT host");
		conn_policy_request(c, c->sni, &pr);
		policy_decide(c->policy, &pr, &d);
		policy_report_merge(&c->decision, &d);
		if (!d.allow) {
			c->decision.rule = d.rule;
			return conn_sni_fail(c, strcmp(d.reason, "policy_error") == 0 ?
			    "policy_error" : "sni_denied", d.reason);
		}
	}
	c->sni_hello = true;
	c->sni_consumed = hello.consumed;
	return STEP_DONE;
}

static void on_sni_server_event(struct bufferevent *, short, void *);

/*
 * Pass on exactly the hello just judged (what follows it stays held) and
 * watch for the destination's first message: a HelloRetryRequest makes the
 * client send another ClientHello, which must be judged too.
 */
static enum step
conn_sni_pass_hello(struct conn *c)
{
	struct evbuffer *in = bufferevent_get_input(c->client);

	if (c->sni_server == NULL) {
		c->sni_server = conn_socket_bev(c, c->sfd);
		if (c->sni_server == NULL ||
		    sock_in_open(&c->sni_in, c, c->sni_server, c->sfd, &c->sni_server_event) == -1) {
			conn_close(c, "error");
			return STEP_CLOSED;
		}
		bufferevent_setcb(c->sni_server, NULL, NULL, on_sni_server_event, c);
	}
	if (evbuffer_remove_buffer(in, bufferevent_get_output(c->sni_server),
	    c->sni_consumed) != (int)c->sni_consumed) {
		conn_close(c, "error");
		return STEP_CLOSED;
	}
	c->bytes_up += c->sni_consumed;
	return STEP_DONE;
}

/* Is the destination's first handshake message complete enough to tell? */
static enum step
conn_sni_server_hello(struct conn *c)
{
	struct evbuffer *in = bufferevent_get_input(c->sni_server);
	size_t len = evbuffer_get_length(in);
	enum sni_server_hello r;

	if (len == 0)
		return STEP_WAIT;
	if (len > SNI_MAX_HELLO)
		len = SNI_MAX_HELLO;
	r = sni_server_hello(evbuffer_pullup(in, (ssize_t)len), len);
	if (r == SNI_SERVER_NEED_MORE)
		return STEP_WAIT;
	c->sni_hrr = r == SNI_SERVER_HRR;
	return STEP_DONE;
}

/* The server's bytes so far go to the client, as tunnel payload. */
static void
conn_sni_pass_down(struct conn *c)
{
	struct evbuffer *in = bufferevent_get_input(c->sni_server);

	c->bytes_down += evbuffer_get_length(in);
	evbuffer_add_buffer(bufferevent_get_output(c->client), in);
}

/* ---- starting the waits ------------------------------------------------ */

static void on_resolved(const struct upstream_result *, void *);
static void on_connected(const struct upstream_result *, void *);
static void on_relay_done(enum relay_end, void *);

/* Look the destination up; connect_timeout bounds the lookup too. */
static enum step
conn_start_resolve(struct conn *c)
{
	c->up_status = 0;
	c->up_reason = NULL;
	conn_arm_timer(c, c->conf->connect_timeout);
	c->up_req = upstream_resolve(c->env->upstream, c->host, c->host_kind, c->port,
	    on_resolved, c);
	if (c->up_req == NULL) {
		conn_fail(c, 500, "connect_failed");
		return STEP_CLOSED;
	}
	return STEP_DONE;
}

/* Connect to the checked addresses; upstream.c keeps connect_timeout itself. */
static enum step
conn_start_connect(struct conn *c)
{
	evtimer_del(c->timer);
	c->up_status = 0;
	c->up_reason = NULL;
	c->up_req = upstream_connect(c->env->upstream, c->addrs, c->conf->connect_timeout,
	    on_connected, c);
	if (c->up_req == NULL) {
		conn_fail(c, 500, "connect_failed");
		return STEP_CLOSED;
	}
	return STEP_DONE;
}

static bool
conn_server_reusable(struct conn *c)
{
	return c->server != NULL && !c->is_connect && c->server_port == c->port &&
	    strcmp(c->server_host, c->host) == 0;
}

/* The request goes out on the origin connection the last one left open. */
static void
conn_reuse_server(struct conn *c)
{
	c->server_reused = true;
	str_copy(c->dst_ip, sizeof(c->dst_ip), c->server_ip);
	conn_forward_start(c);
}

/* Absolute-form: the socket upstream.c connected becomes the origin connection. */
static enum step
conn_open_server(struct conn *c)
{
	c->server = conn_socket_bev(c, c->sfd);
	c->server_rev = event_new(c->base, c->sfd, EV_READ | EV_PERSIST, on_server_readable, c);
	if (c->server == NULL || c->server_rev == NULL) {
		conn_fail(c, 500, "connect_failed");
		return STEP_CLOSED;
	}
	str_copy(c->server_host, sizeof(c->server_host), c->host);
	c->server_port = c->port;
	str_copy(c->server_ip, sizeof(c->server_ip), c->dst_ip);
	conn_forward_start(c);
	return STEP_DONE;
}

/* A kept origin connection closed under the request: set up to send it again. */
static enum step
conn_start_retry(struct conn *c)
{
	conn_release_server(c);
	c->server_reused = false;
	return conn_start_resolve(c);
}

/* CONNECT: the tunnel is open for the client. */
static void
conn_answer_connect(struct conn *c)
{
	c->status = 200;
	evbuffer_add_printf(bufferevent_get_output(c->client),
	    "HTTP/1.1 200 Connection established\r\n\r\n");
	stats_setup_time(c->env->stats, clock_mono_us() - c->start_us);
}

/* Hold the client's bytes (those that came with the head first): the
 * destination gets none until they are judged, within sni_timeout. */
static void
conn_start_sni_peek(struct conn *c)
{
	conn_client_read_limit(c, SNI_MAX_HELLO);
	conn_client_reading(c, true);
	conn_arm_timer(c, c->conf->sni_timeout);
}

/* The hello went on: the server's first message is awaited for sni_timeout. */
static void
conn_start_server_hello_wait(struct conn *c)
{
	evtimer_del(c->timer);
	conn_arm_timer(c, c->conf->sni_timeout);
	sock_in_set(&c->sni_in, true, SNI_MAX_HELLO);  /* writes: conn_settle_io */
}

/* A HelloRetryRequest: the client answers with another ClientHello, held
 * (the server hears nothing more) until it is judged. */
static void
conn_start_second_hello_wait(struct conn *c)
{
	sock_in_set(&c->sni_in, false, SNI_MAX_HELLO);
	conn_sni_pass_down(c);
	evtimer_del(c->timer);
	conn_arm_timer(c, c->conf->sni_timeout);
}

/* List the tunnel for egressctl; a failure only hides it from the list. */
static void
conn_register_tunnel(struct conn *c)
{
	struct stats_tunnel t;
	struct timespec now;

	conn_record_id(c, t.id);
	str_copy(t.user, sizeof(t.user), c->user != NULL ? c->user : "");
	str_copy(t.client_ip, sizeof(t.client_ip), c->client_ip);
	t.client_port = c->client_port;
	str_copy(t.host, sizeof(t.host), c->host);
	t.port = c->port;
	str_copy(t.dst_ip, sizeof(t.dst_ip), c->dst_ip);
	str_copy(t.sni, sizeof(t.sni), c->sni);
	t.bytes_up = t.bytes_down = 0;
	clock_gettime(CLOCK_REALTIME, &now);
	t.start_ms = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000 -
	    (clock_mono_ms() - c->start_ms);
	c->tunnel = stats_tunnel_add(c->env->stats, &t, c->relay);
}

/* A TLS client's bytes go through its bufferevent (and OpenSSL): no fd relay. */
static void
conn_start_tls_relay(struct conn *c, uint64_t up_moved, uint64_t down_moved)
{
	struct timeval tv = { c->conf->idle_timeout, 0 };

	c->relay = relay_new_bev(c->base, c->client, c->sfd, on_relay_done, c,
	    &c->last_activity_ms);
	if (c->relay == NULL) {
		conn_close(c, "error");
		return;
	}
	relay_add_bytes(c->relay, up_moved, down_moved);
	evtimer_add(c->timer, &tv);
	conn_register_tunnel(c);
}

static void
conn_start_relay(struct conn *c)
{
	struct evbuffer *in = bufferevent_get_input(c->client);
	struct evbuffer *out = bufferevent_get_output(c->client);
	struct timeval tv = { c->conf->idle_timeout, 0 };
	uint64_t up_moved = c->bytes_up, down_moved = c->bytes_down;
	size_t up_len, down_len;

	free(c->target);                /* a tunnel's record is not a bad_request */
	c->target = NULL;
	c->target_len = 0;

	/*
	 * After an SNI check that watched the server's answer, what it has not
	 * yet taken of the hellos goes first, and what it sent that the client
	 * has not seen goes after the 200.  The relay counts its up prefix;
	 * the rest of the bytes moved so far are added to its counters, so each
	 * payload byte is counted once (the 200 is not payload).
	 */
	if (c->sni_server != NULL) {
		struct evbuffer *s_out = bufferevent_get_output(c->sni_server);
		struct evbuffer *s_in = bufferevent_get_input(c->sni_server);

		up_moved -= evbuffer_get_length(s_out);
		down_moved += evbuffer_get_length(s_in);
		/* A bufferevent freezes the start of its output: the bytes are
		 * taken here, as the bufferevent is freed right after. */
		evbuffer_unfreeze(s_out, 1);
		if (evbuffer_prepend_buffer(in, s_out) == -1 || evbuffer_add_buffer(out, s_in) == -1) {
			conn_close(c, "error");
			return;
		}
		sock_in_release(&c->sni_in);
		bufferevent_free(c->sni_server);
		c->sni_server = NULL;
	}
	if (c->tls) {
		conn_start_tls_relay(c, up_moved, down_moved);
		return;
	}
	up_len = evbuffer_get_length(in);
	down_len = evbuffer_get_length(out);
	/* The relay takes over both sockets; bytes that came with the CONNECT
	 * head are the first tunnel bytes, and the 200 still unwritten goes first. */
	c->relay = relay_new(c->base, c->cfd, c->sfd, evbuffer_pullup(in, -1), up_len,
	    evbuffer_pullup(out, -1), down_len, on_relay_done, c, &c->last_activity_ms);
	sock_in_release(&c->client_in);
	bufferevent_free(c->client);
	c->client = NULL;
	if (c->relay == NULL) {
		conn_close(c, "error");
		return;
	}
	relay_add_bytes(c->relay, up_moved, down_moved);
	evtimer_add(c->timer, &tv);
	conn_register_tunnel(c);
}

/* ---- what the callbacks recorded ---------------------------------------- */

/*
 * The current wait's deadline passed.  Most waits end here with their
 * answer; the SNI check judges what it has; an active tunnel or exchange
 * only ends when it has been idle for idle_timeout (activity does not re-arm
 * the timer on every byte, it is compared here).
 */
static void
conn_deadline_passed(struct conn *c)
{
	int64_t idle_ms, left;
	struct timeval tv;

	switch (c->state) {
	case CONN_PROXY_HEADER:
	case CONN_READ_REQUEST:
		if (c->in_request)
			conn_fail_head(c, 0, "idle_timeout");
		else
			conn_close(c, "idle_timeout");
		return;
	case CONN_SNI_PEEK:
	case CONN_SNI_SECOND_HELLO:
		c->sni_final = true;
		return;
	case CONN_AUTHENTICATING:
		log_warnx("conn=%016" PRIx64 " event=auth-timeout reason=\"no answer from the "
		    "authentication pool within %d s (%d x ldap_timeout)\"", c->id,
		    AUTH_WAIT_OPERATIONS * c->conf->ldap_timeout, AUTH_WAIT_OPERATIONS);
		conn_fail(c, 503, "auth_unavailable");
		return;
	case CONN_RESOLVING:
		log_warnx("conn=%016" PRIx64 " host=%s event=dns-timeout reason=\"no DNS answer "
		    "within connect_timeout (%d s)\"", c->id, c->host, c->conf->connect_timeout);
		conn_fail(c, 502, "dns_failure");
		return;
	case CONN_SNI_SERVER_HELLO:
		/* What the client sent after its hello is held until the server's
		 * first message tells whether it is another ClientHello: without
		 * that answer, nothing more goes through. */
		log_info("conn=%016" PRIx64 " host=%s event=sni-server-silent why=\"%s\"", c->id,
		    c->host, "no ServerHello within sni_timeout");
		conn_close(c, "idle_timeout");
		return;
	case CONN_RELAYING:
	case CONN_FORWARDING:
		idle_ms = (int64_t)c->conf->idle_timeout * 1000;
		left = c->last_activity_ms + idle_ms - clock_mono_coarse_ms();
		if (left > 0) {
			tv.tv_sec = left / 1000;
			tv.tv_usec = (left % 1000) * 1000;
			evtimer_add(c->timer, &tv);
			return;
		}
		if (c->state == CONN_FORWARDING && !c->resp_head_done) {
			/* Connected, but the origin has not begun its response: the
			 * contract's reason is connect_timeout; the log says what. */
			log_warnx("conn=%016" PRIx64 " host=%s event=origin-timeout reason=\"no "
			    "response head within idle_timeout (%d s)\"", c->id, c->host,
			    c->conf->idle_timeout);
			conn_fail(c, 504, "connect_timeout");
			return;
		}
		conn_close(c, "idle_timeout");
		return;
	case CONN_DECIDING:
	case CONN_CONNECTING:           /* upstream.c keeps connect_timeout */
	case CONN_LINGER:
		return;
	}
}

/*
 * The client's socket reported EOF or an error (what: BEV_EVENT_*).
 * Between requests that is a plain goodbye; in a head, a broken request; in
 * the SNI check, the end of the ClientHello bytes.  A client may half-close
 * once its request is sent (`printf ... | nc`): the response still goes out,
 * then the connection ends.  An error, or EOF in the middle of a request
 * body, ends it now.
 */
static void
conn_client_ended(struct conn *c, short what)
{
	bool eof = (what & BEV_EVENT_EOF) && !(what & BEV_EVENT_ERROR);

	switch (c->state) {
	case CONN_READ_REQUEST:
		if (!c->in_request) {
			if (c->tls && c->nrequests == 0)
				conn_log_tls_end(c, what);
			conn_close(c, "client");
			return;
		}
		FALLTHROUGH;
	case CONN_PROXY_HEADER:
		conn_fail_head(c, 0, "client");
		return;
	case CONN_SNI_PEEK:
	case CONN_SNI_SERVER_HELLO:
	case CONN_SNI_SECOND_HELLO:
		if (!eof)
			break;
		c->sni_final = true;    /* no more ClientHello bytes: judge what there is */
		conn_client_reading(c, false);
		return;
	case CONN_FORWARDING:
		if (!eof || !c->req_body.done)
			break;
		FALLTHROUGH;
	case CONN_AUTHENTICATING:
	case CONN_DECIDING:
	case CONN_RESOLVING:
	case CONN_CONNECTING:
		if (!eof)
			break;
		c->client_eof = true;
		c->client_keep_alive = false;
		conn_client_reading(c, false);
		return;
	case CONN_RELAYING:
	case CONN_LINGER:
		break;
	}
	conn_close(c, "client");
}

/*
 * Act on what the callbacks recorded since the last look.  Returns true if
 * something was done (the states are looked at again), false if nothing
 * was pending.
 */
static bool
conn_take_facts(struct conn *c)
{
	short what;

	if (c->timed_out) {
		c->timed_out = false;
		conn_deadline_passed(c);
		return true;
	}
	if (c->client_event != 0) {
		what = c->client_event;
		c->client_event = 0;
		conn_client_ended(c, what);
		return true;
	}
	if (c->sni_server_event != 0) {
		/* The destination left before the check was done: what it said
		 * reaches the client (conn_close flushes it), nothing more of the
		 * client's reaches it. */
		what = c->sni_server_event;
		c->sni_server_event = 0;
		conn_sni_pass_down(c);
		conn_close(c, (what & BEV_EVENT_ERROR) && !(what & BEV_EVENT_EOF) ?
		    "error" : "server");
		return true;
	}
	if (c->server != NULL && c->state != CONN_FORWARDING && (c->server_eof ||
	    evbuffer_get_length(bufferevent_get_input(c->server)) > 0)) {
		/* The kept origin connection spoke out of turn or left: retire it. */
		conn_release_server(c);
		return true;
	}
	return false;
}

/* ---- the state machine ------------------------------------------------ */

/*
 * Write a plain socket's pending output now, not after the loop has reported
 * the socket writable: a head or a small response then costs one system call
 * instead of two changes of the epoll set and another trip through the loop.
 * A plain socket's EV_WRITE is on only while libevent holds bytes the socket
 * would not take (nothing else enables it): then libevent goes on writing
 * them.  With nothing left EV_WRITE goes off, which withdraws an add still
 * pending in the loop's change list before it reaches the kernel.  Returns
 * true when it made room a state may be waiting for (the output was at
 * BODY_HIGH_WM or more and is below it now).
 */
static bool
conn_write_now(struct bufferevent *bev)
{
	struct evbuffer *out = bufferevent_get_output(bev);
	size_t before = evbuffer_get_length(out), len = before;
	bool writing = (bufferevent_get_enabled(bev) & EV_WRITE) != 0;

	if (len > 0 && !writing) {
		/* A bufferevent keeps the start of its output frozen between its
		 * own writes; this is one of them. */
		evbuffer_unfreeze(out, 1);
		(void)evbuffer_write(out, bufferevent_getfd(bev));
		evbuffer_freeze(out, 1);
		/* Full, or an error: libevent's write sees it again and reports
		 * an error through the event callback as it always does. */
		len = evbuffer_get_length(out);
		if (len > 0)
			bufferevent_enable(bev, EV_WRITE);
	} else if (len == 0 && writing)
		bufferevent_disable(bev, EV_WRITE);
	return before >= BODY_HIGH_WM && len < BODY_HIGH_WM;
}

/*
 * The states between a request and its forwarding read nothing from the
 * client, but its reading stays on while nothing comes (turning it off and
 * on again for every request costs two epoll changes); bytes that do come
 * (the next pipelined request, an early ClientHello, a body) stop it until
 * a state wants them.  EOF and errors are seen meanwhile: conn_client_ended.
 */
static void
conn_hold_client(struct conn *c)
{
	switch (c->state) {
	case CONN_AUTHENTICATING:
	case CONN_DECIDING:
	case CONN_RESOLVING:
	case CONN_CONNECTING:
		break;
	case CONN_FORWARDING:
		if (c->req_body.done)
			break;
		return;
	default:
		return;
	}
	if (evbuffer_get_length(bufferevent_get_input(c->client)) > 0)
		conn_client_reading(c, false);
}

/* The loop is about to wait: write what is ready, hold what came early.
 * Returns true when room was made (conn_write_now). */
static bool
conn_settle_io(struct conn *c)
{
	bool room = false;

	if (c->closing)
		return false;
	if (c->client != NULL) {
		/* A TLS client's bufferevent writes through OpenSSL itself. */
		if (!c->tls)
			room |= conn_write_now(c->client);
		conn_hold_client(c);
		sock_in_watch(&c->client_in);   /* the input may have drained */
	}
	if (c->server != NULL)
		room |= conn_write_now(c->server);
	if (c->sni_server != NULL) {
		(void)conn_write_now(c->sni_server);
		sock_in_watch(&c->sni_in);
	}
	return room;
}

/*
 * The only place a connection's state changes (besides conn_close).  Each
 * case does its state's work; when the work is done it enters the next
 * state and the loop goes on, when it must wait it breaks out of the switch
 * and the loop ends (unless a callback fired meanwhile).  Facts recorded by
 * the callbacks are taken first.  A call made while the loop runs (a step set
 * off a callback) only asks the running loop to look again.
 */
static void
conn_run(struct conn *c)
{
	enum step s;

	if (c->running) {
		c->rerun = true;
		return;
	}
	c->running = true;
	while (!c->closing) {
		if (conn_take_facts(c))
			continue;
		switch (c->state) {
		case CONN_PROXY_HEADER:
			if (conn_read_proxy_header(c) != STEP_DONE)
				break;
			conn_enter(c, CONN_READ_REQUEST);
			/* proxy_protocol tls: the handshake follows the header
			 * (a failure closed the connection: the loop ends) */
			if (c->tls)
				(void)conn_tls_wrap_filter(c);
			continue;
		case CONN_READ_REQUEST:
			if (c->draining && c->nrequests > 0 &&
			    evbuffer_get_length(bufferevent_get_input(c->client)) == 0) {
				/* Idle between requests while draining (a first
				 * request is still awaited: see conn_shutdown). */
				conn_close(c, "shutdown");
				continue;
			}
			if (conn_read_request(c) != STEP_DONE)
				break;
			/* Reading stays on: conn_settle_io holds what comes next. */
			if (conn_admit(c) != STEP_DONE)
				continue;
			conn_enter(c, CONN_AUTHENTICATING);
			continue;
		case CONN_AUTHENTICATING:
			if (conn_authenticate(c) != STEP_DONE)
				break;
			conn_enter(c, CONN_DECIDING);
			continue;
		case CONN_DECIDING:
			if (conn_decide(c) != STEP_DONE)
				continue;
			if (conn_server_reusable(c)) {
				conn_reuse_server(c);
				conn_enter(c, CONN_FORWARDING);
				continue;
			}
			conn_release_server(c);
			if (conn_start_resolve(c) != STEP_DONE)
				continue;
			conn_enter(c, CONN_RESOLVING);
			continue;
		case CONN_RESOLVING:
			if (c->up_req != NULL)
				break;                  /* on_resolved tells */
			if (c->up_status != 0) {
				conn_fail(c, c->up_status, c->up_reason);
				continue;
			}
			if (conn_start_connect(c) != STEP_DONE)
				continue;
			conn_enter(c, CONN_CONNECTING);
			continue;
		case CONN_CONNECTING:
			if (c->up_req != NULL)
				break;                  /* on_connected tells */
			/* The address list (2 KiB) is not needed past the connect:
			 * a tunnel should cost only what it uses while it lasts. */
			upstream_addrs_free(c->addrs);
			c->addrs = NULL;
			if (c->up_status != 0) {
				conn_fail(c, c->up_status, c->up_reason);
				continue;
			}
			if (!c->is_connect) {
				/* absolute-form */
				if (conn_open_server(c) != STEP_DONE)
					continue;
				conn_enter(c, CONN_FORWARDING);
				continue;
			}
			conn_answer_connect(c);
			if (c->decision.sni == POLICY_SNI_OFF) {
				conn_enter(c, CONN_RELAYING);
				conn_start_relay(c);
				continue;
			}
			conn_start_sni_peek(c);
			conn_enter(c, CONN_SNI_PEEK);
			continue;
		case CONN_FORWARDING:
			s = conn_forward(c);
			if (s == STEP_RETRY) {
				/* The kept connection was closed by the origin: the
				 * request goes out again on a new one (safe methods
				 * only, see conn_may_retry). */
				if (conn_start_retry(c) != STEP_DONE)
					continue;
				conn_enter(c, CONN_RESOLVING);
				continue;
			}
			if (s != STEP_DONE)
				break;
			/* The next request may already be buffered (pipelining). */
			conn_enter(c, CONN_READ_REQUEST);
			continue;
		case CONN_SNI_PEEK:
			if (conn_sni_judge(c, false) != STEP_DONE)
				break;
			if (!c->sni_hello) {
				/* sni=optional and plainly not TLS, or nothing came */
				conn_enter(c, CONN_RELAYING);
				conn_start_relay(c);
				continue;
			}
			if (conn_sni_pass_hello(c) != STEP_DONE)
				continue;
			conn_start_server_hello_wait(c);
			conn_enter(c, CONN_SNI_SERVER_HELLO);
			continue;
		case CONN_SNI_SERVER_HELLO:
			if (conn_sni_server_hello(c) != STEP_DONE)
				break;
			if (!c->sni_hrr) {
				conn_enter(c, CONN_RELAYING);
				conn_start_relay(c);
				continue;
			}
			conn_start_second_hello_wait(c);
			conn_enter(c, CONN_SNI_SECOND_HELLO);
			continue;
		case CONN_SNI_SECOND_HELLO:
			if (conn_sni_judge(c, true) != STEP_DONE)
				break;
			if (conn_sni_pass_hello(c) != STEP_DONE)
				continue;
			conn_enter(c, CONN_RELAYING);
			conn_start_relay(c);
			continue;
		case CONN_RELAYING:
			if (c->relay_ended) {
				conn_close(c, c->relay_end == RELAY_END_CLIENT ? "client" : "server");
				continue;
			}
			break;
		case CONN_LINGER:
			break;
		}
		/* Waiting: what is ready goes out now (room it made may let the
		 * state go on).  Unless a callback fired while the loop ran. */
		if (conn_settle_io(c))
			c->rerun = true;
		if (!c->rerun)
			break;
		c->rerun = false;
	}
	c->running = false;
}

/* ---- callbacks: record the fact, then conn_run() ---------------------- */

static void
on_resolved(const struct upstream_result *res, void *arg)
{
	struct conn *c = arg;

	c->up_req = NULL;
	c->up_status = res->status;
	c->up_reason = res->reason;
	if (res->status != 0)
		str_copy(c->dst_ip, sizeof(c->dst_ip), res->dst_ip);
	else
		c->addrs = res->addrs;
	conn_run(c);
}

static void
on_connected(const struct upstream_result *res, void *arg)
{
	struct conn *c = arg;

	c->up_req = NULL;
	c->up_status = res->status;
	c->up_reason = res->reason;
	str_copy(c->dst_ip, sizeof(c->dst_ip), res->dst_ip);
	if (res->status == 0)
		c->sfd = res->fd;
	conn_run(c);
}

static void
on_auth_done(const struct auth_result *res, void *arg)
{
	struct conn *c = arg;

	c->auth_req = NULL;
	/* auth/ keeps no timings: a directory exchange is measured from here. */
	stats_ldap_time(c->env->stats, clock_mono_us() - c->auth_began_us);
	conn_store_auth(c, res);
	conn_run(c);
}

static void
on_relay_done(enum relay_end who, void *arg)
{
	struct conn *c = arg;

	c->relay_ended = true;
	c->relay_end = who;
	conn_run(c);
}

static void
on_client_read(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;

	c->last_activity_ms = clock_mono_coarse_ms();
	conn_run(c);
	(void)bev;
}

/* The client drained below the low watermark: a response may go on. */
static void
on_client_write(struct bufferevent *bev, void *arg)
{
	conn_run(arg);
	(void)bev;
}

static void
on_client_event(struct bufferevent *bev, short what, void *arg)
{
	struct conn *c = arg;

	if (what & BEV_EVENT_CONNECTED)
		return;         /* a tls listener's handshake is done: the request comes next */
	if (c->tls && (what & BEV_EVENT_EOF))
		tls_bev_keep_writing(bev);      /* a half-close: the response still goes out */
	c->client_event = what;
	conn_run(c);
}

/* The destination during the SNI check: a write failed (its reads:
 * on_sock_in_readable). */
static void
on_sni_server_event(struct bufferevent *bev, short what, void *arg)
{
	struct conn *c = arg;

	c->sni_server_event = what;
	conn_run(c);
	(void)bev;
}

/*
 * The origin is readable: response bytes, or (kept between requests) bytes
 * out of turn or its EOF.  Read in large pieces (bigread.h); until the head
 * is complete the input holds at most one byte past HTTP_HEAD_MAX, which is
 * how a head too large is told.
 */
static void
on_server_readable(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	struct evbuffer *in = bufferevent_get_input(c->server);
	size_t len = evbuffer_get_length(in), max = FORWARD_READ_MAX;
	ssize_t n;

	if (!c->resp_head_done)
		max = len > HTTP_HEAD_MAX ? 0 : HTTP_HEAD_MAX + 1 - len < max ?
		    HTTP_HEAD_MAX + 1 - len : max;
	/* A bufferevent keeps the end of its input frozen between its own reads;
	 * this is one of them. */
	evbuffer_unfreeze(in, 0);
	n = max > 0 ? bigread(in, fd, max) : 0;
	evbuffer_freeze(in, 0);
	if (n > 0)
		c->last_activity_ms = clock_mono_coarse_ms();
	else if (n == -1 && errno == EAGAIN && max > 0)
		return;
	else if (max == 0)
		conn_server_reading(c, false);  /* the head is too large: conn_run says so */
	else {
		c->server_eof = true;           /* EOF, or an error that ends it the same way */
		conn_server_reading(c, false);
	}
	conn_run(c);
	(void)what;
}

/* What a read of a plain socket (sock_in_read) tells, as a bufferevent event:
 * 0 for bytes, -1 for nothing yet. */
static short
sock_in_event(ssize_t n)
{
	if (n > 0)
		return 0;
	if (n == -1 && errno == EAGAIN)
		return -1;
	return BEV_EVENT_READING | (n == 0 ? BEV_EVENT_EOF : BEV_EVENT_ERROR);
}

/* A plain client, or the destination during the SNI check (its first
 * message), is readable (struct sock_in). */
static void
on_sock_in_readable(evutil_socket_t fd, short what, void *arg)
{
	struct sock_in *r = arg;
	short ev = sock_in_event(sock_in_read(r, fd));

	if (ev == -1)
		return;
	if (ev == 0)
		r->conn->last_activity_ms = clock_mono_coarse_ms();
	*r->event = ev;
	conn_run(r->conn);
	(void)what;
}

static void
on_server_write(struct bufferevent *bev, void *arg)
{
	conn_run(arg);
	(void)bev;
}

static void
on_server_event(struct bufferevent *bev, short what, void *arg)
{
	struct conn *c = arg;

	c->server_eof = true;
	conn_run(c);
	(void)bev;
	(void)what;
}

static void
on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;

	c->timed_out = true;
	conn_run(c);
	(void)fd;
	(void)what;
}

/* ---- birth and shutdown ------------------------------------------------ */

/*
 * A tls listener: the handshake runs inside the bufferevent, under the header
 * deadline already armed (a stalled handshake is cut like a slow head; a
 * failed one is an error event before any request: no record).  The SSL and
 * the socket belong to the bufferevent from here on.
 */
static int
conn_tls_wrap_socket(struct conn *c)
{
	struct tls *t = c->env->gw->tls;

	if (t == NULL || (c->client = tls_bev_socket(t, c->base, c->cfd)) == NULL) {
		log_warnx("conn=%016" PRIx64 " event=tls-error reason=\"%s\"", c->id,
		    tls_last_error());
		return -1;
	}
	c->cfd = -1;    /* closed with the bufferevent */
	return 0;
}

/*
 * proxy_protocol tls: the PROXY header was read in clear; what follows it
 * (already buffered, usually the ClientHello) is the TLS stream, so the TLS
 * bufferevent is stacked on the plain one, which it owns from now on.
 * Returns 0, or -1 once the connection is closed.
 */
static int
conn_tls_wrap_filter(struct conn *c)
{
	struct tls *t = c->env->gw->tls;
	struct bufferevent *bev = t != NULL ? tls_bev_filter(t, c->base, c->client) : NULL;

	if (bev == NULL) {
		conn_close(c, "error");
		return -1;
	}
	c->client = bev;
	bufferevent_setcb(c->client, on_client_read, on_client_write, on_client_event, c);
	conn_client_read_limit(c, HTTP_HEAD_MAX + 1);
	bufferevent_enable(c->client, EV_READ | EV_WRITE);
	return 0;
}

void
conn_new(struct conn_env *env, int fd, const struct sockaddr *peer, socklen_t peerlen,
    bool proxy_protocol, bool tls, bool over_capacity)
{
	struct gateway *gw = env->gw;
	struct conn *c;

	if ((c = calloc(1, sizeof(*c))) == NULL ||
	    (c->free_ev = event_new(env->base, -1, 0, on_free_deferred, c)) == NULL) {
		log_warnx("event=conn-refused reason=\"out of memory\"");
		free(c);
		close(fd);
		atomic_fetch_sub(&gw->open_conns, 1);
		return;
	}
	c->env = env;
	c->base = env->base;
	c->conf = env->conf;
	c->id = gw->id_base + atomic_fetch_add(&gw->next_conn_id, 1);
	c->cfd = fd;
	c->sfd = -1;
	c->over_capacity = over_capacity;
	c->tls = tls;
	c->state = proxy_protocol ? CONN_PROXY_HEADER : CONN_READ_REQUEST;
	netaddr_ntop(peer, c->client_ip, sizeof(c->client_ip));
	c->client_port = netaddr_port(peer);
	(void)peerlen;
	TAILQ_INSERT_TAIL(&env->conns, c, entry);
	env->nconns++;
	stats_conn_open(env->stats);

	c->timer = evtimer_new(c->base, on_timer, c);
	if (tls && !proxy_protocol) {
		if (conn_tls_wrap_socket(c) == -1)
			c->client = NULL;
	} else if ((c->client = conn_socket_bev(c, fd)) != NULL && !tls)
		(void)sock_in_open(&c->client_in, c, c->client, fd, &c->client_event);
	if (c->timer == NULL || c->client == NULL || (!tls && c->client_in.ev == NULL)) {
		conn_close(c, "error");
		return;
	}
	bufferevent_setcb(c->client, on_client_read, on_client_write, on_client_event, c);
	/* The head must fit in 64 KiB: reading stops one byte past that bound. */
	conn_client_read_limit(c, HTTP_HEAD_MAX + 1);
	/* A plain socket's writes are started by conn_settle_io when there is
	 * something to write; OpenSSL's handshake needs both directions, and
	 * reads through the bufferevent (a PROXY header, then TLS, too). */
	if (tls)
		bufferevent_enable(c->client, EV_READ | EV_WRITE);
	else
		conn_client_reading(c, true);
	/* The header deadline is total: trickled bytes do not extend it. */
	conn_arm_timer(c, c->conf->header_timeout);
}

static void
conn_shutdown(struct conn *c, bool now)
{
	if (c->closing)
		return;
	c->draining = true;
	if (now) {
		conn_close(c, "shutdown");
		return;
	}
	/* Idle between requests: nothing is lost by closing now.  A connection
	 * that has not read its first request yet (taken from the backlog at
	 * the drain) gets to make it, within header_timeout. */
	if ((c->state == CONN_READ_REQUEST || c->state == CONN_PROXY_HEADER) && !c->in_request &&
	    c->nrequests > 0)
		conn_close(c, "shutdown");
}

void
conn_shutdown_all(struct conn_env *env, bool now)
{
	struct conn *c, *next;

	/* Each one closed gets its audit record on the way out; its memory is
	 * freed from the loop later, so the walk stays valid. */
	for (c = TAILQ_FIRST(&env->conns); c != NULL; c = next) {
		next = TAILQ_NEXT(c, entry);
		conn_shutdown(c, now);
	}
}
