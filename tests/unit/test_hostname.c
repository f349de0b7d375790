/*
 * test_hostname — host_normalize() and ip_literal_parse() (policy/hostname.c).
 *
 * Tables of hosts and what they must become, with every numeric spelling that
 * some IPv4 parser accepts among the refusals, since those are the ones that
 * would let a host walk around the policy or the internal-address check.
 * Every accepted host is also normalized a second time: the result must be a
 * fixed point.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "policy/policy.h"

struct good_host {
	const char *in;
	const char *out;
	enum host_kind kind;
};

static const struct good_host good_hosts[] = {
	{ "example.com", "example.com", HOST_NAME },
	{ "EXAMPLE.COM", "example.com", HOST_NAME },
	{ "Api.Example.Com", "api.example.com", HOST_NAME },
	{ "example.com.", "example.com", HOST_NAME },
	{ "localhost", "localhost", HOST_NAME },
	{ "a", "a", HOST_NAME },
	{ "a.", "a", HOST_NAME },
	{ "_dmarc.example.com", "_dmarc.example.com", HOST_NAME },
	{ "my_host.example.com", "my_host.example.com", HOST_NAME },
	{ "-leading.example.com", "-leading.example.com", HOST_NAME },
	{ "trailing-.example.com", "trailing-.example.com", HOST_NAME },
	{ "xn--bcher-kva.example", "xn--bcher-kva.example", HOST_NAME },
	{ "1.2.3.4.example.com", "1.2.3.4.example.com", HOST_NAME },
	{ "0x7f.example.com", "0x7f.example.com", HOST_NAME },
	{ "123abc", "123abc", HOST_NAME },
	{ "example.0xg", "example.0xg", HOST_NAME },
	{ "a.b1", "a.b1", HOST_NAME },
	{ "1e3", "1e3", HOST_NAME },
	{ "example.b-1", "example.b-1", HOST_NAME },
	{ "127.0.0.1", "127.0.0.1", HOST_IPV4 },
	{ "0.0.0.0", "0.0.0.0", HOST_IPV4 },
	{ "255.255.255.255", "255.255.255.255", HOST_IPV4 },
	{ "192.0.2.1", "192.0.2.1", HOST_IPV4 },
	{ "10.20.30.40", "10.20.30.40", HOST_IPV4 },
	{ "::1", "::1", HOST_IPV6 },
	{ "::", "::", HOST_IPV6 },
	{ "2001:db8::1", "2001:db8::1", HOST_IPV6 },
	{ "2001:DB8::1", "2001:db8::1", HOST_IPV6 },
	{ "2001:0db8:0000:0000:0000:0000:0000:0001", "2001:db8::1", HOST_IPV6 },
	{ "2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1", HOST_IPV6 },
	/* IPv4-mapped, any spelling: the IPv4 address itself (a connect() reaches it) */
	{ "::FFFF:7F00:1", "127.0.0.1", HOST_IPV4 },
	{ "::ffff:127.0.0.1", "127.0.0.1", HOST_IPV4 },
	{ "::ffff:127.0.0.2", "127.0.0.2", HOST_IPV4 },
	{ "::FFFF:127.0.0.2", "127.0.0.2", HOST_IPV4 },
	{ "::ffff:7f00:2", "127.0.0.2", HOST_IPV4 },
	{ "::ffff:7F00:0002", "127.0.0.2", HOST_IPV4 },
	{ "0:0:0:0:0:ffff:127.0.0.2", "127.0.0.2", HOST_IPV4 },
	{ "0:0:0:0:0:FFFF:7f00:2", "127.0.0.2", HOST_IPV4 },
	{ "0000:0000:0000:0000:0000:ffff:7f00:0002", "127.0.0.2", HOST_IPV4 },
	{ "0::ffff:127.0.0.2", "127.0.0.2", HOST_IPV4 },
	{ "::0:ffff:127.0.0.2", "127.0.0.2", HOST_IPV4 },
	{ "0:0::ffff:7f00:2", "127.0.0.2", HOST_IPV4 },
	{ "::ffff:10.1.2.3", "10.1.2.3", HOST_IPV4 },
	{ "::ffff:a01:203", "10.1.2.3", HOST_IPV4 },
	{ "::ffff:169.254.169.254", "169.254.169.254", HOST_IPV4 },
	{ "::ffff:0.0.0.0", "0.0.0.0", HOST_IPV4 },
	{ "::ffff:0:0", "0.0.0.0", HOST_IPV4 },
	{ "::ffff:255.255.255.255", "255.255.255.255", HOST_IPV4 },
	{ "::ffff:ffff:ffff", "255.255.255.255", HOST_IPV4 },
	{ "::ffff:8.8.8.8", "8.8.8.8", HOST_IPV4 },
	/* IPv4 carried for another machine (or not at all): stays IPv6 */
	{ "::127.0.0.1", "::127.0.0.1", HOST_IPV6 },
	{ "::7f00:1", "::127.0.0.1", HOST_IPV6 },
	{ "::ffff:0:127.0.0.1", "::ffff:0:7f00:1", HOST_IPV6 },
	{ "::ffff:1:2:3", "::ffff:1:2:3", HOST_IPV6 },
	{ "::1:ffff:127.0.0.1", "::1:ffff:7f00:1", HOST_IPV6 },
	{ "ffff::127.0.0.1", "ffff::7f00:1", HOST_IPV6 },
	{ "::fffe:127.0.0.1", "::fffe:7f00:1", HOST_IPV6 },
	{ "64:ff9b::127.0.0.1", "64:ff9b::7f00:1", HOST_IPV6 },
	{ "2002:7f00:1::", "2002:7f00:1::", HOST_IPV6 },
	{ "2001:0:7f00:1::f7ff:fffe", "2001:0:7f00:1::f7ff:fffe", HOST_IPV6 },
	{ "0:0:0:0:0:0:0:1", "::1", HOST_IPV6 },
	{ "FE80::1", "fe80::1", HOST_IPV6 },
	{ "64:ff9b::7f00:1", "64:ff9b::7f00:1", HOST_IPV6 },
	{ "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255",
	  "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", HOST_IPV6 },
};

