/*
 * test_policy_list — @FILE domain lists and mode=report rules.
 *
 * Lists: what an entry matches (exact, .suffix, IP literals in every
 * spelling, case and a trailing dot), comments, CRLF and a BOM; every bad
 * entry as LIST:LINE refusing the whole policy; a list that cannot be read
 * named at the rule's line; files read relative to the policy's folder;
 * first match across list and pattern rules; more lists holding one host
 * than a decision tracks; the lint's duplicate and covered entries.
 * Report rules: never decide, the first one named, deny only, counted.
 */
#include "policy/policy.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "policy/list.h"                /* the list store itself */
#include "policy/rule.h"                /* POLICY_LIST_HITS_MAX */

/* In-memory lists for policy_load_buffer_with: name -> text. */
struct mem_list {
	const char *name;
	const char *text;
};

static const struct mem_list *lists;

static int
read_mem(void *arg, const char *name, char **text, size_t *len, const char **why)
{
	const struct mem_list *l;

	for (l = lists; l != NULL && l->name != NULL; l++)
		if (strcmp(l->name, name) == 0) {
			*len = strlen(l->text);
			*text = strdup(l->text);
			return 0;
		}
	*why = "No such file or directory";
	return -1;
}

static struct policy *
load_with(const char *text, const struct mem_list *ls, char **err)
{
	lists = ls;
	*err = NULL;
	return policy_load_buffer_with(text, strlen(text), "t.rules", read_mem, NULL, err);
}

static struct policy *
load_ok(const char *text, const struct mem_list *ls)
{
	struct policy *p;
	char *err;

	if ((p = load_with(text, ls, &err)) == NULL)
		fail_msg("unexpected errors:\n%s", err ? err : "(none)");
	return p;
}

static void
expect_refused(const char *text, const struct mem_list *ls, const char *want)
{
	struct policy *p;
	char *err;

	p = load_with(text, ls, &err);
	assert_null(p);
	assert_non_null(err);
	if (strstr(err, want) == NULL)
		fail_msg("want \"%s\" in:\n%s", want, err);
	free(err);
}

static struct policy_decision
decide(const struct policy *p, const char *user, const char *host, uint16_t port)
{
	struct policy_request req;
	struct policy_decision d, lin;

	memset(&req, 0, sizeof(req));
	req.user = user;
	req.method = "CONNECT";
	req.host = host;
	req.port = port;
	policy_decide(p, &req, &d);
	policy_decide_linear(p, &req, &lin);
	assert_ptr_equal(d.rule, lin.rule);
	assert_ptr_equal(d.report, lin.report);
	assert_int_equal(d.list_line, lin.list_line);
	return d;
}

/* "rule" or "rule via list:line" of host's decision; "default" for none. */
static const char *
who_decides(const struct policy *p, const char *host)
{
	static char buf[256];
	struct policy_decision d = decide(p, NULL, host, 443);

	if (d.rule == NULL)
		return "default";
	if (d.list == NULL)
		return d.rule;
	snprintf(buf, sizeof(buf), "%s via %s:%u", d.rule, d.list, d.list_line);
	return buf;
}

