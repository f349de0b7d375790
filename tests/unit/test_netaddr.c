/*
 * test_netaddr — internal ranges, embedded IPv4, allow_internal, CIDR and
 * listen-address parsing (config/netaddr.c).
 *
 * The range table is checked at both edges of every block (first and last
 * address inside, the neighbours just outside), and every IPv6 form that
 * carries an IPv4 address is checked with an internal and an external one,
 * since an off-by-one in a mask or an embedded form left out is exactly the
 * hole an attacker looks for.  The NAT64, 6to4 and Teredo addresses here are
 * only ever classified, never connected to.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "config/netaddr.h"

/* Build a sockaddr from an address literal (test input is trusted). */
static void
mkaddr(const char *text, uint16_t port, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (strchr(text, ':') != NULL) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(port);
		if (inet_pton(AF_INET6, text, &sin6->sin6_addr) != 1)
			fail_msg("bad test address %s", text);
	} else {
		struct sockaddr_in *sin = (struct sockaddr_in *)ss;

		sin->sin_family = AF_INET;
		sin->sin_port = htons(port);
		if (inet_pton(AF_INET, text, &sin->sin_addr) != 1)
			fail_msg("bad test address %s", text);
	}
}

static bool
socket_ok(int family)
{
	int fd = socket(family, SOCK_STREAM, 0);

	if (fd == -1)
		return false;
	close(fd);
	return true;
}

static bool
internal(const char *text)
{
	struct sockaddr_storage ss;

	mkaddr(text, 443, &ss);
	return netaddr_is_internal((struct sockaddr *)&ss);
}

static const char *const internal_addrs[] = {
	/* IPv4, first and last of each block */
	"0.0.0.0", "0.255.255.255",
	"10.0.0.0", "10.255.255.255",
	"100.64.0.0", "100.127.255.255",
	"127.0.0.0", "127.0.0.1", "127.255.255.255",
	"169.254.0.0", "169.254.169.254", "169.254.255.255",
	"172.16.0.0", "172.31.255.255",
	"192.0.0.0", "192.0.0.255",
	"192.0.2.0", "192.0.2.255",
	"192.88.99.0", "192.88.99.255",
	"192.168.0.0", "192.168.255.255",
	"198.18.0.0", "198.19.255.255",
	"198.51.100.0", "198.51.100.255",
	"203.0.113.0", "203.0.113.255",
	"224.0.0.0", "239.255.255.255",
	"240.0.0.0", "255.255.255.254", "255.255.255.255",
	/* IPv6 in its own right */
	"::", "::1", "::2", "::7f00:1", "::8.8.8.8", "::ffff:0:8.8.8.8",
	"1::", "ff::", "100::", "100::ffff:ffff:ffff:ffff",
	"64:ff9b:1::", "64:ff9b:1:ffff:ffff:ffff:ffff:ffff", "64:ff9b::1:0:0:1",
	"2001:2::", "2001:2:0:ffff:ffff:ffff:ffff:ffff",
	"2001:10::", "2001:1f:ffff:ffff:ffff:ffff:ffff:ffff",
	"2001:20::", "2001:2f:ffff:ffff:ffff:ffff:ffff:ffff",
	"2001:db8::", "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff",
	"3fff::", "3fff:fff:ffff:ffff:ffff:ffff:ffff:ffff",
	"4000::1", "8000::1",
	"fc00::", "fd00::1", "fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
	"fe80::", "fe80::1", "febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
	"fec0::1", "feff::1",
	"ff00::", "ff02::1", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
	/* IPv4 embedded in IPv6 */
	"::ffff:127.0.0.1", "::ffff:10.1.2.3", "::ffff:169.254.169.254", "::ffff:0.0.0.0",
	"64:ff9b::7f00:1", "64:ff9b::10.0.0.1", "64:ff9b::a9fe:a9fe",
	"2002:7f00:1::1", "2002:0a00:0001::", "2002:c0a8:101::", "2002:e000::",
	"2002:ffff:ffff::",
	/* Teredo: server 127.0.0.1, or client 127.0.0.1 obfuscated (~0x7f000001) */
	"2001:0:7f00:1::808:808", "2001:0:808:808:0:0:80ff:fffe",
	"2001:0:a00:1:8000:1234:f7f7:f7f7",
};

