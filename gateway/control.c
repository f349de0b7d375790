/*
 * control — the admin socket: one request line in, one response out, close.
 *
 * The difficulties are two.  Creating the socket file safely: bind() never
 * follows a symlink (it fails with EADDRINUSE on any existing name), so the
 * risk is only in what we unlink; we lstat() first and remove the old name
 * only when it is a socket nobody answers on (connect() gives ECONNREFUSED),
 * and the mode is set by the umask around bind() so there is no window in
 * which the socket is wider open than 0660.  And being unable to hurt
 * traffic: everything here runs on the main thread's loop (workers never see
 * an admin client), every client has a bounded input (the read watermark
 * stops reading one byte past the line limit), a total deadline that trickled
 * bytes do not extend, and a slot among a fixed few.
 */
#include "gateway/control.h"

#include <errno.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <json-c/json.h>

#include "gateway/log.h"
#include "lib/clock.h"

#define CONTROL_PAUSE_MS 200        /* accepting rests this long when out of descriptors */
#define CONTROL_LOG_MS 10000        /* at most one accept-paused line this often */

static struct log_rate control_log_rate;

struct control_client {
	TAILQ_ENTRY(control_client) entry;
	struct control *ctl;
	struct bufferevent *bev;
	struct event *deadline;         /* the whole exchange, from accept */
	bool answered;                  /* the response is queued: only writing is left */
};

struct control {
	struct event_base *base;
	char *path;
	int fd;
	struct event *accept_ev;
	struct event *resume_ev;        /* re-arms accept_ev after a pause */
	const struct control_ops *ops;
	void *arg;
	TAILQ_HEAD(, control_client) clients;
	size_t nclients;
};

/* ---- creating the socket ---------------------------------------------- */

static int
control_error(char **err, const char *path, const char *what, int e)
{
	if (asprintf(err, "admin_socket %s: %s%s%s", path, what, e != 0 ? ": " : "",
	    e != 0 ? strerror(e) : "") == -1)
		*err = NULL;
	return -1;
}

/* Remove an old socket file at path if nothing listens on it. */
static int
control_clear_stale(const char *path, const struct sockaddr_un *sun, char **err)
{
	struct stat st;
	int fd, e;

	if (lstat(path, &st) == -1) {
		if (errno == ENOENT)
			return 0;
		return control_error(err, path, "cannot inspect", errno);
	}
	if (!S_ISSOCK(st.st_mode))
		return control_error(err, path,
		    "exists and is not a socket (refusing to replace it)", 0);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		return control_error(err, path, "socket", errno);
	if (connect(fd, (const struct sockaddr *)sun, sizeof(*sun)) == 0) {
		close(fd);
		return control_error(err, path,
		    "another process is listening on it (is egressd already running?)", 0);
	}
	e = errno;
	close(fd);
	if (e != ECONNREFUSED)
		return control_error(err, path, "cannot tell whether it is in use", e);
	/* A socket left by a daemon that is gone. */
	if (unlink(path) == -1 && errno != ENOENT)
		return control_error(err, path, "cannot remove the stale socket", errno);
	log_info("event=admin-socket-replaced path=%s (stale)", path);
	return 0;
}

static int
control_bind(const char *path, char **err)
{
	struct sockaddr_un sun;
	struct stat st;
	char *copy, *dir;
	mode_t old;
	int fd, e;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun.sun_path))
		return control_error(err, path, "path too long", 0);
	memcpy(sun.sun_path, path, strlen(path) + 1);

	if ((copy = strdup(path)) == NULL)
		return control_error(err, path, "out of memory", 0);
	dir = dirname(copy);
	e = stat(dir, &st) == -1 ? errno : (!S_ISDIR(st.st_mode) ? ENOTDIR : 0);
	if (e != 0) {
		control_error(err, path, "its folder does not exist", e);
		free(copy);
		return -1;
	}
	free(copy);
	if (control_clear_stale(path, &sun, err) == -1)
		return -1;

	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1)
		return control_error(err, path, "socket", errno);
	/* 0660 from the start: the umask, not a chmod after the fact. */
	old = umask(0117);
	if (bind(fd, (const struct sockaddr *)&sun, sizeof(sun)) == -1) {
		e = errno;
		umask(old);
		close(fd);
		return control_error(err, path, "bind", e);
	}
	umask(old);
	if (listen(fd, 64) == -1) {
		e = errno;
		close(fd);
		unlink(path);
		return control_error(err, path, "listen", e);
	}
	return fd;
}

