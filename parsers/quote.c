/* quote.c: line classifiers for reply stripping (see quote.h).
 *
 * Every table below is written in quote_norm() form (NFKC, case-folded: "ß" is "ss",
 * "İ" is "i̇"); a unit test checks each entry, so a table can be extended without
 * knowing the folding rules by heart. Matching is by anchored prefix/suffix, never by
 * "contains", so a customer sentence that merely uses a word like "wrote" is left alone. */
#include "quote.h"

#include <string.h>

/* Attribution lines are machine-written and short; a longer line is prose. */
#define ATTRIBUTION_MAX_BYTES 400
/* Footers and closings are a few words; a longer line is a sentence. */
#define FOOTER_MAX_CHARS 80
#define VALEDICTION_MAX_CHARS 40
/* How far a quoted header block may run (wrapped To: lists included). */
#define HEADER_BLOCK_MAX_LINES 12

/* quote_norm() of an ASCII line in one pass: lower-cased, runs of white space collapsed
 * to one space and trimmed. Most lines of most mail are ASCII, and this is the hot path
 * of stripping a long body. */
static char *
norm_ascii(const char *line, size_t len)
{
  char *out = g_malloc(len + 1);
  size_t o = 0;
  gboolean blank = FALSE;
  for (size_t i = 0; i < len; i++) {
    char c = line[i];
    /* The characters g_unichar_isspace() calls space, as quote_norm_unicode() does. */
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f') {
      blank = TRUE;
      continue;
    }
    if (blank && o > 0)
      out[o++] = ' ';
    blank = FALSE;
    out[o++] = c >= 'A' && c <= 'Z' ? (char)(c + ('a' - 'A')) : c;
  }
  /* French puts a (no-break) space before the colon: "a écrit :". */
  if (o >= 2 && out[o - 1] == ':' && out[o - 2] == ' ') {
    out[o - 2] = ':';
    o--;
  }
  out[o] = '\0';
  return out;
}

char *
quote_norm_unicode(const char *line, gssize len)
{
  char *valid = g_utf8_make_valid(line, len);
  char *nfkc = g_utf8_normalize(valid, -1, G_NORMALIZE_ALL_COMPOSE);
  char *fold = g_utf8_casefold(nfkc ? nfkc : valid, -1);
  GString *out = g_string_sized_new(strlen(fold));
  gboolean blank = FALSE;

  for (const char *p = fold; *p; p = g_utf8_next_char(p)) {
    gunichar c = g_utf8_get_char(p);
    if (g_unichar_isspace(c) || c == 0x200B || c == 0xFEFF) {
      blank = TRUE;
      continue;
    }
    if (blank && out->len > 0)
      g_string_append_c(out, ' ');
    blank = FALSE;
    if (c == 0x2019) /* "iPhone’umdan": typographic apostrophes are apostrophes */
      c = '\'';
    if (c < 0x80)
      g_string_append_c(out, (char)c);
    else
      g_string_append_unichar(out, c);
  }
  /* French puts a (no-break) space before the colon: "a écrit :". */
  if (out->len >= 2 && out->str[out->len - 1] == ':' && out->str[out->len - 2] == ' ')
    g_string_erase(out, (gssize)out->len - 2, 1);

  g_free(valid);
  g_free(nfkc);
  g_free(fold);
  return g_string_free(out, FALSE);
}

/* Whether C, wherever it stands, comes out of NFKC and case folding as its simple
 * lowercase mapping (g_unichar_tolower), and is neither white space nor a combining mark
 * (which NFKC would compose with the character before it): the letters of Latin-1 and
 * Latin Extended-A (but ß, İ, ĳ, ŀ, ŉ, ſ, which fold or decompose to more), basic
 * Cyrillic, and the dashes and quotation marks of typeset text. test_strip checks every
 * character against quote_norm_unicode(). */
static gboolean
is_simple(gunichar c)
{
  if (c >= 0xC0 && c <= 0x17F)
    return c != 0xDF && c != 0x130 && c != 0x132 && c != 0x133 && c != 0x13F && c != 0x140 &&
           c != 0x149 && c != 0x17F;
  return (c >= 0x400 && c <= 0x45F) || c == 0x2013 || c == 0x2014 || c == 0x2018 || c == 0x201C ||
         c == 0x201D;
}

