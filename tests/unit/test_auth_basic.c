/*
 * test_auth_basic — the Proxy-Authorization Basic parser (auth/basic.c).
 *
 * A table of header values, each with the verdict and, for good ones, the
 * exact user and password expected.  The bad ones are the spellings an
 * attacker or a sloppy client tries: other schemes, missing or doubled
 * separators, every kind of non-canonical base64, bytes that must never
 * reach a filter or a bind (NUL, controls, invalid UTF-8), stray spaces in
 * the name, empty halves and oversized credentials.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/basic.h"

struct basic_case {
	const char *hdr;
	enum basic_status want;
	const char *user;               /* BASIC_OK / BASIC_EMPTY */
	const char *pass;               /* BASIC_OK */
};

static const struct basic_case cases[] = {
	/* good */
	{ "Basic YWxpY2U6YWxpY2UtcHc=", BASIC_OK, "alice", "alice-pw" },
	{ "basic YWxpY2U6YWxpY2UtcHc=", BASIC_OK, "alice", "alice-pw" },
	{ "BASIC YWxpY2U6YWxpY2UtcHc=", BASIC_OK, "alice", "alice-pw" },
	{ "bAsIc YWxpY2U6YWxpY2UtcHc=", BASIC_OK, "alice", "alice-pw" },
	{ "Basic   YWxpY2U6YWxpY2UtcHc=", BASIC_OK, "alice", "alice-pw" },  /* 1*SP */
	{ "  Basic YWxpY2U6YWxpY2UtcHc=\t ", BASIC_OK, "alice", "alice-pw" }, /* field OWS */
	{ "Basic YTpi", BASIC_OK, "a", "b" },                    /* no padding needed */
	{ "Basic YWI6Y2Q=", BASIC_OK, "ab", "cd" },              /* one '=' */
	{ "Basic YTpiYw==", BASIC_OK, "a", "bc" },               /* two '=' */
	{ "Basic YTpiOmM6ZA==", BASIC_OK, "a", "b:c:d" },        /* colons in the password */
	{ "Basic am9zw6k6cMOkc3M=", BASIC_OK, "jos\xc3\xa9", "p\xc3\xa4ss" }, /* UTF-8 */
	{ "Basic 5pel5pys6Kqe OnB3", BASIC_MALFORMED, NULL, NULL },          /* space inside */
	{ "Basic 5pel5pys6KqeOnB3", BASIC_OK, "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e", "pw" },
	{ "Basic Ym9iIHNtaXRoOnB3", BASIC_OK, "bob smith", "pw" }, /* one inner space */
	{ "Basic YWxpY2U6IHB3IA==", BASIC_OK, "alice", " pw " },  /* spaces in a password */
	{ "Basic YWxpY2U6/w==", BASIC_OK, "alice", "\xff" },     /* non-UTF-8 password */
	{ "Basic c3Rhcio6cHc=", BASIC_OK, "star*", "pw" },       /* escaped later, not here */
	{ "Basic YWxpY2UpKHVpZD0qOnB3", BASIC_OK, "alice)(uid=*", "pw" },

	/* empty halves: decided here, never an LDAP bind */
	{ "Basic YWxpY2U6", BASIC_EMPTY, "alice", NULL },        /* "alice:" */
	{ "Basic OnB3", BASIC_EMPTY, "", NULL },                 /* ":pw" */
	{ "Basic Og==", BASIC_EMPTY, "", NULL },                 /* ":" */

	/* other schemes */
	{ "Bearer abc", BASIC_NOT_BASIC, NULL, NULL },
	{ "Digest username=\"alice\"", BASIC_NOT_BASIC, NULL, NULL },
	{ "Negotiate YWxpY2U6YWxpY2UtcHc=", BASIC_NOT_BASIC, NULL, NULL },
	{ "BasicYWxpY2U6YWxpY2UtcHc=", BASIC_NOT_BASIC, NULL, NULL },
	{ "Basic\tYWxpY2U6YWxpY2UtcHc=", BASIC_NOT_BASIC, NULL, NULL },
	{ "Basi YWxpY2U6YWxpY2UtcHc=", BASIC_NOT_BASIC, NULL, NULL },
	{ "", BASIC_NOT_BASIC, NULL, NULL },
	{ "   ", BASIC_NOT_BASIC, NULL, NULL },

	/* malformed */
	{ "Basic", BASIC_MALFORMED, NULL, NULL },
	{ "Basic ", BASIC_MALFORMED, NULL, NULL },
	{ "Basic YWxpY2U6YWxpY2UtcHc", BASIC_MALFORMED, NULL, NULL },  /* padding missing */
	{ "Basic YWxpY2U6YWxpY2UtcHc==", BASIC_MALFORMED, NULL, NULL }, /* too much */
	{ "Basic YWxpY2U6YWxpY2UtcHc=YTpi", BASIC_MALFORMED, NULL, NULL }, /* '=' inside */
	{ "Basic YWxp=2U6YWxpY2UtcHc=", BASIC_MALFORMED, NULL, NULL },
	{ "Basic YTpiYw=", BASIC_MALFORMED, NULL, NULL },
	{ "Basic YTpiY===", BASIC_MALFORMED, NULL, NULL },       /* three '=' */
	{ "Basic ====", BASIC_MALFORMED, NULL, NULL },
	{ "Basic YTpiYx==", BASIC_MALFORMED, NULL, NULL },       /* non-zero pad bits */
	{ "Basic YWI6Y2Q=,", BASIC_MALFORMED, NULL, NULL },      /* trailing garbage */
	{ "Basic YWI6Y2Q= x", BASIC_MALFORMED, NULL, NULL },
	{ "Basic YWI6Y2Q=, Basic YTpi", BASIC_MALFORMED, NULL, NULL },
	{ "Basic YW I6Y2Q=", BASIC_MALFORMED, NULL, NULL },
	{ "Basic YWI6\nY2Q=", BASIC_MALFORMED, NULL, NULL },
	{ "Basic YWI6Y2Q=\r\n", BASIC_MALFORMED, NULL, NULL },
	{ "Basic YWI-Y2Q=", BASIC_MALFORMED, NULL, NULL },       /* base64url symbol */
	{ "Basic YWI_Y2Q=", BASIC_MALFORMED, NULL, NULL },
	{ "Basic realm=\"x\"", BASIC_MALFORMED, NULL, NULL },    /* auth-param form */
	{ "Basic YWxpY2U=", BASIC_MALFORMED, NULL, NULL },       /* "alice": no colon */
	{ "Basic YWxpAGNlOnB3", BASIC_MALFORMED, NULL, NULL },   /* NUL in the user */
	{ "Basic YWxpY2U6cAB3", BASIC_MALFORMED, NULL, NULL },   /* NUL in the password */
	{ "Basic YWxpY2U6cAp3", BASIC_MALFORMED, NULL, NULL },   /* LF in the password */
	{ "Basic YWxpCWNlOnB3", BASIC_MALFORMED, NULL, NULL },   /* TAB in the user */
	{ "Basic YWxpf2NlOnB3", BASIC_MALFORMED, NULL, NULL },   /* DEL in the user */
	{ "Basic YWxpwoVjZTpwdw==", BASIC_MALFORMED, NULL, NULL }, /* C1 NEL in the user */
	{ "Basic YWxp/2NlOnB3", BASIC_MALFORMED, NULL, NULL },   /* 0xff in the user */
	{ "Basic wK86cHc=", BASIC_MALFORMED, NULL, NULL },       /* overlong '/' */
	{ "Basic 7aCAOnB3", BASIC_MALFORMED, NULL, NULL },       /* surrogate U+D800 */
	{ "Basic 9JCAgDpwdw==", BASIC_MALFORMED, NULL, NULL },   /* > U+10FFFF */
	{ "Basic w6k6cHc=", BASIC_OK, "\xc3\xa9", "pw" },        /* control: é is fine */
	{ "Basic wzpwdw==", BASIC_MALFORMED, NULL, NULL },       /* truncated sequence */
	{ "Basic IGFsaWNlOnB3", BASIC_MALFORMED, NULL, NULL },   /* " alice" */
	{ "Basic YWxpY2UgOnB3", BASIC_MALFORMED, NULL, NULL },   /* "alice " */
	{ "Basic Ym9iICBzbWl0aDpwdw==", BASIC_MALFORMED, NULL, NULL }, /* "bob  smith" */
	{ "Basic IDpwdw==", BASIC_MALFORMED, NULL, NULL },       /* " " */
};