static const char *const bad_hosts[] = {
	"",
	".",
	"..",
	"example.com..",
	".example.com",
	"a..b",
	"exa mple.com",
	" example.com",
	"example.com ",
	"example.com/",
	"example.com:80",
	"user@example.com",
	"ex*ample.com",
	"ex\200ample.com",
	"exa\tmple.com",
	"+example.com",
	/* every numeric IPv4 spelling that is not the canonical quad */
	"2130706433",
	"0x7f000001",
	"0X7F000001",
	"0x7f.1",
	"0x7f.0.0.1",
	"127.1",
	"127.0.1",
	"0177.0.0.1",
	"127.000.0.1",
	"01.2.3.4",
	"127.0.0.01",
	"127.0.0.1.",
	"127.0.0.1..",
	"127.0.0.256",
	"256.0.0.1",
	"1.2.3.4.5",
	" 127.0.0.1",
	"127.0.0.1 ",
	"+127.0.0.1",
	"-127.0.0.1",
	"127.0.0.-1",
	"example.1-2",
	"example.1_0",
	"example._",
	"example.-",
	"-",
	"0",
	"0x",
	"0x0",
	"example.123",
	"example.0x1f",
	"example.0X1F",
	"example.123.",
	"1",
	"4294967296",
	/* IPv6 */
	"fe80::1%eth0",
	"fe80::1%25eth0",
	"[::1]",
	"::1 ",
	" ::1",
	":::1",
	"1::2::3",
	"12345::1",
	"::g",
	"::ffff:127.1",
	"::ffff:0127.0.0.1",
	"::ffff:127.0.0.1.",
	"::ffff:127.0.0.256",
	"::ffff:127.0.0.1%lo",
	"::ffff:127.0.0.1/104",
	"1:2:3:4:5:6:7:8:9",
	"ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255:1",
};

static void
test_good_hosts(void **state)
{
	char out[HOST_BUF], again[HOST_BUF];
	enum host_kind kind, kind2;
	const char *err;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(good_hosts) / sizeof(good_hosts[0]); i++) {
		const struct good_host *g = &good_hosts[i];

		err = NULL;
		if (host_normalize(g->in, strlen(g->in), out, sizeof(out), &kind, &err) != 0)
			fail_msg("'%s' refused: %s", g->in, err);
		if (strcmp(out, g->out) != 0 || kind != g->kind)
			fail_msg("'%s' -> '%s' kind %d, want '%s' kind %d", g->in, out,
			    (int)kind, g->out, (int)g->kind);
		/* fixed point */
		assert_int_equal(host_normalize(out, strlen(out), again, sizeof(again),
		    &kind2, &err), 0);
		assert_string_equal(again, out);
		assert_int_equal(kind2, kind);
	}
}

static void
test_bad_hosts(void **state)
{
	char out[HOST_BUF];
	enum host_kind kind;
	const char *err;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad_hosts) / sizeof(bad_hosts[0]); i++) {
		err = NULL;
		if (host_normalize(bad_hosts[i], strlen(bad_hosts[i]), out, sizeof(out),
		    &kind, &err) == 0)
			fail_msg("'%s' accepted as '%s'", bad_hosts[i], out);
		assert_non_null(err);
	}
}

