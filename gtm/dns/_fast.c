/* gtm.dns._fast: the UDP answer path of gtm.dns.wire, compiled.
 *
 * One `Udp` object serves one generation's `Replies` (gtm/dns/wire.py) on one
 * UDP socket. `serve()` reads up to `batch` queries with one recvmmsg, answers
 * each one that its `seen` cache knows exactly as `respond` does — same row
 * (ECS row from the cache entry, else the source address through the same
 * `rows` cache and `row_for`), same weighted pick (`rand() * total`, then
 * bisect-right over the cumulative weights), same bytes (ID, flags, counts,
 * question, records, OPT), same tally slot — and hands every other query to
 * `respond` and every reply larger than the client's UDP limit to `slow`, as
 * `respond` does. The replies go out with one sendmmsg.
 *
 * It holds no state of its own besides the buffers and a small cache of the
 * rows of source addresses (by their octets, so no address is formatted for a
 * query seen before): the query cache, the counters and the draws are the
 * Python objects of `Replies`, so both paths count in the same slots and draw
 * from the same source, and a test can feed them the
 * same draws and compare bytes (tests/dns/test_dns_fast.py).
 *
 * A Python exception (an Exception) while answering one query drops that
 * query and counts it in `serve()`'s errors, as DnsServer.respond does; any
 * other (KeyboardInterrupt, MemoryError is an Exception) propagates after the
 * replies already made are sent.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <netinet/in.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>

#define MAX_BATCH 256
#define SLOT 65536 /* bytes per datagram read and per reply: the largest UDP payload */
#define KNOWN_FIELDS 7 /* (picks, head, counts, question, opt, limit, row) */
#define ROW_CACHE 4096  /* source addresses whose row is remembered (direct-mapped) */

/* A source address's row, remembered by its 16 octets (IPv4 as v4-mapped IPv6): the row is
 * a function of the address and the generation's topology, so this saves formatting the
 * address for `rows` without changing which row a query gets. */
typedef struct {
    unsigned char addr[16];
    int row; /* -1: empty */
} RowEntry;

typedef struct {
    PyObject_HEAD
    int fd;
    int batch;
    PyObject *respond; /* (data, ip, udp) -> bytes | None */
    PyObject *slow;    /* the same, for replies over the client's limit */
    PyObject *seen;    /* dict: query bytes after the ID -> known tuple */
    PyObject *rows;    /* dict: source address str -> row */
    PyObject *row_for; /* str -> row (fills `rows`) */
    PyObject *hits;    /* list of int: tally slots */
    PyObject *rand;    /* () -> float in [0, 1) */
    unsigned char *rx; /* batch * SLOT */
    unsigned char *tx; /* batch * SLOT */
    struct mmsghdr *rmsg;
    struct iovec *riov;
    struct sockaddr_storage *addrs;
    struct mmsghdr *smsg;
    struct iovec *siov;
    RowEntry *row_cache; /* ROW_CACHE entries */
} Udp;

static PyObject *one; /* the int 1 */

