/*
 * lint — what admins get wrong in a policy that still loads.
 *
 * The parser refuses what is certainly wrong; this looks for what is
 * probably wrong and says so as "FILE:LINE: warning: message", leaving the
 * decision to the admin (egressctl check and egressd -t print the warnings
 * and keep their exit status unless asked to be strict).  The habits it knows
 * come from other proxies: an unescaped "." in a name ("github.com" also
 * matches "githubxcom"), Squid's ".example.com" and glob "*.example.com",
 * a host:port or URL where a host belongs; and from editing under pressure:
 * identity rules under "auth none", a rule written twice, a rule that an
 * earlier one always answers first (a mode=report rule answers nothing, so it
 * hides nothing).  Domain lists get their own: an entry written twice, an
 * entry a .suffix entry of the same list already covers, an empty list.
 *
 * Pure: it reads the loaded rules (the host pattern is the third field of the
 * rule's text as written) and writes text; nothing else.
 */
#include "policy/policy.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "policy/rule.h"

#define LINT_FIELD_MAX 1024         /* longer host fields are linted as cut */

struct lint {
	FILE *f;
	size_t n;
};

static void warn(struct lint *, const struct policy_rule *, const char *, ...)
    __attribute__((format(printf, 3, 4)));

static void
warn(struct lint *l, const struct policy_rule *r, const char *fmt, ...)
{
	va_list ap;

	l->n++;
	if (l->f == NULL)
		return;
	fprintf(l->f, "%s: warning: ", r->ref);
	va_start(ap, fmt);
	vfprintf(l->f, fmt, ap);
	va_end(ap);
	fputc('\n', l->f);
}

/* A list's warning (list.c): "LIST:LINE: warning: message". */
static void
list_warn(void *arg, const char *name, size_t line, const char *msg)
{
	fprintf(arg, "%s:%zu: warning: %s\n", name, line, msg);
}

/* Field i (0-based) of the rule's text, copied into out; "" if absent. */
static void
field(const char *text, int i, char *out, size_t outsz)
{
	const char *p = text, *e;
	size_t n;

	for (;;) {
		p += strspn(p, " \t");
		e = p + strcspn(p, " \t");
		if (i-- == 0 || *p == '\0')
			break;
		p = e;
	}
	n = (size_t)(e - p) < outsz - 1 ? (size_t)(e - p) : outsz - 1;
	memcpy(out, p, n);
	out[n] = '\0';
}

static bool
is_name_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	    c == '-';
}

static bool
is_quantifier(char c)
{
	return c == '*' || c == '+' || c == '?' || c == '{';
}

/*
 * An unescaped "." between two name characters, outside a class, reads as
 * a domain separator but matches any character.  Writes the pattern with
 * those dots escaped into fixed; returns how many there were.
 */
static size_t
bare_dots(const char *pat, char *fixed, size_t fixedsz)
{
	size_t i, o = 0, n = 0, len = strlen(pat);
	bool in_class = false;

	for (i = 0; i < len && o + 3 < fixedsz; i++) {
		char c = pat[i];

		if (c == '\\' && i + 1 < len) {
			fixed[o++] = c;
			fixed[o++] = pat[++i];
			continue;
		}
		if (in_class) {
			in_class = c != ']';
		} else if (c == '[') {
			in_class = true;
			/* "[]" and "[^]" start with a literal ']' */
			if (i + 1 < len && pat[i + 1] == '^')
				fixed[o++] = pat[i++];
			if (i + 1 < len && pat[i + 1] == ']')
				fixed[o++] = pat[i++];
		} else if (c == '.' && i > 0 && i + 1 < len && is_name_char(pat[i + 1]) &&
		    is_name_char(pat[i - 1]) && (i < 2 || pat[i - 2] != '\\') &&
		    !is_quantifier(pat[i + 1])) {
			fixed[o++] = '\\';
			n++;
		}
		fixed[o++] = c;
	}
	fixed[o] = '\0';
	return n;
}

