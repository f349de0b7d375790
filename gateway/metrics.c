/*
 * metrics — the Prometheus endpoint: GET /metrics, text format 0.0.4.
 *
 * A small HTTP/1.x responder on the main loop serves it (one request per
 * connection, then close), so that it can do what evhttp cannot: cap the
 * scrapers served at once and rest, rather than spin, when accept() runs out
 * of descriptors.  The points where scrapers are strict: every family has one
 * # HELP and one # TYPE line before its samples, counters end in _total,
 * histogram buckets are cumulative with le="+Inf" equal to _count, and label
 * values are escaped.  Bounds keep a hostile scraper cheap: heads over 8 KiB,
 * bodies and slow clients are refused, at most METRICS_CLIENTS_MAX are served
 * at once, and every answer is a fresh snapshot built on the main thread
 * (workers are never asked anything).
 */
#include "gateway/metrics.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "gateway/control.h"
#include "gateway/log.h"
#include "config/netaddr.h"
#include "policy/policy.h"

#define METRICS_TIMEOUT 5           /* seconds for a scrape's request and response */
#define METRICS_HEADERS_MAX 8192
#define METRICS_CLIENTS_MAX 16      /* scrapers served at once (as admin clients) */
#define METRICS_PAUSE_MS 200        /* accepting rests this long when out of descriptors */
#define METRICS_LOG_MS 10000        /* at most one accept-paused line this often */

struct metrics_client {
	TAILQ_ENTRY(metrics_client) entry;
	struct metrics *m;
	struct bufferevent *bev;
	struct event *deadline;         /* the whole exchange, from accept */
	bool answered;                  /* the response is queued: only writing is left */
};

struct metrics {
	struct event_base *base;
	int fd;
	struct event *accept_ev;
	struct event *resume_ev;        /* re-arms accept_ev after a pause */
	TAILQ_HEAD(, metrics_client) clients;
	size_t nclients;
	metrics_report_fn *report;
	metrics_health_fn *health;
	void *arg;
};

static struct log_rate metrics_log_rate;

static const int64_t bounds_us[STATS_HIST_NBOUNDS] = STATS_HIST_BOUNDS_US;

static void
family(FILE *f, const char *name, const char *type, const char *help)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void
one(FILE *f, const char *name, const char *type, const char *help, uint64_t v)
{
	family(f, name, type, help);
	fprintf(f, "%s %" PRIu64 "\n", name, v);
}

/* The transport's own counters: RELP acknowledgements, datagrams possibly lost. */
static void
audit_metrics(FILE *f, const struct audit_stats *st)
{
	one(f, "egressd_audit_records_acked_total", "counter",
	    "RELP: audit records the receiver acknowledged.", st->acked);
	one(f, "egressd_audit_records_unacked", "gauge",
	    "RELP: audit records sent, acknowledgement not seen yet.", st->unacked);
	one(f, "egressd_audit_records_resent_total", "counter",
	    "RELP: audit records sent again after a reconnect (possible duplicates).", st->resent);
	one(f, "egressd_audit_records_possibly_lost_total", "counter",
	    "Datagram: audit records sent but unread when the reader went away.",
	    st->possibly_lost_total);
}

static void
histogram(FILE *f, const char *name, const char *help, const struct stats_hist *h)
{
	uint64_t cum = 0;
	size_t i;

	family(f, name, "histogram", help);
	for (i = 0; i < STATS_HIST_NBOUNDS; i++) {
		cum += h->buckets[i];
		fprintf(f, "%s_bucket{le=\"%g\"} %" PRIu64 "\n", name, (double)bounds_us[i] / 1e6,
		    cum);
	}
	cum += h->buckets[STATS_HIST_NBOUNDS];
	fprintf(f, "%s_bucket{le=\"+Inf\"} %" PRIu64 "\n", name, cum);
	fprintf(f, "%s_sum %.6f\n", name, (double)h->sum_us / 1e6);
	fprintf(f, "%s_count %" PRIu64 "\n", name, cum);
}

/* A label value as the text format wants it: \\, \" and \n escaped. */
static void
label_value(FILE *f, const char *s)
{
	for (; *s != '\0'; s++) {
		if (*s == '\\' || *s == '"')
			fputc('\\', f);
		if (*s == '\n') {
			fputs("\\n", f);
			continue;
		}
		fputc(*s, f);
	}
}

/*
 * The domain lists' size and the mode=report rules' matches: one series per
 * report rule of the policy in force, by its FILE:LINE.  The counts belong
 * to that policy, so they start again at zero when a reload replaces it.
 */
