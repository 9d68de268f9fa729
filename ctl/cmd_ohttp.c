/* attestctl ohttp: an Oblivious HTTP client, like curl for sealed endpoints.
 * Encapsulates a Binary HTTP request to a gateway's key configuration,
 * POSTs it, and opens the answer (whole, or chunk by chunk as it streams).
 * Everything the gateway sends back is untrusted until it authenticates. */
/* <stdlib.h> before <curl/curl.h>: curl pulls in <limits.h>, and with the
 * multiarch -I that pkg-config adds, glibc's stdlib.h then trips over
 * MB_LEN_MAX. */
#include "config.h"

#include <stdlib.h>

#include <ctype.h>
#include <curl/curl.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "bhttp.h"
#include "clock.h"
#include "ctl.h"
#include "enc.h"
#include "file.h"
#include "ohttp.h"

/* A key configuration file or ohttp-keys answer is tiny; 64 KiB is ample. */
#define KEY_CONFIG_MAX (64 * 1024)
#define ERROR_TEXT_MAX 4096
#define MAX_HEADERS 64

static int ohttp_usage(FILE *f)
{
    fprintf(f, "usage: attestctl ohttp request --key-config FILE|URL --url URL\n"
               "           [--method METHOD] [--path PATH] [--scheme S] [--authority A]\n"
               "           [--header 'Name: value']... [--data @FILE|-|TEXT] [--chunked] [-v]\n"
               "           [--no-date] [--save-request FILE]\n"
               "\n"
               "Encapsulates a Binary HTTP request (RFC 9292) to the gateway's key\n"
               "configuration (RFC 9458), POSTs it to URL as message/ohttp-req (with\n"
               "--chunked: message/ohttp-chunked-req, and the answer is printed chunk by\n"
               "chunk as it arrives), decapsulates the answer and prints its body on\n"
               "stdout and its status on stderr. The inner request carries a Date\n"
               "(now, unless --header gives one): attest-agent refuses undated\n"
               "requests and replays within its window (RFC 9458 section 6.5).\n"
               "\n"
               "  --key-config  a file holding one key configuration or an\n"
               "                application/ohttp-keys list (raw bytes or base64), or a URL\n"
               "                serving the list (e.g. http://agent/v1/key-config)\n"
               "  --method      inner method (default POST)\n"
               "  --path        inner path (default /v1/chat/completions)\n"
               "  --scheme      inner scheme (default https); --authority (default empty)\n"
               "  --data        inner content: @FILE, - for stdin, or the text itself;\n"
               "                adds content-type: application/json unless a header sets it\n"
               "  -v            also print the inner response's header fields on stderr\n"
               "  --no-date     send no Date (to see a gateway refuse undated requests)\n"
               "  --save-request FILE  also write the encapsulated request as sent (mode\n"
               "                0600; POST it again to see a gateway refuse the replay)\n"
               "\n"
               "Exit: 0 inner status 2xx, 1 other inner status, 2 usage, I/O, transport\n"
               "or cryptographic errors (including a truncated stream).\n");
    return f == stdout ? CTL_OK : CTL_USAGE;
}

static bool is_url(const char *s) { return strncmp(s, "http://", 7) == 0 || strncmp(s, "https://", 8) == 0; }

/* ---- key configuration ---------------------------------------------------- */

static size_t collect_cb(char *ptr, size_t size, size_t nmemb, void *ud)
{
    at_buf *b = ud;
    size_t n = size * nmemb;
    return at_buf_append(b, ptr, n) == AT_OK ? n : 0;
}

static int fetch_url(const char *url, at_buf *out)
{
    CURL *h = curl_easy_init();
    long code = 0;
    if (!h)
        return -1;
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect_cb);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, out);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 10L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 30L);
    CURLcode cc = curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_cleanup(h);
    if (cc != CURLE_OK) {
        fprintf(stderr, "attestctl ohttp: %s: %s\n", url,
                at_buf_status(out) != AT_OK ? "answer too large" : curl_easy_strerror(cc));
        return -1;
    }
    if (code != 200) {
        fprintf(stderr, "attestctl ohttp: %s: HTTP %ld\n", url, code);
        return -1;
    }
    return 0;
}

