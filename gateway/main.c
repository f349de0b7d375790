/*
 * main — the egressd process: arguments, configuration, workers, signals.
 *
 *   egressd -c FILE        run in the foreground (systemd style), log to stderr
 *   egressd -t -c FILE     check the configuration and its policy, then exit
 *                          (-W: policy lint warnings fail the check)
 *   egressd -V             print the version
 *
 * The main thread owns the process-wide things: it loads the configuration
 * and the policy, starts one worker thread per `workers`, and then does
 * nothing but wait for signals on its own event loop.  SIGHUP builds a new
 * policy completely and only then publishes it to every worker (a bad file
 * leaves the old one in force); SIGTERM lets every worker drain.  Workers
 * never see a signal: they are blocked in every thread but this one.
 *
 * The main loop also serves the admin socket (control.c) and /metrics
 * (metrics.c): an admin client or a scraper only ever costs this thread, and
 * the numbers they see are summed from the workers' own counters on demand.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "audit/audit.h"
#include "auth/auth.h"
#include "config/config.h"
#include "gateway/control.h"
#include "gateway/gateway.h"
#include "gateway/log.h"
#include "gateway/metrics.h"
#include "gateway/notify.h"
#include "gateway/privdrop.h"
#include "gateway/tls.h"
#include "gateway/stats.h"
#include "gateway/worker.h"
#include "lib/clock.h"
#include "policy/policy.h"

#define DRAIN_CHECK_MS 50            /* how often the main loop looks for drained workers */

struct daemon {
	struct gateway gw;
	struct config *conf;
	struct policy *policy;          /* the main thread's reference to the policy in force */
	unsigned generation;            /* policies loaded so far */
	struct worker **workers;
	int nworkers;
	struct event_base *base;
	struct control *control;        /* admin_socket, NULL if none */
	struct metrics *metrics;        /* metrics_listen, NULL if none */
	struct notify *notify;          /* systemd's NOTIFY_SOCKET, NULL if none */
	bool draining;                  /* SIGTERM: the workers drain, /healthz says 503 */
	struct event *drain_check;      /* ends the main loop once every worker's has */
	int64_t start_ms;               /* wall clock at start */
	int64_t policy_loaded_ms;       /* wall clock of the policy in force's load */
	int64_t policy_load_us;         /* and how long it took */
};

/* Load the policy file, timing it for status and /metrics. */
static struct policy *
daemon_load_policy(struct daemon *d, char **errors)
{
	struct policy *p;
	int64_t t0 = clock_mono_us();

	p = policy_load(d->conf->policy_path, d->conf->policy_file, errors);
	if (p != NULL) {
		d->policy_load_us = clock_mono_us() - t0;
		d->policy_loaded_ms = clock_wall_ms();
	}
	return p;
}

/* The authenticator's messages (any thread) become operational log lines. */
static void
on_auth_log(int level, const char *msg)
{
	if (level == 0)
		log_warnx("auth: %s", msg);
	else if (level == 1)
		log_info("auth: %s", msg);
	else
		log_debug("auth: %s", msg);
}

static struct auth *
start_auth(const struct config *conf, const char *conf_path, long secret_owner)
{
	struct auth_config ac;
	struct auth *a;
	char *err = NULL;

	memset(&ac, 0, sizeof(ac));
	ac.uris = (const char *const *)conf->ldap_uri;
	ac.nuris = conf->nldap_uri;
	ac.starttls = conf->ldap_starttls;
	ac.bind_dn = conf->ldap_bind_dn;
	ac.bind_password_file = conf->ldap_bind_password_file;
	ac.secret_owner = secret_owner;
	ac.user_base = conf->ldap_user_base;
	ac.user_filter = conf->ldap_user_filter;
	ac.group_base = conf->ldap_group_base;
	ac.group_filter = conf->ldap_group_filter;
	ac.group_attr = conf->ldap_group_attr;
	ac.user_attr = conf->ldap_user_attr;
	ac.timeout = conf->ldap_timeout;
	ac.cache_ttl = conf->auth_cache_ttl;
	ac.negative_ttl = conf->auth_negative_ttl;
	ac.fail_per_client = conf->auth_fail_per_client;
	ac.fail_per_user = conf->auth_fail_per_user;
	ac.tls_ca_file = conf->ldap_tls_ca_file;
	ac.log = on_auth_log;
	if ((a = auth_new(&ac, &err)) == NULL)
		fatalx("%s: %s", conf_path, err != NULL ? err : "cannot start LDAP authentication");
	return a;
}

