# End-to-end tests: real binaries, loopback sockets, real SQLite files.
TESTS += tests/e2e/verifier_api.py tests/e2e/verifier_crash.py tests/e2e/verifier_load.sh \
	tests/e2e/verifier_races.py tests/e2e/verifier_http.py tests/e2e/verifier_audit.py \
	tests/e2e/verifier_state.py tests/e2e/agent_flow.py tests/e2e/gateway_flow.py tests/e2e/slow_clients.py \
	tests/e2e/session_takeover.py tests/e2e/verifier_files.py tests/e2e/model_owner.py tests/e2e/policy_import.py \
	tests/e2e/upstream_hung.py
EXTRA_DIST += tests/e2e/harness.py tests/e2e/verifier_api.py tests/e2e/verifier_crash.py \
	tests/e2e/verifier_load.sh tests/e2e/verifier_races.py tests/e2e/verifier_http.py \
	tests/e2e/verifier_audit.py tests/e2e/verifier_state.py tests/e2e/fake-nitro-tpm-attest \
	tests/e2e/agent_flow.py tests/e2e/gateway_flow.py tests/e2e/slow_clients.py \
	tests/e2e/session_takeover.py tests/e2e/verifier_files.py tests/e2e/model_owner.py tests/e2e/policy_import.py \
	policies scripts/llm-standin.py tests/interop/verify_ear.mjs tests/interop/package.json
# Mutual attestation between two attestctl processes (issue 8).
TESTS += tests/e2e/mutual.py
EXTRA_DIST += tests/e2e/mutual.py
TESTS += tests/e2e/peer_http.py
EXTRA_DIST += tests/e2e/peer_http.py
TESTS += tests/e2e/transport.py
EXTRA_DIST += tests/e2e/transport.py
TESTS += tests/e2e/bench_gateway.sh
EXTRA_DIST += tests/e2e/bench_gateway.sh
TESTS += tests/e2e/deploy_parent.sh
EXTRA_DIST += tests/e2e/deploy_parent.sh deploy/parent
# deploy/enclave's entrypoint with the simulator and UNIX sockets; the recipes' files.
TESTS += tests/e2e/deploy_enclave.py
EXTRA_DIST += tests/e2e/deploy_enclave.py deploy/enclave deploy/attestable-ami
# The operator's rough edges (issue 11).
TESTS += tests/e2e/operator_cli.py
EXTRA_DIST += tests/e2e/operator_cli.py
# The official openai npm client against attest-gateway (issue 9).
TESTS += tests/e2e/openai_sdk.py
EXTRA_DIST += tests/e2e/openai_sdk.py tests/interop/openai_client.mjs tests/interop/ai_sdk_client.mjs
# The tree is as .clang-format says (HOUSE-STYLE).
TESTS += tests/e2e/format.sh
EXTRA_DIST += tests/e2e/format.sh .clang-format
TESTS += tests/e2e/chat_page.py
EXTRA_DIST += tests/e2e/chat_page.py
# The verifier on PostgreSQL: the core e2e scripts again, and two replicas on one database (issue 12).
TESTS += tests/e2e/verifier_pg.sh tests/e2e/verifier_replicas.py
EXTRA_DIST += tests/e2e/verifier_pg.sh tests/e2e/verifier_replicas.py tests/e2e/pg.py docs/storage.md schema/pg
TESTS += tests/e2e/console.py
EXTRA_DIST += tests/e2e/console.py
# docs/openapi.yaml against the real servers (issue 11).
TESTS += tests/e2e/openapi_contract.py
EXTRA_DIST += tests/e2e/openapi_contract.py tests/interop/validate_openapi.mjs docs/openapi.yaml
TESTS += tests/e2e/session_revoke.py
EXTRA_DIST += tests/e2e/session_revoke.py
TESTS += tests/e2e/pg_resilience.py
EXTRA_DIST += tests/e2e/pg_resilience.py
