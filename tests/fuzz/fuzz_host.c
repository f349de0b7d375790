/*
 * fuzz_host — host_normalize() and ip_literal_parse() (policy/hostname.c).
 *
 * Properties, beyond "no crash": an accepted host normalizes again to itself
 * (a fixed point, so the policy and the audit record see the same text however
 * many times it passes through), holds no upper-case letter, fits HOST_MAX,
 * and an IP host is a literal the strict parser accepts, of the right family.
 * An input the strict parser reads as an IPv4-mapped IPv6 address always
 * becomes that IPv4 address (HOST_IPV4, same 4 bytes), never HOST_IPV6, and
 * a HOST_IPV6 result is never a mapped address.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "policy/policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char out[HOST_BUF], again[HOST_BUF];
	enum host_kind kind, kind2;
	const char *err = NULL;
	uint8_t addr[16], in_addr[16];
	size_t n, i;
	int family, in_family;
	bool in_mapped;

	/* The strict parser alone must not crash or read past size either. */
	in_mapped = ip_literal_parse((const char *)data, size, &in_family, in_addr) == 0 &&
	    ip_addr_unmap(&in_family, in_addr);

	if (host_normalize((const char *)data, size, out, sizeof(out), &kind, &err) != 0) {
		if (err == NULL || in_mapped)
			abort();
		return 0;
	}
	n = strlen(out);
	if (n == 0 || n > HOST_MAX)
		abort();
	for (i = 0; i < n; i++)
		if (out[i] >= 'A' && out[i] <= 'Z')
			abort();
	if (host_normalize(out, n, again, sizeof(again), &kind2, &err) != 0)
		abort();
	if (strcmp(out, again) != 0 || kind != kind2)
		abort();
	switch (kind) {
	case HOST_IPV4:
	case HOST_IPV6:
		if (ip_literal_parse(out, n, &family, addr) != 0)
			abort();
		if (family != (kind == HOST_IPV4 ? AF_INET : AF_INET6))
			abort();
		/* a mapped address never stays IPv6 */
		if (ip_addr_unmap(&family, addr))
			abort();
		if (in_mapped && (kind != HOST_IPV4 || memcmp(addr, in_addr, 4) != 0))
			abort();
		break;
	case HOST_NAME:
		if (in_mapped)
			abort();
		/* a name is never something the IP parser would take */
		if (ip_literal_parse(out, n, &family, addr) == 0)
			abort();
		break;
	}
	return 0;
}