/* quote_norm() of a line whose every non-ASCII character is is_simple() or U+2019,
 * without the three passes and copies of quote_norm_unicode(); NULL for any other line
 * (invalid UTF-8 included), which then takes the long way. */
static char *
norm_simple(const char *line, size_t len)
{
  const char *end = line + len;
  GString *out = g_string_sized_new(len);
  gboolean blank = FALSE;
  for (const char *p = line; p < end;) {
    gunichar c = (unsigned char)*p;
    if (c < 0x80) {
      p++;
    } else {
      c = g_utf8_get_char_validated(p, end - p);
      if (c == (gunichar)-1 || c == (gunichar)-2 || (c != 0x2019 && !is_simple(c))) {
        g_string_free(out, TRUE);
        return NULL;
      }
      p = g_utf8_next_char(p);
    }
    if (c == 0) {
      g_string_free(out, TRUE);
      return NULL;
    }
    /* What g_unichar_isspace() calls space among these characters (not \v: Unicode
     * does not). */
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f') {
      blank = TRUE;
      continue;
    }
    if (blank && out->len > 0)
      g_string_append_c(out, ' ');
    blank = FALSE;
    if (c < 0x80)
      g_string_append_c(out, c >= 'A' && c <= 'Z' ? (char)(c + ('a' - 'A')) : (char)c);
    else if (c == 0x2019)
      g_string_append_c(out, '\'');
    else
      g_string_append_unichar(out, g_unichar_tolower(c));
  }
  if (out->len >= 2 && out->str[out->len - 1] == ':' && out->str[out->len - 2] == ' ')
    g_string_erase(out, (gssize)out->len - 2, 1);
  return g_string_free(out, FALSE);
}

char *
quote_norm(const char *line, gssize len)
{
  size_t n = len < 0 ? strlen(line) : (size_t)len;
  gboolean ascii = TRUE;
  for (size_t i = 0; i < n && ascii; i++)
    ascii = (unsigned char)line[i] < 0x80 && line[i] != '\0';
  if (ascii)
    return norm_ascii(line, n);
  char *simple = norm_simple(line, n);
  return simple ? simple : quote_norm_unicode(line, len);
}

static gboolean
has_suffix(const char *s, size_t len, const char *suffix)
{
  size_t n = strlen(suffix);
  return len >= n && memcmp(s + len - n, suffix, n) == 0;
}

static gboolean
in_list(const char *s, const char *const *list)
{
  for (size_t i = 0; list[i]; i++)
    if (strcmp(s, list[i]) == 0)
      return TRUE;
  return FALSE;
}

/* The proof that a line was written by a mail client and not typed: an address or a
 * time of day ("10:00"); unless STRONG, also a year ("2025") or a numeric date
 * ("07.01.25", "1/7/25"). People write dates in sentences; they rarely add the time. */
static gboolean
has_client_evidence(const char *s, gboolean strong)
{
  if (strchr(s, '@'))
    return TRUE;
  for (const char *p = s; *p; p++) {
    if (!g_ascii_isdigit(*p))
      continue;
    size_t run = strspn(p, "0123456789");
    const char *q = p + run;
    if (run <= 2 && *q == ':' && g_ascii_isdigit(q[1]) && g_ascii_isdigit(q[2]))
      return TRUE;
    if (strong) {
      p = q - 1;
      continue;
    }
    if (run == 4 && (p[0] == '1' || p[0] == '2') && (p[1] == '9' || p[1] == '0'))
      return TRUE;
    if (run <= 4 && (*q == '.' || *q == '/' || *q == '-') && g_ascii_isdigit(q[1])) {
      size_t run2 = strspn(q + 1, "0123456789");
      const char *r = q + 1 + run2;
      if (run2 <= 2 && *r == *q && g_ascii_isdigit(r[1]))
        return TRUE;
    }
    p = q - 1;
  }
  return FALSE;
}

/* One anchored shape: the line starts with START, contains MIDDLE somewhere after it
 * (NULL: anything) and ends with END. */
typedef struct attribution_shape {
  const char *start, *middle, *end;
} attribution_shape;

