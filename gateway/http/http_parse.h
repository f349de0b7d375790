/*
 * http_parse — strict HTTP/1.x message-head parsers (requests from clients,
 * responses from origins), absolute-form URLs and CONNECT authorities.
 *
 * Pure functions over (buf, len) in the picohttpparser shape: they never
 * allocate, never copy, and point into the caller's buffer.  Both the client and
 * the origin are hostile, so both heads are parsed with the same strictness and
 * bounds: no obs-fold, no bare CR or LF, no whitespace before a colon, no empty
 * field name, no NUL/CR/LF in a value, tokens validated, versions HTTP/1.0 and
 * HTTP/1.1 only.  A caller that sees HTTP_PARSE_ERROR answers 400 (502 for an
 * origin) and never looks at the message again.
 */
#ifndef EGRESSD_GATEWAY_HTTP_PARSE_H
#define EGRESSD_GATEWAY_HTTP_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#define HTTP_HEAD_MAX (64 * 1024)   /* request head bound: over it, 431 */
#define HTTP_HEADERS_MAX 128        /* header fields per message */

enum http_parse_result {
	HTTP_PARSE_DONE,                /* a complete head; *head_len says how long */
	HTTP_PARSE_MORE,                /* valid so far, incomplete */
	HTTP_PARSE_ERROR,               /* malformed: *err says why */
	HTTP_PARSE_TOO_LARGE,           /* over HTTP_HEAD_MAX or HTTP_HEADERS_MAX */
};

/* One header field; name and value point into the parsed buffer. */
struct http_header {
	const char *name;               /* field name, as sent */
	size_t name_len;
	const char *value;              /* value without leading/trailing whitespace */
	size_t value_len;
};

struct http_request {
	const char *method;             /* request method token */
	size_t method_len;
	const char *target;             /* request-target as sent */
	size_t target_len;
	int version_minor;              /* 0 or 1 (HTTP/1.0, HTTP/1.1) */
	size_t nheaders;                /* entries used in headers[] */
	struct http_header headers[HTTP_HEADERS_MAX];
	size_t head_len;                /* bytes of the head, final CRLF CRLF included */
};

struct http_response {
	int status;                     /* 100..599 */
	const char *reason;             /* reason phrase (may be empty) */
	size_t reason_len;
	int version_minor;              /* 0 or 1 */
	size_t nheaders;
	struct http_header headers[HTTP_HEADERS_MAX];
	size_t head_len;                /* bytes of the head, final CRLF CRLF included */
};

/*
 * Parse a request head from buf[0..len).  Returns DONE with req->head_len set,
 * MORE when the head is incomplete but valid so far, ERROR with a static
 * message in *err, or TOO_LARGE.  Lines end in CRLF only.  The whole head is
 * parsed again on every call (no state is kept), each byte checked as it comes,
 * so an error is reported as soon as its byte has arrived.  Empty lines before
 * the request line are an error.  The target is checked for its bytes only
 * (printable ASCII, no '#'); the caller parses it by its form.
 */
enum http_parse_result http_parse_request(const char *buf, size_t len,
    struct http_request *req, const char **err);

/*
 * The same for an origin's status line and header fields (same HTTP_HEAD_MAX
 * and HTTP_HEADERS_MAX).  "HTTP/1.1 204 \r\n" (empty reason) is accepted,
 * "HTTP/1.1 204\r\n" (no SP after the code) is not.
 */
enum http_parse_result http_parse_response(const char *buf, size_t len,
    struct http_response *resp, const char **err);

/* The parts of an absolute-form http:// URL or a CONNECT authority. */
struct http_target {
	const char *host;               /* host text, without brackets */
	size_t host_len;
	bool host_bracketed;            /* written as [IPv6] */
	uint16_t port;                  /* explicit port, or 80 for http:// */
	bool port_explicit;             /* a port was written */
	const char *path;               /* path + query ("/" if the URL had none) */
	size_t path_len;
};

/*
 * Absolute-form "http://host[:port][/path][?query]": scheme http only (case-
 * insensitive), no userinfo ('@' in the authority), no fragment, no '#', no
 * empty host, port 1..65535 with at most 5 digits.  Returns 0 or -1 with *err.
 * Host bytes are letters, digits and "-._~" (a bracketed host: hex, ':' and
 * '.'; no zone id), at most 255; the host is not normalized here.  Everything
 * must be printable ASCII.  "http://host" gets path "/" (a static string, not
 * in target); "http://host?q" and "http://host:" are errors.
 */
int http_parse_absolute_url(const char *target, size_t len, struct http_target *out,
    const char **err);

/*
 * CONNECT authority-form "host:port" or "[v6]:port"; port required, host bytes
 * as above, no path, query or userinfo.  path is NULL, path_len 0.
 */
int http_parse_authority(const char *target, size_t len, struct http_target *out,
    const char **err);

/* Case-insensitive comparison of tok[0..len) (a field name, a token of a
 * value) with a NUL-terminated name (inline: with a literal name its length
 * is known at compile time). */
static inline bool
http_token_eq(const char *tok, size_t len, const char *name)
{
	return len == strlen(name) && strncasecmp(tok, name, len) == 0;
}

static inline bool
http_header_is(const struct http_header *h, const char *name)
{
	return http_token_eq(h->name, h->name_len, name);
}

/*
 * The two character classes of RFC 9110 every HTTP grammar here is built on,
 * shared with the chunked decoder (body.c) so there is one definition:
 * tchar (a token byte: ALPHA DIGIT and !#$%&'*+-.^_`|~), and a field-value
 * byte (HTAB, SP, VCHAR, obs-text: anything but NUL, CR, LF, other CTLs, DEL).
 */
bool http_is_tchar(unsigned char c);
bool http_is_field_vchar(unsigned char c);

#endif
