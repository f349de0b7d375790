/*
 * test_policy — the rule-file parser (every error with its line) and the
 * first-match decision (anchoring, case, ports, methods, principals, the
 * needs-credentials rule, and matching errors that must fail closed).
 */
#include "policy/policy.h"

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

static struct policy *
load(const char *text)
{
	struct policy *p;
	char *err = NULL;

	p = policy_load_buffer(text, strlen(text), "t.rules", &err);
	if (p == NULL)
		fail_msg("unexpected errors:\n%s", err ? err : "(none)");
	assert_null(err);
	return p;
}

/* Load text that must be refused; returns the error text (caller frees). */
static char *
load_bad(const char *text)
{
	struct policy *p;
	char *err = NULL;

	p = policy_load_buffer(text, strlen(text), "t.rules", &err);
	assert_null(p);
	assert_non_null(err);
	return err;
}

static void
expect_error(const char *text, const char *want)
{
	char *err = load_bad(text);

	if (strstr(err, want) == NULL)
		fail_msg("want \"%s\" in:\n%s", want, err);
	free(err);
}

static struct policy_decision
decide(const struct policy *p, const char *user, const char *const *groups, size_t ngroups,
    const char *method, const char *host, uint16_t port)
{
	struct policy_request req = { user, groups, ngroups, method, host, port, false };
	struct policy_decision d;

	memset(&d, 0xa5, sizeof(d));
	policy_decide(p, &req, &d);
	return d;
}

static bool
allowed(const struct policy *p, const char *host, uint16_t port)
{
	return decide(p, NULL, NULL, 0, "CONNECT", host, port).allow;
}

/* ---- parsing ----------------------------------------------------------- */

static void
test_parse_example(void **state)
{
	struct policy *p = load(
	    "# action  who                 host (PCRE2)                  ports          options\n"
	    "allow     group:engineering   (.+\\.)?github\\.com            443\n"
	    "allow     user:alice          api\\.example\\.com             443,8443       sni=require\n"
	    "deny      any                 .*                            25\n"
	    "allow     authenticated       (.+\\.)?example\\.com           80,443,8000-8100\n"
	    "allow     any                 deb\\.debian\\.org              80             methods=GET,HEAD\n"
	    "allow     authenticated       git\\.example\\.com             22             sni=off methods=CONNECT\n"
	    "\n"
	    "   \t # indented comment\n");

	assert_int_equal(policy_rule_count(p), 6);
	policy_unref(p);
}

static void
test_parse_empty(void **state)
{
	struct policy *p = load("");
	struct policy_decision d;

	assert_int_equal(policy_rule_count(p), 0);
	d = decide(p, NULL, NULL, 0, "CONNECT", "example.com", 443);
	assert_false(d.allow);
	assert_string_equal(d.reason, "default_deny");
	assert_null(d.rule);
	policy_unref(p);

	p = load("# only comments\n\n   \n");
	assert_int_equal(policy_rule_count(p), 0);
	policy_unref(p);
}