static const attribution_shape strict_shapes[] = {
    {"on ", NULL, "wrote:"},          /* Gmail, Apple Mail, Thunderbird, Yahoo, mutt */
    {"am ", " schrieb ", ":"},        /* de */
    {"le ", NULL, "a écrit:"},        /* fr */
    {"le ", NULL, "a ecrit:"},        /* fr, unaccented clients */
    {"el ", NULL, "escribió:"},       /* es */
    {"em ", NULL, "escreveu:"},       /* pt */
    {"no dia ", NULL, "escreveu:"},   /* pt-PT */
    {"il ", NULL, "ha scritto:"},     /* it ("il giorno ... ha scritto:") */
    {"op ", " schreef ", ":"},        /* nl */
    {"", " tarihinde ", "yazdı:"},    /* tr: "<name>, <date> tarihinde şunu yazdı:" */
    {"", NULL, "пишет:"},             /* ru: "07.01.2025 10:00, Иван пишет:" */
    {"", NULL, "написал(а):"},        /* ru */
    {"", NULL, "написал:"},           /* ru */
    {"", NULL, "написала:"},          /* ru */
    {"在", NULL, "写道:"},            /* zh (Apple Mail, Foxmail) */
    {"", NULL, "写道:"},              /* zh (Gmail: "<name> 于<date>写道:") */
    {"", NULL, "寫道:"},              /* zh-TW */
    {"", "に", "書きました:"},        /* ja: "<date> に <name> が書きました:" */
    {"", NULL, "のメール:"},          /* ja (Apple Mail) */
    {"", NULL, "작성:"},              /* ko (Gmail) */
    {"den ", " skrev ", ":"},         /* da, no, sv */
    {"w dniu ", NULL, "napisał(a):"}, /* pl */
    {"", NULL, "kirjoitti:"},         /* fi */
};

/* Endings that are only trusted when quoted lines follow. */
static const char *const loose_endings[] = {
    "wrote:",   "writes:", "schrieb:", "a écrit:",    "escribió:", "escreveu:", "ha scritto:",
    "schreef:", "yazdı:",  "пишет:",   "написал(а):", "写道:",     "寫道:",     "書きました:",
    "skrev:",   ">:",      ">):",      "]:",          NULL,
};

/* Shapes that are only trusted when quoted lines follow. */
static const attribution_shape loose_shapes[] = {
    {"", " schrieb am ", ":"}, /* de (Gmail mobile: "<name> <addr> schrieb am <date>:") */
};

static gboolean
shape_matches(const attribution_shape *sh, const char *s, size_t len)
{
  size_t start_len = strlen(sh->start);
  if (strncmp(s, sh->start, start_len) != 0)
    return FALSE;
  if (!has_suffix(s, len, sh->end))
    return FALSE;
  if (len < start_len + strlen(sh->end) + 1)
    return FALSE;
  if (sh->middle) {
    const char *m = strstr(s + start_len, sh->middle);
    if (!m || m + strlen(sh->middle) > s + len - strlen(sh->end))
      return FALSE;
  }
  return TRUE;
}

gboolean
quote_is_attribution(const char *norm, gboolean loose)
{
  size_t len = strlen(norm);
  if (len == 0 || len > ATTRIBUTION_MAX_BYTES || norm[len - 1] != ':')
    return FALSE;
  if (norm[0] == '>')
    return FALSE;
  /* Without quoted lines after it, only a line a client surely wrote may end the text. */
  if (!has_client_evidence(norm, !loose))
    return FALSE;
  for (size_t i = 0; i < G_N_ELEMENTS(strict_shapes); i++)
    if (shape_matches(&strict_shapes[i], norm, len))
      return TRUE;
  if (!loose)
    return FALSE;
  for (size_t i = 0; loose_endings[i]; i++)
    if (has_suffix(norm, len, loose_endings[i]))
      return TRUE;
  for (size_t i = 0; i < G_N_ELEMENTS(loose_shapes); i++)
    if (shape_matches(&loose_shapes[i], norm, len))
      return TRUE;
  return FALSE;
}

/* Return the words between the dashes of "----- words -----" (new string), or NULL when
 * NORM is not shaped like that. */
static char *
dashed_core(const char *norm)
{
  size_t len = strlen(norm);
  size_t lead = strspn(norm, "- ");
  size_t trail = 0;
  while (trail < len && (norm[len - 1 - trail] == '-' || norm[len - 1 - trail] == ' '))
    trail++;
  if (lead >= len || len - lead <= trail)
    return NULL;
  size_t lead_dashes = 0, trail_dashes = 0;
  for (size_t i = 0; i < lead; i++)
    lead_dashes += norm[i] == '-';
  for (size_t i = len - trail; i < len; i++)
    trail_dashes += norm[i] == '-';
  if (lead_dashes < 2 || trail_dashes < 2)
    return NULL;
  return g_strndup(norm + lead, len - lead - trail);
}

