/*
 * json — one audit event as one JSON object (pure: event in, string out).
 *
 * The difficulty is hostile strings and the size bound.  Host names, user
 * names, SNI and URLs come from the network and may hold any bytes, so every
 * string is made valid UTF-8 as it is written, with quotes, backslashes and
 * control characters escaped (json-c's exact output; see struct jbuf).  The rule for
 * invalid UTF-8 is one U+FFFD per byte that does not start a valid sequence
 * (stray continuation bytes, overlong forms, surrogates, code points above
 * U+10FFFF, sequences cut short), after which decoding resumes at the next
 * byte; valid sequences are kept as they are.
 *
 * A record must fit one syslog message (rsyslog drops or cuts what exceeds
 * its 8 KiB default), so a value is cut on a character boundary once its
 * JSON form (escapes counted) would pass the per-value limit, and marked
 * with "...[truncated]"; if the whole record is still too long, it is
 * encoded again with a smaller limit, which always fits: 14 variable strings
 * at 256 bytes plus the fixed keys and numbers are far below the bound.
 */
#include "audit/audit.h"
#include "lib/fmt.h"

#include <assert.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>


/* The smallest limit audit_encode() falls back to; see the top comment. */
#define AUDIT_VALUE_MIN 256

/* Length of the valid UTF-8 sequence at s[0..len), or 0 if invalid. */
static size_t
utf8_seq(const unsigned char *s, size_t len)
{
	size_t n, i;
	unsigned cp;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xC2 && s[0] <= 0xDF)
		n = 2, cp = s[0] & 0x1F;
	else if (s[0] >= 0xE0 && s[0] <= 0xEF)
		n = 3, cp = s[0] & 0x0F;
	else if (s[0] >= 0xF0 && s[0] <= 0xF4)
		n = 4, cp = s[0] & 0x07;
	else
		return 0;
	if (len < n)
		return 0;
	for (i = 1; i < n; i++) {
		if ((s[i] & 0xC0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3F);
	}
	/* overlong forms, surrogates, beyond U+10FFFF */
	if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
	    (cp >= 0xD800 && cp <= 0xDFFF))
		return 0;
	return n;
}

/* Bytes written as they are: printable ASCII but quote and backslash. */
static const bool json_plain[256] = {
	[0x20 ... 0x21] = true,         /* '"' is 0x22 */
	[0x23 ... 0x5b] = true,         /* '\\' is 0x5c */
	[0x5d ... 0x7f] = true,
};

/* Bytes the JSON form of one byte c < 0x80 takes (the escapes below). */
static size_t
json_cost(unsigned char c)
{
	if (json_plain[c])
		return 1;
	switch (c) {
	case '\b': case '\f': case '\n': case '\r': case '\t': case '"': case '\\':
		return 2;
	default:
		return 6;
	}
}

/*
 * The record is written straight into one growing buffer, in json-c's
 * canonical form for JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE
 * (no spaces; quote, backslash and \b \f \n \r \t escaped by name, other
 * control characters as \u00xx in lower case, everything else as it is), so
 * a record is byte for byte what json-c would print, without building an
 * object and its hash table per record (the fuzz target fuzz_audit_json
 * checks the equality against json-c itself).
 */
struct jbuf {
	char *p;
	size_t len, cap;                /* cap leaves room for the final NUL */
	bool failed;                    /* out of memory: the record is dropped */
};

#define JB_START 1024               /* a typical record is about 500 bytes */

/* Make room for n more bytes; false (and the record failed) when out of memory. */
static bool
jb_grow(struct jbuf *b, size_t n)
{
	char *np;
	size_t cap = b->cap > 0 ? b->cap : JB_START;

	if (b->failed)
		return false;
	while (b->len + n + 1 > cap)
		cap *= 2;
	if ((np = realloc(b->p, cap)) == NULL) {
		b->failed = true;
		return false;
	}
	b->p = np;
	b->cap = cap;
	return true;
}

static inline void
jb_add(struct jbuf *b, const char *s, size_t n)
{
	if (b->len + n + 1 > b->cap && !jb_grow(b, n))
		return;
	memcpy(b->p + b->len, s, n);
	b->len += n;
}

/* A member's key as one literal, with its comma: JB_KEY(b, ",\"event\":"). */
#define JB_KEY(b, lit) jb_add((b), (lit), sizeof(lit) - 1)