static void
test_parse_errors_each(void **state)
{
	expect_error("permit any x 80\n", "t.rules:1: unknown action \"permit\"");
	expect_error("Allow any x 80\n", "t.rules:1: unknown action \"Allow\"");
	expect_error("allow anyone x 80\n", "t.rules:1: unknown principal \"anyone\"");
	expect_error("allow usr:bob x 80\n", "t.rules:1: unknown principal \"usr:bob\"");
	expect_error("allow user: x 80\n", "t.rules:1: empty name in \"user:\"");
	expect_error("allow group: x 80\n", "t.rules:1: empty name in \"group:\"");
	expect_error("allow any (abc 80\n", "t.rules:1: bad host pattern \"(abc\": "
	    "missing closing parenthesis at offset 4");
	expect_error("allow any a)(b 80\n", "t.rules:1: bad host pattern \"a)(b\"");
	expect_error("allow any x 0\n", "t.rules:1: port 0");
	expect_error("allow any x 65536\n", "t.rules:1: port 65536 out of range");
	expect_error("allow any x 99999999999999999999\n", "out of range");
	expect_error("allow any x 443-80\n", "t.rules:1: port range 443-80 is out of order");
	expect_error("allow any x 80,,443\n", "t.rules:1: empty item in port list");
	expect_error("allow any x 80,\n", "t.rules:1: empty item in port list");
	expect_error("allow any x ,80\n", "t.rules:1: empty item in port list");
	expect_error("allow any x 80-\n", "t.rules:1: empty item in port list");
	expect_error("allow any x http\n", "t.rules:1: bad port \"http\"");
	expect_error("allow any x +80\n", "t.rules:1: bad port \"+80\"");
	expect_error("allow any x 80,*\n", "t.rules:1: \"*\" must stand alone");
	expect_error("allow any x 80 methods=\n", "t.rules:1: empty method list");
	expect_error("allow any x 80 methods=GET,,HEAD\n", "t.rules:1: empty item in \"methods=");
	expect_error("allow any x 80 methods=GET,GET\n", "t.rules:1: method GET listed twice");
	/* A lower-case method in the file is a slip: it would never match GET. */
	expect_error("allow any x 80 methods=GET,get\n", "t.rules:1: method \"get\" in "
	    "\"methods=GET,get\": methods are case-sensitive; did you mean GET?");
	expect_error("deny any x 80 methods=post\n", "t.rules:1: method \"post\" in "
	    "\"methods=post\": methods are case-sensitive; did you mean POST?");
	expect_error("allow any x 443 methods=Connect sni=off\n",
	    "t.rules:1: method \"Connect\" in \"methods=Connect\": methods are "
	    "case-sensitive; did you mean CONNECT?");
	expect_error("allow any x 80 methods=G(T\n", "t.rules:1: bad method \"G(T\"");
	expect_error("allow any x 80 methods=GET methods=HEAD\n",
	    "t.rules:1: option \"methods=\" given twice");
	expect_error("allow any x 443 sni=off sni=require\n",
	    "t.rules:1: option \"sni=\" given twice");
	expect_error("allow any x 443 sni=maybe\n", "t.rules:1: bad value \"maybe\" for sni=");
	expect_error("allow any x 443 sni=\n", "t.rules:1: bad value \"\" for sni=");
	expect_error("allow any x 443 timeout=5\n", "t.rules:1: unknown option \"timeout=5\"");
	expect_error("allow any x 443 GET\n", "t.rules:1: unknown option \"GET\"");
	expect_error("allow any x 80 methods=GET sni=off\n",
	    "t.rules:1: option \"sni=\" applies to CONNECT only");
	expect_error("allow\n", "t.rules:1: missing principal (who)");
	expect_error("allow any\n", "t.rules:1: missing host pattern");
	expect_error("allow any x\n", "t.rules:1: missing ports");
	expect_error("allow any x # 80\n", "t.rules:1: missing ports");
	expect_error("allow any x\x01 80\n", "t.rules:1: control character 0x01");
	expect_error("allow any x 80 a b c d e f g h i j k l m\n", "t.rules:1: too many fields");
}

static void
test_parse_nul(void **state)
{
	static const char text[] = "allow any x 80\nallow\0any y 80\n";
	char *err = NULL;

	assert_null(policy_load_buffer(text, sizeof(text) - 1, "t.rules", &err));
	assert_non_null(err);
	assert_string_equal(err, "t.rules:2: NUL byte in line (is this a text file?)\n");
	free(err);
}