static const char *const separator_words[] = {
    "original message",
    "ursprüngliche nachricht",
    "originalnachricht",
    "message d'origine",
    "message original",
    "mensaje original",
    "mensagem original",
    "messaggio originale",
    "oorspronkelijk bericht",
    "origineel bericht",
    "özgün ileti",
    "orijinal ileti",
    "orijinal mesaj",
    "исходное сообщение",
    "原始邮件",
    "原始郵件",
    "元のメッセージ",
    "oprindelig meddelelse",
    "opprinnelig melding",
    "ursprungligt meddelande",
    "wiadomość oryginalna",
    "alkuperäinen viesti",
    "원본 메시지",
    NULL,
};

static const char *const forward_words[] = {
    "forwarded message",
    "forwarded e-mail",
    "weitergeleitete nachricht",
    "message transféré",
    "mensaje reenviado",
    "mensagem encaminhada",
    "mensagem reencaminhada",
    "messaggio inoltrato",
    "doorgestuurd bericht",
    "i\u0307letilen i\u0307leti",
    "yönlendirilmiş ileti",
    "yönlendirilen ileti",
    "пересылаемое сообщение",
    "пересланное сообщение",
    "转发的邮件",
    "轉寄的郵件",
    "転送されたメッセージ",
    "videresendt meddelelse",
    "vidarebefordrat meddelande",
    "wiadomość przekazana dalej",
    "välitetty viesti",
    "전달된 메시지",
    NULL,
};

/* Apple Mail and others: a line of its own, no dashes. */
static const char *const forward_phrases[] = {
    "begin forwarded message:",
    "anfang der weitergeleiteten nachricht:",
    "début du message réexpédié:",
    "début du message transféré:",
    "inicio del mensaje reenviado:",
    "início da mensagem reencaminhada:",
    "início da mensagem encaminhada:",
    "inizio messaggio inoltrato:",
    "begin doorgestuurd bericht:",
    "i\u0307letilen mesajın başlangıcı:",
    "начало переадресованного сообщения:",
    "转发的邮件开始:",
    "以下是转发的邮件:",
    "転送されたメッセージ:",
    "videresendt meddelelse:",
    "vidarebefordrat brev:",
    NULL,
};

gboolean
quote_is_separator(const char *norm)
{
  char *core = dashed_core(norm);
  gboolean hit = core && in_list(core, separator_words);
  g_free(core);
  return hit;
}

gboolean
quote_is_forward_marker(const char *norm)
{
  if (in_list(norm, forward_phrases))
    return TRUE;
  char *core = dashed_core(norm);
  gboolean hit = core && in_list(core, forward_words);
  g_free(core);
  return hit;
}

gboolean
quote_is_rule(const char *norm)
{
  size_t len = strlen(norm);
  return len >= 10 && strspn(norm, "_") == len;
}

typedef struct field_label {
  const char *label;
  quote_field field;
} field_label;

