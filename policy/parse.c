/*
 * parse — the admins' rule file, read into an immutable struct policy.
 *
 *	# action  who                 host (PCRE2)           ports            options
 *	allow     group:engineering   (.+\.)?github\.com     443
 *	allow     any                 deb\.debian\.org       80               methods=GET,HEAD
 *
 * One rule a line, fields separated by spaces or tabs.  A '#' that starts a
 * field starts a comment that runs to the end of the line (a '#' inside a field
 * is an ordinary byte: host patterns never need one at the start).  A CR before
 * the LF is ignored, so a file saved on Windows still reads.
 *
 * The difficulty is the person at the other end: an admin editing under
 * pressure.  Every mistake must be caught before the file is in force and
 * pointed at precisely, so the parser never stops at the first error: it
 * checks every field of every line, collects "FILE:LINE: message" for each
 * problem, and refuses the whole file if there is any.  Things that are
 * probably mistakes are errors too: port 0, ranges out of order, empty list
 * items, an option given twice, sni= on a rule whose methods= cannot be
 * CONNECT.  Host patterns are compiled here, once, anchored at both ends with
 * compile options (not by wrapping the text in "^(?:...)$", which a pattern
 * with an unbalanced ")(" could escape) and JIT-compiled when the platform
 * allows it.
 *
 * A host field "@FILE" names a domain list instead (list.c), read here with
 * the policy, relative to the policy file's folder: its bad entries are
 * errors of the load like any other ("LIST:LINE: message"), so a policy and
 * its lists are taken or refused together.  "mode=report" marks a deny rule
 * that never decides (decide.c); on an allow rule it is an error.
 */
#include "policy/policy.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "policy/rule.h"

#define POLICY_FILE_MAX (64u * 1024 * 1024)     /* a bigger rule file is a mistake */
#define POLICY_LIST_MAX (4ull * 1024 * 1024 * 1024) /* a list: tens of millions of names */
#define POLICY_FIELDS_MAX 16                    /* 4 fixed fields + options */

/* The growing "FILE:LINE: message\n" text of one load. */
struct perr {
	char *buf;
	size_t len;
	size_t cap;
	size_t count;
	bool oom;                       /* an allocation failed: report that instead */
};

/* One load in progress. */
struct pload {
	const char *name;               /* display name */
	size_t line;                    /* current line number, 1-based */
	struct perr err;
	struct policy *p;
	size_t rules_cap;
	policy_list_reader *read_list;  /* how @FILE lists are read; NULL: files, from dir */
	void *read_arg;
	const struct list_dir *dir;
};

/* The folder lists are relative to: the policy file's, or the current one. */
struct list_dir {
	const char *dir;                /* NULL: the current folder */
	size_t len;
};

static int stream_list(struct pload *, const char *name, int *id, const char **why);

static void perr_vadd(struct perr *, const char *, va_list) __attribute__((format(printf, 2, 0)));
static void perr_add(struct perr *, const char *, ...) __attribute__((format(printf, 2, 3)));
static void line_error(struct pload *, const char *, ...) __attribute__((format(printf, 2, 3)));

static void
perr_vadd(struct perr *e, const char *fmt, va_list ap)
{
	va_list ap2;
	int n;
	char *nb;
	size_t ncap;

	e->count++;
	if (e->oom)
		return;
	va_copy(ap2, ap);
	n = vsnprintf(NULL, 0, fmt, ap2);
	va_end(ap2);
	if (n < 0)
		return;
	if (e->len + (size_t)n + 2 > e->cap) {
		ncap = e->cap ? e->cap : 256;
		while (e->len + (size_t)n + 2 > ncap)
			ncap *= 2;
		if ((nb = realloc(e->buf, ncap)) == NULL) {
			e->oom = true;
			return;
		}
		e->buf = nb;
		e->cap = ncap;
	}
	vsnprintf(e->buf + e->len, e->cap - e->len, fmt, ap);
	e->len += (size_t)n;
	e->buf[e->len++] = '\n';
	e->buf[e->len] = '\0';
}

static void
perr_add(struct perr *e, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	perr_vadd(e, fmt, ap);
	va_end(ap);
}

/* Record an error at the current line: "FILE:LINE: message". */
static void
line_error(struct pload *l, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	perr_add(&l->err, "%s:%zu: %s", l->name, l->line, msg);
}

