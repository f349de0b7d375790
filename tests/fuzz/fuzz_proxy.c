/*
 * fuzz_proxy — the PROXY protocol v1/v2 parser (gateway/proxy_proto.c).
 *
 * Properties, beyond "no crash" and no read past size: DONE consumes at
 * most the bytes given and at most the longest header; an error has a
 * message; and the answer is consistent with growing input, since the
 * gateway re-parses on every read: every prefix of an accepted header is
 * NEED_MORE, and bytes after an accepted header change nothing.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/proxy_proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct proxy_info pi, pi2;
	const char *err = NULL;
	size_t consumed, consumed2, i;
	enum proxy_result r;

	r = proxy_parse(data, size, &pi, &consumed, &err);
	switch (r) {
	case PROXY_ERROR:
		if (err == NULL || consumed != 0)
			abort();
		return 0;
	case PROXY_NEED_MORE:
		if (consumed != 0 || size >= PROXY_V2_MAX)
			abort();
		return 0;
	case PROXY_DONE:
		break;
	default:
		abort();
	}
	if (consumed == 0 || consumed > size || consumed > PROXY_V2_MAX)
		abort();
	if (data[0] == 'P' && consumed > PROXY_V1_MAX)
		abort();

	/* The header alone gives the same answer. */
	if (proxy_parse(data, consumed, &pi2, &consumed2, &err) != PROXY_DONE ||
	    consumed2 != consumed || memcmp(&pi, &pi2, sizeof(pi)) != 0)
		abort();
	/* Each strict prefix is NEED_MORE. */
	for (i = 0; i < consumed; i++)
		if (proxy_parse(data, i, &pi2, &consumed2, &err) != PROXY_NEED_MORE)
			abort();
	return 0;
}
