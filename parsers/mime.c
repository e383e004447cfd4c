/* PLACEHOLDER until the real GMime parser lands (branch "mime"): headers only. */
#include "mime.h"

#include <gmime/gmime.h>
#include <string.h>

void
mime_limits_default(mime_limits *l)
{
  l->max_depth = 32;
  l->max_parts = 1000;
  l->max_headers = 1000;
  l->max_header_bytes = 64 * 1024;
  l->max_attachments = 500;
  l->max_attachment_bytes = 64u << 20;
  l->max_decoded_bytes = 256u << 20;
}

void
mime_init(void)
{
  g_mime_init();
}

void
mime_shutdown(void)
{
  g_mime_shutdown();
}

ib_status
mime_parse(const char *raw, size_t len, const mime_limits *limits, ib_message **msg_out)
{
  *msg_out = NULL;
  if (len == 0)
    return IB_ERR_NOT_MAIL;
  ib_message *m = ib_message_new();
  GMimeStream *stream = g_mime_stream_mem_new_with_buffer(raw, len);
  GMimeParser *parser = g_mime_parser_new_with_stream(stream);
  GMimeMessage *gm = g_mime_parser_construct_message(parser, NULL);
  char *sum = g_compute_checksum_for_data(G_CHECKSUM_SHA256, (const guchar *)raw, len);
  memcpy(m->raw_sha256, sum, 65);
  g_free(sum);
  if (gm) {
    const char *s = g_mime_message_get_subject(gm);
    m->subject = s ? g_utf8_make_valid(s, -1) : NULL;
    const char *id = g_mime_message_get_message_id(gm);
    m->message_id = id ? g_utf8_make_valid(id, -1) : NULL;
    g_object_unref(gm);
  }
  if (!m->message_id) {
    m->message_id = g_strdup_printf("%.32s@inboxd.invalid", m->raw_sha256);
    m->message_id_synthetic = 1;
  }
  g_object_unref(parser);
  g_object_unref(stream);
  *msg_out = m;
  return IB_OK;
}
