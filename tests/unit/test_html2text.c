/* test_html2text.c: html2text() on the shapes mail HTML comes in. */
#include <glib.h>
#include <string.h>

#include "check.h"
#include "html2text.h"
#include "mime.h"

static void
expect(const char *html, const char *want)
{
  char *got = html2text(html, strlen(html));
  CHECK_STR(got, want);
  if (strcmp(got, want) != 0)
    fprintf(stderr, "  for: %s\n", html);
  g_free(got);
}

static void
test_blocks(void)
{
  expect("", "");
  expect("plain words", "plain words");
  expect("<p>One</p><p>Two</p>", "One\n\nTwo");
  expect("<div>One</div><div>Two</div>", "One\nTwo");
  expect("<div>Hi,</div><div><br></div><div>text</div>", "Hi,\n\ntext");
  expect("line one<br>line two<br/>line three", "line one\nline two\nline three");
  expect("<h1>Title</h1>body", "Title\n\nbody");
  expect("<table><tr><td>a</td><td>b</td></tr><tr><td>c</td><td>d</td></tr></table>", "a b\nc d");
  expect("a<br><br><br><br><br>b", "a\n\nb");
  expect("<p>x</p><p></p><p></p><p>y</p>", "x\n\ny");
}

static void
test_whitespace_and_entities(void)
{
  expect("  lots   of\n\n  space\t\there  ", "lots of space here");
  expect("<b>bold</b> <i>italic</i>", "bold italic");
  expect("a<b>b</b>c", "abc");
  expect("&amp; &lt;tag&gt; &quot;q&quot; &eacute; &#8364; &#x263A;",
         "& <tag> \"q\" \xc3\xa9 \xe2\x82\xac \xe2\x98\xba");
  expect("non&nbsp;breaking", "non breaking");
  expect("zero&#8203;width&zwnj;joiner", "zerowidthjoiner");
  expect("<pre>  keep\n    this</pre>after", "keep\n    this\n\nafter");
  expect("<p>   </p><p>&nbsp;</p>", "");
}

static void
test_dropped(void)
{
  expect("<html><head><title>T</title><style>p{color:red}</style></head>"
         "<body><script>alert(1)</script>visible</body></html>",
         "visible");
  expect("<!-- comment -->text<!--[if mso]>outlook<![endif]-->", "text");
  expect("<p>a</p><template>hidden</template><p>b</p>", "a\n\nb");
}

static void
test_lists_links_quotes(void)
{
  expect("<ul><li>one</li><li>two</li></ul>", "- one\n- two");
  expect("<ol><li>first</li><li>second<ul><li>inner</li></ul></li></ol>",
         "- first\n- second\n  - inner");
  expect("see <a href=\"https://example.org/x\">the docs</a>.",
         "see the docs <https://example.org/x>.");
  expect("<a href=\"https://example.org/\">https://example.org/</a>", "https://example.org/");
  expect("<a href=\"https://example.org\">example.org</a>", "example.org");
  expect("<a href=\"mailto:a@example.org\">write us</a>", "write us");
  expect("<a href=\"https://example.org/\"><img src=\"logo.png\"></a>after", "after");
  expect("<p>reply</p><blockquote><p>quoted line</p><p>second</p></blockquote>",
         "reply\n\n> quoted line\n>\n> second");
  expect("<blockquote>outer<blockquote>inner</blockquote></blockquote>", "> outer\n>\n> > inner");
  expect("<blockquote><p>a</p></blockquote><p>b</p>", "> a\n\nb");
  expect("<blockquote><blockquote><p>a</p></blockquote><p>b</p></blockquote>", "> > a\n>\n> b");
  expect("<blockquote>a<br><br>b</blockquote>", "> a\n>\n> b");
}

static void
test_broken_html(void)
{
  expect("<p>unclosed <b>bold <i>both", "unclosed bold both");
  expect("<div><p>a</div>b</p>", "a\n\nb");
  expect("text with a < sign and > another", "text with a < sign and > another");

  /* the tree is walked without recursion; libxml2 itself stops nesting at 256 levels
   * (what is deeper is dropped), and 20000 levels must not hurt either */
  GString *deep = g_string_new(NULL);
  for (int i = 0; i < 200; i++)
    g_string_append(deep, "<div>");
  g_string_append(deep, "deep");
  char *got = html2text(deep->str, deep->len);
  CHECK_STR(got, "deep");
  g_free(got);
  for (int i = 200; i < 20000; i++)
    g_string_append(deep, "<div>");
  g_string_append(deep, "deeper");
  got = html2text(deep->str, deep->len);
  CHECK(g_str_has_prefix(got, "deep"));
  g_free(got);
  g_string_free(deep, TRUE);

  /* a big body stays linear */
  GString *big = g_string_new(NULL);
  for (int i = 0; i < 100000; i++)
    g_string_append(big, "<p>paragraph</p>");
  got = html2text(big->str, big->len);
  CHECK(g_str_has_prefix(got, "paragraph\n\nparagraph"));
  CHECK(g_utf8_validate(got, -1, NULL));
  g_free(got);
  g_string_free(big, TRUE);
}

static void
test_mail_shapes(void)
{
  /* Outlook: one <p class=MsoNormal> per line, &nbsp; paragraphs as blank lines */
  expect("<div class=WordSection1><p class=MsoNormal>Hi John,<o:p></o:p></p>"
         "<p class=MsoNormal><o:p>&nbsp;</o:p></p><p class=MsoNormal>Thanks.<o:p></o:p></p></div>",
         "Hi John,\n\nThanks.");
  /* Gmail: divs per line, <div><br></div> as blank line, quote in gmail_quote */
  expect("<div dir=\"ltr\">Sure.<div><br></div><div>Ana</div></div><br>"
         "<div class=\"gmail_quote\"><div class=\"gmail_attr\">On Mon, Bob wrote:<br></div>"
         "<blockquote class=\"gmail_quote\">Can you help?</blockquote></div>",
         "Sure.\n\nAna\n\nOn Mon, Bob wrote:\n\n> Can you help?");
}

int
main(void)
{
  mime_init();
  test_blocks();
  test_whitespace_and_entities();
  test_dropped();
  test_lists_links_quotes();
  test_broken_html();
  test_mail_shapes();
  mime_shutdown();
  return check_done();
}