/* One byte below 0x80, escaped. */
static void
jb_ascii(struct jbuf *b, unsigned char c)
{
	static const char hex[] = "0123456789abcdef";
	char e[6] = { '\\', 'u', '0', '0', 0, 0 };

	switch (c) {
	case '\b': jb_add(b, "\\b", 2); return;
	case '\f': jb_add(b, "\\f", 2); return;
	case '\n': jb_add(b, "\\n", 2); return;
	case '\r': jb_add(b, "\\r", 2); return;
	case '\t': jb_add(b, "\\t", 2); return;
	case '"': jb_add(b, "\\\"", 2); return;
	case '\\': jb_add(b, "\\\\", 2); return;
	default:
		if (c >= 0x20) {
			jb_add(b, (const char *)&c, 1);
			return;
		}
		e[4] = hex[c >> 4];
		e[5] = hex[c & 0xf];
		jb_add(b, e, 6);
	}
}

/*
 * s[0..len) as a JSON string, made valid UTF-8 (see the top comment) and cut
 * so that its escaped form stays within limit bytes, plus the marker if cut.
 */
static void
jb_string(struct jbuf *b, const char *s, size_t len, size_t limit)
{
	static const char replacement[] = "\xEF\xBF\xBD";
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0, cost = 0, n, c, j, end;
	size_t run = 0;                 /* start of the bytes kept as they are, not yet added */

	if (limit > AUDIT_VALUE_MAX)
		limit = AUDIT_VALUE_MAX;
	jb_add(b, "\"", 1);
	while (i < len) {
		/* The common case first: a run of printable ASCII passes as it
		 * is, one unit of the limit per byte. */
		end = i + (len - i < limit - cost ? len - i : limit - cost);
		for (j = i; j < end && json_plain[p[j]]; j++)
			;
		cost += j - i;
		i = j;
		if (i == len)
			break;
		n = utf8_seq(p + i, len - i);
		c = n == 0 ? 3 : n == 1 ? json_cost(p[i]) : n;
		if (cost + c > limit) {
			jb_add(b, s + run, i - run);
			run = i;
			jb_add(b, AUDIT_TRUNCATED_MARK, sizeof(AUDIT_TRUNCATED_MARK) - 1);
			break;
		}
		cost += c;
		if (n == 0 || (n == 1 && c > 1)) {
			/* a replacement or an escape: the plain run before it goes first */
			jb_add(b, s + run, i - run);
			if (n == 0)
				jb_add(b, replacement, 3);
			else
				jb_ascii(b, p[i]);
			i += 1;
			run = i;
			continue;
		}
		i += n;
	}
	jb_add(b, s + run, i - run);
	jb_add(b, "\"", 1);
}

static void
add_string(struct jbuf *b, const char *value, size_t limit)
{
	if (value == NULL)
		jb_add(b, "null", 4);
	else
		jb_string(b, value, strlen(value), limit);
}

/*
 * The request-target of a refused request, as the client sent it: raw bytes
 * that may hold anything, so the first AUDIT_TARGET_MAX bytes are kept and
 * escaped like every other attacker-supplied string.  A NUL (which would end
 * a C string) is written as U+FFFD, like every byte that starts no valid
 * UTF-8 sequence.
 */
static void
add_target(struct jbuf *b, const char *target, size_t len, size_t limit)
{
	char buf[AUDIT_TARGET_MAX];
	size_t i;

	if (target == NULL) {
		jb_add(b, "null", 4);
		return;
	}
	if (len > AUDIT_TARGET_MAX)
		len = AUDIT_TARGET_MAX;
	for (i = 0; i < len; i++)
		buf[i] = target[i] != '\0' ? target[i] : (char)0xff;
	jb_string(b, buf, len, limit);
}

static void
add_int(struct jbuf *b, int64_t value)
{
	char num[FMT_U64_MAX];

	if (value < 0) {
		jb_add(b, "null", 4);
		return;
	}
	jb_add(b, num, fmt_u64(num, (uint64_t)value));
}

static void
add_bool(struct jbuf *b, enum audit_bool v)
{
	if (v == AUDIT_BOOL_NULL)
		jb_add(b, "null", 4);
	else if (v == AUDIT_BOOL_TRUE)
		jb_add(b, "true", 4);
	else
		jb_add(b, "false", 5);
}

/*
 * "YYYY-MM-DDTHH:MM:SS.mmmZ" (UTC) into buf[TS_LEN + 1].  The calendar part
 * is worked out once per second per thread: records come many per second.
 */
#define TS_LEN 24

static __thread int64_t ts_cached_sec = -1;
static __thread char ts_cached[TS_LEN + 1];