/* The pattern with its first bare dot written as 'x': a host it also matches. */
static void
dot_example(const char *pat, char *out, size_t outsz)
{
	char fixed[LINT_FIELD_MAX * 2];
	size_t i, j = 0;

	/* The first position where the escaped copy has "\." and pat has "." alone. */
	bare_dots(pat, fixed, sizeof(fixed));
	snprintf(out, outsz, "%s", pat);
	for (i = 0; pat[i] != '\0' && fixed[j] != '\0'; i++, j++) {
		if (pat[i] == '.' && fixed[j] == '\\' && fixed[j + 1] == '.') {
			out[i] = 'x';
			break;
		}
		if (pat[i] != fixed[j])
			break;
		if (pat[i] == '\\' && pat[i + 1] != '\0') {
			i++;
			j++;
		}
	}
	/* Only the plain-name part reads well as an example: stop at the first
	 * regex construct. */
	out[strcspn(out, "\\()[]|?*+{}^$")] = '\0';
}

/* A pattern's name as a host reads it: "\." as "." (for the messages). */
static void
plain_name(const char *pat, char *out, size_t outsz)
{
	size_t o = 0;

	for (; *pat != '\0' && o + 1 < outsz; pat++) {
		if (*pat == '\\' && pat[1] != '\0')
			pat++;
		out[o++] = *pat;
	}
	out[o] = '\0';
}

static void
lint_pattern(struct lint *l, const struct policy_rule *r, const char *pat)
{
	char fixed[LINT_FIELD_MAX * 2], example[LINT_FIELD_MAX];
	const char *colon;
	size_t ncolon = 0, i;

	if (strstr(pat, "://") != NULL) {
		warn(l, r, "host pattern \"%s\" is a URL: the host column holds a host name "
		    "pattern only (scheme, port and path are matched elsewhere: ports column, "
		    "methods=)", pat);
		return;
	}
	if (strchr(pat, '/') != NULL) {
		warn(l, r, "host pattern \"%s\" contains \"/\": no host name does, so it matches "
		    "only what its regex syntax allows by accident; the host column holds no path",
		    pat);
		return;
	}
	for (i = 0; pat[i] != '\0'; i++)
		ncolon += pat[i] == ':';
	colon = strrchr(pat, ':');
	if (ncolon == 1 && colon[1] != '\0' && strspn(colon + 1, "0123456789") ==
	    strlen(colon + 1)) {
		warn(l, r, "host pattern \"%s\" looks like host:port: the port goes in the ports "
		    "column (\"%.*s\" and %s)", pat, (int)(colon - pat), pat, colon + 1);
		return;
	}
	if (pat[0] == '.' && is_name_char(pat[1])) {
		bare_dots(pat + 1, fixed, sizeof(fixed));
		plain_name(pat + 1, example, sizeof(example));
		warn(l, r, "host pattern \"%s\" starts with \".\" (Squid's .domain habit): the "
		    "pattern matches the whole host, so this matches e.g. \"x%s\", not %s nor its "
		    "subdomains; for a domain and its subdomains write \"(.+\\.)?%s\"", pat,
		    example, example, fixed);
		return;
	}
	if (pat[0] == '*' || (pat[0] == '.' && pat[1] == '*' && pat[2] == '.')) {
		bare_dots(pat + (pat[0] == '*' ? 2 : 3), fixed, sizeof(fixed));
		warn(l, r, "host pattern \"%s\" reads like a glob: it is a regular expression "
		    "matched against the whole host; for a domain and its subdomains write "
		    "\"(.+\\.)?%s\"", pat, fixed);
		return;
	}
	if (bare_dots(pat, fixed, sizeof(fixed)) > 0) {
		dot_example(pat, example, sizeof(example));
		warn(l, r, "host pattern \"%s\": an unescaped \".\" matches any character "
		    "(\"%s\" matches too); write \"%s\"", pat, example, fixed);
	}
}

static const char *
who_text(const struct policy_rule *r, char *buf, size_t len)
{
	switch (r->who) {
	case POLICY_WHO_ANY:
		return "any";
	case POLICY_WHO_AUTHENTICATED:
		return "authenticated";
	case POLICY_WHO_USER:
		snprintf(buf, len, "user:%s", r->who_name);
		return buf;
	case POLICY_WHO_GROUP:
		snprintf(buf, len, "group:%s", r->who_name);
		return buf;
	}
	return "?";
}

