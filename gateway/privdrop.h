/*
 * privdrop — least privilege for the daemon: who it becomes, and when.
 *
 * Started as root with `user`, egressd binds its listeners, creates the
 * admin socket and reads its secrets as root, then switches to the user
 * for good: supplementary groups, group, user (real, effective and saved),
 * no capability left in any thread, and a check that root cannot be
 * regained.  Started as another user, `user` must name that user (or be
 * absent) and whatever capabilities it was given (systemd's
 * AmbientCapabilities=CAP_NET_BIND_SERVICE) are shed once it has bound.
 *
 * The calls, in main's order:
 *
 *   privdrop_harden()        first of all: no new privileges through exec,
 *                            no core dump and no ptrace by the user while
 *                            secrets are in memory (the whole run)
 *   privdrop_prepare()       resolve user/group, check the current-user rule
 *   ...bind listeners, create the admin socket...
 *   privdrop_after_bind()    the admin socket to the user; if no switch is
 *                            due, shed the capabilities now, before any
 *                            thread exists to inherit them
 *   ...read secrets (auth), start the audit and auth threads...
 *   privdrop_after_secrets() switch (root case; glibc applies set*id to
 *                            every thread), then verify every thread
 *
 * Errors are one line (malloc'd *err); main makes them fatal.
 */
#ifndef EGRESSD_GATEWAY_PRIVDROP_H
#define EGRESSD_GATEWAY_PRIVDROP_H

#include <stdbool.h>
#include <sys/types.h>

struct config;
struct privdrop;

/* PR_SET_NO_NEW_PRIVS, PR_SET_DUMPABLE 0, RLIMIT_CORE 0.  -1 with *err. */
int privdrop_harden(char **err);

/*
 * Resolve conf->user and conf->group and decide what will happen.  Fails
 * when the user or group does not exist, or when started as someone other
 * than root and `user` names another user.  Logs the warning for root
 * without `user`.
 */
struct privdrop *privdrop_prepare(const struct config *conf, char **err);
void privdrop_free(struct privdrop *);

/* Will the process switch to another user at privdrop_after_secrets()? */
bool privdrop_switches(const struct privdrop *);
/* The uid the daemon serves as (whoever runs it when no switch is due). */
uid_t privdrop_uid(const struct privdrop *);

/*
 * Binding is done: give the admin socket (path, NULL if none) to the user
 * and its group, so that the daemon can still remove it at exit; without a
 * switch ahead, shed every capability now.
 */
int privdrop_after_bind(struct privdrop *, const char *admin_socket, char **err);

/*
 * Secrets are read: switch for good and verify, in every thread of the
 * process, that no uid, gid or capability of root is left and that
 * setuid(0) fails.
 */
int privdrop_after_secrets(struct privdrop *, char **err);

#endif