/* libevent's own warnings become operational log lines. */
static void
on_libevent_log(int severity, const char *msg)
{
	if (severity >= EVENT_LOG_WARN)
		log_warnx("libevent: %s", msg);
	else
		log_debug("libevent: %s", msg);
}

static void
usage(void)
{
	fprintf(stderr, "usage: egressd [-d] [-t [-W]] -c FILE\n       egressd -V\n");
	exit(2);
}

static void
print_errors(const char *errors)
{
	fputs(errors, stderr);
	if (errors[0] != '\0' && errors[strlen(errors) - 1] != '\n')
		fputc('\n', stderr);
}

static void
audit_simple(const char *event, const char *reason, const char *message)
{
	static unsigned seq;
	struct audit_event ev;
	char id[32];

	memset(&ev, 0, sizeof(ev));
	snprintf(id, sizeof(id), "%s-%u", event, ++seq);
	ev.event = event;
	ev.id = id;
	ev.client_port = -1;
	ev.port = -1;
	ev.decision = strcmp(reason, "ok") == 0 ? "allow" : "deny";
	ev.reason = reason;
	ev.bytes_up = -1;
	ev.bytes_down = -1;
	ev.duration_ms = -1;
	ev.lost = -1;
	ev.message = message;
	audit_emit(&ev);
}

/*
 * ", M list entries in K lists" beside "ok (N rules)" when the policy has
 * domain lists, "" otherwise (egressctl check prints the same).
 */
static const char *
lists_summary(const struct policy *p, char *buf, size_t bufsz)
{
	size_t n = policy_list_count(p);

	buf[0] = '\0';
	if (n > 0)
		snprintf(buf, bufsz, ", %zu list entries in %zu list%s", policy_entry_count(p), n,
		    n == 1 ? "" : "s");
	return buf;
}

/*
 * Re-read the policy (SIGHUP, and `reload` on the admin socket).  Returns 0 or
 * -1; with result non-NULL, *result is "ok (N rules)" (with the list entries
 * beside it) or the error lines (malloc'd) for the admin client.
 */