/* Everyone a matches includes everyone b matches (as the decision sees them). */
static bool
who_covers(const struct policy_rule *a, const struct policy_rule *b, bool no_identity)
{
	if (a->who == POLICY_WHO_ANY)
		return true;
	if (no_identity)
		return false;           /* a is skipped altogether */
	if (a->who == POLICY_WHO_AUTHENTICATED)
		return b->who != POLICY_WHO_ANY;
	return a->who == b->who && strcasecmp(a->who_name, b->who_name) == 0;
}

/* Every port of b's ranges lies in one of a's ranges. */
static bool
ports_cover(const struct policy_rule *a, const struct policy_rule *b)
{
	size_t i, j;
	unsigned cur;
	bool moved;

	if (a->any_port)
		return true;
	if (b->any_port)
		return false;
	for (i = 0; i < b->nports; i++) {
		cur = b->ports[i].lo;
		do {
			moved = false;
			for (j = 0; j < a->nports; j++)
				if (cur >= a->ports[j].lo && cur <= a->ports[j].hi) {
					cur = (unsigned)a->ports[j].hi + 1;
					moved = true;
				}
		} while (moved && cur <= b->ports[i].hi);
		if (cur <= b->ports[i].hi)
			return false;
	}
	return true;
}

static bool
methods_cover(const struct policy_rule *a, const struct policy_rule *b)
{
	size_t i, j;

	if (a->methods == NULL)
		return true;
	if (b->methods == NULL)
		return false;
	for (i = 0; i < b->nmethods; i++) {
		for (j = 0; j < a->nmethods; j++)
			if (strcmp(a->methods[j], b->methods[i]) == 0)
				break;
		if (j == a->nmethods)
			return false;
	}
	return true;
}

static bool
matches_every_host(const char *pat)
{
	return strcmp(pat, ".*") == 0 || strcmp(pat, ".+") == 0 || strcmp(pat, "(.*)") == 0;
}

/* The rule's text with runs of blanks as one space, for "written twice". */
static void
normalized(const char *text, char *out, size_t outsz)
{
	size_t o = 0;
	const char *p;

	for (p = text; *p != '\0' && o + 1 < outsz; p++) {
		if (*p == ' ' || *p == '\t') {
			if (o > 0 && out[o - 1] != ' ')
				out[o++] = ' ';
			continue;
		}
		out[o++] = *p;
	}
	while (o > 0 && out[o - 1] == ' ')
		o--;
	out[o] = '\0';
}

/* Per rule, what the ordering checks need, computed once. */
struct lrule {
	char *pat;                      /* the host field as written */
	char *norm;                     /* the rule text, blanks collapsed */
	size_t shadow;                  /* 1 + the earlier rule that answers first, 0 none */
	bool dup;                       /* ... and is the same rule written again */
};

static int
by_pattern(const void *x, const void *y, void *arg)
{
	const struct lrule *lr = arg;
	size_t i = *(const size_t *)x, j = *(const size_t *)y;
	int c = strcmp(lr[i].pat, lr[j].pat);

	return c != 0 ? c : (i > j) - (i < j);
}

/* Whether a (earlier) answers every request b could match; sets b's record. */
static bool
answers_first(const struct policy *p, struct lrule *lr, size_t a, size_t b, bool no_identity)
{
	const struct policy_rule *ra = &p->rules[a], *rb = &p->rules[b];

	if (no_identity && policy_rule_needs_identity(ra))
		return false;           /* skipped: it answers nothing */
	if (ra->report)
		return false;           /* mode=report: it never answers */
	if (strcmp(lr[a].norm, lr[b].norm) == 0) {
		lr[b].dup = true;
		lr[b].shadow = a + 1;
		return true;
	}
	if (who_covers(ra, rb, no_identity) && ports_cover(ra, rb) && methods_cover(ra, rb)) {
		lr[b].shadow = a + 1;
		lr[b].dup = false;
		return true;
	}
	return false;
}

