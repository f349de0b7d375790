/*
 * fuzz_ldap_escape — RFC 4515 escaping and filter templates (auth/ldap_escape.c).
 *
 * The first byte chooses what the rest exercises.
 *
 * Escaping (first byte even), on the remaining bytes as a value:
 *  - with room enough (3 bytes per input byte + NUL) it succeeds, the length
 *    returned is strlen(out), and the output is NUL-free printable-or-space
 *    ASCII (no byte >= 0x80) in which '*', '(' and ')' never appear and '\\'
 *    only starts a \XX escape with two lower-case hex digits; only '*', '(',
 *    ')', '\\', NUL and bytes >= 0x80 are escaped, and un-escaping gives the
 *    input back, byte for byte;
 *  - with a smaller buffer (size from the second byte) it either gives the
 *    same output or fails with -1 and an empty string, never a truncation,
 *    and never writes past outsz (ASan sees the exact-size heap buffer).
 *  - ldap_filter_expand("(uid=%u)") is "(uid=" + that escaping + ")".
 *
 * Templates (first byte odd): the rest, up to the first NUL, is a filter
 * template and whatever follows that NUL a value for %u (and, reversed, %d).
 * If ldap_filter_check accepts the template and expansion succeeds, the
 * unescaped parentheses of the result are exactly those of the template (a
 * value can never open or close a filter component), and every '*' comes
 * from the template.  ldap_filter_user_attr, when it answers, gives a
 * descriptor (a letter, then letters, digits, '-') and the template is
 * exactly "(" ATTR "=%u)".
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "auth/ldap_escape.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int
hexval(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	return -1;              /* upper case is not what we emit */
}

static int
must_escape(unsigned char ch)
{
	return ch == '*' || ch == '(' || ch == ')' || ch == '\\' || ch == '\0' || ch >= 0x80;
}

/* Check out[0..olen) is a proper escaping of in[0..len); abort otherwise. */
static void
check_escaped(const unsigned char *in, size_t len, const char *out, size_t olen)
{
	size_t i = 0, o = 0;

	if (strlen(out) != olen)
		abort();
	while (o < olen) {
		unsigned char ch = (unsigned char)out[o];

		if (ch == '*' || ch == '(' || ch == ')' || ch >= 0x80 || ch == '\0')
			abort();
		if (i >= len)
			abort();
		if (ch == '\\') {
			int h, l;

			if (olen - o < 3 || (h = hexval(out[o + 1])) < 0 ||
			    (l = hexval(out[o + 2])) < 0)
				abort();
			if ((unsigned char)(h << 4 | l) != in[i] || !must_escape(in[i]))
				abort();
			o += 3;
		} else {
			if (ch != in[i] || must_escape(in[i]))
				abort();
			o++;
		}
		i++;
	}
	if (i != len)
		abort();
}

/* Parentheses and stars outside \XX escapes, in order. */
static size_t
structure(const char *s, char *out, size_t outsz)
{
	size_t n = 0;

	for (; *s != '\0'; s++) {
		if (*s == '\\' && s[1] != '\0' && s[2] != '\0') {
			s += 2;
			continue;
		}
		if ((*s == '(' || *s == ')' || *s == '*') && n < outsz)
			out[n++] = *s;
	}
	return n;
}