static int
daemon_reload(struct daemon *d, char **result)
{
	struct policy *p;
	char *errors = NULL, *tls_err = NULL, msg[512], lists[96];
	int i;

	notify_reloading(d->notify);
	/* The tls pair first, on its own: a broken pair keeps the old one and
	 * fails the reload, whatever the policy does. */
	if (d->gw.tls != NULL && tls_reload(d->gw.tls, &tls_err) == -1) {
		char *why = NULL;

		if (asprintf(&why, "%s (the old certificate and key stay in force)",
		    tls_err != NULL ? tls_err : "cannot load the tls pair") == -1)
			why = NULL;
		free(tls_err);
		tls_err = why;
		log_warnx("event=reload-refused what=tls reason=\"%s\"",
		    tls_err != NULL ? tls_err : "out of memory");
	}
	p = daemon_load_policy(d, &errors);
	if (p == NULL && tls_err != NULL) {
		/* Both: every reason in the one answer. */
		char *both = NULL;

		if (asprintf(&both, "%s%s\n", errors != NULL ? errors : "", tls_err) != -1) {
			free(errors);
			errors = both;
		}
	}
	if (p == NULL) {
		free(tls_err);
		log_warnx("event=reload-refused policy=%s (the old policy stays in force)",
		    d->conf->policy_file);
		if (errors != NULL)
			print_errors(errors);
		audit_simple("reload", "policy_error", errors != NULL ? errors : "refused");
		if (result != NULL)
			*result = errors != NULL ? errors : strdup("refused");
		else
			free(errors);
		notify_reloaded(d->notify);
		return -1;
	}
	for (i = 0; i < d->nworkers; i++)
		worker_post_policy(d->workers[i], p);
	policy_unref(d->policy);
	d->policy = p;
	d->generation++;
	snprintf(msg, sizeof(msg), "%s: ok (%zu rules)%s, generation %u", d->conf->policy_file,
	    policy_rule_count(p), lists_summary(p, lists, sizeof(lists)), d->generation);
	if (tls_err != NULL) {
		/* The policy is in force; the pair is not: the reload says why. */
		char *both = NULL;

		log_info("event=reload %s load_ms=%.1f", msg, (double)d->policy_load_us / 1000.0);
		if (asprintf(&both, "%s\n%s\n", msg, tls_err) == -1)
			both = NULL;
		print_errors(tls_err);
		audit_simple("reload", "policy_error", both != NULL ? both : tls_err);
		if (result != NULL)
			*result = both != NULL ? both : tls_err;
		else
			free(both);
		if (result == NULL || *result != tls_err)
			free(tls_err);
		notify_reloaded(d->notify);
		return -1;
	}
	if (d->gw.tls != NULL)
		snprintf(msg + strlen(msg), sizeof(msg) - strlen(msg), ", tls pair reloaded "
		    "(certificate expires %" PRId64 ")", tls_cert_expiry(d->gw.tls));
	log_info("event=reload %s load_ms=%.1f", msg, (double)d->policy_load_us / 1000.0);
	audit_simple("reload", "ok", msg);
	if (result != NULL && asprintf(result, "ok (%zu rules)%s", policy_rule_count(p),
	    lists) == -1)
		*result = NULL;
	notify_reloaded(d->notify);
	return 0;
}

/* ---- what the admin socket and /metrics ask (main thread) ------------- */

static void
daemon_report(void *arg, struct control_report *r)
{
	struct daemon *d = arg;
	int i;

	for (i = 0; i < d->nworkers; i++)
		stats_sum(worker_stats(d->workers[i]), &r->t);
	r->auth_enabled = d->gw.auth != NULL;
	if (d->gw.auth != NULL)
		auth_get_stats(d->gw.auth, &r->auth);
	audit_stats(&r->audit);
	r->version = EGRESSD_VERSION;
	r->pid = (long)getpid();
	r->workers = d->nworkers;
	r->start_ms = d->start_ms;
	r->now_ms = clock_wall_ms();
	r->policy_file = d->conf->policy_file;
	r->policy_rules = policy_rule_count(d->policy);
	r->policy_generation = d->generation;
	r->policy_loaded_ms = d->policy_loaded_ms;
	r->policy_load_us = d->policy_load_us;
	r->policy = d->policy;
	r->tls = d->gw.tls != NULL;
	if (r->tls)
		r->tls_cert_expiry = tls_cert_expiry(d->gw.tls);
}

static int
daemon_tunnels(void *arg, struct stats_tunnel **list, size_t *n)
{
	struct daemon *d = arg;
	int i;

	*list = NULL;
	*n = 0;
	for (i = 0; i < d->nworkers; i++)
		if (stats_tunnels(worker_stats(d->workers[i]), list, n) == -1)
			return -1;
	return 0;
}

static int
daemon_reload_cmd(void *arg, char **msg)
{
	return daemon_reload(arg, msg);
}

/* systemd's one-line STATUS=: what serves and what is open. */
static void
daemon_notify_status(void *arg, char *buf, size_t len)
{
	struct daemon *d = arg;
	struct stats_totals t;
	int i;

	memset(&t, 0, sizeof(t));
	for (i = 0; i < d->nworkers; i++)
		stats_sum(worker_stats(d->workers[i]), &t);
	snprintf(buf, len, "serving: %zu rules from %s (generation %u), %" PRIu64 " tunnels "
	    "open, %" PRIu64 " connections", policy_rule_count(d->policy), d->conf->policy_file,
	    d->generation, t.tunnels_open, t.conns_open);
}