static void
Udp_dealloc(Udp *self)
{
    Py_XDECREF(self->respond);
    Py_XDECREF(self->slow);
    Py_XDECREF(self->seen);
    Py_XDECREF(self->rows);
    Py_XDECREF(self->row_for);
    Py_XDECREF(self->hits);
    Py_XDECREF(self->rand);
    PyMem_RawFree(self->rx);
    PyMem_RawFree(self->tx);
    PyMem_RawFree(self->rmsg);
    PyMem_RawFree(self->riov);
    PyMem_RawFree(self->addrs);
    PyMem_RawFree(self->smsg);
    PyMem_RawFree(self->siov);
    PyMem_RawFree(self->row_cache);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int
Udp_init(Udp *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"fd", "respond", "slow", "seen", "rows", "row_for", "hits", "rand",
                             "batch", NULL};
    int fd, batch = 64;
    PyObject *respond, *slow, *seen, *rows, *row_for, *hits, *rand;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "iOOO!O!OO!O|i", kwlist, &fd, &respond, &slow,
                                     &PyDict_Type, &seen, &PyDict_Type, &rows, &row_for,
                                     &PyList_Type, &hits, &rand, &batch))
        return -1;
    if (batch < 1 || batch > MAX_BATCH) {
        PyErr_Format(PyExc_ValueError, "batch must be 1..%d, not %d", MAX_BATCH, batch);
        return -1;
    }
    if (self->rx != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Udp is initialised once");
        return -1;
    }
    self->fd = fd;
    self->batch = batch;
    Py_INCREF(respond);
    self->respond = respond;
    Py_INCREF(slow);
    self->slow = slow;
    Py_INCREF(seen);
    self->seen = seen;
    Py_INCREF(rows);
    self->rows = rows;
    Py_INCREF(row_for);
    self->row_for = row_for;
    Py_INCREF(hits);
    self->hits = hits;
    Py_INCREF(rand);
    self->rand = rand;
    /* Large allocations are mapped lazily: only the pages a datagram touches are used. */
    self->rx = PyMem_RawMalloc((size_t)batch * SLOT);
    self->tx = PyMem_RawMalloc((size_t)batch * SLOT);
    self->rmsg = PyMem_RawCalloc(batch, sizeof(struct mmsghdr));
    self->riov = PyMem_RawCalloc(batch, sizeof(struct iovec));
    self->addrs = PyMem_RawCalloc(batch, sizeof(struct sockaddr_storage));
    self->smsg = PyMem_RawCalloc(batch, sizeof(struct mmsghdr));
    self->siov = PyMem_RawCalloc(batch, sizeof(struct iovec));
    self->row_cache = PyMem_RawCalloc(ROW_CACHE, sizeof(RowEntry));
    if (!self->rx || !self->tx || !self->rmsg || !self->riov || !self->addrs || !self->smsg ||
        !self->siov || !self->row_cache) {
        PyErr_NoMemory();
        return -1;
    }
    for (int i = 0; i < ROW_CACHE; i++)
        self->row_cache[i].row = -1;
    for (int i = 0; i < batch; i++) { /* what recvmmsg reads into never moves */
        self->riov[i].iov_base = self->rx + (size_t)i * SLOT;
        self->riov[i].iov_len = SLOT;
        self->rmsg[i].msg_hdr.msg_name = &self->addrs[i];
        self->rmsg[i].msg_hdr.msg_iov = &self->riov[i];
        self->rmsg[i].msg_hdr.msg_iovlen = 1;
    }
    return 0;
}

/* The source address as Python's socket module spells it (inet_ntop). */
static PyObject *
address(const struct sockaddr_storage *sa)
{
    char buf[INET6_ADDRSTRLEN];
    const char *s = NULL;
    if (sa->ss_family == AF_INET)
        s = inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, buf, sizeof buf);
    else if (sa->ss_family == AF_INET6)
        s = inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, buf, sizeof buf);
    if (s == NULL) {
        PyErr_SetString(PyExc_OSError, "unsupported source address family");
        return NULL;
    }
    return PyUnicode_FromString(s);
}