/*
 * Hand the collected errors to the caller as one malloc'd string.  An
 * allocation failure along the way still yields a message (or at worst NULL
 * from strdup, which the caller treats as "no detail").
 */
static char *
perr_take(struct perr *e, const char *name)
{
	char *s;

	if (e->oom) {
		free(e->buf);
		e->buf = NULL;
		if (asprintf(&s, "%s: out of memory while loading the policy\n", name) == -1)
			return NULL;
		return s;
	}
	s = e->buf;
	e->buf = NULL;
	return s;
}

/* A field: a byte range of the line. */
struct field {
	const char *s;
	size_t len;
};

static bool
field_is(const struct field *f, const char *word)
{
	return f->len == strlen(word) && memcmp(f->s, word, f->len) == 0;
}

static void
rule_clear(struct policy_rule *r)
{
	size_t i;

	free(r->who_name);
	r->who_name = NULL;
	pcre2_code_free(r->host);
	r->host = NULL;
	free(r->ports);
	r->ports = NULL;
	for (i = 0; i < r->nmethods; i++)
		free(r->methods[i]);
	free(r->methods);
	r->methods = NULL;
	free(r->ref);
	r->ref = NULL;
	free(r->text);
	r->text = NULL;
	free(r->prefix);
	r->prefix = NULL;
	free(r->suffix);
	r->suffix = NULL;
}

static void
policy_free(struct policy *p)
{
	size_t i;

	if (p == NULL)
		return;
	for (i = 0; i < p->nrules; i++)
		rule_clear(&p->rules[i]);
	free(p->rules);
	policy_index_free(p->index);
	plists_free(p->lists);
	free(p->report_rules);
	free(p->report_counts);
	pcre2_match_context_free(p->mctx);
	free(p);
}

/* ---- fields ------------------------------------------------------------ */

static int
parse_action(struct pload *l, const struct field *f, struct policy_rule *r)
{
	if (field_is(f, "allow"))
		r->allow = true;
	else if (field_is(f, "deny"))
		r->allow = false;
	else {
		line_error(l, "unknown action \"%.*s\" (expected allow or deny)",
		    (int)f->len, f->s);
		return -1;
	}
	return 0;
}

static int
parse_who(struct pload *l, const struct field *f, struct policy_rule *r)
{
	const char *name = NULL;
	size_t namelen = 0;

	if (field_is(f, "any"))
		r->who = POLICY_WHO_ANY;
	else if (field_is(f, "authenticated"))
		r->who = POLICY_WHO_AUTHENTICATED;
	else if (f->len >= 5 && memcmp(f->s, "user:", 5) == 0) {
		r->who = POLICY_WHO_USER;
		name = f->s + 5;
		namelen = f->len - 5;
	} else if (f->len >= 6 && memcmp(f->s, "group:", 6) == 0) {
		r->who = POLICY_WHO_GROUP;
		name = f->s + 6;
		namelen = f->len - 6;
	} else {
		line_error(l, "unknown principal \"%.*s\" (expected any, authenticated, "
		    "user:NAME or group:NAME)", (int)f->len, f->s);
		return -1;
	}
	if (name == NULL)
		return 0;
	if (namelen == 0) {
		line_error(l, "empty name in \"%.*s\"", (int)f->len, f->s);
		return -1;
	}
	if ((r->who_name = strndup(name, namelen)) == NULL) {
		l->err.oom = true;
		return -1;
	}
	return 0;
}

/* The literals the pattern requires, for the prefilter and the index. */
static int
parse_literals(struct pload *l, const struct field *f, struct policy_rule *r)
{
	struct policy_literals lit;

	policy_literals_extract(f->s, f->len, &lit);
	if (lit.prefixlen > 0) {
		if ((r->prefix = strndup(lit.prefix, lit.prefixlen)) == NULL) {
			l->err.oom = true;
			return -1;
		}
		r->prefixlen = lit.prefixlen;
	}
	if (lit.suffixlen > 0) {
		if ((r->suffix = strndup(lit.suffix, lit.suffixlen)) == NULL) {
			l->err.oom = true;
			return -1;
		}
		r->suffixlen = lit.suffixlen;
	}
	return 0;
}

