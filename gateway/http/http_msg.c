/*
 * http_msg — framing decisions and the heads a forward proxy writes.
 *
 * The parser (http_parse.c) only says a head is well formed; this file says
 * what it means.  The difficulty is request smuggling: the gateway and the
 * origin must agree on where a body ends, so every shape two implementations
 * could read differently is refused instead of interpreted — Content-Length
 * together with Transfer-Encoding, Content-Lengths that differ, any coding but
 * a single "chunked", Transfer-Encoding in HTTP/1.0, more than one Host.  The
 * writers then re-frame the message themselves (one Content-Length or
 * "Transfer-Encoding: chunked", decided by the caller) and never copy a framing
 * or hop-by-hop field through, so the next hop sees exactly one reading.
 */

#include "gateway/http/http_msg.h"

#include <stdio.h>
#include <string.h>

#include <event2/buffer.h>

#define HTTP_CL_DIGITS_MAX 18           /* 10^18 - 1 fits an int64_t */

/* A field name with its length, so a list is scanned without strlen. */
struct http_name {
	const char *s;
	size_t len;
};

#define HTTP_NAME(lit) { (lit), sizeof(lit) - 1 }

/* Fields that describe one connection, not the message: never forwarded. */
static const struct http_name http_hop_fields[] = {
	HTTP_NAME("Connection"), HTTP_NAME("Keep-Alive"), HTTP_NAME("Proxy-Connection"),
	HTTP_NAME("TE"), HTTP_NAME("Trailer"), HTTP_NAME("Transfer-Encoding"),
	HTTP_NAME("Upgrade"), HTTP_NAME("Proxy-Authorization"),
	HTTP_NAME("Proxy-Authenticate"),
	{ NULL, 0 },
};

static const struct http_name http_content_length_name = HTTP_NAME("Content-Length");

/*
 * Fields a trailer must not carry on (RFC 9110 6.5.1): a recipient that
 * merged them into the head, or acted on them at the end of the body, would
 * read framing, routing, credentials, request modifiers, response controls or
 * the content's format from bytes no hop has checked.  The hop-by-hop fields
 * above are dropped from trailers as well.
 */
static const struct http_name http_trailer_forbidden[] = {
	HTTP_NAME("Content-Length"), HTTP_NAME("Host"), HTTP_NAME("Authorization"),
	HTTP_NAME("WWW-Authenticate"), HTTP_NAME("Authentication-Info"),
	HTTP_NAME("Proxy-Authentication-Info"), HTTP_NAME("Cookie"), HTTP_NAME("Set-Cookie"),
	HTTP_NAME("Content-Encoding"), HTTP_NAME("Content-Type"), HTTP_NAME("Content-Range"),
	HTTP_NAME("Range"), HTTP_NAME("Expect"), HTTP_NAME("Max-Forwards"),
	HTTP_NAME("Cache-Control"), HTTP_NAME("Pragma"), HTTP_NAME("If-Match"),
	HTTP_NAME("If-None-Match"), HTTP_NAME("If-Modified-Since"),
	HTTP_NAME("If-Unmodified-Since"), HTTP_NAME("If-Range"), HTTP_NAME("Age"),
	HTTP_NAME("Expires"), HTTP_NAME("Date"), HTTP_NAME("Location"),
	HTTP_NAME("Retry-After"), HTTP_NAME("Vary"), HTTP_NAME("Warning"),
	{ NULL, 0 },
};

static char
http_lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

/*
 * Does name[0..len) equal ref, case-insensitively, with each '_' of name read
 * as '-' when dash_underscore?  CGI and WSGI turn both into the same
 * HTTP_TRANSFER_ENCODING, so to such an origin "Transfer_Encoding" is the
 * framing field.
 */
static bool
http_name_eq(const char *name, size_t len, const struct http_name *ref, bool dash_underscore)
{
	size_t i;
	char c;

	if (len != ref->len)
		return false;
	for (i = 0; i < len; i++) {
		c = name[i];
		if (dash_underscore && c == '_')
			c = '-';
		if (http_lower(c) != http_lower(ref->s[i]))
			return false;
	}
	return true;
}

