/* roots: the verifier's pinned trust anchors (the AWS Nitro root and any
 * --root files), swapped as a whole on SIGHUP; requests hold a reference
 * to the set they started with. */
#include "verifier.h"

at_trust *verifier_trust(verifier *v)
{
    pthread_rwlock_rdlock(&v->trust_lock);
    at_trust *t = at_trust_ref(v->trust);
    pthread_rwlock_unlock(&v->trust_lock);
    return t;
}

at_err verifier_load_roots(verifier *v, at_diag *d)
{
    at_trust *t = at_trust_new(0);
    bool sim = false;
    if (!t)
        return at_fail(d, AT_E_INTERNAL, "out of memory");
    at_err rc = AT_OK;
    if (!v->cfg.no_aws_root)
        rc = at_trust_add_aws_root(t, d);
    for (size_t i = 0; rc == AT_OK && i < v->cfg.n_root_files; i++) {
        rc = at_trust_add_root_file(t, v->cfg.root_files[i], d);
        sim = true;
    }
    if (rc == AT_OK && at_trust_root_count(t) == 0)
        rc = at_fail(d, AT_E_UNTRUSTED_ROOT, "roots: none pinned");
    if (rc != AT_OK) {
        at_trust_unref(t);
        return rc;
    }
    pthread_rwlock_wrlock(&v->trust_lock);
    at_trust *old = v->trust;
    v->trust = t;
    v->trusts_sim_root = sim;
    pthread_rwlock_unlock(&v->trust_lock);
    at_trust_unref(old);
    if (sim)
        at_log("warn", "roots",
               "trusting %zu root file(s) besides%s the AWS Nitro root: documents "
               "signed by such a root (e.g. the simulator) are NOT from AWS hardware",
               v->cfg.n_root_files, v->cfg.no_aws_root ? " (instead of)" : "");
    return AT_OK;
}