static const char *const external_addrs[] = {
	"1.0.0.0", "1.1.1.1", "8.8.8.8", "9.255.255.255", "11.0.0.0",
	"100.63.255.255", "100.128.0.0",
	"126.255.255.255", "128.0.0.0",
	"169.253.255.255", "169.255.0.0",
	"172.15.255.255", "172.32.0.0",
	"191.255.255.255", "192.0.1.0", "192.0.3.0",
	"192.88.98.255", "192.88.100.0",
	"192.167.255.255", "192.169.0.0",
	"198.17.255.255", "198.20.0.0",
	"198.51.99.255", "198.51.101.0",
	"203.0.112.255", "203.0.114.0",
	"223.255.255.255",
	"2000::", "2001:1::", "2001:1:ffff::", "2001:3::",
	"2001:f:ffff:ffff:ffff:ffff:ffff:ffff", "2001:30::",
	"2001:db7:ffff:ffff:ffff:ffff:ffff:ffff", "2001:db9::",
	"2001:4860:4860::8888", "2606:4700::1111", "2a00:1450::1",
	"3ffe:ffff::1", "3fff:1000::",
	"::ffff:8.8.8.8", "::ffff:1.1.1.1",
	"64:ff9b::808:808", "64:ff9b::1.1.1.1",
	"2002:808:808::1", "2002:0101:0101::",
	/* Teredo with public server and public (obfuscated) client */
	"2001:0:808:808:8000:1234:f7f7:f7f7",
};

static void
test_internal_table(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(internal_addrs) / sizeof(internal_addrs[0]); i++) {
		if (!internal(internal_addrs[i]))
			fail_msg("%s should be internal", internal_addrs[i]);
	}
	for (i = 0; i < sizeof(external_addrs) / sizeof(external_addrs[0]); i++)
		if (internal(external_addrs[i]))
			fail_msg("%s should be external", external_addrs[i]);
}

/* Teredo: the client is the low 32 bits inverted; check the arithmetic itself. */
static void
test_teredo(void **state)
{
	(void)state;
	/* client 127.0.0.1 -> ~7f000001 = 80fffffe */
	assert_true(internal("2001:0:808:808:0:0:80ff:fffe"));
	/* 127.0.0.1 written without the inversion is client 128.255.255.254: external */
	assert_false(internal("2001:0:808:808:0:0:7f00:1"));
	/* client 10.0.0.1 -> f5ff:fffe */
	assert_true(internal("2001:0:808:808::f5ff:fffe"));
	/* client 8.0.0.1 -> f7ff:fffe, server 8.8.8.8: external */
	assert_false(internal("2001:0:808:808::f7ff:fffe"));
	/* server 192.168.1.1 */
	assert_true(internal("2001:0:c0a8:101::f7ff:fffe"));
}

static void
test_unknown_family(void **state)
{
	struct sockaddr_storage ss;
	struct cidr all;
	const char *err;

	(void)state;
	memset(&ss, 0, sizeof(ss));
	ss.ss_family = AF_UNIX;
	assert_true(netaddr_is_internal((struct sockaddr *)&ss));
	assert_int_equal(netaddr_parse_cidr("0.0.0.0/0", &all, &err), 0);
	assert_false(netaddr_destination_allowed((struct sockaddr *)&ss, &all, 1));
	assert_int_equal(netaddr_port((struct sockaddr *)&ss), 0);
}

static bool
allowed(const char *text, const struct cidr *allow, size_t n)
{
	struct sockaddr_storage ss;

	mkaddr(text, 80, &ss);
	return netaddr_destination_allowed((struct sockaddr *)&ss, allow, n);
}