/* The list's errors, as the policy's: "LIST:LINE: message". */
static void
list_error(void *arg, const char *name, size_t line, const char *msg)
{
	perr_add(&((struct pload *)arg)->err, "%s:%zu: %s", name, line, msg);
}

/*
 * "@FILE": the list, read once per load however many rules name it.  A list
 * that cannot be read is an error at the rule's line; a bad entry is an error
 * at the list's line.
 */
static int
parse_list(struct pload *l, const struct field *f, struct policy_rule *r)
{
	char *name, *text = NULL;
	const char *why = NULL;
	size_t len = 0;
	int id;

	if (f->len == 1) {
		line_error(l, "empty list name after \"@\" (write @FILE, a path relative to "
		    "the policy file's folder)");
		return -1;
	}
	if ((name = strndup(f->s + 1, f->len - 1)) == NULL ||
	    (l->p->lists == NULL && (l->p->lists = plists_new()) == NULL)) {
		free(name);
		l->err.oom = true;
		return -1;
	}
	if ((id = plists_find(l->p->lists, name)) >= 0) {
		free(name);
		r->list = id;
		return 0;
	}
	if (l->read_list == NULL) {
		/* A file, read a block at a time: never held whole in memory. */
		if (stream_list(l, name, &id, &why) == -1) {
			line_error(l, "cannot read list %s: %s", name, why);
			free(name);
			return -1;
		}
	} else {
		if (l->read_list(l->read_arg, name, &text, &len, &why) == -1) {
			line_error(l, "cannot read list %s: %s", name, why != NULL ? why : "error");
			free(name);
			return -1;
		}
		id = plists_add(l->p->lists, name, text, len, list_error, l);
		free(text);
	}
	free(name);
	if (id == -2)
		l->err.oom = true;
	if (id < 0)
		return -1;
	r->list = id;
	return 0;
}

static int
parse_host(struct pload *l, const struct field *f, struct policy_rule *r)
{
	PCRE2_UCHAR msg[256];
	PCRE2_SIZE off;
	int code;

	if (f->s[0] == '@')
		return parse_list(l, f, r);

	/*
	 * Anchored at both ends by option; caseless because hosts are compared
	 * without regard to case (they arrive lower-cased anyway, but an admin
	 * who writes "GitHub\.com" means github.com).
	 */
	r->host = pcre2_compile((PCRE2_SPTR)f->s, f->len,
	    PCRE2_CASELESS | PCRE2_ANCHORED | PCRE2_ENDANCHORED, &code, &off, NULL);
	if (r->host == NULL) {
		if (pcre2_get_error_message(code, msg, sizeof(msg)) < 0)
			snprintf((char *)msg, sizeof(msg), "error %d", code);
		line_error(l, "bad host pattern \"%.*s\": %s at offset %zu",
		    (int)f->len, f->s, (const char *)msg, (size_t)off);
		return -1;
	}
	/*
	 * JIT when the platform has it; otherwise the interpreter, under the
	 * same limits.  A JIT failure is not an error in the file.
	 */
	(void)pcre2_jit_compile(r->host, PCRE2_JIT_COMPLETE);
	return parse_literals(l, f, r);
}

/* One port number: 1..5 decimal digits, 1..65535.  Returns it, or -1 after reporting. */
static long
parse_port_number(struct pload *l, const char *s, size_t len, const struct field *whole)
{
	long v = 0;
	size_t i;

	if (len == 0) {
		line_error(l, "empty item in port list \"%.*s\"", (int)whole->len, whole->s);
		return -1;
	}
	for (i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9') {
			line_error(l, "bad port \"%.*s\" in \"%.*s\" (expected *, a port, N-M or "
			    "a comma list)", (int)len, s, (int)whole->len, whole->s);
			return -1;
		}
		if (v <= 65535)
			v = v * 10 + (s[i] - '0');
	}
	if (v == 0) {
		line_error(l, "port 0 in \"%.*s\" (ports are 1-65535)", (int)whole->len, whole->s);
		return -1;
	}
	if (v > 65535) {
		line_error(l, "port %.*s out of range in \"%.*s\" (ports are 1-65535)",
		    (int)len, s, (int)whole->len, whole->s);
		return -1;
	}
	return v;
}