/* The 16 octets of a source address (IPv4 as v4-mapped); 0, or -1 for another family. */
static int
address_key(const struct sockaddr_storage *sa, unsigned char key[16])
{
    if (sa->ss_family == AF_INET) {
        memset(key, 0, 10);
        key[10] = key[11] = 0xFF;
        memcpy(key + 12, &((const struct sockaddr_in *)sa)->sin_addr, 4);
        return 0;
    }
    if (sa->ss_family == AF_INET6) {
        memcpy(key, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
        return 0;
    }
    return -1;
}

static RowEntry *
row_slot(Udp *self, const unsigned char key[16])
{
    uint32_t w[4];
    memcpy(w, key, 16);
    uint32_t h = (w[0] * 0x9E3779B1u) ^ (w[1] * 0x85EBCA77u) ^ (w[2] * 0xC2B2AE3Du) ^
                 (w[3] * 0x27D4EB2Fu);
    h ^= h >> 15;
    h *= 0x2C1B3C6Du;
    h ^= h >> 12;
    return &self->row_cache[h & (ROW_CACHE - 1)];
}

/* The row for a query's source address, as `respond` finds it: `rows`, else `row_for`. */
static Py_ssize_t
source_row(Udp *self, const struct sockaddr_storage *sa, PyObject **ip)
{
    unsigned char key[16];
    RowEntry *e = NULL;
    if (address_key(sa, key) == 0) {
        e = row_slot(self, key);
        if (e->row >= 0 && memcmp(e->addr, key, 16) == 0)
            return e->row;
    }
    if (*ip == NULL && (*ip = address(sa)) == NULL)
        return -1;
    PyObject *row_obj = PyDict_GetItemWithError(self->rows, *ip);
    if (row_obj != NULL)
        Py_INCREF(row_obj);
    else if (PyErr_Occurred() || (row_obj = PyObject_CallOneArg(self->row_for, *ip)) == NULL)
        return -1;
    Py_ssize_t row = PyLong_AsSsize_t(row_obj);
    Py_DECREF(row_obj);
    if (row == -1 && PyErr_Occurred())
        return -1;
    if (e != NULL && row >= 0 && row <= INT_MAX) {
        memcpy(e->addr, key, 16);
        e->row = (int)row;
    }
    return row;
}

/* Copy a Python reply (bytes or None) into `out`; its length, 0 for None, -1 on error. */
static Py_ssize_t
copy_reply(PyObject *reply, unsigned char *out)
{
    if (reply == Py_None)
        return 0;
    if (!PyBytes_Check(reply)) {
        PyErr_SetString(PyExc_TypeError, "a reply must be bytes or None");
        return -1;
    }
    Py_ssize_t n = PyBytes_GET_SIZE(reply);
    if (n > SLOT) /* larger than any UDP datagram: sendto would fail too */
        return 0;
    memcpy(out, PyBytes_AS_STRING(reply), n);
    return n;
}

/* Call fn(data, ip, True) and copy its reply. */
static Py_ssize_t
python_reply(PyObject *fn, const unsigned char *data, Py_ssize_t len, PyObject **ip,
             const struct sockaddr_storage *sa, unsigned char *out)
{
    if (*ip == NULL && (*ip = address(sa)) == NULL)
        return -1;
    PyObject *query = PyBytes_FromStringAndSize((const char *)data, len);
    if (query == NULL)
        return -1;
    PyObject *argv[3] = {query, *ip, Py_True};
    PyObject *reply = PyObject_Vectorcall(fn, argv, 3, NULL);
    Py_DECREF(query);
    if (reply == NULL)
        return -1;
    Py_ssize_t n = copy_reply(reply, out);
    Py_DECREF(reply);
    return n;
}

static int
as_bytes(PyObject *o, const char **p, Py_ssize_t *n)
{
    if (!PyBytes_Check(o)) {
        PyErr_SetString(PyExc_TypeError, "expected bytes in an answer entry");
        return -1;
    }
    *p = PyBytes_AS_STRING(o);
    *n = PyBytes_GET_SIZE(o);
    return 0;
}

/* The variant a pick yields for draw source `rand` (a new reference), as picks.choose. */
static PyObject *
choose(PyObject *p, PyObject *rand)
{
    if (!PyTuple_Check(p) || PyTuple_GET_SIZE(p) != 4) {
        PyErr_SetString(PyExc_TypeError, "a pick is a 4-tuple");
        return NULL;
    }
    PyObject *cum = PyTuple_GET_ITEM(p, 0);
    PyObject *variants = PyTuple_GET_ITEM(p, 2);
    PyObject *drawer = PyTuple_GET_ITEM(p, 3);
    if (cum != Py_None) {
        double total = PyFloat_AsDouble(PyTuple_GET_ITEM(p, 1));
        if (total == -1.0 && PyErr_Occurred())
            return NULL;
        PyObject *r = PyObject_CallNoArgs(rand);
        if (r == NULL)
            return NULL;
        double u = PyFloat_AsDouble(r);
        Py_DECREF(r);
        if (u == -1.0 && PyErr_Occurred())
            return NULL;
        double x = u * total;
        if (!PyList_Check(cum)) {
            PyErr_SetString(PyExc_TypeError, "cumulative weights are a list");
            return NULL;
        }
        /* bisect_right: the first index whose weight is greater than x */
        Py_ssize_t lo = 0, hi = PyList_GET_SIZE(cum);
        while (lo < hi) {
            Py_ssize_t mid = (lo + hi) / 2;
            double w = PyFloat_AsDouble(PyList_GET_ITEM(cum, mid));
            if (w == -1.0 && PyErr_Occurred())
                return NULL;
            if (x < w)
                hi = mid;
            else
                lo = mid + 1;
        }
        return PySequence_GetItem(variants, lo);
    }
    if (drawer == Py_None)
        return PySequence_GetItem(variants, 0);
    return PyObject_CallOneArg(drawer, rand);
}

/* hits[slot] += 1, with Python's index semantics. */
static int
count(PyObject *hits, PyObject *slot_obj)
{
    Py_ssize_t slot = PyLong_AsSsize_t(slot_obj);
    if (slot == -1 && PyErr_Occurred())
        return -1;
    Py_ssize_t n = PyList_GET_SIZE(hits);
    if (slot < 0)
        slot += n;
    if (slot < 0 || slot >= n) {
        PyErr_SetString(PyExc_IndexError, "tally slot out of range");
        return -1;
    }
    PyObject *sum = PyNumber_Add(PyList_GET_ITEM(hits, slot), one);
    if (sum == NULL)
        return -1;
    PyList_SetItem(hits, slot, sum); /* steals sum, releases the old count */
    return 0;
}

/* The reply to the query of `len` bytes at `data`, written to `out`: its length, 0 for none,
 * -1 on a Python error. `ip` is made when first needed and released by the caller. */
static Py_ssize_t
answer(Udp *self, const unsigned char *data, Py_ssize_t len, const struct sockaddr_storage *sa,
       PyObject **ip, unsigned char *out)
{
    if (len < 12)
        return python_reply(self->respond, data, len, ip, sa, out);
    PyObject *key = PyBytes_FromStringAndSize((const char *)data + 2, len - 2);
    if (key == NULL)
        return -1;
    PyObject *known = PyDict_GetItemWithError(self->seen, key);
    Py_DECREF(key);
    if (known == NULL) {
        if (PyErr_Occurred())
            return -1;
        return python_reply(self->respond, data, len, ip, sa, out);
    }
    if (!PyTuple_Check(known) || PyTuple_GET_SIZE(known) != KNOWN_FIELDS) {
        PyErr_SetString(PyExc_TypeError, "a known query is a 7-tuple");
        return -1;
    }
    Py_INCREF(known); /* the Python calls below may clear `seen` */
    Py_ssize_t result = -1;
    PyObject *variant = NULL;
    PyObject *picks = PyTuple_GET_ITEM(known, 0);
    int with_opt = PyObject_IsTrue(PyTuple_GET_ITEM(known, 2));
    Py_ssize_t limit = PyLong_AsSsize_t(PyTuple_GET_ITEM(known, 5));
    Py_ssize_t row = PyLong_AsSsize_t(PyTuple_GET_ITEM(known, 6));
    if (with_opt < 0 || PyErr_Occurred())
        goto done;
    if (row < 0 && (row = source_row(self, sa, ip)) == -1 && PyErr_Occurred())
        goto done;
    PyObject *pick = PySequence_GetItem(picks, row);
    if (pick == NULL)
        goto done;
    variant = choose(pick, self->rand);
    Py_DECREF(pick);
    if (variant == NULL)
        goto done;
    if (!PyTuple_Check(variant) || PyTuple_GET_SIZE(variant) != 4) {
        PyErr_SetString(PyExc_TypeError, "a variant is a 4-tuple");
        goto done;
    }
    const char *part[5];
    Py_ssize_t size[5];
    if (as_bytes(PyTuple_GET_ITEM(known, 1), &part[0], &size[0]) < 0 ||            /* flags */
        as_bytes(PyTuple_GET_ITEM(variant, with_opt ? 1 : 0), &part[1], &size[1]) < 0 ||
        as_bytes(PyTuple_GET_ITEM(known, 3), &part[2], &size[2]) < 0 ||            /* question */
        as_bytes(PyTuple_GET_ITEM(variant, 2), &part[3], &size[3]) < 0 ||          /* records */
        as_bytes(PyTuple_GET_ITEM(known, 4), &part[4], &size[4]) < 0)              /* OPT */
        goto done;
    Py_ssize_t total = 2;
    for (int i = 0; i < 5; i++)
        total += size[i];
    if (total > limit || total > SLOT) { /* too big for the client: the slow path says how */
        result = python_reply(self->slow, data, len, ip, sa, out);
        goto done;
    }
    unsigned char *w = out;
    memcpy(w, data, 2); /* the query's ID */
    w += 2;
    for (int i = 0; i < 5; i++) {
        memcpy(w, part[i], size[i]);
        w += size[i];
    }
    if (count(self->hits, PyTuple_GET_ITEM(variant, 3)) < 0)
        goto done;
    result = total;
done:
    Py_XDECREF(variant);
    Py_DECREF(known);
    return result;
}

/* How long a full send buffer may hold the replies of one batch before one is dropped:
 * a burst to a slow reader fills the socket's send buffer (its replies are charged to it
 * until read); the Python path's transport waits for room, and so does this one. */
#define SEND_WAIT_MS 200

/* Send the `m` replies prepared. A full send buffer is waited for (up to SEND_WAIT_MS);
 * a reply the kernel still refuses (or an unreachable client) is dropped, as UDP may. */
static void
send_all(Udp *self, int m)
{
    int off = 0;
    while (off < m) {
        int sent = sendmmsg(self->fd, self->smsg + off, m - off, MSG_DONTWAIT);
        if (sent < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                struct pollfd p = {.fd = self->fd, .events = POLLOUT};
                int ready;
                Py_BEGIN_ALLOW_THREADS
                ready = poll(&p, 1, SEND_WAIT_MS);
                Py_END_ALLOW_THREADS
                if (ready > 0)
                    continue;
            }
            off += 1; /* still no room, or an unreachable client: skip that one */
            continue;
        }
        off += sent;
    }
}

