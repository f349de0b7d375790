/*
 * check — egressctl's offline commands: validate a configuration and its
 * policy, and explain the decision for one request.  Links policy/ and the
 * pure configuration parser only; never talks to the daemon.
 */
#ifndef EGRESSD_ADMIN_CHECK_H
#define EGRESSD_ADMIN_CHECK_H

#include <stdbool.h>

/* Each returns the process exit status. */
int admin_check(const char *conf, int argc, char **argv, bool json);
int admin_explain(const char *conf, int argc, char **argv, bool json);

struct policy;
/* "FILE: ok (N rules)", with ", M list entries in K lists" when there are lists. */
void admin_print_ok(const char *path, const struct policy *);

#endif
