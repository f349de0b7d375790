/*
 * fuzz_host — host_normalize() and ip_literal_parse() (policy/hostname.c).
 *
 * Properties, beyond "no crash": an accepted host normalizes again to itself
 * (a fixed point, so the policy and the audit record see the same text however
 * many times it passes through), holds no upper-case letter, fits HOST_MAX,
 * and an IP host is a literal the strict parser accepts, of the right family.
 */
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
	uint8_t addr[16];
	size_t n, i;
	int family;

	/* The strict parser alone must not crash or read past size either. */
	(void)ip_literal_parse((const char *)data, size, &family, addr);

	if (host_normalize((const char *)data, size, out, sizeof(out), &kind, &err) != 0) {
		if (err == NULL)
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
		break;
	case HOST_NAME:
		/* a name is never something the IP parser would take */
		if (ip_literal_parse(out, n, &family, addr) == 0)
			abort();
		break;
	}
	return 0;
}