static bool
http_name_in(const char *name, size_t len, const struct http_name *list, bool dash_underscore)
{
	size_t i;

	for (i = 0; list[i].s != NULL; i++)
		if (http_name_eq(name, len, &list[i], dash_underscore))
			return true;
	return false;
}

enum http_field_kind
http_field_classify(const char *name, size_t len)
{
	if (http_name_eq(name, len, &http_content_length_name, false) ||
	    http_name_in(name, len, http_hop_fields, false))
		return HTTP_FIELD_HOP;
	if (memchr(name, '_', len) != NULL &&
	    (http_name_eq(name, len, &http_content_length_name, true) ||
	    http_name_in(name, len, http_hop_fields, true)))
		return HTTP_FIELD_LOOKALIKE;
	return HTTP_FIELD_PLAIN;
}

bool
http_trailer_forwardable(const char *line, size_t len)
{
	const char *colon = memchr(line, ':', len);
	size_t name_len = colon != NULL ? (size_t)(colon - line) : len;

	if (name_len == 0 || http_field_classify(line, name_len) != HTTP_FIELD_PLAIN)
		return false;
	return !http_name_in(line, name_len, http_trailer_forbidden, true);
}

static bool
http_ows(char c)
{
	return c == ' ' || c == '\t';
}

/*
 * Next element of a comma list at *s (up to end), OWS trimmed.  Empty
 * elements are returned as empty so each caller decides about them.
 * Returns false when the list is exhausted (*s is then NULL).
 */
static bool
http_list_next(const char **s, const char *end, const char **elt, size_t *elt_len)
{
	const char *p = *s, *e;

	if (p == NULL)
		return false;
	e = memchr(p, ',', (size_t)(end - p));
	if (e == NULL) {
		e = end;
		*s = NULL;
	} else
		*s = e + 1;
	while (p < e && http_ows(*p))
		p++;
	while (e > p && http_ows(e[-1]))
		e--;
	*elt = p;
	*elt_len = (size_t)(e - p);
	return true;
}

/* Does any Connection field of the message list this field name? */
static bool
http_connection_lists(const struct http_header *hs, size_t n, const char *name,
    size_t name_len)
{
	const char *s, *tok;
	size_t i, len;

	for (i = 0; i < n; i++) {
		if (!http_header_is(&hs[i], "Connection"))
			continue;
		s = hs[i].value;
		while (http_list_next(&s, hs[i].value + hs[i].value_len, &tok, &len))
			if (len == name_len && strncasecmp(tok, name, len) == 0)
				return true;
	}
	return false;
}

/*
 * Is h a field the gateway must not pass on (hop-by-hop, a look-alike of a
 * framing or hop-by-hop field, or named in Connection)?
 */
static bool
http_field_is_hop(const struct http_header *hs, size_t n, const struct http_header *h)
{
	if (http_name_in(h->name, h->name_len, http_hop_fields, false) ||
	    http_field_classify(h->name, h->name_len) == HTTP_FIELD_LOOKALIKE)
		return true;
	return http_connection_lists(hs, n, h->name, h->name_len);
}

/*
 * Content-Length: 1*DIGIT, at most HTTP_CL_DIGITS_MAX of them so the value
 * cannot overflow.  One field may carry a list of identical values ("5, 5")
 * and fields may repeat with identical values (RFC 9110 8.6); any difference,
 * sign, hex or empty element is an error.  *have says whether *value is set.
 */
static int
http_content_length(const struct http_header *h, bool *have, uint64_t *value,
    const char **err)
{
	const char *s = h->value, *end = h->value + h->value_len, *elt;
	uint64_t v;
	size_t len, i;

	if (h->value_len == 0) {
		*err = "empty Content-Length";
		return -1;
	}
	while (http_list_next(&s, end, &elt, &len)) {
		if (len == 0 || len > HTTP_CL_DIGITS_MAX) {
			*err = "invalid Content-Length";
			return -1;
		}
		v = 0;
		for (i = 0; i < len; i++) {
			if (elt[i] < '0' || elt[i] > '9') {
				*err = "invalid Content-Length";
				return -1;
			}
			v = v * 10 + (uint64_t)(elt[i] - '0');
		}
		if (*have && v != *value) {
			*err = "conflicting Content-Length values";
			return -1;
		}
		*have = true;
		*value = v;
	}
	return 0;
}

