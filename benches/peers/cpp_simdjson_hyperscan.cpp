// C++ peer: simdjson On-Demand + Hyperscan, the fastest off-the-shelf parse+match pairing
// (BASELINES.md's record holder at 1k terms).
//
// Input: a terms file (one term per line, blank lines skipped) and a Jetstream NDJSON corpus.
// Output: one JSON line on stdout,
//   {"program":"cpp-simdjson-hyperscan","events":N,"posts":P,"matched":M,"seconds":S,
//    "events_per_s":...,"mb_per_s":...,"build_seconds":B,"errors":E}
//
// What it counts is the definition every peer in benches/peers/ shares, so the `matched`
// counts must be equal (compare.sh checks):
//   - events:  input lines, blank ones included (earshot's `frames`);
//   - posts:   Jetstream post creates: kind == "commit", commit.operation == "create",
//              commit.collection == "app.bsky.feed.post";
//   - matched: posts whose record.text contains at least one term as a plain,
//              case-insensitive substring (no word boundaries). The terms are Hyperscan
//              literals with HS_FLAG_CASELESS | HS_FLAG_SINGLEMATCH (block mode, compiled
//              with hs_compile_lit_multi) scanned over the unescaped text; the callback
//              stops the scan at the first hit. Hyperscan's caseless mode is ASCII-only,
//              which agrees with Unicode lowercasing as long as the terms are ASCII (the
//              reference rule lists are);
//   - errors:  non-blank lines simdjson rejects (skipped; the reference corpus has none).
//
// Input is read in 16 MiB blocks (not mapped whole) so peak RSS stays comparable to a
// streaming program; each line is parsed in place: simdjson needs SIMDJSON_PADDING readable
// bytes after a document, which the rest of the block (plus a padded tail) provides.
// `seconds` times the scan only, not the Hyperscan compile (reported as `build_seconds`),
// as earshot's `elapsed` starts after its rules are compiled.
//
// Build (compare.sh does it):
//   g++ -O3 -march=native -std=c++17 cpp_simdjson_hyperscan.cpp -lsimdjson -lhs

#include <hs/hs.h>
#include <simdjson.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <string>
#include <string_view>
#include <unistd.h>
#include <unordered_set>
#include <vector>