/*
 * Rules are compared with the earlier rules of the same host pattern (sorted
 * together, so a policy of thousands of rules is not compared pairwise) and
 * with the earlier catch-all patterns.
 */
static int
lint_order(const struct policy *p, struct lrule *lr, bool no_identity)
{
	size_t *ix, *all, nall = 0, g, e, i, j;

	if ((ix = calloc(p->nrules + 1, sizeof(*ix))) == NULL ||
	    (all = calloc(p->nrules + 1, sizeof(*all))) == NULL) {
		free(ix);
		return -1;
	}
	for (i = 0; i < p->nrules; i++) {
		ix[i] = i;
		if (matches_every_host(lr[i].pat))
			all[nall++] = i;
	}
	qsort_r(ix, p->nrules, sizeof(*ix), by_pattern, lr);
	for (g = 0; g < p->nrules; g = e) {
		for (e = g + 1; e < p->nrules && strcmp(lr[ix[e]].pat, lr[ix[g]].pat) == 0; e++)
			;
		for (i = g + 1; i < e; i++)
			for (j = g; j < i; j++)
				if (answers_first(p, lr, ix[j], ix[i], no_identity))
					break;
	}
	for (i = 0; i < p->nrules; i++)
		for (j = 0; j < nall && all[j] < i; j++) {
			if (lr[i].shadow != 0 && lr[i].shadow <= all[j] + 1)
				break;
			if (answers_first(p, lr, all[j], i, no_identity))
				break;
		}
	free(ix);
	free(all);
	return 0;
}

size_t
policy_lint(const struct policy *p, bool no_identity, char **warnings)
{
	struct lint l;
	struct lrule *lr;
	char pat[LINT_FIELD_MAX], w[300], *buf = NULL;
	size_t len = 0, i;
	bool oom = false;

	memset(&l, 0, sizeof(l));
	*warnings = NULL;
	if ((lr = calloc(p->nrules + 1, sizeof(*lr))) == NULL)
		return 0;
	for (i = 0; i < p->nrules && !oom; i++) {
		field(p->rules[i].text, 2, pat, sizeof(pat));
		lr[i].pat = strdup(pat);
		lr[i].norm = malloc(strlen(p->rules[i].text) + 1);
		if (lr[i].pat == NULL || lr[i].norm == NULL)
			oom = true;
		else
			normalized(p->rules[i].text, lr[i].norm, strlen(p->rules[i].text) + 1);
	}
	if (!oom && lint_order(p, lr, no_identity) == -1)
		oom = true;
	l.f = oom ? NULL : open_memstream(&buf, &len);
	for (i = 0; i < p->nrules && l.f != NULL; i++) {
		const struct policy_rule *r = &p->rules[i], *a;

		if (r->list < 0)
			lint_pattern(&l, r, lr[i].pat);
		else if (plists_entries(p->lists, r->list) == 0)
			warn(&l, r, "list %s has no entries: the rule matches nothing",
			    plists_name(p->lists, r->list));
		if (no_identity && policy_rule_needs_identity(r))
			warn(&l, r, "rule for %s never matches: the configuration says \"auth "
			    "none\", so nobody is authenticated (the rule is skipped)",
			    who_text(r, w, sizeof(w)));
		else if (lr[i].dup)
			warn(&l, r, "duplicate of %s", p->rules[lr[i].shadow - 1].ref);
		else if (lr[i].shadow != 0) {
			a = &p->rules[lr[i].shadow - 1];
			warn(&l, r, "%s: %s (%s %s) comes first and matches every request this "
			    "rule could match", r->report ? "never reports anything" :
			    "never decides anything", a->ref, who_text(a, w, sizeof(w)),
			    lr[lr[i].shadow - 1].pat);
		}
	}
	if (l.f != NULL && p->lists != NULL)
		l.n += plists_lint(p->lists, list_warn, l.f);
	for (i = 0; i < p->nrules; i++) {
		free(lr[i].pat);
		free(lr[i].norm);
	}
	free(lr);
	if (l.f != NULL && fclose(l.f) == 0 && l.n > 0)
		*warnings = buf;
	else
		free(buf);
	return l.n;
}