PyDoc_STRVAR(Udp_serve_doc,
             "serve() -> (read, errors)\n\n"
             "Read up to `batch` queries with one recvmmsg, answer them, send the replies with\n"
             "one sendmmsg. `read` is 0 when nothing waited; `errors` counts the queries\n"
             "dropped because answering them raised.");

static PyObject *
Udp_serve(Udp *self, PyObject *Py_UNUSED(ignored))
{
    int batch = self->batch;
    for (int i = 0; i < batch; i++) /* the kernel wrote the last batch's address lengths */
        self->rmsg[i].msg_hdr.msg_namelen = sizeof(struct sockaddr_storage);
    int n;
    for (int tries = 0;; tries++) {
        n = recvmmsg(self->fd, self->rmsg, batch, MSG_DONTWAIT, NULL);
        if (n >= 0)
            break;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return Py_BuildValue("(ii)", 0, 0);
        if (errno == EBADF || errno == ENOTSOCK || errno == EINVAL || errno == EFAULT)
            return PyErr_SetFromErrno(PyExc_OSError);
        if (tries >= batch) /* ICMP errors reported on the socket, and so on: skip them */
            return Py_BuildValue("(ii)", 0, 0);
    }
    int errors = 0, m = 0;
    PyObject *fatal_type = NULL, *fatal_value = NULL, *fatal_tb = NULL;
    for (int i = 0; i < n; i++) {
        PyObject *ip = NULL;
        unsigned char *out = self->tx + (size_t)m * SLOT;
        Py_ssize_t len = answer(self, self->rx + (size_t)i * SLOT, self->rmsg[i].msg_len,
                                &self->addrs[i], &ip, out);
        Py_XDECREF(ip);
        if (len < 0) {
            if (!PyErr_ExceptionMatches(PyExc_Exception)) {
                PyErr_Fetch(&fatal_type, &fatal_value, &fatal_tb);
                break;
            }
            PyErr_Clear();
            errors++;
            continue;
        }
        if (len == 0)
            continue;
        self->siov[m].iov_base = out;
        self->siov[m].iov_len = (size_t)len;
        struct msghdr *h = &self->smsg[m].msg_hdr;
        h->msg_name = &self->addrs[i];
        h->msg_namelen = self->rmsg[i].msg_hdr.msg_namelen;
        h->msg_iov = &self->siov[m];
        h->msg_iovlen = 1;
        h->msg_control = NULL;
        h->msg_controllen = 0;
        h->msg_flags = 0;
        m++;
    }
    send_all(self, m);
    if (fatal_type != NULL) {
        PyErr_Restore(fatal_type, fatal_value, fatal_tb);
        return NULL;
    }
    return Py_BuildValue("(ii)", n, errors);
}

