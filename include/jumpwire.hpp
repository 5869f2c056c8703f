/*
 * jumpwire.hpp: a header-only C++17 layer over the C API of jumpwire.h.
 *
 * - RAII handles, move-only: jw::Network, jw::Stream, jw::Listener,
 *   jw::WsServer, jw::Router. A destructor releases what the C API would
 *   (jw_network_free, jw_stream_close, jw_listener_close, ...).
 * - Timeouts are std::chrono durations (rounded up to whole milliseconds), or
 *   jw::forever and jw::poll.
 * - Failures throw jw::Error, which carries the jw_status and the message of
 *   jw_last_error(). Every throwing call has a non-throwing overload taking a
 *   std::error_code& last (as std::filesystem does): it never throws a
 *   jw::Error and sets the code (category jw::category(); the message of the
 *   failure is jw::last_error() on the same thread).
 * - The thread rules are the C API's (each handle type's comment in
 *   jumpwire.h says them): one thread may send while another receives on a
 *   Stream; a Network, and servers, listeners and routers, may be used from
 *   several threads at once. close(), moves and the destructor change the C++
 *   object itself (its handle member), so they must not overlap another use of
 *   the same object. To close a WsServer, Listener or Router under calls on
 *   other threads, call its C _close on get(): the destructor's second close
 *   of that handle is a no-op.
 *
 * The C++ wrapper adds no state of its own to streams: Stream::get() gives
 * the jw_stream* for C calls, Stream::release() hands it over.
 */
#ifndef JUMPWIRE_HPP
#define JUMPWIRE_HPP

#include "jumpwire.h"

#include <chrono>
#include <climits>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

namespace jw {

/* ---------------------------------------------------------------- errors */

/* The std::error_category of jw_status codes. */
class Category final : public std::error_category {
public:
    const char *name() const noexcept override { return "jumpwire"; }
    std::string message(int code) const override { return jw_status_str(code); }
};

inline const std::error_category &category() noexcept
{
    static const Category c;
    return c;
}

inline std::error_code make_error_code(jw_status s) noexcept { return {static_cast<int>(s), category()}; }

/* This thread's last failure message, as jw_last_error(). */
inline std::string last_error() { return jw_last_error(); }

/* A failed call: its status and the message jw_last_error() gave. */
class Error : public std::runtime_error {
public:
    Error(jw_status status, const std::string &what)
        : std::runtime_error(what.empty() ? std::string(jw_status_str(status)) : what), status_(status)
    {
    }
    jw_status status() const noexcept { return status_; }
    std::error_code code() const noexcept { return make_error_code(status_); }
    bool is_timeout() const noexcept { return status_ == JW_TIMEOUT; }

private:
    jw_status status_;
};

namespace detail {

/* Throws jw::Error unless st is JW_OK (or, where allowed, JW_EOF). */
inline void check(jw_status st)
{
    if (st != JW_OK) {
        throw Error(st, st < 0 ? jw_last_error() : jw_status_str(st));
    }
}

/* Sets ec from st; returns whether st is JW_OK. */
inline bool set(std::error_code &ec, jw_status st) noexcept
{
    ec = st == JW_OK ? std::error_code() : make_error_code(st);
    return st == JW_OK;
}

/* Reads a string through a (buf, cap) C call, growing the buffer as needed. */
template <class F> jw_status read_string(F &&f, std::string &out)
{
    std::string buf(256, '\0');
    for (;;) {
        jw_status st = f(&buf[0], buf.size());
        if (st == JW_ERR_TOO_LARGE && buf.size() < (1u << 20)) {
            buf.resize(buf.size() * 4);
            continue;
        }
        if (st == JW_OK) {
            buf.resize(std::char_traits<char>::length(buf.c_str()));
            out = std::move(buf);
        }
        return st;
    }
}

template <class F> std::string string_or_throw(F &&f)
{
    std::string out;
    check(read_string(std::forward<F>(f), out));
    return out;
}

} // namespace detail

/* -------------------------------------------------------------- timeouts */

/* A timeout for a blocking call: a duration, jw::forever or jw::poll. */
class Timeout {
public:
    /* Any std::chrono duration, rounded up to whole milliseconds; negative
     * durations poll. */
    template <class Rep, class Period>
    constexpr Timeout(std::chrono::duration<Rep, Period> d) // NOLINT: implicit on purpose
        : ms_(to_ms(std::chrono::ceil<std::chrono::milliseconds>(d).count()))
    {
    }
    static constexpr Timeout forever() noexcept { return Timeout(-1, 0); }
    static constexpr Timeout poll() noexcept { return Timeout(0, 0); }
    /* The timeout_ms the C API takes. */
    constexpr int ms() const noexcept { return ms_; }

private:
    constexpr Timeout(int ms, int) : ms_(ms) {}
    static constexpr int to_ms(long long ms) noexcept
    {
        return ms < 0 ? 0 : ms > INT_MAX ? INT_MAX : static_cast<int>(ms);
    }
    int ms_;
};

inline constexpr Timeout forever = Timeout::forever();
inline constexpr Timeout poll = Timeout::poll();

/* --------------------------------------------------------------- streams */

/* A stream the caller does not own: what a WsServer handler gets (the server
 * closes it). Stream owns its jw_stream and adds close(). */
class StreamRef {
public:
    explicit StreamRef(jw_stream *s) noexcept : s_(s) {}