static void
test_allow_internal(void **state)
{
	struct cidr allow[4];
	const char *err;

	(void)state;
	/* no exceptions: internal denied, external allowed */
	assert_false(allowed("127.0.0.1", NULL, 0));
	assert_true(allowed("8.8.8.8", NULL, 0));
	assert_true(allowed("2001:4860:4860::8888", NULL, 0));

	assert_int_equal(netaddr_parse_cidr("127.0.0.1/32", &allow[0], &err), 0);
	assert_true(allowed("127.0.0.1", allow, 1));
	/* the IPv4-mapped spelling is the IPv4 address: covered */
	assert_true(allowed("::ffff:127.0.0.1", allow, 1));
	assert_false(allowed("127.0.0.2", allow, 1));
	assert_false(allowed("::ffff:127.0.0.2", allow, 1));
	assert_false(allowed("10.0.0.1", allow, 1));
	assert_false(allowed("::1", allow, 1));
	/* IPv4-compatible is internal in its own right, not by its IPv4 */
	assert_false(allowed("::127.0.0.1", allow, 1));
	/* SIIT ::ffff:0:0:0/96 is not the mapped form */
	assert_false(allowed("::ffff:0:127.0.0.1", allow, 1));
	assert_true(allowed("8.8.8.8", allow, 1));
	/*
	 * NAT64, 6to4 and Teredo embed 127.0.0.1 for another machine (the
	 * translator, the relay), which would reach its own loopback: an IPv4
	 * allowance never covers them.  (Classifier only: never dialled.)
	 */
	assert_false(allowed("64:ff9b::7f00:1", allow, 1));
	assert_false(allowed("64:ff9b::127.0.0.1", allow, 1));
	assert_false(allowed("2002:7f00:1::", allow, 1));
	assert_false(allowed("2002:7f00:1::1", allow, 1));
	assert_false(allowed("2002:7f00:1:ffff:ffff:ffff:ffff:ffff", allow, 1));
	/* Teredo: server 127.0.0.1, client public; client 127.0.0.1 (~), server public */
	assert_false(allowed("2001:0:7f00:1::f7ff:fffe", allow, 1));
	assert_false(allowed("2001:0:808:808:0:0:80ff:fffe", allow, 1));
	/* Teredo: server 127.0.0.1, client 10.0.0.1 */
	assert_false(allowed("2001:0:7f00:1::f5ff:fffe", allow, 1));
	assert_int_equal(netaddr_parse_cidr("10.0.0.0/8", &allow[1], &err), 0);
	assert_false(allowed("2001:0:7f00:1::f5ff:fffe", allow, 2));
	assert_false(allowed("64:ff9b::a00:1", allow, 2));
	assert_false(allowed("2002:a00:1::", allow, 2));
	assert_true(allowed("10.200.0.1", allow, 2));
	assert_true(allowed("::ffff:10.200.0.1", allow, 2));
	assert_false(allowed("192.168.0.1", allow, 2));
	/* embedded public addresses stay external whatever the allowances */
	assert_true(allowed("64:ff9b::808:808", allow, 2));
	assert_true(allowed("2002:808:808::1", allow, 2));

	/* IPv6 ranges */
	assert_int_equal(netaddr_parse_cidr("::1/128", &allow[2], &err), 0);
	assert_true(allowed("::1", allow, 3));
	assert_false(allowed("::2", allow, 3));
	assert_int_equal(netaddr_parse_cidr("fd00::/8", &allow[3], &err), 0);
	assert_true(allowed("fd12:3456::1", allow, 4));
	assert_false(allowed("fc00::1", allow, 4));
	assert_false(allowed("fe80::1", allow, 4));
	/* the IPv4-mapped spelling of a range covers the IPv4 address too */
	assert_int_equal(netaddr_parse_cidr("::ffff:127.0.0.0/104", &allow[0], &err), 0);
	assert_true(allowed("127.9.9.9", allow, 1));
	assert_true(allowed("::ffff:127.9.9.9", allow, 1));
	assert_false(allowed("64:ff9b::7f09:909", allow, 1));
}

/*
 * The one way to let a NAT64, 6to4 or Teredo address with an internal IPv4
 * through: an IPv6 range that contains that IPv6 address itself, an admin's
 * explicit choice about the translator, never inferred from an IPv4 range.
 */
static void
test_allow_internal_ipv6_range(void **state)
{
	struct cidr allow[3];
	const char *err;

	(void)state;
	assert_int_equal(netaddr_parse_cidr("64:ff9b::7f00:1/128", &allow[0], &err), 0);
	assert_true(allowed("64:ff9b::7f00:1", allow, 1));
	assert_false(allowed("64:ff9b::7f00:2", allow, 1));
	/* and it says nothing about the IPv4 address this host would reach */
	assert_false(allowed("127.0.0.1", allow, 1));
	assert_false(allowed("::ffff:127.0.0.1", allow, 1));
	assert_int_equal(netaddr_parse_cidr("2002:7f00:1::/48", &allow[1], &err), 0);
	assert_true(allowed("2002:7f00:1::5", allow, 2));
	assert_false(allowed("2002:7f00:2::", allow, 2));
	assert_int_equal(netaddr_parse_cidr("2001:0:7f00:1::/64", &allow[2], &err), 0);
	assert_true(allowed("2001:0:7f00:1::f5ff:fffe", allow, 3));
	assert_false(allowed("2001:0:7f00:2::f5ff:fffe", allow, 3));
}

