/* attestctl peer: mutual attestation between two services over a TCP or
 * UNIX stream socket (lib/peer), then one protected message each way.
 * Everything read from the socket is attacker-supplied; framing is
 * bounded before any allocation. */
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "attester.h"
#include "at_limits.h"
#include "ctl.h"
#include "enc.h"
#include "peer.h"
#include "peer_fd.h"
#include "peer_ear.h"
#include "vclient.h"

/* A handshake that stalls is refused rather than waited on forever. */
#define PEER_IO_TIMEOUT_S 60

static void usage(FILE *f)
{
    fprintf(f, "usage: attestctl peer listen|serve --listen unix:PATH|HOST:PORT OPTIONS\n"
               "       attestctl peer connect --connect unix:PATH|HOST:PORT OPTIONS\n"
               "OPTIONS: --peer-policy FILE.json   what the peer must run (required), or through\n"
               "         the verifier: --verifier URL --peer-policy-name NAME --state-file STATE\n"
               "                                    (STATE from `attestctl attest`: session, key, token)\n"
               "         --root PEM ...             roots the peer's chain must reach\n"
               "                                    (default: the AWS Nitro root G1)\n"
               "         --attester sim|nsm|nitro-tpm   where this side's documents come from\n"
               "         --pki DIR (--sim-pki DIR) --sim-pcr N=HEX ... --sim-format F   simulator\n"
               "         --message TEXT             sent to the peer over the channel\n"
               "         --at UNIX_SECONDS          check the peer's document at this time\n"
               "listen serves one connection. Both print JSON: {\"ok\":true, \"peer\":{...},\n"
               "\"channel_binding\":HEX, \"received\":TEXT} or {\"ok\":false, \"error\":CODE,\n"
               "\"refused_by\":\"self\"|\"peer\", \"message\":...}. Exit 0, 1 refused, 2 usage/IO.\n");
}

typedef struct {
    const char *addr;
    const char *policy_path;
    const char *roots[AT_MAX_ROOTS];
    size_t n_roots;
    at_attester_kind kind;
    at_attester_opts ao;
    bool pcr_set[AT_MAX_PCRS];
    uint8_t pcr[AT_MAX_PCRS][AT_SHA384_LEN];
    const char *message;
    int64_t at_ms;
    const char *verifier, *peer_policy_name, *state_file;
} peer_args;

/* The socket for --listen/--connect (peer_fd.h), its failure said. */
static int open_socket(const char *addr, bool listening)
{
    at_diag d = {{0}};
    int fd = at_peer_fd_open(addr, listening, &d);
    if (fd < 0)
        fprintf(stderr, "attestctl peer: %s\n", d.msg);
    return fd;
}

/* A handshake that failed at rc: tell the peer with an alert unless the
 * peer's own alert ended it (best effort: the refusal stands either way).
 * True when the peer refused. */
static bool refuse_peer(at_peer *p, int fd, at_err rc)
{
    if (at_peer_refused_by_peer(p))
        return true;
    at_buf al;
    at_buf_init(&al);
    at_diag ignore;
    if (at_peer_alert(rc, &al) == AT_OK && at_peer_fd_send(fd, at_buf_span(&al), &ignore) != AT_OK) {
        /* the peer may be gone already */
    }
    at_buf_cleanup(&al);
    return false;
}

static int report_failure(at_err rc, bool by_peer, const at_diag *d)
{
    json_t *o = json_pack("{s:b, s:s, s:s, s:s}", "ok", 0, "error", at_err_str(rc), "refused_by",
                          by_peer ? "peer" : "self", "message", d->msg);
    ctl_print_json(o);
    json_decref(o);
    return CTL_FAILED;
}