static void
test_entries_match(void **state)
{
	static const struct mem_list ls[] = {
		{ "a.list",
		  "\xef\xbb\xbf# the allowed names\r\n"
		  "example.com\r\n"
		  "  .GitHub.COM.   # and everything under it\n"
		  "\n"
		  "192.0.2.1\n"
		  "::ffff:192.0.2.2\n"
		  "2001:DB8:0:0::1\n"
		  "\t\tdeep.a.b.example.net\n" },
		{ NULL, NULL } };
	struct policy *p = load_ok("allow any @a.list 443\n", ls);

	assert_string_equal(who_decides(p, "example.com"), "t.rules:1 via a.list:2");
	assert_string_equal(who_decides(p, "EXAMPLE.com"), "t.rules:1 via a.list:2");
	assert_string_equal(who_decides(p, "www.example.com"), "default");
	assert_string_equal(who_decides(p, "xexample.com"), "default");
	assert_string_equal(who_decides(p, "github.com"), "t.rules:1 via a.list:3");
	assert_string_equal(who_decides(p, "api.github.com"), "t.rules:1 via a.list:3");
	assert_string_equal(who_decides(p, "a.b.c.github.com"), "t.rules:1 via a.list:3");
	assert_string_equal(who_decides(p, "notgithub.com"), "default");
	assert_string_equal(who_decides(p, "github.com.evil.net"), "default");
	assert_string_equal(who_decides(p, "192.0.2.1"), "t.rules:1 via a.list:5");
	/* An IPv4-mapped entry is its IPv4 address, as hosts are. */
	assert_string_equal(who_decides(p, "192.0.2.2"), "t.rules:1 via a.list:6");
	assert_string_equal(who_decides(p, "192.0.2.3"), "default");
	assert_string_equal(who_decides(p, "2001:db8::1"), "t.rules:1 via a.list:7");
	assert_string_equal(who_decides(p, "deep.a.b.example.net"), "t.rules:1 via a.list:8");
	assert_string_equal(who_decides(p, "a.b.example.net"), "default");
	assert_string_equal(who_decides(p, ""), "default");
	/* The port column still applies. */
	assert_null(decide(p, NULL, "example.com", 80).rule);
	assert_int_equal(policy_list_count(p), 1);
	assert_int_equal(policy_entry_count(p), 6);
	policy_unref(p);
}

/* The most specific entry is named: the exact one before a parent's .suffix. */
static void
test_most_specific_entry(void **state)
{
	static const struct mem_list ls[] = {
		{ "a.list", ".example.com\nwww.example.com\n.www.example.com\n" },
		{ NULL, NULL } };
	struct policy *p = load_ok("allow any @a.list *\n", ls);

	assert_string_equal(who_decides(p, "www.example.com"), "t.rules:1 via a.list:2");
	assert_string_equal(who_decides(p, "x.www.example.com"), "t.rules:1 via a.list:3");
	assert_string_equal(who_decides(p, "example.com"), "t.rules:1 via a.list:1");
	policy_unref(p);
}

static void
test_bad_entries(void **state)
{
	static const struct mem_list ls[] = {
		{ "bad.list",
		  "good.example\n"
		  "*.example.com\n"
		  "http://example.com/\n"
		  "example.com:443\n"
		  "[2001:db8::1]\n"
		  ".192.0.2.1\n"
		  "127.1\n"
		  "two.example three.example\n"
		  "a..b\n"
		  ".\n"
		  "bad_char!.example\n"
		  "fine.example # comment\n" },
		{ "ok.list", "fine.example\n" },
		{ NULL, NULL } };
	const char *want[] = {
		"bad.list:2: bad entry \"*.example.com\": not a glob; write \".example.com\"",
		"bad.list:3: bad entry \"http://example.com/\"",
		"bad.list:4: bad entry \"example.com:443\": looks like host:port",
		"bad.list:5: bad entry \"[2001:db8::1]\": write an IPv6 address without brackets",
		"bad.list:6: bad entry \".192.0.2.1\": a .suffix entry needs a domain name",
		"bad.list:7: bad entry \"127.1\": numeric host not in canonical IPv4 form",
		"bad.list:8: more than one entry on the line",
		"bad.list:9: bad entry \"a..b\": empty label",
		"bad.list:10: bad entry \".\"",
		"bad.list:11: bad entry \"bad_char!.example\": invalid character",
	};
	struct policy *p;
	char *err;
	size_t i, lines = 0;

	p = load_with("allow any @ok.list 443\nallow any @bad.list 443\n", ls, &err);
	assert_null(p);
	assert_non_null(err);
	for (i = 0; i < sizeof(want) / sizeof(want[0]); i++)
		if (strstr(err, want[i]) == NULL)
			fail_msg("want \"%s\" in:\n%s", want[i], err);
	for (i = 0; err[i] != '\0'; i++)
		lines += err[i] == '\n';
	assert_int_equal(lines, sizeof(want) / sizeof(want[0]));  /* good lines say nothing */
	assert_null(strstr(err, "bad.list:1:"));
	assert_null(strstr(err, "bad.list:12:"));
	free(err);
}

