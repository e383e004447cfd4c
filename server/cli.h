/* cli.h: the subcommands of the inboxd executable. Each returns the process exit
 * status and owns everything it starts. */
#ifndef INBOXD_CLI_H
#define INBOXD_CLI_H

/* inboxd parse [FILE...]: print each message's JSON document on one line. */
int cmd_parse(int argc, char **argv);

#endif