static int run(at_peer_role role, const peer_args *a)
{
    int ret = CTL_USAGE, lfd = -1, fd = -1;
    at_diag d = {{0}};
    at_trust *trust = NULL;
    at_policy *policy = NULL;
    at_attester *att = NULL;
    at_peer *p = NULL;
    at_buf in, out, pt;
    at_buf_init(&in);
    at_buf_init(&out);
    at_buf_init_secret(&pt);
    at_err rc = AT_OK;
    bool by_peer = false;

    at_peer_ear *ear = NULL;
    at_peer_prover prover;
    json_t *state = NULL;
    at_peer_opts po = {.role = role, .at_ms = a->at_ms};
    if (a->peer_policy_name) {
        /* Through the verifier: this side's session and token. */
        json_error_t je;
        uint8_t skey[AT_VCLIENT_SESSION_KEY_LEN];
        size_t n = 0;
        const char *skhex;
        state = json_load_file(a->state_file, JSON_REJECT_DUPLICATES, &je);
        skhex = json_string_value(json_object_get(state, "session_key"));
        at_peer_ear_opts eo = {
            .verifier_url = a->verifier ? a->verifier : json_string_value(json_object_get(state, "verifier")),
            .session_id = json_string_value(json_object_get(state, "session")),
            .token = json_string_value(json_object_get(state, "token")),
            .session_key = skey,
            .peer_policy_name = a->peer_policy_name,
            .at_ms = a->at_ms};
        if (!state || !skhex || !eo.session_id || !eo.token || !eo.verifier_url ||
            at_hex_decode(skhex, strlen(skhex), skey, sizeof skey, &n) != AT_OK || n != sizeof skey) {
            fprintf(stderr,
                    "attestctl peer: --state-file %s: expected the state `attestctl attest` writes "
                    "(session, session_key, token, verifier)\n",
                    a->state_file);
            at_wipe(skey, sizeof skey);
            goto done;
        }
        rc = at_peer_ear_new(&eo, &ear, &d);
        at_wipe(skey, sizeof skey);
        if (rc != AT_OK) {
            fprintf(stderr, "attestctl peer: %s\n", d.msg);
            goto done;
        }
        at_peer_ear_prover(ear, &prover);
        po.prover = &prover;
        goto opened;
    }
    uint8_t *txt = NULL;
    size_t len = 0;
    if (ctl_read_file(a->policy_path, AT_POLICY_MAX_JSON_BYTES, &txt, &len) != 0)
        goto done;
    rc = at_policy_parse((const char *)txt, len, &policy, &d);
    free(txt);
    if (rc != AT_OK) {
        fprintf(stderr, "attestctl peer: --peer-policy %s: %s: %s\n", a->policy_path, at_err_str(rc), d.msg);
        goto done;
    }
    if (!(trust = at_trust_new(0)))
        goto done;
    if (a->n_roots == 0 && at_trust_add_aws_root(trust, &d) != AT_OK) {
        fprintf(stderr, "attestctl peer: built-in root: %s\n", d.msg);
        goto done;
    }
    for (size_t i = 0; i < a->n_roots; i++)
        if (at_trust_add_root_file(trust, a->roots[i], &d) != AT_OK) {
            fprintf(stderr, "attestctl peer: --root: %s\n", d.msg);
            goto done;
        }
    if (at_attester_open(a->kind, &a->ao, &att, &d) != AT_OK) {
        fprintf(stderr, "attestctl peer: attester: %s\n", d.msg);
        goto done;
    }
    po.attester = att;
    po.trust = trust;
    po.peer_policy = policy;
opened:
    if (at_peer_new(&po, &p, &d) != AT_OK) {
        fprintf(stderr, "attestctl peer: %s\n", d.msg);
        goto done;
    }
    if (role == AT_PEER_RESPONDER) {
        if ((lfd = open_socket(a->addr, true)) < 0)
            goto done;
        /* The port actually bound (HOST:0 picks a free one), for whoever
         * starts the listener. */
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        char hbuf[NI_MAXHOST], pbuf[NI_MAXSERV];
        if (strncmp(a->addr, "unix:", 5) != 0 && getsockname(lfd, (struct sockaddr *)&ss, &sl) == 0 &&
            getnameinfo((struct sockaddr *)&ss, sl, hbuf, sizeof hbuf, pbuf, sizeof pbuf,
                        NI_NUMERICHOST | NI_NUMERICSERV) == 0)
            fprintf(stderr, "attestctl peer: listening on %s%s%s:%s\n", strchr(hbuf, ':') ? "[" : "", hbuf,
                    strchr(hbuf, ':') ? "]" : "", pbuf);
        else
            fprintf(stderr, "attestctl peer: listening on %s\n", a->addr);
        if ((fd = accept(lfd, NULL, NULL)) < 0) {
            fprintf(stderr, "attestctl peer: accept: %s\n", strerror(errno));
            goto done;
        }
    } else if ((fd = open_socket(a->addr, false)) < 0) {
        goto done;
    }
    struct timeval tv = {.tv_sec = PEER_IO_TIMEOUT_S};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);

    /* Handshake: the initiator speaks first; each received message may
     * produce a reply; a local refusal is told to the peer as an alert. */
    if (role == AT_PEER_INITIATOR) {
        if ((rc = at_peer_start(p, &out, &d)) != AT_OK ||
            (rc = at_peer_fd_send(fd, at_buf_span(&out), &d)) != AT_OK) {
            goto refused;
        }
    }
    while (!at_peer_established(p)) {
        if ((rc = at_peer_fd_recv(fd, AT_PEER_MAX_MESSAGE, &in, &d)) != AT_OK) {
            goto refused;
        }
        at_buf_reset(&out);
        if ((rc = at_peer_handle(p, at_buf_span(&in), &out, &d)) != AT_OK) {
            by_peer = refuse_peer(p, fd, rc);
            goto refused;
        }
        if (out.len && (rc = at_peer_fd_send(fd, at_buf_span(&out), &d)) != AT_OK) {
            goto refused;
        }
    }

    /* One protected message each way, as a request and its response, then
     * close: initiator: send data, receive data, send close, receive close;
     * responder: receive data, send data, send close, receive close. A
     * record this side refuses is told to the peer as an alert. */
    char dflt[64];
    snprintf(dflt, sizeof dflt, "hello from the %s", role == AT_PEER_INITIATOR ? "initiator" : "responder");
    const char *msg = a->message ? a->message : dflt;
    uint8_t cb[AT_PEER_KEY_LEN];
    bool closed = false;
    if ((rc = at_peer_channel_binding(p, cb)) != AT_OK)
        goto refused;
    enum { SEND_DATA, RECV_DATA, SEND_CLOSE, RECV_CLOSE };
    static const int initiator_steps[4] = {SEND_DATA, RECV_DATA, SEND_CLOSE, RECV_CLOSE};
    static const int responder_steps[4] = {RECV_DATA, SEND_DATA, SEND_CLOSE, RECV_CLOSE};
    const int *steps = role == AT_PEER_INITIATOR ? initiator_steps : responder_steps;
    for (int i = 0; i < 4; i++) {
        if (steps[i] == SEND_DATA || steps[i] == SEND_CLOSE) {
            bool close_now = steps[i] == SEND_CLOSE;
            at_buf_reset(&out);
            if ((rc = at_peer_seal(p, close_now, close_now ? AT_SPAN_NULL : AT_SPAN(msg, strlen(msg)), &out,
                                   &d)) != AT_OK ||
                (rc = at_peer_fd_send(fd, at_buf_span(&out), &d)) != AT_OK)
                goto refused;
            continue;
        }
        if ((rc = at_peer_fd_recv(fd, AT_PEER_MAX_RECORD, &in, &d)) != AT_OK)
            goto refused;
        bool want_close = steps[i] == RECV_CLOSE;
        rc = at_peer_open(p, at_buf_span(&in), &pt, &closed, &d);
        if (rc == AT_OK && closed != want_close)
            rc = at_fail(&d, closed ? AT_E_TRUNCATED : AT_E_UNEXPECTED_MESSAGE,
                         closed ? "record: the peer closed before its message"
                                : "record: data where close was expected");
        if (rc != AT_OK) {
            by_peer = refuse_peer(p, fd, rc);
            goto refused;
        }
    }
    if (at_buf_u8(&pt, 0) != AT_OK) /* NUL for printing */
        goto done;
    pt.len--;
    char cbhex[2 * AT_PEER_KEY_LEN + 1];
    at_hex_encode(cb, sizeof cb, cbhex);
    json_t *o = json_pack("{s:b, s:s, s:o, s:s, s:s%}", "ok", 1, "role",
                          role == AT_PEER_INITIATOR ? "initiator" : "responder", "peer", at_peer_info_json(p),
                          "channel_binding", cbhex, "received", pt.p ? (const char *)pt.p : "", pt.len);
    if (!o) {
        fprintf(stderr, "attestctl peer: the peer's message is not UTF-8 text\n");
        goto done;
    }
    ctl_print_json(o);
    json_decref(o);
    at_wipe(cb, sizeof cb);
    ret = CTL_OK;
    goto done;