static void
test_parse_errors_all_lines(void **state)
{
	char *err = load_bad(
	    "# a file with several mistakes\n"
	    "allow any good\\.example 443\n"
	    "alow any x 80\n"
	    "allow any (unclosed 443\n"
	    "\n"
	    "allow any x 0,70000\n"
	    "allow nobody x 80 methods= bogus=1\n");

	assert_non_null(strstr(err, "t.rules:3: unknown action \"alow\""));
	assert_non_null(strstr(err, "t.rules:4: bad host pattern \"(unclosed\""));
	assert_non_null(strstr(err, "t.rules:6: port 0"));
	assert_non_null(strstr(err, "t.rules:6: port 70000 out of range"));
	assert_non_null(strstr(err, "t.rules:7: unknown principal \"nobody\""));
	assert_non_null(strstr(err, "t.rules:7: empty method list"));
	assert_non_null(strstr(err, "t.rules:7: unknown option \"bogus=1\""));
	assert_null(strstr(err, "t.rules:2:"));
	assert_null(strstr(err, "t.rules:5:"));
	free(err);
}

static void
test_parse_crlf_and_tabs(void **state)
{
	struct policy *p = load("allow\tany\texample\\.com\t443\r\n"
	    "deny any .* *   # trailing comment\r\n");
	struct policy_decision d;

	assert_int_equal(policy_rule_count(p), 2);
	d = decide(p, NULL, NULL, 0, "CONNECT", "example.com", 443);
	assert_true(d.allow);
	assert_string_equal(d.rule, "t.rules:1");
	assert_string_equal(d.rule_text, "allow\tany\texample\\.com\t443");
	d = decide(p, NULL, NULL, 0, "CONNECT", "other.com", 443);
	assert_string_equal(d.rule, "t.rules:2");
	assert_string_equal(d.rule_text, "deny any .* *");
	policy_unref(p);
}

static void
test_load_file(void **state)
{
	char dir[] = "/tmp/test_policy.XXXXXX", path[256];
	struct policy *p;
	struct policy_decision d;
	char *err = NULL;
	FILE *f;

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/p.rules", dir);
	assert_non_null(f = fopen(path, "w"));
	fputs("# header\nallow any x\\.org 80\n", f);
	fclose(f);
	p = policy_load(path, "p.rules", &err);
	assert_non_null(p);
	assert_null(err);
	d = decide(p, NULL, NULL, 0, "GET", "x.org", 80);
	assert_true(d.allow);
	assert_string_equal(d.rule, "p.rules:2");
	policy_unref(p);

	assert_null(policy_load(dir, "dir.rules", &err));
	assert_non_null(strstr(err, "dir.rules: "));
	free(err);
	unlink(path);
	assert_null(policy_load(path, "p.rules", &err));
	assert_non_null(strstr(err, "p.rules: cannot open"));
	free(err);
	rmdir(dir);
}

/* ---- decisions --------------------------------------------------------- */

static void
test_anchoring(void **state)
{
	struct policy *p = load("allow any example\\.com 443\n"
	    "allow any a|b 443\n");

	assert_true(allowed(p, "example.com", 443));
	assert_false(allowed(p, "example.com.evil.net", 443));
	assert_false(allowed(p, "notexample.com", 443));
	assert_false(allowed(p, "www.example.com", 443));
	assert_false(allowed(p, "example.com\n", 443));
	/* The alternation is anchored as a whole, not just its ends. */
	assert_true(allowed(p, "a", 443));
	assert_true(allowed(p, "b", 443));
	assert_false(allowed(p, "ab", 443));
	assert_false(allowed(p, "xa", 443));
	assert_false(allowed(p, "bx", 443));
	policy_unref(p);
}

static void
test_case_insensitive(void **state)
{
	struct policy *p = load("allow any GitHub\\.COM 443\n");

	assert_true(allowed(p, "github.com", 443));
	assert_true(allowed(p, "GITHUB.com", 443));
	policy_unref(p);
}

