/*
 * test_ldap_escape — RFC 4515 filter-value escaping and template expansion
 * (auth/ldap_escape.c).
 *
 * The cases are the injection attempts of the issue ('*', "alice)(uid=*",
 * "alice*"), the bytes RFC 4515 names (NUL, '\\', parentheses), non-ASCII,
 * and the bounds: a result that does not fit must fail, never be cut short
 * into a different filter.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "auth/ldap_escape.h"

struct esc_case {
	const char *in;
	size_t len;
	const char *want;
};

#define S(x)	x, sizeof(x) - 1

static const struct esc_case esc_cases[] = {
	{ S("alice"), "alice" },
	{ S("*"), "\\2a" },
	{ S("alice*"), "alice\\2a" },
	{ S("alice)(uid=*"), "alice\\29\\28uid=\\2a" },
	{ S("*)(|(uid=*"), "\\2a\\29\\28|\\28uid=\\2a" },
	{ S("a\\b"), "a\\5cb" },
	{ S("\\2a"), "\\5c2a" },
	{ S("a\0b"), "a\\00b" },
	{ S("jos\xc3\xa9"), "jos\\c3\\a9" },
	{ S("\xff\x80\x7f"), "\\ff\\80\x7f" },
	{ S("paren(user)"), "paren\\28user\\29" },
	{ S("cn=Alice,ou=people,dc=example,dc=com"), "cn=Alice,ou=people,dc=example,dc=com" },
	{ S("cn=a\\2C(b),dc=x"), "cn=a\\5c2C\\28b\\29,dc=x" },
	{ S(""), "" },
	{ S("=<>~&|!:"), "=<>~&|!:" },
};

static void
test_escape_table(void **state)
{
	char out[256];
	size_t i;
	long n;

	(void)state;
	for (i = 0; i < sizeof(esc_cases) / sizeof(esc_cases[0]); i++) {
		n = ldap_escape_value(esc_cases[i].in, esc_cases[i].len, out, sizeof(out));
		assert_int_equal(n, (long)strlen(esc_cases[i].want));
		assert_string_equal(out, esc_cases[i].want);
	}
}

/* Every byte value: escaped exactly when RFC 4515 or our ASCII rule says. */
static void
test_escape_every_byte(void **state)
{
	char in[1], out[8];
	int b;
	long n;

	(void)state;
	for (b = 0; b < 256; b++) {
		in[0] = (char)b;
		n = ldap_escape_value(in, 1, out, sizeof(out));
		if (b == '*' || b == '(' || b == ')' || b == '\\' || b == 0 || b >= 0x80) {
			assert_int_equal(n, 3);
			assert_int_equal(out[0], '\\');
		} else {
			assert_int_equal(n, 1);
			assert_int_equal((unsigned char)out[0], b);
		}
	}
}

static void
test_escape_bounds(void **state)
{
	char out[16];

	(void)state;
	/* "abc" needs 4 bytes with the NUL. */
	assert_int_equal(ldap_escape_value("abc", 3, out, 4), 3);
	assert_int_equal(ldap_escape_value("abc", 3, out, 3), -1);
	assert_string_equal(out, "");
	/* "*" needs 4 bytes with the NUL. */
	assert_int_equal(ldap_escape_value("*", 1, out, 4), 3);
	assert_int_equal(ldap_escape_value("*", 1, out, 3), -1);
	assert_int_equal(ldap_escape_value("", 0, out, 1), 0);
	assert_int_equal(ldap_escape_value("", 0, out, 0), -1);
}

