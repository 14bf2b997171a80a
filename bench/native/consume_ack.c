/*
 * consume_ack: native receive + ack load generator for the RocketMQ 5.x gRPC API.
 *
 * Each of C connections (h2c, prior knowledge) runs L concurrent loops; a loop sends one
 * ReceiveMessage (a server stream), collects the receipt handles of the messages it returns
 * and, when the stream ends, acks them all with one AckMessage, then receives again. A loop
 * stops after --idle-stop consecutive receives that returned no message; everything stops at
 * --max-seconds (a hard stop: streams in flight then are abandoned). One line of JSON with the
 * counts goes to stdout; --dump-ids FILE also writes "queue_id offset message_id" per message
 * (to check that a backlog was consumed exactly once).
 *
 * Send mode (--send-request): the same process also sends one message per SendMessage at a
 * fixed rate (request i is due at start + i/R) on --send-connections connections of its own,
 * round-robin, stamping each with its due time (8 bytes of the body at --body-offset: a
 * little-endian double of CLOCK_REALTIME seconds). Every received message then gives a
 * send -> receive latency from its body. The receive loops ignore --idle-stop: they stop once
 * sending is over and every sent message was received, or 3 s after sending ended. The JSON
 * line gains the send and end-to-end figures. One process for both sides keeps a client's own
 * queueing (a Python client's, on a shared machine) out of the figure. Both latencies run from
 * the request's due time, not from when this loop got to it, so a late client (or a server
 * that kept the loop waiting) shows in them instead of shifting the schedule (no coordinated
 * omission). --connections 0 in send mode sends only: send latency without consumers.
 *
 * Single-threaded: non-blocking sockets, poll(), one nghttp2 client session per connection.
 * The request payloads are protobuf bytes made by the caller (Python); only the few response
 * fields needed are parsed here, by hand.
 *
 *   gcc -O2 -Wall -Wextra -o consume_ack consume_ack.c -lnghttp2
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <nghttp2/nghttp2.h>

#define RECEIVE_PATH "/apache.rocketmq.v2.MessagingService/ReceiveMessage"
#define ACK_PATH "/apache.rocketmq.v2.MessagingService/AckMessage"
#define SEND_PATH "/apache.rocketmq.v2.MessagingService/SendMessage"
#define CODE_OK 20000
#define CODE_MESSAGE_NOT_FOUND 40401
#define MAX_HEADERS 32
/* Send mode: the first send waits this long after connecting, so that the receive loops'
 * first long polls are already waiting at the node (the first messages' latency would
 * otherwise include the consumer's start); receiving goes on at most SEND_TAIL_S after the
 * last send response for messages still to come; a receive that failed is retried after
 * RETRY_S (there is no idle stop to end a loop that fails at once, again and again). */
#define SEND_SETTLE_S 0.2
#define SEND_TAIL_S 3.0
#define RETRY_S 0.1

/* ------------------------------------------------------------------ small helpers */

typedef struct {
    uint8_t *p;
    size_t len, cap;
} buf_t;

static void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("consume_ack: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(2);
}

static void buf_reserve(buf_t *b, size_t extra) {
    if (b->len + extra <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + extra)
        cap *= 2;
    b->p = realloc(b->p, cap);
    if (!b->p)
        die("out of memory");
    b->cap = cap;
}

static void buf_append(buf_t *b, const void *data, size_t n) {
    buf_reserve(b, n);
    memcpy(b->p + b->len, data, n);
    b->len += n;
}