static void
test_suffix_pattern_and_ip(void **state)
{
	struct policy *p = load("allow any (.+\\.)?github\\.com 443\n"
	    "allow any 192\\.0\\.2\\.1 443\n"
	    "allow any 2001:db8::1 443\n");

	assert_true(allowed(p, "github.com", 443));
	assert_true(allowed(p, "api.github.com", 443));
	assert_true(allowed(p, "a.b.c.github.com", 443));
	assert_false(allowed(p, "evilgithub.com", 443));
	assert_false(allowed(p, ".github.com.", 443));
	assert_true(allowed(p, "192.0.2.1", 443));
	assert_false(allowed(p, "192.0.2.10", 443));
	assert_true(allowed(p, "2001:db8::1", 443));
	policy_unref(p);
}

static void
test_ports(void **state)
{
	struct policy *p = load("allow any a 80,443,8000-8100\n"
	    "allow any b *\n"
	    "allow any c 1-65535\n"
	    "allow any d 7-7\n");

	assert_true(allowed(p, "a", 80));
	assert_true(allowed(p, "a", 443));
	assert_true(allowed(p, "a", 8000));
	assert_true(allowed(p, "a", 8050));
	assert_true(allowed(p, "a", 8100));
	assert_false(allowed(p, "a", 7999));
	assert_false(allowed(p, "a", 8101));
	assert_false(allowed(p, "a", 81));
	assert_false(allowed(p, "a", 0));
	assert_true(allowed(p, "b", 1));
	assert_true(allowed(p, "b", 65535));
	assert_true(allowed(p, "c", 1));
	assert_true(allowed(p, "c", 65535));
	assert_true(allowed(p, "d", 7));
	assert_false(allowed(p, "d", 8));
	policy_unref(p);
}

static void
test_methods(void **state)
{
	static const char *const lower[] = { "get", "Get", "gET", "head", "connect", "Connect" };
	struct policy *p = load("allow any deb\\.debian\\.org 80 methods=GET,HEAD\n"
	    "allow any tunnel\\.example 443 methods=CONNECT\n"
	    "deny any x * methods=POST\n"
	    "allow any x *\n");
	struct policy_decision d;
	size_t i;

	assert_true(decide(p, NULL, NULL, 0, "GET", "deb.debian.org", 80).allow);
	assert_true(decide(p, NULL, NULL, 0, "HEAD", "deb.debian.org", 80).allow);
	assert_false(decide(p, NULL, NULL, 0, "POST", "deb.debian.org", 80).allow);
	assert_false(decide(p, NULL, NULL, 0, "CONNECT", "deb.debian.org", 80).allow);
	assert_true(decide(p, NULL, NULL, 0, "CONNECT", "tunnel.example", 443).allow);
	/* Methods are case-sensitive: "get" is not GET, "connect" is not CONNECT. */
	for (i = 0; i < sizeof(lower) / sizeof(lower[0]); i++) {
		d = decide(p, NULL, NULL, 0, lower[i], "deb.debian.org", 80);
		if (d.allow || strcmp(d.reason, "default_deny") != 0)
			fail_msg("%s matched a methods=GET,HEAD rule", lower[i]);
		d = decide(p, NULL, NULL, 0, lower[i], "tunnel.example", 443);
		if (d.allow || strcmp(d.reason, "default_deny") != 0)
			fail_msg("%s matched a methods=CONNECT rule", lower[i]);
	}
	d = decide(p, NULL, NULL, 0, "POST", "x", 80);
	assert_false(d.allow);
	assert_string_equal(d.rule, "t.rules:3");
	/* "post" is another method: the POST deny does not name it. */
	d = decide(p, NULL, NULL, 0, "post", "x", 80);
	assert_true(d.allow);
	assert_string_equal(d.rule, "t.rules:4");
	assert_true(decide(p, NULL, NULL, 0, "PUT", "x", 80).allow);
	policy_unref(p);

	/* Extension methods are kept exactly as written. */
	p = load("allow any x * methods=M-SEARCH,PURGE,X_1\n");
	assert_true(decide(p, NULL, NULL, 0, "M-SEARCH", "x", 80).allow);
	assert_true(decide(p, NULL, NULL, 0, "X_1", "x", 80).allow);
	assert_false(decide(p, NULL, NULL, 0, "m-search", "x", 80).allow);
	assert_false(decide(p, NULL, NULL, 0, "PURGEX", "x", 80).allow);
	policy_unref(p);
}