/* ---- the report as text and JSON -------------------------------------- */

static void
format_time(int64_t ms, char *buf, size_t len)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;

	gmtime_r(&t, &tm);
	snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year + 1900, tm.tm_mon + 1,
	    tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

static void
format_age(int64_t s, char *buf, size_t len)
{
	if (s < 0)
		s = 0;
	if (s >= 86400)
		snprintf(buf, len, "%" PRId64 "d%02" PRId64 "h%02" PRId64 "m", s / 86400,
		    s % 86400 / 3600, s % 3600 / 60);
	else if (s >= 3600)
		snprintf(buf, len, "%" PRId64 "h%02" PRId64 "m%02" PRId64 "s", s / 3600,
		    s % 3600 / 60, s % 60);
	else if (s >= 60)
		snprintf(buf, len, "%" PRId64 "m%02" PRId64 "s", s / 60, s % 60);
	else
		snprintf(buf, len, "%" PRId64 "s", s);
}

static uint64_t
hist_count(const struct stats_hist *h)
{
	uint64_t n = 0;
	size_t i;

	for (i = 0; i <= STATS_HIST_NBOUNDS; i++)
		n += h->buckets[i];
	return n;
}

static void
add_int(struct json_object *o, const char *key, uint64_t v)
{
	json_object_object_add(o, key, json_object_new_int64((int64_t)v));
}

/* The transport's own counters: RELP acknowledgements, datagrams possibly lost. */
static void
audit_status_json(struct json_object *x, const struct audit_stats *st)
{
	json_object_object_add(x, "transport", json_object_new_string(st->relp ? "relp" :
	    "datagram"));
	add_int(x, "acked", st->acked);
	add_int(x, "unacked", st->unacked);
	add_int(x, "resent", st->resent);
	add_int(x, "possibly_lost_total", st->possibly_lost_total);
	add_int(x, "unproven", st->unproven);
}

/* Seconds with microsecond precision, printed as such (not 0.000353999...). */
static struct json_object *
seconds_json(double v)
{
	char text[48];

	snprintf(text, sizeof(text), "%.6f", v);
	return json_object_new_double_s(v, text);
}

static struct json_object *
hist_json(const struct stats_hist *h)
{
	struct json_object *o = json_object_new_object();

	add_int(o, "count", hist_count(h));
	json_object_object_add(o, "sum_seconds", seconds_json((double)h->sum_us / 1e6));
	return o;
}

