// prog_threaded: a threaded C++ program with deterministic output, run by the
// real-program suite (tests/suites/40-programs.sh) with and without gomalloc;
// the two outputs must be identical.
//
// A std::thread pool runs: text generation and a word-frequency count
// (std::unordered_map / std::map / std::string), a parallel sort and merge of
// strings (std::vector), a pipeline passing std::shared_ptr buffers between
// threads through queues, and per-thread std::map work. Everything printed
// depends only on the fixed seeds, never on scheduling.
#include <algorithm>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <deque>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

namespace {

struct Rng {
    uint64_t s;
    explicit Rng(uint64_t seed) : s(seed * 0x9E3779B97F4A7C15ull + 1) {}
    uint64_t next() {
        s ^= s >> 12;
        s ^= s << 25;
        s ^= s >> 27;
        return s * 0x2545F4914F6CDD1Dull;
    }
    uint32_t below(uint32_t n) { return (uint32_t)(next() % n); }
};

uint64_t fnv(const std::string &s, uint64_t h = 1469598103934665603ull) {
    for (unsigned char c : s) {
        h ^= c;
        h *= 1099511628211ull;
    }
    return h;
}

class Pool {
  public:
    explicit Pool(unsigned n) {
        for (unsigned i = 0; i < n; i++) workers_.emplace_back([this] { run(); });
    }
    ~Pool() {
        {
            std::lock_guard<std::mutex> g(mu_);
            stop_ = true;
        }
        cv_.notify_all();
        for (auto &t : workers_) t.join();
    }
    template <class F> auto submit(F f) -> std::future<decltype(f())> {
        auto task = std::make_shared<std::packaged_task<decltype(f())()>>(std::move(f));
        auto fut = task->get_future();
        {
            std::lock_guard<std::mutex> g(mu_);
            q_.emplace_back([task] { (*task)(); });
        }
        cv_.notify_one();
        return fut;
    }