static int load_key_config(const char *arg, at_ohttp_key_config *kc)
{
    at_buf raw;
    at_diag d = {{0}}, d2 = {{0}};
    uint8_t *p = NULL, *dec = NULL;
    size_t len = 0, dlen = 0;
    int rc = -1;

    at_buf_init(&raw);
    at_buf_set_max(&raw, KEY_CONFIG_MAX);
    if (is_url(arg)) {
        if (fetch_url(arg, &raw) != 0)
            goto out;
    } else {
        if (ctl_read_file(arg, KEY_CONFIG_MAX, &p, &len) != 0)
            goto out;
        if (at_buf_append(&raw, p, len) != AT_OK)
            goto out;
    }
    if (at_ohttp_key_config_load(at_buf_span(&raw), kc, &d) == AT_OK) {
        rc = 0;
        goto out;
    }
    /* Also accept what `hpke keygen` prints: base64 text. */
    size_t s = 0, e = raw.len;
    while (s < e && isspace(raw.p[s]))
        s++;
    while (e > s && isspace(raw.p[e - 1]))
        e--;
    if (e > s && at_b64_decode_new((const char *)raw.p + s, e - s, &dec, &dlen) == AT_OK &&
        at_ohttp_key_config_load(AT_SPAN(dec, dlen), kc, &d2) == AT_OK) {
        rc = 0;
        goto out;
    }
    fprintf(stderr, "attestctl ohttp: --key-config %s: %s\n", arg, d.msg);
out:
    free(p);
    free(dec);
    at_buf_cleanup(&raw);
    return rc;
}

/* ---- the exchange ------------------------------------------------------------ */

typedef struct {
    CURL *h;
    at_ohttp_client *c;
    bool chunked, verbose;
    bool outer_ok;
    long http;
    char ctype[128];
    at_buf raw;     /* whole answer, or the error text of a refusal */
    at_buf plain;   /* decrypted Binary HTTP bytes not yet decoded */
    at_buf content; /* decoded content not yet written */
    at_bhttp_decoder *dec;
    bool head_shown;
    at_err err;
    at_diag d;
} xfer;

static bool media_is(const char *ctype, const char *want)
{
    size_t n = strlen(want);
    if (!ctype || strncasecmp(ctype, want, n) != 0)
        return false;
    char c = ctype[n];
    return c == 0 || c == ';' || c == ' ' || c == '\t';
}

static void show_head(xfer *x, const at_bhttp_msg *m)
{
    if (x->head_shown)
        return;
    x->head_shown = true;
    fprintf(stderr, "HTTP %d\n", m->status);
    if (x->verbose)
        for (size_t i = 0; i < m->headers.n; i++)
            fprintf(stderr, "%s: %s\n", m->headers.v[i].name, m->headers.v[i].value);
}

/* Write decoded content out as soon as it is authenticated. */
static int flush_content(xfer *x)
{
    const at_bhttp_msg *m = at_bhttp_decoder_head(x->dec);
    if (m)
        show_head(x, m);
    if (x->content.len) {
        if (fwrite(x->content.p, 1, x->content.len, stdout) != x->content.len || fflush(stdout) != 0)
            return -1;
        at_buf_reset(&x->content);
    }
    return 0;
}

static at_err decode_plain(xfer *x)
{
    at_err rc = AT_OK;
    if (x->plain.len)
        rc = at_bhttp_decoder_feed(x->dec, at_buf_span(&x->plain), &x->content, &x->d);
    at_buf_reset(&x->plain);
    if (rc == AT_OK && flush_content(x) != 0)
        rc = at_fail(&x->d, AT_E_IO, "stdout: write failed");
    return rc;
}

static size_t write_cb(char *ptr, size_t size, size_t nmemb, void *ud)
{
    xfer *x = ud;
    size_t n = size * nmemb;
    if (!x->outer_ok) {
        size_t room = ERROR_TEXT_MAX - x->raw.len;
        (void)at_buf_append(&x->raw, ptr, n < room ? n : room);
        return n;
    }
    if (!x->chunked) {
        if (at_buf_append(&x->raw, ptr, n) != AT_OK) {
            x->err =
                at_fail(&x->d, AT_E_TOO_LARGE, "encapsulated response: over %d bytes", AT_MAX_OHTTP_MESSAGE);
            return 0;
        }
        return n;
    }
    at_err rc = at_ohttp_client_feed(x->c, AT_SPAN(ptr, n), &x->plain, &x->d);
    if (rc == AT_OK)
        rc = decode_plain(x);
    if (rc != AT_OK) {
        x->err = rc;
        return 0;
    }
    return n;
}