static void
test_embedded_nul(void **state)
{
	char out[HOST_BUF];
	enum host_kind kind;
	const char *err;
	uint8_t addr[16];
	int family;

	(void)state;
	assert_int_equal(host_normalize("a\0b.com", 7, out, sizeof(out), &kind, &err), -1);
	assert_int_equal(host_normalize("::1\0x", 5, out, sizeof(out), &kind, &err), -1);
	assert_int_equal(host_normalize("1.2.3.4\0", 8, out, sizeof(out), &kind, &err), -1);
	assert_int_equal(ip_literal_parse("::1\0", 4, &family, addr), -1);
	assert_int_equal(ip_literal_parse("1.2.3.4\0", 8, &family, addr), -1);
}

/* The length is what counts, not a NUL: a host inside a longer buffer. */
static void
test_length_not_nul(void **state)
{
	char out[HOST_BUF];
	enum host_kind kind;
	const char *err;

	(void)state;
	assert_int_equal(host_normalize("Example.com:443", 11, out, sizeof(out), &kind, &err), 0);
	assert_string_equal(out, "example.com");
	assert_int_equal(host_normalize("10.0.0.1:80", 8, out, sizeof(out), &kind, &err), 0);
	assert_string_equal(out, "10.0.0.1");
	assert_int_equal(kind, HOST_IPV4);
}

static void
test_label_bounds(void **state)
{
	char in[600], out[HOST_BUF];
	enum host_kind kind;
	const char *err;

	(void)state;
	/* 63 is the longest label */
	memset(in, 'a', 63);
	strcpy(in + 63, ".com");
	assert_int_equal(host_normalize(in, strlen(in), out, sizeof(out), &kind, &err), 0);
	memset(in, 'a', 64);
	strcpy(in + 64, ".com");
	assert_int_equal(host_normalize(in, strlen(in), out, sizeof(out), &kind, &err), -1);
	/* a last label of 64 */
	strcpy(in, "x.");
	memset(in + 2, 'b', 64);
	in[66] = '\0';
	assert_int_equal(host_normalize(in, strlen(in), out, sizeof(out), &kind, &err), -1);
	in[65] = '\0';
	assert_int_equal(host_normalize(in, strlen(in), out, sizeof(out), &kind, &err), 0);
}

/* Build "aaa...a.aaa...a..." of exactly n bytes with labels of 63. */
static void
make_name(char *buf, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		buf[i] = (i % 64 == 63) ? '.' : 'a';
	if (buf[n - 1] == '.')
		buf[n - 1] = 'a';
	buf[n] = '\0';
}

static void
test_total_bounds(void **state)
{
	char in[600], out[HOST_BUF], small[10];
	enum host_kind kind;
	const char *err;

	(void)state;
	make_name(in, 253);
	assert_int_equal(host_normalize(in, 253, out, sizeof(out), &kind, &err), 0);
	assert_int_equal(strlen(out), 253);
	/* 253 plus the root dot is still 253 */
	in[253] = '.';
	in[254] = '\0';
	assert_int_equal(host_normalize(in, 254, out, sizeof(out), &kind, &err), 0);
	assert_int_equal(strlen(out), 253);
	make_name(in, 254);
	assert_int_equal(host_normalize(in, 254, out, sizeof(out), &kind, &err), -1);
	make_name(in, 500);
	assert_int_equal(host_normalize(in, 500, out, sizeof(out), &kind, &err), -1);
	/* the caller's buffer bounds the output too */
	assert_int_equal(host_normalize("example.com", 11, small, sizeof(small), &kind, &err), -1);
	assert_int_equal(host_normalize("abcdefghij", 10, small, sizeof(small), &kind, &err), -1);
	assert_int_equal(host_normalize("abcdefghi", 9, small, sizeof(small), &kind, &err), 0);
	assert_int_equal(host_normalize("1.2.3.4", 7, small, 7, &kind, &err), -1);
	assert_int_equal(host_normalize("1.2.3.4", 7, small, 8, &kind, &err), 0);
	assert_int_equal(host_normalize("::1", 3, small, 3, &kind, &err), -1);
	assert_int_equal(host_normalize("::1", 3, small, 4, &kind, &err), 0);
	/* a mapped address needs room for the dotted quad it becomes, no more */
	assert_int_equal(host_normalize("::ffff:1.2.3.4", 14, small, 7, &kind, &err), -1);
	assert_int_equal(host_normalize("::ffff:1.2.3.4", 14, small, 8, &kind, &err), 0);
	assert_string_equal(small, "1.2.3.4");
	assert_int_equal(kind, HOST_IPV4);
}