static void buf_varint(buf_t *b, uint64_t v) {
    uint8_t tmp[10];
    size_t n = 0;
    do {
        tmp[n++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
        v >>= 7;
    } while (v);
    buf_append(b, tmp, n);
}

static size_t varint_size(uint64_t v) {
    size_t n = 1;
    while (v > 0x7f)
        v >>= 7, n++;
    return n;
}

static double now_real(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static double now_mono(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void read_file(const char *path, buf_t *out) {
    FILE *f = fopen(path, "rb");
    if (!f)
        die("cannot read %s: %s", path, strerror(errno));
    uint8_t chunk[8192];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        buf_append(out, chunk, n);
    fclose(f);
}

/* The body's timestamp: an IEEE double, little-endian whatever the host's byte order (what
 * Python's struct.pack("<d", time.time()) writes). */
static void put_le_double(uint8_t *p, double x) {
    uint64_t bits;
    memcpy(&bits, &x, 8);
    for (int i = 0; i < 8; i++, bits >>= 8)
        p[i] = (uint8_t)bits;
}

static double get_le_double(const uint8_t *p) {
    uint64_t bits = 0;
    for (int i = 7; i >= 0; i--)
        bits = bits << 8 | p[i];
    double x;
    memcpy(&x, &bits, 8);
    return x;
}

/* Latencies, in seconds; sorted once at the end for the percentiles. */
typedef struct {
    double *v;
    size_t len, cap;
} samples_t;

static void samples_add(samples_t *s, double x) {
    if (s->len == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 4096;
        s->v = realloc(s->v, s->cap * sizeof *s->v);
        if (!s->v)
            die("out of memory");
    }
    s->v[s->len++] = x;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Percentile p (0..1) of sorted samples, in ms, as JSON: null when there are none. The index
 * is int(n * p), as bench/_common.py's pct(). */
static const char *pct_ms(const samples_t *s, double p, char *out, size_t size) {
    if (!s->len)
        return "null";
    size_t i = (size_t)((double)s->len * p);
    snprintf(out, size, "%.3f", s->v[i < s->len ? i : s->len - 1] * 1e3);
    return out;
}

/* ------------------------------------------------------------------ protobuf wire format */

/* Reads a varint at *p (< end); returns 0 and advances *p, or -1 if truncated/overlong. */
static int pb_varint(const uint8_t **p, const uint8_t *end, uint64_t *out) {
    uint64_t v = 0;
    for (int shift = 0; shift < 64 && *p < end; shift += 7) {
        uint8_t byte = *(*p)++;
        v |= (uint64_t)(byte & 0x7f) << shift;
        if (!(byte & 0x80)) {
            *out = v;
            return 0;
        }
    }
    return -1;
}

/* One field of a message: its number, wire type, and for length-delimited fields the bytes
 * (varint values in `value`). Fields of other wire types are skipped over. */
typedef struct {
    uint32_t number;
    int wire;
    uint64_t value;
    const uint8_t *data;
    size_t len;
} pb_field;

/* Next field at *p; returns 1 with a field, 0 at the end, -1 on malformed input. */
static int pb_next(const uint8_t **p, const uint8_t *end, pb_field *f) {
    uint64_t key, n;
    if (*p >= end)
        return 0;
    if (pb_varint(p, end, &key) < 0)
        return -1;
    f->number = (uint32_t)(key >> 3);
    f->wire = (int)(key & 7);
    f->data = NULL;
    f->len = 0;
    switch (f->wire) {
    case 0: /* varint */
        return pb_varint(p, end, &f->value) < 0 ? -1 : 1;
    case 1: /* fixed64 */
        n = 8;
        break;
    case 2: /* length-delimited */
        if (pb_varint(p, end, &n) < 0)
            return -1;
        f->data = *p;
        f->len = (size_t)n;
        break;
    case 5: /* fixed32 */
        n = 4;
        break;
    default: /* groups (3, 4) are not used by this API: treat as malformed */
        return -1;
    }
    if (n > (uint64_t)(end - *p))
        return -1;
    *p += n;
    return 1;
}

/* Status.code (field 1) of a Status message; -1 if absent or malformed. */
static long status_code(const uint8_t *p, const uint8_t *end) {
    pb_field f;
    int r;
    long code = 0; /* proto3: an absent enum is 0 */
    while ((r = pb_next(&p, end, &f)) > 0)
        if (f.number == 1 && f.wire == 0)
            code = (long)f.value;
    return r < 0 ? -1 : code;
}

/* ------------------------------------------------------------------ state */

struct conn;

typedef enum { S_RECEIVE, S_ACK } stream_kind;

/* A request body being sent (nghttp2's data source). */
typedef struct {
    const buf_t *buf;
    size_t off;
} body_t;

typedef struct loop {
    struct conn *conn;
    int stream_id;           /* current stream, 0 when none */
    stream_kind kind;
    int idle;                /* consecutive receives without a message */
    int pending;             /* a stream closed: the next request is to be submitted */
    double retry_at;         /* send mode, after a failed receive: not before (monotonic) */
    /* current stream */
    buf_t in;                /* gRPC DATA not yet parsed (messages may span DATA frames) */
    size_t in_off;
    int http_status, grpc_status, bad;
    double sent_at;
    long messages;           /* messages of the current receive */
    buf_t ack;               /* gRPC frame header + ack prefix + one entry per message */
    body_t out;              /* request body being sent */
} loop_t;

/* One SendMessage in flight (send mode). Slots are reused through a free list; each keeps its
 * own copy of the request frame, since every request carries its own timestamp. */
typedef struct send {
    struct conn *conn;
    buf_t req;
    body_t out;
    buf_t in;                /* response DATA */
    int http_status, grpc_status;
    double t0;               /* submitted (monotonic) */
    struct send *next_free;
} send_t;

typedef struct conn {
    int fd;
    int dead;
    nghttp2_session *session;
    int nloops;              /* receive loops; 0 on a send connection */
    loop_t *loops;
    int sender;              /* a send connection (send mode) */
    long in_flight;          /* its sends in flight */
} conn_t;

static struct {
    const char *host, *port, *dump_path;
    int connections, loops, idle_stop;
    double max_seconds;
    buf_t receive;           /* gRPC frame of the ReceiveMessageRequest */
    buf_t ack_prefix;
    nghttp2_nv recv_nv[MAX_HEADERS], ack_nv[MAX_HEADERS], send_nv[MAX_HEADERS];
    size_t nv_len;
    FILE *dump;
    /* send mode */
    int send_mode, send_connections, stop_receiving;
    buf_t send_req;          /* gRPC frame of the SendMessageRequest */
    size_t stamp_off;        /* of the body's first byte, in that frame */
    double send_rate, send_seconds, send_start, last_submit, send_late_max, sending_over;
    long send_total, send_next, send_in_flight;
    send_t *free_sends;
    /* results */
    long messages, receives, empty, acks, acked, ack_failures, errors;
    double first_receive, last_message;
    long sent, send_errors;  /* sends that succeeded; failures seen (the log's limit) */
    samples_t send_lat, e2e;
} g;

static void count_error(loop_t *l, const char *what, long detail) {
    g.errors++;
    if (g.errors <= 10) /* enough to see what goes wrong without flooding */
        fprintf(stderr, "consume_ack: %s (%ld) on %s\n", what, detail,
                l->kind == S_RECEIVE ? "ReceiveMessage" : "AckMessage");
}

/* ------------------------------------------------------------------ requests */

static ssize_t read_body(nghttp2_session *s, int32_t stream_id, uint8_t *dst, size_t len,
                         uint32_t *flags, nghttp2_data_source *src, void *user) {
    (void)s, (void)stream_id, (void)user;
    body_t *b = src->ptr;
    size_t n = b->buf->len - b->off;
    if (n > len)
        n = len;
    memcpy(dst, b->buf->p + b->off, n);
    b->off += n;
    if (b->off == b->buf->len)
        *flags |= NGHTTP2_DATA_FLAG_EOF;
    return (ssize_t)n;
}

static void submit(loop_t *l, stream_kind kind) {
    l->kind = kind;
    l->in.len = l->in_off = 0;
    l->http_status = 0;
    l->grpc_status = -1;
    l->bad = 0;
    l->out.off = 0;
    if (kind == S_RECEIVE) {
        l->out.buf = &g.receive;
        l->messages = 0;
        l->ack.len = 5 + g.ack_prefix.len; /* keep the header room and the prefix */
        l->sent_at = now_real();
    } else {
        /* gRPC frame header: not compressed, big-endian payload length */
        uint32_t n = (uint32_t)(l->ack.len - 5);
        l->ack.p[0] = 0;
        l->ack.p[1] = n >> 24, l->ack.p[2] = n >> 16, l->ack.p[3] = n >> 8, l->ack.p[4] = n;
        l->out.buf = &l->ack;
    }
    nghttp2_data_provider dp = {.source.ptr = &l->out, .read_callback = read_body};
    int32_t id = nghttp2_submit_request(l->conn->session, NULL,
                                        kind == S_RECEIVE ? g.recv_nv : g.ack_nv, g.nv_len,
                                        &dp, l);
    if (id < 0) { /* the loop ends (no stream) */
        count_error(l, nghttp2_strerror(id), id);
        return;
    }
    l->stream_id = id;
    if (kind == S_RECEIVE)
        g.receives++;
}

/* ------------------------------------------------------------------ responses */

/* One ReceiveMessageResponse: the status frame, a message, or the closing timestamp. */
static void on_receive_response(loop_t *l, const uint8_t *p, const uint8_t *end, double t) {
    pb_field f, m, sp;
    int r;
    while ((r = pb_next(&p, end, &f)) > 0) {
        if (f.number == 1 && f.wire == 2) {
            long code = status_code(f.data, f.data + f.len);
            if (code != CODE_OK && code != CODE_MESSAGE_NOT_FOUND && !l->bad) {
                l->bad = 1;
                count_error(l, "receive status", code);
            }
        } else if (f.number == 2 && f.wire == 2) {
            /* Message.system_properties (3) -> message_id (3), receipt_handle (12);
             * Message.body (4) in send mode */
            const uint8_t *mp = f.data, *mend = f.data + f.len;
            const uint8_t *id = NULL, *handle = NULL, *body = NULL;
            size_t id_len = 0, handle_len = 0, body_len = 0;
            uint64_t queue_id = 0, offset = 0;
            while (pb_next(&mp, mend, &m) > 0) {
                if (m.number == 4 && m.wire == 2)
                    body = m.data, body_len = m.len;
                if (m.number != 3 || m.wire != 2)
                    continue;
                const uint8_t *sp_p = m.data, *sp_end = m.data + m.len;
                while (pb_next(&sp_p, sp_end, &sp) > 0) {
                    if (sp.number == 3 && sp.wire == 2)
                        id = sp.data, id_len = sp.len;
                    else if (sp.number == 12 && sp.wire == 2)
                        handle = sp.data, handle_len = sp.len;
                    else if (sp.number == 13 && sp.wire == 0)
                        queue_id = sp.value;
                    else if (sp.number == 14 && sp.wire == 0)
                        offset = sp.value;
                }
            }
            if (!handle) {
                count_error(l, "message without receipt handle", (long)f.len);
                continue;
            }
            /* AckMessageRequest.entries (3) = AckMessageEntry{message_id 1, receipt_handle 2} */
            buf_t *a = &l->ack;
            buf_append(a, "\x1a", 1);
            buf_varint(a, 1 + varint_size(id_len) + id_len + 1 + varint_size(handle_len)
                          + handle_len);
            buf_append(a, "\x0a", 1);
            buf_varint(a, id_len);
            buf_append(a, id, id_len);
            buf_append(a, "\x12", 1);
            buf_varint(a, handle_len);
            buf_append(a, handle, handle_len);
            if (g.dump)
                fprintf(g.dump, "%d %llu %.*s\n", (int)(int32_t)queue_id,
                        (unsigned long long)offset, (int)id_len, (const char *)id);
            /* Bodies too short for a timestamp are left out: e2e_count < messages shows
             * them. */
            if (g.send_mode && body_len >= 8)
                samples_add(&g.e2e, t - get_le_double(body));
            l->messages++;
            g.messages++;
            g.last_message = t;
        }
    }
    if (r < 0)
        count_error(l, "malformed ReceiveMessageResponse", (long)(end - p));
}

/* status (1).code (1) of a unary response (AckMessageResponse, SendMessageResponse) whose
 * gRPC frame is `in`; -1 when there is none. */
static long unary_status(const buf_t *in) {
    pb_field f;
    long code = -1;
    if (in->len < 5)
        return -1;
    const uint8_t *p = in->p + 5, *end = in->p + in->len;
    while (pb_next(&p, end, &f) > 0)
        if (f.number == 1 && f.wire == 2)
            code = status_code(f.data, f.data + f.len);
    return code;
}

/* AckMessageResponse.status (1).code (1) must be OK. */
static int ack_ok(loop_t *l) {
    long code = unary_status(&l->in);
    if (code != CODE_OK && g.ack_failures < 10)
        fprintf(stderr, "consume_ack: AckMessage status %ld\n", code);
    return code == CODE_OK;
}

static int on_data(nghttp2_session *s, uint8_t flags, int32_t stream_id, const uint8_t *data,
                   size_t len, void *user) {
    (void)flags, (void)user;
    loop_t *l = nghttp2_session_get_stream_user_data(s, stream_id);
    if (!l)
        return 0;
    buf_append(&l->in, data, len);
    if (l->kind != S_RECEIVE)
        return 0; /* an ack response is parsed whole when its stream closes */
    double t = now_real();
    /* Parse every complete gRPC message buffered so far; keep a partial one for later. */
    for (;;) {
        size_t avail = l->in.len - l->in_off;
        const uint8_t *h = l->in.p + l->in_off;
        if (avail < 5)
            break;
        size_t n = (size_t)h[1] << 24 | (size_t)h[2] << 16 | (size_t)h[3] << 8 | h[4];
        if (avail < 5 + n)
            break;
        if (h[0] != 0)
            count_error(l, "compressed gRPC message", h[0]);
        else
            on_receive_response(l, h + 5, h + 5 + n, t);
        l->in_off += 5 + n;
    }
    if (l->in_off == l->in.len) /* all consumed: reuse the buffer from its start */
        l->in.len = l->in_off = 0;
    return 0;
}

/* Keeps :status and grpc-status of a response; prints grpc-message unless `quiet`. */
static void status_header(const uint8_t *name, size_t namelen, const uint8_t *value,
                          size_t valuelen, int *http_status, int *grpc_status, int quiet) {
    char v[16];
    size_t n = valuelen < sizeof v - 1 ? valuelen : sizeof v - 1;
    memcpy(v, value, n);
    v[n] = 0;
    if (namelen == 7 && !memcmp(name, ":status", 7))
        *http_status = atoi(v);
    else if (namelen == 11 && !memcmp(name, "grpc-status", 11))
        *grpc_status = atoi(v);
    else if (namelen == 12 && !memcmp(name, "grpc-message", 12) && valuelen && !quiet)
        fprintf(stderr, "consume_ack: grpc-message: %.*s\n", (int)valuelen, value);
}

static int on_header(nghttp2_session *s, const nghttp2_frame *frame, const uint8_t *name,
                     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
                     void *user) {
    (void)flags, (void)user;
    if (frame->hd.type != NGHTTP2_HEADERS)
        return 0;
    loop_t *l = nghttp2_session_get_stream_user_data(s, frame->hd.stream_id);
    if (l)
        status_header(name, namelen, value, valuelen, &l->http_status, &l->grpc_status,
                      g.errors >= 10);
    return 0;
}

static int on_close(nghttp2_session *s, int32_t stream_id, uint32_t error_code, void *user) {
    (void)user;
    loop_t *l = nghttp2_session_get_stream_user_data(s, stream_id);
    if (!l || l->stream_id != stream_id)
        return 0;
    l->stream_id = 0;
    int failed = 1;
    if (error_code)
        count_error(l, "stream reset, HTTP/2 error", (long)error_code);
    else if (l->grpc_status < 0) /* no trailers: not a gRPC reply (a proxy's error page?) */
        count_error(l, "no grpc-status, HTTP status", l->http_status);
    else if (l->grpc_status != 0)
        count_error(l, "grpc-status", l->grpc_status);
    else
        failed = 0;
    if (l->kind == S_RECEIVE) {
        if (l->in.len != l->in_off)
            count_error(l, "truncated gRPC message", (long)(l->in.len - l->in_off));
        if (l->messages > 0) {
            if (l->sent_at < g.first_receive)
                g.first_receive = l->sent_at;
            l->idle = 0;
        } else {
            g.empty++;
            l->idle++;
        }
        if (failed && g.send_mode)
            l->retry_at = now_mono() + RETRY_S;
    } else if (!failed && ack_ok(l)) {
        g.acks++;
        g.acked += l->messages;
    } else {
        g.ack_failures++;
    }
    /* Submitting from inside a callback works in nghttp2, but deferring it to the poll loop
     * keeps the order of events easy to follow. */
    l->pending = 1;
    return 0;
}

/* The next request of a loop whose stream closed: the ack of what it received, else the
 * next receive, or nothing once it has been idle long enough, or in send mode once receiving
 * is to stop (the loop is then over). */
static void advance(loop_t *l) {
    l->pending = 0;
    if (l->kind == S_RECEIVE && l->messages > 0)
        submit(l, S_ACK);
    else if (g.send_mode ? !g.stop_receiving : l->idle < g.idle_stop)
        submit(l, S_RECEIVE);
}

/* ------------------------------------------------------------------ sends (send mode) */

static void send_failed(const char *what, long detail) {
    if (++g.send_errors <= 10)
        fprintf(stderr, "consume_ack: %s (%ld) on SendMessage\n", what, detail);
}

static void send_release(send_t *s) {
    s->next_free = g.free_sends;
    g.free_sends = s;
}

static void submit_send(conn_t *c, double due) {
    send_t *s = g.free_sends;
    if (s) {
        g.free_sends = s->next_free;
    } else {
        if (!(s = calloc(1, sizeof *s)))
            die("out of memory");
        buf_append(&s->req, g.send_req.p, g.send_req.len);
        s->out.buf = &s->req;
    }
    s->conn = c;
    s->out.off = 0;
    s->in.len = 0;
    s->http_status = 0;
    s->grpc_status = -1;
    put_le_double(s->req.p + g.stamp_off, now_real() - (now_mono() - due));
    s->t0 = due;
    nghttp2_data_provider dp = {.source.ptr = &s->out, .read_callback = read_body};
    int32_t id = nghttp2_submit_request(c->session, NULL, g.send_nv, g.nv_len, &dp, s);
    if (id < 0) {
        send_failed(nghttp2_strerror(id), id);
        send_release(s);
        return;
    }
    c->in_flight++;
    g.send_in_flight++;
}

/* Submits every request due by `now` (all at once if the loop fell behind: the schedule
 * never slips), round-robin over the live send connections. */
static void send_due(conn_t *senders, double now) {
    while (g.send_next < g.send_total) {
        double due = g.send_start + (double)g.send_next / g.send_rate;
        if (due > now)
            break;
        if (now - due > g.send_late_max)
            g.send_late_max = now - due;
        conn_t *c = NULL;
        for (int k = 0; k < g.send_connections && !c; k++) {
            conn_t *cand = &senders[(g.send_next + k) % g.send_connections];
            if (!cand->dead)
                c = cand;
        }
        g.send_next++;
        g.last_submit = now;
        if (c)
            submit_send(c, due);
        else
            send_failed("no send connection left", 0);
    }
}

static int on_send_data(nghttp2_session *session, uint8_t flags, int32_t stream_id,
                        const uint8_t *data, size_t len, void *user) {
    (void)flags, (void)user;
    send_t *s = nghttp2_session_get_stream_user_data(session, stream_id);
    if (s)
        buf_append(&s->in, data, len);
    return 0;
}

static int on_send_header(nghttp2_session *session, const nghttp2_frame *frame,
                          const uint8_t *name, size_t namelen, const uint8_t *value,
                          size_t valuelen, uint8_t flags, void *user) {
    (void)flags, (void)user;
    if (frame->hd.type != NGHTTP2_HEADERS)
        return 0;
    send_t *s = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
    if (s)
        status_header(name, namelen, value, valuelen, &s->http_status, &s->grpc_status,
                      g.send_errors >= 10);
    return 0;
}

/* A send succeeded when grpc-status is 0 and SendMessageResponse.status.code is OK; its
 * latency runs from its due time to the end of the response. */
static int on_send_close(nghttp2_session *session, int32_t stream_id, uint32_t error_code,
                         void *user) {
    (void)user;
    send_t *s = nghttp2_session_get_stream_user_data(session, stream_id);
    if (!s)
        return 0;
    double elapsed = now_mono() - s->t0;
    long code;
    if (error_code)
        send_failed("stream reset, HTTP/2 error", (long)error_code);
    else if (s->grpc_status < 0)
        send_failed("no grpc-status, HTTP status", s->http_status);
    else if (s->grpc_status != 0)
        send_failed("grpc-status", s->grpc_status);
    else if ((code = unary_status(&s->in)) != CODE_OK)
        send_failed("SendMessageResponse status", code);
    else {
        g.sent++;
        samples_add(&g.send_lat, elapsed);
    }
    s->conn->in_flight--;
    g.send_in_flight--;
    send_release(s);
    return 0;
}

/* ------------------------------------------------------------------ connections */

static ssize_t on_send(nghttp2_session *s, const uint8_t *data, size_t len, int flags,
                       void *user) {
    (void)s, (void)flags;
    conn_t *c = user;
    ssize_t n = send(c->fd, data, len, MSG_NOSIGNAL);
    if (n < 0)
        return errno == EAGAIN || errno == EWOULDBLOCK ? NGHTTP2_ERR_WOULDBLOCK
                                                       : NGHTTP2_ERR_CALLBACK_FAILURE;
    return n;
}

static int dial(void) {
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res, *ai;
    int rc = getaddrinfo(g.host, g.port, &hints, &res);
    if (rc)
        die("cannot resolve %s: %s", g.host, gai_strerror(rc));
    int fd = -1;
    for (ai = res; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
        if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
            break;
        if (fd >= 0)
            close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0)
        die("cannot connect to %s:%s: %s", g.host, g.port, strerror(errno));
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    return fd;
}

/* A receive connection (`nloops` loops, their first receives submitted) or, with nloops 0, a
 * send connection. */
static void conn_open(conn_t *c, nghttp2_session_callbacks *cbs, int nloops) {
    c->fd = dial();
    if (nghttp2_session_client_new(&c->session, cbs, c))
        die("nghttp2_session_client_new failed");
    /* 32 x ~1 KiB messages per stream, several streams: large windows so the server never
     * waits for a WINDOW_UPDATE (nghttp2 sends those itself as data is delivered to us). */
    nghttp2_settings_entry settings[] = {
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 1 << 20},
        {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
    };
    nghttp2_submit_settings(c->session, NGHTTP2_FLAG_NONE, settings, 2);
    nghttp2_session_set_local_window_size(c->session, NGHTTP2_FLAG_NONE, 0, 16 << 20);
    c->nloops = nloops;
    c->sender = nloops == 0;
    c->loops = calloc((size_t)nloops, sizeof *c->loops);
    for (int i = 0; i < nloops; i++) {
        loop_t *l = &c->loops[i];
        l->conn = c;
        buf_reserve(&l->ack, 5 + g.ack_prefix.len);
        memset(l->ack.p, 0, 5);
        memcpy(l->ack.p + 5, g.ack_prefix.p, g.ack_prefix.len);
        l->ack.len = 5 + g.ack_prefix.len;
        submit(l, S_RECEIVE);
    }
}

static void conn_fail(conn_t *c, const char *why) {
    g.errors++;
    fprintf(stderr, "consume_ack: connection closed: %s\n", why);
    c->dead = 1;
    for (int i = 0; i < c->nloops; i++)
        c->loops[i].pending = 0, c->loops[i].stream_id = 0;
    g.send_in_flight -= c->in_flight; /* lost: they count as failed sends */
    c->in_flight = 0;
}

/* Reads what the socket has and feeds it to nghttp2. */
static void conn_read(conn_t *c) {
    uint8_t buf[65536];
    for (;;) {
        ssize_t n = recv(c->fd, buf, sizeof buf, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n <= 0) {
            conn_fail(c, n == 0 ? "by the server" : strerror(errno));
            return;
        }
        ssize_t used = nghttp2_session_mem_recv(c->session, buf, (size_t)n);
        if (used < 0) {
            conn_fail(c, nghttp2_strerror((int)used));
            return;
        }
    }
}

/* ------------------------------------------------------------------ main */

static void add_header(size_t i, const char *name, const char *value) {
    if (i >= MAX_HEADERS)
        die("too many headers");
    nghttp2_nv nv = {(uint8_t *)name, (uint8_t *)value, strlen(name), strlen(value),
                     NGHTTP2_NV_FLAG_NONE};
    g.recv_nv[i] = g.ack_nv[i] = g.send_nv[i] = nv;
}

static void usage(void) {
    fputs("usage: consume_ack --host H --port P --connections C --loops-per-connection L\n"
          "       --receive-request FILE --ack-prefix FILE [--header 'name: value']...\n"
          "       [--idle-stop N] [--max-seconds S] [--dump-ids FILE]\n"
          "       [--send-request FILE --body-offset N --send-rate R --send-seconds S\n"
          "        [--send-connections K]]\n", stderr);
    exit(2);
}

/* Reads a gRPC request payload from `path` into `frame`, behind the 5-byte gRPC header. */
static void read_frame(const char *path, buf_t *frame) {
    buf_t payload = {0};
    read_file(path, &payload);
    uint8_t hdr[5] = {0, (uint8_t)(payload.len >> 24), (uint8_t)(payload.len >> 16),
                      (uint8_t)(payload.len >> 8), (uint8_t)payload.len};
    buf_append(frame, hdr, 5);
    buf_append(frame, payload.p, payload.len);
    free(payload.p);
}

/* Send mode, once per iteration: receiving stops when sending is over (every request
 * answered) and every message sent was received, or SEND_TAIL_S after that. */
static void check_stop_receiving(double now) {
    if (g.stop_receiving || g.send_next < g.send_total || g.send_in_flight > 0)
        return;
    if (g.sending_over == 0)
        g.sending_over = now;
    if (g.messages >= g.sent || now - g.sending_over >= SEND_TAIL_S)
        g.stop_receiving = 1;
}

int main(int argc, char **argv) {
    g.connections = 1, g.loops = 1, g.idle_stop = 2, g.max_seconds = 60;
    g.send_connections = 2;
    g.first_receive = INFINITY;
    size_t nh = 6; /* the pseudo-headers and the two gRPC ones come first */
    const char *recv_path = NULL, *ack_path = NULL, *send_path = NULL;
    long body_offset = -1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v)
            usage();
        i++;
        if (!strcmp(a, "--host"))
            g.host = v;
        else if (!strcmp(a, "--port"))
            g.port = v;
        else if (!strcmp(a, "--connections"))
            g.connections = atoi(v);
        else if (!strcmp(a, "--loops-per-connection"))
            g.loops = atoi(v);
        else if (!strcmp(a, "--receive-request"))
            recv_path = v;
        else if (!strcmp(a, "--ack-prefix"))
            ack_path = v;
        else if (!strcmp(a, "--idle-stop"))
            g.idle_stop = atoi(v);
        else if (!strcmp(a, "--max-seconds"))
            g.max_seconds = atof(v);
        else if (!strcmp(a, "--dump-ids"))
            g.dump_path = v;
        else if (!strcmp(a, "--send-request"))
            send_path = v;
        else if (!strcmp(a, "--body-offset"))
            body_offset = atol(v);
        else if (!strcmp(a, "--send-rate"))
            g.send_rate = atof(v);
        else if (!strcmp(a, "--send-seconds"))
            g.send_seconds = atof(v);
        else if (!strcmp(a, "--send-connections"))
            g.send_connections = atoi(v);
        else if (!strcmp(a, "--header")) {
            /* "name: value"; HTTP/2 header names must be lower case */
            char *h = strdup(v), *colon = strchr(h, ':');
            if (!colon || colon == h)
                die("bad header %s", v);
            *colon = 0;
            for (char *q = h; *q; q++)
                *q = (char)tolower((unsigned char)*q);
            char *value = colon + 1;
            while (*value == ' ')
                value++;
            add_header(nh++, h, value);
        } else
            usage();
    }
    g.send_mode = send_path != NULL;
    if (!g.host || !g.port || !recv_path || !ack_path || g.loops < 1
        || g.connections < (g.send_mode ? 0 : 1))
        usage();
    if (g.send_mode ? body_offset < 0 || !(g.send_rate > 0) || !(g.send_seconds > 0)
                          || g.send_connections < 1
                    : body_offset >= 0 || g.send_rate || g.send_seconds)
        usage();
    g.nv_len = nh;

    read_frame(recv_path, &g.receive);
    read_file(ack_path, &g.ack_prefix);
    if (g.send_mode) {
        read_frame(send_path, &g.send_req);
        g.stamp_off = 5 + (size_t)body_offset;
        if (g.stamp_off + 8 > g.send_req.len)
            die("--body-offset %ld: no 8 bytes there in %s", body_offset, send_path);
        g.send_total = (long)(g.send_rate * g.send_seconds + 0.5);
    }
    if (g.dump_path && !(g.dump = fopen(g.dump_path, "w")))
        die("cannot write %s: %s", g.dump_path, strerror(errno));

    char authority[300];
    snprintf(authority, sizeof authority, "%s:%s", g.host, g.port);
    add_header(0, ":method", "POST");
    add_header(1, ":scheme", "http");
    add_header(2, ":authority", authority);
    add_header(3, ":path", RECEIVE_PATH);
    add_header(4, "content-type", "application/grpc");
    add_header(5, "te", "trailers");
    g.ack_nv[3].value = (uint8_t *)ACK_PATH;
    g.ack_nv[3].valuelen = strlen(ACK_PATH);
    g.send_nv[3].value = (uint8_t *)SEND_PATH;
    g.send_nv[3].valuelen = strlen(SEND_PATH);

    nghttp2_session_callbacks *cbs, *send_cbs;
    nghttp2_session_callbacks_new(&cbs);
    nghttp2_session_callbacks_set_send_callback(cbs, on_send);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data);
    nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_close);
    /* Send connections carry only sends: their streams' user data is a send_t. */
    nghttp2_session_callbacks_new(&send_cbs);
    nghttp2_session_callbacks_set_send_callback(send_cbs, on_send);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(send_cbs, on_send_data);
    nghttp2_session_callbacks_set_on_header_callback(send_cbs, on_send_header);
    nghttp2_session_callbacks_set_on_stream_close_callback(send_cbs, on_send_close);

    /* The receive connections first, then (send mode) the send connections. */
    int nconns = g.connections + (g.send_mode ? g.send_connections : 0);
    conn_t *conns = calloc((size_t)nconns, sizeof *conns);
    struct pollfd *pfds = calloc((size_t)nconns, sizeof *pfds);
    for (int i = 0; i < g.connections; i++)
        conn_open(&conns[i], cbs, g.loops);
    conn_t *senders = conns + g.connections;
    for (int i = g.connections; i < nconns; i++)
        conn_open(&conns[i], send_cbs, 0);
    g.send_start = now_mono() + SEND_SETTLE_S;

    /* --max-seconds is a hard stop: whatever is in flight then is abandoned (not acked). */
    double deadline = now_mono() + g.max_seconds;
    for (;;) {
        double now = now_mono(), left = deadline - now;
        if (left <= 0)
            break;
        if (g.send_mode) {
            send_due(senders, now);
            check_stop_receiving(now);
        }
        int busy = 0; /* connections with a stream open (or, sending, a send to come) */
        for (int i = 0; i < nconns; i++) {
            conn_t *c = &conns[i];
            pfds[i].fd = -1;
            if (c->dead)
                continue;
            int active = 0;
            for (int j = 0; j < c->nloops; j++) {
                loop_t *l = &c->loops[j];
                if (l->pending && now >= l->retry_at)
                    advance(l);
                active |= l->stream_id != 0 || l->pending;
            }
            if (c->sender)
                active = g.send_next < g.send_total || c->in_flight > 0;
            if (nghttp2_session_send(c->session)) {
                conn_fail(c, "send failed");
                continue;
            }
            if (active) {
                busy++;
                pfds[i].fd = c->fd;
                pfds[i].events = POLLIN | (nghttp2_session_want_write(c->session) ? POLLOUT : 0);
            }
        }
        if (!busy && !(g.send_mode && g.send_next < g.send_total))
            break;
        /* Sleep until something arrives, at most 100 ms, and sending, no later than the next
         * request is due (ppoll: poll's milliseconds are coarse next to 1/3000 s). */
        double wait = left > 0.1 ? 0.1 : left;
        if (g.send_mode && g.send_next < g.send_total) {
            double due = g.send_start + (double)g.send_next / g.send_rate - now_mono();
            if (due < wait)
                wait = due > 0 ? due : 0;
        }
        struct timespec ts = {(time_t)wait, (long)((wait - (double)(time_t)wait) * 1e9)};
        if (ppoll(pfds, (nfds_t)nconns, &ts, NULL) < 0 && errno != EINTR)
            die("poll: %s", strerror(errno));
        for (int i = 0; i < nconns; i++)
            if (pfds[i].fd >= 0 && (pfds[i].revents & (POLLIN | POLLERR | POLLHUP)))
                conn_read(&conns[i]);
    }

    for (int i = 0; i < nconns; i++) {
        if (!conns[i].dead) {
            nghttp2_session_terminate_session(conns[i].session, NGHTTP2_NO_ERROR);
            nghttp2_session_send(conns[i].session);
        }
        nghttp2_session_del(conns[i].session);
        close(conns[i].fd);
    }
    if (g.dump)
        fclose(g.dump);

    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double cpu = ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec
                 + ru.ru_stime.tv_usec / 1e6;
    printf("{\"messages\": %ld, \"first_receive\": %.6f, \"last_message\": %.6f, "
           "\"receives\": %ld, \"empty_receives\": %ld, \"acks\": %ld, \"acked_messages\": %ld, "
           "\"ack_failures\": %ld, \"errors\": %ld, \"cpu_s\": %.3f",
           g.messages, isinf(g.first_receive) ? 0.0 : g.first_receive, g.last_message,
           g.receives, g.empty, g.acks, g.acked, g.ack_failures, g.errors, cpu);
    if (g.send_mode) {
        /* Requests submitted over as many intervals of 1/R: exactly R when on schedule. */
        double span = g.last_submit - g.send_start + 1 / g.send_rate;
        char p[5][32];
        qsort(g.send_lat.v, g.send_lat.len, sizeof *g.send_lat.v, cmp_double);
        qsort(g.e2e.v, g.e2e.len, sizeof *g.e2e.v, cmp_double);
        /* send_failures: every request due that did not succeed, those still unanswered at
         * a --max-seconds stop included. */
        printf(", \"sent\": %ld, \"send_failures\": %ld, \"achieved_rate\": %.1f, "
               "\"send_late_max_ms\": %.3f, \"send_p50_ms\": %s, \"send_p99_ms\": %s, "
               "\"e2e_count\": %zu, \"e2e_p50_ms\": %s, \"e2e_p99_ms\": %s, \"e2e_max_ms\": %s",
               g.sent, g.send_next - g.sent, g.send_next ? (double)g.send_next / span : 0.0,
               g.send_late_max * 1e3, pct_ms(&g.send_lat, 0.5, p[0], sizeof p[0]),
               pct_ms(&g.send_lat, 0.99, p[1], sizeof p[1]), g.e2e.len,
               pct_ms(&g.e2e, 0.5, p[2], sizeof p[2]), pct_ms(&g.e2e, 0.99, p[3], sizeof p[3]),
               pct_ms(&g.e2e, 1.0, p[4], sizeof p[4]));
    }
    puts("}");
    return 0;
}
