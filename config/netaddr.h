/*
 * netaddr — socket addresses as the gateway's security checks see them.
 *
 * Pure functions: parse "host:port" listen addresses and CIDR ranges (through
 * the one strict IP-literal parser in policy.h), print addresses canonically,
 * and decide whether a resolved destination is internal (loopback, private,
 * link-local, CGNAT, multicast, reserved, ULA, and IPv4 embedded in IPv6 by
 * mapping, NAT64, 6to4 or Teredo) and whether an allow_internal range lets it
 * through.  The difficulty is the embedded forms: an attacker who cannot reach
 * 127.0.0.1 tries ::ffff:127.0.0.1, 64:ff9b::7f00:1, 2002:7f00:1::.  The
 * mapped form is the IPv4 address (netaddr_unmap); the others are judged
 * internal by the IPv4 they carry, but an IPv4 allowance never covers them.
 */
#ifndef EGRESSD_GATEWAY_NETADDR_H
#define EGRESSD_GATEWAY_NETADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define NETADDR_TEXT_MAX 46         /* INET6_ADDRSTRLEN */

/* An address range; family AF_INET (4 address bytes used) or AF_INET6. */
struct cidr {
	int family;                     /* AF_INET or AF_INET6 */
	uint8_t addr[16];               /* network order, host bits zero */
	unsigned prefix;                /* 0..32 or 0..128 */
};

/*
 * Parse "ADDR/PREFIX" or a bare "ADDR" (= /32 or /128) strictly.  Host bits set
 * beyond the prefix are an error ("10.0.0.1/8").  Returns 0, or -1 with a
 * static message in *err.
 */
int netaddr_parse_cidr(const char *text, struct cidr *out, const char **err);

/*
 * Parse a listen address "IPv4:PORT" or "[IPv6]:PORT" (port 1..65535, at most
 * 5 digits) into ss/len.  Returns 0, or -1 with a static message in *err.
 */
int netaddr_parse_hostport(const char *text, struct sockaddr_storage *ss, socklen_t *len,
    const char **err);

/* true if sa (AF_INET or AF_INET6) lies in c; IPv4-mapped IPv6 matches IPv4 ranges. */
bool netaddr_in_cidr(const struct sockaddr *sa, const struct cidr *c);

/* true if sa is an internal address (see the file comment); unknown families are internal. */
bool netaddr_is_internal(const struct sockaddr *sa);

/*
 * May the gateway connect to sa?  true if sa is not internal, or if sa itself
 * lies in one of the allow ranges.  An IPv4 range covers the IPv4 address and
 * its IPv4-mapped form, never a NAT64, 6to4 or Teredo address embedding it
 * (another machine acts on those); only an IPv6 range that contains such an
 * address lets it through.
 */
bool netaddr_destination_allowed(const struct sockaddr *sa, const struct cidr *allow,
    size_t nallow);

/*
 * If ss holds an IPv4-mapped IPv6 address (::ffff:a.b.c.d), rewrite it in
 * place as the AF_INET address a.b.c.d with the same port, set *len (if not
 * NULL) and return true; otherwise leave it alone and return false.  A
 * dual-stack socket connecting to the mapped form reaches the IPv4 address,
 * so every check (and the record) must see that address.
 */
bool netaddr_unmap(struct sockaddr_storage *ss, socklen_t *len);

/*
 * true if sa (AF_INET or AF_INET6, unmapped) is an address of this host at
 * this moment: loopback, unspecified, or one bind() accepts.  Errors count as
 * local (fail closed).  Not pure: costs a socket() and a bind().
 */
bool netaddr_is_local(const struct sockaddr *sa);

/* true if sa is the unspecified address (0.0.0.0, ::ffff:0.0.0.0 or ::), a wildcard listener. */
bool netaddr_is_unspecified(const struct sockaddr *sa);

/* Canonical text of the address (no port, no brackets) into buf; returns buf. */
const char *netaddr_ntop(const struct sockaddr *sa, char *buf, size_t bufsz);

/* Port of an AF_INET/AF_INET6 address in host order, 0 otherwise. */
uint16_t netaddr_port(const struct sockaddr *sa);

/*
 * Reorder addr[0..n) (with their lengths) for connecting: IPv6 and IPv4
 * alternate, starting with the family of addr[0], each family in its own
 * order (RFC 8305 section 4), so one broken family costs one attempt delay.
 */
void netaddr_interleave_families(struct sockaddr_storage *addr, socklen_t *len, size_t n);

/* true if both have the same family, address and port. */
bool netaddr_equal(const struct sockaddr *a, const struct sockaddr *b);

#endif