static int
parse_ports(struct pload *l, const struct field *f, struct policy_rule *r)
{
	const char *item, *end, *comma, *dash;
	size_t n, cap = 0;
	long lo, hi;
	struct policy_ports *np;
	int bad = 0;

	if (field_is(f, "*")) {
		r->any_port = true;
		return 0;
	}
	end = f->s + f->len;
	for (item = f->s; item != NULL; item = comma == end ? NULL : comma + 1) {
		if ((comma = memchr(item, ',', (size_t)(end - item))) == NULL)
			comma = end;
		n = (size_t)(comma - item);
		if (n == 1 && item[0] == '*') {
			line_error(l, "\"*\" must stand alone in \"%.*s\"", (int)f->len, f->s);
			bad = -1;
			continue;
		}
		if ((dash = memchr(item, '-', n)) != NULL) {
			lo = parse_port_number(l, item, (size_t)(dash - item), f);
			hi = parse_port_number(l, dash + 1, (size_t)(comma - dash - 1), f);
			if (lo != -1 && hi != -1 && lo > hi) {
				line_error(l, "port range %.*s is out of order", (int)n, item);
				lo = -1;
			}
		} else
			lo = hi = parse_port_number(l, item, n, f);
		if (lo == -1 || hi == -1) {
			bad = -1;
			continue;
		}
		if (r->nports == cap) {
			cap = cap ? cap * 2 : 4;
			if ((np = reallocarray(r->ports, cap, sizeof(*np))) == NULL) {
				l->err.oom = true;
				return -1;
			}
			r->ports = np;
		}
		r->ports[r->nports].lo = (uint16_t)lo;
		r->ports[r->nports].hi = (uint16_t)hi;
		r->nports++;
	}
	return bad;
}