static const struct control_ops daemon_control_ops = {
	daemon_report, daemon_tunnels, daemon_reload_cmd,
};

/*
 * NULL while the gateway accepts and can serve; otherwise the one-line
 * reason /healthz gives the load balancer with its 503.
 */
static const char *
daemon_health(void *arg)
{
	struct daemon *d = arg;

	if (d->draining)
		return "draining: shutting down, send new connections elsewhere";
	if (d->conf->audit_on_failure_deny && !audit_available())
		return "audit unavailable: audit_on_failure deny refuses every request";
	return NULL;
}

static void
on_drain_check(evutil_socket_t fd, short what, void *arg)
{
	struct daemon *d = arg;
	int i;

	for (i = 0; i < d->nworkers; i++)
		if (!worker_finished(d->workers[i]))
			return;
	event_base_loopexit(d->base, NULL);
	(void)fd;
	(void)what;
}

/*
 * SIGTERM: the admin socket stops answering (egressctl then says the daemon
 * is not running), every worker closes its listeners and drains for
 * shutdown_grace, and this loop goes on serving /healthz (503 from now on)
 * and /metrics until the last worker is done, so a balancer sees the drain.
 */
static void
daemon_begin_drain(struct daemon *d)
{
	struct timeval tv = { 0, DRAIN_CHECK_MS * 1000 };
	int i;

	d->draining = true;
	control_free(d->control);
	d->control = NULL;
	atomic_store(&d->gw.shutting_down, true);
	for (i = 0; i < d->nworkers; i++)
		worker_post_shutdown(d->workers[i]);
	d->drain_check = event_new(d->base, -1, EV_PERSIST, on_drain_check, d);
	if (d->drain_check == NULL || event_add(d->drain_check, &tv) == -1)
		event_base_loopexit(d->base, NULL);     /* join below waits all the same */
}

static void
on_signal(evutil_socket_t sig, short what, void *arg)
{
	struct daemon *d = arg;

	if (sig == SIGHUP) {
		(void)daemon_reload(d, NULL);
		return;
	}
	if (d->draining)
		return;                 /* already draining: shutdown_grace bounds it */
	log_info("event=shutdown signal=%d grace=%ds", (int)sig, d->conf->shutdown_grace);
	notify_stopping(d->notify);
	daemon_begin_drain(d);
	(void)what;
}

/* What start would refuse that files and folders can tell: print it, 1 if any. */
static int
check_files(const struct config *conf)
{
	char *errors = NULL;

	if (config_check_files(conf, &errors) == 0)
		return 0;
	if (errors != NULL)
		print_errors(errors);
	free(errors);
	return 1;
}

/* Lint warnings on stderr; with strict (-W) they fail the check. */
static int
check_lint(const struct config *conf, const struct policy *p, bool strict)
{
	char *warnings = NULL;
	size_t n;

	n = policy_lint(p, conf->auth == CONFIG_AUTH_NONE, &warnings);
	if (warnings != NULL)
		print_errors(warnings);
	free(warnings);
	return n > 0 && strict;
}

/* At start: one line when the policy has lint warnings (-t lists them). */
static void
log_lint_summary(const struct config *conf, const struct policy *p)
{
	char *warnings = NULL;
	size_t n;

	n = policy_lint(p, conf->auth == CONFIG_AUTH_NONE, &warnings);
	free(warnings);
	if (n > 0)
		log_warnx("event=policy-lint policy=%s warnings=%zu (egressd -t or egressctl check "
		    "lists them)", conf->policy_file, n);
}

/* Any tls listener? */
static bool
has_tls_listener(const struct config *conf)
{
	size_t i;

	for (i = 0; i < conf->nlisten; i++)
		if (conf->listen[i].tls)
			return true;
	return false;
}

