/* attestctl attest / attestctl secret release: the agent's side of the
 * verifier protocol in one process, for scripts, tests and debugging:
 * challenge -> simulated document carrying the nonce and the key
 * configuration of KEYFILE -> attestation -> open the sealed session key;
 * then release secrets with session-key proofs. The session state (id,
 * session key) goes to a 0600 state file, never to stdout. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "binding.h"
#include "ctl.h"
#include "enc.h"
#include "ohttp.h"
#include "seal.h"
#include "vclient.h"
#include "attester.h"
#include "sim.h"

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: attestctl attest --policy NAME --key-file KEYFILE --state-file OUT\n"
               "                 [--attester sim|nsm|nitro-tpm] [--pki DIR] [--endpoint URL]\n"
               "                 [--format nitro-enclave|nitro-tpm] [--pcr N=HEX]... [--module-id ID]\n"
               "                 [--no-nonce] [--verifier URL]\n"
               "The document binds (user_data) purpose session and --endpoint, if given.\n"
               "--attester: sim (default; --pki DIR), nsm (/dev/nsm inside a Nitro Enclave) or\n"
               "nitro-tpm (AWS's nitro-tpm-attest on an attestable-AMI instance; $NITRO_TPM_ATTEST).\n"
               "attest plays the agent once: it prints the verifier's answer (without the sealed\n"
               "key) and keeps the opened session key in the 0600 state file.\n");
}

static int open_keyset(const char *path, at_ohttp_keyset **ks, const at_hpke_key **key, at_buf *kc)
{
    at_diag d = {{0}};
    at_ohttp_key_config cfg;
    if (at_ohttp_keyset_load(path, ks, &d) != AT_OK || at_ohttp_keyset_count(*ks) == 0) {
        fprintf(stderr, "attestctl: %s: %s\n", path, d.msg[0] ? d.msg : "no key");
        return -1;
    }
    uint8_t id = at_ohttp_keyset_id(*ks, 0);
    *key = at_ohttp_keyset_key(*ks, id);
    if (!*key || at_ohttp_keyset_config(*ks, id, &cfg, &d) != AT_OK ||
        (kc && at_ohttp_key_config_encode(&cfg, kc, &d) != AT_OK)) {
        fprintf(stderr, "attestctl: %s: %s\n", path, d.msg);
        return -1;
    }
    return 0;
}

int cmd_attest(int argc, char **argv)
{
    static const struct option opts[] = {
        {"policy", required_argument, NULL, 'P'},    {"pki", required_argument, NULL, 'k'},
        {"key-file", required_argument, NULL, 'K'},  {"state-file", required_argument, NULL, 's'},
        {"format", required_argument, NULL, 'f'},    {"pcr", required_argument, NULL, 'p'},
        {"endpoint", required_argument, NULL, 'e'},  {"no-nonce", no_argument, NULL, 'n'},
        {"verifier", required_argument, NULL, 'v'},  {"help", no_argument, NULL, 'h'},
        {"module-id", required_argument, NULL, 'm'}, {"attester", required_argument, NULL, 'A'},
        {"user-data", required_argument, NULL, 'u'}, {NULL, 0, NULL, 0}};
    const char *policy = NULL, *pki_dir = NULL, *key_file = NULL, *state = NULL, *endpoint = NULL;
    bool no_nonce = false;
    at_attester_kind kind = AT_ATTESTER_SIM;
    ctl_client cl;
    ctl_client_defaults(&cl);
    at_sim_doc_opts o = {0};
    int c, ret = CTL_USAGE;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'P':
            policy = optarg;
            break;
        case 'k':
            pki_dir = optarg;
            break;
        case 'K':
            key_file = optarg;
            break;
        case 's':
            state = optarg;
            break;
        case 'e':
            endpoint = optarg;
            break;
        case 'n':
            no_nonce = true;
            break;
        case 'm':
            o.module_id = optarg;
            break;
        case 'A':
            if (!at_attester_parse(optarg, &kind)) {
                fprintf(stderr, "attestctl attest: --attester sim, nsm or nitro-tpm\n");
                return CTL_USAGE;
            }
            break;
        case 'u':
            /* user_data carries the session binding (lib/binding). */
            fprintf(stderr, "attestctl attest: --user-data: the document's user_data binds purpose"
                            " session and --endpoint; other user data cannot make a session\n");
            return CTL_USAGE;
        case 'v':
            snprintf(cl.url, sizeof cl.url, "%s", optarg);
            break;
        case 'f':
            if (!at_format_parse(optarg, &o.format)) {
                usage(stderr);
                return CTL_USAGE;
            }
            break;
        case 'p': {
            char *end;
            long idx = strtol(optarg, &end, 10);
            size_t n;
            if (*end != '=' || idx < 0 || idx > 31 ||
                at_hex_decode(end + 1, strlen(end + 1), o.pcr[idx], AT_SHA384_LEN, &n) != AT_OK ||
                n != AT_SHA384_LEN) {
                fprintf(stderr, "attestctl attest: --pcr N=<96 hex>\n");
                return CTL_USAGE;
            }
            o.pcr_set[idx] = true;
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
    if (!policy || !key_file || !state || (kind == AT_ATTESTER_SIM && !pki_dir)) {
        fprintf(stderr, "attestctl attest: missing %s\n",
                !policy     ? "--policy NAME"
                : !key_file ? "--key-file KEYFILE"
                : !state    ? "--state-file OUT"
                            : "--pki DIR (for --attester sim)");
        return CTL_USAGE;
    }
    at_ohttp_keyset *ks = NULL;
    const at_hpke_key *key = NULL;
    at_attester *att = NULL;
    at_buf kc, doc, bind;
    at_buf_init(&kc);
    at_buf_init(&doc);
    at_buf_init(&bind);
    json_t *out = NULL;
    uint8_t nonce[AT_VCLIENT_NONCE_MAX];
    size_t nonce_len = 0;
    long status = 0;
    at_vclient_session sess;
    at_vclient vc = {.url = cl.url, .bearer = cl.token};
    at_diag d = {{0}};
    if (open_keyset(key_file, &ks, &key, &kc) != 0)
        goto done;
    at_attester_opts ao = {.sim_pki = pki_dir,
                           .sim_format = o.format,
                           .sim_pcr_set = o.pcr_set,
                           .sim_pcr = (const uint8_t(*)[AT_SHA384_LEN])o.pcr,
                           .sim_module_id = o.module_id};
    if (at_attester_open(kind, &ao, &att, &d) != AT_OK) {
        fprintf(stderr, "attestctl attest: %s\n", d.msg);
        goto done;
    }
    if (!no_nonce) {
        if (at_vclient_challenge(&vc, nonce, &nonce_len, &status, &d) != AT_OK) {
            fprintf(stderr, "attestctl attest: %s\n", d.msg);
            goto failed;
        }
        o.has_nonce = true;
        o.nonce = AT_SPAN(nonce, nonce_len);
    }
    if (at_binding_encode(AT_PURPOSE_SESSION, endpoint, &bind, &d) != AT_OK ||
        at_attester_document(att, o.nonce, at_buf_span(&bind), at_buf_span(&kc), &doc, &d) != AT_OK) {
        fprintf(stderr, "attestctl attest: %s\n", d.msg);
        goto done;
    }
    if (at_vclient_attest(&vc, at_buf_span(&doc), policy, endpoint, key, &sess, &status, &out, &d) != AT_OK) {
        if (status == 0) {
            fprintf(stderr, "attestctl attest: %s\n", d.msg);
            goto done; /* no answer: CTL_USAGE, as before */
        }
        if (status < 200 || status >= 300) {
            fprintf(stderr, "attestctl attest: %s\n", d.msg);
            if (out)
                ctl_print_json(out);
        } else {
            fprintf(stderr, "attestctl attest: cannot open the sealed session key: %s\n", d.msg);
        }
        goto failed;
    }
    char hex[2 * AT_VCLIENT_SESSION_KEY_LEN + 1];
    at_hex_encode(sess.key, sizeof sess.key, hex);
    json_t *st = json_object();
    json_object_set_new(st, "session", json_string(sess.id));
    json_object_set_new(st, "session_key", json_string(hex));
    json_object_set_new(st, "key_file", json_string(key_file));
    json_object_set_new(st, "verifier", json_string(cl.url));
    /* The EAR token, for `attestctl peer --state-file` (the verifier variant). */
    json_object_set(st, "token", json_object_get(out, "token"));
    char *txt = json_dumps(st, JSON_COMPACT);
    json_decref(st);
    at_wipe(hex, sizeof hex);
    int wrc = txt ? ctl_write_file(state, txt, strlen(txt), 0600) : -1;
    if (txt)
        at_wipe_free(txt, strlen(txt));
    if (wrc != 0)
        goto done;
    ctl_print_json(out); /* without the sealed key (at_vclient_attest removed it) */
    ret = CTL_OK;
    goto done;
failed:
    ret = CTL_FAILED;
done:
    at_wipe(&sess, sizeof sess);
    json_decref(out);
    at_buf_cleanup(&kc);
    at_buf_cleanup(&doc);
    at_buf_cleanup(&bind);
    at_attester_close(att);
    at_ohttp_keyset_free(ks);
    return ret;
}