static void
fuzz_escape(const uint8_t *data, size_t size)
{
	size_t full = 3 * size + 1, small;
	char *out = malloc(full), *out2, *filt;
	const char *err = NULL;
	long n, n2, nf;

	if (out == NULL)
		return;
	n = ldap_escape_value((const char *)data, size, out, full);
	if (n < 0 || (size_t)n >= full)
		abort();
	check_escaped(data, size, out, (size_t)n);

	/* A smaller buffer: all or nothing. */
	small = size > 0 ? (size_t)data[0] % (full + 1) : 0;
	out2 = malloc(small > 0 ? small : 1);
	if (out2 != NULL) {
		n2 = ldap_escape_value((const char *)data, size, out2, small);
		if (n2 == -1) {
			if (small > 0 && out2[0] != '\0')
				abort();
			if ((size_t)n + 1 <= small)
				abort();        /* it fitted: refusing is wrong */
		} else if (n2 != n || (size_t)n2 >= small || memcmp(out, out2, (size_t)n + 1) != 0)
			abort();
		free(out2);
	}

	/* The template substitution is the same escaping. */
	filt = malloc(full + 8);
	if (filt != NULL) {
		nf = ldap_filter_expand("(uid=%u)", (const char *)data, size, NULL, 0, filt,
		    full + 8, &err);
		if (nf != n + 6 || memcmp(filt, "(uid=", 5) != 0 ||
		    memcmp(filt + 5, out, (size_t)n) != 0 || strcmp(filt + 5 + n, ")") != 0)
			abort();
		free(filt);
	}
	free(out);
}

static void
fuzz_template(const uint8_t *data, size_t size)
{
	const uint8_t *nul = memchr(data, '\0', size);
	size_t tlen = nul != NULL ? (size_t)(nul - data) : size;
	const char *val = nul != NULL ? (const char *)nul + 1 : "";
	size_t vlen = nul != NULL ? size - tlen - 1 : 0;
	char *tmpl, *rev, *res, ts[LDAP_FILTER_MAX], rs[LDAP_FILTER_MAX], attr[64];
	const char *err = NULL;
	long n;
	size_t i, a, b;

	tmpl = malloc(tlen + 1);
	rev = malloc(vlen + 1);
	res = malloc(LDAP_FILTER_MAX);
	if (tmpl == NULL || rev == NULL || res == NULL)
		goto out;
	memcpy(tmpl, data, tlen);
	tmpl[tlen] = '\0';
	for (i = 0; i < vlen; i++)
		rev[i] = val[vlen - 1 - i];

	if (ldap_filter_user_attr(tmpl, attr, sizeof(attr)) == 0) {
		size_t al = strlen(attr);

		if (al == 0 || !((attr[0] >= 'a' && attr[0] <= 'z') || (attr[0] >= 'A' && attr[0] <= 'Z')))
			abort();
		if (strspn(attr, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-") != al)
			abort();
		if (tlen != al + 5 || tmpl[0] != '(' || memcmp(tmpl + 1, attr, al) != 0 ||
		    strcmp(tmpl + 1 + al, "=%u)") != 0)
			abort();
	}

	n = ldap_filter_expand(tmpl, val, vlen, rev, vlen, res, LDAP_FILTER_MAX, &err);
	if (n == -1) {
		if (err == NULL || res[0] != '\0')
			abort();
		goto out;
	}
	if (n < 0 || (size_t)n >= LDAP_FILTER_MAX || strlen(res) != (size_t)n)
		abort();
	for (i = 0; i < (size_t)n; i++)
		if ((unsigned char)res[i] >= 0x80 && memchr(tmpl, res[i], tlen) == NULL)
			abort();        /* a high byte that was not in the template */
	err = NULL;
	if (ldap_filter_check(tmpl, "ud", &err) == 0) {
		/* Values add no structure: the result's parentheses and stars
		 * outside escapes are the template's (whose own % sequences hold
		 * none).  Only meaningful when the template has no '\\' of its own
		 * that could pair with a substituted value. */
		if (memchr(tmpl, '\\', tlen) == NULL) {
			a = structure(tmpl, ts, sizeof(ts));
			b = structure(res, rs, sizeof(rs));
			if (a != b || memcmp(ts, rs, a) != 0)
				abort();
		}
	} else if (err == NULL)
		abort();
out:
	free(tmpl);
	free(rev);
	free(res);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	if (data[0] % 2 == 0)
		fuzz_escape(data + 1, size - 1);
	else
		fuzz_template(data + 1, size - 1);
	return 0;
}