static void
test_list_file_errors(void **state)
{
	static const struct mem_list ls[] = { { "a.list", "a.example\n" }, { NULL, NULL } };
	static char big[200 * 8];
	static const struct mem_list many[] = { { "junk.list", big }, { NULL, NULL } };
	size_t i;

	expect_refused("allow any @a.list 443\ndeny any @missing.list *\n", ls,
	    "t.rules:2: cannot read list missing.list: No such file or directory");
	expect_refused("allow any @ 443\n", ls, "t.rules:1: empty list name after \"@\"");
	/* A list error and a rule error are both reported. */
	expect_refused("allow any @missing.list 443\nallow anyone x 443\n", ls,
	    "t.rules:2: unknown principal");
	expect_refused("allow any @a.list 443\nallow any @nul.list 443\n",
	    (const struct mem_list[]){ { "a.list", "a.example\n" },
	    { "nul.list", "x.example\n\x01y.example\n" }, { NULL, NULL } },
	    "nul.list:2: control character 0x01 in line");
	/* A file that is no list at all: the first errors, then a count of the rest. */
	for (i = 0; i < 200; i++)
		memcpy(big + i * 8, "a b c d\n", 8);
	big[sizeof(big) - 1] = '\0';
	expect_refused("allow any @junk.list 443\n", many,
	    "junk.list:101: 100 more bad entries in junk.list not shown");
}

/* Lists are files relative to the policy file's folder, re-read by every load. */
static void
test_files_relative_to_policy(void **state)
{
	char dir[] = "/tmp/test_policy_list.XXXXXX", path[256];
	struct policy *p, *q;
	char *err = NULL;
	FILE *f;

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/sub", dir);
	assert_int_equal(mkdir(path, 0700), 0);
	snprintf(path, sizeof(path), "%s/sub/allow.list", dir);
	assert_non_null(f = fopen(path, "w"));
	fputs("one.example\n", f);
	fclose(f);
	snprintf(path, sizeof(path), "%s/policy.rules", dir);
	assert_non_null(f = fopen(path, "w"));
	fputs("allow any @sub/allow.list 443\n", f);
	fclose(f);

	/* From another folder: the list is found beside the policy, not here. */
	p = policy_load(path, "policy.rules", &err);
	if (p == NULL)
		fail_msg("%s", err);
	assert_string_equal(who_decides(p, "one.example"),
	    "policy.rules:1 via sub/allow.list:1");

	snprintf(path, sizeof(path), "%s/sub/allow.list", dir);
	assert_non_null(f = fopen(path, "w"));
	fputs("# now two\none.example\ntwo.example\n", f);
	fclose(f);
	snprintf(path, sizeof(path), "%s/policy.rules", dir);
	q = policy_load(path, "policy.rules", &err);
	assert_non_null(q);
	assert_string_equal(who_decides(q, "two.example"),
	    "policy.rules:1 via sub/allow.list:3");
	/* The old policy is untouched by the new load. */
	assert_string_equal(who_decides(p, "two.example"), "default");

	snprintf(path, sizeof(path), "%s/sub/allow.list", dir);
	assert_non_null(f = fopen(path, "w"));
	fputs("one.example\nthree..example\n", f);
	fclose(f);
	snprintf(path, sizeof(path), "%s/policy.rules", dir);
	assert_null(policy_load(path, "policy.rules", &err));
	assert_non_null(strstr(err, "sub/allow.list:2: bad entry \"three..example\""));
	free(err);

	/* A FIFO (or anything but a file) is refused, not waited on. */
	snprintf(path, sizeof(path), "%s/sub/fifo.list", dir);
	assert_int_equal(mkfifo(path, 0600), 0);
	snprintf(path, sizeof(path), "%s/policy.rules", dir);
	assert_non_null(f = fopen(path, "w"));
	fputs("allow any @sub/fifo.list 443\n", f);
	fclose(f);
	assert_null(policy_load(path, "policy.rules", &err));
	assert_non_null(strstr(err, "policy.rules:1: cannot read list sub/fifo.list: not a "
	    "regular file"));
	free(err);

	policy_unref(p);
	policy_unref(q);
	snprintf(path, sizeof(path), "rm -rf %s", dir);
	assert_int_equal(system(path), 0);
}

