/*
 * test_proxy_proto — PROXY protocol v1 and v2 headers (gateway/proxy_proto.c).
 *
 * Besides tables of good and bad headers, every good header is fed again cut
 * at every length: each cut must answer NEED_MORE (never DONE, never ERROR),
 * and every bad header must answer ERROR at its whole length and never DONE
 * at any cut, since the gateway calls the parser again on each read and
 * must neither stall on garbage nor drop a slow load balancer.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "gateway/proxy_proto.h"

static enum proxy_result
parse(const void *buf, size_t len, struct proxy_info *pi, size_t *consumed)
{
	const char *err = NULL;
	enum proxy_result r;

	r = proxy_parse(buf, len, pi, consumed, &err);
	if (r == PROXY_ERROR)
		assert_non_null(err);
	return r;
}

/* Every strict prefix of a good header is NEED_MORE. */
static void
check_prefixes_need_more(const unsigned char *buf, size_t len)
{
	struct proxy_info pi;
	size_t i, consumed;
	enum proxy_result r;

	for (i = 0; i < len; i++) {
		r = parse(buf, i, &pi, &consumed);
		if (r != PROXY_NEED_MORE)
			fail_msg("prefix of %zu/%zu bytes: result %d", i, len, (int)r);
	}
}

static void
check_addr(const struct sockaddr_storage *ss, const char *text, uint16_t port)
{
	char buf[INET6_ADDRSTRLEN];

	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;

		inet_ntop(AF_INET, &sin->sin_addr, buf, sizeof(buf));
		assert_int_equal(ntohs(sin->sin_port), port);
	} else {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)ss;

		assert_int_equal(ss->ss_family, AF_INET6);
		inet_ntop(AF_INET6, &sin6->sin6_addr, buf, sizeof(buf));
		assert_int_equal(ntohs(sin6->sin6_port), port);
	}
	assert_string_equal(buf, text);
}

/* ---- v1 ---------------------------------------------------------------- */

struct v1_good {
	const char *line;
	bool has_address;
	const char *src, *dst;
	uint16_t sport, dport;
};

