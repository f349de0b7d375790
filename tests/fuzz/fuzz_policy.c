/*
 * fuzz_policy — the rule-file parser and the decision (policy/parse.c,
 * policy/index.c, policy/decide.c).
 *
 * The input is a policy file, then optionally domain lists: each line "@@"
 * starts the next list, which the policy names "@l0.list", "@l1.list", ...
 * Beyond "no crash, no leak": a refused file
 * comes with error text of "NAME:LINE: " lines; an accepted one decides a few
 * fixed requests (and requests aimed at each rule's literals) identically
 * through the index and through the plain scan; and for every rule and host
 * tried, a regex match implies the literal prefilter let the host through
 * (the literal extraction never hides a match).  The last property is the
 * one a fuzzer is best at: odd pattern syntax the extraction misreads.  Hosts
 * taken from the lists' lines (and names under them) are decided too, so the
 * indexed walk and the scan are compared on list hits: the same rule, the
 * same entry, the same report rule.  The lint runs too: one
 * "f.rules:LINE: warning: " (or "lN.list:LINE: warning: ") line per warning.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy/policy.h"
#include "policy/rule.h"

#define RULES_CHECKED 32                /* bound the regex work per input */
#define LISTS_MAX 8
#define LIST_HOSTS 8                    /* hosts taken from each list */

/* The lists of the current input: byte ranges of it. */
static const char *list_at[LISTS_MAX];
static size_t list_len[LISTS_MAX], nlists;

static int
read_list(void *arg, const char *name, char **text, size_t *len, const char **why)
{
	unsigned i;
	char tail;

	if (sscanf(name, "l%u.lis%c", &i, &tail) != 2 || tail != 't' || i >= nlists ||
	    strlen(name) > 12) {
		*why = "no such list";
		return -1;
	}
	if ((*text = malloc(list_len[i] + 1)) == NULL) {
		*why = "out of memory";
		return -1;
	}
	memcpy(*text, list_at[i], list_len[i]);
	*len = list_len[i];
	return 0;
}

