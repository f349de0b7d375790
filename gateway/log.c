/*
 * log — the daemon's operational log on stderr, in the OpenBSD log.c shape:
 *
 *	2026-11-24T10:00:00.123Z warn: listen 127.0.0.1:3128: Address already in use
 *
 * One line per event: an RFC 3339 UTC timestamp with milliseconds, the level,
 * the message.  The difficulty is threads: each line is
 * formatted into a stack buffer and written with a single write(2), so lines
 * from different workers never interleave within a line, and no lock or stdio
 * buffer is involved.  A line longer than the buffer is cut and marked with
 * "...".  errno is saved on entry and restored on exit, so a caller can log
 * and then still look at errno.  Only log_warn and fatal append strerror.
 */
#include "gateway/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define LOG_LINE_MAX 4096

static enum log_level log_max = LOG_LEVEL_INFO;

static void vlog(enum log_level, const char *, int, const char *, va_list)
    __attribute__((format(printf, 4, 0)));

void
log_init(enum log_level max_level)
{
	log_max = max_level;
}

/*
 * Format "TS label: message[: strerror(err)]\n" and write it in one call.
 * err < 0 means "no strerror".
 */
static void
vlog(enum log_level level, const char *label, int err, const char *fmt, va_list ap)
{
	char line[LOG_LINE_MAX], ebuf[128];
	const char *es;
	struct timespec ts;
	struct tm tm;
	size_t len = 0, room;
	ssize_t n;
	int r;

	if (level > log_max)
		return;
	if (clock_gettime(CLOCK_REALTIME, &ts) == -1 || gmtime_r(&ts.tv_sec, &tm) == NULL) {
		memset(&tm, 0, sizeof(tm));
		ts.tv_nsec = 0;
	}
	r = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s: ",
	    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
	    ts.tv_nsec / 1000000, label);
	if (r > 0)
		len = (size_t)r;
	/* Keep room for "...\n" at the end of a cut line. */
	room = sizeof(line) - 4;
	if (len < room) {
		r = vsnprintf(line + len, room - len, fmt, ap);
		if (r > 0)
			len += (size_t)r;
	}
	if (err >= 0 && len < room) {
		es = strerror_r(err, ebuf, sizeof(ebuf));
		r = snprintf(line + len, room - len, ": %s", es);
		if (r > 0)
			len += (size_t)r;
	}
	if (len >= room) {
		len = room - 1;
		memcpy(line + len, "...", 3);
		len += 3;
	}
	line[len++] = '\n';
	do
		n = write(STDERR_FILENO, line, len);
	while (n == -1 && errno == EINTR);
}

void
log_warn(const char *fmt, ...)
{
	va_list ap;
	int saved = errno;

	va_start(ap, fmt);
	vlog(LOG_LEVEL_WARN, "warn", saved, fmt, ap);
	va_end(ap);
	errno = saved;
}

void
log_warnx(const char *fmt, ...)
{
	va_list ap;
	int saved = errno;

	va_start(ap, fmt);
	vlog(LOG_LEVEL_WARN, "warn", -1, fmt, ap);
	va_end(ap);
	errno = saved;
}

void
log_info(const char *fmt, ...)
{
	va_list ap;
	int saved = errno;

	va_start(ap, fmt);
	vlog(LOG_LEVEL_INFO, "info", -1, fmt, ap);
	va_end(ap);
	errno = saved;
}

void
log_debug(const char *fmt, ...)
{
	va_list ap;
	int saved = errno;

	va_start(ap, fmt);
	vlog(LOG_LEVEL_DEBUG, "debug", -1, fmt, ap);
	va_end(ap);
	errno = saved;
}

/* fatal and fatalx always print, whatever the level, and exit 1. */
void
fatal(const char *fmt, ...)
{
	va_list ap;
	int saved = errno;

	va_start(ap, fmt);
	vlog(LOG_LEVEL_ERROR, "fatal", saved, fmt, ap);
	va_end(ap);
	exit(1);
}

void
fatalx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(LOG_LEVEL_ERROR, "fatal", -1, fmt, ap);
	va_end(ap);
	exit(1);
}

char *
log_escape(const char *in, size_t len, char *out, size_t outsz)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char c;
	size_t i, o = 0;

	if (outsz == 0)
		return out;
	for (i = 0; i < len; i++) {
		c = (unsigned char)in[i];
		if (c >= 0x20 && c < 0x7f && c != '\\' && c != '"') {
			if (o + 1 >= outsz)
				break;
			out[o++] = (char)c;
		} else {
			/* Never cut an escape in half: all four bytes or none. */
			if (o + 4 >= outsz)
				break;
			out[o++] = '\\';
			out[o++] = 'x';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 0xf];
		}
	}
	out[o] = '\0';
	return out;
}

bool
log_rate_allow(struct log_rate *r, int64_t interval_ms, uint64_t *quiet)
{
	struct timespec ts;
	int64_t now, next;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	now = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	next = atomic_load(&r->next_ms);
	/* One thread wins the interval; the others count themselves quiet. */
	if (now < next || !atomic_compare_exchange_strong(&r->next_ms, &next,
	    now + interval_ms)) {
		atomic_fetch_add(&r->quiet, 1);
		return false;
	}
	*quiet = atomic_exchange(&r->quiet, 0);
	return true;
}