static const field_label field_labels[] = {
    {"from", QUOTE_FIELD_FROM},
    {"von", QUOTE_FIELD_FROM},
    {"de", QUOTE_FIELD_FROM},
    {"da", QUOTE_FIELD_FROM},
    {"van", QUOTE_FIELD_FROM},
    {"kimden", QUOTE_FIELD_FROM},
    {"от", QUOTE_FIELD_FROM},
    {"发件人", QUOTE_FIELD_FROM},
    {"寄件者", QUOTE_FIELD_FROM},
    {"差出人", QUOTE_FIELD_FROM},
    {"fra", QUOTE_FIELD_FROM},
    {"från", QUOTE_FIELD_FROM},
    {"od", QUOTE_FIELD_FROM},
    {"lähettäjä", QUOTE_FIELD_FROM},
    {"보낸 사람", QUOTE_FIELD_FROM},

    {"sent", QUOTE_FIELD_DATE},
    {"date", QUOTE_FIELD_DATE},
    {"gesendet", QUOTE_FIELD_DATE},
    {"datum", QUOTE_FIELD_DATE},
    {"envoyé", QUOTE_FIELD_DATE},
    {"enviado", QUOTE_FIELD_DATE},
    {"enviada", QUOTE_FIELD_DATE},
    {"fecha", QUOTE_FIELD_DATE},
    {"inviato", QUOTE_FIELD_DATE},
    {"data", QUOTE_FIELD_DATE},
    {"verzonden", QUOTE_FIELD_DATE},
    {"gönderildi", QUOTE_FIELD_DATE},
    {"tarih", QUOTE_FIELD_DATE},
    {"отправлено", QUOTE_FIELD_DATE},
    {"дата", QUOTE_FIELD_DATE},
    {"发送时间", QUOTE_FIELD_DATE},
    {"日期", QUOTE_FIELD_DATE},
    {"寄件日期", QUOTE_FIELD_DATE},
    {"送信日時", QUOTE_FIELD_DATE},
    {"日付", QUOTE_FIELD_DATE},
    {"sendt", QUOTE_FIELD_DATE},
    {"skickat", QUOTE_FIELD_DATE},
    {"wysłano", QUOTE_FIELD_DATE},
    {"lähetetty", QUOTE_FIELD_DATE},
    {"보낸 날짜", QUOTE_FIELD_DATE},

    {"to", QUOTE_FIELD_TO},
    {"an", QUOTE_FIELD_TO},
    {"à", QUOTE_FIELD_TO},
    {"a", QUOTE_FIELD_TO},
    {"para", QUOTE_FIELD_TO},
    {"aan", QUOTE_FIELD_TO},
    {"kime", QUOTE_FIELD_TO},
    {"кому", QUOTE_FIELD_TO},
    {"收件人", QUOTE_FIELD_TO},
    {"宛先", QUOTE_FIELD_TO},
    {"til", QUOTE_FIELD_TO},
    {"till", QUOTE_FIELD_TO},
    {"do", QUOTE_FIELD_TO},
    {"vastaanottaja", QUOTE_FIELD_TO},
    {"받는 사람", QUOTE_FIELD_TO},

    {"cc", QUOTE_FIELD_CC},
    {"kopie", QUOTE_FIELD_CC},
    {"копия", QUOTE_FIELD_CC},
    {"抄送", QUOTE_FIELD_CC},
    {"bilgi", QUOTE_FIELD_CC},
    {"kopia", QUOTE_FIELD_CC},
    {"bcc", QUOTE_FIELD_CC},
    {"참조", QUOTE_FIELD_CC},

    {"subject", QUOTE_FIELD_SUBJECT},
    {"betreff", QUOTE_FIELD_SUBJECT},
    {"objet", QUOTE_FIELD_SUBJECT},
    {"asunto", QUOTE_FIELD_SUBJECT},
    {"assunto", QUOTE_FIELD_SUBJECT},
    {"oggetto", QUOTE_FIELD_SUBJECT},
    {"onderwerp", QUOTE_FIELD_SUBJECT},
    {"konu", QUOTE_FIELD_SUBJECT},
    {"тема", QUOTE_FIELD_SUBJECT},
    {"主题", QUOTE_FIELD_SUBJECT},
    {"主旨", QUOTE_FIELD_SUBJECT},
    {"件名", QUOTE_FIELD_SUBJECT},
    {"emne", QUOTE_FIELD_SUBJECT},
    {"ämne", QUOTE_FIELD_SUBJECT},
    {"temat", QUOTE_FIELD_SUBJECT},
    {"aihe", QUOTE_FIELD_SUBJECT},
    {"제목", QUOTE_FIELD_SUBJECT},
};

/* Labels are a word or two; anything longer before the colon is a sentence. */
#define FIELD_LABEL_MAX_BYTES 32

quote_field
quote_header_field(const char *norm, const char **value_out)
{
  const char *p = norm + strspn(norm, "* ");
  const char *colon = strchr(p, ':');
  if (!colon || colon == p || (size_t)(colon - p) > FIELD_LABEL_MAX_BYTES)
    return QUOTE_FIELD_NONE;
  size_t label_len = (size_t)(colon - p);
  while (label_len > 0 && (p[label_len - 1] == '*' || p[label_len - 1] == ' '))
    label_len--;
  for (size_t i = 0; i < G_N_ELEMENTS(field_labels); i++) {
    const char *l = field_labels[i].label;
    if (strlen(l) == label_len && memcmp(l, p, label_len) == 0) {
      if (value_out)
        *value_out = colon + 1 + strspn(colon + 1, "* ");
      return field_labels[i].field;
    }
  }
  return QUOTE_FIELD_NONE;
}