/* Whether an error or warning line names the policy or one of its lists. */
static bool
names_a_file(const char *line)
{
	unsigned i;

	if (strncmp(line, "f.rules:", 8) == 0)
		return true;
	return sscanf(line, "l%u.list:", &i) == 1 && i < LISTS_MAX;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
same_decision(const struct policy *p, const struct policy_request *req)
{
	struct policy_decision a, b;

	policy_decide(p, req, &a);
	policy_decide_linear(p, req, &b);
	if (a.allow != b.allow || a.need_credentials != b.need_credentials ||
	    strcmp(a.reason, b.reason) != 0 || a.rule != b.rule || a.sni != b.sni ||
	    a.list != b.list || a.list_line != b.list_line || a.report != b.report ||
	    a.report_line != b.report_line) {
		fprintf(stderr, "indexed %s %s, linear %s %s for host \"%s\"\n", a.reason,
		    a.rule ? a.rule : "-", b.reason, b.rule ? b.rule : "-", req->host);
		abort();
	}
	if (a.rule == NULL && strcmp(a.reason, "default_deny") != 0)
		abort();
	if ((a.list != NULL) != (a.list_line != 0) || (a.report != NULL) != (a.report_id != 0))
		abort();
}

/* Every rule of the first RULES_CHECKED: a regex match implies may_match. */
static void
prefilter_sound(const struct policy *p, const char *host, pcre2_match_data *m)
{
	size_t i, len = strlen(host);
	int rc;

	for (i = 0; i < p->nrules && i < RULES_CHECKED; i++) {
		if (p->rules[i].list >= 0)
			continue;
		rc = pcre2_match(p->rules[i].host, (PCRE2_SPTR)host, len, 0, 0, m, p->mctx);
		if (rc >= 0 && !policy_rule_may_match(&p->rules[i], host, len)) {
			fprintf(stderr, "rule %s matches \"%s\" but its literals (\"%s\", \"%s\") "
			    "say it cannot\n", p->rules[i].ref, host,
			    p->rules[i].prefix ? p->rules[i].prefix : "",
			    p->rules[i].suffix ? p->rules[i].suffix : "");
			abort();
		}
	}
}

static void
try_host(const struct policy *p, const char *host, pcre2_match_data *m)
{
	static const char *const groups[] = { "eng", "Ops" };
	struct policy_request req;

	memset(&req, 0, sizeof(req));
	req.host = host;
	req.method = "CONNECT";
	req.port = 443;
	same_decision(p, &req);
	req.user = "alice";
	req.groups = groups;
	req.ngroups = 2;
	req.method = "GET";
	req.port = 80;
	same_decision(p, &req);
	req.no_identity = true;
	same_decision(p, &req);
	prefilter_sound(p, host, m);
}

/* The lint (lint.c) reads the pattern text on its own: every warning names a rule. */
static void
lint_sound(const struct policy *p, bool no_identity)
{
	char *w = NULL, *line, *save = NULL;
	size_t n, seen = 0;

	n = policy_lint(p, no_identity, &w);
	if ((n == 0) != (w == NULL))
		abort();
	for (line = w != NULL ? strtok_r(w, "\n", &save) : NULL; line != NULL;
	    line = strtok_r(NULL, "\n", &save), seen++)
		if (!names_a_file(line) || strstr(line, ": warning: ") == NULL)
			abort();
	if (seen != n)
		abort();
	free(w);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const hosts[] = { "example.com", "www.github.com", "a", "",
	    "192.0.2.1", "2001:db8::1", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaac" };
	char host[2 * POLICY_LITERAL_MAX + 2], *errors = NULL;
	const struct policy_rule *r;
	pcre2_match_data *m;
	struct policy *p;
	size_t i;

	const char *text = (const char *)data, *end = text + size, *q, *sep;
	size_t policy_len = size, k;

	/* Split off the lists: each "\n@@\n" starts one. */
	nlists = 0;
	for (q = text; (sep = memmem(q, (size_t)(end - q), "\n@@\n", 4)) != NULL; q = sep + 4) {
		if (nlists == 0)
			policy_len = (size_t)(sep - text) + 1;
		else
			list_len[nlists - 1] = (size_t)(sep - list_at[nlists - 1]) + 1;
		if (nlists == LISTS_MAX)
			break;
		list_at[nlists] = sep + 4;
		list_len[nlists] = (size_t)(end - (sep + 4));
		nlists++;
	}
	p = policy_load_buffer_with(text, policy_len, "f.rules", read_list, NULL, &errors);
	if (p == NULL) {
		/* Every refusal says where (or, for out of memory, what). */
		if (errors != NULL && !names_a_file(errors))
			abort();
		free(errors);
		return 0;
	}
	if (errors != NULL)
		abort();
	if ((m = pcre2_match_data_create(1, NULL)) == NULL)
		abort();
	for (i = 0; i < sizeof(hosts) / sizeof(hosts[0]); i++)
		try_host(p, hosts[i], m);
	/* Hosts aimed at each rule's literals: the index's hits, not only misses. */
	for (i = 0; i < p->nrules && i < RULES_CHECKED; i++) {
		r = &p->rules[i];
		snprintf(host, sizeof(host), "%s%s", r->prefix ? r->prefix : "",
		    r->suffix ? r->suffix : "");
		try_host(p, host, m);
		snprintf(host, sizeof(host), "%s.x%s", r->prefix ? r->prefix : "",
		    r->suffix ? r->suffix : "");
		try_host(p, host, m);
	}
	/* Hosts from the lists' lines: the entries, and a name under each. */
	for (k = 0; k < nlists; k++) {
		const char *l = list_at[k], *le = list_at[k] + list_len[k], *nl;
		size_t n, taken = 0;

		for (; l < le && taken < LIST_HOSTS; l = nl + 1, taken++) {
			if ((nl = memchr(l, '\n', (size_t)(le - l))) == NULL)
				nl = le;
			for (n = 0; l + n < nl && l[n] != ' ' && l[n] != '\t' && l[n] != '#' &&
			    l[n] != '\r'; n++)
				;
			if (n == 0 || n > HOST_MAX)
				continue;
			if (l[0] == '.') {
				snprintf(host, sizeof(host), "x%.*s", (int)n, l);
				try_host(p, host, m);
				l++;
				n--;
			}
			snprintf(host, sizeof(host), "%.*s", (int)n, l);
			try_host(p, host, m);
			if (nl == le)
				break;
		}
	}
	pcre2_match_data_free(m);
	lint_sound(p, false);
	lint_sound(p, true);
	policy_unref(p);
	return 0;
}
