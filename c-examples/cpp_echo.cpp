/*
 * cpp_echo: the C++ header, include/jumpwire.hpp, in one program.
 *
 * RAII handles (jw::Network, jw::Listener, jw::Stream, jw::WsServer) release
 * themselves; timeouts are std::chrono durations; failures throw jw::Error
 * (its status() and the library's message), or, with the std::error_code
 * overloads, set a code and throw nothing.
 *
 * 1. forwards a local TCP port onto the echo network and round-trips a
 *    message through it, then half-closes and sees the end come back;
 * 2. serves websockets with a lambda handler that echoes each message;
 * 3. shows a timeout, a bad URL as an exception and as an error code.
 *
 * Build: c++ -std=c++17 cpp_echo.cpp -Iinclude -Ltarget/release -ljumpwire -pthread
 * Exits 0 when everything came back as expected.
 */
#include "jumpwire.hpp"

#include <iostream>
#include <string>

using namespace std::chrono_literals;

/* Receives until `want` bytes came (or the end). */
static std::string receive_n(const jw::StreamRef &s, size_t want)
{
    std::string got;
    while (got.size() < want) {
        auto part = s.receive_string(want - got.size(), 5s);
        if (!part) {
            break;
        }
        got += *part;
    }
    return got;
}

int main()
{
    try {
        jw::Network echo("echo:");
        jw::Listener forward("tcp://127.0.0.1:0", echo);
        std::cout << "forwarding " << forward.address() << " -> echo:\n";

        jw::Stream s = jw::Stream::connect(forward.address(), 5s);
        const std::string hello = "hello from C++";
        s.send(hello, 5s);
        s.flush(5s); // what send accepted has left the library
        std::cout << "round trip: \"" << receive_n(s, hello.size()) << "\"\n";
        s.send_eof();
        if (!s.receive_string(64, 5s)) {
            std::cout << "end of stream came back\n";
        }
        jw_stream_stats_t st = s.stats();
        std::cout << "the stream carried " << st.bytes_sent << " bytes out and " << st.bytes_received << " in\n";

        jw::WsServer ws("ws://127.0.0.1:0", [](jw::StreamRef conn) {
            char buf[4096];
            std::error_code ec;
            while (auto n = conn.receive(buf, sizeof buf, jw::forever, ec)) {
                if (!conn.send(buf, *n, 5s, ec)) {
                    break;
                }
            }
        });
        jw::Stream c = jw::Stream::connect(ws.address(), 5s);
        c.send("ping over a websocket", 5s);
        std::cout << "websocket echo: \"" << c.receive_string(256, 5s).value_or("<end>") << "\"\n";

        try {
            char buf[16];
            c.receive(buf, sizeof buf, 50ms);
            std::cout << "unexpected data\n";
            return 1;
        } catch (const jw::Error &e) {
            std::cout << "nothing within 50 ms: " << (e.is_timeout() ? "timeout" : e.what()) << "\n";
        }

        try {
            jw::Stream::connect("tcp://127.0.0.1:99999", 1s);
            return 1;
        } catch (const jw::Error &e) {
            std::cout << "bad URL throws " << jw_status_str(e.status()) << ": " << e.what() << "\n";
        }

        std::error_code ec;
        jw::Stream none = jw::Stream::connect("nosuch://x", 1s, ec);
        if (!none && ec) {
            std::cout << "bad scheme as an error code: " << ec.message() << " (" << jw::last_error() << ")\n";
        }
        std::cout << "jumpwire " << jw::version() << ": cpp echo: OK\n";
        return 0;
    } catch (const jw::Error &e) {
        std::cerr << "cpp_echo: " << jw_status_str(e.status()) << ": " << e.what() << "\n";
        return 1;
    }
}