/* The IPv4-mapped sockaddr becomes the AF_INET one; nothing else changes. */
static void
test_unmap(void **state)
{
	static const char *const stay[] = {
		"::1", "::", "::127.0.0.2", "::ffff:0:127.0.0.2", "64:ff9b::7f00:2",
		"2002:7f00:2::", "2001:0:7f00:1::f5ff:fffe", "fe80::ffff:7f00:2", "127.0.0.2",
	};
	struct sockaddr_storage ss, want, before;
	char text[NETADDR_TEXT_MAX];
	socklen_t len = 0;
	size_t i;

	(void)state;
	mkaddr("::ffff:127.0.0.2", 9001, &ss);
	assert_true(netaddr_unmap(&ss, &len));
	assert_int_equal(len, sizeof(struct sockaddr_in));
	mkaddr("127.0.0.2", 9001, &want);
	assert_true(netaddr_equal((struct sockaddr *)&ss, (struct sockaddr *)&want));
	assert_string_equal(netaddr_ntop((struct sockaddr *)&ss, text, sizeof(text)), "127.0.0.2");
	assert_false(netaddr_unmap(&ss, &len));
	mkaddr("::ffff:0.0.0.0", 1, &ss);
	assert_true(netaddr_unmap(&ss, NULL));
	assert_true(netaddr_is_unspecified((struct sockaddr *)&ss));
	for (i = 0; i < sizeof(stay) / sizeof(stay[0]); i++) {
		mkaddr(stay[i], 80, &ss);
		before = ss;
		len = 7;
		if (netaddr_unmap(&ss, &len))
			fail_msg("%s unmapped", stay[i]);
		assert_int_equal(len, 7);
		assert_memory_equal(&ss, &before, sizeof(ss));
	}
}

/*
 * netaddr_is_local asks the kernel by bind() only: no packet is sent.  An
 * address of one of this host's interfaces (found with getifaddrs) is local;
 * documentation addresses, assigned to no host, are not.
 */
static void
test_is_local(void **state)
{
	static const char *const local[] = { "127.0.0.1", "127.0.0.5", "127.255.255.254",
	    "0.0.0.0", "::1", "::" };
	static const char *const remote[] = { "192.0.2.1", "198.51.100.7", "203.0.113.9" };
	struct ifaddrs *ifs, *p;
	struct sockaddr_storage ss;
	size_t i, seen = 0;

	(void)state;
	for (i = 0; i < sizeof(local) / sizeof(local[0]); i++) {
		mkaddr(local[i], 9, &ss);
		if (!netaddr_is_local((struct sockaddr *)&ss))
			fail_msg("%s should be local", local[i]);
	}
	for (i = 0; i < sizeof(remote) / sizeof(remote[0]); i++) {
		mkaddr(remote[i], 9, &ss);
		if (netaddr_is_local((struct sockaddr *)&ss))
			fail_msg("%s should not be local", remote[i]);
	}
	/* an IPv6 documentation address; skipped if the host has no IPv6 at all */
	mkaddr("2001:db8::5", 9, &ss);
	if (socket_ok(AF_INET6))
		assert_false(netaddr_is_local((struct sockaddr *)&ss));
	/* every IPv4 address of an interface, loopback or not */
	assert_int_equal(getifaddrs(&ifs), 0);
	for (p = ifs; p != NULL; p = p->ifa_next) {
		if (p->ifa_addr == NULL || p->ifa_addr->sa_family != AF_INET)
			continue;
		memset(&ss, 0, sizeof(ss));
		memcpy(&ss, p->ifa_addr, sizeof(struct sockaddr_in));
		((struct sockaddr_in *)&ss)->sin_port = htons(9);
		if (!netaddr_is_local((struct sockaddr *)&ss))
			fail_msg("the address of %s should be local", p->ifa_name);
		seen++;
	}
	freeifaddrs(ifs);
	assert_true(seen > 0);
	ss.ss_family = AF_UNIX;
	assert_true(netaddr_is_local((struct sockaddr *)&ss));
}