static void
format_ts(int64_t end_ms, char *buf)
{
	struct timespec ts;
	struct tm tm;
	time_t sec;

	if (end_ms <= 0) {
		clock_gettime(CLOCK_REALTIME, &ts);
		end_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	}
	if (end_ms / 1000 != ts_cached_sec) {
		sec = (time_t)(end_ms / 1000);
		gmtime_r(&sec, &tm);
		fmt_dec_fixed(ts_cached, (unsigned)(tm.tm_year + 1900) % 10000, 4);
		ts_cached[4] = '-';
		fmt_dec_fixed(ts_cached + 5, (unsigned)tm.tm_mon + 1, 2);
		ts_cached[7] = '-';
		fmt_dec_fixed(ts_cached + 8, (unsigned)tm.tm_mday, 2);
		ts_cached[10] = 'T';
		fmt_dec_fixed(ts_cached + 11, (unsigned)tm.tm_hour, 2);
		ts_cached[13] = ':';
		fmt_dec_fixed(ts_cached + 14, (unsigned)tm.tm_min, 2);
		ts_cached[16] = ':';
		fmt_dec_fixed(ts_cached + 17, (unsigned)tm.tm_sec, 2);
		ts_cached[19] = '.';
		ts_cached[23] = 'Z';
		ts_cached[TS_LEN] = '\0';
		ts_cached_sec = end_ms / 1000;
	}
	memcpy(buf, ts_cached, TS_LEN + 1);
	fmt_dec_fixed(buf + 20, (unsigned)(end_ms % 1000), 3);
}

char *
audit_encode_limit(const struct audit_event *ev, size_t limit)
{
	struct jbuf b = { NULL, 0, 0, false };
	char ts[TS_LEN + 1];

	format_ts(ev->end_ms, ts);
	JB_KEY(&b, "{\"ts\":");
	add_string(&b, ts, limit);
	JB_KEY(&b, ",\"event\":");
	add_string(&b, ev->event, limit);
	JB_KEY(&b, ",\"id\":");
	add_string(&b, ev->id, limit);
	JB_KEY(&b, ",\"client_ip\":");
	add_string(&b, ev->client_ip, limit);
	JB_KEY(&b, ",\"client_port\":");
	add_int(&b, ev->client_port);
	JB_KEY(&b, ",\"user\":");
	add_string(&b, ev->user, limit);
	JB_KEY(&b, ",\"method\":");
	add_string(&b, ev->method, limit);
	JB_KEY(&b, ",\"host\":");
	add_string(&b, ev->host, limit);
	JB_KEY(&b, ",\"port\":");
	add_int(&b, ev->port);
	JB_KEY(&b, ",\"url\":");
	add_string(&b, ev->url, limit);
	JB_KEY(&b, ",\"dst_ip\":");
	add_string(&b, ev->dst_ip, limit);
	JB_KEY(&b, ",\"sni\":");
	add_string(&b, ev->sni, limit);
	JB_KEY(&b, ",\"decision\":");
	add_string(&b, ev->decision, limit);
	JB_KEY(&b, ",\"reason\":");
	add_string(&b, ev->reason, limit);
	JB_KEY(&b, ",\"rule\":");
	add_string(&b, ev->rule, limit);
	JB_KEY(&b, ",\"status\":");
	add_int(&b, ev->status);
	JB_KEY(&b, ",\"bytes_up\":");
	add_int(&b, ev->bytes_up);
	JB_KEY(&b, ",\"bytes_down\":");
	add_int(&b, ev->bytes_down);
	JB_KEY(&b, ",\"duration_ms\":");
	add_int(&b, ev->duration_ms);
	JB_KEY(&b, ",\"close\":");
	add_string(&b, ev->close, limit);
	JB_KEY(&b, ",\"target\":");
	add_target(&b, ev->target, ev->target_len, limit);
	JB_KEY(&b, ",\"report\":");
	add_string(&b, ev->report, limit);
	JB_KEY(&b, ",\"client_tls\":");
	add_bool(&b, ev->client_tls);
	if (ev->lost >= 0) {
		JB_KEY(&b, ",\"lost\":");
		add_int(&b, ev->lost);
	}
	if (ev->message != NULL) {
		JB_KEY(&b, ",\"message\":");
		add_string(&b, ev->message, limit);
	}
	jb_add(&b, "}", 1);
	if (b.failed) {
		free(b.p);
		return NULL;
	}
	b.p[b.len] = '\0';              /* jb_add always leaves room for it */
	return b.p;
}

char *
audit_encode(const struct audit_event *ev)
{
	size_t limit;
	char *out;

	/* Almost every record fits at the first try; halving converges fast. */
	for (limit = AUDIT_VALUE_MAX;; limit /= 2) {
		if ((out = audit_encode_limit(ev, limit)) == NULL)
			return NULL;
		if (strlen(out) <= AUDIT_RECORD_MAX || limit <= AUDIT_VALUE_MIN)
			break;
		free(out);
	}
	assert(strlen(out) <= AUDIT_RECORD_MAX && "AUDIT_VALUE_MIN leaves room for every field");
	return out;
}