/* RFC 9110 tchar: what a method token may be made of. */
static bool
is_tchar(unsigned char c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
		return true;
	return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/*
 * Methods are case-sensitive and compared exactly; every registered method is
 * upper case.  A lower-case letter in the file is an admin's slip ("methods=get"
 * would never match GET, and "deny ... methods=post" would never deny POST), so
 * it is an error rather than a rule that silently matches nothing.
 */
static bool
method_has_lower(const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (s[i] >= 'a' && s[i] <= 'z')
			return true;
	return false;
}

/* s[0..n) in upper case into out (truncated to fit), for the error message. */
static void
method_suggest(const char *s, size_t n, char *out, size_t outsz)
{
	size_t i;

	for (i = 0; i < n && i + 1 < outsz; i++)
		out[i] = s[i] >= 'a' && s[i] <= 'z' ? (char)(s[i] - 'a' + 'A') : s[i];
	out[i] = '\0';
}

static int
parse_methods(struct pload *l, const char *s, size_t len, struct policy_rule *r)
{
	const char *item, *end = s + len, *comma;
	char **nm, *m, upper[64];
	size_t n, i, j, cap = 0;
	int bad = 0;

	if (len == 0) {
		line_error(l, "empty method list in \"methods=\"");
		return -1;
	}
	for (item = s; item != NULL; item = comma == end ? NULL : comma + 1) {
		if ((comma = memchr(item, ',', (size_t)(end - item))) == NULL)
			comma = end;
		n = (size_t)(comma - item);
		if (n == 0) {
			line_error(l, "empty item in \"methods=%.*s\"", (int)len, s);
			bad = -1;
			continue;
		}
		for (i = 0; i < n; i++)
			if (!is_tchar((unsigned char)item[i]))
				break;
		if (i < n) {
			line_error(l, "bad method \"%.*s\" in \"methods=%.*s\"",
			    (int)n, item, (int)len, s);
			bad = -1;
			continue;
		}
		if (method_has_lower(item, n)) {
			method_suggest(item, n, upper, sizeof(upper));
			line_error(l, "method \"%.*s\" in \"methods=%.*s\": methods are "
			    "case-sensitive; did you mean %s?", (int)n, item, (int)len, s, upper);
			bad = -1;
			continue;
		}
		if ((m = strndup(item, n)) == NULL) {
			l->err.oom = true;
			return -1;
		}
		for (j = 0; j < r->nmethods; j++)
			if (strcmp(r->methods[j], m) == 0)
				break;
		if (j < r->nmethods) {
			line_error(l, "method %s listed twice in \"methods=%.*s\"", m,
			    (int)len, s);
			free(m);
			bad = -1;
			continue;
		}
		if (r->nmethods == cap) {
			cap = cap ? cap * 2 : 4;
			if ((nm = reallocarray(r->methods, cap, sizeof(*nm))) == NULL) {
				free(m);
				l->err.oom = true;
				return -1;
			}
			r->methods = nm;
		}
		r->methods[r->nmethods++] = m;
	}
	return bad;
}

static int
parse_options(struct pload *l, const struct field *f, size_t nf, struct policy_rule *r)
{
	bool seen_methods = false, seen_sni = false, seen_mode = false, connect = false;
	const char *v;
	size_t i, vlen;
	int bad = 0;

	for (i = 0; i < nf; i++) {
		if (f[i].len >= 8 && memcmp(f[i].s, "methods=", 8) == 0) {
			if (seen_methods) {
				line_error(l, "option \"methods=\" given twice");
				bad = -1;
				continue;
			}
			seen_methods = true;
			if (parse_methods(l, f[i].s + 8, f[i].len - 8, r) == -1)
				bad = -1;
		} else if (f[i].len >= 4 && memcmp(f[i].s, "sni=", 4) == 0) {
			if (seen_sni) {
				line_error(l, "option \"sni=\" given twice");
				bad = -1;
				continue;
			}
			seen_sni = true;
			v = f[i].s + 4;
			vlen = f[i].len - 4;
			if (vlen == 7 && memcmp(v, "require", 7) == 0)
				r->sni = POLICY_SNI_REQUIRE;
			else if (vlen == 8 && memcmp(v, "optional", 8) == 0)
				r->sni = POLICY_SNI_OPTIONAL;
			else if (vlen == 3 && memcmp(v, "off", 3) == 0)
				r->sni = POLICY_SNI_OFF;
			else {
				line_error(l, "bad value \"%.*s\" for sni= (expected require, "
				    "optional or off)", (int)vlen, v);
				bad = -1;
			}
		} else if (f[i].len >= 5 && memcmp(f[i].s, "mode=", 5) == 0) {
			if (seen_mode) {
				line_error(l, "option \"mode=\" given twice");
				bad = -1;
				continue;
			}
			seen_mode = true;
			if (f[i].len == 11 && memcmp(f[i].s + 5, "report", 6) == 0)
				r->report = true;
			else {
				line_error(l, "bad value \"%.*s\" for mode= (expected report)",
				    (int)f[i].len - 5, f[i].s + 5);
				bad = -1;
			}
		} else {
			line_error(l, "unknown option \"%.*s\" (expected methods=LIST, "
			    "sni=require|optional|off or mode=report)", (int)f[i].len, f[i].s);
			bad = -1;
		}
	}
	/*
	 * A report rule tries a deny on live traffic without enforcing it; an
	 * allow that does not allow would be a deny nobody asked for, or
	 * nothing at all.
	 */
	if (r->report && r->allow) {
		line_error(l, "option \"mode=report\" applies to deny rules only (it tries a "
		    "deny without enforcing it)");
		bad = -1;
	}
	/*
	 * sni= only means something for CONNECT; on a rule whose method list
	 * cannot match CONNECT it is a contradiction the admin should hear about.
	 */
	if (seen_sni && seen_methods && bad == 0) {
		for (i = 0; i < r->nmethods; i++)
			if (strcmp(r->methods[i], "CONNECT") == 0)
				connect = true;
		if (!connect) {
			line_error(l, "option \"sni=\" applies to CONNECT only, but methods= "
			    "does not include CONNECT");
			bad = -1;
		}
	}
	return bad;
}

/* ---- lines ------------------------------------------------------------- */

static int
policy_add_rule(struct pload *l, struct policy_rule *r)
{
	struct policy_rule *nr;
	size_t ncap;

	if (l->p->nrules == l->rules_cap) {
		ncap = l->rules_cap ? l->rules_cap * 2 : 16;
		if ((nr = reallocarray(l->p->rules, ncap, sizeof(*nr))) == NULL) {
			l->err.oom = true;
			return -1;
		}
		l->p->rules = nr;
		l->rules_cap = ncap;
	}
	l->p->rules[l->p->nrules++] = *r;
	return 0;
}

static const char *const field_names[] = { "action", "principal (who)", "host pattern", "ports" };

/*
 * One line s[0..len), without its LF.  Checks every field even after an error
 * so that one pass reports everything wrong with the line.
 */
static void
parse_line(struct pload *l, const char *s, size_t len)
{
	struct field f[POLICY_FIELDS_MAX];
	struct policy_rule r;
	const char *p = s, *end = s + len, *start;
	size_t nf = 0, i;
	int bad = 0;

	if (len > 0 && s[len - 1] == '\r')
		end--;
	for (p = s; p < end; p++) {
		if ((unsigned char)*p < 0x20 && *p != '\t') {
			line_error(l, "control character 0x%02x in line",
			    (unsigned)(unsigned char)*p);
			return;
		}
		if ((unsigned char)*p == 0x7f) {
			line_error(l, "control character 0x7f in line");
			return;
		}
	}
	for (p = s; p < end;) {
		while (p < end && (*p == ' ' || *p == '\t'))
			p++;
		if (p == end || *p == '#')
			break;
		start = p;
		while (p < end && *p != ' ' && *p != '\t')
			p++;
		if (nf == POLICY_FIELDS_MAX) {
			line_error(l, "too many fields (a rule is: action who host ports [options])");
			return;
		}
		f[nf].s = start;
		f[nf].len = (size_t)(p - start);
		nf++;
	}
	if (nf == 0)
		return;                         /* blank or comment */
	if (nf < 4) {
		line_error(l, "missing %s (a rule is: action who host ports [options])",
		    field_names[nf]);
		return;
	}

	memset(&r, 0, sizeof(r));
	r.sni = POLICY_SNI_REQUIRE;
	r.list = -1;
	bad |= parse_action(l, &f[0], &r);
	bad |= parse_who(l, &f[1], &r);
	bad |= parse_host(l, &f[2], &r);
	bad |= parse_ports(l, &f[3], &r);
	bad |= parse_options(l, &f[4], nf - 4, &r);
	if (bad != 0 || l->err.count > 0) {
		/* The file is refused anyway: only its errors matter now. */
		rule_clear(&r);
		return;
	}
	if (asprintf(&r.ref, "%s:%zu", l->name, l->line) == -1) {
		r.ref = NULL;
		l->err.oom = true;
	}
	i = nf - 1;
	r.text = strndup(f[0].s, (size_t)(f[i].s + f[i].len - f[0].s));
	if (r.ref == NULL || r.text == NULL || policy_add_rule(l, &r) == -1) {
		l->err.oom = true;
		rule_clear(&r);
	}
}

/* Number the report rules and give each its counter. */
static int
report_rules_build(struct policy *p)
{
	size_t i, n = 0;

	for (i = 0; i < p->nrules; i++)
		n += p->rules[i].report;
	if (n == 0)
		return 0;
	if ((p->report_rules = calloc(n, sizeof(*p->report_rules))) == NULL ||
	    (p->report_counts = calloc(n, sizeof(*p->report_counts))) == NULL)
		return -1;
	for (i = 0; i < p->nrules; i++)
		if (p->rules[i].report) {
			p->report_rules[p->nreports] = (uint32_t)i;
			atomic_init(&p->report_counts[p->nreports], 0);
			p->rules[i].report_id = (uint32_t)++p->nreports;
		}
	return 0;
}

static struct policy *
load_buffer(const char *text, size_t len, const char *display_name,
    policy_list_reader *read_list, void *arg, const struct list_dir *dir, char **errors)
{
	struct pload l;
	const char *p, *end = text + len, *nl;

	*errors = NULL;
	memset(&l, 0, sizeof(l));
	l.name = display_name;
	l.read_list = read_list;
	l.read_arg = arg;
	l.dir = dir;
	if ((l.p = calloc(1, sizeof(*l.p))) == NULL) {
		l.err.oom = true;
		*errors = perr_take(&l.err, display_name);
		return NULL;
	}
	atomic_init(&l.p->refs, 1);
	if ((l.p->mctx = pcre2_match_context_create(NULL)) == NULL)
		l.err.oom = true;
	else {
		pcre2_set_match_limit(l.p->mctx, POLICY_MATCH_LIMIT);
		pcre2_set_depth_limit(l.p->mctx, POLICY_DEPTH_LIMIT);
	}

	/* An invisible UTF-8 BOM (Windows editors) is not part of the first rule. */
	if (len >= 3 && memcmp(text, "\xef\xbb\xbf", 3) == 0)
		text += 3;
	for (p = text; p < end && !l.err.oom; p = nl + 1) {
		l.line++;
		if ((nl = memchr(p, '\n', (size_t)(end - p))) == NULL)
			nl = end;
		if (memchr(p, '\0', (size_t)(nl - p)) != NULL) {
			line_error(&l, "NUL byte in line (is this a text file?)");
			continue;
		}
		parse_line(&l, p, (size_t)(nl - p));
	}

	if (l.err.count == 0 && !l.err.oom &&
	    (report_rules_build(l.p) == -1 || policy_index_build(l.p) == -1))
		l.err.oom = true;
	if (l.err.count > 0 || l.err.oom) {
		policy_free(l.p);
		*errors = perr_take(&l.err, display_name);
		return NULL;
	}
	free(l.err.buf);
	return l.p;
}

static const char not_regular[] = "not a regular file";
static const char too_large[] = "file too large";

/*
 * Read the regular file at path, at most max bytes, into a malloc'd *buf
 * (one byte more than *len, so that an empty file still gets one).  -1 with
 * *why a static reason (strerror's, or ours).
 */
static int
read_file(const char *path, size_t max, char **buf, size_t *len, const char **why)
{
	struct stat st;
	size_t got = 0;
	ssize_t n;
	int fd;

	*buf = NULL;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)) == -1) {
		*why = strerror(errno);
		return -1;
	}
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode)) {
		*why = not_regular;
		close(fd);
		return -1;
	}
	if ((uintmax_t)st.st_size > max) {
		*why = too_large;
		close(fd);
		return -1;
	}
	if ((*buf = malloc((size_t)st.st_size + 1)) == NULL) {
		*why = "out of memory";
		close(fd);
		return -1;
	}
	/* Read what fstat promised; a file that changes under us is read as it was. */
	while (got < (size_t)st.st_size) {
		n = read(fd, *buf + got, (size_t)st.st_size - got);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			*why = strerror(errno);
			free(*buf);
			*buf = NULL;
			close(fd);
			return -1;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	*len = got;
	return 0;
}