static void
policy_metrics(FILE *f, const struct policy *p)
{
	const char *ref;
	uint64_t n;
	size_t i, nr = policy_report_rules(p);

	one(f, "egressd_policy_list_entries", "gauge",
	    "Entries of the @FILE domain lists of the policy in force.", policy_entry_count(p));
	family(f, "egressd_policy_report_matches_total", "counter",
	    "Requests whose record names this mode=report rule (it would have denied them), "
	    "since the policy in force was loaded.");
	for (i = 0; i < nr; i++) {
		ref = policy_report_rule(p, i, &n);
		fputs("egressd_policy_report_matches_total{rule=\"", f);
		label_value(f, ref);
		fprintf(f, "\"} %" PRIu64 "\n", n);
	}
}

char *
metrics_render(const struct control_report *r)
{
	char *buf = NULL;
	size_t len = 0, i;
	FILE *f;

	if ((f = open_memstream(&buf, &len)) == NULL)
		return NULL;
	family(f, "egressd_build_info", "gauge", "The egressd version running (always 1).");
	/* The version is ours (a make variable), never client text: no escaping needed. */
	fprintf(f, "egressd_build_info{version=\"%s\"} 1\n", r->version);
	family(f, "egressd_start_time_seconds", "gauge", "When the daemon started, Unix time.");
	fprintf(f, "egressd_start_time_seconds %.3f\n", (double)r->start_ms / 1000.0);
	one(f, "egressd_workers", "gauge", "Worker threads.", (uint64_t)r->workers);

	one(f, "egressd_connections_accepted_total", "counter",
	    "Client connections accepted.", r->t.conns_accepted);
	one(f, "egressd_proxy_protocol_refused_total", "counter",
	    "Connections closed unanswered at accept: a proxy_protocol listener reached from "
	    "outside proxy_protocol_from.", r->t.proxy_refused);
	one(f, "egressd_client_aborted_total", "counter",
	    "Requests whose client left before its head was complete (recorded as bad_request, "
	    "not counted as decisions).", r->t.client_aborted);
	one(f, "egressd_connections_open", "gauge", "Client connections open.",
	    r->t.conns_open);
	one(f, "egressd_tunnels_open", "gauge", "CONNECT tunnels relaying now.",
	    r->t.tunnels_open);
	one(f, "egressd_tunnels_total", "counter", "CONNECT tunnels that started relaying.",
	    r->t.tunnels_total);

	family(f, "egressd_requests_total", "counter",
	    "Tunnels and requests ended (one audit record each), by kind.");
	fprintf(f, "egressd_requests_total{kind=\"tunnel\"} %" PRIu64 "\n", r->t.records_tunnel);
	fprintf(f, "egressd_requests_total{kind=\"request\"} %" PRIu64 "\n",
	    r->t.records_request);
	family(f, "egressd_decisions_total", "counter",
	    "Tunnels and requests ended, by audit decision and reason.");
	for (i = 0; i < STATS_NREASONS; i++)
		fprintf(f, "egressd_decisions_total{decision=\"%s\",reason=\"%s\"} %" PRIu64 "\n",
		    i == STATS_REASON_ok ? "allow" : "deny", stats_reason_names[i],
		    r->t.decisions[i]);
	family(f, "egressd_bytes_total", "counter",
	    "Payload bytes relayed (ended records and open tunnels), by direction.");
	fprintf(f, "egressd_bytes_total{direction=\"up\"} %" PRIu64 "\n", r->t.bytes_up);
	fprintf(f, "egressd_bytes_total{direction=\"down\"} %" PRIu64 "\n", r->t.bytes_down);
	one(f, "egressd_dns_failures_total", "counter", "Requests refused for a DNS failure.",
	    r->t.decisions[STATS_REASON_dns_failure]);
	one(f, "egressd_policy_errors_total", "counter",
	    "Decisions denied because a pattern hit its match limit or failed.",
	    r->t.decisions[STATS_REASON_policy_error]);

	one(f, "egressd_auth_cache_hits_total", "counter",
	    "Authentications answered from the cache.", r->auth.cache_hits);
	one(f, "egressd_auth_cache_misses_total", "counter",
	    "Authentications that needed the directory.", r->auth.cache_misses);
	one(f, "egressd_auth_ldap_errors_total", "counter",
	    "Directory exchanges that failed (unreachable or erroring).", r->auth.ldap_errors);
	one(f, "egressd_auth_cache_entries", "gauge", "Entries in the authentication cache.",
	    r->auth.cache_entries);

	one(f, "egressd_audit_records_sent_total", "counter",
	    "Audit messages accepted by the syslog socket.", r->audit.sent);
	one(f, "egressd_audit_queue_records", "gauge", "Audit records waiting in the queue.",
	    r->audit.queued);
	one(f, "egressd_audit_records_queued_total", "counter",
	    "Audit records that had to wait in the queue.", r->audit.queued_total);
	one(f, "egressd_audit_records_lost_total", "counter",
	    "Audit records lost (the queue overflowed).", r->audit.lost_total);
	one(f, "egressd_audit_connected", "gauge", "1 while the syslog socket is connected.",
	    r->audit.connected ? 1 : 0);
	audit_metrics(f, &r->audit);

	one(f, "egressd_policy_generation", "gauge",
	    "Policies loaded so far (1 = the one at start).", r->policy_generation);
	one(f, "egressd_policy_rules", "gauge", "Rules in the policy in force.", r->policy_rules);
	family(f, "egressd_policy_loaded_timestamp_seconds", "gauge",
	    "When the policy in force was loaded, Unix time.");
	fprintf(f, "egressd_policy_loaded_timestamp_seconds %.3f\n",
	    (double)r->policy_loaded_ms / 1000.0);
	family(f, "egressd_policy_load_duration_seconds", "gauge",
	    "How long reading and compiling the policy in force took.");
	fprintf(f, "egressd_policy_load_duration_seconds %.6f\n",
	    (double)r->policy_load_us / 1e6);

	if (r->policy != NULL)
		policy_metrics(f, r->policy);
	if (r->tls) {
		family(f, "egressd_tls_cert_expiry_timestamp_seconds", "gauge",
		    "When the tls listeners' certificate in force expires (notAfter), Unix time.");
		fprintf(f, "egressd_tls_cert_expiry_timestamp_seconds %" PRId64 "\n",
		    r->tls_cert_expiry);
	}

	histogram(f, "egressd_tunnel_setup_seconds",
	    "CONNECT: first byte of the request to 200 Connection established.", &r->t.setup);
	histogram(f, "egressd_auth_ldap_seconds",
	    "Authentications that went to the directory: time to the answer.", &r->t.ldap);
	if (fclose(f) != 0) {
		free(buf);
		return NULL;
	}
	return buf;
}