  private:
    void run() {
        for (;;) {
            std::function<void()> job;
            {
                std::unique_lock<std::mutex> l(mu_);
                cv_.wait(l, [this] { return stop_ || !q_.empty(); });
                if (q_.empty()) return;
                job = std::move(q_.front());
                q_.pop_front();
            }
            job();
        }
    }
    std::vector<std::thread> workers_;
    std::deque<std::function<void()>> q_;
    std::mutex mu_;
    std::condition_variable cv_;
    bool stop_ = false;
};

std::vector<std::string> make_vocabulary(size_t n) {
    static const char *syl[] = {"ka", "lo", "mi", "ne", "ru", "sa", "ti", "vo", "xe", "zu", "bra", "cle",
                                "dro", "fli", "gra", "pho", "qua", "stu", "thi", "wre", "an", "el", "is", "on"};
    Rng r(7);
    std::vector<std::string> v;
    v.reserve(n);
    for (size_t i = 0; i < n; i++) {
        std::string w;
        int k = 1 + (int)r.below(4);
        for (int j = 0; j < k; j++) w += syl[r.below(sizeof syl / sizeof syl[0])];
        w += std::to_string(i % 7);
        v.push_back(std::move(w));
    }
    return v;
}

// Zipf-like choice so that some words are frequent.
std::string make_chunk(const std::vector<std::string> &vocab, int chunk, size_t words) {
    Rng r(1000 + (uint64_t)chunk);
    std::string s;
    for (size_t i = 0; i < words; i++) {
        uint32_t a = r.below((uint32_t)vocab.size()), b = r.below(a + 1), c = r.below(b + 1);
        s += vocab[c];
        s += (i % 17 == 16) ? ".\n" : (i % 5 == 4 ? ", " : " ");
    }
    return s;
}

using Counts = std::unordered_map<std::string, long>;

std::shared_ptr<Counts> count_words(const std::string &text) {
    auto m = std::make_shared<Counts>();
    std::string w;
    for (char ch : text) {
        if ((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9')) {
            w += ch;
        } else if (!w.empty()) {
            ++(*m)[w];
            w.clear();
        }
    }
    if (!w.empty()) ++(*m)[w];
    return m;
}

void word_frequency(Pool &pool) {
    auto vocab = std::make_shared<const std::vector<std::string>>(make_vocabulary(6000));
    const int chunks = 48;
    std::vector<std::future<std::shared_ptr<Counts>>> futs;
    for (int c = 0; c < chunks; c++)
        futs.push_back(pool.submit([vocab, c] {
            std::string text = make_chunk(*vocab, c, 40000);
            return count_words(text);
        }));
    std::map<std::string, long> total;
    long words = 0;
    for (auto &f : futs) {
        std::shared_ptr<Counts> m = f.get();
        for (auto &kv : *m) {
            total[kv.first] += kv.second;
            words += kv.second;
        }
    }
    std::vector<std::pair<long, std::string>> byfreq;
    for (auto &kv : total) byfreq.emplace_back(-kv.second, kv.first);
    std::sort(byfreq.begin(), byfreq.end());
    uint64_t h = 1469598103934665603ull;
    for (auto &kv : total) h = fnv(kv.first + ":" + std::to_string(kv.second), h);
    std::printf("words %ld distinct %zu hash %016llx\n", words, total.size(), (unsigned long long)h);
    for (size_t i = 0; i < 25 && i < byfreq.size(); i++)
        std::printf("  %-16s %ld\n", byfreq[i].second.c_str(), -byfreq[i].first);
}

void parallel_sort(Pool &pool) {
    const int parts = 16;
    const size_t per = 25000;
    std::vector<std::future<std::vector<std::string>>> futs;
    for (int p = 0; p < parts; p++)
        futs.push_back(pool.submit([p, per] {
            Rng r(50 + (uint64_t)p);
            std::vector<std::string> v;
            v.reserve(per);
            for (size_t i = 0; i < per; i++) {
                std::string s(4 + r.below(28), 'a');
                for (auto &c : s) c = (char)('a' + r.below(26));
                v.push_back(std::move(s));
            }
            std::sort(v.begin(), v.end());
            return v;
        }));
    std::vector<std::vector<std::string>> runs;
    for (auto &f : futs) runs.push_back(f.get());
    // pairwise merges, in parallel, until one run is left
    while (runs.size() > 1) {
        std::vector<std::future<std::vector<std::string>>> merges;
        auto shared_runs = std::make_shared<std::vector<std::vector<std::string>>>(std::move(runs));
        for (size_t i = 0; i + 1 < shared_runs->size(); i += 2)
            merges.push_back(pool.submit([shared_runs, i] {
                auto &a = (*shared_runs)[i];
                auto &b = (*shared_runs)[i + 1];
                std::vector<std::string> out;
                out.reserve(a.size() + b.size());
                std::merge(a.begin(), a.end(), b.begin(), b.end(), std::back_inserter(out));
                return out;
            }));
        std::vector<std::vector<std::string>> next;
        for (auto &f : merges) next.push_back(f.get());
        if (shared_runs->size() % 2) next.push_back(std::move(shared_runs->back()));
        runs = std::move(next);
    }
    const auto &v = runs[0];
    bool sorted = std::is_sorted(v.begin(), v.end());
    uint64_t h = 1469598103934665603ull;
    for (auto &s : v) h = fnv(s, h);
    std::printf("sorted %zu strings ok=%d hash %016llx first %s last %s median %s\n", v.size(), (int)sorted,
                (unsigned long long)h, v.front().c_str(), v.back().c_str(), v[v.size() / 2].c_str());
}

// A three-stage pipeline: producer -> squarer -> summer, buffers passed as
// shared_ptr through mutex-protected queues between threads.
template <class T> class Chan {
  public:
    void put(T v) {
        {
            std::lock_guard<std::mutex> g(mu_);
            q_.push_back(std::move(v));
        }
        cv_.notify_one();
    }
    T get() {
        std::unique_lock<std::mutex> l(mu_);
        cv_.wait(l, [this] { return !q_.empty(); });
        T v = std::move(q_.front());
        q_.pop_front();
        return v;
    }

  private:
    std::deque<T> q_;
    std::mutex mu_;
    std::condition_variable cv_;
};

void pipeline() {
    using Buf = std::shared_ptr<std::vector<int64_t>>;
    Chan<Buf> a, b;
    const int nbufs = 3000;
    std::thread prod([&] {
        Rng r(99);
        for (int i = 0; i < nbufs; i++) {
            auto v = std::make_shared<std::vector<int64_t>>(1 + r.below(900));
            for (auto &x : *v) x = (int64_t)r.below(1000) - 500;
            a.put(v);
        }
        a.put(nullptr);
    });
    std::thread sq([&] {
        for (;;) {
            Buf v = a.get();
            if (!v) break;
            auto w = std::make_shared<std::vector<int64_t>>();
            w->reserve(v->size());
            for (auto x : *v) w->push_back(x * x);
            b.put(w); // v is released here, in this thread
        }
        b.put(nullptr);
    });
    int64_t sum = 0, n = 0;
    std::map<int64_t, int> hist;
    for (;;) {
        Buf v = b.get();
        if (!v) break;
        for (auto x : *v) {
            sum += x;
            hist[x / 25000]++;
        }
        n += (int64_t)v->size();
    }
    prod.join();
    sq.join();
    std::printf("pipeline: %lld values, sum of squares %lld, buckets", (long long)n, (long long)sum);
    for (auto &kv : hist) std::printf(" %lld:%d", (long long)kv.first, kv.second);
    std::printf("\n");
}

// Threads build std::maps of formatted strings; main combines them.
void string_maps(Pool &pool) {
    std::vector<std::future<std::shared_ptr<std::map<int, std::string>>>> futs;
    for (int t = 0; t < 8; t++)
        futs.push_back(pool.submit([t] {
            auto m = std::make_shared<std::map<int, std::string>>();
            Rng r(300 + (uint64_t)t);
            for (int i = 0; i < 20000; i++) {
                int key = (int)r.below(50000);
                std::ostringstream os;
                os << "t" << t << "-i" << i << "-" << std::hex << r.next();
                (*m)[key] = os.str();
                if (i % 3 == 0) m->erase((int)r.below(50000));
            }
            return m;
        }));
    std::map<int, std::string> all;
    for (auto &f : futs) {
        auto m = f.get();
        for (auto &kv : *m) {
            auto it = all.find(kv.first);
            if (it == all.end() || kv.second < it->second) all[kv.first] = kv.second;
        }
    }
    uint64_t h = 1469598103934665603ull;
    for (auto &kv : all) h = fnv(std::to_string(kv.first) + "=" + kv.second, h);
    std::printf("maps: %zu keys hash %016llx first %s last %s\n", all.size(), (unsigned long long)h,
                all.begin()->second.c_str(), all.rbegin()->second.c_str());
}

} // namespace

int main() {
    Pool pool(4);
    word_frequency(pool);
    parallel_sort(pool);
    pipeline();
    string_maps(pool);
    std::printf("done\n");
    return 0;
}