#define LIST_BLOCK (1024u * 1024)            /* a list is read this much at a time */

/*
 * Read list `name` (relative to l->dir) into the policy's lists a block at a
 * time.  0 with *id as plists_add gives it, or -1 with *why: the file could
 * not be read (not opened, not a regular file, too large, a read error).
 */
static int
stream_list(struct pload *l, const char *name, int *id, const char **why)
{
	struct plist_reader *rd;
	struct stat st;
	char *path = NULL, *buf = NULL;
	ssize_t n;
	int fd, rc = -1;

	if (name[0] != '/' && l->dir->dir != NULL &&
	    asprintf(&path, "%.*s/%s", (int)l->dir->len, l->dir->dir, name) == -1) {
		*why = "out of memory";
		return -1;
	}
	/* O_NONBLOCK: a FIFO named by mistake must not hang the load (files ignore it). */
	fd = open(path != NULL ? path : name, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	free(path);
	if (fd == -1) {
		*why = strerror(errno);
		return -1;
	}
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode)) {
		*why = not_regular;
		goto out;
	}
	if ((uintmax_t)st.st_size > POLICY_LIST_MAX) {
		*why = too_large;
		goto out;
	}
	if ((buf = malloc(LIST_BLOCK)) == NULL ||
	    (rd = plists_open(l->p->lists, name, (size_t)st.st_size, list_error, l)) == NULL) {
		*why = "out of memory";
		goto out;
	}
	for (;;) {
		n = read(fd, buf, LIST_BLOCK);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		if (plists_feed(rd, buf, (size_t)n) == -1)
			break;
	}
	if (n == -1) {
		*why = strerror(errno);
		(void)plists_close(rd);
		goto out;
	}
	*id = plists_close(rd);
	rc = 0;
