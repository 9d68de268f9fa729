/* examples/peer_service: two microservices that attest each other and then
 * talk request/response over the protected channel (lib/peer), e.g. a RAG
 * component (client) calling an LLM server (server), each in its own
 * enclave. The point is how little an application adds to lib/peer: open a
 * socket, run the handshake, then one record per request and per answer.
 *
 *   peer_service server --listen HOST:PORT PROOF [--count N]
 *   peer_service client --connect HOST:PORT PROOF REQUEST...
 *   PROOF: --attester sim|nsm|nitro-tpm [--pki DIR] [--sim-pcr N=HEX]...
 *          --root PEM --peer-policy FILE          (peer to peer), or
 *          --state-file STATE --peer-policy-name NAME   (through the verifier;
 *          STATE from `attestctl attest`)
 *
 * The server answers every request with {"answer": "...", "caller": the
 * module id or instance the client proved, "request_bytes": n} and serves
 * --count connections (default 1), one at a time. The client ends with a
 * CLOSE record once it has read every answer. The client prints one
 * line per answer. Exit 0, 1 refused (the code on stderr), 2 usage/IO.
 * Everything read from the socket is attacker-supplied: frames are bounded
 * before any allocation and every byte goes through lib/peer. */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "attester.h"
#include "enc.h"
#include "peer.h"
#include "peer_fd.h"
#include "peer_ear.h"
#include "policy.h"
#include "vclient.h"
#include "x509v.h"

typedef struct {
    bool server;
    const char *addr, *root, *policy_path, *state_path, *policy_name;
    at_attester_kind kind;
    at_attester_opts ao;
    bool pcr_set[AT_MAX_PCRS];
    uint8_t pcr[AT_MAX_PCRS][AT_SHA384_LEN];
    int count;
} opts;

/* What this side proves and expects, for the lifetime of the process. */
typedef struct {
    at_attester *att;
    at_trust *trust;
    at_policy *policy;
    at_peer_ear *ear;
    at_peer_prover prover;
} proof;

/* Handshake on fd; on a local refusal the peer is told with an alert. */
static at_err handshake(proof *pr, bool server, int fd, at_peer **out, at_diag *d)
{
    at_peer_opts o = {.role = server ? AT_PEER_RESPONDER : AT_PEER_INITIATOR};
    if (pr->ear) {
        o.prover = &pr->prover;
    } else {
        o.attester = pr->att;
        o.trust = pr->trust;
        o.peer_policy = pr->policy;
    }
    at_peer *p = NULL;
    at_buf in, msg;
    at_buf_init(&in);
    at_buf_init(&msg);
    at_err rc = at_peer_new(&o, &p, d);
    if (rc == AT_OK && !server && (rc = at_peer_start(p, &msg, d)) == AT_OK)
        rc = at_peer_fd_send(fd, at_buf_span(&msg), d);
    while (rc == AT_OK && !at_peer_established(p)) {
        if ((rc = at_peer_fd_recv(fd, AT_PEER_MAX_MESSAGE, &in, d)) != AT_OK)
            break;
        at_buf_reset(&msg);
        if ((rc = at_peer_handle(p, at_buf_span(&in), &msg, d)) != AT_OK) {
            at_buf al;
            at_buf_init(&al);
            at_diag ignore = {{0}};
            if (!at_peer_refused_by_peer(p) && at_peer_alert(rc, &al) == AT_OK &&
                at_peer_fd_send(fd, at_buf_span(&al), &ignore) != AT_OK) {
                /* the peer is gone: nothing more to tell it */
            }
            at_buf_cleanup(&al);
            break;
        }
        if (msg.len)
            rc = at_peer_fd_send(fd, at_buf_span(&msg), d);
    }
    at_buf_cleanup(&in);
    at_buf_cleanup(&msg);
    if (rc != AT_OK) {
        at_peer_free(p);
        return rc;
    }
    *out = p;
    return AT_OK;
}

/* One record out (data or close). */
static at_err send_record(int fd, at_peer *p, bool close, at_span pt, at_diag *d)
{
    at_buf r;
    at_buf_init(&r);
    at_err rc = at_peer_seal(p, close, pt, &r, d);
    if (rc == AT_OK)
        rc = at_peer_fd_send(fd, at_buf_span(&r), d);
    at_buf_cleanup(&r);
    return rc;
}

static at_err recv_record(int fd, at_peer *p, at_buf *pt, bool *closed, at_diag *d)
{
    at_buf r;
    at_buf_init(&r);
    at_err rc = at_peer_fd_recv(fd, AT_PEER_MAX_RECORD, &r, d);
    at_buf_reset(pt);
    if (rc == AT_OK)
        rc = at_peer_open(p, at_buf_span(&r), pt, closed, d);
    at_buf_cleanup(&r);
    return rc;
}

static const char *caller_name(at_peer *p, char *buf, size_t n)
{
    json_t *info = at_peer_info_json(p);
    const char *s = json_string_value(json_object_get(info, "instance_id"));
    if (!s)
        s = json_string_value(json_object_get(info, "module_id"));
    snprintf(buf, n, "%s", s ? s : "?");
    json_decref(info);
    return buf;
}

