// Compiled bulk harness for a generated mstbnn top (see mstbnn/sim/bulk.py).
//
// Streams input beats read from a binary file through the valid/ready ports,
// with seeded random valid gaps and output backpressure, and writes every
// output (out_class, out_scores words) and its handshake cycles to binary
// files. No judging here: Python compares with the golden executor.
//
// The same file serves every top: port widths are taken from the Verilated
// types (CData/SData/IData/QData or VlWide<N>) by overloads, and checked
// against the word counts given on the command line.
//
// Usage: bulk_sim IN_BEATS OUT_RECORDS OUT_CYCLES images beats_per_image
//        in_words score_words seed p_valid p_ready stall_limit drain_cycles
// Files are little-endian 32-bit words (cycles: 64-bit). Stdout: up to 20
// lines "protocol: ...", then one line "done outputs=N cycles=C timeout=0|1
// loop_seconds=S".

#include "Vdut.h"  // --prefix Vdut, whatever the top module is called
#include "verilated.h"

#include <chrono>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

namespace {

template <typename T>
int words_of(const T&) {
    return sizeof(T) > 4 ? 2 : 1;
}
template <std::size_t N>
int words_of(const VlWide<N>&) {
    return static_cast<int>(N);
}

template <typename T>
void put(T& port, const uint32_t* w) {
    uint64_t v = w[0];
    if (sizeof(T) > 4) v |= static_cast<uint64_t>(w[1]) << 32;
    port = static_cast<T>(v);
}
template <std::size_t N>
void put(VlWide<N>& port, const uint32_t* w) {
    for (std::size_t i = 0; i < N; ++i) port[i] = w[i];
}

template <typename T>
void get(const T& port, uint32_t* w) {
    const uint64_t v = port;
    w[0] = static_cast<uint32_t>(v);
    if (sizeof(T) > 4) w[1] = static_cast<uint32_t>(v >> 32);
}
template <std::size_t N>
void get(const VlWide<N>& port, uint32_t* w) {
    for (std::size_t i = 0; i < N; ++i) w[i] = port[i];
}

// splitmix64: a fixed, portable generator (std distributions differ between
// standard libraries; this stream is the same everywhere for a seed).
struct Rng {
    uint64_t s;
    uint64_t next() {
        uint64_t z = (s += 0x9E3779B97F4A7C15ULL);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
        return z ^ (z >> 31);
    }
    // true with probability p (53-bit uniform in [0, 1))
    bool chance(double p) { return p >= 1.0 || static_cast<double>(next() >> 11) * 0x1.0p-53 < p; }
};

[[noreturn]] void fail(const std::string& what) {
    std::fprintf(stderr, "bulk_sim: %s\n", what.c_str());
    std::exit(3);
}

std::vector<uint32_t> read_words(const char* path, std::size_t count) {
    std::vector<uint32_t> data(count);
    FILE* f = std::fopen(path, "rb");
    if (!f) fail(std::string("cannot open ") + path);
    if (std::fread(data.data(), 4, count, f) != count) fail(std::string("short input file ") + path);
    std::fclose(f);
    return data;
}

void write_all(const char* path, const void* data, std::size_t bytes) {
    FILE* f = std::fopen(path, "wb");
    if (!f) fail(std::string("cannot write ") + path);
    if (bytes && std::fwrite(data, 1, bytes, f) != bytes) fail(std::string("short write ") + path);
    std::fclose(f);
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 13) fail("expected 12 arguments (see bulk_main.cpp)");
    const char* in_path = argv[1];
    const char* out_path = argv[2];
    const char* cycles_path = argv[3];
    const uint64_t images = std::strtoull(argv[4], nullptr, 10);
    const uint64_t beats_per_image = std::strtoull(argv[5], nullptr, 10);
    const int in_words = std::atoi(argv[6]);
    const int score_words = std::atoi(argv[7]);
    Rng rng{std::strtoull(argv[8], nullptr, 10)};
    const double p_valid = std::atof(argv[9]);
    const double p_ready = std::atof(argv[10]);
    const uint64_t stall_limit = std::strtoull(argv[11], nullptr, 10);
    const uint64_t drain_cycles = std::strtoull(argv[12], nullptr, 10);