static void
test_first_match_and_reasons(void **state)
{
	struct policy *p = load("# comment\n"
	    "deny any .* 25\n"
	    "allow any (.+\\.)?example\\.com 25,443 sni=optional\n"
	    "deny any (.+\\.)?example\\.com 443\n");
	struct policy_decision d;

	d = decide(p, NULL, NULL, 0, "CONNECT", "mail.example.com", 25);
	assert_false(d.allow);
	assert_false(d.need_credentials);
	assert_string_equal(d.reason, "policy");
	assert_string_equal(d.rule, "t.rules:2");
	assert_string_equal(d.rule_text, "deny any .* 25");

	d = decide(p, NULL, NULL, 0, "CONNECT", "www.example.com", 443);
	assert_true(d.allow);
	assert_string_equal(d.reason, "ok");
	assert_string_equal(d.rule, "t.rules:3");
	assert_string_equal(d.rule_text, "allow any (.+\\.)?example\\.com 25,443 sni=optional");
	assert_int_equal(d.sni, POLICY_SNI_OPTIONAL);

	d = decide(p, NULL, NULL, 0, "CONNECT", "example.org", 443);
	assert_false(d.allow);
	assert_false(d.need_credentials);
	assert_string_equal(d.reason, "default_deny");
	assert_null(d.rule);
	assert_null(d.rule_text);
	policy_unref(p);
}

static void
test_sni_modes(void **state)
{
	struct policy *p = load("allow any a 443\n"
	    "allow any b 443 sni=off methods=CONNECT\n"
	    "allow any c 443 sni=require\n");

	assert_int_equal(decide(p, NULL, NULL, 0, "CONNECT", "a", 443).sni, POLICY_SNI_REQUIRE);
	assert_int_equal(decide(p, NULL, NULL, 0, "CONNECT", "b", 443).sni, POLICY_SNI_OFF);
	assert_int_equal(decide(p, NULL, NULL, 0, "CONNECT", "c", 443).sni, POLICY_SNI_REQUIRE);
	policy_unref(p);
}

static void
test_need_credentials(void **state)
{
	struct policy *p = load("allow group:engineering (.+\\.)?github\\.com 443\n"
	    "allow any (.+\\.)?github\\.com 443\n"
	    "allow any public\\.example 443\n"
	    "allow user:alice api\\.example\\.com 443\n"
	    "deny authenticated .* 25\n");
	const char *eng[] = { "staff", "Engineering" };
	const char *other[] = { "staff" };
	struct policy_decision d;

	/* Anonymous: the first host/port/method match needs an identity -> 407. */
	d = decide(p, NULL, NULL, 0, "CONNECT", "github.com", 443);
	assert_false(d.allow);
	assert_true(d.need_credentials);
	assert_string_equal(d.reason, "auth_required");
	assert_string_equal(d.rule, "t.rules:1");

	/* Anonymous, and the identity rule does not match the host: no 407. */
	d = decide(p, NULL, NULL, 0, "CONNECT", "public.example", 443);
	assert_true(d.allow);
	assert_false(d.need_credentials);
	assert_string_equal(d.rule, "t.rules:3");

	/* Anonymous, identity rules for other ports do not ask. */
	d = decide(p, NULL, NULL, 0, "CONNECT", "github.com", 80);
	assert_false(d.need_credentials);
	assert_string_equal(d.reason, "default_deny");

	/* A deny rule that needs an identity also asks for one. */
	d = decide(p, NULL, NULL, 0, "CONNECT", "smtp.example", 25);
	assert_true(d.need_credentials);
	assert_string_equal(d.rule, "t.rules:5");

	/* With a user, rules for others are skipped. */
	d = decide(p, "bob", other, 1, "CONNECT", "github.com", 443);
	assert_true(d.allow);
	assert_false(d.need_credentials);
	assert_string_equal(d.rule, "t.rules:2");

	/* Group names compare case-insensitively. */
	d = decide(p, "bob", eng, 2, "CONNECT", "api.github.com", 443);
	assert_true(d.allow);
	assert_string_equal(d.rule, "t.rules:1");

	/* User names compare case-insensitively. */
	d = decide(p, "ALICE", NULL, 0, "CONNECT", "api.example.com", 443);
	assert_true(d.allow);
	assert_string_equal(d.rule, "t.rules:4");
	d = decide(p, "alicia", NULL, 0, "CONNECT", "api.example.com", 443);
	assert_false(d.allow);
	assert_false(d.need_credentials);
	assert_string_equal(d.reason, "default_deny");

	/* "authenticated" matches any user. */
	d = decide(p, "bob", NULL, 0, "CONNECT", "smtp.example", 25);
	assert_false(d.allow);
	assert_false(d.need_credentials);
	assert_string_equal(d.reason, "policy");
	assert_string_equal(d.rule, "t.rules:5");
	policy_unref(p);
}

