/*
 * auth_probe — drive auth/ against a real directory, one line at a time.
 *
 * The integration tests (test_auth_module.py) start a slapd and run this
 * program with the settings as options; it reads commands on stdin and
 * answers each with one JSON line on stdout, so a test can keep one
 * authenticator (and its cache) alive while it stops, freezes and restarts
 * the directory:
 *
 *   auth HEX        authenticate the header value whose bytes are HEX
 *   auth -          no header at all
 *   burst N HEX     N requests with the same header at once, then wait for all
 *   stats           the authenticator's counters
 *
 *   {"status":"ok","user":"alice","groups":["engineering"],"sync":false,"ms":3}
 *
 * The header travels in hex so that any byte (NUL, CR, non-UTF-8) can be
 * tested.  Names in the answers are UTF-8 (the module accepts no other).
 * Messages from the authenticator go to stderr, one per line.
 */
#include <ctype.h>
#include <errno.h>
#include <event2/event.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth/auth.h"

#define PROBE_URIS_MAX	8
#define PROBE_BURST_MAX	1024

struct probe_wait {
	int done;
	struct auth_result res;         /* copied out of the callback */
	char user[1100];
	char groups[8192];              /* already JSON: "a","b" */
	int statuses[4];
};

static void
probe_log(int level, const char *msg)
{
	fprintf(stderr, "auth[%d]: %s\n", level, msg);
}

static void
json_str(char *out, size_t outsz, const char *s)
{
	size_t o = 0;

	if (outsz < 8) {
		out[0] = '\0';
		return;
	}
	out[o++] = '"';
	for (; *s != '\0' && o + 8 < outsz; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '"' || ch == '\\') {
			out[o++] = '\\';
			out[o++] = (char)ch;
		} else if (ch < 0x20 || ch == 0x7f)
			o += (size_t)snprintf(out + o, outsz - o, "\\u%04x", ch);
		else
			out[o++] = (char)ch;
	}
	out[o++] = '"';
	out[o] = '\0';
}

static const char *
status_name(enum auth_status s)
{
	switch (s) {
	case AUTH_OK:
		return "ok";
	case AUTH_MISSING:
		return "missing";
	case AUTH_FAILED:
		return "failed";
	case AUTH_UNAVAILABLE:
		return "unavailable";
	case AUTH_THROTTLED:
		return "throttled";
	}
	return "?";
}

/* Keep what the result's pointers show (they die with the callback). */
static void
probe_keep(struct probe_wait *w, const struct auth_result *r)
{
	char one[1100];
	size_t i, o = 0;

	w->res = *r;
	w->statuses[r->status]++;
	if (r->user != NULL)
		json_str(w->user, sizeof(w->user), r->user);
	else
		snprintf(w->user, sizeof(w->user), "null");
	w->groups[0] = '\0';
	for (i = 0; i < r->ngroups; i++) {
		json_str(one, sizeof(one), r->groups[i]);
		o += (size_t)snprintf(w->groups + o, sizeof(w->groups) - o, "%s%s",
		    i > 0 ? "," : "", one);
		if (o >= sizeof(w->groups))
			break;
	}
}

static void
probe_done(const struct auth_result *r, void *arg)
{
	struct probe_wait *w = arg;

	probe_keep(w, r);
	w->done++;
}

static long
hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = tolower(c);
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* Decode hex into a malloc'd buffer; NULL for "-" (no header). */
static char *
unhex(const char *s, size_t *len, bool *bad)
{
	size_t n = strlen(s), i;
	char *out;

	*bad = false;
	*len = 0;
	if (strcmp(s, "-") == 0)
		return NULL;
	if (n % 2 != 0 || (out = malloc(n / 2 + 1)) == NULL) {
		*bad = true;
		return NULL;
	}
	for (i = 0; i < n / 2; i++) {
		long hi = hexval(s[2 * i]), lo = hexval(s[2 * i + 1]);

		if (hi < 0 || lo < 0) {
			free(out);
			*bad = true;
			return NULL;
		}
		out[i] = (char)(hi << 4 | lo);
	}
	*len = n / 2;
	return out;
}

static long long
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
run_until(struct event_base *base, const int *done, int want)
{
	while (*done < want)
		event_base_loop(base, EVLOOP_ONCE);
}

static void
cmd_auth(struct auth_loop *l, struct event_base *base, const char *arg)
{
	struct probe_wait w;
	struct auth_req *req;
	struct auth_result now;
	long long t0 = now_ms();
	size_t len;
	bool bad;
	char *hdr = unhex(arg, &len, &bad);

	if (bad) {
		printf("{\"error\":\"bad hex\"}\n");
		return;
	}
	memset(&w, 0, sizeof(w));
	req = auth_begin(l, hdr, len, &now, probe_done, &w);
	if (req == NULL)
		probe_keep(&w, &now);
	else
		run_until(base, &w.done, 1);
	printf("{\"status\":\"%s\",\"user\":%s,\"groups\":[%s],\"sync\":%s,\"ms\":%lld}\n",
	    status_name(w.res.status), w.user, w.groups, req == NULL ? "true" : "false",
	    now_ms() - t0);
	free(hdr);
}