static void release_usage(FILE *f)
{
    fprintf(f, "usage: attestctl secret release NAME --state-file F [--timestamp-ms T] [-o OUT]\n");
}

/* attestctl secret release NAME --state-file F [--timestamp-ms T] [-o OUT] */
int ctl_secret_release(int argc, char **argv)
{
    static const struct option opts[] = {{"state-file", required_argument, NULL, 's'},
                                         {"timestamp-ms", required_argument, NULL, 't'},
                                         {"verifier", required_argument, NULL, 'v'},
                                         {NULL, 0, NULL, 0}};
    const char *state = NULL, *out_path = "-", *verifier = NULL;
    int64_t ts = 0;
    int c, ret = CTL_USAGE;
    optind = 1;
    while ((c = getopt_long(argc - 1, argv + 1, "o:", opts, NULL)) != -1) {
        switch (c) {
        case 's':
            state = optarg;
            break;
        case 't':
            ts = strtoll(optarg, NULL, 10);
            break;
        case 'v':
            verifier = optarg;
            break;
        case 'o':
            out_path = optarg;
            break;
        default:
            release_usage(stderr);
            return CTL_USAGE;
        }
    }
    if (!state || argc < 2) {
        fprintf(stderr, "attestctl secret release: missing --state-file F\n");
        release_usage(stderr);
        return CTL_USAGE;
    }
    const char *name = argv[1];
    json_error_t je;
    json_t *st = json_load_file(state, 0, &je);
    if (!st && je.line < 1) { /* absent or unreadable: say so, not "not a state file" */
        ctl_json_load_error("secret release", state, &je);
        return CTL_USAGE;
    }
    const char *sid = json_string_value(json_object_get(st, "session"));
    const char *skhex = json_string_value(json_object_get(st, "session_key"));
    const char *kf = json_string_value(json_object_get(st, "key_file"));
    uint8_t skey[AT_VCLIENT_SESSION_KEY_LEN];
    size_t n = 0;
    long status = 0;
    at_ohttp_keyset *ks = NULL;
    const at_hpke_key *key = NULL;
    at_buf value;
    at_buf_init_secret(&value);
    at_diag d = {{0}};
    ctl_client cl;
    ctl_client_defaults(&cl);
    const char *vurl = verifier ? verifier : json_string_value(json_object_get(st, "verifier"));
    if (vurl)
        snprintf(cl.url, sizeof cl.url, "%s", vurl);
    at_vclient vc = {.url = cl.url, .bearer = cl.token};
    if (!sid || !skhex || !kf || at_hex_decode(skhex, strlen(skhex), skey, sizeof skey, &n) != AT_OK ||
        n != sizeof skey) {
        fprintf(stderr, "attestctl secret release: %s: not a state file from 'attestctl attest'\n", state);
        goto done;
    }
    if (open_keyset(kf, &ks, &key, NULL) != 0)
        goto done;
    if (at_vclient_release(&vc, sid, skey, name, ts ? ts : wall_ms(), key, &value, &status, &d) != AT_OK) {
        if (status == 0) {
            fprintf(stderr, "attestctl secret release: %s\n", d.msg);
            ret = CTL_USAGE;
        } else if (status < 200 || status >= 300) {
            fprintf(stderr, "attestctl secret release: %s\n", d.msg);
            ret = CTL_FAILED;
        } else {
            fprintf(stderr, "attestctl secret release: cannot open the released secret: %s\n", d.msg);
            ret = CTL_FAILED;
        }
        goto done;
    }
    ret = ctl_write_file(out_path, value.p ? value.p : (const uint8_t *)"", value.len, 0600) == 0 ? CTL_OK
                                                                                                  : CTL_USAGE;
done:
    at_wipe(skey, sizeof skey);
    at_buf_cleanup(&value);
    at_ohttp_keyset_free(ks);
    json_decref(st);
    return ret;
}