static void
test_ip_literal(void **state)
{
	uint8_t addr[16];
	int family;
	static const uint8_t lo4[4] = { 127, 0, 0, 1 };
	static const uint8_t lo6[16] = { [15] = 1 };
	static const char *const bad[] = {
		"", "127.1", "0x7f.0.0.1", "0177.0.0.1", "2130706433", "127.0.0.1.",
		" 127.0.0.1", "127.0.0.1 ", "+127.0.0.1", "fe80::1%1", "[::1]",
		"example.com", "1.2.3.4/32", "01.2.3.4", "1.2.3.04", "::1 ",
		"1234567890123456789012345678901234567890123456",
	};
	size_t i;

	(void)state;
	assert_int_equal(ip_literal_parse("127.0.0.1", 9, &family, addr), 0);
	assert_int_equal(family, AF_INET);
	assert_memory_equal(addr, lo4, 4);
	assert_int_equal(ip_literal_parse("::1", 3, &family, addr), 0);
	assert_int_equal(family, AF_INET6);
	assert_memory_equal(addr, lo6, 16);
	/* any inet_pton spelling of IPv6 is one address */
	assert_int_equal(ip_literal_parse("0:0:0:0:0:0:0:0001", 18, &family, addr), 0);
	assert_memory_equal(addr, lo6, 16);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (ip_literal_parse(bad[i], strlen(bad[i]), &family, addr) == 0)
			fail_msg("'%s' accepted", bad[i]);
}

/* ip_addr_unmap: only ::ffff:0:0/96 becomes IPv4; the parser itself keeps IPv6. */
static void
test_unmap(void **state)
{
	static const uint8_t lo2[4] = { 127, 0, 0, 2 };
	static const char *const stay[] = {
		"::1", "::127.0.0.2", "::ffff:0:127.0.0.2", "64:ff9b::127.0.0.2",
		"2002:7f00:2::", "::fffe:127.0.0.2", "1::ffff:127.0.0.2", "fe80::ffff:7f00:2",
	};
	static const char *const mapped[] = {
		"::ffff:127.0.0.2", "::FFFF:7F00:2", "0:0:0:0:0:ffff:127.0.0.2",
		"0000:0000:0000:0000:0000:FFFF:7f00:0002",
	};
	uint8_t addr[16], before[16];
	int family;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(mapped) / sizeof(mapped[0]); i++) {
		assert_int_equal(ip_literal_parse(mapped[i], strlen(mapped[i]), &family, addr), 0);
		assert_int_equal(family, AF_INET6);
		if (!ip_addr_unmap(&family, addr))
			fail_msg("'%s' not unmapped", mapped[i]);
		assert_int_equal(family, AF_INET);
		assert_memory_equal(addr, lo2, 4);
		/* a second time: nothing left to do */
		assert_false(ip_addr_unmap(&family, addr));
		assert_int_equal(family, AF_INET);
	}
	for (i = 0; i < sizeof(stay) / sizeof(stay[0]); i++) {
		assert_int_equal(ip_literal_parse(stay[i], strlen(stay[i]), &family, addr), 0);
		memcpy(before, addr, 16);
		if (ip_addr_unmap(&family, addr))
			fail_msg("'%s' unmapped", stay[i]);
		assert_int_equal(family, AF_INET6);
		assert_memory_equal(addr, before, 16);
	}
	/* an AF_INET address is left alone */
	assert_int_equal(ip_literal_parse("127.0.0.2", 9, &family, addr), 0);
	assert_false(ip_addr_unmap(&family, addr));
	assert_int_equal(family, AF_INET);
}

/* Every dotted quad that inet_ntop prints comes back; one leading zero never does. */
static void
test_ipv4_exhaustive_octets(void **state)
{
	char text[32];
	uint8_t addr[16];
	int family;
	unsigned o;

	(void)state;
	for (o = 0; o < 256; o++) {
		snprintf(text, sizeof(text), "10.%u.%u.1", o, 255 - o);
		assert_int_equal(ip_literal_parse(text, strlen(text), &family, addr), 0);
		assert_int_equal(addr[1], o);
		snprintf(text, sizeof(text), "10.0%u.0.1", o);
		assert_int_equal(ip_literal_parse(text, strlen(text), &family, addr), -1);
	}
	for (o = 256; o < 1000; o++) {
		snprintf(text, sizeof(text), "10.%u.0.1", o);
		assert_int_equal(ip_literal_parse(text, strlen(text), &family, addr), -1);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good_hosts),
		cmocka_unit_test(test_bad_hosts),
		cmocka_unit_test(test_embedded_nul),
		cmocka_unit_test(test_length_not_nul),
		cmocka_unit_test(test_label_bounds),
		cmocka_unit_test(test_total_bounds),
		cmocka_unit_test(test_ip_literal),
		cmocka_unit_test(test_unmap),
		cmocka_unit_test(test_ipv4_exhaustive_octets),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