    /* Sends all of data (one message on message transports), or throws;
     * nothing was sent when the timeout passed (Error::is_timeout). */
    void send(const void *data, size_t len, Timeout t = forever) const
    {
        detail::check(jw_stream_send(s_, data, len, t.ms()));
    }
    void send(std::string_view data, Timeout t = forever) const { send(data.data(), data.size(), t); }
    bool send(const void *data, size_t len, Timeout t, std::error_code &ec) const noexcept
    {
        return detail::set(ec, jw_stream_send(s_, data, len, t.ms()));
    }

    /* Receives up to cap bytes into buf: their count, or std::nullopt at the
     * end of the stream. Throws on a failure or timeout. */
    std::optional<size_t> receive(void *buf, size_t cap, Timeout t = forever) const
    {
        size_t n = 0;
        jw_status st = jw_stream_receive(s_, buf, cap, &n, t.ms());
        if (st == JW_EOF) {
            return std::nullopt;
        }
        detail::check(st);
        return n;
    }
    /* Non-throwing: the count, std::nullopt at the end or on a failure (then
     * ec says which; at the end ec is clear). */
    std::optional<size_t> receive(void *buf, size_t cap, Timeout t, std::error_code &ec) const noexcept
    {
        size_t n = 0;
        jw_status st = jw_stream_receive(s_, buf, cap, &n, t.ms());
        if (st == JW_EOF) {
            ec.clear();
            return std::nullopt;
        }
        return detail::set(ec, st) ? std::optional<size_t>(n) : std::nullopt;
    }
    /* The next bytes as a string (at most max), std::nullopt at the end. */
    std::optional<std::string> receive_string(size_t max = 65536, Timeout t = forever) const
    {
        std::string buf(max, '\0');
        auto n = receive(&buf[0], buf.size(), t);
        if (!n) {
            return std::nullopt;
        }
        buf.resize(*n);
        return buf;
    }

    /* Half-closes: the peer sees the end after what was sent. */
    void send_eof() const { detail::check(jw_stream_send_eof(s_)); }
    bool send_eof(std::error_code &ec) const noexcept { return detail::set(ec, jw_stream_send_eof(s_)); }
    /* Waits until what earlier sends accepted has left the library (see
     * jw_stream_flush): throws on a timeout or if it never will. */
    void flush(Timeout t = forever) const { detail::check(jw_stream_flush(s_, t.ms())); }
    bool flush(Timeout t, std::error_code &ec) const noexcept { return detail::set(ec, jw_stream_flush(s_, t.ms())); }
    /* Bytes and messages carried so far (also what jw_forward moved). */
    jw_stream_stats_t stats() const
    {
        jw_stream_stats_t st{};
        detail::check(jw_stream_stats(s_, &st));
        return st;
    }

