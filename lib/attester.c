/* attester: NSM ioctl, nitro-tpm-attest and the simulator behind one call. */
#include "attester.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "at_limits.h"
#include "cbor_rd.h"
#include "cbor_wr.h"
#include "sim.h"

/* The NSM driver's single ioctl (aws-nitro-enclaves-nsm-api):
 * _IOWR(0x0A, 0, struct { struct iovec request; struct iovec response; }).
 * Requests are at most 0x1000 bytes; responses fit in 0x3000. */
struct nsm_message {
    struct iovec request;
    struct iovec response;
};
#define NSM_IOCTL_REQUEST _IOWR(0x0A, 0, struct nsm_message)
#define NSM_REQUEST_MAX 0x1000
#define NSM_RESPONSE_MAX 0x3000

struct at_attester {
    at_attester_kind kind;
    at_attester_opts o;
    at_sim_pki *pki;
    int nsm_fd;
    /* sim: the PCRs documents carry (defaults, then the caller's, then
     * extensions) */
    bool pcr_set[AT_MAX_PCRS];
    uint8_t pcr[AT_MAX_PCRS][AT_SHA384_LEN];
};

bool at_attester_parse(const char *name, at_attester_kind *out)
{
    if (strcmp(name, "sim") == 0)
        *out = AT_ATTESTER_SIM;
    else if (strcmp(name, "nsm") == 0)
        *out = AT_ATTESTER_NSM;
    else if (strcmp(name, "nitro-tpm") == 0)
        *out = AT_ATTESTER_NITRO_TPM;
    else
        return false;
    return true;
}

at_err at_attester_open(at_attester_kind kind, const at_attester_opts *o, at_attester **out, at_diag *d)
{
    at_attester *a = calloc(1, sizeof *a);
    if (!a)
        return at_fail(d, AT_E_INTERNAL, "out of memory");
    a->kind = kind;
    a->o = *o;
    a->nsm_fd = -1;
    at_err rc = AT_OK;
    if (kind == AT_ATTESTER_SIM) {
        rc = o->sim_pki ? at_sim_pki_load(o->sim_pki, &a->pki, d)
                        : at_fail(d, AT_E_BAD_REQUEST, "attester sim: a PKI directory is required");
        if (rc == AT_OK) {
            at_format f =
                o->sim_format == AT_FORMAT_NITRO_TPM ? AT_FORMAT_NITRO_TPM : AT_FORMAT_NITRO_ENCLAVE;
            const char *iid = at_sim_instance_id(a->pki);
            at_sim_default_pcrs(f, AT_SPAN(iid, strlen(iid)), a->pcr_set, a->pcr);
            for (int i = 0; o->sim_pcr_set && i < AT_MAX_PCRS; i++)
                if (o->sim_pcr_set[i]) {
                    a->pcr_set[i] = true;
                    memcpy(a->pcr[i], o->sim_pcr[i], AT_SHA384_LEN);
                }
        }
    } else if (kind == AT_ATTESTER_NSM) {
        const char *dev = o->nsm_device ? o->nsm_device : "/dev/nsm";
        a->nsm_fd = open(dev, O_RDWR | O_CLOEXEC);
        if (a->nsm_fd < 0)
            rc = at_fail(d, AT_E_UNAVAILABLE, "attester nsm: %s: %s (run inside a Nitro Enclave)", dev,
                         strerror(errno));
    }
    if (rc != AT_OK) {
        at_attester_close(a);
        return rc;
    }
    *out = a;
    return AT_OK;
}

void at_attester_close(at_attester *a)
{
    if (!a)
        return;
    if (a->nsm_fd >= 0)
        close(a->nsm_fd);
    at_sim_pki_free(a->pki);
    free(a);
}

static void put_opt(at_buf *b, const char *key, at_span v)
{
    at_cbor_put_text(b, key);
    if (v.len)
        at_cbor_put_bytes(b, v);
    else
        at_cbor_put_null(b);
}