char *
control_status_json(const struct control_report *r)
{
	struct json_object *o, *x;
	char when[64], *s;
	uint64_t denied = 0;
	size_t i;

	o = json_object_new_object();
	json_object_object_add(o, "version", json_object_new_string(r->version));
	add_int(o, "pid", (uint64_t)r->pid);
	add_int(o, "uptime_seconds", (uint64_t)((r->now_ms - r->start_ms) / 1000));
	format_time(r->start_ms, when, sizeof(when));
	json_object_object_add(o, "started", json_object_new_string(when));
	add_int(o, "workers", (uint64_t)r->workers);

	x = json_object_new_object();
	add_int(x, "open", r->t.conns_open);
	add_int(x, "accepted", r->t.conns_accepted);
	add_int(x, "proxy_refused", r->t.proxy_refused);
	json_object_object_add(o, "connections", x);
	x = json_object_new_object();
	add_int(x, "open", r->t.tunnels_open);
	add_int(x, "total", r->t.tunnels_total);
	json_object_object_add(o, "tunnels", x);
	x = json_object_new_object();
	add_int(x, "total", r->t.records_tunnel + r->t.records_request);
	add_int(x, "tunnel", r->t.records_tunnel);
	add_int(x, "request", r->t.records_request);
	json_object_object_add(o, "requests", x);
	x = json_object_new_object();
	add_int(x, "up", r->t.bytes_up);
	add_int(x, "down", r->t.bytes_down);
	json_object_object_add(o, "bytes", x);
	x = json_object_new_object();
	for (i = 0; i < STATS_NREASONS; i++) {
		add_int(x, stats_reason_names[i], r->t.decisions[i]);
		if (i != STATS_REASON_ok)
			denied += r->t.decisions[i];
	}
	json_object_object_add(o, "decisions", x);
	add_int(o, "allowed", r->t.decisions[STATS_REASON_ok]);
	add_int(o, "denied", denied);
	add_int(o, "dns_failures", r->t.decisions[STATS_REASON_dns_failure]);
	add_int(o, "policy_errors", r->t.decisions[STATS_REASON_policy_error]);

	x = json_object_new_object();
	json_object_object_add(x, "enabled", json_object_new_boolean(r->auth_enabled));
	add_int(x, "cache_hits", r->auth.cache_hits);
	add_int(x, "cache_misses", r->auth.cache_misses);
	add_int(x, "cache_entries", r->auth.cache_entries);
	add_int(x, "ldap_errors", r->auth.ldap_errors);
	add_int(x, "ldap_exchanges", r->auth.exchanges);
	add_int(x, "throttled", r->auth.throttled);
	json_object_object_add(o, "auth", x);

	x = json_object_new_object();
	add_int(x, "sent", r->audit.sent);
	add_int(x, "queued", r->audit.queued);
	add_int(x, "queued_bytes", r->audit.queued_bytes);
	add_int(x, "queued_total", r->audit.queued_total);
	add_int(x, "lost", r->audit.lost);
	add_int(x, "lost_total", r->audit.lost_total);
	add_int(x, "loss_records", r->audit.loss_records);
	audit_status_json(x, &r->audit);
	json_object_object_add(x, "connected", json_object_new_boolean(r->audit.connected));
	json_object_object_add(x, "available", json_object_new_boolean(r->audit.available));
	json_object_object_add(o, "audit", x);

	x = json_object_new_object();
	json_object_object_add(x, "file", json_object_new_string(r->policy_file));
	add_int(x, "rules", r->policy_rules);
	add_int(x, "generation", r->policy_generation);
	format_time(r->policy_loaded_ms, when, sizeof(when));
	json_object_object_add(x, "loaded", json_object_new_string(when));
	json_object_object_add(x, "load_seconds", seconds_json((double)r->policy_load_us / 1e6));
	json_object_object_add(o, "policy", x);

	x = json_object_new_object();
	json_object_object_add(x, "tunnel_setup", hist_json(&r->t.setup));
	json_object_object_add(x, "ldap", hist_json(&r->t.ldap));
	json_object_object_add(o, "latency", x);

	s = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
	json_object_put(o);
	return s;
}

char *
control_status_text(const struct control_report *r)
{
	char *buf = NULL, age[32], when[64];
	size_t len = 0, i;
	uint64_t denied = 0;
	bool any = false;
	FILE *f;

	if ((f = open_memstream(&buf, &len)) == NULL)
		return NULL;
	format_age((r->now_ms - r->start_ms) / 1000, age, sizeof(age));
	fprintf(f, "egressd %s, pid %ld, up %s, %d worker%s\n", r->version, r->pid, age,
	    r->workers, r->workers == 1 ? "" : "s");
	fprintf(f, "connections  %" PRIu64 " open, %" PRIu64 " accepted, %" PRIu64
	    " refused (proxy_protocol_from)\n", r->t.conns_open,
	    r->t.conns_accepted, r->t.proxy_refused);
	fprintf(f, "tunnels      %" PRIu64 " open, %" PRIu64 " started\n", r->t.tunnels_open,
	    r->t.tunnels_total);
	for (i = 1; i < STATS_NREASONS; i++)
		denied += r->t.decisions[i];
	fprintf(f, "requests     %" PRIu64 " ended (%" PRIu64 " tunnels, %" PRIu64
	    " requests): %" PRIu64 " allowed, %" PRIu64 " denied\n",
	    r->t.records_tunnel + r->t.records_request, r->t.records_tunnel,
	    r->t.records_request, r->t.decisions[STATS_REASON_ok], denied);
	fprintf(f, "denials     ");
	for (i = 1; i < STATS_NREASONS; i++) {
		if (r->t.decisions[i] == 0)
			continue;
		fprintf(f, " %s=%" PRIu64, stats_reason_names[i], r->t.decisions[i]);
		any = true;
	}
	fprintf(f, "%s\n", any ? "" : " none");
	fprintf(f, "bytes        %" PRIu64 " up, %" PRIu64 " down\n", r->t.bytes_up,
	    r->t.bytes_down);
	if (r->auth_enabled)
		fprintf(f, "auth cache   %llu hits, %llu misses, %llu entries, %llu directory "
		    "errors, %llu throttled\n", r->auth.cache_hits, r->auth.cache_misses,
		    r->auth.cache_entries, r->auth.ldap_errors, r->auth.throttled);
	else
		fprintf(f, "auth         none\n");
	fprintf(f, "audit        %" PRIu64 " sent, %" PRIu64 " queued, %" PRIu64
	    " lost (%" PRIu64 " since start), socket %s\n", r->audit.sent, r->audit.queued,
	    r->audit.lost, r->audit.lost_total, r->audit.connected ? "connected" : "DOWN");
	if (r->audit.relp)
		fprintf(f, "             RELP: %" PRIu64 " acknowledged, %" PRIu64 " awaiting "
		    "acknowledgement, %" PRIu64 " resent after reconnects\n", r->audit.acked,
		    r->audit.unacked, r->audit.resent);
	else
		fprintf(f, "             datagram: %" PRIu64 " possibly lost (unread when the reader "
		    "went away), %" PRIu64 " not yet proven read\n", r->audit.possibly_lost_total,
		    r->audit.unproven);
	format_time(r->policy_loaded_ms, when, sizeof(when));
	fprintf(f, "policy       %s, %zu rules, generation %u, loaded %s\n", r->policy_file,
	    r->policy_rules, r->policy_generation, when);
	if (fclose(f) != 0) {
		free(buf);
		return NULL;
	}
	return buf;
}