/*
 * What requests and responses share: Content-Length, Transfer-Encoding,
 * Connection tokens and Upgrade.  Leaves f->kind as NONE, LENGTH or CHUNKED
 * for the caller to refine and sets f->keep_alive from the version and the
 * Connection (and, as clients send it to proxies, Proxy-Connection) tokens.
 */
static int
http_framing_fields(const struct http_header *hs, size_t n, int version_minor,
    struct http_framing *f, const char **err)
{
	bool have_cl = false, want_close = false, keep_alive = false;
	const char *s, *tok;
	size_t i, nte = 0, len;
	uint64_t cl = 0;

	memset(f, 0, sizeof(*f));
	for (i = 0; i < n; i++) {
		const struct http_header *h = &hs[i];

		if (http_header_is(h, "Content-Length")) {
			if (http_content_length(h, &have_cl, &cl, err) == -1)
				return -1;
		} else if (http_header_is(h, "Transfer-Encoding")) {
			/* One field, one coding, and it is chunked: nothing else has one reading. */
			if (++nte > 1) {
				*err = "repeated Transfer-Encoding";
				return -1;
			}
			if (!http_token_eq(h->value, h->value_len, "chunked")) {
				*err = "unsupported Transfer-Encoding";
				return -1;
			}
		} else if (http_header_is(h, "Connection") ||
		    http_header_is(h, "Proxy-Connection")) {
			s = h->value;
			while (http_list_next(&s, h->value + h->value_len, &tok, &len)) {
				if (http_token_eq(tok, len, "close"))
					want_close = true;
				else if (http_token_eq(tok, len, "keep-alive"))
					keep_alive = true;
			}
		} else if (http_header_is(h, "Upgrade"))
			f->has_upgrade = true;
	}
	if (nte > 0 && have_cl) {
		*err = "both Content-Length and Transfer-Encoding";
		return -1;
	}
	if (nte > 0 && version_minor == 0) {
		/* RFC 9112 6.1: HTTP/1.0 has no transfer codings; the framing is faulty. */
		*err = "Transfer-Encoding in HTTP/1.0";
		return -1;
	}
	if (nte > 0)
		f->kind = HTTP_BODY_CHUNKED;
	else if (have_cl) {
		f->kind = HTTP_BODY_LENGTH;
		f->length = cl;
	} else
		f->kind = HTTP_BODY_NONE;
	f->keep_alive = !want_close && (version_minor == 1 || keep_alive);
	return 0;
}

int
http_request_framing(const struct http_request *req, struct http_framing *f,
    const char **err)
{
	size_t i, nhost = 0;

	*err = NULL;
	if (http_framing_fields(req->headers, req->nheaders, req->version_minor, f, err) == -1)
		return -1;
	for (i = 0; i < req->nheaders; i++) {
		const struct http_header *h = &req->headers[i];

		if (http_field_classify(h->name, h->name_len) == HTTP_FIELD_LOOKALIKE) {
			/* Only a smuggler spells a framing field with '_'. */
			*err = "field name is a framing or hop-by-hop name with '_'";
			return -1;
		}
		if (http_header_is(h, "Host"))
			nhost++;
		else if (http_header_is(h, "Expect")) {
			if (!http_token_eq(h->value, h->value_len, "100-continue")) {
				*err = "unsupported Expect";
				return -1;
			}
			f->expect_continue = true;
		}
	}
	if (nhost > 1) {
		*err = "more than one Host";
		return -1;
	}
	if (nhost == 0 && req->version_minor == 1) {
		*err = "missing Host";
		return -1;
	}
	return 0;
}

int
http_response_framing(const struct http_response *resp, const char *method,
    size_t method_len, struct http_framing *f, const char **err)
{
	*err = NULL;
	if (http_framing_fields(resp->headers, resp->nheaders, resp->version_minor, f,
	    err) == -1)
		return -1;
	if (resp->status == 101) {
		/* The gateway never forwards Upgrade, so no switch was asked for. */
		*err = "unsolicited 101 Switching Protocols";
		return -1;
	}
	/* Methods are case-sensitive: "head" is not HEAD, and its response has a body. */
	if (resp->status < 200 || resp->status == 204 || resp->status == 304 ||
	    (method_len == 4 && memcmp(method, "HEAD", 4) == 0)) {
		f->kind = HTTP_BODY_NONE;
		f->length = 0;
	} else if (f->kind == HTTP_BODY_NONE) {
		f->kind = HTTP_BODY_CLOSE;
		f->keep_alive = false;
	}
	return 0;
}