/*
 * "auth none": identity rules are not there at all.  No 407, and a later rule
 * for anyone decides instead.
 */
static void
test_no_identity(void **state)
{
	struct policy *p = load("allow group:engineering (.+\\.)?github\\.com 443\n"
	    "deny authenticated .* 25\n"
	    "allow user:alice api\\.example\\.com 443\n"
	    "allow any (.+\\.)?github\\.com 443\n");
	struct policy_request req;
	struct policy_decision d;
	const char *eng[] = { "engineering" };

	memset(&req, 0, sizeof(req));
	req.method = "CONNECT";
	req.host = "github.com";
	req.port = 443;

	/* Zeroed request: today's behaviour, the group rule asks for credentials. */
	policy_decide(p, &req, &d);
	assert_true(d.need_credentials);
	assert_string_equal(d.reason, "auth_required");
	assert_string_equal(d.rule, "t.rules:1");

	/* Under auth none the group rule is skipped; the "any" rule decides. */
	req.no_identity = true;
	policy_decide(p, &req, &d);
	assert_true(d.allow);
	assert_false(d.need_credentials);
	assert_string_equal(d.reason, "ok");
	assert_string_equal(d.rule, "t.rules:4");

	/* A deny for "authenticated" neither asks nor denies. */
	req.host = "smtp.example";
	req.port = 25;
	policy_decide(p, &req, &d);
	assert_false(d.allow);
	assert_false(d.need_credentials);
	assert_string_equal(d.reason, "default_deny");
	assert_null(d.rule);

	/* user: rules neither: default deny, not 407. */
	req.host = "api.example.com";
	req.port = 443;
	policy_decide(p, &req, &d);
	assert_false(d.need_credentials);
	assert_string_equal(d.reason, "default_deny");

	/* Even a request that names a user (it cannot, under auth none) skips them. */
	req.user = "alice";
	req.groups = eng;
	req.ngroups = 1;
	policy_decide(p, &req, &d);
	assert_false(d.allow);
	assert_string_equal(d.reason, "default_deny");
	req.host = "github.com";
	policy_decide(p, &req, &d);
	assert_true(d.allow);
	assert_string_equal(d.rule, "t.rules:4");
	policy_unref(p);
}