    /* The request path of a websocket server connection (jw_ws_path). */
    std::string ws_path() const
    {
        return detail::string_or_throw([this](char *b, size_t c) { return jw_ws_path(s_, b, c); });
    }

    jw_stream *get() const noexcept { return s_; }

protected:
    jw_stream *s_;
};

/* A stream this object owns; closed (gracefully) by the destructor. */
class Stream : public StreamRef {
public:
    /* Takes ownership of a jw_stream* from the C API. */
    explicit Stream(jw_stream *s) noexcept : StreamRef(s) {}
    Stream(Stream &&o) noexcept : StreamRef(std::exchange(o.s_, nullptr)) {}
    Stream &operator=(Stream &&o) noexcept
    {
        if (this != &o) {
            close();
            s_ = std::exchange(o.s_, nullptr);
        }
        return *this;
    }
    Stream(const Stream &) = delete;
    Stream &operator=(const Stream &) = delete;
    ~Stream() { close(); }

    /* jw_connect: a stream to any network URL. */
    static Stream connect(const std::string &url, Timeout t = forever)
    {
        jw_stream *s = nullptr;
        detail::check(jw_connect(url.c_str(), t.ms(), &s));
        return Stream(s);
    }
    /* Non-throwing: an empty Stream (explicit operator bool false) on failure. */
    static Stream connect(const std::string &url, Timeout t, std::error_code &ec) noexcept
    {
        jw_stream *s = nullptr;
        detail::set(ec, jw_connect(url.c_str(), t.ms(), &s));
        return Stream(s);
    }

    /* Closes now (also wakes calls blocked on other threads). */
    void close() noexcept
    {
        if (s_) {
            jw_stream_close(std::exchange(s_, nullptr));
        }
    }
    /* Gives up ownership: the caller closes the jw_stream*. */
    jw_stream *release() noexcept { return std::exchange(s_, nullptr); }
    explicit operator bool() const noexcept { return s_ != nullptr; }
};

/* jw_forward: moves bytes both ways between a and b until both directions
 * have ended; throws if either side failed. */
inline void forward(const StreamRef &a, const StreamRef &b) { detail::check(jw_forward(a.get(), b.get())); }

/* jw_ws_accept: turns a raw byte stream from a websocket client into a
 * websocket server connection (takes raw). */
inline Stream ws_accept(Stream &&raw, Timeout t = forever)
{
    jw_stream *out = nullptr;
    jw_stream *r = raw.get();
    jw_status st = jw_ws_accept(r, t.ms(), &out);
    if (st != JW_ERR_INVALID_ARGUMENT) {
        raw.release(); /* taken by jw_ws_accept, closed on failure */
    }
    detail::check(st);
    return Stream(out);
}

/* -------------------------------------------------------------- networks */

/* A parsed network URL (no I/O until connect). */
class Network {
public:
    explicit Network(const std::string &url) { detail::check(jw_network_new(url.c_str(), &n_)); }
    Network(const std::string &url, std::error_code &ec) noexcept { detail::set(ec, jw_network_new(url.c_str(), &n_)); }
    Network(Network &&o) noexcept : n_(std::exchange(o.n_, nullptr)) {}
    Network &operator=(Network &&o) noexcept
    {
        if (this != &o) {
            jw_network_free(std::exchange(n_, std::exchange(o.n_, nullptr)));
        }
        return *this;
    }
    Network(const Network &) = delete;
    Network &operator=(const Network &) = delete;
    ~Network() { jw_network_free(n_); }

    /* A network that opens streams through a router (jw_network_router). */
    static Network router(const std::string &router_url, const std::string &token)
    {
        jw_network *n = nullptr;
        detail::check(jw_network_router(router_url.c_str(), token.c_str(), &n));
        return Network(n);
    }

