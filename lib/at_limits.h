/* at_limits (not "limits.h": that name would shadow the C library's):
 * every bound libattest and the binaries enforce, with its reason.
 * Stricter before authentication than after. */
#ifndef AT_AT_LIMITS_H
#define AT_AT_LIMITS_H

/* Genuine Nitro documents are 4.4-7.6 KB (nitro-facts.md); above 16 KiB a
 * document cannot be genuine, so refuse before any parsing. */
#define AT_MAX_DOCUMENT_BYTES (16 * 1024)
/* COSE_Sign1 -> payload map -> pcrs map / cabundle array: depth 3 is real;
 * 8 leaves room for tags without letting libcbor recurse 2048 levels. */
#define AT_MAX_CBOR_DEPTH 8
/* Items in one document: 9 payload keys + 32 PCRs + 8 certs + envelope. */
#define AT_MAX_CBOR_ITEMS 256
/* NSM exposes 32 PCRs; NitroTPM 24. */
#define AT_MAX_PCRS 32
#define AT_MAX_PCR_INDEX 31
/* Root + regional + zonal + instance CA = 4 in every genuine bundle. */
#define AT_MAX_CABUNDLE 8
/* AWS's CDDL: public_key, user_data, nonce each at most 1024 bytes. */
#define AT_MAX_OPTIONAL_FIELD 1024
/* AWS's CDDL: cert = bytes .size (1..1024); a P-384 certificate from AWS
 * is 530-810 bytes. Applies to pinned roots too (cabundle[0] is one). */
#define AT_MAX_CERT_BYTES 1024
#define AT_MAX_MODULE_ID 128
/* SHA-512-sized PCR banks are the largest the NSM can report. */
#define AT_MAX_PCR_LEN 64
/* The certificate cache: a few hundred hosts x 5 certificates. */
#define AT_CERT_CACHE_ENTRIES 4096
/* Pinned roots configured at once. */
#define AT_MAX_ROOTS 16

/* Audit aggregation (lib/auditagg): distinct (client, actor, action,
 * outcome, code) keys counted per minute before the rest go to one
 * overflow entry: a minute of flood from 4096 addresses costs ~1 MB and at
 * most 4097 rows. */
#define AT_AUDIT_AGG_KEYS 4096

/* HTTP bodies: documents are base64 (x4/3) inside small JSON. */
#define AT_MAX_BODY_BYTES (64 * 1024)
/* Allowed clock skew between an agent's document and the verifier. */
#define AT_CLOCK_SKEW_MS (60 * 1000)
#define AT_NONCE_TTL_S 60
#define AT_NONCE_BYTES 32

/* End-to-end encryption (hpke, ohttp, bhttp). An encapsulated request
 * arrives before any authentication (anyone can encrypt to a public key),
 * so these bound what an anonymous sender can make the agent hold. */
/* A 128k-token prompt is ~0.5 MB of JSON; 8 MiB leaves room for inline
 * images while bounding memory per request. Whole OHTTP messages and
 * in-memory Binary HTTP content are capped at this. */
#define AT_MAX_OHTTP_MESSAGE (8 * 1024 * 1024)
#define AT_MAX_BHTTP_CONTENT AT_MAX_OHTTP_MESSAGE
/* Chunked OHTTP: the draft obliges receivers to take 16 KiB chunks; we
 * take up to 64 KiB of plaintext per chunk and send at most 16 KiB. */
#define AT_MAX_OHTTP_CHUNK (64 * 1024)
#define AT_OHTTP_SEND_CHUNK (16 * 1024)
/* (KDF, AEAD) pairs in one key configuration: we offer 3; 64 is generous
 * and keeps a config under 300 bytes. */
#define AT_MAX_OHTTP_SUITES 64
/* Keys in one key set, and configs in one application/ohttp-keys list. */
#define AT_MAX_OHTTP_KEYS 16
/* Key files are a few lines. */
#define AT_MAX_OHTTP_KEYFILE (16 * 1024)
/* Field lines in one Binary HTTP field section: browsers send ~20. */
#define AT_MAX_BHTTP_FIELDS 128
/* Bytes of one field section (names + values): HTTP servers cap header
 * blocks at 8-64 KiB. Also bounds any single name or value. */
#define AT_MAX_BHTTP_SECTION_BYTES (64 * 1024)
/* Method, scheme, authority or path: servers refuse URLs over 8 KiB. */
#define AT_MAX_BHTTP_CONTROL_BYTES (8 * 1024)
/* HTTP servers: a whole request (head and body) must arrive within this
 * (nginx's client_header_timeout/client_body_timeout are 60 s each), so a
 * client trickling a byte now and then cannot hold a connection. */
#define AT_HTTP_REQUEST_TIMEOUT_S 30
/* Handler threads: bound how many requests block at once (the group
 * commit batches what waits; an upstream may be slow). */
#define AT_HTTP_WORKERS 64
/* Workers that requests waiting on an upstream (an LLM, an instance) may
 * never take: a hung upstream leaves them to every other route. */
#define AT_HTTP_RESERVED_WORKERS 8
/* Gateway: an instance that sends no byte of its (whole) answer for this
 * long is given up on and another tried once, instead of waiting the
 * 600 s total timeout (streams keep their own 120 s idle limit). */
#define AT_GW_INSTANCE_IDLE_S 60
/* The gateway passes an event stream on by whole events: one longer than
 * this (no blank line yet) ends the stream with an error event. */
#define AT_GW_MAX_SSE_EVENT (1024 * 1024)
/* An OHTTP request's inner Date (required) must be this close to the
 * agent's clock either way (RFC 9458 section 6.5: bounds replays). */
#define AT_OHTTP_DATE_WINDOW_S 60
/* Requests the agent remembers within that window to refuse replays
 * (lib/replay: ~56 bytes each). Past it the window narrows (fresh requests
 * still pass); 65536 covers ~500 requests/s over the full 2 min window. */
#define AT_OHTTP_REPLAY_CAPACITY 65536
/* libmicrohttpd I/O threads (epoll each): they only move bytes. */
#define AT_HTTP_IO_THREADS 2
/* Connections: sized for 10k+ idle ones; the default is what the file
 * descriptor limit allows, less a reserve for files, upstreams and the
 * database. */
#define AT_HTTP_MAX_CONNECTIONS 65536
#define AT_HTTP_FD_RESERVE 256
/* Informational (1xx) responses before the final one. */
#define AT_MAX_BHTTP_INFORMATIONAL 8

#endif