static void
test_match_limit_fails_closed(void **state)
{
	/*
	 * "(?:a|aa)*" on a long run of a's backtracks exponentially: the match
	 * limit stops it.  The decision must be policy_error on that rule, and
	 * must never fall through to the allow that follows.
	 */
	struct policy *p = load("allow any safe\\.example 443\n"
	    "deny any (?:a|aa)*c 443\n"
	    "allow any .* 443\n");
	char host[HOST_BUF];
	struct policy_decision d;
	int i;

	/*
	 * The host ends with the 'c' the pattern requires (or the literal
	 * prefilter, like PCRE2's own start-up checks, would rule it out
	 * before matching) but fails in the middle, at the 'b'.
	 */
	memset(host, 'a', 60);
	strcpy(host + 60, "bc");
	d = decide(p, NULL, NULL, 0, "CONNECT", host, 443);
	assert_false(d.allow);
	assert_false(d.need_credentials);
	assert_string_equal(d.reason, "policy_error");
	assert_string_equal(d.rule, "t.rules:2");

	/* The same pattern on a short host evaluates normally. */
	d = decide(p, NULL, NULL, 0, "CONNECT", "aaac", 443);
	assert_string_equal(d.reason, "policy");
	d = decide(p, NULL, NULL, 0, "CONNECT", "aaab", 443);
	assert_true(d.allow);
	assert_string_equal(d.rule, "t.rules:3");
	d = decide(p, NULL, NULL, 0, "CONNECT", "safe.example", 443);
	assert_true(d.allow);
	assert_string_equal(d.rule, "t.rules:1");

	/* Repeated calls keep failing closed (per-thread match data reused). */
	for (i = 0; i < 3; i++)
		assert_string_equal(decide(p, NULL, NULL, 0, "CONNECT", host, 443).reason,
		    "policy_error");

	/*
	 * A host that lacks the literal 'c' the pattern ends with cannot match
	 * it: the regex is not run, so there is no limit to hit, and the next
	 * rule decides.  The plain scan says the same (it is the same rule).
	 */
	strcpy(host + 60, "cx");
	d = decide(p, NULL, NULL, 0, "CONNECT", host, 443);
	assert_true(d.allow);
	assert_string_equal(d.rule, "t.rules:3");
	policy_unref(p);
}

static void
test_match_limit_nested(void **state)
{
	/* The other classic: nested quantifiers with a forced failure at the end. */
	struct policy *p = load("deny any (a+)+\\.x 443\nallow any .* *\n");
	char host[HOST_BUF];
	struct policy_decision d;

	memset(host, 'a', 200);
	strcpy(host + 200, "b.x");
	d = decide(p, NULL, NULL, 0, "CONNECT", host, 443);
	assert_false(d.allow);
	assert_string_equal(d.reason, "policy_error");
	assert_string_equal(d.rule, "t.rules:1");
	/* Other ports do not reach the rule, so they are decided normally. */
	assert_true(decide(p, NULL, NULL, 0, "CONNECT", host, 80).allow);
	policy_unref(p);
}

static void
test_match_limit_interpreter(void **state)
{
	/* (*NO_JIT) forces the interpreter: its limits must hold the same way. */
	struct policy *p = load("deny any (*NO_JIT)(?:a|aa)*c 443\n"
	    "allow any (*NO_JIT)([a-z0-9-]+\\.)*github\\.com *\n");
	char host[HOST_BUF];
	struct policy_decision d;
	size_t i;

	memset(host, 'a', 60);
	strcpy(host + 60, "cx");
	d = decide(p, NULL, NULL, 0, "CONNECT", host, 443);
	assert_false(d.allow);
	assert_string_equal(d.reason, "policy_error");
	assert_string_equal(d.rule, "t.rules:1");

	/* An honest pattern on a long host stays well inside the limits. */
	for (i = 0; i < 230; i += 2)
		memcpy(host + i, "a.", 2);
	strcpy(host + 230, "github.com");
	d = decide(p, NULL, NULL, 0, "CONNECT", host, 80);
	assert_true(d.allow);
	assert_string_equal(d.rule, "t.rules:2");
	policy_unref(p);
}