/* The outer status and media type are known once the headers are in. */
static size_t header_cb(char *ptr, size_t size, size_t nmemb, void *ud)
{
    xfer *x = ud;
    size_t n = size * nmemb;
    if (n >= 13 && strncasecmp(ptr, "content-type:", 13) == 0) {
        size_t i = 13;
        while (i < n && (ptr[i] == ' ' || ptr[i] == '\t'))
            i++;
        size_t j = n;
        while (j > i && (ptr[j - 1] == '\r' || ptr[j - 1] == '\n' || ptr[j - 1] == ' '))
            j--;
        size_t len = j - i < sizeof x->ctype - 1 ? j - i : sizeof x->ctype - 1;
        memcpy(x->ctype, ptr + i, len);
        x->ctype[len] = 0;
    } else if (n >= 5 && strncmp(ptr, "HTTP/", 5) == 0) {
        x->ctype[0] = 0; /* a new (possibly final) response starts */
        x->outer_ok = false;
    } else if (n <= 2 && (ptr[0] == '\r' || ptr[0] == '\n')) {
        /* End of a header block: decide whether the body is ours. */
        curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &x->http);
        const char *want = x->chunked ? AT_OHTTP_MEDIA_CHUNKED_RES : AT_OHTTP_MEDIA_RES;
        x->outer_ok = x->http == 200 && media_is(x->ctype, want);
    }
    return n;
}

typedef struct {
    const char *key_config, *url, *method, *path, *scheme, *authority, *data, *save_request;
    const char *headers[MAX_HEADERS];
    size_t nheaders;
    bool chunked, verbose, no_date;
} req_opts;

static int build_request(const req_opts *o, at_buf *bhttp)
{
    at_bhttp_msg *m = NULL;
    at_diag d = {{0}};
    uint8_t *data = NULL;
    size_t dlen = 0;
    int rc = -1;
    bool have_ctype = false, have_date = false;

    if (at_bhttp_request_new(o->method, o->scheme, o->authority, o->path, &m, &d) != AT_OK) {
        fprintf(stderr, "attestctl ohttp: request: %s\n", d.msg);
        goto out;
    }
    if (ctl_bhttp_add_headers(m, o->headers, o->nheaders, &have_ctype, &have_date, &d) != AT_OK) {
        fprintf(stderr, "attestctl ohttp: %s\n", d.msg);
        goto out;
    }
    if (!have_date && !o->no_date) {
        /* RFC 9458 section 6.5: the gateway (attest-agent) refuses requests
         * without a current Date, which bounds its replay memory. */
        char now[40];
        at_http_date(at_now_ms() / 1000, now, sizeof now);
        if (at_bhttp_add_header(m, "date", AT_SPAN(now, strlen(now)), &d) != AT_OK) {
            fprintf(stderr, "attestctl ohttp: date: %s\n", d.msg);
            goto out;
        }
    }
    if (o->data) {
        if (o->data[0] == '@' || strcmp(o->data, "-") == 0) {
            if (ctl_read_file(o->data[0] == '@' ? o->data + 1 : "-", AT_MAX_BHTTP_CONTENT, &data, &dlen) != 0)
                goto out;
        } else {
            dlen = strlen(o->data);
            data = malloc(dlen + 1);
            if (!data)
                goto out;
            memcpy(data, o->data, dlen + 1);
        }
        if (!have_ctype &&
            at_bhttp_add_header(m, "content-type", AT_SPAN("application/json", 16), &d) != AT_OK)
            goto out;
        if (at_bhttp_append_content(m, AT_SPAN(data, dlen), &d) != AT_OK) {
            fprintf(stderr, "attestctl ohttp: --data: %s\n", d.msg);
            goto out;
        }
    }
    if (at_bhttp_encode(m, bhttp, &d) != AT_OK) {
        fprintf(stderr, "attestctl ohttp: request: %s\n", d.msg);
        goto out;
    }
    rc = 0;
out:
    if (data)
        at_wipe_free(data, dlen);
    at_bhttp_msg_free(m);
    return rc;
}