/* ---- answering ------------------------------------------------------------ */

static char *
tunnels_json(const struct stats_tunnel *l, size_t n, int64_t now_ms)
{
	struct json_object *a, *o;
	char when[64], *s;
	size_t i;

	a = json_object_new_array();
	for (i = 0; i < n; i++) {
		o = json_object_new_object();
		json_object_object_add(o, "id", json_object_new_string(l[i].id));
		json_object_object_add(o, "user", l[i].user[0] != '\0' ?
		    json_object_new_string(l[i].user) : NULL);
		json_object_object_add(o, "client_ip", json_object_new_string(l[i].client_ip));
		add_int(o, "client_port", (uint64_t)l[i].client_port);
		json_object_object_add(o, "host", json_object_new_string(l[i].host));
		add_int(o, "port", l[i].port);
		json_object_object_add(o, "dst_ip", l[i].dst_ip[0] != '\0' ?
		    json_object_new_string(l[i].dst_ip) : NULL);
		json_object_object_add(o, "sni", l[i].sni[0] != '\0' ?
		    json_object_new_string(l[i].sni) : NULL);
		format_time(l[i].start_ms, when, sizeof(when));
		json_object_object_add(o, "start", json_object_new_string(when));
		add_int(o, "start_ms", (uint64_t)l[i].start_ms);
		json_object_object_add(o, "age_seconds",
		    seconds_json((double)(now_ms - l[i].start_ms) / 1000.0));
		add_int(o, "bytes_up", l[i].bytes_up);
		add_int(o, "bytes_down", l[i].bytes_down);
		json_object_array_add(a, o);
	}
	s = strdup(json_object_to_json_string_ext(a, JSON_C_TO_STRING_PLAIN));
	json_object_put(a);
	return s;
}

static char *
tunnels_text(const struct stats_tunnel *l, size_t n, int64_t now_ms)
{
	char *buf = NULL, age[32];
	size_t len = 0, i;
	FILE *f;

	if ((f = open_memstream(&buf, &len)) == NULL)
		return NULL;
	for (i = 0; i < n; i++) {
		format_age((now_ms - l[i].start_ms) / 1000, age, sizeof(age));
		fprintf(f, "%s %s %s:%d %s:%u sni=%s age=%s up=%" PRIu64 " down=%" PRIu64 "\n",
		    l[i].id, l[i].user[0] != '\0' ? l[i].user : "-", l[i].client_ip,
		    l[i].client_port, l[i].host, l[i].port, l[i].sni[0] != '\0' ? l[i].sni : "-",
		    age, l[i].bytes_up, l[i].bytes_down);
	}
	if (fclose(f) != 0) {
		free(buf);
		return NULL;
	}
	return buf;
}