static const struct v1_good v1_good[] = {
	{ "PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n", true,
	  "192.0.2.1", "198.51.100.2", 56324, 443 },
	{ "PROXY TCP4 0.0.0.0 255.255.255.255 0 65535\r\n", true,
	  "0.0.0.0", "255.255.255.255", 0, 65535 },
	{ "PROXY TCP6 2001:db8::1 2001:db8::2 1 2\r\n", true,
	  "2001:db8::1", "2001:db8::2", 1, 2 },
	{ "PROXY TCP6 2001:DB8:0:0:0:0:0:1 ::1 10 20\r\n", true,
	  "2001:db8::1", "::1", 10, 20 },
	{ "PROXY TCP6 ::ffff:127.0.0.1 ::ffff:10.0.0.1 1000 2000\r\n", true,
	  "::ffff:127.0.0.1", "::ffff:10.0.0.1", 1000, 2000 },
	/* the longest TCP6 line, 104 bytes (UNKNOWN lines may reach 107) */
	{ "PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
	  "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n", true,
	  "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
	  "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535, 65535 },
	{ "PROXY UNKNOWN\r\n", false, NULL, NULL, 0, 0 },
	{ "PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n", false,
	  NULL, NULL, 0, 0 },
	{ "PROXY UNKNOWN \r\n", false, NULL, NULL, 0, 0 },
};

static const char *const v1_bad[] = {
	"PROXY\r\n",
	"PROXY \r\n",
	"PROXY TCP4\r\n",
	"PROXY TCP4 \r\n",
	"proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n",
	"PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n",
	"PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n",
	"PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n",
	"PROXY  TCP4 1.2.3.4 5.6.7.8 1 2\r\n",
	"PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n",
	"PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n",
	"PROXY TCP4 1.2.3.4 5.6.7.8  1 2\r\n",
	"PROXY TCP4 1.2.3.4 5.6.7.8 1  2\r\n",
	"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n",
	" PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n",
	"PROXY\tTCP4 1.2.3.4 5.6.7.8 1 2\r\n",
	"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n",
	"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\r\n",
	"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rx",
	"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",
	"PROXY TCP4 1.2.3.4 5.6.7.8\r\n",
	"PROXY TCP4 1.2.3.4\r\n",
	"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n",
	/* family mismatch */
	"PROXY TCP4 ::1 ::1 1 2\r\n",
	"PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n",
	"PROXY TCP4 1.2.3.4 ::1 1 2\r\n",
	"PROXY TCP6 ::1 1.2.3.4 1 2\r\n",
	/* non-canonical addresses */
	"PROXY TCP4 127.1 5.6.7.8 1 2\r\n",
	"PROXY TCP4 0177.0.0.1 5.6.7.8 1 2\r\n",
	"PROXY TCP4 2130706433 5.6.7.8 1 2\r\n",
	"PROXY TCP4 1.2.3.4 5.6.7.256 1 2\r\n",
	"PROXY TCP4 1.2.3.04 5.6.7.8 1 2\r\n",
	"PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n",
	"PROXY TCP6 [::1] ::1 1 2\r\n",
	"PROXY TCP6 1::2::3 ::1 1 2\r\n",
	"PROXY TCP4 example.com 5.6.7.8 1 2\r\n",
	/* bad ports */
	"PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n",
	"PROXY TCP4 1.2.3.4 5.6.7.8 1 65536\r\n",
	"PROXY TCP4 1.2.3.4 5.6.7.8 99999 2\r\n",
	"PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n",
	"PROXY TCP4 1.2.3.4 5.6.7.8 1 02\r\n",
	"PROXY TCP4 1.2.3.4 5.6.7.8 00 2\r\n",
	"PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n",
	"PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n",
	"PROXY TCP4 1.2.3.4 5.6.7.8 123456 2\r\n",
	"PROXY TCP4 1.2.3.4 5.6.7.8 1 0x10\r\n",
	"PROXY TCP4 1.2.3.4 5.6.7.8 1 2a\r\n",
	/* UNKNOWN with junk */
	"PROXY UNKNOWNX\r\n",
	"PROXY UNKNOWN\tx\r\n",
	"PROXY UNKNOWN x\x01y\r\n",
	"PROXY UNKNOWN\n\r\n",
	/* over 107 bytes */
	("PROXY UNKNOWN xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	 "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\r\n"),
	/* v2-looking but not */
	"GET / HTTP/1.1\r\n",
	"CONNECT example.com:443 HTTP/1.1\r\n",
	"\x16\x03\x01",
};

static void
test_v1_good(void **state)
{
	struct proxy_info pi;
	unsigned char buf[256];
	size_t i, len, consumed;

	(void)state;
	for (i = 0; i < sizeof(v1_good) / sizeof(v1_good[0]); i++) {
		const struct v1_good *g = &v1_good[i];

		len = strlen(g->line);
		assert_true(len <= PROXY_V1_MAX);
		if (parse(g->line, len, &pi, &consumed) != PROXY_DONE)
			fail_msg("refused: %s", g->line);
		assert_int_equal(consumed, len);
		assert_int_equal(pi.has_address, g->has_address);
		if (g->has_address) {
			check_addr(&pi.src, g->src, g->sport);
			check_addr(&pi.dst, g->dst, g->dport);
		}
		check_prefixes_need_more((const unsigned char *)g->line, len);

		/* request bytes after the header are not consumed */
		memcpy(buf, g->line, len);
		memcpy(buf + len, "GET / HTTP/1.1\r\n", 16);
		assert_int_equal(parse(buf, len + 16, &pi, &consumed), PROXY_DONE);
		assert_int_equal(consumed, len);
	}
}

static void
test_v1_bad(void **state)
{
	struct proxy_info pi;
	size_t i, j, len, consumed;
	enum proxy_result r;

	(void)state;
	for (i = 0; i < sizeof(v1_bad) / sizeof(v1_bad[0]); i++) {
		len = strlen(v1_bad[i]);
		r = parse(v1_bad[i], len, &pi, &consumed);
		if (r != PROXY_ERROR)
			fail_msg("not refused (%d): %s", (int)r, v1_bad[i]);
		assert_int_equal(consumed, 0);
		/* once an error, an error with more bytes too; never DONE on a cut */
		for (j = 0; j < len; j++) {
			r = parse(v1_bad[i], j, &pi, &consumed);
			if (r == PROXY_DONE)
				fail_msg("cut at %zu accepted: %s", j, v1_bad[i]);
		}
	}
}

/* Errors are found at the first wrong byte, not when the line ends. */
static void
test_v1_early_error(void **state)
{
	struct proxy_info pi;
	size_t consumed;

	(void)state;
	assert_int_equal(parse("PROXY TCP4 1.2.3.4 5.6.7.8 1 2", 30, &pi, &consumed),
	    PROXY_NEED_MORE);
	assert_int_equal(parse("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r", 31, &pi, &consumed),
	    PROXY_NEED_MORE);
	assert_int_equal(parse("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 ", 31, &pi, &consumed),
	    PROXY_ERROR);
	assert_int_equal(parse("PROXX", 5, &pi, &consumed), PROXY_ERROR);
	assert_int_equal(parse("PROXY X", 7, &pi, &consumed), PROXY_ERROR);
	assert_int_equal(parse("PROXY TCP4 a", 12, &pi, &consumed), PROXY_ERROR);
	assert_int_equal(parse("PROXY TCP4 ::", 13, &pi, &consumed), PROXY_ERROR);
	assert_int_equal(parse("PROXY TCP4 1.2.3.4 5.6.7.8 0", 28, &pi, &consumed),
	    PROXY_NEED_MORE);
	assert_int_equal(parse("PROXY TCP4 1.2.3.4 5.6.7.8 01", 29, &pi, &consumed),
	    PROXY_ERROR);
	assert_int_equal(parse("PROXY TCP4 1.2.3.4 5.6.7.8 65536", 32, &pi, &consumed),
	    PROXY_ERROR);
	assert_int_equal(parse("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n", 31, &pi, &consumed),
	    PROXY_ERROR);
	assert_int_equal(parse("PROXY TCP4 1234567890123456", 27, &pi, &consumed),
	    PROXY_ERROR);
	/* the first byte decides; nothing else is waited for */
	assert_int_equal(parse("G", 1, &pi, &consumed), PROXY_ERROR);
	assert_int_equal(parse("\x16", 1, &pi, &consumed), PROXY_ERROR);
	assert_int_equal(parse("", 0, &pi, &consumed), PROXY_NEED_MORE);
	assert_int_equal(parse("P", 1, &pi, &consumed), PROXY_NEED_MORE);
	assert_int_equal(parse("\r", 1, &pi, &consumed), PROXY_NEED_MORE);
}

/* A line with no CR is refused once it could no longer fit. */
static void
test_v1_overlong_without_cr(void **state)
{
	struct proxy_info pi;
	unsigned char buf[300];
	size_t consumed, n;

	(void)state;
	n = (size_t)snprintf((char *)buf, sizeof(buf), "PROXY UNKNOWN ");
	memset(buf + n, 'x', sizeof(buf) - n);
	assert_int_equal(parse(buf, 105, &pi, &consumed), PROXY_NEED_MORE);
	assert_int_equal(parse(buf, 106, &pi, &consumed), PROXY_ERROR);
	assert_int_equal(parse(buf, 300, &pi, &consumed), PROXY_ERROR);
	buf[105] = '\r';
	buf[106] = '\n';
	assert_int_equal(parse(buf, 107, &pi, &consumed), PROXY_DONE);
	assert_int_equal(consumed, 107);
	buf[105] = 'x';
	buf[106] = '\r';
	buf[107] = '\n';
	assert_int_equal(parse(buf, 108, &pi, &consumed), PROXY_ERROR);
}

/* ---- v2 ---------------------------------------------------------------- */

static const unsigned char sig[12] = {
	0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a
};

/* Build a v2 header; body is the address block plus TLVs. */
static size_t
v2(unsigned char *out, unsigned ver_cmd, unsigned fam, const void *body, size_t blen)
{
	memcpy(out, sig, 12);
	out[12] = (unsigned char)ver_cmd;
	out[13] = (unsigned char)fam;
	out[14] = (unsigned char)(blen >> 8);
	out[15] = (unsigned char)blen;
	if (blen > 0)
		memcpy(out + 16, body, blen);
	return 16 + blen;
}

static const unsigned char v4_block[12] = {
	192, 0, 2, 1,  198, 51, 100, 2,  0xdc, 0x04,  0x01, 0xbb,
};

static const unsigned char v6_block[36] = {
	0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,
	0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2,
	0x30, 0x39,  0x00, 0x50,
};

static void
expect_done(const unsigned char *buf, size_t len, size_t want)
{
	struct proxy_info pi;
	size_t consumed;

	assert_int_equal(parse(buf, len, &pi, &consumed), PROXY_DONE);
	assert_int_equal(consumed, want);
}

static void
test_v2_proxy_v4(void **state)
{
	unsigned char buf[2048];
	struct proxy_info pi;
	size_t len, consumed;

	(void)state;
	len = v2(buf, 0x21, 0x11, v4_block, sizeof(v4_block));
	assert_int_equal(parse(buf, len, &pi, &consumed), PROXY_DONE);
	assert_int_equal(consumed, 28);
	assert_true(pi.has_address);
	check_addr(&pi.src, "192.0.2.1", 56324);
	check_addr(&pi.dst, "198.51.100.2", 443);
	check_prefixes_need_more(buf, len);
	/* following bytes are left alone */
	memcpy(buf + len, "\x16\x03\x01", 3);
	expect_done(buf, len + 3, len);
}

static void
test_v2_proxy_v6(void **state)
{
	unsigned char buf[2048];
	struct proxy_info pi;
	size_t len, consumed;

	(void)state;
	len = v2(buf, 0x21, 0x21, v6_block, sizeof(v6_block));
	assert_int_equal(parse(buf, len, &pi, &consumed), PROXY_DONE);
	assert_int_equal(consumed, 52);
	assert_true(pi.has_address);
	check_addr(&pi.src, "2001:db8::1", 12345);
	check_addr(&pi.dst, "2001:db8::2", 80);
	check_prefixes_need_more(buf, len);
}

static void
test_v2_local_and_unspec(void **state)
{
	unsigned char buf[2048], body[64];
	struct proxy_info pi;
	size_t len, consumed;

	(void)state;
	/* LOCAL, UNSPEC, empty: a health check */
	len = v2(buf, 0x20, 0x00, NULL, 0);
	assert_int_equal(parse(buf, len, &pi, &consumed), PROXY_DONE);
	assert_int_equal(consumed, 16);
	assert_false(pi.has_address);
	check_prefixes_need_more(buf, len);
	/* LOCAL carrying addresses: they are ignored */
	len = v2(buf, 0x20, 0x11, v4_block, sizeof(v4_block));
	assert_int_equal(parse(buf, len, &pi, &consumed), PROXY_DONE);
	assert_false(pi.has_address);
	/* PROXY with UNSPEC: no address either */
	len = v2(buf, 0x21, 0x00, NULL, 0);
	assert_int_equal(parse(buf, len, &pi, &consumed), PROXY_DONE);
	assert_false(pi.has_address);
	/* UNSPEC with TLVs only */
	memcpy(body, "\x04\x00\x02zz", 5);
	len = v2(buf, 0x21, 0x00, body, 5);
	expect_done(buf, len, 21);
}

static void
test_v2_tlvs(void **state)
{
	unsigned char buf[2048], body[1100];
	struct proxy_info pi;
	size_t len, consumed, n;

	(void)state;
	/* addresses, then ALPN "h2", an empty NOOP, then authority */
	memcpy(body, v4_block, 12);
	n = 12;
	memcpy(body + n, "\x01\x00\x02h2", 5);
	n += 5;
	memcpy(body + n, "\x04\x00\x00", 3);
	n += 3;
	memcpy(body + n, "\x02\x00\x0b" "example.com", 14);
	n += 14;
	len = v2(buf, 0x21, 0x11, body, n);
	assert_int_equal(parse(buf, len, &pi, &consumed), PROXY_DONE);
	assert_int_equal(consumed, 16 + n);
	check_addr(&pi.src, "192.0.2.1", 56324);
	check_prefixes_need_more(buf, len);

	/* a TLV one byte too long for the block */
	body[n - 12] = 0x0c;
	len = v2(buf, 0x21, 0x11, body, n);
	assert_int_equal(parse(buf, len, &pi, &consumed), PROXY_ERROR);
	body[n - 12] = 0x0b;
	/* a TLV header cut short: 1 and 2 trailing bytes */
	body[n] = 0x04;
	len = v2(buf, 0x21, 0x11, body, n + 1);
	assert_int_equal(parse(buf, len, &pi, &consumed), PROXY_ERROR);
	body[n + 1] = 0x00;
	len = v2(buf, 0x21, 0x11, body, n + 2);
	assert_int_equal(parse(buf, len, &pi, &consumed), PROXY_ERROR);
	/* 3 bytes: a complete empty TLV */
	body[n + 2] = 0x00;
	len = v2(buf, 0x21, 0x11, body, n + 3);
	expect_done(buf, len, 16 + n + 3);

	/* the largest header accepted: 1024 bytes after the fixed part */
	memcpy(body, v4_block, 12);
	body[12] = 0x04;
	body[13] = (1024 - 15) >> 8;
	body[14] = (1024 - 15) & 0xff;
	memset(body + 15, 'x', 1024 - 15);
	len = v2(buf, 0x21, 0x11, body, 1024);
	expect_done(buf, len, PROXY_V2_MAX);
	/* one more is refused, as soon as the length is known */
	body[14]++;
	len = v2(buf, 0x21, 0x11, body, 1025);
	assert_int_equal(parse(buf, len, &pi, &consumed), PROXY_ERROR);
	assert_int_equal(parse(buf, 16, &pi, &consumed), PROXY_ERROR);
	buf[14] = 0xff;
	buf[15] = 0xff;
	assert_int_equal(parse(buf, 16, &pi, &consumed), PROXY_ERROR);
}

static void
test_v2_bad(void **state)
{
	unsigned char buf[2048], good[64];
	struct proxy_info pi;
	size_t len, glen, consumed, i;
	static const unsigned bad_fam[] = {
		0x01, 0x10, 0x12, 0x20, 0x22, 0x31, 0x32, 0x02, 0x13, 0x41, 0xff,
	};

	(void)state;
	glen = v2(good, 0x21, 0x11, v4_block, sizeof(v4_block));

	/* a wrong byte anywhere in the signature is refused at that byte */
	for (i = 0; i < 12; i++) {
		memcpy(buf, good, glen);
		buf[i] ^= 0x20;
		if (i == 0)
			continue;       /* a different first byte is "not PROXY" */
		assert_int_equal(parse(buf, i + 1, &pi, &consumed), PROXY_ERROR);
		assert_int_equal(parse(buf, glen, &pi, &consumed), PROXY_ERROR);
	}
	/* versions 0, 1, 3..15 and commands 2..15 */
	for (i = 0; i < 256; i++) {
		enum proxy_result r;

		memcpy(buf, good, glen);
		buf[12] = (unsigned char)i;
		r = parse(buf, 13, &pi, &consumed);
		if (i == 0x20 || i == 0x21)
			assert_int_equal(r, PROXY_NEED_MORE);
		else
			assert_int_equal(r, PROXY_ERROR);
		r = parse(buf, glen, &pi, &consumed);
		assert_int_equal(r, (i == 0x20 || i == 0x21) ? PROXY_DONE : PROXY_ERROR);
	}
	/* families and protocols other than TCP4, TCP6 and UNSPEC */
	for (i = 0; i < sizeof(bad_fam) / sizeof(bad_fam[0]); i++) {
		memcpy(buf, good, glen);
		buf[13] = (unsigned char)bad_fam[i];
		assert_int_equal(parse(buf, 14, &pi, &consumed), PROXY_ERROR);
		buf[12] = 0x20;
		assert_int_equal(parse(buf, glen, &pi, &consumed), PROXY_ERROR);
	}
	/* length shorter than the address block */
	len = v2(buf, 0x21, 0x11, v4_block, 11);
	assert_int_equal(parse(buf, len, &pi, &consumed), PROXY_ERROR);
	assert_int_equal(parse(buf, 16, &pi, &consumed), PROXY_ERROR);
	len = v2(buf, 0x21, 0x21, v6_block, 35);
	assert_int_equal(parse(buf, len, &pi, &consumed), PROXY_ERROR);
	len = v2(buf, 0x21, 0x21, v4_block, 12);
	assert_int_equal(parse(buf, len, &pi, &consumed), PROXY_ERROR);
	len = v2(buf, 0x20, 0x11, NULL, 0);
	assert_int_equal(parse(buf, len, &pi, &consumed), PROXY_ERROR);
	/* a v1 signature after a v2 start, and the reverse */
	assert_int_equal(parse("\r\nPROXY TCP4", 12, &pi, &consumed), PROXY_ERROR);
	assert_int_equal(parse("P\r\n\r\n", 5, &pi, &consumed), PROXY_ERROR);
}

/* Truncated at every offset: NEED_MORE, never DONE, never a read past len. */
static void
test_v2_truncated(void **state)
{
	unsigned char body[64];
	unsigned char *buf;
	size_t len, i;

	(void)state;
	memcpy(body, v6_block, 36);
	memcpy(body + 36, "\x01\x00\x02h2", 5);
	for (i = 0; i <= 16 + 41; i++) {
		unsigned char tmp[128];

		len = v2(tmp, 0x21, 0x21, body, 41);
		/* an exact-size heap copy lets ASan catch any read past the cut */
		buf = test_malloc(i > 0 ? i : 1);
		memcpy(buf, tmp, i);
		if (i < len) {
			struct proxy_info pi;
			size_t consumed;

			assert_int_equal(parse(buf, i, &pi, &consumed), PROXY_NEED_MORE);
			assert_int_equal(consumed, 0);
			assert_false(pi.has_address);
		} else {
			expect_done(buf, i, len);
		}
		test_free(buf);
	}
}

static void
test_null_err(void **state)
{
	struct proxy_info pi;
	size_t consumed;

	(void)state;
	assert_int_equal(proxy_parse((const unsigned char *)"X", 1, &pi, &consumed, NULL),
	    PROXY_ERROR);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_v1_good),
		cmocka_unit_test(test_v1_bad),
		cmocka_unit_test(test_v1_early_error),
		cmocka_unit_test(test_v1_overlong_without_cr),
		cmocka_unit_test(test_v2_proxy_v4),
		cmocka_unit_test(test_v2_proxy_v6),
		cmocka_unit_test(test_v2_local_and_unspec),
		cmocka_unit_test(test_v2_tlvs),
		cmocka_unit_test(test_v2_bad),
		cmocka_unit_test(test_v2_truncated),
		cmocka_unit_test(test_null_err),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
