/* ohttp: Oblivious HTTP (RFC 9458) and Chunked Oblivious HTTP
 * (draft-ietf-ohai-chunked-ohttp-08). This header gathers the modules:
 * ohttp_config (key configurations), ohttp_keyset (the server's key set and
 * key file), ohttp_client (gateway, attestctl) and ohttp_server (the agent);
 * ohttp_wire and ohttp_chunked are their shared internals. Trust boundary: key configurations from
 * the network, encapsulated requests (anonymous senders) and responses are
 * attacker-supplied; private keys stay in at_hpke_key, derived response
 * keys in wiped memory.
 *
 * Media types: message/ohttp-req and message/ohttp-res carry one
 * Encapsulated Request / Response (RFC 9458 §4):
 *   request  = key_id(1) kem_id(2) kdf_id(2) aead_id(2) enc(32) ct
 *              HPKE info = "message/bhttp request" 0x00 hdr
 *   response = response_nonce(max(Nn,Nk)) ct, key and nonce from
 *              Export("message/bhttp response", max(Nn,Nk)) (RFC 9458 §4.4)
 * message/ohttp-chunked-req and message/ohttp-chunked-res carry the chunked
 * variant: the same header (info "message/bhttp chunked request") or nonce
 * (export label "message/bhttp chunked response"), then chunks
 *   non-final: varint(len(ct)) ct,   ct = Seal("", chunk), chunk non-empty
 *   final:     varint(0) ct,         ct = Seal("final", chunk), to the end
 * Request chunks use the HPKE context's sequence; response chunk i uses
 * nonce XOR i. A stream that ends without the final chunk is AT_E_TRUNCATED;
 * replayed, reordered or altered chunks fail authentication.
 * application/ohttp-keys is a list of key configurations, each with a
 * 2-byte length prefix (RFC 9458 §3.2). */
#ifndef AT_OHTTP_H
#define AT_OHTTP_H

#include "ohttp_client.h"
#include "ohttp_config.h"
#include "ohttp_keyset.h"
#include "ohttp_server.h"

#define AT_OHTTP_MEDIA_REQ "message/ohttp-req"
#define AT_OHTTP_MEDIA_RES "message/ohttp-res"
#define AT_OHTTP_MEDIA_CHUNKED_REQ "message/ohttp-chunked-req"
#define AT_OHTTP_MEDIA_CHUNKED_RES "message/ohttp-chunked-res"
#define AT_OHTTP_MEDIA_KEYS "application/ohttp-keys"

#endif
