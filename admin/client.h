/*
 * client — egressctl's commands that talk to the running daemon over its
 * admin socket (status, tunnels, reload).  Speaks the socket's line protocol
 * only (see gateway/control.h for its description); never links the gateway.
 */
#ifndef EGRESSD_ADMIN_CLIENT_H
#define EGRESSD_ADMIN_CLIENT_H

#include <stdbool.h>

/* Each returns the process exit status. */
int admin_status(const char *conf, int argc, char **argv, bool json);
int admin_tunnels(const char *conf, int argc, char **argv, bool json);
int admin_reload(const char *conf, int argc, char **argv, bool json);

#endif