/* Server: each request record gets one answer record; CLOSE ends it. */
static at_err serve_one(at_peer *p, int fd, at_diag *d)
{
    at_buf req;
    at_buf_init_secret(&req);
    char who[200];
    caller_name(p, who, sizeof who);
    at_err rc;
    for (;;) {
        bool closed = false;
        if ((rc = recv_record(fd, p, &req, &closed, d)) != AT_OK)
            break;
        if (closed)
            break; /* the client is done: every answer was read */
        /* The application: here an echo that names its caller. */
        json_t *a = json_pack("{s:s%,s:s,s:I}", "answer", req.len ? (const char *)req.p : "", req.len,
                              "caller", who, "request_bytes", (json_int_t)req.len);
        char *txt = a ? json_dumps(a, JSON_COMPACT) : NULL;
        json_decref(a);
        if (!txt) {
            rc = at_fail(d, AT_E_BAD_FIELD, "request: not UTF-8 text");
            break;
        }
        size_t n = strlen(txt);
        rc = n <= AT_PEER_MAX_RECORD_PLAINTEXT ? send_record(fd, p, false, AT_SPAN(txt, n), d)
                                               : at_fail(d, AT_E_TOO_LARGE, "answer: %zu bytes", n);
        free(txt);
        if (rc != AT_OK)
            break;
    }
    at_buf_cleanup(&req);
    return rc;
}

static int setup(const opts *o, proof *pr, at_diag *d)
{
    if (o->policy_name) {
        json_error_t je;
        json_t *st = json_load_file(o->state_path, JSON_REJECT_DUPLICATES, &je);
        const char *skhex = json_string_value(json_object_get(st, "session_key"));
        uint8_t key[AT_VCLIENT_SESSION_KEY_LEN];
        size_t n = 0;
        at_peer_ear_opts eo = {.verifier_url = json_string_value(json_object_get(st, "verifier")),
                               .session_id = json_string_value(json_object_get(st, "session")),
                               .token = json_string_value(json_object_get(st, "token")),
                               .session_key = key,
                               .peer_policy_name = o->policy_name};
        int ok = skhex && at_hex_decode(skhex, strlen(skhex), key, sizeof key, &n) == AT_OK &&
                 n == sizeof key && at_peer_ear_new(&eo, &pr->ear, d) == AT_OK;
        at_wipe(key, sizeof key);
        if (json_is_string(json_object_get(st, "session_key")))
            at_wipe((char *)skhex, strlen(skhex));
        json_decref(st);
        if (!ok)
            return -1;
        at_peer_ear_prover(pr->ear, &pr->prover);
        return 0;
    }
    FILE *f = fopen(o->policy_path, "rb");
    char buf[AT_POLICY_MAX_JSON_BYTES];
    size_t len = f ? fread(buf, 1, sizeof buf, f) : 0;
    if (f)
        fclose(f);
    if (!f || at_policy_parse(buf, len, &pr->policy, d) != AT_OK)
        return -1;
    if (!(pr->trust = at_trust_new(0)) || at_trust_add_root_file(pr->trust, o->root, d) != AT_OK)
        return -1;
    return at_attester_open(o->kind, &o->ao, &pr->att, d) == AT_OK ? 0 : -1;
}

static void usage(void)
{
    fprintf(stderr, "usage: peer_service server --listen HOST:PORT PROOF [--count N]\n"
                    "       peer_service client --connect HOST:PORT PROOF REQUEST...\n"
                    "PROOF: --attester sim|nsm|nitro-tpm [--pki DIR] [--sim-pcr N=HEX]... --root PEM\n"
                    "       --peer-policy FILE, or --state-file STATE --peer-policy-name NAME\n");
}

