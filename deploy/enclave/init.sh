#!/bin/sh
# deploy/enclave/init.sh: the Nitro Enclave's entrypoint (deploy/enclave/Dockerfile).
#
# 1. brings up loopback (an enclave boots with lo down and has no other
#    interface: everything else is vsock to the parent, CID 3);
# 2. fetches the sealed model from the parent over vsock (socat; the parent
#    serves the file with deploy/parent/attest-bridge-weights.service): the
#    parent only ever holds ciphertext;
# 3. starts attest-agent, which attests to the verifier, has the model's data
#    key released to its attested key and opens the weights into enclave
#    memory (ATTEST_MODEL_DIR, a tmpfs);
# 4. only once the weights are open, starts the model server on loopback:
#    a file that fails to open (tampered, truncated, another secret) leaves
#    the model server unstarted, and the agent keeps retrying;
# 5. exits when either process exits (the enclave then stops).
#
# Every address is a variable, so the same script runs outside an enclave
# with the simulator and UNIX sockets (tests/e2e/deploy_enclave.py).
# `init.sh --print-pcrs` prints the agent's PCRs for this configuration as a
# policy (with the simulator only; an enclave's PCR0-2 come from nitro-cli).
set -eu

: "${ATTEST_ATTESTER:=nsm}"
: "${ATTEST_POLICY:=llm}"
: "${ATTEST_VERIFIER:=vsock:3:8440,https://verifier.example:8440}"
: "${ATTEST_LISTEN:=vsock:5000}"
: "${ATTEST_ADVERTISE:=http://parent.example:8443}"
: "${ATTEST_UPSTREAM:=http://127.0.0.1:8080}"
: "${ATTEST_WEIGHTS_FROM:=VSOCK-CONNECT:3:9000}"
: "${ATTEST_MODEL_SECRET:=model-key}"
: "${ATTEST_MODEL_DIR:=/run/model}"
: "${ATTEST_MODEL_NAME:=model.gguf}"
: "${ATTEST_AGENT:=attest-agent}"
# The sealed file's largest acceptable size and the time its transfer may
# take: a parent that streams forever or stalls fails the start (fail closed)
# instead of filling enclave memory or hanging it.
: "${ATTEST_WEIGHTS_MAX_BYTES:=68719476736}"
: "${ATTEST_WEIGHTS_TIMEOUT_S:=3600}"
: "${ATTEST_AGENT_EXTRA:=}"
# The model server, started with MODEL set to the opened weights' path.
: "${ATTEST_MODEL_SERVER:=llama-server --host 127.0.0.1 --port 8080 --model \"\$MODEL\"}"

mode="${1:-run}"
sealed="$ATTEST_MODEL_DIR/model.sealed"
MODEL="$ATTEST_MODEL_DIR/$ATTEST_MODEL_NAME"
export MODEL

# The agent's command line: the same for --print-pcrs and the real run (the
# simulator's PCR2 is a hash of this configuration). ATTEST_AGENT_EXTRA is
# split into words on purpose (several flags; no spaces within one).
set -f # ... and not glob-expanded
# shellcheck disable=SC2086
set -- "$ATTEST_AGENT" --attester "$ATTEST_ATTESTER" --policy "$ATTEST_POLICY" \
    --verifier "$ATTEST_VERIFIER" --listen "$ATTEST_LISTEN" --advertise "$ATTEST_ADVERTISE" \
    --upstream "$ATTEST_UPSTREAM" --model-sealed "$sealed" --model-secret "$ATTEST_MODEL_SECRET" \
    --model-out "$MODEL" ${ATTEST_AGENT_EXTRA}
set +f

say() { printf '%s\n' "init: $*" >&2; }

if [ "$mode" = "--print-pcrs" ]; then
    exec "$@" --print-pcrs
fi

if command -v ip >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    ip link set lo up 2>/dev/null || say "cannot bring up lo (not in an enclave?)"
fi

mkdir -p "$ATTEST_MODEL_DIR"
chmod 0700 "$ATTEST_MODEL_DIR"
say "fetching the sealed model from $ATTEST_WEIGHTS_FROM"
rm -f "$sealed" "$MODEL"
umask 077
# One byte more than the cap is read, so an oversized file is told apart.
timeout "$ATTEST_WEIGHTS_TIMEOUT_S" socat -u "$ATTEST_WEIGHTS_FROM" STDOUT |
    head -c "$((ATTEST_WEIGHTS_MAX_BYTES + 1))" >"$sealed" || true
size=$(wc -c <"$sealed")
if [ "$size" -eq 0 ]; then
    say "no sealed model received from $ATTEST_WEIGHTS_FROM (within ${ATTEST_WEIGHTS_TIMEOUT_S} s)"
    exit 1
fi
if [ "$size" -gt "$ATTEST_WEIGHTS_MAX_BYTES" ]; then
    say "the sealed model from $ATTEST_WEIGHTS_FROM is larger than ATTEST_WEIGHTS_MAX_BYTES ($ATTEST_WEIGHTS_MAX_BYTES)"
    rm -f "$sealed"
    exit 1
fi

agent_pid=""
server_pid=""
stop() {
    [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null
    [ -n "$agent_pid" ] && kill "$agent_pid" 2>/dev/null
    wait 2>/dev/null
}
trap 'stop; exit 143' TERM INT

"$@" &
agent_pid=$!
say "attest-agent started (pid $agent_pid); waiting for the weights to open"
# The agent writes MODEL whole or not at all (rename on success).
while [ ! -e "$MODEL" ]; do
    if ! kill -0 "$agent_pid" 2>/dev/null; then
        wait "$agent_pid" || true
        say "attest-agent exited before the weights were opened"
        exit 1
    fi
    sleep 1
done
say "weights open at $MODEL; starting the model server"
# The ciphertext is no longer needed (the agent checks it again only before
# a release, which has happened): free its memory.
rm -f "$sealed"
sh -c "exec $ATTEST_MODEL_SERVER" &
server_pid=$!

# Whichever stops first stops the enclave.
while kill -0 "$agent_pid" 2>/dev/null && kill -0 "$server_pid" 2>/dev/null; do
    sleep 1
done
say "a process exited; stopping"
stop
exit 1
