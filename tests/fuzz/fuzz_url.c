/*
 * fuzz_url — absolute-form URLs and CONNECT authorities.
 *
 * Properties: whatever parses has its host, port and path inside the input
 * (the one exception is the "/" given to "http://host"), a non-empty host
 * free of the bytes that would let it mean two things ('@', '/', '%', space,
 * controls), a port in 1..65535, and no '#' anywhere.
 */

#include <assert.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "gateway/http/http_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int
inside(const char *base, size_t size, const char *p, size_t len)
{
	return len == 0 || (p >= base && len <= size && (size_t)(p - base) <= size - len);
}

static void
check_host(const char *buf, size_t size, const struct http_target *t)
{
	size_t i;

	assert(t->host_len > 0 && inside(buf, size, t->host, t->host_len));
	for (i = 0; i < t->host_len; i++) {
		unsigned char c = (unsigned char)t->host[i];

		assert(c > 0x20 && c < 0x7f);
		assert(strchr("@/%?#[] \\", c) == NULL);
		if (!t->host_bracketed)
			assert(c != ':');
	}
	assert(t->port >= 1);
	assert(memchr(buf, '#', size) == NULL);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *buf = (const char *)data, *err;
	struct http_target t;

	if (http_parse_absolute_url(buf, size, &t, &err) == 0) {
		check_host(buf, size, &t);
		assert(memchr(buf, '@', size) == NULL || memchr(t.path, '@', t.path_len) != NULL);
		assert(t.path_len > 0 && t.path[0] == '/');
		assert(inside(buf, size, t.path, t.path_len) ||
		    (t.path_len == 1 && t.path[0] == '/'));
		if (!t.port_explicit)
			assert(t.port == 80);
	} else
		assert(err != NULL);

	if (http_parse_authority(buf, size, &t, &err) == 0) {
		check_host(buf, size, &t);
		assert(t.port_explicit && t.path_len == 0);
		assert(memchr(buf, '@', size) == NULL && memchr(buf, '/', size) == NULL);
	} else
		assert(err != NULL);
	return 0;
}
