/* web.c: the built-in web view, plain HTML/CSS/JS embedded in the binary at build time
 * (server/web/, see cmake/embed.cmake), served with a strict Content-Security-Policy. */
#include <microhttpd.h>
#include <string.h>

#include "api.h"
#include "embedded.h"

/* Scripts and styles from this origin only, no inline code, no plugins, no remote
 * anything; email HTML goes into sandboxed srcdoc frames, which inherit this policy, so
 * remote images in mail are blocked too (privacy). style-src also allows data: for the one
 * reason that a mail's own CSS (inline style="" and <style>, which this policy refuses)
 * reaches its sandboxed frame as a data: stylesheet built by app.js: the frame's opaque
 * origin cannot load this page's blob: URLs. Remote loads stay blocked (img-src, font-src),
 * so such CSS cannot call home. */
#define WEB_CSP                                                                                    \
  "default-src 'none'; script-src 'self'; style-src 'self' data:; img-src 'self' data: blob:; "    \
  "connect-src 'self'; frame-src 'self'; font-src 'self'; form-action 'none'; "                    \
  "base-uri 'none'; frame-ancestors 'none'"

static const char *
media_type(const char *name)
{
  static const struct {
    const char *ext, *type;
  } types[] = {
      {".html", "text/html; charset=utf-8"},
      {".js", "text/javascript; charset=utf-8"},
      {".css", "text/css; charset=utf-8"},
      {".svg", "image/svg+xml"},
      {".png", "image/png"},
      {".ico", "image/x-icon"},
      {".json", "application/json"},
  };
  for (size_t i = 0; i < G_N_ELEMENTS(types); i++)
    if (g_str_has_suffix(name, types[i].ext))
      return types[i].type;
  return "application/octet-stream";
}

static const ib_embedded_file *
find_file(const char *name)
{
  for (const ib_embedded_file *f = ib_embedded_files; f->name; f++)
    if (strcmp(f->name, name) == 0)
      return f;
  return NULL;
}

void
web_static(ib_request *r)
{
  const char *path = request_path(r);
  char *name = NULL;
  if (strcmp(path, "/") == 0)
    name = g_strdup("web/index.html");
  else if (g_str_has_prefix(path, "/static/") && !strstr(path, "..") && !strchr(path + 8, '/'))
    name = g_strconcat("web/", path + 8, NULL);
  const ib_embedded_file *f = name ? find_file(name) : NULL;
  if (!f) {
    request_reply_error(r, MHD_HTTP_NOT_FOUND, "not_found", "no such page");
    g_free(name);
    return;
  }
  request_reply_bytes(r, MHD_HTTP_OK, media_type(f->name), f->data, f->len);
  request_set_header(r, "Content-Security-Policy", WEB_CSP);
  /* Assets change only with the binary. */
  request_set_header(r, "Cache-Control", "no-cache");
  g_free(name);
}
