/* check.h: the few assertions the C unit tests need. A failed check prints where and
 * what, counts the failure, and the test continues; main returns check_done(). */
#ifndef INBOXD_CHECK_H
#define INBOXD_CHECK_H

#include <glib.h>
#include <glib/gstdio.h>
#include <stdio.h>
#include <string.h>

static int check_failures;
static int check_count;

#define CHECK(cond)                                                                      \
  do {                                                                                   \
    check_count++;                                                                       \
    if (!(cond)) {                                                                       \
      check_failures++;                                                                  \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);           \
    }                                                                                    \
  } while (0)

#define CHECK_STR(got, want)                                                             \
  do {                                                                                   \
    const char *g_ = (got), *w_ = (want);                                                \
    check_count++;                                                                       \
    if ((g_ == NULL) != (w_ == NULL) || (g_ && strcmp(g_, w_) != 0)) {                   \
      check_failures++;                                                                  \
      fprintf(stderr, "%s:%d: %s\n  got:  %s%s%s\n  want: %s%s%s\n", __FILE__, __LINE__, \
              #got, g_ ? "\"" : "", g_ ? g_ : "NULL", g_ ? "\"" : "", w_ ? "\"" : "",    \
              w_ ? w_ : "NULL", w_ ? "\"" : "");                                         \
    }                                                                                    \
  } while (0)

#define CHECK_INT(got, want)                                                             \
  do {                                                                                   \
    long long g_ = (long long)(got), w_ = (long long)(want);                             \
    check_count++;                                                                       \
    if (g_ != w_) {                                                                      \
      check_failures++;                                                                  \
      fprintf(stderr, "%s:%d: %s = %lld, want %lld\n", __FILE__, __LINE__, #got, g_, w_); \
    }                                                                                    \
  } while (0)

/* Remove DIR (a g_dir_make_tmp directory of plain files) when every check passed, so a
 * failed run leaves its files to look at; frees DIR either way. */
static inline void
check_remove_dir(char *dir)
{
  if (check_failures == 0) {
    GDir *d = g_dir_open(dir, 0, NULL);
    const char *name;
    while (d && (name = g_dir_read_name(d))) {
      char *p = g_build_filename(dir, name, NULL);
      g_unlink(p);
      g_free(p);
    }
    if (d)
      g_dir_close(d);
    g_rmdir(dir);
  }
  g_free(dir);
}

static inline int
check_done(void)
{
  fprintf(stderr, "%d checks, %d failed\n", check_count, check_failures);
  return check_failures ? 1 : 0;
}

#endif