/* The line of the key an error about the pair names (the key's by default). */
static size_t
tls_err_line(const struct config *conf, const char *err)
{
	if (err != NULL && strncmp(err, "tls_cert_file", 13) == 0)
		return config_line(conf, "tls_cert_file");
	return config_line(conf, "tls_key_file");
}

/* -t: the pair must load as the daemon would load it (and match). */
static int
check_tls(const struct config *conf)
{
	struct tls *t;
	char *err = NULL;

	if (!has_tls_listener(conf))
		return 0;
	if ((t = tls_new(conf, &err)) == NULL) {
		fprintf(stderr, "%s:%zu: %s\n", conf->path, tls_err_line(conf, err),
		    err != NULL ? err : "cannot load the tls pair");
		free(err);
		return 1;
	}
	tls_free(t);
	return 0;
}

static int
check_only(const char *path, struct config *conf, bool strict)
{
	struct policy *p;
	char *errors = NULL, lists[96];
	int bad;

	bad = check_files(conf);
	if (!bad)
		bad = check_tls(conf);
	p = policy_load(conf->policy_path, conf->policy_file, &errors);
	if (p == NULL) {
		if (errors != NULL)
			print_errors(errors);
		free(errors);
		return 1;
	}
	if (check_lint(conf, p, strict))
		bad = 1;
	if (bad) {
		policy_unref(p);
		return 1;
	}
	printf("%s: ok (%zu rules)%s\n", path, policy_rule_count(p),
	    lists_summary(p, lists, sizeof(lists)));
	policy_unref(p);
	return 0;
}

/* The audit transport's outage lines, on the operational log. */
static void
audit_log_line(const char *line)
{
	log_warnx("%s", line);
}

/*
 * Each connection may hold two descriptors (client and origin), plus the
 * listeners, the loops and resolvers of the workers, the admin and metrics
 * clients and some slack.  Raise the soft RLIMIT_NOFILE toward that (the
 * distribution default of 1024 holds 500 connections at best); say so when
 * the hard limit is lower, since then max_connections cannot be reached and
 * accept() will fail with EMFILE first.
 */
static void
raise_nofile(const struct config *conf)
{
	struct rlimit rl;
	rlim_t need, want;

	need = (rlim_t)conf->max_connections * 2 +
	    (rlim_t)conf->workers * (conf->nlisten + 8) + 128;
	if (getrlimit(RLIMIT_NOFILE, &rl) == -1) {
		log_warn("event=fd-limit getrlimit");
		return;
	}
	if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need) {
		want = rl.rlim_max != RLIM_INFINITY && rl.rlim_max < need ? rl.rlim_max : need;
		if (want > rl.rlim_cur) {
			rlim_t was = rl.rlim_cur;

			rl.rlim_cur = want;
			if (setrlimit(RLIMIT_NOFILE, &rl) == -1)
				log_warn("event=fd-limit setrlimit %llu", (unsigned long long)want);
			else
				log_info("event=fd-limit nofile=%llu raised_from=%llu",
				    (unsigned long long)want, (unsigned long long)was);
		}
	}
	if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < need)
		log_warnx("event=fd-limit-low nofile_hard=%llu need=%llu max_connections=%d: "
		    "connections will be refused (accept paused) before max_connections; "
		    "raise the hard limit (LimitNOFILE=, ulimit -Hn)",
		    (unsigned long long)rl.rlim_max, (unsigned long long)need,
		    conf->max_connections);
}