/*
 * A list file bigger than the blocks it is read in: lines that span two
 * blocks, a CRLF split between them, a last line without LF, a line too long
 * to be an entry.
 */
static void
test_big_file_in_blocks(void **state)
{
	char dir[] = "/tmp/test_policy_list.XXXXXX", path[256], host[64], want[96];
	const size_t n = 150000;
	struct policy *p;
	char *err = NULL, *line;
	size_t i;
	FILE *f;

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/big.list", dir);
	assert_non_null(f = fopen(path, "w"));
	for (i = 0; i < n; i++)
		fprintf(f, i % 7 == 0 ? "h%zu.example.test\r\n" : "h%zu.example.test\n", i);
	fprintf(f, "last.example.test");                /* no LF */
	fclose(f);
	snprintf(path, sizeof(path), "%s/policy.rules", dir);
	assert_non_null(f = fopen(path, "w"));
	fputs("allow any @big.list 443\n", f);
	fclose(f);
	if ((p = policy_load(path, "policy.rules", &err)) == NULL)
		fail_msg("%s", err);
	assert_int_equal(policy_entry_count(p), n + 1);
	for (i = 0; i < n; i++) {
		snprintf(host, sizeof(host), "h%zu.example.test", i);
		snprintf(want, sizeof(want), "policy.rules:1 via big.list:%zu", i + 1);
		if (strcmp(who_decides(p, host), want) != 0)
			fail_msg("%s: %s, want %s", host, who_decides(p, host), want);
	}
	assert_string_equal(who_decides(p, "last.example.test"),
	    "policy.rules:1 via big.list:150001");
	policy_unref(p);

	/* A line longer than any entry can be is an error at its line, the rest is read. */
	snprintf(path, sizeof(path), "%s/big.list", dir);
	assert_non_null(f = fopen(path, "w"));
	fputs("ok.example.test\n", f);
	assert_non_null(line = malloc(3 * 1024 * 1024));
	memset(line, 'a', 3 * 1024 * 1024);
	fwrite(line, 1, 3 * 1024 * 1024, f);
	free(line);
	fputs("\nbad..example\n", f);
	fclose(f);
	snprintf(path, sizeof(path), "%s/policy.rules", dir);
	assert_null(policy_load(path, "policy.rules", &err));
	if (strstr(err, "big.list:2: line longer than 4096 bytes") == NULL ||
	    strstr(err, "big.list:3: bad entry \"bad..example\"") == NULL)
		fail_msg("%s", err);
	free(err);
	snprintf(path, sizeof(path), "rm -rf %s", dir);
	assert_int_equal(system(path), 0);
}

/* Errors of a list read through list.c directly, as text. */
static void
collect(void *arg, const char *name, size_t line, const char *msg)
{
	char *buf = arg;
	size_t n = strlen(buf);

	snprintf(buf + n, 8192 - n, "%s:%zu: %s\n", name, line, msg);
}