out:
	free(buf);
	close(fd);
	return rc;
}

struct policy *
policy_load_buffer_with(const char *text, size_t len, const char *display_name,
    policy_list_reader *read_list, void *arg, char **errors)
{
	return load_buffer(text, len, display_name, read_list, arg, NULL, errors);
}

struct policy *
policy_load_buffer(const char *text, size_t len, const char *display_name, char **errors)
{
	static const struct list_dir here = { NULL, 0 };

	return load_buffer(text, len, display_name, NULL, NULL, &here, errors);
}

struct policy *
policy_load(const char *path, const char *display_name, char **errors)
{
	struct list_dir d = { NULL, 0 };
	struct policy *p;
	const char *why = NULL, *slash;
	char *buf = NULL;
	size_t got = 0;

	*errors = NULL;
	if (read_file(path, POLICY_FILE_MAX, &buf, &got, &why) == -1) {
		if ((why == not_regular ? asprintf(errors, "%s: %s is not a regular file\n",
		    display_name, path) : why == too_large ? asprintf(errors, "%s: %s is larger "
		    "than %u bytes\n", display_name, path, POLICY_FILE_MAX) :
		    asprintf(errors, "%s: cannot open %s: %s\n", display_name, path, why)) == -1)
			*errors = NULL;
		return NULL;
	}
	/* Lists are relative to the policy file's folder, wherever egressd runs. */
	if ((slash = strrchr(path, '/')) != NULL) {
		d.dir = path;
		d.len = slash == path ? 1 : (size_t)(slash - path);
		if (slash == path)
			d.dir = "/";
	}
	p = load_buffer(buf, got, display_name, NULL, NULL, &d, errors);
	free(buf);
	return p;
}

