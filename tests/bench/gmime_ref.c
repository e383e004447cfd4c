/* gmime_ref.c: references 2 and 6, a bare GMime 3 parse-and-decode walk on one core.
 *
 * For each message: parse it with default parser options, walk every part with
 * GMimePartIter (which enters attached messages), and decode every leaf: text parts to
 * UTF-8 with g_mime_text_part_get_text(), every other part's content through its
 * transfer decoding into a memory stream. That is the least any MIME parser must do
 * with a message; inboxd does it too, plus stripping, classification and JSON.
 *
 * usage: bench_gmime_ref --seconds S FILE...   loads the files once, then parses them
 *                                              round-robin for S seconds (msg/s)
 *        bench_gmime_ref --files FILE...       reads and parses each file once, from disk,
 *                                              as "inboxd parse FILE..." does
 * Prints one JSON object: {"messages", "parts", "bytes", "seconds", "rate"}. */
#include <gmime/gmime.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double
now_s(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Parse and decode one message; returns the number of leaf parts decoded. */
static unsigned
walk(const char *data, size_t len, guint64 *decoded_bytes)
{
  GMimeStream *stream = g_mime_stream_mem_new_with_buffer(data, len);
  GMimeParser *parser = g_mime_parser_new_with_stream(stream);
  GMimeMessage *msg = g_mime_parser_construct_message(parser, NULL);
  unsigned parts = 0;
  if (msg) {
    /* Header values a message document needs, decoded (RFC 2047). */
    const char *subject = g_mime_message_get_subject(msg);
    (void)subject;
    InternetAddressList *from = g_mime_message_get_from(msg);
    (void)from;
    GMimePartIter *iter = g_mime_part_iter_new((GMimeObject *)msg);
    if (g_mime_part_iter_is_valid(iter)) {
      do {
        GMimeObject *obj = g_mime_part_iter_get_current(iter);
        if (GMIME_IS_TEXT_PART(obj)) {
          char *text = g_mime_text_part_get_text((GMimeTextPart *)obj);
          if (text)
            *decoded_bytes += strlen(text);
          g_free(text);
          parts++;
        } else if (GMIME_IS_PART(obj)) {
          GMimeDataWrapper *content = g_mime_part_get_content((GMimePart *)obj);
          if (content) {
            GMimeStream *out = g_mime_stream_mem_new();
            g_mime_data_wrapper_write_to_stream(content, out);
            *decoded_bytes += (guint64)g_mime_stream_length(out);
            g_object_unref(out);
          }
          parts++;
        }
      } while (g_mime_part_iter_next(iter));
    }
    g_mime_part_iter_free(iter);
    g_object_unref(msg);
  }
  g_object_unref(parser);
  g_object_unref(stream);
  return parts;
}

int
main(int argc, char **argv)
{
  double seconds = 0;
  int files_mode = 0, first = 1;
  if (argc > 2 && strcmp(argv[1], "--seconds") == 0) {
    seconds = strtod(argv[2], NULL);
    first = 3;
  } else if (argc > 1 && strcmp(argv[1], "--files") == 0) {
    files_mode = 1;
    first = 2;
  }
  if ((!files_mode && seconds <= 0) || first >= argc) {
    fprintf(stderr, "usage: bench_gmime_ref --seconds S FILE... | --files FILE...\n");
    return 2;
  }
  g_mime_init();
  int n = argc - first;
  guint64 messages = 0, parts = 0, bytes = 0, decoded = 0;
  double t0, t1;
  if (files_mode) {
    t0 = now_s();
    for (int i = 0; i < n; i++) {
      char *data = NULL;
      gsize len = 0;
      if (!g_file_get_contents(argv[first + i], &data, &len, NULL)) {
        fprintf(stderr, "bench_gmime_ref: cannot read %s\n", argv[first + i]);
        return 1;
      }
      parts += walk(data, len, &decoded);
      bytes += len;
      messages++;
      g_free(data);
    }
    t1 = now_s();
  } else {
    char **data = g_new0(char *, n);
    gsize *len = g_new0(gsize, n);
    for (int i = 0; i < n; i++)
      if (!g_file_get_contents(argv[first + i], &data[i], &len[i], NULL)) {
        fprintf(stderr, "bench_gmime_ref: cannot read %s\n", argv[first + i]);
        return 1;
      }
    t0 = now_s();
    t1 = t0;
    while (t1 - t0 < seconds) {
      for (int k = 0; k < 64; k++) {
        int i = (int)(messages % (guint64)n);
        parts += walk(data[i], len[i], &decoded);
        bytes += len[i];
        messages++;
      }
      t1 = now_s();
    }
    for (int i = 0; i < n; i++)
      g_free(data[i]);
    g_free(data);
    g_free(len);
  }
  printf("{\"messages\":%llu,\"parts\":%llu,\"bytes\":%llu,\"decoded_bytes\":%llu,"
         "\"seconds\":%.4f,\"rate\":%.1f}\n",
         (unsigned long long)messages, (unsigned long long)parts, (unsigned long long)bytes,
         (unsigned long long)decoded, t1 - t0, (double)messages / (t1 - t0));
  g_mime_shutdown();
  return 0;
}
