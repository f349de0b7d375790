/*
 * log — the daemon's operational log: one line per event on stderr, with a
 * level, in the OpenBSD log.c shape.  log_warn appends strerror(errno); the
 * others do not; every function preserves errno.  Lines are written whole with
 * one write(2) so threads never interleave within a line.  Callers escape
 * untrusted strings (log_escape) and never pass a credential.
 */
#ifndef EGRESSD_GATEWAY_LOG_H
#define EGRESSD_GATEWAY_LOG_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum log_level { LOG_LEVEL_ERROR, LOG_LEVEL_WARN, LOG_LEVEL_INFO, LOG_LEVEL_DEBUG };

void log_init(enum log_level max_level);
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
void fatalx(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/*
 * Copy in[0..len) into out (NUL-terminated, truncated to outsz) with every byte
 * outside printable ASCII, and '\\' and '"', written as \xNN.  Returns out.
 */
/*
 * A condition that can repeat thousands of times a second (accept() out of
 * descriptors) is logged at most once per interval: log_rate_allow says
 * whether to log now and how many occurrences were kept quiet since the last
 * line.  Any thread; zero-initialize the struct.
 */
struct log_rate {
	_Atomic int64_t next_ms;        /* monotonic time the next line may be written */
	_Atomic uint64_t quiet;         /* occurrences not logged since the last line */
};

bool log_rate_allow(struct log_rate *, int64_t interval_ms, uint64_t *quiet);

char *log_escape(const char *in, size_t len, char *out, size_t outsz);

#endif