    Stream connect(Timeout t = forever) const
    {
        jw_stream *s = nullptr;
        detail::check(jw_network_connect(n_, t.ms(), &s));
        return Stream(s);
    }
    Stream connect(Timeout t, std::error_code &ec) const noexcept
    {
        jw_stream *s = nullptr;
        detail::set(ec, jw_network_connect(n_, t.ms(), &s));
        return Stream(s);
    }
    std::string address() const
    {
        return detail::string_or_throw([this](char *b, size_t c) { return jw_network_address(n_, b, c); });
    }
    const jw_network *get() const noexcept { return n_; }
    explicit operator bool() const noexcept { return n_ != nullptr; }

private:
    explicit Network(jw_network *n) noexcept : n_(n) {}
    jw_network *n_ = nullptr;
};

/* ------------------------------------------------------------- listeners */

/* jw_listen: forwards every connection to listen_url onto a new stream of
 * target; closed by the destructor. */
class Listener {
public:
    Listener(const std::string &listen_url, const Network &target)
    {
        detail::check(jw_listen(listen_url.c_str(), target.get(), &l_));
    }
    Listener(const std::string &listen_url, const Network &target, std::error_code &ec) noexcept
    {
        detail::set(ec, jw_listen(listen_url.c_str(), target.get(), &l_));
    }
    Listener(Listener &&o) noexcept : l_(std::exchange(o.l_, nullptr)) {}
    Listener &operator=(Listener &&o) noexcept
    {
        if (this != &o) {
            jw_listener_close(std::exchange(l_, std::exchange(o.l_, nullptr)));
        }
        return *this;
    }
    Listener(const Listener &) = delete;
    Listener &operator=(const Listener &) = delete;
    ~Listener() { jw_listener_close(l_); }

    std::string address() const
    {
        return detail::string_or_throw([this](char *b, size_t c) { return jw_listener_address(l_, b, c); });
    }
    std::string dbus_address() const
    {
        return detail::string_or_throw([this](char *b, size_t c) { return jw_listener_dbus_address(l_, b, c); });
    }
    /* Connections accepted, open, refused; bytes relayed each way. */
    jw_server_stats_t stats() const
    {
        jw_server_stats_t s{};
        detail::check(jw_listener_stats(l_, &s));
        return s;
    }
    void close() noexcept { jw_listener_close(std::exchange(l_, nullptr)); }
    jw_listener *get() const noexcept { return l_; }
    explicit operator bool() const noexcept { return l_ != nullptr; }

private:
    jw_listener *l_ = nullptr;
};

/* ----------------------------------------------------- websocket servers */

/* jw_ws_serve with a C++ handler: handler(conn) runs on each connection's own
 * thread (conn is the server's; it is closed when the handler returns). An
 * exception escaping the handler ends that connection only. */
class WsServer {
public:
    using Handler = std::function<void(StreamRef conn)>;

    WsServer(const std::string &listen_url, Handler handler) : h_(std::make_unique<Handler>(std::move(handler)))
    {
        detail::check(jw_ws_serve(listen_url.c_str(), &WsServer::trampoline, h_.get(), &w_));
    }
    WsServer(WsServer &&o) noexcept : h_(std::move(o.h_)), w_(std::exchange(o.w_, nullptr)) {}
    WsServer &operator=(WsServer &&o) noexcept
    {
        if (this != &o) {
            close();
            h_ = std::move(o.h_);
            w_ = std::exchange(o.w_, nullptr);
        }
        return *this;
    }
    WsServer(const WsServer &) = delete;
    WsServer &operator=(const WsServer &) = delete;
    /* Closes the server (waiting for every handler) before the handler goes. */
    ~WsServer() { close(); }