at_err at_nsm_attestation_request(at_span nonce, at_span user_data, at_span public_key, at_buf *out)
{
    if (nonce.len > AT_MAX_OPTIONAL_FIELD || user_data.len > AT_MAX_OPTIONAL_FIELD ||
        public_key.len > AT_MAX_OPTIONAL_FIELD)
        return AT_E_TOO_LARGE;
    /* Externally tagged enum: {"Attestation": {user_data, nonce, public_key}}. */
    at_cbor_put_head(out, AT_CBOR_MAP, 1);
    at_cbor_put_text(out, "Attestation");
    at_cbor_put_head(out, AT_CBOR_MAP, 3);
    put_opt(out, "user_data", user_data);
    put_opt(out, "nonce", nonce);
    put_opt(out, "public_key", public_key);
    return at_buf_status(out);
}

at_err at_nsm_parse_attestation_response(at_span resp, at_span *document, at_diag *d)
{
    /* The document lives inside the response bytes: find it by decoding,
     * then point into resp (the caller keeps resp alive). */
    at_cbor_limits lim = {4, 16};
    cbor_item_t *m = NULL;
    at_err rc = at_cbor_decode(resp, &lim, &m, d);
    if (rc != AT_OK) {
        at_diag_prefix(d, "nsm response: ");
        return rc;
    }
    rc = AT_E_BAD_FIELD;
    cbor_item_t *err = at_cbor_map_get_text(m, "Error");
    cbor_item_t *att = at_cbor_map_get_text(m, "Attestation");
    at_span s;
    if (err) {
        rc = at_fail(d, AT_E_UNAVAILABLE, "nsm: error %.*s",
                     at_cbor_get_text(err, &s) ? (int)(s.len > 64 ? 64 : s.len) : 7,
                     at_cbor_get_text(err, &s) ? (const char *)s.p : "unknown");
    } else if (!att || !cbor_isa_map(att) || !at_cbor_get_bytes(at_cbor_map_get_text(att, "document"), &s) ||
               s.len == 0 || s.len > AT_MAX_DOCUMENT_BYTES) {
        rc = at_fail(d, AT_E_BAD_FIELD, "nsm response: expected {\"Attestation\": {\"document\": bstr}}");
    } else {
        /* s points into libcbor's copy: locate the same bytes in resp. */
        const uint8_t *hit = memmem(resp.p, resp.len, s.p, s.len);
        if (hit) {
            *document = AT_SPAN(hit, s.len);
            rc = AT_OK;
        } else {
            rc = at_fail(d, AT_E_INTERNAL, "nsm response: document not found");
        }
    }
    cbor_decref(&m);
    return rc;
}

static at_err nsm_document(at_attester *a, at_span nonce, at_span ud, at_span pk, at_buf *out, at_diag *d)
{
    at_buf req;
    at_buf_init(&req);
    uint8_t *resp = malloc(NSM_RESPONSE_MAX);
    at_err rc = resp ? at_nsm_attestation_request(nonce, ud, pk, &req) : AT_E_INTERNAL;
    if (rc == AT_OK && req.len > NSM_REQUEST_MAX)
        rc = at_fail(d, AT_E_TOO_LARGE, "nsm: request of %zu bytes", req.len);
    if (rc == AT_OK) {
        struct nsm_message msg = {{req.p, req.len}, {resp, NSM_RESPONSE_MAX}};
        if (ioctl(a->nsm_fd, NSM_IOCTL_REQUEST, &msg) != 0) {
            rc = at_fail(d, AT_E_UNAVAILABLE, "nsm: ioctl: %s", strerror(errno));
        } else if (msg.response.iov_len > NSM_RESPONSE_MAX) {
            rc = at_fail(d, AT_E_TOO_LARGE, "nsm: response of %zu bytes", msg.response.iov_len);
        } else {
            at_span doc;
            rc = at_nsm_parse_attestation_response(AT_SPAN(resp, msg.response.iov_len), &doc, d);
            if (rc == AT_OK)
                rc = at_buf_append_span(out, doc);
        }
    }
    at_buf_cleanup(&req);
    free(resp);
    return rc;
}