static void
test_expand(void **state)
{
	char out[256];
	const char *err = NULL;
	long n;

	(void)state;
	n = ldap_filter_expand("(uid=%u)", "alice)(uid=*", 12, NULL, 0, out, sizeof(out), &err);
	assert_true(n > 0);
	assert_string_equal(out, "(uid=alice\\29\\28uid=\\2a)");

	n = ldap_filter_expand("(&(objectClass=person)(|(uid=%u)(mail=%u)))", "*", 1, NULL, 0,
	    out, sizeof(out), &err);
	assert_string_equal(out, "(&(objectClass=person)(|(uid=\\2a)(mail=\\2a)))");

	n = ldap_filter_expand("(member=%d)", NULL, 0, "uid=a*b,ou=people,dc=x", 22, out,
	    sizeof(out), &err);
	assert_string_equal(out, "(member=uid=a\\2ab,ou=people,dc=x)");

	n = ldap_filter_expand("(cn=100%%)", NULL, 0, NULL, 0, out, sizeof(out), &err);
	assert_string_equal(out, "(cn=100%)");

	/* unknown sequence, missing value, dangling '%' */
	assert_int_equal(ldap_filter_expand("(uid=%s)", "a", 1, NULL, 0, out, sizeof(out),
	    &err), -1);
	assert_non_null(err);
	assert_int_equal(ldap_filter_expand("(member=%d)", "a", 1, NULL, 0, out, sizeof(out),
	    &err), -1);
	assert_int_equal(ldap_filter_expand("(uid=%", "a", 1, NULL, 0, out, sizeof(out),
	    &err), -1);
	assert_string_equal(out, "");
}

/* A result one byte too long fails; one that just fits succeeds. */
static void
test_expand_bounds(void **state)
{
	char out[LDAP_FILTER_MAX], big[2048];
	const char *err;

	(void)state;
	/* "(uid=" + 3*n + ")" + NUL */
	memset(big, '*', sizeof(big));
	assert_int_equal(ldap_filter_expand("(uid=%u)", big, 10, NULL, 0, out, 37, &err), 36);
	assert_int_equal(ldap_filter_expand("(uid=%u)", big, 10, NULL, 0, out, 36, &err), -1);
	assert_string_equal(err, "filter too long");
	assert_string_equal(out, "");
	assert_int_equal(ldap_filter_expand("(uid=%u)", big, sizeof(big), NULL, 0, out,
	    sizeof(out), &err), 5 + 3 * (long)sizeof(big) + 1);
	assert_int_equal(ldap_filter_expand("(|(uid=%u)(cn=%u))", big, sizeof(big), NULL, 0,
	    out, sizeof(out), &err), -1);
}

static void
test_check(void **state)
{
	const char *err;

	(void)state;
	assert_int_equal(ldap_filter_check("(uid=%u)", "u", &err), 0);
	assert_int_equal(ldap_filter_check("(&(objectClass=user)(sAMAccountName=%u))", "u",
	    &err), 0);
	assert_int_equal(ldap_filter_check("(member=%d)", "d", &err), 0);
	assert_int_equal(ldap_filter_check("(cn=100%%)", "u", &err), 0);
	assert_int_equal(ldap_filter_check("(member=%u)", "d", &err), -1);
	assert_int_equal(ldap_filter_check("uid=%u", "u", &err), -1);
	assert_int_equal(ldap_filter_check("(uid=%u", "u", &err), -1);
	assert_int_equal(ldap_filter_check("(uid=%u))", "u", &err), -1);
	assert_int_equal(ldap_filter_check("(uid=%u)(cn=x)", "u", &err), -1);
	assert_int_equal(ldap_filter_check("(uid=%)", "u", &err), -1);
	assert_int_equal(ldap_filter_check("(uid=%", "u", &err), -1);
}

static void
test_user_attr(void **state)
{
	char a[64];

	(void)state;
	assert_int_equal(ldap_filter_user_attr("(uid=%u)", a, sizeof(a)), 0);
	assert_string_equal(a, "uid");
	assert_int_equal(ldap_filter_user_attr("(sAMAccountName=%u)", a, sizeof(a)), 0);
	assert_string_equal(a, "sAMAccountName");
	assert_int_equal(ldap_filter_user_attr("(&(objectClass=person)(uid=%u))", a,
	    sizeof(a)), -1);
	assert_int_equal(ldap_filter_user_attr("(uid=x%u)", a, sizeof(a)), -1);
	assert_int_equal(ldap_filter_user_attr("(uid~=%u)", a, sizeof(a)), -1);
	assert_int_equal(ldap_filter_user_attr("(1uid=%u)", a, sizeof(a)), -1);
	assert_int_equal(ldap_filter_user_attr("(uid=%u)", a, 3), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_escape_table),
		cmocka_unit_test(test_escape_every_byte),
		cmocka_unit_test(test_escape_bounds),
		cmocka_unit_test(test_expand),
		cmocka_unit_test(test_expand_bounds),
		cmocka_unit_test(test_check),
		cmocka_unit_test(test_user_attr),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