    std::string address() const
    {
        return detail::string_or_throw([this](char *b, size_t c) { return jw_ws_server_address(w_, b, c); });
    }
    /* One binary message to every open connection (thread-safe). */
    void broadcast(const void *data, size_t len) const { detail::check(jw_ws_broadcast(w_, data, len)); }
    void broadcast(std::string_view data) const { broadcast(data.data(), data.size()); }
    bool broadcast(std::string_view data, std::error_code &ec) const noexcept
    {
        return detail::set(ec, jw_ws_broadcast(w_, data.data(), data.size()));
    }
    uint64_t dropped() const
    {
        uint64_t n = 0;
        detail::check(jw_ws_server_dropped(w_, &n));
        return n;
    }
    uint64_t refused() const
    {
        uint64_t n = 0;
        detail::check(jw_ws_server_refused(w_, &n));
        return n;
    }
    /* Connections accepted, served, refused; message bytes each way. */
    jw_server_stats_t stats() const
    {
        jw_server_stats_t s{};
        detail::check(jw_ws_server_stats(w_, &s));
        return s;
    }
    void close() noexcept { jw_ws_server_close(std::exchange(w_, nullptr)); }
    jw_ws_server *get() const noexcept { return w_; }

private:
    static void trampoline(jw_stream *conn, void *user)
    {
        try {
            (*static_cast<Handler *>(user))(StreamRef(conn));
        } catch (...) {
            /* Must not unwind into C: the connection just ends. */
        }
    }
    std::unique_ptr<Handler> h_;
    jw_ws_server *w_ = nullptr;
};

/* --------------------------------------------------------------- routers */

/* jw_router_serve: an embedded Jumpstarter router; closed by the destructor. */
class Router {
public:
    explicit Router(const std::string &listen_url) { detail::check(jw_router_serve(listen_url.c_str(), &r_)); }
    Router(const std::string &listen_url, std::error_code &ec) noexcept
    {
        detail::set(ec, jw_router_serve(listen_url.c_str(), &r_));
    }
    Router(Router &&o) noexcept : r_(std::exchange(o.r_, nullptr)) {}
    Router &operator=(Router &&o) noexcept
    {
        if (this != &o) {
            jw_router_close(std::exchange(r_, std::exchange(o.r_, nullptr)));
        }
        return *this;
    }
    Router(const Router &) = delete;
    Router &operator=(const Router &) = delete;
    ~Router() { jw_router_close(r_); }

    std::string address() const
    {
        return detail::string_or_throw([this](char *b, size_t c) { return jw_router_address(r_, b, c); });
    }
    /* The PEM certificate of a grpcs:// router; empty for grpc://. */
    std::string certificate() const
    {
        const char *pem = jw_router_certificate(r_);
        return pem ? std::string(pem) : std::string();
    }
    void close() noexcept { jw_router_close(std::exchange(r_, nullptr)); }
    jw_router *get() const noexcept { return r_; }

    /* Calls admitted and open, refusals, payload bytes relayed. */
    jw_server_stats_t stats() const
    {
        jw_server_stats_t s{};
        detail::check(jw_router_stats(r_, &s));
        return s;
    }

private:
    jw_router *r_ = nullptr;
};

/* jw_router_token: a stream token as the Jumpstarter controller mints it. */
inline std::string router_token(const std::string &key, const std::string &stream_id,
                                std::chrono::seconds ttl = std::chrono::hours(1))
{
    long long s = ttl.count();
    int ttl_s = s > INT_MAX ? INT_MAX : static_cast<int>(s);
    return detail::string_or_throw(
        [&](char *b, size_t c) { return jw_router_token(key.c_str(), stream_id.c_str(), ttl_s, b, c); });
}

/* jw_router_connect: a stream through a router. */
inline Stream router_connect(const std::string &router_url, const std::string &token, Timeout t = forever)
{
    jw_stream *s = nullptr;
    detail::check(jw_router_connect(router_url.c_str(), token.c_str(), t.ms(), &s));
    return Stream(s);
}

/* jw_router_export: the exporter side of one routed stream (blocks). */
inline void router_export(const std::string &router_url, const std::string &token, const Network &target,
                          Timeout t = forever)
{
    detail::check(jw_router_export(router_url.c_str(), token.c_str(), target.get(), t.ms()));
}

/* The library's version (jw_version), and the header's (JW_VERSION). */
inline std::string version() { return jw_version(); }

} // namespace jw

#endif /* JUMPWIRE_HPP */