/* The example an admin starts from must load and mean what its comments say. */
static void
test_packaging_example(void **state)
{
	struct policy *p;
	struct policy_decision d;
	const char *eng[] = { "engineering" };
	char *err = NULL;

	p = policy_load("packaging/policy.rules", "policy.rules", &err);
	if (p == NULL)
		fail_msg("packaging/policy.rules:\n%s", err ? err : "(no detail)");
	d = decide(p, NULL, NULL, 0, "GET", "deb.debian.org", 80);
	assert_true(d.allow);
	d = decide(p, NULL, NULL, 0, "CONNECT", "smtp.example.com", 587);
	assert_string_equal(d.reason, "policy");
	d = decide(p, NULL, NULL, 0, "CONNECT", "api.github.com", 443);
	assert_true(d.need_credentials);
	d = decide(p, "bob", eng, 1, "CONNECT", "api.github.com", 443);
	assert_true(d.allow);
	d = decide(p, "Alice", NULL, 0, "CONNECT", "api.example.com", 8443);
	assert_true(d.allow);
	assert_int_equal(d.sni, POLICY_SNI_REQUIRE);
	d = decide(p, "bob", NULL, 0, "CONNECT", "git.example.com", 22);
	assert_true(d.allow);
	assert_int_equal(d.sni, POLICY_SNI_OFF);
	d = decide(p, "bob", NULL, 0, "GET", "git.example.com", 22);
	assert_false(d.allow);
	d = decide(p, "bob", NULL, 0, "CONNECT", "example.org", 443);
	assert_false(d.allow);
	assert_string_equal(d.reason, "policy");
	policy_unref(p);
}

static void *
decide_many(void *arg)
{
	const struct policy *p = arg;
	struct policy_request req = { NULL, NULL, 0, "CONNECT", "api.github.com", 443, false };
	struct policy_decision d;
	int i;

	for (i = 0; i < 2000; i++) {
		policy_decide(p, &req, &d);
		if (!d.allow || strcmp(d.rule, "t.rules:2") != 0)
			return (void *)1;
	}
	return NULL;
}

/* Threads decide on one policy at once, each with its own match data (freed at exit). */
static void
test_threads(void **state)
{
	struct policy *p = load("deny any (.+\\.)?evil\\.com *\n"
	    "allow any (.+\\.)?github\\.com 443\n");
	pthread_t t[4];
	void *rv;
	int i;

	for (i = 0; i < 4; i++)
		assert_int_equal(pthread_create(&t[i], NULL, decide_many, p), 0);
	for (i = 0; i < 4; i++) {
		assert_int_equal(pthread_join(t[i], &rv), 0);
		assert_null(rv);
	}
	policy_unref(p);
}

static void
test_refcount(void **state)
{
	struct policy *p = load("allow any x 80\n");
	struct policy *q = policy_ref(p);
	struct policy_decision d;

	assert_ptr_equal(p, q);
	policy_unref(p);
	/* Still alive: the decision's strings point into it. */
	d = decide(q, NULL, NULL, 0, "GET", "x", 80);
	assert_true(d.allow);
	assert_string_equal(d.rule, "t.rules:1");
	policy_unref(q);
	policy_unref(NULL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_example),
		cmocka_unit_test(test_parse_empty),
		cmocka_unit_test(test_parse_errors_each),
		cmocka_unit_test(test_parse_nul),
		cmocka_unit_test(test_parse_errors_all_lines),
		cmocka_unit_test(test_parse_crlf_and_tabs),
		cmocka_unit_test(test_load_file),
		cmocka_unit_test(test_anchoring),
		cmocka_unit_test(test_case_insensitive),
		cmocka_unit_test(test_suffix_pattern_and_ip),
		cmocka_unit_test(test_ports),
		cmocka_unit_test(test_methods),
		cmocka_unit_test(test_first_match_and_reasons),
		cmocka_unit_test(test_sni_modes),
		cmocka_unit_test(test_need_credentials),
		cmocka_unit_test(test_no_identity),
		cmocka_unit_test(test_match_limit_fails_closed),
		cmocka_unit_test(test_match_limit_nested),
		cmocka_unit_test(test_match_limit_interpreter),
		cmocka_unit_test(test_packaging_example),
		cmocka_unit_test(test_threads),
		cmocka_unit_test(test_refcount),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