/* Read in pieces of any size, a list gives what it gives read whole. */
static void
test_pieces_equal_whole(void **state)
{
	static const char text[] = "\xef\xbb\xbf# a list\r\nexample.com\r\n.sub.example\n"
	    "\n  192.0.2.1  # addr\nbad..name\nexample.com\nx.sub.example\ttwo\n"
	    "::ffff:192.0.2.7\nlast.example";
	static const char *const hosts[] = { "example.com", "a.sub.example", "192.0.2.1",
	    "192.0.2.7", "last.example", "x.sub.example", "nothing.example" };
	char whole_err[8192] = "", err[8192];
	struct plist_reader *rd;
	struct plists *a, *b;
	struct plist_hit ha[4], hb[4];
	size_t k, i, na, nb;
	bool of;
	int ra, rb;

	assert_non_null(a = plists_new());
	ra = plists_add(a, "p.list", text, sizeof(text) - 1, collect, whole_err);
	assert_int_equal(ra, -1);                   /* bad..name and the two-entry line */
	assert_non_null(strstr(whole_err, "p.list:6: bad entry \"bad..name\""));
	assert_non_null(strstr(whole_err, "p.list:8: more than one entry"));
	for (k = 1; k <= sizeof(text); k++) {
		err[0] = '\0';
		assert_non_null(b = plists_new());
		assert_non_null(rd = plists_open(b, "p.list", sizeof(text) - 1, collect, err));
		for (i = 0; i < sizeof(text) - 1; i += k)
			assert_int_equal(plists_feed(rd, text + i, i + k < sizeof(text) - 1 ? k :
			    sizeof(text) - 1 - i), 0);
		rb = plists_close(rd);
		assert_int_equal(rb, ra);
		if (strcmp(err, whole_err) != 0)
			fail_msg("pieces of %zu:\n%s\nwhole:\n%s", k, err, whole_err);
		assert_int_equal(plists_entries(b, 0), plists_entries(a, 0));
		for (i = 0; i < sizeof(hosts) / sizeof(hosts[0]); i++) {
			na = plists_match(a, hosts[i], strlen(hosts[i]), ha, 4, &of);
			nb = plists_match(b, hosts[i], strlen(hosts[i]), hb, 4, &of);
			assert_int_equal(na, nb);
			if (na > 0)
				assert_int_equal(ha[0].line, hb[0].line);
		}
		plists_free(b);
	}
	/* What was filed before the errors is what a lookup finds. */
	assert_int_equal(plists_match(a, "example.com", 11, ha, 4, &of), 1);
	assert_int_equal(ha[0].line, 2);
	plists_free(a);
}

/* List rules and pattern rules: the first in file order decides. */
static void
test_first_match_mixed(void **state)
{
	static const struct mem_list ls[] = {
		{ "deny.list", ".bad.example\n" },
		{ "allow.list", ".example\n" },
		{ NULL, NULL } };
	struct policy *p = load_ok(
	    "allow any very\\.bad\\.example 443\n"
	    "deny any @deny.list *\n"
	    "allow any (.+\\.)?bad\\.example 443\n"
	    "allow any @allow.list 443\n"
	    "deny any @allow.list *\n", ls);
	struct policy_decision d;

	assert_string_equal(who_decides(p, "very.bad.example"), "t.rules:1");
	assert_string_equal(who_decides(p, "x.bad.example"), "t.rules:2 via deny.list:1");
	assert_string_equal(who_decides(p, "good.example"), "t.rules:4 via allow.list:1");
	d = decide(p, NULL, "x.bad.example", 443);
	assert_false(d.allow);
	assert_string_equal(d.reason, "policy");
	d = decide(p, NULL, "good.example", 80);
	assert_string_equal(d.rule, "t.rules:5");
	/* One list named by two rules is read once. */
	assert_int_equal(policy_list_count(p), 2);
	policy_unref(p);
}

/* An anonymous request whose first match is an identity list rule: 407. */
static void
test_list_needs_credentials(void **state)
{
	static const struct mem_list ls[] = { { "eng.list", ".corp.example\n" },
	    { NULL, NULL } };
	struct policy *p = load_ok("allow group:eng @eng.list 443\nallow any .* 443\n", ls);
	struct policy_decision d = decide(p, NULL, "git.corp.example", 443);

	assert_true(d.need_credentials);
	assert_string_equal(d.list, "eng.list");
	d = decide(p, "alice", "git.corp.example", 443);
	assert_true(d.allow);
	assert_string_equal(d.rule, "t.rules:2");
	policy_unref(p);
}

/*
 * More lists hold the host than one decision tracks: the answer is still the
 * first matching rule's, whatever its list.
 */
