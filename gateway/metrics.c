/*
 * metrics — the Prometheus endpoint: GET /metrics, text format 0.0.4.
 *
 * evhttp on the main loop does the HTTP; this file renders the numbers.  The
 * points where scrapers are strict: every family has one # HELP and one
 * # TYPE line before its samples, counters end in _total, histogram buckets
 * are cumulative with le="+Inf" equal to _count, and label values are
 * escaped.  Bounds keep a hostile scraper cheap: heads over 8 KiB, bodies and
 * slow clients are refused by evhttp, and every answer is a fresh snapshot
 * built on the main thread (workers are never asked anything).
 */
#include "gateway/metrics.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>

#include "gateway/control.h"
#include "gateway/netaddr.h"

#define METRICS_TIMEOUT 5           /* seconds for a scrape's request and response */
#define METRICS_HEADERS_MAX 8192
#define METRICS_BODY_MAX 1024

struct metrics {
	struct evhttp *http;
	metrics_report_fn *report;
	void *arg;
};

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

static void
on_request(struct evhttp_request *req, void *arg)
{
	struct metrics *m = arg;
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	struct control_report r;
	struct evbuffer *body;
	const char *path;
	char *text;
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);

	path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
	if ((cmd != EVHTTP_REQ_GET && cmd != EVHTTP_REQ_HEAD) || path == NULL ||
	    strcmp(path, "/metrics") != 0) {
		evhttp_add_header(h, "Content-Type", "text/plain; charset=utf-8");
		if ((body = evbuffer_new()) != NULL)
			evbuffer_add_printf(body, "not found: only GET /metrics is served here\n");
		evhttp_send_reply(req, HTTP_NOTFOUND, "Not Found", body);
		if (body != NULL)
			evbuffer_free(body);
		return;
	}
	memset(&r, 0, sizeof(r));
	m->report(m->arg, &r);
	if ((text = metrics_render(&r)) == NULL || (body = evbuffer_new()) == NULL) {
		free(text);
		evhttp_send_error(req, HTTP_INTERNAL, NULL);
		return;
	}
	evbuffer_add(body, text, strlen(text));
	free(text);
	evhttp_add_header(h, "Content-Type", "text/plain; version=0.0.4; charset=utf-8");
	evhttp_send_reply(req, HTTP_OK, "OK", body);
	evbuffer_free(body);
}

struct metrics *
metrics_new(struct event_base *base, const struct sockaddr *addr, socklen_t len,
    metrics_report_fn *report, void *arg, char **err)
{
	char text[NETADDR_TEXT_MAX];
	struct metrics *m;
	int fd = -1, one = 1, e;

	*err = NULL;
	if ((m = calloc(1, sizeof(*m))) == NULL)
		goto nomem;
	m->report = report;
	m->arg = arg;
	if ((m->http = evhttp_new(base)) == NULL)
		goto nomem;
	evhttp_set_timeout(m->http, METRICS_TIMEOUT);
	evhttp_set_max_headers_size(m->http, METRICS_HEADERS_MAX);
	evhttp_set_max_body_size(m->http, METRICS_BODY_MAX);
	evhttp_set_gencb(m->http, on_request, m);

	fd = socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == -1 ||
	    bind(fd, addr, len) == -1 || listen(fd, 64) == -1)
		goto syserr;
	if (evhttp_accept_socket_with_handle(m->http, fd) == NULL)
		goto syserr;
	return m;
syserr:
	e = errno;
	netaddr_ntop(addr, text, sizeof(text));
	if (asprintf(err, "metrics_listen %s:%d: %s", text, netaddr_port(addr),
	    strerror(e)) == -1)
		*err = NULL;
	if (fd != -1)
		close(fd);
	metrics_free(m);
	return NULL;
nomem:
	metrics_free(m);
	*err = strdup("metrics_listen: out of memory");
	return NULL;
}

void
metrics_free(struct metrics *m)
{
	if (m == NULL)
		return;
	if (m->http != NULL)
		evhttp_free(m->http);   /* closes the bound socket too */
	free(m);
}
