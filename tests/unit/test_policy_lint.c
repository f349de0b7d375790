/*
 * test_policy_lint — the warnings about policies that load but mislead: one
 * test per warning with its FILE:LINE and wording, and none for the patterns
 * and orders that are right (escaped names, "(.+\.)?", ".*", IPv6 literals,
 * the shipped example).
 */
#include "policy/policy.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

/* The warnings for text (NULL when none) and their count. */
static char *
lint(const char *text, bool no_identity, size_t *n)
{
	struct policy *p;
	char *err = NULL, *w = NULL;

	p = policy_load_buffer(text, strlen(text), "t.rules", &err);
	if (p == NULL)
		fail_msg("unexpected errors:\n%s", err ? err : "(none)");
	*n = policy_lint(p, no_identity, &w);
	policy_unref(p);
	if (*n == 0)
		assert_null(w);
	else
		assert_non_null(w);
	return w;
}

static void
expect_clean(const char *text, bool no_identity)
{
	size_t n;
	char *w = lint(text, no_identity, &n);

	if (n != 0)
		fail_msg("want no warnings for:\n%sgot:\n%s", text, w);
}

/* Exactly one warning, at line, containing every string of want (NULL-ended). */
static void
expect_one(const char *text, bool no_identity, int line, ...)
{
	char prefix[64], *w;
	const char *s;
	size_t n;
	va_list ap;

	w = lint(text, no_identity, &n);
	if (n != 1)
		fail_msg("want 1 warning for:\n%sgot %zu:\n%s", text, n, w ? w : "");
	snprintf(prefix, sizeof(prefix), "t.rules:%d: warning: ", line);
	if (strncmp(w, prefix, strlen(prefix)) != 0)
		fail_msg("want \"%s...\", got %s", prefix, w);
	va_start(ap, line);
	while ((s = va_arg(ap, const char *)) != NULL)
		if (strstr(w, s) == NULL)
			fail_msg("want \"%s\" in %s", s, w);
	va_end(ap);
	assert_int_equal(w[strlen(w) - 1], '\n');
	free(w);
}

static void
test_unescaped_dot(void **state)
{
	expect_one("allow any github.com 443\n", false, 1, "\"github.com\"",
	    "unescaped \".\" matches any character", "\"githubxcom\" matches too",
	    "write \"github\\.com\"", NULL);
	expect_one("# c\nallow any (.+\\.)?deb.debian\\.org 80\n", false, 2,
	    "write \"(.+\\.)?deb\\.debian\\.org\"", NULL);
	/* every bare dot is escaped in the suggestion */
	expect_one("allow any a.b.example 443\n", false, 1, "write \"a\\.b\\.example\"", NULL);
	(void)state;
}

static void
test_good_patterns_are_clean(void **state)
{
	expect_clean("allow any (.+\\.)?github\\.com 443\n"
	    "allow any deb\\.debian\\.org 80\n"
	    "allow any [a-z.]+\\.example\\.org 443\n"
	    "allow any 2001:db8::1 443\n"
	    "allow any 192\\.0\\.2\\.1 443\n"
	    "allow any (www|api)\\.example\\.net 443\n"
	    "allow any .*\\.corp\\.test 443\n"
	    "deny any .* *\n", false);
	(void)state;
}

static void
test_squid_and_glob_habits(void **state)
{
	expect_one("allow any .example\\.com 443\n", false, 1, "starts with \".\"",
	    "(.+\\.)?example\\.com", NULL);
	expect_one("allow any .example.com 443\n", false, 1, "starts with \".\"",
	    "(.+\\.)?example\\.com", NULL);
	expect_one("allow any .*.example\\.com 443\n", false, 1, "glob",
	    "(.+\\.)?example\\.com", NULL);
	(void)state;
}

static void
test_host_port_and_url(void **state)
{
	expect_one("allow any example\\.com:443 *\n", false, 1, "host:port", "ports column",
	    NULL);
	expect_one("allow any https://example\\.com 443\n", false, 1, "is a URL", NULL);
	expect_one("allow any example\\.com/path 443\n", false, 1, "contains \"/\"", NULL);
	(void)state;
}