#define POLICY_FREE_ASIDE 200000    /* list entries past which a free is done aside */

static void *
policy_free_thread(void *arg)
{
	policy_free(arg);
	return NULL;
}

/*
 * The last reference to an old policy is usually dropped by a worker, on its
 * event loop, after a reload.  Giving back a million list entries (some
 * 65 MB of mapped pages) takes milliseconds that no request should wait for,
 * so a big policy is freed on a short-lived thread of its own; a small one,
 * or when no thread can be had, right here.
 */
static void
policy_free_soon(struct policy *p)
{
	pthread_attr_t attr;
	pthread_t t;
	bool aside = false;

	if (policy_entry_count(p) >= POLICY_FREE_ASIDE && pthread_attr_init(&attr) == 0) {
		aside = pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED) == 0 &&
		    pthread_create(&t, &attr, policy_free_thread, p) == 0;
		pthread_attr_destroy(&attr);
	}
	if (!aside)
		policy_free(p);
}

struct policy *
policy_ref(struct policy *p)
{
	/* Relaxed: taking a reference needs one already held, so no ordering. */
	atomic_fetch_add_explicit(&p->refs, 1, memory_order_relaxed);
	return p;
}

void
policy_unref(struct policy *p)
{
	if (p == NULL)
		return;
	/*
	 * Release on the way down, acquire before the free: every thread's last
	 * reads of the policy happen before the memory is given back.
	 */
	if (atomic_fetch_sub_explicit(&p->refs, 1, memory_order_release) == 1) {
		atomic_thread_fence(memory_order_acquire);
		policy_free_soon(p);
	}
}

size_t
policy_rule_count(const struct policy *p)
{
	return p->nrules;
}

size_t
policy_list_count(const struct policy *p)
{
	return p->lists != NULL ? plists_count(p->lists) : 0;
}

size_t
policy_entry_count(const struct policy *p)
{
	return p->lists != NULL ? plists_total(p->lists) : 0;
}

void
policy_report_count(const struct policy *p, const struct policy_decision *d)
{
	if (p == NULL || d->report_id == 0 || d->report_id > p->nreports)
		return;
	/* Relaxed: a counter, read by /metrics with no ordering to keep. */
	atomic_fetch_add_explicit(&p->report_counts[d->report_id - 1], 1, memory_order_relaxed);
}

size_t
policy_report_rules(const struct policy *p)
{
	return p->nreports;
}

const char *
policy_report_rule(const struct policy *p, size_t i, uint64_t *matches)
{
	*matches = atomic_load_explicit(&p->report_counts[i], memory_order_relaxed);
	return p->rules[p->report_rules[i]].ref;
}

void
policy_report_merge(struct policy_decision *into, const struct policy_decision *from)
{
	if (into->report != NULL || from->report == NULL)
		return;
	into->report = from->report;
	into->report_text = from->report_text;
	into->report_list = from->report_list;
	into->report_line = from->report_line;
	into->report_id = from->report_id;
}