/* ---- serving ------------------------------------------------------------- */

/*
 * A scraper's exchange is one request and one response, then close (as
 * Prometheus and curl both accept): read the head up to the blank line,
 * answer from a fresh snapshot, write, close.
 */
static void
client_free(struct metrics_client *cl)
{
	struct metrics *m = cl->m;

	TAILQ_REMOVE(&m->clients, cl, entry);
	m->nclients--;
	if (cl->deadline != NULL)
		event_free(cl->deadline);
	bufferevent_free(cl->bev);      /* closes the socket */
	free(cl);
}

static void
client_reply(struct metrics_client *cl, int code, const char *reason, const char *ctype,
    const char *body, bool head_only)
{
	struct evbuffer *out = bufferevent_get_output(cl->bev);
	size_t len = body != NULL ? strlen(body) : 0;

	evbuffer_add_printf(out, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\n"
	    "Content-Length: %zu\r\nConnection: close\r\n\r\n", code, reason, ctype, len);
	if (!head_only && len > 0)
		evbuffer_add(out, body, len);
	cl->answered = true;
	bufferevent_disable(cl->bev, EV_READ);
	bufferevent_enable(cl->bev, EV_WRITE);
}

static void
client_error(struct metrics_client *cl, int code, const char *reason, const char *text)
{
	client_reply(cl, code, reason, "text/plain; charset=utf-8", text, false);
}

/* Whether a head (NUL-terminated, lines ending in LF) carries a body. */
static bool
head_has_body(const char *head)
{
	const char *p;

	for (p = strchr(head, '\n'); p != NULL && p[1] != '\0'; p = strchr(p + 1, '\n')) {
		if (strncasecmp(p + 1, "Transfer-Encoding:", 18) == 0)
			return true;
		if (strncasecmp(p + 1, "Content-Length:", 15) == 0) {
			const char *v = p + 16;

			while (*v == ' ' || *v == '\t')
				v++;
			if (*v != '0' || (v[1] >= '0' && v[1] <= '9'))
				return true;
		}
	}
	return false;
}