static void
test_unspecified(void **state)
{
	static const char *const yes[] = { "0.0.0.0", "::", "::ffff:0.0.0.0" };
	static const char *const no[] = {
		"0.0.0.1", "127.0.0.1", "::1", "::0.0.0.1", "64:ff9b::", "2002::", "::ffff:0:0:0",
	};
	struct sockaddr_storage ss;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		mkaddr(yes[i], 80, &ss);
		if (!netaddr_is_unspecified((struct sockaddr *)&ss))
			fail_msg("%s should be unspecified", yes[i]);
	}
	for (i = 0; i < sizeof(no) / sizeof(no[0]); i++) {
		mkaddr(no[i], 80, &ss);
		if (netaddr_is_unspecified((struct sockaddr *)&ss))
			fail_msg("%s should not be unspecified", no[i]);
	}
	ss.ss_family = AF_UNIX;
	assert_false(netaddr_is_unspecified((struct sockaddr *)&ss));
}

static void
test_in_cidr(void **state)
{
	struct sockaddr_storage ss;
	struct cidr c;
	const char *err;

	(void)state;
	assert_int_equal(netaddr_parse_cidr("192.168.0.0/16", &c, &err), 0);
	mkaddr("192.168.255.255", 1, &ss);
	assert_true(netaddr_in_cidr((struct sockaddr *)&ss, &c));
	mkaddr("::ffff:192.168.1.1", 1, &ss);
	assert_true(netaddr_in_cidr((struct sockaddr *)&ss, &c));
	mkaddr("192.169.0.0", 1, &ss);
	assert_false(netaddr_in_cidr((struct sockaddr *)&ss, &c));
	mkaddr("::192.168.1.1", 1, &ss);
	assert_false(netaddr_in_cidr((struct sockaddr *)&ss, &c));

	assert_int_equal(netaddr_parse_cidr("0.0.0.0/0", &c, &err), 0);
	mkaddr("255.255.255.255", 1, &ss);
	assert_true(netaddr_in_cidr((struct sockaddr *)&ss, &c));
	mkaddr("2001:db8::1", 1, &ss);
	assert_false(netaddr_in_cidr((struct sockaddr *)&ss, &c));

	assert_int_equal(netaddr_parse_cidr("2001:db8::/33", &c, &err), 0);
	mkaddr("2001:db8:7fff::1", 1, &ss);
	assert_true(netaddr_in_cidr((struct sockaddr *)&ss, &c));
	mkaddr("2001:db8:8000::", 1, &ss);
	assert_false(netaddr_in_cidr((struct sockaddr *)&ss, &c));
	mkaddr("10.0.0.1", 1, &ss);
	assert_false(netaddr_in_cidr((struct sockaddr *)&ss, &c));

	/* an IPv4 address against an IPv4-mapped IPv6 range */
	assert_int_equal(netaddr_parse_cidr("::ffff:10.0.0.0/104", &c, &err), 0);
	mkaddr("10.9.9.9", 1, &ss);
	assert_true(netaddr_in_cidr((struct sockaddr *)&ss, &c));
}

static void
test_cidr_parse(void **state)
{
	static const uint8_t ten[4] = { 10, 0, 0, 0 };
	static const char *const bad[] = {
		"", "/8", "10.0.0.0/", "10.0.0.0/33", "10.0.0.0/08", "10.0.0.0/+8",
		"10.0.0.0/-1", "10.0.0.0/8/8", "10.0.0.0 /8", "10.0.0.0/ 8",
		"10.0.0.1/8", "10.0.0.0/8 ", "10.1/16", "010.0.0.0/8",
		"0x0a.0.0.0/8", "::/129", "::1/127", "2001:db8::1/32", "fe80::%1/64",
		"[::1]/128", "example.com/8", "10.0.0.0/1000", "10.0.0.0/0008",
		"255.255.255.255/31", "11.0.0.0/7",
	};
	struct cidr c;
	const char *err;
	size_t i;

	(void)state;
	assert_int_equal(netaddr_parse_cidr("10.0.0.0/8", &c, &err), 0);
	assert_int_equal(c.family, AF_INET);
	assert_int_equal(c.prefix, 8);
	assert_memory_equal(c.addr, ten, 4);
	assert_int_equal(netaddr_parse_cidr("127.0.0.1", &c, &err), 0);
	assert_int_equal(c.prefix, 32);
	assert_int_equal(netaddr_parse_cidr("::1", &c, &err), 0);
	assert_int_equal(c.family, AF_INET6);
	assert_int_equal(c.prefix, 128);
	assert_int_equal(netaddr_parse_cidr("0.0.0.0/0", &c, &err), 0);
	assert_int_equal(c.prefix, 0);
	assert_int_equal(netaddr_parse_cidr("::/0", &c, &err), 0);
	assert_int_equal(netaddr_parse_cidr("fe80::/10", &c, &err), 0);
	assert_int_equal(netaddr_parse_cidr("febf::/10", &c, &err), -1);
	assert_int_equal(netaddr_parse_cidr("255.255.255.254/31", &c, &err), 0);
	assert_int_equal(netaddr_parse_cidr("2001:DB8::/32", &c, &err), 0);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err = NULL;
		if (netaddr_parse_cidr(bad[i], &c, &err) == 0)
			fail_msg("'%s' accepted", bad[i]);
		assert_non_null(err);
	}
}