static void
test_many_lists_one_host(void **state)
{
	struct mem_list ls[POLICY_LIST_HITS_MAX + 2];
	static char names[POLICY_LIST_HITS_MAX + 1][32];
	char text[16384];
	struct policy_decision d;
	struct policy *p;
	size_t i, len = 0, n = POLICY_LIST_HITS_MAX + 1;

	for (i = 0; i < n; i++) {
		snprintf(names[i], sizeof(names[i]), "l%zu.list", i);
		ls[i].name = names[i];
		ls[i].text = i == n - 1 ? "other.example\nshared.example\n" : ".shared.example\n";
		/* The rules name the lists last first, so the deciding list is the last read. */
		len += (size_t)snprintf(text + len, sizeof(text) - len, "%s any @l%zu.list %u\n",
		    i == 0 ? "allow" : "deny", n - 1 - i, i == 0 ? 443u : 80u);
	}
	ls[n].name = NULL;
	p = load_ok(text, ls);
	assert_string_equal(who_decides(p, "shared.example"), "t.rules:1 via l64.list:2");
	/* Port 80: rule 2, whatever list the decision kept track of. */
	d = decide(p, NULL, "shared.example", 80);
	assert_string_equal(d.rule, "t.rules:2");
	assert_string_equal(d.list, "l63.list");
	assert_string_equal(decide(p, NULL, "a.shared.example", 80).rule, "t.rules:2");
	policy_unref(p);
}

static void
test_report_mode(void **state)
{
	static const struct mem_list ls[] = { { "trial.list", ".tracker.example\n" },
	    { NULL, NULL } };
	struct policy *p = load_ok(
	    "deny any @trial.list * mode=report\n"
	    "deny any (.+\\.)?tracker\\.example 443 mode=report\n"
	    "deny group:eng .* * mode=report\n"
	    "allow any .* 443\n", ls);
	struct policy_decision d;
	uint64_t n;

	/* It never decides: the allow after it does, and the first report rule is named. */
	d = decide(p, NULL, "ads.tracker.example", 443);
	assert_true(d.allow);
	assert_string_equal(d.rule, "t.rules:4");
	assert_string_equal(d.report, "t.rules:1");
	assert_string_equal(d.report_list, "trial.list");
	assert_int_equal(d.report_line, 1);
	assert_int_not_equal(d.report_id, 0);
	/* Nothing matched: no report. */
	d = decide(p, NULL, "fine.example", 443);
	assert_true(d.allow);
	assert_null(d.report);
	/* Default deny still reports what would have denied first. */
	d = decide(p, NULL, "ads.tracker.example", 80);
	assert_string_equal(d.reason, "default_deny");
	assert_string_equal(d.report, "t.rules:1");
	/* An identity report rule never asks an anonymous request for credentials. */
	d = decide(p, NULL, "x.example", 443);
	assert_false(d.need_credentials);
	assert_true(d.allow);
	assert_null(d.report);
	d = decide(p, "alice", "x.example", 443);
	assert_null(d.report);
	{
		struct policy_request req;
		const char *g[] = { "eng" };

		memset(&req, 0, sizeof(req));
		req.user = "bob";
		req.groups = g;
		req.ngroups = 1;
		req.method = "GET";
		req.host = "x.example";
		req.port = 443;
		policy_decide(p, &req, &d);
		assert_true(d.allow);
		assert_string_equal(d.report, "t.rules:3");
	}

	/* Counting and the merge of a second decision (the SNI re-check). */
	assert_int_equal(policy_report_rules(p), 3);
	d = decide(p, NULL, "ads.tracker.example", 443);
	policy_report_count(p, &d);
	policy_report_count(p, &d);
	assert_string_equal(policy_report_rule(p, 0, &n), "t.rules:1");
	assert_int_equal(n, 2);
	assert_string_equal(policy_report_rule(p, 1, &n), "t.rules:2");
	assert_int_equal(n, 0);
	{
		struct policy_decision first = decide(p, NULL, "fine.example", 443);

		policy_report_merge(&first, &d);
		assert_string_equal(first.report, "t.rules:1");
		d = decide(p, NULL, "tracker.example", 443);
		policy_report_merge(&first, &d);       /* the first one stays */
		assert_string_equal(first.report, "t.rules:1");
	}
	policy_unref(p);
}