static at_err write_temp(const char *dir, const char *name, at_span v, char *path, size_t len)
{
    snprintf(path, len, "%s/%s", dir, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return AT_E_IO;
    bool ok = v.len == 0 || write(fd, v.p, v.len) == (ssize_t)v.len;
    close(fd);
    return ok ? AT_OK : AT_E_IO;
}

/* nitro-tpm-attest --nonce F --user-data F --public-key F > document */
static at_err tpm_document(at_attester *a, at_span nonce, at_span ud, at_span pk, at_buf *out, at_diag *d)
{
    char dir[] = "/tmp/attest-tpm-XXXXXX";
    char pn[64], pu[64], pp[64];
    if (!mkdtemp(dir))
        return at_fail(d, AT_E_IO, "nitro-tpm: mkdtemp: %s", strerror(errno));
    const char *tool = a->o.tpm_tool                ? a->o.tpm_tool
                       : getenv("NITRO_TPM_ATTEST") ? getenv("NITRO_TPM_ATTEST")
                                                    : "nitro-tpm-attest";
    char *argv[10];
    int n = 0;
    argv[n++] = (char *)tool;
    at_err rc = AT_OK;
    pn[0] = pu[0] = pp[0] = '\0';
    if (nonce.len && (rc = write_temp(dir, "nonce", nonce, pn, sizeof pn)) == AT_OK) {
        argv[n++] = "--nonce";
        argv[n++] = pn;
    }
    if (rc == AT_OK && ud.len && (rc = write_temp(dir, "user-data", ud, pu, sizeof pu)) == AT_OK) {
        argv[n++] = "--user-data";
        argv[n++] = pu;
    }
    if (rc == AT_OK && pk.len && (rc = write_temp(dir, "public-key", pk, pp, sizeof pp)) == AT_OK) {
        argv[n++] = "--public-key";
        argv[n++] = pp;
    }
    argv[n] = NULL;
    int fds[2] = {-1, -1};
    pid_t pid = -1;
    if (rc == AT_OK && pipe(fds) != 0)
        rc = AT_E_IO;
    if (rc == AT_OK && (pid = fork()) == 0) {
        dup2(fds[1], 1);
        close(fds[0]);
        close(fds[1]);
        execvp(tool, argv);
        fprintf(stderr, "nitro-tpm: cannot run %s: %s\n", tool, strerror(errno));
        _exit(127);
    }
    if (fds[1] >= 0)
        close(fds[1]);
    if (rc == AT_OK && pid < 0)
        rc = AT_E_IO;
    size_t start = out->len;
    if (rc == AT_OK) {
        uint8_t buf[4096];
        for (;;) {
            ssize_t r = read(fds[0], buf, sizeof buf);
            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0)
                break;
            if (out->len - start + (size_t)r > AT_MAX_DOCUMENT_BYTES) {
                rc = at_fail(d, AT_E_TOO_LARGE, "nitro-tpm: %s wrote more than %d bytes", tool,
                             AT_MAX_DOCUMENT_BYTES);
                break;
            }
            at_buf_append(out, buf, (size_t)r);
        }
    }
    if (fds[0] >= 0)
        close(fds[0]);
    if (pid > 0) {
        int status = 0;
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
            ;
        if (rc == AT_OK && (!WIFEXITED(status) || WEXITSTATUS(status) != 0))
            rc = at_fail(d, AT_E_UNAVAILABLE, "nitro-tpm: %s exited with status %d", tool,
                         WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    }
    if (rc == AT_E_IO)
        at_fail(d, rc, "nitro-tpm: cannot prepare the request files");
    if (rc == AT_OK && out->len == start)
        rc = at_fail(d, AT_E_UNAVAILABLE, "nitro-tpm: %s wrote no document", tool);
    if (rc != AT_OK)
        out->len = start;
    if (pn[0])
        unlink(pn);
    if (pu[0])
        unlink(pu);
    if (pp[0])
        unlink(pp);
    rmdir(dir);
    return rc;
}

at_err at_attester_document(at_attester *a, at_span nonce, at_span ud, at_span pk, at_buf *out, at_diag *d)
{
    if (nonce.len > AT_MAX_OPTIONAL_FIELD || ud.len > AT_MAX_OPTIONAL_FIELD || pk.len > AT_MAX_OPTIONAL_FIELD)
        return at_fail(d, AT_E_TOO_LARGE,
                       "attester: nonce, user data and public key hold at most %d bytes each",
                       AT_MAX_OPTIONAL_FIELD);
    switch (a->kind) {
    case AT_ATTESTER_NSM:
        return nsm_document(a, nonce, ud, pk, out, d);
    case AT_ATTESTER_NITRO_TPM:
        return tpm_document(a, nonce, ud, pk, out, d);
    default: {
        at_sim_doc_opts o = {.format = a->o.sim_format,
                             .module_id = a->o.sim_module_id,
                             .has_nonce = nonce.len > 0,
                             .nonce = nonce,
                             .has_user_data = ud.len > 0,
                             .user_data = ud,
                             .has_public_key = pk.len > 0,
                             .public_key = pk};
        memcpy(o.pcr_set, a->pcr_set, sizeof o.pcr_set);
        memcpy(o.pcr, a->pcr, sizeof o.pcr);
        return at_sim_doc(a->pki, &o, out, d);
    }
    }
}

at_err at_attester_extend_pcr(at_attester *a, unsigned index, at_span data, at_diag *d)
{
    if (index > AT_MAX_PCR_INDEX || data.len > AT_MAX_OPTIONAL_FIELD)
        return at_fail(d, AT_E_BAD_REQUEST, "extend: PCR %u / %zu bytes out of range", index, data.len);
    if (a->kind == AT_ATTESTER_SIM) {
        if (!a->pcr_set[index]) {
            memset(a->pcr[index], 0, AT_SHA384_LEN);
            a->pcr_set[index] = true;
        }
        return at_pcr_extend(a->pcr[index], data);
    }
    if (a->kind == AT_ATTESTER_NITRO_TPM)
        return at_fail(d, AT_E_UNAVAILABLE,
                       "extend: on NitroTPM measure with the TPM tools (tpm2_pcrextend) before starting");
    /* {"ExtendPCR": {"index": u16, "data": bstr}} -> {"ExtendPCR": {"data": bstr}} */
    at_buf req;
    at_buf_init(&req);
    at_cbor_put_head(&req, AT_CBOR_MAP, 1);
    at_cbor_put_text(&req, "ExtendPCR");
    at_cbor_put_head(&req, AT_CBOR_MAP, 2);
    at_cbor_put_text(&req, "index");
    at_cbor_put_uint(&req, index);
    at_cbor_put_text(&req, "data");
    at_cbor_put_bytes(&req, data);
    uint8_t *resp = malloc(NSM_RESPONSE_MAX);
    at_err rc = resp && at_buf_status(&req) == AT_OK ? AT_OK : AT_E_INTERNAL;
    if (rc == AT_OK) {
        struct nsm_message msg = {{req.p, req.len}, {resp, NSM_RESPONSE_MAX}};
        if (ioctl(a->nsm_fd, NSM_IOCTL_REQUEST, &msg) != 0) {
            rc = at_fail(d, AT_E_UNAVAILABLE, "nsm: ioctl: %s", strerror(errno));
        } else {
            at_cbor_limits lim = {4, 16};
            cbor_item_t *m = NULL;
            size_t n = msg.response.iov_len > NSM_RESPONSE_MAX ? NSM_RESPONSE_MAX : msg.response.iov_len;
            rc = at_cbor_decode(AT_SPAN(resp, n), &lim, &m, d);
            if (rc == AT_OK && !at_cbor_map_get_text(m, "ExtendPCR"))
                rc = at_fail(d, AT_E_UNAVAILABLE, "nsm: ExtendPCR %u refused (locked PCR?)", index);
            if (m)
                cbor_decref(&m);
        }
    }
    free(resp);
    at_buf_cleanup(&req);
    return rc;
}