static const char *const forward_prefixes[] = {
    "fw:",     "fwd:",  "wg:",   "tr:",   "rv:", "enc:", "i:",  "doorst:", "i\u0307lt:", "ilt:",
    "пересл:", "转发:", "轉寄:", "転送:", "vl:", "vs:",  "vb:", "vid:",    "pd:",        NULL,
};

static gboolean
is_forward_subject(const char *value)
{
  for (size_t i = 0; forward_prefixes[i]; i++)
    if (g_str_has_prefix(value, forward_prefixes[i]))
      return TRUE;
  return FALSE;
}

gsize
quote_header_block(char *const *norms, gsize n, gsize i, gboolean *forward_out)
{
  gboolean seen[QUOTE_FIELD_SUBJECT + 1] = {FALSE};
  gboolean evidence = FALSE, forward = FALSE;
  gsize end = i;

  if (forward_out)
    *forward_out = FALSE;
  if (i >= n || quote_header_field(norms[i], NULL) == QUOTE_FIELD_NONE)
    return 0;
  for (gsize j = i; j < n && j < i + HEADER_BLOCK_MAX_LINES && norms[j][0]; j++) {
    const char *value = NULL;
    quote_field f = quote_header_field(norms[j], &value);
    if (f == QUOTE_FIELD_NONE) {
      if (j == end)
        continue; /* a wrapped value */
      break;
    }
    if (seen[f] && f != QUOTE_FIELD_CC)
      break; /* a second block, or prose */
    seen[f] = TRUE;
    end = j + 1;
    if (f == QUOTE_FIELD_FROM || f == QUOTE_FIELD_DATE)
      evidence = evidence || has_client_evidence(value, FALSE);
    if (f == QUOTE_FIELD_SUBJECT)
      forward = is_forward_subject(value);
  }
  if (!seen[QUOTE_FIELD_FROM] || !seen[QUOTE_FIELD_SUBJECT] || !evidence)
    return 0;
  if (!seen[QUOTE_FIELD_DATE] && !seen[QUOTE_FIELD_TO])
    return 0;
  if (forward_out)
    *forward_out = forward;
  return end - i;
}

/* Words that make a "sent from ..." line a device or app footer rather than a sentence
 * that happens to start the same way. */
static const char *const device_words[] = {
    "iphone",    "ipad",     "android",  "galaxy",     "samsung",    "mobile", "phone",   "outlook",
    "mail",      "yahoo",    "aol",      "blackberry", "smartphone", "tablet", "windows", "huawei",
    "xiaomi",    "pixel",    "proton",   "gmx",        "handy",      "móvil",  "movil",   "celular",
    "cellulare", "telefono", "телефон",  "мобильн",    "mobil",      "手机",   "手機",    "xperia",
    "oneplus",   "nokia",    "motorola", "ios",        NULL,
};

static const char *const footer_prefixes[] = {
    "sent from ",
    "sent via ",
    "sent with ",
    "sent using ",
    "get outlook for ",
    "envoyé de ",
    "envoyé depuis ",
    "envoyé à partir de ",
    "obtenir outlook pour ",
    "enviado desde ",
    "enviado con ",
    "obtener outlook para ",
    "enviado do ",
    "enviado de ",
    "enviado a partir do ",
    "obter o outlook para ",
    "inviato da ",
    "inviato dal ",
    "inviato con ",
    "scarica outlook per ",
    "verstuurd vanaf ",
    "verzonden vanaf ",
    "verzonden met ",
    "verstuurd met ",
    "download outlook voor ",
    "gesendet von ",
    "gesendet vom ",
    "gesendet mit ",
    "outlook für ",
    "отправлено с ",
    "отправлено со ",
    "отправлено из ",
    "получить outlook для ",
    "从我的",
    "发自我的",
    "發自我的",
    "從我的",
    "skickat från ",
    "sendt fra ",
    "wysłane z ",
    "lähetetty ",
    NULL,
};

/* Footers whose verb comes last: both ends must match ("von meinem ... gesendet"), so a
 * German sentence that merely ends in "gesendet" is not one. */
typedef struct footer_shape {
  const char *start, *end;
} footer_shape;

