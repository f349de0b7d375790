/*
 * gateway — state shared by the whole daemon: the configuration, the listening
 * addresses (a connection to one of them would loop), the open-connection count
 * that enforces max_connections, and the shutdown flag.  Written by main.c
 * before the workers start; afterwards only the atomics change.
 */
#ifndef EGRESSD_GATEWAY_GATEWAY_H
#define EGRESSD_GATEWAY_GATEWAY_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

struct auth;
struct config;
struct tls;

struct gateway {
	const struct config *conf;      /* the configuration in force */
	struct auth *auth;              /* the authenticator, NULL under "auth none" */
	struct tls *tls;                /* the tls listeners' pair, NULL if there is none */
	atomic_int open_conns;          /* client connections open, all workers */
	atomic_uint_fast64_t next_conn_id; /* source of connection ids */
	uint64_t id_base;               /* random per run, mixed into ids */
	atomic_bool shutting_down;      /* SIGTERM received */
};

#endif
