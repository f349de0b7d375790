/*
 * test_audit_unread — the possibly-lost count of the datagram path is exact:
 * the truesize arithmetic matches what the kernel charges (SIOCOUTQ) for any
 * mix of lengths, a sample proves read exactly what the reader took, and
 * when the reader is gone everything not proven read is counted.
 */
#include "audit/unread.h"

#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

static char buf[8000];

/* A connected datagram pair: sv[0] sends, sv[1] is the reader. */
static void
pair(int sv[2])
{
	int big = 4 << 20;

	assert_int_equal(socketpair(AF_UNIX, SOCK_DGRAM, 0, sv), 0);
	setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
}

static void
test_truesize_matches_the_kernel(void **state)
{
	static const size_t lens[] = { 1, 100, 311, 512, 777, 1500, 4000, 7999 };
	struct unread *u = unread_new();
	uint64_t want = 0;
	int sv[2], outq = -1;
	size_t i;

	assert_non_null(u);
	pair(sv);
	for (i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		assert_int_equal(send(sv[0], buf, lens[i], 0), (ssize_t)lens[i]);
		want += unread_truesize(u, lens[i]);
	}
	assert_int_equal(ioctl(sv[0], SIOCOUTQ, &outq), 0);
	assert_int_equal((uint64_t)outq, want);
	close(sv[0]);
	close(sv[1]);
	unread_free(u);
}

static void
test_sample_proves_what_was_read(void **state)
{
	struct unread *u = unread_new();
	char rd[8000];
	int sv[2], i;

	assert_non_null(u);
	pair(sv);
	unread_connected(u, sv[0]);
	assert_true(unread_has_diag(u));
	for (i = 0; i < 8; i++) {
		assert_int_equal(send(sv[0], buf, 200 + 300 * i, 0), 200 + 300 * i);
		unread_sent(u, 200 + 300 * i);
	}
	unread_sample(u, sv[0]);
	assert_int_equal(unread_pending(u), 8);         /* nothing read yet */
	for (i = 0; i < 5; i++)
		assert_true(recv(sv[1], rd, sizeof(rd), 0) > 0);
	unread_sample(u, sv[0]);
	assert_int_equal(unread_pending(u), 3);         /* exactly the 3 unread */
	/* The reader goes: its queue is freed (SIOCOUTQ reads 0), and a sample
	 * taken now must not count that as "read". */
	close(sv[1]);
	unread_sample(u, sv[0]);
	assert_int_equal(unread_pending(u), 3);
	assert_int_equal(unread_gone(u), 3);
	assert_int_equal(unread_pending(u), 0);
	close(sv[0]);
	unread_free(u);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_truesize_matches_the_kernel),
		cmocka_unit_test(test_sample_proves_what_was_read),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
