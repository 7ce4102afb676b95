/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * nodectl.h: the operator's console, shared by its command files.
 *
 * nodectl is one table of commands (main.c). A command is a row: its name,
 * its synopsis, a one-line summary, the body of its man page, and the
 * function that runs it (or a table of subcommands, as for "cert"). Adding a
 * command is one file with its run function and one row in that table;
 * the top-level --help, "nodectl help CMD" and "nodectl CMD --help" are
 * generated from the rows, so they never drift from the code.
 *
 * Exit codes (every command): CTL_EXIT_OK success, CTL_EXIT_FAIL the
 * operation failed, CTL_EXIT_USAGE bad usage. Errors are one line on stderr
 * saying what went wrong and what to do; with --json, results are one JSON
 * document on stdout.
 */
#ifndef NODECTL_H
#define NODECTL_H

#include <stdbool.h>
#include <stdio.h>

#include "rt_json.h"

enum {
    CTL_EXIT_OK = 0,    /* success */
    CTL_EXIT_FAIL = 1,  /* the operation failed */
    CTL_EXIT_USAGE = 2, /* bad usage */
};

typedef struct ctl_cmd ctl_cmd_t;

/* What every command sees: the global options. */
typedef struct ctl {
    const char *conf;      /* --conf FILE, else $NODECTL_CONF, else NULL */
    bool json;             /* --json: one JSON document on stdout */
    double timeout_s;      /* --timeout before the command: I/O timeout; 0: the file's */
    const ctl_cmd_t *cmd;  /* the command being run (for messages and help) */
    char path[64];         /* its full name, "cert issue" */
} ctl_t;

/* One row of a command table. Tables end with a row whose name is NULL. */
struct ctl_cmd {
    const char *name;     /* "init", "issue" */
    const char *args;     /* synopsis after the name: "DIR [--force]" */
    const char *summary;  /* one line for the COMMANDS list */
    const char *help;     /* man page body (DESCRIPTION and OPTIONS), or NULL */
    int (*run)(ctl_t *ctl, int argc, char **argv); /* argv[0] is the name */
    const ctl_cmd_t *sub; /* subcommands instead of run, or NULL */
};

/* ---- the commands (one file each, rows in main.c) ----------------------- */

extern const ctl_cmd_t ctl_cert_cmds[]; /* cmd_cert.c: cert issue|show|verify */
int ctl_cmd_init(ctl_t *ctl, int argc, char **argv); /* cmd_cert.c */
int ctl_cmd_status(ctl_t *ctl, int argc, char **argv); /* cmd_status.c */
int ctl_cmd_pairs(ctl_t *ctl, int argc, char **argv);  /* cmd_status.c */
extern const ctl_cmd_t ctl_pair_cmds[];                 /* cmd_status.c: pair show */
int ctl_cmd_wait(ctl_t *ctl, int argc, char **argv);   /* cmd_status.c */
int ctl_cmd_trace(ctl_t *ctl, int argc, char **argv);  /* cmd_trace.c */
int ctl_cmd_call(ctl_t *ctl, int argc, char **argv);   /* cmd_call.c */
int ctl_cmd_restore(ctl_t *ctl, int argc, char **argv); /* cmd_restore.c */
extern const char ctl_status_help[], ctl_pairs_help[], ctl_wait_help[], ctl_trace_help[],
    ctl_call_help[], ctl_restore_help[];

/* ---- the management client (mgmt_client.c) ------------------------------- */

/* A blocking session with a node's management endpoint (nodes/mgmt), as
 * named by the console file: [console] endpoint (or a node file's [listen]
 * mgmt) and [tls] ca, cert, key. Every wait is bounded by the I/O timeout
 * (ctl->timeout_s, else [console] timeout, else 10 s). */
typedef struct ctl_conn ctl_conn_t;

/* One answer. On CTL_EXIT_OK, text holds the node's JSON document and doc
 * its tokens (root = token 0); otherwise error holds one line. */
