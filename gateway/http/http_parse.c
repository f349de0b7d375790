/*
 * http_parse — strict HTTP/1.x head parsers, absolute-form URLs and CONNECT
 * authorities.
 *
 * The parsers are re-entrant in the picohttpparser way: the caller hands over
 * everything received so far and the head is parsed again from its first byte,
 * so no state survives between calls and there is nothing to get out of step.
 * Each byte is checked as soon as it is seen, so a malformed head is refused
 * as early as possible (a client cannot make us wait for 64 KiB of garbage),
 * and "ran out of bytes" is a distinct outcome (MORE) from "wrong byte" (ERROR).
 *
 * The difficulty is that every leniency is a smuggling primitive: a parser that
 * accepts a bare LF, a folded line or "Transfer-Encoding : chunked" sees a
 * different message than the origin behind it.  So the grammar below is the
 * RFC 9112 one with every optional tolerance turned off: lines end in CRLF,
 * single SP separators in the start line, no whitespace before a colon, no
 * obs-fold, no leading empty lines, tokens validated byte by byte.
 */

#include "gateway/http/http_parse.h"

#include <string.h>

static const char http_slash[] = "/";

bool
http_is_tchar(unsigned char c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
		return true;
	return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

bool
http_is_field_vchar(unsigned char c)
{
	return c == '\t' || (c >= 0x20 && c != 0x7f);
}

/*
 * Out of bytes at some point of the head: valid so far.  A head that has
 * already filled HTTP_HEAD_MAX bytes without ending can only grow past it.
 */
static enum http_parse_result
http_parse_need(size_t len)
{
	return len >= HTTP_HEAD_MAX ? HTTP_PARSE_TOO_LARGE : HTTP_PARSE_MORE;
}

/*
 * "HTTP/1.0" or "HTTP/1.1" at buf[*p], exactly (upper case, one digit each).
 * Compares only what has arrived, so "HTTP/2" is refused before the line ends.
 */
static enum http_parse_result
http_parse_version(const char *buf, size_t len, size_t *p, int *minor, const char **err)
{
	static const char prefix[] = "HTTP/1.";
	size_t i;

	for (i = 0; i < sizeof(prefix) - 1; i++) {
		if (*p + i >= len)
			return http_parse_need(len);
		if (buf[*p + i] != prefix[i]) {
			*err = "unsupported HTTP version";
			return HTTP_PARSE_ERROR;
		}
	}
	if (*p + i >= len)
		return http_parse_need(len);
	if (buf[*p + i] != '0' && buf[*p + i] != '1') {
		*err = "unsupported HTTP version";
		return HTTP_PARSE_ERROR;
	}
	*minor = buf[*p + i] - '0';
	*p += i + 1;
	return HTTP_PARSE_DONE;
}

/* CRLF at buf[*p]; anything else ends the line wrongly. */
static enum http_parse_result
http_parse_crlf(const char *buf, size_t len, size_t *p, const char **err)
{
	if (*p >= len)
		return http_parse_need(len);
	if (buf[*p] != '\r') {
		*err = buf[*p] == '\n' ? "bare LF" : "junk at end of start line";
		return HTTP_PARSE_ERROR;
	}
	if (*p + 1 >= len)
		return http_parse_need(len);
	if (buf[*p + 1] != '\n') {
		*err = "bare CR";
		return HTTP_PARSE_ERROR;
	}
	*p += 2;
	return HTTP_PARSE_DONE;
}

/*
 * Field-vchars from buf[*p] up to the CR that ends the line, which is left for
 * the caller; ctl is the error for any other control character.  A field value
 * and a reason phrase are the same text to the byte.
 */
static enum http_parse_result
http_parse_text(const char *buf, size_t len, size_t *p, const char *ctl, const char **err)
{
	unsigned char c;

	for (;;) {
		if (*p >= len)
			return http_parse_need(len);
		c = buf[*p];
		if (c == '\r')
			return HTTP_PARSE_DONE;
		if (!http_is_field_vchar(c)) {
			*err = c == '\n' ? "bare LF" : ctl;
			return HTTP_PARSE_ERROR;
		}
		(*p)++;
	}
}

/*
 * The header fields from buf[p] up to and including the empty line:
 *	field-line = field-name ":" OWS field-value OWS CRLF
 * with field-name 1*tchar and a value of field-vchars; the value kept is the
 * one between the outer OWS.  A line that starts with SP or HTAB is obs-fold
 * (or whitespace before the first name) and refused.
 */
static enum http_parse_result
http_parse_fields(const char *buf, size_t len, size_t p, struct http_header *headers,
    size_t *nheaders, size_t *head_len, const char **err)
{
	enum http_parse_result r;
	size_t name, name_end, value, value_end;
	unsigned char c;

	*nheaders = 0;
	for (;;) {
		if (p >= len)
			return http_parse_need(len);
		c = buf[p];
		if (c == '\r') {
			if (p + 1 >= len)
				return http_parse_need(len);
			if (buf[p + 1] != '\n') {
				*err = "bare CR";
				return HTTP_PARSE_ERROR;
			}
			*head_len = p + 2;
			return HTTP_PARSE_DONE;
		}
		if (c == '\n') {
			*err = "bare LF";
			return HTTP_PARSE_ERROR;
		}
		if (c == ' ' || c == '\t') {
			*err = "obs-fold or whitespace before a field name";
			return HTTP_PARSE_ERROR;
		}
		if (*nheaders == HTTP_HEADERS_MAX)
			return HTTP_PARSE_TOO_LARGE;

		name = p;
		while (p < len && http_is_tchar((unsigned char)buf[p]))
			p++;
		if (p >= len)
			return http_parse_need(len);
		name_end = p;
		c = buf[p];
		if (c != ':') {
			if (c == ' ' || c == '\t')
				*err = "whitespace before colon";
			else if (name_end == name)
				*err = "empty field name";
			else
				*err = "invalid character in field name";
			return HTTP_PARSE_ERROR;
		}
		if (name_end == name) {
			*err = "empty field name";
			return HTTP_PARSE_ERROR;
		}
		p++;

		while (p < len && (buf[p] == ' ' || buf[p] == '\t'))
			p++;
		value = p;
		if ((r = http_parse_text(buf, len, &p, "control character in field value",
		    err)) != HTTP_PARSE_DONE)
			return r;
		value_end = p;
		while (value_end > value && (buf[value_end - 1] == ' ' || buf[value_end - 1] == '\t'))
			value_end--;
		if (p + 1 >= len)
			return http_parse_need(len);
		if (buf[p + 1] != '\n') {
			*err = "bare CR";
			return HTTP_PARSE_ERROR;
		}
		p += 2;

		headers[*nheaders].name = buf + name;
		headers[*nheaders].name_len = name_end - name;
		headers[*nheaders].value = buf + value;
		headers[*nheaders].value_len = value_end - value;
		(*nheaders)++;
	}
}

/*
 * request-line = method SP request-target SP HTTP-version CRLF
 * The target is checked only for its bytes here (printable ASCII, no '#');
 * its form (absolute, authority, origin) is the caller's business.
 */
enum http_parse_result
http_parse_request(const char *buf, size_t len, struct http_request *req, const char **err)
{
	enum http_parse_result r;
	size_t p = 0, start;
	unsigned char c;

	*err = NULL;
	/* Only the first HTTP_HEAD_MAX bytes can hold a head we accept. */
	if (len > HTTP_HEAD_MAX)
		len = HTTP_HEAD_MAX;
	req->nheaders = 0;
	req->head_len = 0;

	while (p < len && http_is_tchar((unsigned char)buf[p]))
		p++;
	if (p >= len)
		return http_parse_need(len);
	if (p == 0) {
		*err = "invalid request method";
		return HTTP_PARSE_ERROR;
	}
	if (buf[p] != ' ') {
		*err = "invalid request method";
		return HTTP_PARSE_ERROR;
	}
	req->method = buf;
	req->method_len = p;
	p++;

	start = p;
	for (;;) {
		if (p >= len)
			return http_parse_need(len);
		c = buf[p];
		if (c == ' ')
			break;
		if (c < 0x21 || c > 0x7e) {
			*err = "invalid character in request target";
			return HTTP_PARSE_ERROR;
		}
		if (c == '#') {
			*err = "fragment in request target";
			return HTTP_PARSE_ERROR;
		}
		p++;
	}
	if (p == start) {
		*err = "empty request target";
		return HTTP_PARSE_ERROR;
	}
	req->target = buf + start;
	req->target_len = p - start;
	p++;

	if ((r = http_parse_version(buf, len, &p, &req->version_minor, err)) != HTTP_PARSE_DONE)
		return r;
	if ((r = http_parse_crlf(buf, len, &p, err)) != HTTP_PARSE_DONE)
		return r;
	return http_parse_fields(buf, len, p, req->headers, &req->nheaders, &req->head_len,
	    err);
}

/*
 * status-line = HTTP-version SP 3DIGIT SP reason-phrase CRLF
 * The SP after the status code is required even when the reason is empty
 * (RFC 9112 4); the reason is HTAB, SP, VCHAR and obs-text.
 */
enum http_parse_result
http_parse_response(const char *buf, size_t len, struct http_response *resp,
    const char **err)
{
	enum http_parse_result r;
	size_t p = 0, start;
	int i, status = 0;
	unsigned char c;

	*err = NULL;
	/* Only the first HTTP_HEAD_MAX bytes can hold a head we accept. */
	if (len > HTTP_HEAD_MAX)
		len = HTTP_HEAD_MAX;
	resp->nheaders = 0;
	resp->head_len = 0;

	if ((r = http_parse_version(buf, len, &p, &resp->version_minor, err)) != HTTP_PARSE_DONE)
		return r;
	if (p >= len)
		return http_parse_need(len);
	if (buf[p] != ' ') {
		*err = "malformed status line";
		return HTTP_PARSE_ERROR;
	}
	p++;
	for (i = 0; i < 3; i++, p++) {
		if (p >= len)
			return http_parse_need(len);
		c = buf[p];
		if (c < '0' || c > '9') {
			*err = "malformed status code";
			return HTTP_PARSE_ERROR;
		}
		status = status * 10 + (c - '0');
	}
	if (status < 100 || status > 599) {
		*err = "status code out of range";
		return HTTP_PARSE_ERROR;
	}
	resp->status = status;
	if (p >= len)
		return http_parse_need(len);
	if (buf[p] != ' ') {
		*err = "malformed status line";
		return HTTP_PARSE_ERROR;
	}
	p++;
	start = p;
	if ((r = http_parse_text(buf, len, &p, "control character in reason phrase",
	    err)) != HTTP_PARSE_DONE)
		return r;
	resp->reason = buf + start;
	resp->reason_len = p - start;
	if ((r = http_parse_crlf(buf, len, &p, err)) != HTTP_PARSE_DONE)
		return r;
	return http_parse_fields(buf, len, p, resp->headers, &resp->nheaders,
	    &resp->head_len, err);
}

/* A byte of a host name: letters, digits and "-._~" (no sub-delims, no '%'). */
static bool
http_host_char(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	    c == '-' || c == '.' || c == '_' || c == '~';
}

/* A byte of a bracketed IPv6 literal: hex, ':' and '.' (no zone id). */
static bool
http_v6_char(unsigned char c)
{
	return (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') || (c >= '0' && c <= '9') ||
	    c == ':' || c == '.';
}

#define HTTP_HOST_MAX 255

/*
 * authority = host [ ":" port ] in s[0..len) (the caller has cut it out:
 * no '/', '?' or '#' inside).  host is a name, a dotted quad or "[v6]"; the
 * characters are checked here and the meaning by host_normalize() later.
 * With port_required, "host" alone is an error.
 */
static int
http_parse_hostport(const char *s, size_t len, bool port_required, struct http_target *out,
    const char **err)
{
	size_t p = 0, hend;
	unsigned long port;

	if (memchr(s, '@', len) != NULL) {
		*err = "userinfo in authority";
		return -1;
	}
	if (len > 0 && s[0] == '[') {
		p = 1;
		while (p < len && http_v6_char((unsigned char)s[p]))
			p++;
		if (p >= len || s[p] != ']') {
			*err = "malformed IPv6 literal";
			return -1;
		}
		out->host = s + 1;
		out->host_len = p - 1;
		out->host_bracketed = true;
		hend = p + 1;
	} else {
		while (p < len && http_host_char((unsigned char)s[p]))
			p++;
		out->host = s;
		out->host_len = p;
		out->host_bracketed = false;
		hend = p;
	}
	if (out->host_len == 0) {
		*err = "empty host";
		return -1;
	}
	if (out->host_len > HTTP_HOST_MAX) {
		*err = "host name too long";
		return -1;
	}

	p = hend;
	out->port_explicit = false;
	if (p == len) {
		if (port_required) {
			*err = "port required";
			return -1;
		}
		return 0;
	}
	if (s[p] != ':') {
		*err = "invalid character in host";
		return -1;
	}
	p++;
	if (p == len) {
		*err = "empty port";
		return -1;
	}
	if (len - p > 5) {
		*err = "port too long";
		return -1;
	}
	port = 0;
	for (; p < len; p++) {
		if (s[p] < '0' || s[p] > '9') {
			*err = "invalid port";
			return -1;
		}
		port = port * 10 + (unsigned long)(s[p] - '0');
	}
	if (port < 1 || port > 65535) {
		*err = "port out of range";
		return -1;
	}
	out->port = (uint16_t)port;
	out->port_explicit = true;
	return 0;
}

int
http_parse_absolute_url(const char *target, size_t len, struct http_target *out,
    const char **err)
{
	static const char scheme[] = "http://";
	size_t p, auth, i;
	unsigned char c;

	*err = NULL;
	memset(out, 0, sizeof(*out));
	if (len < sizeof(scheme) - 1 || strncasecmp(target, scheme, sizeof(scheme) - 1) != 0) {
		*err = "not an http:// URL";
		return -1;
	}
	for (i = 0; i < len; i++) {
		c = target[i];
		if (c < 0x21 || c > 0x7e) {
			*err = "invalid character in URL";
			return -1;
		}
		if (c == '#') {
			*err = "fragment in URL";
			return -1;
		}
	}
	auth = p = sizeof(scheme) - 1;
	while (p < len && target[p] != '/' && target[p] != '?')
		p++;
	if (http_parse_hostport(target + auth, p - auth, false, out, err) == -1)
		return -1;
	if (!out->port_explicit)
		out->port = 80;
	if (p == len) {
		/* "http://host" asks for the root: the origin-form is "/". */
		out->path = http_slash;
		out->path_len = 1;
		return 0;
	}
	if (target[p] != '/') {
		/* "http://host?q" would need a '/' inserted; no client sends it. */
		*err = "query without path";
		return -1;
	}
	out->path = target + p;
	out->path_len = len - p;
	return 0;
}

int
http_parse_authority(const char *target, size_t len, struct http_target *out,
    const char **err)
{
	size_t i;

	*err = NULL;
	memset(out, 0, sizeof(*out));
	for (i = 0; i < len; i++) {
		if (target[i] == '/' || target[i] == '?' || target[i] == '#') {
			*err = "authority form has no path";
			return -1;
		}
	}
	return http_parse_hostport(target, len, true, out, err);
}