static void
test_table(void **state)
{
	struct basic_cred c;
	const char *err;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct basic_case *t = &cases[i];
		enum basic_status got;

		got = basic_parse(t->hdr, strlen(t->hdr), &c, &err);
		if (got != t->want)
			fail_msg("case %zu \"%s\": got %d want %d (%s)", i, t->hdr, got,
			    t->want, err != NULL ? err : "no error");
		if (got == BASIC_OK) {
			assert_non_null(c.user);
			assert_string_equal(c.user, t->user);
			assert_int_equal(c.userlen, strlen(t->user));
			assert_string_equal(c.pass, t->pass);
			assert_int_equal(c.passlen, strlen(t->pass));
			assert_null(err);
		} else if (got == BASIC_EMPTY) {
			assert_non_null(c.user);
			assert_string_equal(c.user, t->user);
			assert_null(c.pass);
			assert_int_equal(c.passlen, 0);
			assert_non_null(err);
		} else {
			assert_null(c.user);
			assert_null(c.pass);
			assert_non_null(err);
		}
		basic_wipe(&c);
	}
}

/* The value is taken by length, not up to a NUL: a NUL inside is an error. */
static void
test_embedded_nul(void **state)
{
	static const char hdr[] = "Basic YTpi\0junk";
	struct basic_cred c;

	(void)state;
	assert_int_equal(basic_parse(hdr, sizeof(hdr) - 1, &c, NULL), BASIC_MALFORMED);
	assert_int_equal(basic_parse(hdr, 10, &c, NULL), BASIC_OK);
	assert_string_equal(c.user, "a");
	basic_wipe(&c);
	assert_int_equal(basic_parse(NULL, 0, &c, NULL), BASIC_MALFORMED);
}