/* Queue "ok"/"error", the payload (dot-stuffed) and the final ".". */
static void
client_respond(struct control_client *cl, bool ok, const char *payload)
{
	struct evbuffer *out = bufferevent_get_output(cl->bev);
	const char *p, *nl;

	evbuffer_add_printf(out, "%s\n", ok ? "ok" : "error");
	for (p = payload; p != NULL && *p != '\0'; p = nl != NULL ? nl + 1 : NULL) {
		nl = strchr(p, '\n');
		if (*p == '.')
			evbuffer_add(out, ".", 1);
		evbuffer_add(out, p, nl != NULL ? (size_t)(nl - p) : strlen(p));
		evbuffer_add(out, "\n", 1);
	}
	evbuffer_add(out, ".\n", 2);
	cl->answered = true;
}

static void
client_run(struct control_client *cl, const char *line)
{
	struct control *ctl = cl->ctl;
	struct control_report r;
	struct stats_tunnel *list = NULL;
	size_t n = 0;
	char *payload = NULL;
	bool ok = true;

	if (strcmp(line, "status") == 0 || strcmp(line, "status json") == 0) {
		memset(&r, 0, sizeof(r));
		ctl->ops->report(ctl->arg, &r);
		payload = strcmp(line, "status") == 0 ? control_status_text(&r) :
		    control_status_json(&r);
		ok = payload != NULL;
	} else if (strcmp(line, "tunnels") == 0 || strcmp(line, "tunnels json") == 0) {
		if (ctl->ops->tunnels(ctl->arg, &list, &n) == -1)
			ok = false;
		else
			payload = strcmp(line, "tunnels") == 0 ? tunnels_text(list, n, clock_wall_ms()) :
			    tunnels_json(list, n, clock_wall_ms());
		ok = ok && payload != NULL;
		free(list);
	} else if (strcmp(line, "reload") == 0) {
		log_info("event=reload-requested via=admin_socket");
		ok = ctl->ops->reload(ctl->arg, &payload) == 0;
	} else {
		client_respond(cl, false, "unknown command (status, status json, tunnels, "
		    "tunnels json, reload)");
		return;
	}
	client_respond(cl, ok, payload != NULL ? payload : (ok ? "" : "out of memory"));
	free(payload);
}

static void
client_free(struct control_client *cl)
{
	struct control *ctl = cl->ctl;

	TAILQ_REMOVE(&ctl->clients, cl, entry);
	ctl->nclients--;
	if (cl->deadline != NULL)
		event_free(cl->deadline);
	bufferevent_free(cl->bev);      /* closes the socket */
	free(cl);
}

