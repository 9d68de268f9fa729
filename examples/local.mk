# Examples: always compiled (so they cannot rot), not installed.
# A pair of microservices attesting each other, request/response over the
# protected channel (README "Mutual attestation between services"; run by
# tests/e2e/mutual.py).
noinst_PROGRAMS += examples/peer_service
examples_peer_service_SOURCES = examples/peer_service.c
examples_peer_service_LDADD = $(AT_LIBS)