/*
 * A head is assembled in a per-thread scratch buffer and added to the output
 * in one piece: every evbuffer_add on a bufferevent's output runs its
 * callbacks, and a head is twenty small pieces.  A head is bounded by
 * HTTP_HEAD_MAX (plus the few fields the gateway writes), so the scratch
 * holds it; should one not fit, what is there is flushed and writing goes on.
 */
#define HEAD_SCRATCH (HTTP_HEAD_MAX + 4096)

struct head_writer {
	struct evbuffer *out;
	char *buf;
	size_t len;
};

static __thread char head_scratch[HEAD_SCRATCH];

static void
hw_begin(struct head_writer *w, struct evbuffer *out)
{
	w->out = out;
	w->buf = head_scratch;
	w->len = 0;
}

static void
hw_flush(struct head_writer *w)
{
	if (w->len > 0)
		evbuffer_add(w->out, w->buf, w->len);
	w->len = 0;
}

static void
hw_add(struct head_writer *w, const void *p, size_t n)
{
	if (w->len + n > HEAD_SCRATCH) {
		hw_flush(w);
		if (n > HEAD_SCRATCH) {
			evbuffer_add(w->out, p, n);
			return;
		}
	}
	memcpy(w->buf + w->len, p, n);
	w->len += n;
}

#define HW_LIT(w, lit) hw_add((w), (lit), sizeof(lit) - 1)

/* v in decimal. */
static void
hw_uint(struct head_writer *w, unsigned long long v)
{
	char digits[24];
	size_t i = sizeof(digits);

	do
		digits[--i] = (char)('0' + v % 10);
	while ((v /= 10) != 0);
	hw_add(w, digits + i, sizeof(digits) - i);
}

/* "Via: <existing values>, 1.x egressd" as one field; x is the received version. */
static void
http_write_via(struct head_writer *w, const struct http_header *hs, size_t n,
    int version_minor)
{
	size_t i;

	HW_LIT(w, "Via: ");
	for (i = 0; i < n; i++) {
		if (!http_header_is(&hs[i], "Via") || hs[i].value_len == 0)
			continue;
		hw_add(w, hs[i].value, hs[i].value_len);
		HW_LIT(w, ", ");
	}
	if (version_minor == 0)
		HW_LIT(w, "1.0 egressd\r\n");
	else
		HW_LIT(w, "1.1 egressd\r\n");
}

static void
http_write_field(struct head_writer *w, const struct http_header *h)
{
	hw_add(w, h->name, h->name_len);
	HW_LIT(w, ": ");
	hw_add(w, h->value, h->value_len);
	HW_LIT(w, "\r\n");
}

static void
http_write_body_framing(struct head_writer *w, const struct http_framing *body)
{
	switch (body->kind) {
	case HTTP_BODY_LENGTH:
		HW_LIT(w, "Content-Length: ");
		hw_uint(w, (unsigned long long)body->length);
		HW_LIT(w, "\r\n");
		break;
	case HTTP_BODY_CHUNKED:
		HW_LIT(w, "Transfer-Encoding: chunked\r\n");
		break;
	case HTTP_BODY_NONE:
	case HTTP_BODY_CLOSE:
		break;
	}
}