/* A report rule whose pattern hits its limit is reported, and never denies. */
static void
test_report_rule_error(void **state)
{
	struct policy *p = load_ok("deny any (?:a|aa)*c * mode=report\nallow any .* *\n", NULL);
	struct policy_decision d;
	char host[64];

	memset(host, 'a', 40);
	memcpy(host + 40, "bc", 3);         /* has the literal "c": the regex runs, and gives up */
	d = decide(p, NULL, host, 443);
	assert_true(d.allow);
	assert_string_equal(d.report, "t.rules:1");
	policy_unref(p);
	/* The same rule enforced: the limit is really hit (a deny, policy_error). */
	p = load_ok("deny any (?:a|aa)*c *\nallow any .* *\n", NULL);
	assert_string_equal(decide(p, NULL, host, 443).reason, "policy_error");
	policy_unref(p);
}

static void
test_report_errors(void **state)
{
	expect_refused("allow any x 443 mode=report\n", NULL,
	    "t.rules:1: option \"mode=report\" applies to deny rules only");
	expect_refused("deny any x 443 mode=enforce\n", NULL,
	    "t.rules:1: bad value \"enforce\" for mode= (expected report)");
	expect_refused("deny any x 443 mode=report mode=report\n", NULL,
	    "t.rules:1: option \"mode=\" given twice");
}

static void
test_lint_lists(void **state)
{
	static const struct mem_list ls[] = {
		{ "a.list", "example.com\n.example.com\nwww.example.com\n.sub.example.com\n"
		  "example.com\nother.example\n192.0.2.1\n::ffff:192.0.2.1\n" },
		{ "empty.list", "# nothing yet\n" },
		{ NULL, NULL } };
	struct policy *p = load_ok("allow any @a.list 443\ndeny any @empty.list *\n"
	    "deny any .* * mode=report\nallow any .* 443\n", ls);
	char *w = NULL;
	size_t n;

	n = policy_lint(p, false, &w);
	assert_non_null(w);
	if (strstr(w, "a.list:5: warning: duplicate entry example.com (first at a.list:1)") ==
	    NULL ||
	    strstr(w, "a.list:8: warning: duplicate entry 192.0.2.1 (first at a.list:7)") ==
	    NULL ||
	    strstr(w, "a.list:1: warning: entry example.com is already covered by "
	    ".example.com (a.list:2)") == NULL ||
	    strstr(w, "a.list:3: warning: entry www.example.com is already covered by "
	    ".example.com (a.list:2)") == NULL ||
	    strstr(w, "a.list:4: warning: entry .sub.example.com is already covered by "
	    ".example.com (a.list:2)") == NULL ||
	    strstr(w, "t.rules:2: warning: list empty.list has no entries") == NULL)
		fail_msg("warnings:\n%s", w);
	/* The report rule answers nothing: the allow after it is not "never decides". */
	assert_null(strstr(w, "t.rules:4"));
	/* Nor is the list name linted as a pattern (its "." is no regex). */
	assert_null(strstr(w, "unescaped"));
	assert_int_equal(n, 6);
	free(w);
	policy_unref(p);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_entries_match),
		cmocka_unit_test(test_most_specific_entry),
		cmocka_unit_test(test_bad_entries),
		cmocka_unit_test(test_list_file_errors),
		cmocka_unit_test(test_files_relative_to_policy),
		cmocka_unit_test(test_big_file_in_blocks),
		cmocka_unit_test(test_pieces_equal_whole),
		cmocka_unit_test(test_first_match_mixed),
		cmocka_unit_test(test_list_needs_credentials),
		cmocka_unit_test(test_many_lists_one_host),
		cmocka_unit_test(test_report_mode),
		cmocka_unit_test(test_report_rule_error),
		cmocka_unit_test(test_report_errors),
		cmocka_unit_test(test_lint_lists),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
