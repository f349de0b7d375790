"""Each test sees only its own audit records.

The tests of a module share one gateway (and sometimes one rsyslogd), and they
pick their records by client_port. The kernel hands a client port out again
once it is free, so a later test may meet an earlier test's record from its
own port. Every audit source registers here; conftest asks each one that an
earlier test used to hide what it has seen so far (forget_audit) when a test
begins. A source made for this test, or for the first test of a module,
hides nothing: records written while it started stay visible."""

import weakref

# Audit sources not yet cleaned up: objects with forget_audit() and the
# served_a_test flag.
SOURCES = weakref.WeakSet()


def test_begins():
    for source in list(SOURCES):
        if source.served_a_test:
            source.forget_audit()


def test_ends():
    for source in list(SOURCES):
        source.served_a_test = True