/* Encode "user:pass" (test helper, trusted input). */
static char *
b64(const unsigned char *in, size_t len)
{
	static const char tab[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	char *out = malloc(len / 3 * 4 + 16), *o = out;
	size_t i;

	strcpy(o, "Basic ");
	o += 6;
	for (i = 0; i + 2 < len; i += 3) {
		*o++ = tab[in[i] >> 2];
		*o++ = tab[(in[i] & 3) << 4 | in[i + 1] >> 4];
		*o++ = tab[(in[i + 1] & 15) << 2 | in[i + 2] >> 6];
		*o++ = tab[in[i + 2] & 63];
	}
	if (len - i == 1) {
		*o++ = tab[in[i] >> 2];
		*o++ = tab[(in[i] & 3) << 4];
		*o++ = '=';
		*o++ = '=';
	} else if (len - i == 2) {
		*o++ = tab[in[i] >> 2];
		*o++ = tab[(in[i] & 3) << 4 | in[i + 1] >> 4];
		*o++ = tab[(in[i + 1] & 15) << 2];
		*o++ = '=';
	}
	*o = '\0';
	return out;
}

/* Decoded length: BASIC_DECODED_MAX is accepted, one byte more is not. */
static void
test_length_bound(void **state)
{
	unsigned char raw[BASIC_DECODED_MAX + 8];
	struct basic_cred c;
	char *h;
	size_t n;

	(void)state;
	for (n = BASIC_DECODED_MAX - 3; n <= BASIC_DECODED_MAX + 3; n++) {
		memset(raw, 'p', n);
		memcpy(raw, "user:", 5);
		h = b64(raw, n);
		assert_int_equal(basic_parse(h, strlen(h), &c, NULL),
		    n <= BASIC_DECODED_MAX ? BASIC_OK : BASIC_MALFORMED);
		if (n <= BASIC_DECODED_MAX)
			assert_int_equal(c.passlen, n - 5);
		basic_wipe(&c);
		free(h);
	}
	/* A huge value fails without reading past a bound (ASan watches). */
	h = malloc(1 << 20);
	memcpy(h, "Basic ", 6);
	memset(h + 6, 'A', (1 << 20) - 6);
	assert_int_equal(basic_parse(h, 1 << 20, &c, NULL), BASIC_MALFORMED);
	free(h);
}

/* Every single byte as the user name: only the allowed ones pass. */
static void
test_every_byte(void **state)
{
	unsigned char raw[8];
	struct basic_cred c;
	enum basic_status want, got;
	char *h;
	int b;

	(void)state;
	for (b = 0; b < 256; b++) {
		raw[0] = 'u';
		raw[1] = (unsigned char)b;
		raw[2] = 'v';
		memcpy(raw + 3, ":pw", 3);
		h = b64(raw, 6);
		got = basic_parse(h, strlen(h), &c, NULL);
		want = (b >= 0x21 && b < 0x7f) || b == ' ' ? BASIC_OK : BASIC_MALFORMED;
		if (got != want)
			fail_msg("byte 0x%02x in the user: got %d want %d", b, got, want);
		basic_wipe(&c);
		free(h);
		/* and in the password: only NUL, C0 and DEL are refused */
		memcpy(raw, "u:p", 3);
		raw[3] = (unsigned char)b;
		h = b64(raw, 4);
		got = basic_parse(h, strlen(h), &c, NULL);
		want = b < 0x20 || b == 0x7f ? BASIC_MALFORMED : BASIC_OK;
		if (got != want)
			fail_msg("byte 0x%02x in the password: got %d want %d", b, got, want);
		basic_wipe(&c);
		free(h);
	}
}

static void
test_wipe(void **state)
{
	struct basic_cred c;
	size_t i;

	(void)state;
	assert_int_equal(basic_parse("Basic YWxpY2U6YWxpY2UtcHc=", 26, &c, NULL), BASIC_OK);
	basic_wipe(&c);
	for (i = 0; i < sizeof(c.buf); i++)
		assert_int_equal(c.buf[i], 0);
	assert_null(c.user);
	assert_null(c.pass);
}

static void
test_utf8(void **state)
{
	(void)state;
	assert_true(basic_utf8_valid((const unsigned char *)"", 0));
	assert_true(basic_utf8_valid((const unsigned char *)"\xf4\x8f\xbf\xbf", 4));
	assert_false(basic_utf8_valid((const unsigned char *)"\xf4\x90\x80\x80", 4));
	assert_false(basic_utf8_valid((const unsigned char *)"\xe0\x80\xaf", 3));
	assert_false(basic_utf8_valid((const unsigned char *)"\xed\xbf\xbf", 3));
	assert_true(basic_utf8_valid((const unsigned char *)"\xee\x80\x80", 3));
	assert_false(basic_utf8_valid((const unsigned char *)"\x80", 1));
	assert_false(basic_utf8_valid((const unsigned char *)"\xc3", 1));
	assert_false(basic_utf8_valid((const unsigned char *)"\xf8\x88\x80\x80\x80", 5));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table),
		cmocka_unit_test(test_embedded_nul),
		cmocka_unit_test(test_length_bound),
		cmocka_unit_test(test_every_byte),
		cmocka_unit_test(test_wipe),
		cmocka_unit_test(test_utf8),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