static const footer_shape footer_shapes[] = {
    {"von meinem ", " gesendet"},
    {"", "'umdan gönderildi"},
    {"", "'ımdan gönderildi"},
    {"", "'imden gönderildi"},
    {"", "'ümden gönderildi"},
    {"", "cihazımdan gönderildi"},
    {"", "から送信"},
    {"", "에서 보냄"},
    {"从我的", "发送"},
    {"從我的", "傳送"},
    {"outlook für ", " herunterladen"},
    {"", " için outlook'u edinin"},
};

/* A footer is a few words; a longer line is a sentence. */
#define FOOTER_MAX_WORDS 10

gboolean
quote_is_mobile_footer(const char *norm)
{
  char *s = g_strdup(norm);
  size_t len = strlen(s);
  gboolean hit = FALSE;

  /* "get outlook for ios<https://aka.ms/o0ukef>", "sent from my iphone [link]" */
  if (len > 0 && (s[len - 1] == '>' || s[len - 1] == ']' || s[len - 1] == ')')) {
    char open = s[len - 1] == '>' ? '<' : s[len - 1] == ']' ? '[' : '(';
    char *o = strrchr(s, open);
    if (o && (strstr(o, "://") || strstr(o, "www.") || strstr(o, "aka.ms")))
      *o = '\0';
  }
  g_strchomp(s);
  len = strlen(s);
  while (len > 0 && (s[len - 1] == '.' || s[len - 1] == '!'))
    s[--len] = '\0';
  if (len == 0 || g_utf8_strlen(s, -1) > FOOTER_MAX_CHARS)
    goto done;

  gboolean shaped = FALSE;
  for (size_t i = 0; footer_prefixes[i] && !shaped; i++)
    shaped = g_str_has_prefix(s, footer_prefixes[i]);
  for (size_t i = 0; i < G_N_ELEMENTS(footer_shapes) && !shaped; i++)
    shaped =
        g_str_has_prefix(s, footer_shapes[i].start) && g_str_has_suffix(s, footer_shapes[i].end);
  if (!shaped)
    goto done;
  int words = 1;
  for (const char *p = s; *p; p++)
    words += *p == ' ';
  if (words > FOOTER_MAX_WORDS)
    goto done;
  for (size_t i = 0; device_words[i] && !hit; i++)
    hit = strstr(s, device_words[i]) != NULL;

done:
  g_free(s);
  return hit;
}

static const char *const valedictions[] = {
    /* en */
    "best regards",
    "kind regards",
    "warm regards",
    "warmest regards",
    "regards",
    "best wishes",
    "best",
    "thanks",
    "thank you",
    "many thanks",
    "thanks again",
    "thanks in advance",
    "thank you in advance",
    "cheers",
    "sincerely",
    "yours sincerely",
    "sincerely yours",
    "yours truly",
    "yours faithfully",
    "all the best",
    "br",
    /* de */
    "mit freundlichen grüssen",
    "freundliche grüsse",
    "viele grüsse",
    "beste grüsse",
    "liebe grüsse",
    "herzliche grüsse",
    "schöne grüsse",
    "grüsse",
    "gruss",
    "mfg",
    "vg",
    "lg",
    "danke",
    "vielen dank",
    /* fr */
    "cordialement",
    "bien cordialement",
    "bien à vous",
    "salutations",
    "meilleures salutations",
    "merci",
    "merci beaucoup",
    "bonne journée",
    /* es */
    "saludos",
    "saludos cordiales",
    "un saludo",
    "atentamente",
    "gracias",
    "muchas gracias",
    /* pt */
    "atenciosamente",
    "cumprimentos",
    "abraços",
    "obrigado",
    "obrigada",
    /* it */
    "cordiali saluti",
    "distinti saluti",
    "saluti",
    "grazie",
    "grazie mille",
    /* nl */
    "met vriendelijke groet",
    "met vriendelijke groeten",
    "vriendelijke groet",
    "groeten",
    "groet",
    "mvg",
    "bedankt",
    /* tr */
    "saygılarımla",
    "iyi çalışmalar",
    "teşekkürler",
    "teşekkür ederim",
    /* ru */
    "с уважением",
    "спасибо",
    "всего доброго",
    "с наилучшими пожеланиями",
    /* zh, ja */
    "此致",
    "此致敬礼",
    "谢谢",
    "祝好",
    "よろしくお願いします",
    "よろしくお願いいたします",
    NULL,
};