static PyMethodDef Udp_methods[] = {
    {"serve", (PyCFunction)Udp_serve, METH_NOARGS, Udp_serve_doc},
    {NULL},
};

PyDoc_STRVAR(Udp_doc,
             "Udp(fd, respond, slow, seen, rows, row_for, hits, rand, batch=64)\n\n"
             "The compiled UDP answer path of one generation's Replies (gtm.dns.wire) on the\n"
             "socket `fd`, which stays the caller's to close.");

static PyTypeObject UdpType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "gtm.dns._fast.Udp",
    .tp_basicsize = sizeof(Udp),
    .tp_dealloc = (destructor)Udp_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = Udp_doc,
    .tp_methods = Udp_methods,
    .tp_init = (initproc)Udp_init,
    .tp_new = PyType_GenericNew,
};

static struct PyModuleDef fast_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "gtm.dns._fast",
    .m_doc = "The UDP answer path of gtm.dns.wire, compiled: recvmmsg, the same picks, sendmmsg.",
    .m_size = -1,
};

PyMODINIT_FUNC
PyInit__fast(void)
{
    if (PyType_Ready(&UdpType) < 0)
        return NULL;
    one = PyLong_FromLong(1);
    if (one == NULL)
        return NULL;
    PyObject *m = PyModule_Create(&fast_module);
    if (m == NULL)
        return NULL;
    Py_INCREF(&UdpType);
    if (PyModule_AddObject(m, "Udp", (PyObject *)&UdpType) < 0) {
        Py_DECREF(&UdpType);
        Py_DECREF(m);
        return NULL;
    }
    if (PyModule_AddIntConstant(m, "MAX_BATCH", MAX_BATCH) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