/* A load balancer's check: as cheap as an answer can be, and silent. */
static void
client_health(struct metrics_client *cl, bool head_only)
{
	const char *why = cl->m->health(cl->m->arg);
	char body[256];

	if (why == NULL) {
		client_reply(cl, 200, "OK", "text/plain; charset=utf-8", "ok\n", head_only);
		return;
	}
	snprintf(body, sizeof(body), "%s\n", why);
	client_reply(cl, 503, "Service Unavailable", "text/plain; charset=utf-8", body, head_only);
}

static void
client_request(struct metrics_client *cl, char *head)
{
	struct metrics *m = cl->m;
	struct control_report r;
	char *method, *target, *version, *q, *text, *save = NULL, *line;
	bool head_only;

	line = strtok_r(head, "\r\n", &save);
	if (line == NULL || (method = strtok_r(line, " ", &q)) == NULL ||
	    (target = strtok_r(NULL, " ", &q)) == NULL ||
	    (version = strtok_r(NULL, " ", &q)) == NULL || strtok_r(NULL, " ", &q) != NULL ||
	    strncmp(version, "HTTP/1.", 7) != 0) {
		client_error(cl, 400, "Bad Request", "bad request\n");
		return;
	}
	if ((q = strchr(target, '?')) != NULL)
		*q = '\0';
	head_only = strcmp(method, "HEAD") == 0;
	if ((strcmp(method, "GET") != 0 && !head_only) ||
	    (strcmp(target, "/metrics") != 0 && strcmp(target, "/healthz") != 0)) {
		client_error(cl, 404, "Not Found",
		    "not found: only GET /metrics and GET /healthz are served here\n");
		return;
	}
	if (strcmp(target, "/healthz") == 0) {
		client_health(cl, head_only);
		return;
	}
	memset(&r, 0, sizeof(r));
	m->report(m->arg, &r);
	if ((text = metrics_render(&r)) == NULL) {
		client_error(cl, 500, "Internal Server Error", "out of memory\n");
		return;
	}
	client_reply(cl, 200, "OK", "text/plain; version=0.0.4; charset=utf-8", text, head_only);
	free(text);
}

static void
on_client_read(struct bufferevent *bev, void *arg)
{
	struct metrics_client *cl = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	struct evbuffer_ptr end;
	char head[METRICS_HEADERS_MAX + 1];
	size_t len;

	if (cl->answered)
		return;
	end = evbuffer_search(in, "\n\r\n", 3, NULL);
	if (end.pos == -1)
		end = evbuffer_search(in, "\n\n", 2, NULL);
	if (end.pos == -1 || (size_t)end.pos >= METRICS_HEADERS_MAX) {
		if (end.pos != -1 || evbuffer_get_length(in) >= METRICS_HEADERS_MAX)
			client_error(cl, 431, "Request Header Fields Too Large",
			    "request head too large\n");
		return;
	}
	len = (size_t)end.pos + 1;
	evbuffer_remove(in, head, len);
	head[len] = '\0';
	if (head_has_body(head)) {
		client_error(cl, 413, "Content Too Large", "no request body is accepted here\n");
		return;
	}
	client_request(cl, head);
}