static void
cmd_burst(struct auth_loop *l, struct event_base *base, const char *arg)
{
	struct probe_wait w;
	struct auth_result now;
	size_t len;
	char *end, *hdr;
	long n, i;
	int sync = 0;
	bool bad;

	n = strtol(arg, &end, 10);
	if (n < 1 || n > PROBE_BURST_MAX || *end != ' ') {
		printf("{\"error\":\"bad burst\"}\n");
		return;
	}
	if ((hdr = unhex(end + 1, &len, &bad)) == NULL) {
		printf("{\"error\":\"bad hex\"}\n");
		return;
	}
	memset(&w, 0, sizeof(w));
	for (i = 0; i < n; i++)
		if (auth_begin(l, hdr, len, &now, probe_done, &w) == NULL) {
			probe_keep(&w, &now);
			sync++;
		}
	run_until(base, &w.done, (int)n - sync);
	printf("{\"ok\":%d,\"failed\":%d,\"unavailable\":%d,\"sync\":%d}\n",
	    w.statuses[AUTH_OK], w.statuses[AUTH_FAILED], w.statuses[AUTH_UNAVAILABLE], sync);
	free(hdr);
}

static void
usage(void)
{
	fprintf(stderr, "usage: auth_probe --uri URI... --user-base DN [--user-filter F] "
	    "[--group-base DN --group-filter F --group-attr A] [--bind-dn DN "
	    "--bind-pw-file FILE] [--starttls] [--ca FILE] [--timeout S] [--ttl S] "
	    "[--neg-ttl S] [--threads N] [--user-attr A]\n");
	exit(2);
}

int
main(int argc, char **argv)
{
	const char *uris[PROBE_URIS_MAX];
	struct auth_config conf;
	struct event_base *base;
	struct auth *a;
	struct auth_loop *l;
	struct auth_stats st;
	char line[8192], *err = NULL;
	int i;

	memset(&conf, 0, sizeof(conf));
	conf.user_filter = "(uid=%u)";
	conf.group_filter = "(member=%d)";
	conf.group_attr = "cn";
	conf.timeout = 2;
	conf.cache_ttl = 300;
	conf.negative_ttl = 5;
	conf.log = probe_log;
	conf.uris = uris;
	for (i = 1; i < argc; i++) {
		const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (strcmp(o, "--starttls") == 0) {
			conf.starttls = true;
			continue;
		}
		if (v == NULL)
			usage();
		i++;
		if (strcmp(o, "--uri") == 0 && conf.nuris < PROBE_URIS_MAX)
			uris[conf.nuris++] = v;
		else if (strcmp(o, "--ca") == 0)
			conf.tls_ca_file = v;
		else if (strcmp(o, "--bind-dn") == 0)
			conf.bind_dn = v;
		else if (strcmp(o, "--bind-pw-file") == 0)
			conf.bind_password_file = v;
		else if (strcmp(o, "--user-base") == 0)
			conf.user_base = v;
		else if (strcmp(o, "--user-filter") == 0)
			conf.user_filter = v;
		else if (strcmp(o, "--user-attr") == 0)
			conf.user_attr = v;
		else if (strcmp(o, "--group-base") == 0)
			conf.group_base = v;
		else if (strcmp(o, "--group-filter") == 0)
			conf.group_filter = v;
		else if (strcmp(o, "--group-attr") == 0)
			conf.group_attr = v;
		else if (strcmp(o, "--timeout") == 0)
			conf.timeout = atoi(v);
		else if (strcmp(o, "--ttl") == 0)
			conf.cache_ttl = atoi(v);
		else if (strcmp(o, "--neg-ttl") == 0)
			conf.negative_ttl = atoi(v);
		else if (strcmp(o, "--threads") == 0)
			conf.threads = atoi(v);
		else
			usage();
	}
	if ((a = auth_new(&conf, &err)) == NULL) {
		printf("{\"error\":");
		json_str(line, sizeof(line), err != NULL ? err : "?");
		printf("%s}\n", line);
		free(err);
		return 1;
	}
	if ((base = event_base_new()) == NULL || (l = auth_loop_new(a, base)) == NULL) {
		fprintf(stderr, "auth_probe: cannot set up a loop\n");
		return 1;
	}
	printf("{\"ready\":true}\n");
	fflush(stdout);
	while (fgets(line, sizeof(line), stdin) != NULL) {
		line[strcspn(line, "\r\n")] = '\0';
		if (strncmp(line, "auth ", 5) == 0)
			cmd_auth(l, base, line + 5);
		else if (strncmp(line, "burst ", 6) == 0)
			cmd_burst(l, base, line + 6);
		else if (strcmp(line, "stats") == 0) {
			auth_get_stats(a, &st);
			printf("{\"hits\":%llu,\"misses\":%llu,\"errors\":%llu,\"exchanges\":%llu,"
			    "\"entries\":%llu}\n", st.cache_hits, st.cache_misses, st.ldap_errors,
			    st.exchanges, st.cache_entries);
		} else
			printf("{\"error\":\"unknown command\"}\n");
		fflush(stdout);
	}
	auth_loop_free(l);
	auth_free(a);
	event_base_free(base);
	return 0;
}