static void
on_client_written(struct bufferevent *bev, void *arg)
{
	struct control_client *cl = arg;

	if (cl->answered && evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		client_free(cl);
}

/* Answer once; input after the line is never read (the read side is off). */
static void
client_finish(struct control_client *cl)
{
	struct evbuffer *in = bufferevent_get_input(cl->bev);

	bufferevent_disable(cl->bev, EV_READ);
	evbuffer_drain(in, evbuffer_get_length(in));
	bufferevent_enable(cl->bev, EV_WRITE);
}

static void
on_client_read(struct bufferevent *bev, void *arg)
{
	struct control_client *cl = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	struct evbuffer_ptr pos;
	char line[CONTROL_LINE_MAX + 1];
	size_t len;

	if (cl->answered)
		return;
	pos = evbuffer_search(in, "\n", 1, NULL);
	if (pos.pos == -1) {
		if (evbuffer_get_length(in) >= CONTROL_LINE_MAX) {
			client_respond(cl, false, "request line too long");
			client_finish(cl);
		}
		return;
	}
	len = (size_t)pos.pos;
	if (len >= CONTROL_LINE_MAX) {
		client_respond(cl, false, "request line too long");
		client_finish(cl);
		return;
	}
	evbuffer_remove(in, line, len + 1);
	line[len] = '\0';
	if (len > 0 && line[len - 1] == '\r')
		line[--len] = '\0';
	client_run(cl, line);
	client_finish(cl);
}

static void
on_client_event(struct bufferevent *bev, short what, void *arg)
{
	struct control_client *cl = arg;

	/* A client may shut its side once the request is sent: keep writing. */
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
	struct control *ctl = arg;

	event_add(ctl->accept_ev, NULL);
	(void)fd;
	(void)what;
}

/*
 * Out of descriptors, the pending client stays in the backlog and the socket
 * stays readable: watching it would spin this thread.  Rest a moment instead,
 * as the workers' listeners do, and say so once in a while.
 */
static void
control_accept_failed(struct control *ctl, int e)
{
	struct timeval tv = { 0, CONTROL_PAUSE_MS * 1000 };
	uint64_t quiet;

	if (e != EMFILE && e != ENFILE && e != ENOBUFS && e != ENOMEM)
		return;                 /* EAGAIN, ECONNABORTED: nothing to wait for */
	if (log_rate_allow(&control_log_rate, CONTROL_LOG_MS, &quiet))
		log_warnx("event=accept-paused listener=admin_socket reason=\"%s\" pause_ms=%d "
		    "repeated=%llu", strerror(e), CONTROL_PAUSE_MS, (unsigned long long)quiet);
	event_del(ctl->accept_ev);
	evtimer_add(ctl->resume_ev, &tv);
}

static void
on_accept(evutil_socket_t lfd, short what, void *arg)
{
	static const char busy[] = "error\ntoo many admin clients, try again\n.\n";
	struct control *ctl = arg;
	struct control_client *cl;
	struct timeval tv = { CONTROL_TIMEOUT, 0 };
	int fd;

	if ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) == -1) {
		control_accept_failed(ctl, errno);
		return;
	}
	if (ctl->nclients >= CONTROL_CLIENTS_MAX) {
		/* A best-effort answer; the socket buffer of a new connection takes it. */
		(void)send(fd, busy, sizeof(busy) - 1, MSG_DONTWAIT | MSG_NOSIGNAL);
		close(fd);
		return;
	}
	if ((cl = calloc(1, sizeof(*cl))) == NULL) {
		close(fd);
		return;
	}
	cl->ctl = ctl;
	cl->bev = bufferevent_socket_new(ctl->base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (cl->bev == NULL) {
		close(fd);
		free(cl);
		return;
	}
	cl->deadline = evtimer_new(ctl->base, on_client_deadline, cl);
	TAILQ_INSERT_TAIL(&ctl->clients, cl, entry);
	ctl->nclients++;
	if (cl->deadline == NULL) {
		client_free(cl);
		return;
	}
	bufferevent_setcb(cl->bev, on_client_read, on_client_written, on_client_event, cl);
	/* Never hold more than one line's worth of a client's bytes. */
	bufferevent_setwatermark(cl->bev, EV_READ, 0, CONTROL_LINE_MAX);
	bufferevent_enable(cl->bev, EV_READ);
	/* Total, from accept: a slow client cannot keep a slot by trickling. */
	evtimer_add(cl->deadline, &tv);
	(void)what;
}

struct control *
control_new(struct event_base *base, const char *path, const struct control_ops *ops,
    void *arg, char **err)
{
	struct control *ctl;

	*err = NULL;
	if ((ctl = calloc(1, sizeof(*ctl))) == NULL || (ctl->path = strdup(path)) == NULL) {
		free(ctl);
		*err = strdup("out of memory");
		return NULL;
	}
	ctl->base = base;
	ctl->ops = ops;
	ctl->arg = arg;
	TAILQ_INIT(&ctl->clients);
	if ((ctl->fd = control_bind(path, err)) == -1) {
		free(ctl->path);
		free(ctl);
		return NULL;
	}
	ctl->accept_ev = event_new(base, ctl->fd, EV_READ | EV_PERSIST, on_accept, ctl);
	ctl->resume_ev = evtimer_new(base, on_resume, ctl);
	if (ctl->accept_ev == NULL || ctl->resume_ev == NULL ||
	    event_add(ctl->accept_ev, NULL) == -1) {
		control_free(ctl);
		*err = strdup("admin_socket: cannot watch the socket");
		return NULL;
	}
	log_info("event=admin-socket path=%s", path);
	return ctl;
}

void
control_free(struct control *ctl)
{
	struct control_client *cl;
	struct stat st;

	if (ctl == NULL)
		return;
	while ((cl = TAILQ_FIRST(&ctl->clients)) != NULL)
		client_free(cl);
	if (ctl->accept_ev != NULL)
		event_free(ctl->accept_ev);
	if (ctl->resume_ev != NULL)
		event_free(ctl->resume_ev);
	/* Remove the name only if it is still a socket (ours, short of a race
	 * nobody wins by: the name is in a folder the daemon's owner controls). */
	if (lstat(ctl->path, &st) == 0 && S_ISSOCK(st.st_mode))
		unlink(ctl->path);
	close(ctl->fd);
	free(ctl->path);
	free(ctl);
}