static int run_request(const req_opts *o)
{
    at_ohttp_key_config kc;
    at_buf bhttp, body;
    at_diag d = {{0}};
    xfer x;
    CURL *h = NULL;
    struct curl_slist *hdrs = NULL;
    int rc = CTL_USAGE;

    memset(&x, 0, sizeof x);
    at_buf_init_secret(&bhttp);
    at_buf_init(&body);
    at_buf_init(&x.raw);
    at_buf_init_secret(&x.plain);
    at_buf_init_secret(&x.content);
    at_buf_set_max(&x.raw, (size_t)AT_MAX_OHTTP_MESSAGE + 64);
    x.chunked = o->chunked;
    x.verbose = o->verbose;

    if (load_key_config(o->key_config, &kc) != 0 || build_request(o, &bhttp) != 0)
        goto out;
    if (at_ohttp_client_new(&kc, NULL, o->chunked, &x.c, &d) != AT_OK ||
        (o->chunked ? at_ohttp_client_seal_chunk(x.c, at_buf_span(&bhttp), true, &body, &d)
                    : at_ohttp_client_seal_request(x.c, at_buf_span(&bhttp), &body, &d)) != AT_OK) {
        fprintf(stderr, "attestctl ohttp: encapsulate: %s\n", d.msg);
        goto out;
    }
    if (o->save_request &&
        at_file_write_atomic(o->save_request, at_buf_span(&body), 0600, false, &d) != AT_OK) {
        fprintf(stderr, "attestctl ohttp: --save-request: %s\n", d.msg);
        goto out;
    }
    if (o->chunked && !(x.dec = at_bhttp_decoder_new(AT_BHTTP_RESPONSE)))
        goto out;

    h = x.h = curl_easy_init();
    if (!h)
        goto out;
    hdrs = curl_slist_append(hdrs, o->chunked ? "Content-Type: " AT_OHTTP_MEDIA_CHUNKED_REQ
                                              : "Content-Type: " AT_OHTTP_MEDIA_REQ);
    hdrs = curl_slist_append(hdrs, o->chunked ? "Accept: " AT_OHTTP_MEDIA_CHUNKED_RES
                                              : "Accept: " AT_OHTTP_MEDIA_RES);
    if (o->chunked)
        hdrs = curl_slist_append(hdrs, "Incremental: ?1");
    hdrs = curl_slist_append(hdrs, "Expect:");
    curl_easy_setopt(h, CURLOPT_URL, o->url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_POST, 1L);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body.p);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body.len);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, write_cb);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &x);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, header_cb);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, &x);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 10L);
    CURLcode cc = curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &x.http);

    if (x.err != AT_OK) {
        fprintf(stderr, "attestctl ohttp: answer: %s: %s\n", at_err_str(x.err), x.d.msg);
        goto out;
    }
    if (cc != CURLE_OK) {
        fprintf(stderr, "attestctl ohttp: %s: %s\n", o->url, curl_easy_strerror(cc));
        goto out;
    }
    if (!x.outer_ok) {
        fprintf(stderr, "attestctl ohttp: gateway answered HTTP %ld (%s): %.*s\n", x.http,
                x.ctype[0] ? x.ctype : "no content type", (int)(x.raw.len < 300 ? x.raw.len : 300),
                x.raw.p ? (const char *)x.raw.p : "");
        goto out;
    }
    if (!o->chunked) {
        at_bhttp_msg *m = NULL;
        at_err e = at_ohttp_client_open_response(x.c, at_buf_span(&x.raw), &x.plain, &d);
        if (e == AT_OK)
            e = at_bhttp_decode(at_buf_span(&x.plain), AT_BHTTP_RESPONSE, &m, &d);
        if (e != AT_OK) {
            fprintf(stderr, "attestctl ohttp: answer: %s: %s\n", at_err_str(e), d.msg);
            goto out;
        }
        show_head(&x, m);
        bool ok =
            (m->content.len == 0 || fwrite(m->content.p, 1, m->content.len, stdout) == m->content.len) &&
            fflush(stdout) == 0;
        int status = m->status;
        at_bhttp_msg_free(m);
        if (!ok) {
            fprintf(stderr, "attestctl ohttp: stdout: write failed\n");
            goto out;
        }
        rc = status >= 200 && status <= 299 ? CTL_OK : CTL_FAILED;
        goto out;
    }
    at_err e = at_ohttp_client_finish(x.c, &x.plain, &x.d);
    if (e == AT_OK)
        e = decode_plain(&x);
    if (e == AT_OK)
        e = at_bhttp_decoder_finish(x.dec, &x.d);
    if (e == AT_OK && flush_content(&x) != 0)
        e = at_fail(&x.d, AT_E_IO, "stdout: write failed");
    if (e != AT_OK) {
        fprintf(stderr, "attestctl ohttp: answer: %s: %s\n", at_err_str(e), x.d.msg);
        goto out;
    }
    const at_bhttp_msg *m = at_bhttp_decoder_head(x.dec);
    show_head(&x, m);
    rc = m->status >= 200 && m->status <= 299 ? CTL_OK : CTL_FAILED;