static void
test_hostport(void **state)
{
	static const char *const bad[] = {
		"", ":", "127.0.0.1", "127.0.0.1:", "127.0.0.1:0", "127.0.0.1:65536",
		"127.0.0.1:123456", "127.0.0.1:-1", "127.0.0.1:+80", "127.0.0.1:80 ",
		" 127.0.0.1:80", "127.1:80", "*:80", "localhost:80", "::1:80",
		"[::1]", "[::1]:", "[::1]80", "[::1]:0", "[127.0.0.1]:80",
		"[fe80::1%lo]:80", "[::1]:80:80", "0177.0.0.1:80", "[::1:80",
		"127.0.0.1:8O",
	};
	struct sockaddr_storage ss;
	struct sockaddr_storage want;
	char text[NETADDR_TEXT_MAX];
	socklen_t len;
	const char *err;
	size_t i;

	(void)state;
	assert_int_equal(netaddr_parse_hostport("127.0.0.1:3128", &ss, &len, &err), 0);
	assert_int_equal(len, sizeof(struct sockaddr_in));
	assert_int_equal(netaddr_port((struct sockaddr *)&ss), 3128);
	assert_string_equal(netaddr_ntop((struct sockaddr *)&ss, text, sizeof(text)),
	    "127.0.0.1");
	mkaddr("127.0.0.1", 3128, &want);
	assert_true(netaddr_equal((struct sockaddr *)&ss, (struct sockaddr *)&want));
	mkaddr("127.0.0.1", 3129, &want);
	assert_false(netaddr_equal((struct sockaddr *)&ss, (struct sockaddr *)&want));
	mkaddr("127.0.0.2", 3128, &want);
	assert_false(netaddr_equal((struct sockaddr *)&ss, (struct sockaddr *)&want));
	mkaddr("::ffff:127.0.0.1", 3128, &want);
	assert_false(netaddr_equal((struct sockaddr *)&ss, (struct sockaddr *)&want));

	assert_int_equal(netaddr_parse_hostport("[::1]:65535", &ss, &len, &err), 0);
	assert_int_equal(len, sizeof(struct sockaddr_in6));
	assert_int_equal(netaddr_port((struct sockaddr *)&ss), 65535);
	assert_string_equal(netaddr_ntop((struct sockaddr *)&ss, text, sizeof(text)), "::1");
	mkaddr("::1", 65535, &want);
	assert_true(netaddr_equal((struct sockaddr *)&ss, (struct sockaddr *)&want));

	assert_int_equal(netaddr_parse_hostport("0.0.0.0:1", &ss, &len, &err), 0);
	assert_int_equal(netaddr_parse_hostport("[::]:80", &ss, &len, &err), 0);
	assert_int_equal(netaddr_parse_hostport("[2001:DB8::1]:443", &ss, &len, &err), 0);
	assert_string_equal(netaddr_ntop((struct sockaddr *)&ss, text, sizeof(text)),
	    "2001:db8::1");

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err = NULL;
		if (netaddr_parse_hostport(bad[i], &ss, &len, &err) == 0)
			fail_msg("'%s' accepted", bad[i]);
		assert_non_null(err);
	}
}

static void
test_ntop_small_buffer(void **state)
{
	struct sockaddr_storage ss;
	char text[4];

	(void)state;
	mkaddr("192.168.100.200", 1, &ss);
	assert_string_equal(netaddr_ntop((struct sockaddr *)&ss, text, sizeof(text)), "");
	ss.ss_family = AF_UNIX;
	assert_string_equal(netaddr_ntop((struct sockaddr *)&ss, text, sizeof(text)), "");
}

