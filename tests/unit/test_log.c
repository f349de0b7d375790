/*
 * test_log — log_escape (what makes attacker bytes safe in a log line) and
 * the shape of one log line on stderr.
 */
#include "gateway/log.h"

#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

static void
test_escape_plain(void **state)
{
	char out[64];

	assert_string_equal(log_escape("hello world", 11, out, sizeof(out)), "hello world");
	assert_string_equal(log_escape("", 0, out, sizeof(out)), "");
	assert_string_equal(log_escape("abc", 2, out, sizeof(out)), "ab");
}

static void
test_escape_specials(void **state)
{
	char out[128];

	assert_string_equal(log_escape("a\"b\\c", 5, out, sizeof(out)), "a\\x22b\\x5cc");
	assert_string_equal(log_escape("x\r\ny\tz", 6, out, sizeof(out)), "x\\x0d\\x0ay\\x09z");
	assert_string_equal(log_escape("\x7f\x80\xff", 3, out, sizeof(out)), "\\x7f\\x80\\xff");
	assert_string_equal(log_escape("a\0b", 3, out, sizeof(out)), "a\\x00b");
	assert_string_equal(log_escape("\x1b[31m", 5, out, sizeof(out)), "\\x1b[31m");
	assert_string_equal(log_escape(" ~", 2, out, sizeof(out)), " ~");
}

static void
test_escape_truncation(void **state)
{
	char out[8];

	/* 7 bytes of room: plain bytes fill it. */
	assert_string_equal(log_escape("abcdefghij", 10, out, sizeof(out)), "abcdefg");
	/* An escape is never cut in half. */
	assert_string_equal(log_escape("abcde\n", 6, out, sizeof(out)), "abcde");
	assert_string_equal(log_escape("abc\n", 4, out, sizeof(out)), "abc\\x0a");
	assert_string_equal(log_escape("\n\n", 2, out, 5), "\\x0a");
	assert_string_equal(log_escape("abc", 3, out, 1), "");
	out[0] = 'q';
	assert_ptr_equal(log_escape("abc", 3, out, 0), out);
	assert_int_equal(out[0], 'q');
}

/* Run fn with stderr redirected to a file; return what it wrote. */
static char *
capture(void (*fn)(void))
{
	char path[] = "/tmp/test_log.XXXXXX";
	static char buf[8192];
	int fd, saved;
	ssize_t n;

	assert_true((fd = mkstemp(path)) != -1);
	unlink(path);
	saved = dup(STDERR_FILENO);
	dup2(fd, STDERR_FILENO);
	fn();
	dup2(saved, STDERR_FILENO);
	close(saved);
	lseek(fd, 0, SEEK_SET);
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	buf[n > 0 ? n : 0] = '\0';
	return buf;
}

static void
emit_lines(void)
{
	log_init(LOG_LEVEL_INFO);
	errno = ENOENT;
	log_warn("open %s", "x.conf");
	assert_int_equal(errno, ENOENT);
	log_warnx("plain %d", 7);
	assert_int_equal(errno, ENOENT);
	log_info("info line");
	log_debug("not shown");
	assert_int_equal(errno, ENOENT);
}

static void
test_line_shape(void **state)
{
	char *out = capture(emit_lines);
	char *l2, *l3;

	/* 2026-11-24T10:00:00.123Z warn: ... */
	assert_true(strlen(out) > 25);
	assert_int_equal(out[4], '-');
	assert_int_equal(out[10], 'T');
	assert_int_equal(out[19], '.');
	assert_int_equal(out[23], 'Z');
	assert_int_equal(out[24], ' ');
	assert_true(strncmp(out + 25, "warn: open x.conf: No such file or directory\n", 45) == 0);
	assert_non_null(l2 = strchr(out, '\n'));
	l2++;
	assert_true(strncmp(l2 + 25, "warn: plain 7\n", 14) == 0);
	assert_non_null(l3 = strchr(l2, '\n'));
	l3++;
	assert_true(strncmp(l3 + 25, "info: info line\n", 16) == 0);
	assert_null(strstr(out, "not shown"));
}

static void
emit_long(void)
{
	char big[6000];

	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	log_info("%s", big);
}

static void
test_long_line_cut(void **state)
{
	char *out = capture(emit_long);
	size_t len = strlen(out);

	assert_true(len <= 4096);
	assert_string_equal(out + len - 4, "...\n");
	assert_null(memchr(out, '\n', len - 1));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_escape_plain),
		cmocka_unit_test(test_escape_specials),
		cmocka_unit_test(test_escape_truncation),
		cmocka_unit_test(test_line_shape),
		cmocka_unit_test(test_long_line_cut),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
