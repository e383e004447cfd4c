/* main.c: the inboxd executable dispatches to its subcommands (cli.h). */
#include <curl/curl.h>
#ifdef INBOXD_HAVE_MIMALLOC
#include <mimalloc.h>
#endif
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "faultvfs.h"
#include "mime.h"

static const char usage[] = "usage: inboxd <command> [flags]\n"
                            "\n"
                            "commands:\n"
                            "  serve    run the HTTP server (inboxd serve --help)\n"
                            "  parse    print the normalized JSON of raw messages, no database\n"
                            "  ingest   store one raw message from a file or stdin (Postfix pipe)\n"
                            "\n"
                            "  inboxd --version | --help\n";

int
main(int argc, char **argv)
{
  if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
    fputs(usage, argc < 2 ? stderr : stdout);
    return argc < 2 ? 64 : 0;
  }
  if (strcmp(argv[1], "--version") == 0) {
    printf("inboxd %s\n", INBOXD_VERSION);
#ifdef INBOXD_HAVE_MIMALLOC
    int v = mi_version();
    printf("allocator: mimalloc %d.%d.%d\n", v / 100, v / 10 % 10, v % 10);
#else
    printf("allocator: libc malloc\n");
#endif
    return 0;
  }
  int rc;
  if (faultvfs_install() != 0) {
    fprintf(stderr, "inboxd: cannot install the fault-injection VFS\n");
    return 70;
  }
  curl_global_init(CURL_GLOBAL_DEFAULT);
  mime_init();
  if (strcmp(argv[1], "parse") == 0) {
    rc = cmd_parse(argc - 1, argv + 1);
  } else if (strcmp(argv[1], "serve") == 0) {
    rc = cmd_serve(argc - 1, argv + 1);
  } else if (strcmp(argv[1], "ingest") == 0) {
    rc = cmd_ingest(argc - 1, argv + 1);
  } else {
    fprintf(stderr, "inboxd: unknown command \"%s\"\n%s", argv[1], usage);
    rc = 64;
  }
  mime_shutdown();
  curl_global_cleanup();
  return rc;
}