int
main(int argc, char *argv[])
{
	struct daemon d;
	struct audit_config acfg;
	struct event *sig_hup, *sig_term, *sig_int;
	struct privdrop *pd;
	sigset_t sigs;
	const char *conf_path = NULL;
	char *errors = NULL, *err = NULL;
	bool test = false, debug = false, strict = false;
	int ch, i, rc;

	while ((ch = getopt(argc, argv, "c:dtVWh")) != -1) {
		switch (ch) {
		case 'c':
			conf_path = optarg;
			break;
		case 'd':
			debug = true;
			break;
		case 't':
			test = true;
			break;
		case 'W':
			strict = true;          /* with -t: lint warnings are errors */
			break;
		case 'V':
			printf("egressd %s\n", EGRESSD_VERSION);
			return 0;
		default:
			usage();
		}
	}
	if (conf_path == NULL || optind != argc)
		usage();
	log_init(debug ? LOG_LEVEL_DEBUG : LOG_LEVEL_INFO);
	event_set_log_callback(on_libevent_log);

	memset(&d, 0, sizeof(d));
	d.conf = config_load(conf_path, &errors);
	if (d.conf == NULL) {
		if (errors != NULL)
			print_errors(errors);
		free(errors);
		return 1;
	}
	if (test) {
		rc = check_only(conf_path, d.conf, strict);
		config_free(d.conf);
		return rc;
	}
	if (check_files(d.conf) != 0) {
		config_free(d.conf);
		return 1;
	}
	/* Before any thread: every thread inherits it. */
	if (privdrop_harden(&err) == -1)
		fatalx("%s", err != NULL ? err : "cannot harden the process");
	if ((pd = privdrop_prepare(d.conf, &err)) == NULL)
		fatalx("%s", err != NULL ? err : "cannot resolve user");
	d.start_ms = clock_wall_ms();
	d.policy = daemon_load_policy(&d, &errors);
	if (d.policy == NULL) {
		if (errors != NULL)
			print_errors(errors);
		free(errors);
		return 1;
	}
	d.generation = 1;
	log_lint_summary(d.conf, d.policy);

	signal(SIGPIPE, SIG_IGN);
	d.gw.conf = d.conf;
	/* Before any thread exists and before privileges are dropped (the key
	 * may be readable by root only). */
	if (has_tls_listener(d.conf) && (d.gw.tls = tls_new(d.conf, &err)) == NULL)
		fatalx("%s:%zu: %s", conf_path, tls_err_line(d.conf, err),
		    err != NULL ? err : "cannot load the tls pair");

	/* Everything that may need root comes first, before any thread exists:
	 * the listeners (the workers bind them), the admin socket, /metrics.
	 * The main loop, the admin socket and /metrics also exist before any
	 * worker accepts, so that their errors stop the start before traffic
	 * flows. */
	raise_nofile(d.conf);
	for (i = 0; i < (int)d.conf->nlisten; i++)
		if (worker_probe_listen(&d.conf->listen[i], &err) == -1)
			fatalx("%s:%zu: %s", conf_path, d.conf->listen[i].line,
			    err != NULL ? err : "cannot listen");
	d.base = event_base_new();
	if (d.base == NULL)
		fatalx("cannot create the main event loop");
	if (d.conf->admin_socket != NULL && (d.control = control_new(d.base,
	    d.conf->admin_socket, &daemon_control_ops, &d, &err)) == NULL)
		fatalx("%s: %s", conf_path, err != NULL ? err : "cannot create admin_socket");
	if (d.conf->has_metrics_listen && (d.metrics = metrics_new(d.base,
	    (const struct sockaddr *)&d.conf->metrics_listen, d.conf->metrics_listen_len,
	    daemon_report, daemon_health, &d, &err)) == NULL)
		fatalx("%s: %s", conf_path, err != NULL ? err : "cannot listen for metrics");

	/* Workers (and the audit thread) inherit a mask that blocks the signals
	 * this thread handles. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGHUP);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);

	d.nworkers = d.conf->workers;
	d.workers = calloc((size_t)d.nworkers, sizeof(*d.workers));
	if (d.workers == NULL)
		fatal("calloc");
	for (i = 0; i < d.nworkers; i++) {
		d.workers[i] = worker_new(&d.gw, i, d.policy, &err);
		if (d.workers[i] == NULL)
			fatalx("%s: %s", conf_path, err != NULL ? err : "cannot start a worker");
	}
	if (privdrop_after_bind(pd, d.conf->admin_socket, &err) == -1)
		fatalx("%s", err != NULL ? err : "cannot drop privileges");

	memset(&acfg, 0, sizeof(acfg));
	acfg.socket_path = d.conf->audit_syslog_socket;
	acfg.relp_host = d.conf->audit_relp_host;
	acfg.relp_port = d.conf->audit_relp_port;
	acfg.facility = d.conf->audit_facility;
	acfg.tag = d.conf->audit_tag;
	acfg.deny_on_failure = d.conf->audit_on_failure_deny;
	acfg.mirror_stderr = d.conf->audit_stderr;
	acfg.log = audit_log_line;
	if (audit_open(&acfg) == -1)
		fatalx("%s: cannot open the audit socket %s", conf_path,
		    d.conf->audit_syslog_socket);

	/* Before any worker runs: it sets LDAPNOINIT and reads the secret. */
	if (d.conf->auth == CONFIG_AUTH_LDAP)
		d.gw.auth = start_auth(d.conf, conf_path,
		    privdrop_switches(pd) ? (long)privdrop_uid(pd) : 0);
	if (getrandom(&d.gw.id_base, sizeof(d.gw.id_base), 0) != sizeof(d.gw.id_base))
		d.gw.id_base = (uint64_t)getpid() << 32;
	d.gw.id_base &= ~(uint64_t)0xffffffff;  /* room to count up */

	/* Secrets are in memory: become the user for good, before serving. */
	if (privdrop_after_secrets(pd, &err) == -1)
		fatalx("%s", err != NULL ? err : "cannot drop privileges");

	for (i = 0; i < d.nworkers; i++)
		if (worker_start(d.workers[i]) == -1)
			fatal("pthread_create");

	sig_hup = evsignal_new(d.base, SIGHUP, on_signal, &d);
	sig_term = evsignal_new(d.base, SIGTERM, on_signal, &d);
	sig_int = evsignal_new(d.base, SIGINT, on_signal, &d);
	if (sig_hup == NULL || sig_term == NULL || sig_int == NULL)
		fatalx("cannot install signal handlers");
	evsignal_add(sig_hup, NULL);
	evsignal_add(sig_term, NULL);
	evsignal_add(sig_int, NULL);
	pthread_sigmask(SIG_UNBLOCK, &sigs, NULL);

	for (i = 0; i < (int)d.conf->nlisten; i++)
		log_info("event=listening address=%s%s%s", d.conf->listen[i].text,
		    d.conf->listen[i].proxy_protocol ? " proxy_protocol" : "",
		    d.conf->listen[i].tls ? " tls" : "");
	log_info("event=start version=%s workers=%d policy=%s rules=%zu", EGRESSD_VERSION,
	    d.nworkers, d.conf->policy_file, policy_rule_count(d.policy));
	audit_simple("start", "ok", NULL);
	/* Every worker thread runs and its listeners accept: systemd may go on. */
	d.notify = notify_new(d.base, daemon_notify_status, &d);
	notify_ready(d.notify);

	event_base_dispatch(d.base);

	/* The workers' loops have ended (daemon_begin_drain): reap them. */
	control_free(d.control);
	d.control = NULL;
	metrics_free(d.metrics);
	d.metrics = NULL;
	if (d.drain_check != NULL)
		event_free(d.drain_check);
	for (i = 0; i < d.nworkers; i++)
		worker_join(d.workers[i]);
	audit_simple("stop", "ok", NULL);
	log_info("event=stop");

	for (i = 0; i < d.nworkers; i++)
		worker_free(d.workers[i]);
	free(d.workers);
	if (d.gw.auth != NULL)
		auth_free(d.gw.auth);
	notify_free(d.notify);
	event_free(sig_hup);
	event_free(sig_term);
	event_free(sig_int);
	event_base_free(d.base);
	policy_unref(d.policy);
	tls_free(d.gw.tls);
	audit_close();
	privdrop_free(pd);
	config_free(d.conf);
	return 0;
}