out:
    curl_slist_free_all(hdrs);
    if (h)
        curl_easy_cleanup(h);
    at_ohttp_client_free(x.c);
    at_bhttp_decoder_free(x.dec);
    at_buf_cleanup(&bhttp);
    at_buf_cleanup(&body);
    at_buf_cleanup(&x.raw);
    at_buf_cleanup(&x.plain);
    at_buf_cleanup(&x.content);
    return rc;
}

static int request(int argc, char **argv)
{
    static const struct option opts[] = {{"key-config", required_argument, NULL, 'k'},
                                         {"url", required_argument, NULL, 'u'},
                                         {"method", required_argument, NULL, 'X'},
                                         {"path", required_argument, NULL, 'p'},
                                         {"scheme", required_argument, NULL, 's'},
                                         {"authority", required_argument, NULL, 'a'},
                                         {"header", required_argument, NULL, 'H'},
                                         {"data", required_argument, NULL, 'd'},
                                         {"chunked", no_argument, NULL, 'c'},
                                         {"verbose", no_argument, NULL, 'v'},
                                         {"no-date", no_argument, NULL, 'N'},
                                         {"save-request", required_argument, NULL, 'S'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    req_opts o = {.method = "POST", .path = "/v1/chat/completions", .scheme = "https", .authority = ""};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "k:u:X:H:d:vh", opts, NULL)) != -1) {
        switch (c) {
        case 'k':
            o.key_config = optarg;
            break;
        case 'u':
            o.url = optarg;
            break;
        case 'X':
            o.method = optarg;
            break;
        case 'p':
            o.path = optarg;
            break;
        case 's':
            o.scheme = optarg;
            break;
        case 'a':
            o.authority = optarg;
            break;
        case 'H':
            if (o.nheaders == MAX_HEADERS) {
                fprintf(stderr, "attestctl ohttp: more than %d --header\n", MAX_HEADERS);
                return CTL_USAGE;
            }
            o.headers[o.nheaders++] = optarg;
            break;
        case 'd':
            o.data = optarg;
            break;
        case 'c':
            o.chunked = true;
            break;
        case 'v':
            o.verbose = true;
            break;
        case 'N':
            o.no_date = true;
            break;
        case 'S':
            o.save_request = optarg;
            break;
        case 'h':
            return ohttp_usage(stdout);
        default:
            return ohttp_usage(stderr);
        }
    }
    if (!o.key_config || !o.url || optind != argc)
        return ohttp_usage(stderr);
    if (!is_url(o.url)) {
        fprintf(stderr, "attestctl ohttp: --url: expected http:// or https://, got '%s'\n", o.url);
        return CTL_USAGE;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "attestctl ohttp: curl_global_init failed\n");
        return CTL_USAGE;
    }
    int rc = run_request(&o);
    curl_global_cleanup();
    return rc;
}

int cmd_ohttp(int argc, char **argv)
{
    if (argc < 2)
        return ohttp_usage(stderr);
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)
        return ohttp_usage(stdout);
    if (strcmp(argv[1], "request") == 0)
        return request(argc - 1, argv + 1);
    fprintf(stderr, "attestctl ohttp: unknown command '%s'\n", argv[1]);
    return ohttp_usage(stderr);
}