/* IPv4 text is written without inet_ntop: the same text for every octet value
 * in every position, and a buffer one byte short of the longest is refused. */
static void
test_ntop_ipv4_like_inet_ntop(void **state)
{
	struct sockaddr_in sin;
	char got[NETADDR_TEXT_MAX], want[INET_ADDRSTRLEN], small[15];
	unsigned v, pos;
	uint8_t *b = (uint8_t *)&sin.sin_addr;

	(void)state;
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	for (pos = 0; pos < 4; pos++) {
		for (v = 0; v < 256; v++) {
			memset(b, pos == 0 ? 7 : 0, 4);
			b[pos] = (uint8_t)v;
			assert_non_null(inet_ntop(AF_INET, &sin.sin_addr, want, sizeof(want)));
			assert_string_equal(netaddr_ntop((struct sockaddr *)&sin, got, sizeof(got)), want);
		}
	}
	memset(b, 255, 4);
	assert_string_equal(netaddr_ntop((struct sockaddr *)&sin, got, sizeof(got)),
	    "255.255.255.255");
	assert_string_equal(netaddr_ntop((struct sockaddr *)&sin, small, sizeof(small)), "");
}

/* Order addresses given as literals, compare with the expected literals. */
static void
check_interleave(const char *const *in, const char *const *want, size_t n)
{
	struct sockaddr_storage ss[8];
	socklen_t len[8];
	char text[NETADDR_TEXT_MAX];
	size_t i;

	for (i = 0; i < n; i++) {
		mkaddr(in[i], 443, &ss[i]);
		len[i] = (socklen_t)(1000 + i);     /* lengths must travel with their address */
	}
	netaddr_interleave_families(ss, len, n);
	for (i = 0; i < n; i++) {
		netaddr_ntop((struct sockaddr *)&ss[i], text, sizeof(text));
		if (strcmp(text, want[i]) != 0)
			fail_msg("position %zu: %s, want %s", i, text, want[i]);
	}
	for (i = 0; i < n; i++) {
		size_t k;

		for (k = 0; k < n && strcmp(in[k], want[i]) != 0; k++)
			;
		assert_int_equal(len[i], 1000 + k);
	}
}

static void
test_interleave_families(void **state)
{
	static const char *const six_first[] = { "2001:db8::1", "2001:db8::2", "2001:db8::3",
		"192.0.2.1", "192.0.2.2" };
	static const char *const six_first_want[] = { "2001:db8::1", "192.0.2.1", "2001:db8::2",
		"192.0.2.2", "2001:db8::3" };
	static const char *const four_first[] = { "192.0.2.1", "192.0.2.2", "192.0.2.3",
		"2001:db8::1" };
	static const char *const four_first_want[] = { "192.0.2.1", "2001:db8::1", "192.0.2.2",
		"192.0.2.3" };
	static const char *const one_family[] = { "192.0.2.3", "192.0.2.1", "192.0.2.2" };
	static const char *const mixed[] = { "192.0.2.1", "2001:db8::1", "2001:db8::2",
		"192.0.2.2" };
	static const char *const mixed_want[] = { "192.0.2.1", "2001:db8::1", "192.0.2.2",
		"2001:db8::2" };
	static const char *const alternating[] = { "2001:db8::1", "192.0.2.1", "2001:db8::2" };

	(void)state;
	check_interleave(six_first, six_first_want, 5);
	check_interleave(four_first, four_first_want, 4);
	check_interleave(one_family, one_family, 3);       /* stable: order kept */
	check_interleave(mixed, mixed_want, 4);
	check_interleave(alternating, alternating, 3);     /* already alternating */
	check_interleave(one_family, one_family, 1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_internal_table),
		cmocka_unit_test(test_teredo),
		cmocka_unit_test(test_unknown_family),
		cmocka_unit_test(test_allow_internal),
		cmocka_unit_test(test_allow_internal_ipv6_range),
		cmocka_unit_test(test_unmap),
		cmocka_unit_test(test_unspecified),
		cmocka_unit_test(test_is_local),
		cmocka_unit_test(test_in_cidr),
		cmocka_unit_test(test_cidr_parse),
		cmocka_unit_test(test_hostport),
		cmocka_unit_test(test_ntop_small_buffer),
		cmocka_unit_test(test_ntop_ipv4_like_inet_ntop),
		cmocka_unit_test(test_interleave_families),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