static void
test_identity_under_auth_none(void **state)
{
	const char *text = "allow group:eng (.+\\.)?github\\.com 443\n"
	    "allow any deb\\.debian\\.org 80\n";

	expect_one(text, true, 1, "group:eng", "auth none", NULL);
	expect_clean(text, false);
	expect_one("allow authenticated x\\.test 443\n", true, 1, "authenticated", NULL);
	(void)state;
}

static void
test_duplicate(void **state)
{
	expect_one("allow any a\\.test 443\nallow any b\\.test 443\n"
	    "allow  any\ta\\.test   443 # again\n", false, 3, "duplicate of t.rules:1", NULL);
	(void)state;
}

static void
test_shadowed(void **state)
{
	/* same principal and host, ports and methods covered */
	expect_one("allow user:bob a\\.test 80,443,8000-8100\n"
	    "deny user:BOB a\\.test 8080-8090 methods=GET\n", false, 2,
	    "never decides anything", "t.rules:1", NULL);
	/* any covers every principal; a catch-all covers every host */
	expect_one("allow any a\\.test *\nallow group:eng a\\.test 443\n", false, 2,
	    "t.rules:1", NULL);
	expect_one("deny any .* *\nallow any a\\.test 443\n", false, 2, "t.rules:1", NULL);
	/* authenticated covers user: and group: */
	expect_one("allow authenticated a\\.test 443\ndeny group:x a\\.test 443\n", false, 2,
	    "t.rules:1", NULL);
	(void)state;
}

static void
test_not_shadowed(void **state)
{
	expect_clean("allow any a\\.test 443\nallow any a\\.test 80\n", false);
	expect_clean("allow any a\\.test 443 methods=CONNECT\nallow any a\\.test 443\n", false);
	expect_clean("allow any a\\.test 8000-8100\nallow any a\\.test 8000-8101\n", false);
	expect_clean("allow user:bob a\\.test 443\nallow user:alice a\\.test 443\n", false);
	expect_clean("allow group:x a\\.test 443\nallow authenticated a\\.test 443\n", false);
	expect_clean("deny any .* 25,465,587\nallow any a\\.test 443\n", false);
	/* under auth none an identity rule answers nothing, so shadows nothing */
	expect_one("allow group:x a\\.test *\nallow any a\\.test 443\n", true, 1, "auth none",
	    NULL);
	/* adjacent ranges together cover */
	expect_one("allow any a\\.test 80-89,90-99\nallow any a\\.test 85-95\n", false, 2,
	    "t.rules:1", NULL);
	(void)state;
}

static void
test_packaging_example_is_clean(void **state)
{
	struct policy *p;
	char *err = NULL, *w = NULL;

	p = policy_load("packaging/policy.rules", "policy.rules", &err);
	if (p == NULL)
		fail_msg("packaging/policy.rules:\n%s", err ? err : "(no detail)");
	if (policy_lint(p, false, &w) != 0)
		fail_msg("packaging/policy.rules has lint warnings:\n%s", w);
	policy_unref(p);
	(void)state;
}

static void
test_many_rules_fast(void **state)
{
	char *text, *o;
	size_t i, n, cap = 20000 * 64;

	/* 20000 distinct rules: the ordering checks must not compare every pair. */
	text = malloc(cap);
	assert_non_null(text);
	o = text;
	for (i = 0; i < 20000; i++)
		o += sprintf(o, "allow any h%zu\\.example\\.com 443\n", i);
	free(lint(text, false, &n));
	assert_int_equal(n, 0);
	free(text);
	(void)state;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_unescaped_dot),
		cmocka_unit_test(test_good_patterns_are_clean),
		cmocka_unit_test(test_squid_and_glob_habits),
		cmocka_unit_test(test_host_port_and_url),
		cmocka_unit_test(test_identity_under_auth_none),
		cmocka_unit_test(test_duplicate),
		cmocka_unit_test(test_shadowed),
		cmocka_unit_test(test_not_shadowed),
		cmocka_unit_test(test_packaging_example_is_clean),
		cmocka_unit_test(test_many_rules_fast),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