gboolean
quote_is_valediction(const char *norm)
{
  if (g_utf8_strlen(norm, -1) > VALEDICTION_MAX_CHARS)
    return FALSE;
  char *s = g_strdup(norm);
  size_t len = strlen(s);
  while (len > 0 && strchr(",.!;:- ", s[len - 1]))
    s[--len] = '\0';
  /* "、" and "。" close Japanese and Chinese lines. */
  while (g_str_has_suffix(s, "、") || g_str_has_suffix(s, "。") || g_str_has_suffix(s, "，"))
    s[strlen(s) - 3] = '\0';
  gboolean hit = in_list(s, valedictions);
  g_free(s);
  return hit;
}

/* How a signature line with a phone number starts. */
static const char *const phone_labels[] = {
    "tel",      "tél",     "phone",     "mobile",  "mob",    "cell",  "fax",      "t:",
    "m:",       "p:",      "f:",        "handy",   "móvil",  "movil", "telefone", "telefono",
    "teléfono", "celular", "cellulare", "телефон", "тел",    "моб",   "电话",     "手机",
    "電話",     "携帯",    "gsm",       "direct",  "office", NULL,
};

gboolean
quote_is_contact(const char *norm)
{
  const char *at = strchr(norm, '@');
  if (at && at != norm && strchr(at, '.'))
    return TRUE;
  if (strstr(norm, "http://") || strstr(norm, "https://") || strstr(norm, "www."))
    return TRUE;
  if (strstr(norm, " | "))
    return TRUE;
  /* A phone number: seven digits or more with only phone punctuation between, written
   * internationally ("+49 30 1234567") or after a label ("Tel.: 030 1234567"). A bare
   * number is more likely an order or invoice number the customer wants us to see. */
  gboolean label = FALSE;
  for (size_t i = 0; phone_labels[i] && !label; i++)
    label = g_str_has_prefix(norm, phone_labels[i]);
  for (const char *p = norm; *p;) {
    if (!g_ascii_isdigit(*p) && *p != '+' && *p != '(') {
      p++;
      continue;
    }
    gboolean international = *p == '+';
    int digits = 0;
    while (*p && (g_ascii_isdigit(*p) || strchr("+-(). /", *p))) {
      digits += g_ascii_isdigit(*p) != 0;
      p++;
    }
    if (digits >= 7 && (international || label))
      return TRUE;
  }
  return FALSE;
}

/* Count (and report) the entries of TABLE that are not in quote_norm() form. */
static gsize
check_list(const char *const *table, gsize n, void (*report)(const char *entry))
{
  gsize bad = 0;
  for (gsize i = 0; i < n; i++) {
    if (!table[i] || !table[i][0])
      continue;
    char *trimmed = g_strstrip(g_strdup(table[i]));
    char *norm = quote_norm(table[i], -1);
    if (strcmp(trimmed, norm) != 0) {
      bad++;
      if (report)
        report(table[i]);
    }
    g_free(trimmed);
    g_free(norm);
  }
  return bad;
}

gsize
quote_tables_check(void (*report)(const char *entry))
{
  gsize bad = 0;
  for (gsize i = 0; i < G_N_ELEMENTS(strict_shapes); i++) {
    const char *parts[] = {strict_shapes[i].start, strict_shapes[i].middle, strict_shapes[i].end};
    bad += check_list(parts, G_N_ELEMENTS(parts), report);
  }
  for (gsize i = 0; i < G_N_ELEMENTS(loose_shapes); i++) {
    const char *parts[] = {loose_shapes[i].start, loose_shapes[i].middle, loose_shapes[i].end};
    bad += check_list(parts, G_N_ELEMENTS(parts), report);
  }
  for (gsize i = 0; i < G_N_ELEMENTS(field_labels); i++)
    bad += check_list(&field_labels[i].label, 1, report);
  for (gsize i = 0; i < G_N_ELEMENTS(footer_shapes); i++) {
    const char *parts[] = {footer_shapes[i].start, footer_shapes[i].end};
    bad += check_list(parts, G_N_ELEMENTS(parts), report);
  }
  const char *const *lists[] = {phone_labels,  loose_endings,   separator_words,
                                forward_words, forward_phrases, forward_prefixes,
                                device_words,  footer_prefixes, valedictions};
  for (gsize i = 0; i < G_N_ELEMENTS(lists); i++) {
    gsize n = 0;
    while (lists[i][n])
      n++;
    bad += check_list(lists[i], n, report);
  }
  return bad;
}