typedef struct ctl_resp {
    int code;             /* CTL_EXIT_* */
    bool transport;       /* the session failed (the node did not answer) */
    char error[512];      /* what failed, one line, when code != 0 */
    char *text;           /* the document, NUL-terminated; owned */
    size_t len;
    rt_json_doc_t doc;
    rt_json_tok_t *tok;   /* owned */
} ctl_resp_t;

/*! ctl_connect() : read the console file, connect, TLS 1.3 handshake, Hello
 *  exchange. @return the session, or NULL with *@rc (CTL_EXIT_USAGE for a
 *  missing or bad console file, else CTL_EXIT_FAIL) and one line in @err. */
ctl_conn_t *ctl_connect(const ctl_t *ctl, int *rc, char *err, size_t errlen);
/*! ctl_open() : ctl_connect() that prints the error line itself. */
ctl_conn_t *ctl_open(const ctl_t *ctl, int *rc);
void ctl_disconnect(ctl_conn_t *c); /* NULL is a no-op */
const char *ctl_conn_node(const ctl_conn_t *c); /* the node's name, from its Hello */
const char *ctl_conn_addr(const ctl_conn_t *c); /* the endpoint, IP:PORT */
bool ctl_conn_broken(const ctl_conn_t *c);      /* a call failed in transport */
/*! ctl_call() : send command @cmd with @nargs arguments and wait for its
 *  answer into @r (free it with ctl_resp_free). @return r->code: CTL_EXIT_OK,
 *  or the node's code with its error line, or CTL_EXIT_FAIL with
 *  r->transport set when the session broke (the connection is then unusable). */
int ctl_call(ctl_conn_t *c, const char *cmd, unsigned nargs, const char *const *args,
             ctl_resp_t *r);
void ctl_resp_free(ctl_resp_t *r);
/*! ctl_report() : print @r's error line the way nodectl does (transport
 *  errors without the command name). @return the exit code for it. */
int ctl_report(const ctl_t *ctl, const ctl_resp_t *r);

/* ---- helpers (util.c) ---------------------------------------------------- */

/*! ctl_usage() : print "nodectl: CMD: MESSAGE (usage: ...; see nodectl CMD
 *  --help)" on one line of stderr. @return CTL_EXIT_USAGE */
int ctl_usage(const ctl_t *ctl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/*! ctl_fail() : print "nodectl: CMD: MESSAGE" on one line of stderr.
 *  @return CTL_EXIT_FAIL */
int ctl_fail(const ctl_t *ctl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/*! ctl_help() : the man page of the current command on stdout. @return 0 */
int ctl_help(const ctl_t *ctl);

/* Options shared by every command, for getopt_long(). */
#define CTL_OPT_HELP 'h'
#define CTL_OPT_JSON 0x100
#define CTL_COMMON_LONGOPTS {"help", 0, NULL, CTL_OPT_HELP}, {"json", 0, NULL, CTL_OPT_JSON}

/*! ctl_getopt() : getopt_long() over a command's argv (which starts at its
 *  name), handling --help (prints the page; returns -2), --json, unknown
 *  options and missing arguments (usage line; returns -3). Reset with
 *  *@first = true before the first call. Otherwise as getopt_long(). */
struct option;
int ctl_getopt(ctl_t *ctl, int argc, char **argv, const char *shortopts,
               const struct option *longopts, bool *first);
#define CTL_GETOPT_HELP  (-2)
#define CTL_GETOPT_USAGE (-3)

/*! ctl_parse_uint() : a decimal in [@min, @max]. @return false if bad. */
bool ctl_parse_uint(const char *s, unsigned min, unsigned max, unsigned *out);

/*! ctl_json_str() : @s as a JSON string (quoted and escaped) on @f. */
void ctl_json_str(FILE *f, const char *s);
/*! ctl_iso_time() : seconds since the epoch as "YYYY-MM-DDTHH:MM:SSZ". */
const char *ctl_iso_time(long long t, char *buf, size_t len);

/* The EXIT STATUS and ENVIRONMENT sections shared by every page. */
extern const char ctl_exit_status_text[];
extern const char ctl_environment_text[];

#endif /* NODECTL_H */