refused:
    ret = report_failure(rc, by_peer, &d);
done:
    at_peer_free(p);
    at_peer_ear_free(ear);
    if (state) {
        /* the session key's hex is a secret */
        json_t *sk = json_object_get(state, "session_key");
        if (json_is_string(sk))
            at_wipe((char *)json_string_value(sk), json_string_length(sk));
    }
    json_decref(state);
    at_attester_close(att);
    at_policy_free(policy);
    at_trust_unref(trust);
    at_buf_cleanup(&in);
    at_buf_cleanup(&out);
    at_buf_cleanup(&pt);
    if (fd >= 0)
        close(fd);
    if (lfd >= 0) {
        close(lfd);
        if (strncmp(a->addr, "unix:", 5) == 0)
            unlink(a->addr + 5);
    }
    return ret;
}

int cmd_peer(int argc, char **argv)
{
    static const struct option opts[] = {
        {"listen", required_argument, NULL, 'l'},      {"connect", required_argument, NULL, 'c'},
        {"peer-policy", required_argument, NULL, 'P'}, {"root", required_argument, NULL, 'r'},
        {"attester", required_argument, NULL, 'A'},    {"pki", required_argument, NULL, 'k'},
        {"sim-pki", required_argument, NULL, 'k'},     {"sim-pcr", required_argument, NULL, 'p'},
        {"sim-format", required_argument, NULL, 'f'},  {"message", required_argument, NULL, 'm'},
        {"at", required_argument, NULL, 'a'},          {"help", no_argument, NULL, 'h'},
        {"verifier", required_argument, NULL, 'V'},    {"peer-policy-name", required_argument, NULL, 'N'},
        {"state-file", required_argument, NULL, 'S'},  {NULL, 0, NULL, 0}};
    static peer_args a;
    memset(&a, 0, sizeof a);
    a.kind = AT_ATTESTER_SIM;
    int c;
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? CTL_USAGE : CTL_OK;
    }
    const char *sub = argv[1];
    at_peer_role role;
    if (strcmp(sub, "listen") == 0 || strcmp(sub, "serve") == 0)
        role = AT_PEER_RESPONDER;
    else if (strcmp(sub, "connect") == 0)
        role = AT_PEER_INITIATOR;
    else {
        fprintf(stderr, "attestctl peer: unknown subcommand '%s'\n", sub);
        usage(stderr);
        return CTL_USAGE;
    }
    optind = 1;
    argc--;
    argv++;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'l':
        case 'c':
            if ((c == 'l') != (role == AT_PEER_RESPONDER)) {
                fprintf(stderr, "attestctl peer %s: use --%s\n", sub,
                        role == AT_PEER_RESPONDER ? "listen" : "connect");
                return CTL_USAGE;
            }
            a.addr = optarg;
            break;
        case 'P':
            a.policy_path = optarg;
            break;
        case 'r':
            if (a.n_roots == AT_MAX_ROOTS) {
                fprintf(stderr, "attestctl peer: at most %d roots\n", AT_MAX_ROOTS);
                return CTL_USAGE;
            }
            a.roots[a.n_roots++] = optarg;
            break;
        case 'A':
            if (!at_attester_parse(optarg, &a.kind)) {
                fprintf(stderr, "attestctl peer: --attester sim, nsm or nitro-tpm\n");
                return CTL_USAGE;
            }
            break;
        case 'k':
            a.ao.sim_pki = optarg;
            break;
        case 'f':
            if (!at_format_parse(optarg, &a.ao.sim_format)) {
                fprintf(stderr, "attestctl peer: --sim-format nitro-enclave or nitro-tpm\n");
                return CTL_USAGE;
            }
            break;
        case 'p': {
            char *end;
            long idx = strtol(optarg, &end, 10);
            size_t n;
            if (*end != '=' || end == optarg || idx < 0 || idx >= AT_MAX_PCRS ||
                at_hex_decode(end + 1, strlen(end + 1), a.pcr[idx], AT_SHA384_LEN, &n) != AT_OK ||
                n != AT_SHA384_LEN) {
                fprintf(stderr, "attestctl peer: --sim-pcr N=<96 hex>\n");
                return CTL_USAGE;
            }
            a.pcr_set[idx] = true;
            break;
        }
        case 'm':
            a.message = optarg;
            break;
        case 'V':
            a.verifier = optarg;
            break;
        case 'N':
            a.peer_policy_name = optarg;
            break;
        case 'S':
            a.state_file = optarg;
            break;
        case 'a': {
            char *end;
            long long t = strtoll(optarg, &end, 10);
            if (*optarg == '\0' || *end != '\0' || t < 0 || t > 253402300799LL) {
                fprintf(stderr, "attestctl peer: --at: expected UNIX seconds, got '%s'\n", optarg);
                return CTL_USAGE;
            }
            a.at_ms = t * 1000;
            break;
        }
        case 'h':
            usage(stdout);
            return CTL_OK;
        default:
            usage(stderr);
            return CTL_USAGE;
        }
    }
    bool via_verifier = a.peer_policy_name || a.state_file || a.verifier;
    if (optind != argc || !a.addr ||
        (via_verifier ? !a.peer_policy_name || !a.state_file || a.policy_path
                      : !a.policy_path || (a.kind == AT_ATTESTER_SIM && !a.ao.sim_pki))) {
        usage(stderr);
        return CTL_USAGE;
    }
    if (a.message && strlen(a.message) > AT_PEER_MAX_RECORD_PLAINTEXT) {
        fprintf(stderr, "attestctl peer: --message: at most %d bytes\n", AT_PEER_MAX_RECORD_PLAINTEXT);
        return CTL_USAGE;
    }
    a.ao.sim_pcr_set = a.pcr_set;
    a.ao.sim_pcr = (const uint8_t(*)[AT_SHA384_LEN])a.pcr;
    return run(role, &a);
}