    auto ctx = std::make_unique<VerilatedContext>();
    auto top = std::make_unique<Vdut>(ctx.get());
    if (words_of(top->in_data) != in_words) fail("in_data width differs from the design description");
    if (words_of(top->out_scores) != score_words) fail("out_scores width differs from the design description");
    if (words_of(top->out_class) != 1) fail("out_class wider than 32 bits");

    const uint64_t total_beats = images * beats_per_image;
    const std::vector<uint32_t> beats = read_words(in_path, total_beats * in_words);
    const int rec_words = 1 + score_words;
    std::vector<uint32_t> records(images * rec_words);
    std::vector<uint64_t> cycles(images * 2);  // per image: last input beat taken, output taken
    std::vector<uint32_t> held(rec_words), now(rec_words);

    int protocol_errors = 0;
    auto protocol = [&](uint64_t cycle, const char* what) {
        if (protocol_errors++ < 20) std::printf("protocol: cycle %" PRIu64 ": %s\n", cycle, what);
    };

    // reset for 3 cycles, inputs defined
    top->rst = 1;
    top->in_valid = 0;
    top->out_ready = 0;
    for (int i = 0; i < 3; ++i) {
        top->clk = 0;
        top->eval();
        top->clk = 1;
        top->eval();
    }
    top->rst = 0;

    const auto t0 = std::chrono::steady_clock::now();
    uint64_t cycle = 0, pos = 0, n_out = 0, idle = 0;
    bool offering = false, pending = false, timeout = false;
    while (n_out < images) {
        ++cycle;
        // after the falling edge: drive, settle, sample; the rising edge takes the handshakes
        top->clk = 0;
        if (pos < total_beats) {
            if (!offering) {
                offering = rng.chance(p_valid);
                if (offering) put(top->in_data, &beats[pos * in_words]);
            }
        } else {
            offering = false;
        }
        top->in_valid = offering;
        const bool ready = rng.chance(p_ready);
        top->out_ready = ready;
        top->eval();
        ++idle;
        if (offering && top->in_ready) {
            if (pos % beats_per_image == beats_per_image - 1) cycles[2 * (pos / beats_per_image)] = cycle;
            ++pos;
            offering = false;
            idle = 0;
        }
        if (top->out_valid) {
            now[0] = static_cast<uint32_t>(top->out_class);
            get(top->out_scores, &now[1]);
            if (pending && std::memcmp(now.data(), held.data(), 4 * rec_words) != 0)
                protocol(cycle, "out_class/out_scores changed while out_valid was held without out_ready");
            if (ready) {
                std::memcpy(&records[n_out * rec_words], now.data(), 4 * rec_words);
                cycles[2 * n_out + 1] = cycle;
                ++n_out;
                pending = false;
                idle = 0;
            } else {
                held = now;
                pending = true;
            }
        } else if (pending) {
            protocol(cycle, "out_valid dropped before out_ready took the output");
            pending = false;
        }
        top->clk = 1;
        top->eval();
        if (idle > stall_limit) {
            timeout = true;
            break;
        }
    }
    // every vector answered: out_valid must stay low while idle
    for (uint64_t i = 0; !timeout && i < drain_cycles; ++i) {
        ++cycle;
        top->clk = 0;
        top->in_valid = 0;
        top->out_ready = 1;
        top->eval();
        if (top->out_valid) {
            protocol(cycle, "out_valid with no vector left to answer (spurious output)");
            break;
        }
        top->clk = 1;
        top->eval();
    }
    const double loop_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    top->final();

    write_all(out_path, records.data(), n_out * rec_words * 4);
    write_all(cycles_path, cycles.data(), images * 2 * 8);
    std::printf("done outputs=%" PRIu64 " cycles=%" PRIu64 " timeout=%d protocol_errors=%d loop_seconds=%.6f\n", n_out,
                cycle, timeout ? 1 : 0, protocol_errors, loop_seconds);
    return 0;
}