void
http_write_request_head(struct evbuffer *out, const struct http_request *req,
    const struct http_target *target, const char *host, const struct http_framing *body)
{
	struct head_writer w;
	const struct http_header *h;
	size_t i;

	hw_begin(&w, out);
	hw_add(&w, req->method, req->method_len);
	HW_LIT(&w, " ");
	if (target->path != NULL && target->path_len > 0)
		hw_add(&w, target->path, target->path_len);
	else
		HW_LIT(&w, "/");
	HW_LIT(&w, " HTTP/1.1\r\n");

	/* Host is rebuilt from the target: the origin must see what policy saw. */
	HW_LIT(&w, "Host: ");
	if (strchr(host, ':') != NULL) {
		HW_LIT(&w, "[");
		hw_add(&w, host, strlen(host));
		HW_LIT(&w, "]");
	} else
		hw_add(&w, host, strlen(host));
	if (target->port != 80) {
		HW_LIT(&w, ":");
		hw_uint(&w, target->port);
	}
	HW_LIT(&w, "\r\n");

	for (i = 0; i < req->nheaders; i++) {
		h = &req->headers[i];
		if (http_header_is(h, "Host") || http_header_is(h, "Content-Length") ||
		    http_header_is(h, "Via") || http_field_is_hop(req->headers, req->nheaders, h))
			continue;
		http_write_field(&w, h);
	}
	http_write_via(&w, req->headers, req->nheaders, req->version_minor);
	http_write_body_framing(&w, body);
	HW_LIT(&w, "Connection: keep-alive\r\n\r\n");
	hw_flush(&w);
}

void
http_write_response_head(struct evbuffer *out, const struct http_response *resp,
    const struct http_framing *body, bool keep_alive)
{
	struct head_writer w;
	const struct http_header *h;
	bool interim = resp->status < 200, keep_cl;
	size_t i;

	hw_begin(&w, out);
	HW_LIT(&w, "HTTP/1.1 ");
	hw_uint(&w, (unsigned)resp->status);
	HW_LIT(&w, " ");
	hw_add(&w, resp->reason, resp->reason_len);
	HW_LIT(&w, "\r\n");

	/*
	 * A bodiless response to HEAD, or a 304, carries the Content-Length of
	 * the representation as metadata: pass it on.  Otherwise the framing
	 * line is the gateway's own.
	 */
	keep_cl = body->kind == HTTP_BODY_NONE && !interim && resp->status != 204;
	for (i = 0; i < resp->nheaders; i++) {
		h = &resp->headers[i];
		if (http_header_is(h, "Via") ||
		    (http_header_is(h, "Content-Length") && !keep_cl) ||
		    http_field_is_hop(resp->headers, resp->nheaders, h))
			continue;
		http_write_field(&w, h);
	}
	http_write_via(&w, resp->headers, resp->nheaders, resp->version_minor);
	if (!interim) {
		http_write_body_framing(&w, body);
		if (keep_alive && body->kind != HTTP_BODY_CLOSE)
			HW_LIT(&w, "Connection: keep-alive\r\n");
		else
			HW_LIT(&w, "Connection: close\r\n");
	}
	HW_LIT(&w, "\r\n");
	hw_flush(&w);
}

const char *
http_status_text(int status)
{
	switch (status) {
	case 100: return "Continue";
	case 101: return "Switching Protocols";
	case 200: return "OK";
	case 400: return "Bad Request";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 407: return "Proxy Authentication Required";
	case 408: return "Request Timeout";
	case 411: return "Length Required";
	case 413: return "Content Too Large";
	case 414: return "URI Too Long";
	case 417: return "Expectation Failed";
	case 429: return "Too Many Requests";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	case 505: return "HTTP Version Not Supported";
	default: return "Error";
	}
}

void
http_write_error(struct evbuffer *out, int status, const char *extra_header)
{
	http_write_error_text(out, status, extra_header, NULL);
}

void
http_write_error_text(struct evbuffer *out, int status, const char *extra_header,
    const char *text)
{
	char body[512];
	int n;

	if (status < 100 || status > 599)
		status = 500;
	n = snprintf(body, sizeof(body), "%d %s\n%s%s", status, http_status_text(status),
	    text != NULL ? text : "", text != NULL ? "\n" : "");
	if (n < 0 || (size_t)n >= sizeof(body))
		n = snprintf(body, sizeof(body), "%d %s\n", status, http_status_text(status));
	evbuffer_add_printf(out, "HTTP/1.1 %d %s\r\n"
	    "Content-Type: text/plain\r\n"
	    "Content-Length: %d\r\n"
	    "Connection: close\r\n", status, http_status_text(status), n);
	/* A caller's header with a line break in it would split the response. */
	if (extra_header != NULL && strpbrk(extra_header, "\r\n") == NULL)
		evbuffer_add_printf(out, "%s\r\n", extra_header);
	evbuffer_add(out, "\r\n", 2);
	evbuffer_add(out, body, (size_t)n);
}
