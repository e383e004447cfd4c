/* cli.h: the subcommands of the inboxd executable. Each returns the process exit
 * status and owns everything it starts. */
#ifndef INBOXD_CLI_H
#define INBOXD_CLI_H

/* inboxd parse [FILE...]: print each message's JSON document on one line. */
int cmd_parse(int argc, char **argv);

/* inboxd serve [flags]: run the server until SIGTERM/SIGINT. */
int cmd_serve(int argc, char **argv);

/* inboxd ingest [--db PATH] [FILE]: store one message; 0, 65 or 75 (EX_TEMPFAIL). */
int cmd_ingest(int argc, char **argv);

#endif