int main(int argc, char **argv)
{
    static const struct option lo[] = {{"listen", required_argument, NULL, 'l'},
                                       {"connect", required_argument, NULL, 'c'},
                                       {"attester", required_argument, NULL, 'A'},
                                       {"pki", required_argument, NULL, 'k'},
                                       {"sim-pcr", required_argument, NULL, 'p'},
                                       {"root", required_argument, NULL, 'r'},
                                       {"peer-policy", required_argument, NULL, 'P'},
                                       {"state-file", required_argument, NULL, 'S'},
                                       {"peer-policy-name", required_argument, NULL, 'N'},
                                       {"count", required_argument, NULL, 'n'},
                                       {NULL, 0, NULL, 0}};
    static opts o;
    o.kind = AT_ATTESTER_SIM;
    o.count = 1;
    if (argc < 2 || (strcmp(argv[1], "server") != 0 && strcmp(argv[1], "client") != 0)) {
        usage();
        return 2;
    }
    o.server = strcmp(argv[1], "server") == 0;
    argc--;
    argv++;
    int c;
    while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (c) {
        case 'l':
        case 'c':
            o.addr = optarg;
            break;
        case 'A':
            if (!at_attester_parse(optarg, &o.kind)) {
                usage();
                return 2;
            }
            break;
        case 'k':
            o.ao.sim_pki = optarg;
            break;
        case 'p': {
            char *end;
            long i = strtol(optarg, &end, 10);
            size_t n = 0;
            if (*end != '=' || i < 0 || i >= AT_MAX_PCRS ||
                at_hex_decode(end + 1, strlen(end + 1), o.pcr[i], AT_SHA384_LEN, &n) != AT_OK ||
                n != AT_SHA384_LEN) {
                usage();
                return 2;
            }
            o.pcr_set[i] = true;
            break;
        }
        case 'r':
            o.root = optarg;
            break;
        case 'P':
            o.policy_path = optarg;
            break;
        case 'S':
            o.state_path = optarg;
            break;
        case 'N':
            o.policy_name = optarg;
            break;
        case 'n':
            o.count = atoi(optarg);
            break;
        default:
            usage();
            return 2;
        }
    }
    o.ao.sim_pcr_set = o.pcr_set;
    o.ao.sim_pcr = (const uint8_t(*)[AT_SHA384_LEN])o.pcr;
    bool via_verifier = o.policy_name && o.state_path;
    if (!o.addr || (!via_verifier && (!o.root || !o.policy_path)) || (!o.server && optind >= argc) ||
        (o.server && optind != argc) || o.count < 1) {
        usage();
        return 2;
    }
    proof pr = {0};
    at_diag d = {{0}};
    int ret = 2, lfd = -1;
    if (setup(&o, &pr, &d) != 0) {
        fprintf(stderr, "peer_service: setup: %s\n", d.msg[0] ? d.msg : "bad policy, state or root file");
        goto done;
    }
    ret = 0;
    if (o.server) {
        at_diag od = {{0}};
        if ((lfd = at_peer_fd_open(o.addr, true, &od)) < 0) {
            fprintf(stderr, "peer_service: listen %s\n", od.msg);
            ret = 2;
            goto done;
        }
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        char h[NI_MAXHOST], port[NI_MAXSERV];
        if (getsockname(lfd, (struct sockaddr *)&ss, &sl) == 0 &&
            getnameinfo((struct sockaddr *)&ss, sl, h, sizeof h, port, sizeof port,
                        NI_NUMERICHOST | NI_NUMERICSERV) == 0)
            fprintf(stderr, "peer_service: listening on %s:%s\n", h, port);
        for (int i = 0; i < o.count; i++) {
            int fd = accept(lfd, NULL, NULL);
            if (fd < 0)
                continue;
            at_peer *p = NULL;
            at_err rc = handshake(&pr, true, fd, &p, &d);
            if (rc == AT_OK)
                rc = serve_one(p, fd, &d);
            if (rc != AT_OK) {
                fprintf(stderr, "peer_service: connection %d: %s: %s\n", i + 1, at_err_str(rc), d.msg);
                ret = 1;
            } else {
                char who[200];
                fprintf(stderr, "peer_service: connection %d from %s done\n", i + 1,
                        caller_name(p, who, sizeof who));
            }
            at_peer_free(p);
            close(fd);
        }
        goto done;
    }
    at_diag cd = {{0}};
    int fd = at_peer_fd_open(o.addr, false, &cd);
    if (fd < 0) {
        fprintf(stderr, "peer_service: connect %s\n", cd.msg);
        ret = 2;
        goto done;
    }
    at_peer *p = NULL;
    at_buf ans;
    at_buf_init_secret(&ans);
    at_err rc = handshake(&pr, false, fd, &p, &d);
    for (int i = optind; rc == AT_OK && i < argc; i++) {
        bool closed = false;
        size_t n = strlen(argv[i]);
        if (n > AT_PEER_MAX_RECORD_PLAINTEXT)
            rc = at_fail(&d, AT_E_TOO_LARGE, "request: %zu bytes", n);
        if (rc == AT_OK && (rc = send_record(fd, p, false, AT_SPAN(argv[i], n), &d)) == AT_OK &&
            (rc = recv_record(fd, p, &ans, &closed, &d)) == AT_OK) {
            if (closed)
                rc = at_fail(&d, AT_E_TRUNCATED, "the server closed before answering");
            else
                printf("%.*s\n", (int)ans.len, ans.len ? (const char *)ans.p : "");
        }
    }
    /* CLOSE tells the server that the stream ends here on purpose (a stream
     * cut without it is truncation). */
    if (rc == AT_OK)
        rc = send_record(fd, p, true, AT_SPAN_NULL, &d);
    if (rc != AT_OK) {
        fprintf(stderr, "peer_service: %s: %s\n", at_err_str(rc), d.msg);
        ret = 1;
    }
    at_buf_cleanup(&ans);
    at_peer_free(p);
    close(fd);
done:
    if (lfd >= 0)
        close(lfd);
    at_peer_ear_free(pr.ear);
    at_attester_close(pr.att);
    at_policy_free(pr.policy);
    at_trust_unref(pr.trust);
    return ret;
}