static void
on_client_written(struct bufferevent *bev, void *arg)
{
	struct metrics_client *cl = arg;

	if (cl->answered && evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		client_free(cl);
}

static void
on_client_event(struct bufferevent *bev, short what, void *arg)
{
	struct metrics_client *cl = arg;

	/* A scraper may shut its side once the request is sent: keep writing. */
	if (cl->answered && (what & BEV_EVENT_EOF) && !(what & BEV_EVENT_ERROR) &&
	    evbuffer_get_length(bufferevent_get_output(bev)) > 0)
		return;
	client_free(cl);
}

static void
on_client_deadline(evutil_socket_t fd, short what, void *arg)
{
	client_free(arg);
	(void)fd;
	(void)what;
}

static void
on_resume(evutil_socket_t fd, short what, void *arg)
{
	struct metrics *m = arg;

	event_add(m->accept_ev, NULL);
	(void)fd;
	(void)what;
}

/* Out of descriptors: rest instead of spinning on a readable socket (control.c). */
static void
metrics_accept_failed(struct metrics *m, int e)
{
	struct timeval tv = { 0, METRICS_PAUSE_MS * 1000 };
	uint64_t quiet;

	if (e != EMFILE && e != ENFILE && e != ENOBUFS && e != ENOMEM)
		return;
	if (log_rate_allow(&metrics_log_rate, METRICS_LOG_MS, &quiet))
		log_warnx("event=accept-paused listener=metrics_listen reason=\"%s\" "
		    "pause_ms=%d repeated=%llu", strerror(e), METRICS_PAUSE_MS,
		    (unsigned long long)quiet);
	event_del(m->accept_ev);
	evtimer_add(m->resume_ev, &tv);
}

static void
on_accept(evutil_socket_t lfd, short what, void *arg)
{
	static const char busy[] = "HTTP/1.1 503 Service Unavailable\r\n"
	    "Content-Length: 0\r\nConnection: close\r\n\r\n";
	struct metrics *m = arg;
	struct metrics_client *cl;
	struct timeval tv = { METRICS_TIMEOUT, 0 };
	int fd;

	if ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) == -1) {
		metrics_accept_failed(m, errno);
		return;
	}
	if (m->nclients >= METRICS_CLIENTS_MAX) {
		(void)send(fd, busy, sizeof(busy) - 1, MSG_DONTWAIT | MSG_NOSIGNAL);
		close(fd);
		return;
	}
	if ((cl = calloc(1, sizeof(*cl))) == NULL) {
		close(fd);
		return;
	}
	cl->m = m;
	if ((cl->bev = bufferevent_socket_new(m->base, fd, BEV_OPT_CLOSE_ON_FREE)) == NULL) {
		close(fd);
		free(cl);
		return;
	}
	TAILQ_INSERT_TAIL(&m->clients, cl, entry);
	m->nclients++;
	if ((cl->deadline = evtimer_new(m->base, on_client_deadline, cl)) == NULL) {
		client_free(cl);
		return;
	}
	bufferevent_setcb(cl->bev, on_client_read, on_client_written, on_client_event, cl);
	/* Never hold more than a head's worth of a scraper's bytes. */
	bufferevent_setwatermark(cl->bev, EV_READ, 0, METRICS_HEADERS_MAX);
	bufferevent_enable(cl->bev, EV_READ);
	/* Total, from accept: trickled bytes do not extend it. */
	evtimer_add(cl->deadline, &tv);
	(void)what;
}

static int
metrics_bind(const struct sockaddr *addr, socklen_t len, char **err)
{
	char text[NETADDR_TEXT_MAX];
	int fd, one = 1, e;

	fd = socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd != -1 && setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == 0 &&
	    (addr->sa_family != AF_INET6 ||
	    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) == 0) &&
	    bind(fd, addr, len) == 0 && listen(fd, 64) == 0)
		return fd;
	e = errno;
	netaddr_ntop(addr, text, sizeof(text));
	/* Never SO_REUSEPORT here: a second daemon is refused, never shares. */
	if (asprintf(err, "metrics_listen %s:%d: %s", text, netaddr_port(addr),
	    e == EADDRINUSE ? "address in use (another process listens on it)" :
	    strerror(e)) == -1)
		*err = NULL;
	if (fd != -1)
		close(fd);
	return -1;
}

struct metrics *
metrics_new(struct event_base *base, const struct sockaddr *addr, socklen_t len,
    metrics_report_fn *report, metrics_health_fn *health, void *arg, char **err)
{
	struct metrics *m;

	*err = NULL;
	if ((m = calloc(1, sizeof(*m))) == NULL) {
		*err = strdup("metrics_listen: out of memory");
		return NULL;
	}
	m->base = base;
	m->report = report;
	m->health = health;
	m->arg = arg;
	m->fd = -1;
	TAILQ_INIT(&m->clients);
	if ((m->fd = metrics_bind(addr, len, err)) == -1) {
		metrics_free(m);
		return NULL;
	}
	m->accept_ev = event_new(base, m->fd, EV_READ | EV_PERSIST, on_accept, m);
	m->resume_ev = evtimer_new(base, on_resume, m);
	if (m->accept_ev == NULL || m->resume_ev == NULL || event_add(m->accept_ev, NULL) == -1) {
		metrics_free(m);
		*err = strdup("metrics_listen: cannot watch the socket");
		return NULL;
	}
	return m;
}

void
metrics_free(struct metrics *m)
{
	struct metrics_client *cl;

	if (m == NULL)
		return;
	while ((cl = TAILQ_FIRST(&m->clients)) != NULL)
		client_free(cl);
	if (m->accept_ev != NULL)
		event_free(m->accept_ev);
	if (m->resume_ev != NULL)
		event_free(m->resume_ev);
	if (m->fd != -1)
		close(m->fd);
	free(m);
}