namespace {

[[noreturn]] void die(const std::string& msg) {
  std::fprintf(stderr, "cpp_simdjson_hyperscan: %s\n", msg.c_str());
  std::exit(1);
}

std::string_view trim(std::string_view s) {
  const char* ws = " \t\r\n\f\v";
  size_t b = s.find_first_not_of(ws);
  if (b == std::string_view::npos) return {};
  size_t e = s.find_last_not_of(ws);
  return s.substr(b, e - b + 1);
}

// Non-blank lines of the terms file, de-duplicated ASCII-case-insensitively.
std::vector<std::string> load_terms(const char* path) {
  FILE* f = std::fopen(path, "rb");
  if (!f) die(std::string("opening ") + path + ": " + std::strerror(errno));
  std::vector<std::string> terms;
  std::unordered_set<std::string> seen;
  char* line = nullptr;
  size_t cap = 0;
  ssize_t n;
  errno = 0;
  while ((n = getline(&line, &cap, f)) != -1) {
    std::string_view t = trim(std::string_view(line, static_cast<size_t>(n)));
    if (t.empty()) continue;
    std::string key(t);
    std::transform(key.begin(), key.end(), key.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    if (seen.insert(key).second) terms.emplace_back(t);
  }
  bool failed = std::ferror(f);
  std::free(line);
  std::fclose(f);
  if (failed) die(std::string("reading ") + path + ": " + std::strerror(errno));
  if (terms.empty()) die(std::string("no terms in ") + path);
  return terms;
}

hs_database_t* compile(const std::vector<std::string>& terms) {
  std::vector<const char*> exprs;
  std::vector<size_t> lens;
  std::vector<unsigned> flags(terms.size(), HS_FLAG_CASELESS | HS_FLAG_SINGLEMATCH);
  std::vector<unsigned> ids;
  for (size_t i = 0; i < terms.size(); ++i) {
    exprs.push_back(terms[i].data());
    lens.push_back(terms[i].size());
    ids.push_back(static_cast<unsigned>(i));
  }
  hs_database_t* db = nullptr;
  hs_compile_error_t* err = nullptr;
  if (hs_compile_lit_multi(exprs.data(), flags.data(), ids.data(), lens.data(),
                           static_cast<unsigned>(terms.size()), HS_MODE_BLOCK, nullptr, &db,
                           &err) != HS_SUCCESS) {
    std::string msg = "hyperscan compile failed";
    if (err) {
      msg += ": ";
      msg += err->message;
      if (err->expression >= 0) msg += " (term \"" + terms[err->expression] + "\")";
      hs_free_compile_error(err);
    }
    die(msg);
  }
  return db;
}

int on_match(unsigned, unsigned long long, unsigned long long, unsigned, void* ctx) {
  *static_cast<bool*>(ctx) = true;
  return 1;  // stop scanning: one hit is enough to count the post
}

struct Counts {
  unsigned long long events = 0, posts = 0, matched = 0, errors = 0, bytes = 0;
};

bool blank(std::string_view s) { return trim(s).empty(); }

// One line: decode the five fields the definition needs, match the text.
void handle_line(simdjson::ondemand::parser& parser, const char* p, size_t len, size_t capacity,
                 hs_database_t* db, hs_scratch_t* scratch, Counts& c) {
  using namespace simdjson;
  ondemand::document doc;
  if (parser.iterate(p, len, capacity).get(doc)) {
    if (!blank(std::string_view(p, len))) c.errors++;
    return;
  }
  std::string_view kind;
  if (doc["kind"].get_string().get(kind) || kind != "commit") return;
  ondemand::object commit;
  if (doc["commit"].get_object().get(commit)) return;
  std::string_view op, coll;
  if (commit["operation"].get_string().get(op) || op != "create") return;
  if (commit["collection"].get_string().get(coll) || coll != "app.bsky.feed.post") return;
  c.posts++;
  std::string_view text;
  if (commit["record"]["text"].get_string().get(text) || text.empty()) return;
  bool hit = false;
  hs_error_t rc = hs_scan(db, text.data(), static_cast<unsigned>(text.size()), 0, scratch,
                          on_match, &hit);
  if (rc != HS_SUCCESS && rc != HS_SCAN_TERMINATED)
    die("hs_scan failed with code " + std::to_string(rc));
  if (hit) c.matched++;
}

Counts scan(const char* path, hs_database_t* db, hs_scratch_t* scratch) {
  int fd = ::open(path, O_RDONLY);
  if (fd < 0) die(std::string("opening ") + path + ": " + std::strerror(errno));
  simdjson::ondemand::parser parser;
  size_t block = size_t(16) << 20;
  std::vector<char> buf(block + simdjson::SIMDJSON_PADDING);
  size_t have = 0;  // bytes of data at the front of buf
  Counts c;
  bool eof = false;
  while (!eof) {
    if (have == block) {  // one line longer than the block: grow it
      block *= 2;
      buf.resize(block + simdjson::SIMDJSON_PADDING);
    }
    ssize_t n = ::read(fd, buf.data() + have, block - have);
    if (n < 0) {
      if (errno == EINTR) continue;
      die(std::string("reading ") + path + ": " + std::strerror(errno));
    }
    if (n == 0) eof = true;
    have += static_cast<size_t>(n);
    c.bytes += static_cast<size_t>(n);
    char* base = buf.data();
    char* end = base + have;
    char* line = base;
    // The rest of the block and the zeroed padding stay readable after each line.
    std::memset(end, 0, simdjson::SIMDJSON_PADDING);
    while (line < end) {
      char* nl = static_cast<char*>(std::memchr(line, '\n', static_cast<size_t>(end - line)));
      if (!nl) {
        if (!eof) break;  // partial last line: wait for more input
        nl = end;         // final line without a newline
      }
      c.events++;
      handle_line(parser, line, static_cast<size_t>(nl - line),
                  static_cast<size_t>(base + buf.size() - line), db, scratch, c);
      line = nl + (nl < end ? 1 : 0);
    }
    have = static_cast<size_t>(end - line);
    std::memmove(base, line, have);
  }
  ::close(fd);
  return c;
}

}  // namespace

int main(int argc, char** argv) {
  const char* terms_path = nullptr;
  const char* corpus = nullptr;
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    if (a == "--terms" && i + 1 < argc) {
      terms_path = argv[++i];
    } else if (!a.empty() && a[0] != '-' && !corpus) {
      corpus = argv[i];
    } else {
      die("usage: cpp_simdjson_hyperscan --terms TERMS_FILE CORPUS.ndjson");
    }
  }
  if (!terms_path || !corpus) die("usage: cpp_simdjson_hyperscan --terms TERMS_FILE CORPUS.ndjson");

  using clock = std::chrono::steady_clock;
  auto t0 = clock::now();
  hs_database_t* db = compile(load_terms(terms_path));
  hs_scratch_t* scratch = nullptr;
  if (hs_alloc_scratch(db, &scratch) != HS_SUCCESS) die("hs_alloc_scratch failed");
  auto t1 = clock::now();
  Counts c = scan(corpus, db, scratch);
  auto t2 = clock::now();
  hs_free_scratch(scratch);
  hs_free_database(db);

  double build = std::chrono::duration<double>(t1 - t0).count();
  double secs = std::max(std::chrono::duration<double>(t2 - t1).count(), 1e-9);
  std::printf(
      "{\"program\":\"cpp-simdjson-hyperscan\",\"events\":%llu,\"posts\":%llu,\"matched\":%llu,"
      "\"seconds\":%.3f,\"events_per_s\":%.0f,\"mb_per_s\":%.1f,\"build_seconds\":%.3f,"
      "\"errors\":%llu}\n",
      c.events, c.posts, c.matched, secs, c.events / secs, c.bytes / secs / 1e6, build,
      c.errors);
  if (std::fflush(stdout) != 0 || std::ferror(stdout)) die("writing stdout failed");
  return 0;
}
