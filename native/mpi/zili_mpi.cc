// zili_mpi: the N-API binding over Open MPI behind src/dist/mpi.ts.
//
// Why C++: MPI is a C library, and collectives must run off the JavaScript thread so that a Promise
// per call can resolve while JavaScript keeps enqueueing work; no npm package binds MPI (the ones that
// exist are unmaintained, blocking, and need headers downloaded at install time). This is a separate
// node-gyp project (native/mpi/, its own build/) so the main addon, a vendor backend or a browser never
// needs libmpi; src/dist/ loads it only when the job has more than one rank.
//
// Model: every communicator has one worker thread that executes its collectives in issue order (a
// stream, like NCCL's), so all ranks see the same order; point-to-point calls go to a second thread
// per communicator that posts MPI_Isend/MPI_Irecv at once and polls them, so a send and a recv issued
// in either order on two ranks never deadlock. Completions resolve their Promise through a
// threadsafe function. A collective is handed to its worker synchronously, at the JavaScript call,
// so it runs while JavaScript keeps computing (e.g. the rest of a synchronous backward); each gets a
// sequence number per communicator, and since a worker completes its jobs in issue order, "done up
// to n" is one counter: JavaScript reads it (doneSeq) or blocks on it (waitSeq) without the event
// loop, which is how synchronous code waits for a prefetch it issued earlier. Large messages move in chunks of at most `chunkBytes` (16 MiB) per MPI call.
// bf16 travels as MPI_UINT16_T; its sum/max/min are user-defined ops that widen each pair to f32 and
// round the result back to bf16 (round to nearest even), i.e. pairwise bf16 arithmetic as NCCL does.
// A watchdog thread aborts the whole job (MPI_Abort) when a call has run longer than the timeout,
// naming the rank, the call, the communicator and the training step set from JavaScript.
#include <mpi.h>
#include <node_api.h>
#include <dlfcn.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <deque>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace {

enum DType { F32 = 0, BF16 = 1, I32 = 2 };
enum RedOp { SUM = 0, MAX = 1, MIN = 2 };
enum Kind { ALLREDUCE, REDUCE_SCATTER, ALLGATHER, BCAST, SEND, RECV, ALLTOALLV, BARRIER, SPLIT };
const char* kKindNames[] = {"allReduce", "reduceScatter", "allGather", "broadcast", "send", "recv", "allToAllV", "barrier", "split"};
const char* kDTypeNames[] = {"f32", "bf16", "i32"};

size_t eltSize(int d) { return d == BF16 ? 2 : 4; }

inline float bf2f(uint16_t b) {
  uint32_t u = uint32_t(b) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
inline uint16_t f2bf(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7f800000u) == 0x7f800000u && (u & 0x007fffffu)) return uint16_t(((u >> 16) | 0x40) & 0xffff);
  u += 0x7fffu + ((u >> 16) & 1u);
  return uint16_t(u >> 16);
}
void bf16Sum(void* in, void* inout, int* len, MPI_Datatype*) {
  auto* a = static_cast<const uint16_t*>(in);
  auto* b = static_cast<uint16_t*>(inout);
  for (int i = 0; i < *len; i++) b[i] = f2bf(bf2f(a[i]) + bf2f(b[i]));
}
void bf16Max(void* in, void* inout, int* len, MPI_Datatype*) {
  auto* a = static_cast<const uint16_t*>(in);
  auto* b = static_cast<uint16_t*>(inout);
  for (int i = 0; i < *len; i++) b[i] = f2bf(std::max(bf2f(a[i]), bf2f(b[i])));
}
void bf16Min(void* in, void* inout, int* len, MPI_Datatype*) {
  auto* a = static_cast<const uint16_t*>(in);
  auto* b = static_cast<uint16_t*>(inout);
  for (int i = 0; i < *len; i++) b[i] = f2bf(std::min(bf2f(a[i]), bf2f(b[i])));
}

int64_t nowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

struct State;
struct Comm;

// A blocking call's rendezvous: the JavaScript thread waits on it while the communicator's worker runs the job.
struct SyncWait {
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
};

struct Job {
  Kind kind;
  int dtype = F32, op = SUM;
  char* in = nullptr;
  char* out = nullptr;
  size_t inCount = 0, outCount = 0;
  int peer = 0, tag = 0;
  std::vector<int> sendCounts, recvCounts;
  int color = 0, key = 0;
  std::string newName;
  MPI_Comm newComm = MPI_COMM_NULL;
  std::vector<MPI_Request> reqs;
  int64_t startMs = 0;
  Comm* comm = nullptr;
  napi_deferred deferred = nullptr;
  napi_ref refIn = nullptr, refOut = nullptr;
  SyncWait* sync = nullptr;  // set for a blocking call: completion wakes the waiting JS thread instead of a Promise
  uint64_t seq = 0;          // collectives: issue number on the communicator (1, 2, ...)
  std::atomic<bool> urgent{false};  // point-to-point: JavaScript waits for this call (hurry): poll it without backoff
  std::string error;
};

struct State {
  napi_threadsafe_function tsfn = nullptr;
  int pending = 0;  // JS thread only
  std::vector<Comm*> comms;
  std::atomic<int64_t> step{-1};
  std::atomic<int64_t> timeoutMs{300000};
  size_t chunkBytes = 16u << 20;
  int worldRank = 0, worldSize = 1;
  MPI_Op bfOps[3]{};
  std::thread watchdog;
  std::mutex wdMu;
  std::condition_variable wdCv;
  bool stopping = false;
  bool finalized = false;
};

struct Comm {
  State* st;
  MPI_Comm comm;
  int rank = 0, size = 1;
  std::string name;
  std::mutex mu;
  std::condition_variable cv;
  std::deque<Job*> q;
  bool stop = false;
  std::thread worker;
  std::mutex pmu;
  std::condition_variable pcv;
  std::deque<Job*> pq;
  bool pstop = false;
  std::atomic<bool> hurry{false};  // a call was marked urgent: wake the p2p thread to poll without backoff
  std::thread p2p;
  std::mutex inflightMu;
  std::set<Job*> inflight;
  uint64_t issuedSeq = 0;  // under mu
  std::mutex doneMu;
  std::condition_variable doneCv;
  std::atomic<uint64_t> doneSeq{0};
};

MPI_Datatype mpiType(int d) { return d == F32 ? MPI_FLOAT : d == BF16 ? MPI_UINT16_T : MPI_INT32_T; }
MPI_Op mpiOp(State* st, int d, int op) {
  if (d == BF16) return st->bfOps[op];
  return op == SUM ? MPI_SUM : op == MAX ? MPI_MAX : MPI_MIN;
}

void track(Job* j, bool on) {
  std::lock_guard<std::mutex> g(j->comm->inflightMu);
  if (on) {
    j->startMs = nowMs();
    j->comm->inflight.insert(j);
  } else {
    j->comm->inflight.erase(j);
  }
}

void complete(Job* j) {
  track(j, false);
  if (j->sync) {
    std::lock_guard<std::mutex> g(j->sync->mu);
    j->sync->done = true;
    j->sync->cv.notify_all();
    return;
  }
  napi_call_threadsafe_function(j->comm->st->tsfn, j, napi_tsfn_blocking);
}

bool overlaps(const char* a, size_t an, const char* b, size_t bn) { return a < b + bn && b < a + an; }

// ---- collectives, executed on the communicator's worker thread ----

void runAllReduce(Job* j) {
  State* st = j->comm->st;
  size_t es = eltSize(j->dtype), chunk = std::max<size_t>(1, st->chunkBytes / es);
  for (size_t a = 0; a < j->outCount; a += chunk) {
    int len = int(std::min(chunk, j->outCount - a));
    MPI_Allreduce(MPI_IN_PLACE, j->out + a * es, len, mpiType(j->dtype), mpiOp(st, j->dtype, j->op), j->comm->comm);
  }
}

void runReduceScatter(Job* j) {
  State* st = j->comm->st;
  Comm* c = j->comm;
  size_t es = eltSize(j->dtype), n = j->outCount, P = size_t(c->size);
  size_t chunk = std::max<size_t>(1, st->chunkBytes / (es * P));
  bool stage = n > chunk || overlaps(j->in, n * P * es, j->out, n * es);
  if (!stage) {
    if (n > 0) MPI_Reduce_scatter_block(j->in, j->out, int(n), mpiType(j->dtype), mpiOp(st, j->dtype, j->op), c->comm);
    return;
  }
  size_t c0 = std::min(chunk, n);
  std::vector<char> buf(c0 * P * es);
  for (size_t a = 0; a < n; a += c0) {
    size_t len = std::min(c0, n - a);
    for (size_t r = 0; r < P; r++) std::memcpy(buf.data() + r * len * es, j->in + (r * n + a) * es, len * es);
    MPI_Reduce_scatter_block(buf.data(), j->out + a * es, int(len), mpiType(j->dtype), mpiOp(st, j->dtype, j->op), c->comm);
  }
}

void runAllGather(Job* j) {
  State* st = j->comm->st;
  Comm* c = j->comm;
  size_t es = eltSize(j->dtype), n = j->inCount, P = size_t(c->size);
  size_t chunk = std::max<size_t>(1, st->chunkBytes / (es * P));
  if (n == 0) return;
  if (n <= chunk) {
    if (j->in == j->out + size_t(c->rank) * n * es) {
      MPI_Allgather(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, j->out, int(n), mpiType(j->dtype), c->comm);
    } else if (overlaps(j->in, n * es, j->out, n * P * es)) {
      std::vector<char> in(j->in, j->in + n * es);
      MPI_Allgather(in.data(), int(n), mpiType(j->dtype), j->out, int(n), mpiType(j->dtype), c->comm);
    } else {
      MPI_Allgather(j->in, int(n), mpiType(j->dtype), j->out, int(n), mpiType(j->dtype), c->comm);
    }
    return;
  }
  std::vector<char> in;
  const char* src = j->in;
  if (overlaps(j->in, n * es, j->out, n * P * es)) {
    in.assign(j->in, j->in + n * es);
    src = in.data();
  }
  std::vector<char> buf(chunk * P * es);
  for (size_t a = 0; a < n; a += chunk) {
    size_t len = std::min(chunk, n - a);
    MPI_Allgather(src + a * es, int(len), mpiType(j->dtype), buf.data(), int(len), mpiType(j->dtype), c->comm);
    for (size_t r = 0; r < P; r++) std::memcpy(j->out + (r * n + a) * es, buf.data() + r * len * es, len * es);
  }
}

void runBroadcast(Job* j) {
  size_t es = eltSize(j->dtype), chunk = std::max<size_t>(1, j->comm->st->chunkBytes / es);
  for (size_t a = 0; a < j->outCount; a += chunk)
    MPI_Bcast(j->out + a * es, int(std::min(chunk, j->outCount - a)), mpiType(j->dtype), j->peer, j->comm->comm);
}

void runAllToAllV(Job* j) {
  Comm* c = j->comm;
  size_t es = eltSize(j->dtype), P = size_t(c->size);
  // Per peer, at most `per` elements per round, so one MPI call moves at most chunkBytes from this rank.
  size_t per = std::max<size_t>(1, c->st->chunkBytes / (es * P));
  std::vector<size_t> sd(P), rd(P);
  size_t maxCount = 0;
  for (size_t r = 0, s = 0, t = 0; r < P; r++) {
    sd[r] = s;
    rd[r] = t;
    s += size_t(j->sendCounts[r]);
    t += size_t(j->recvCounts[r]);
    maxCount = std::max({maxCount, size_t(j->sendCounts[r]), size_t(j->recvCounts[r])});
  }
  long long rounds = (long long)((maxCount + per - 1) / per), all = 0;
  MPI_Allreduce(&rounds, &all, 1, MPI_LONG_LONG, MPI_MAX, c->comm);  // every rank must make the same number of calls
  std::vector<int> sc(P), rc(P), sdi(P), rdi(P);
  for (long long k = 0; k < std::max(all, 1LL); k++) {
    size_t off = size_t(k) * per;
    for (size_t r = 0; r < P; r++) {
      size_t s = size_t(j->sendCounts[r]), t = size_t(j->recvCounts[r]);
      sc[r] = int(s > off ? std::min(per, s - off) : 0);
      rc[r] = int(t > off ? std::min(per, t - off) : 0);
      sdi[r] = int(sd[r] + std::min(off, s));
      rdi[r] = int(rd[r] + std::min(off, t));
    }
    MPI_Alltoallv(j->in, sc.data(), sdi.data(), mpiType(j->dtype), j->out, rc.data(), rdi.data(), mpiType(j->dtype), c->comm);
  }
}

void runSplit(Job* j) {
  MPI_Comm_split(j->comm->comm, j->color < 0 ? MPI_UNDEFINED : j->color, j->key, &j->newComm);
}

void workerLoop(Comm* c) {
  for (;;) {
    Job* j;
    {
      std::unique_lock<std::mutex> g(c->mu);
      c->cv.wait(g, [&] { return c->stop || !c->q.empty(); });
      if (c->q.empty()) return;
      j = c->q.front();
      c->q.pop_front();
    }
    track(j, true);
    switch (j->kind) {
      case ALLREDUCE: runAllReduce(j); break;
      case REDUCE_SCATTER: runReduceScatter(j); break;
      case ALLGATHER: runAllGather(j); break;
      case BCAST: runBroadcast(j); break;
      case ALLTOALLV: runAllToAllV(j); break;
      case BARRIER: MPI_Barrier(c->comm); break;
      case SPLIT: runSplit(j); break;
      default: j->error = "internal: point-to-point job on the collective queue";
    }
    {
      std::lock_guard<std::mutex> g(c->doneMu);
      c->doneSeq = j->seq;
      c->doneCv.notify_all();
    }
    complete(j);
  }
}

void postP2P(Job* j) {
  Comm* c = j->comm;
  size_t es = eltSize(j->dtype), chunk = std::max<size_t>(1, c->st->chunkBytes / es);
  track(j, true);
  for (size_t a = 0; a < j->outCount || a == 0; a += chunk) {
    int len = int(std::min(chunk, j->outCount - a));
    MPI_Request r;
    if (j->kind == SEND)
      MPI_Isend(j->out + a * es, len, mpiType(j->dtype), j->peer, j->tag, c->comm, &r);
    else
      MPI_Irecv(j->out + a * es, len, mpiType(j->dtype), j->peer, j->tag, c->comm, &r);
    j->reqs.push_back(r);
    if (j->outCount == 0) break;
  }
}

void p2pLoop(Comm* c) {
  std::vector<Job*> active;
  int idle = 0;
  for (;;) {
    {
      std::unique_lock<std::mutex> g(c->pmu);
      if (active.empty()) c->pcv.wait(g, [&] { return c->pstop || !c->pq.empty(); });
      if (active.empty() && c->pq.empty() && c->pstop) return;
      if (!c->pq.empty()) idle = 0;
      if (c->hurry.exchange(false)) idle = 0;
      while (!c->pq.empty()) {  // posted to MPI at the JavaScript call (enqueue)
        active.push_back(c->pq.front());
        c->pq.pop_front();
      }
    }
    bool progressed = false;
    for (size_t i = 0; i < active.size();) {
      int done = 0;
      MPI_Testall(int(active[i]->reqs.size()), active[i]->reqs.data(), &done, MPI_STATUSES_IGNORE);
      if (done) {
        complete(active[i]);
        active.erase(active.begin() + long(i));
        progressed = true;
      } else {
        i++;
      }
    }
    // JavaScript waits (its thread idle, the core free) for one of the calls still pending: only a
    // call it named (hurry) counts — not one posted ahead for later, which may stay pending through
    // the whole next compute (under gpipe the stage following its neighbour finds each input already
    // arrived, and polling every 20 µs for the next one took 10-15% of its compute's core)
    bool hurried = std::any_of(active.begin(), active.end(), [](Job* j) { return j->urgent.load(); });
    if (progressed) {
      idle = 0;
    } else if (!active.empty()) {
      // back off from a busy poll, doubling to one poll per ms, so a long wait does not take a core
      // from compute (the thread shares it with the rank's compute);
      // a new send or receive wakes the thread, so it is posted to MPI at its call; while JavaScript
      // waits for a call (hurry: its thread is idle, the core is free) the poll is every 20 µs, so a
      // completion is seen at once, not after a backoff of up to 1 ms per protocol step
      idle = std::min(idle + 1, 40);
      int us = idle < 20 ? 0 : hurried ? 20 : std::min(1000, 50 << std::min(idle - 20, 5));
      std::unique_lock<std::mutex> g(c->pmu);
      c->pcv.wait_for(g, std::chrono::microseconds(us), [&] { return c->pstop || !c->pq.empty() || c->hurry.load(); });
    }
  }
}

void watchdogLoop(State* st) {
  std::unique_lock<std::mutex> g(st->wdMu);
  while (!st->stopping) {
    st->wdCv.wait_for(g, std::chrono::milliseconds(200));
    if (st->stopping) break;
    int64_t now = nowMs(), limit = st->timeoutMs.load();
    for (Comm* c : st->comms) {
      std::lock_guard<std::mutex> lg(c->inflightMu);
      for (Job* j : c->inflight) {
        if (now - j->startMs <= limit) continue;
        int64_t step = st->step.load();
        std::string at = step < 0 ? "before the first step" : "at step " + std::to_string(step);
        size_t count = j->kind == ALLGATHER ? j->inCount : j->outCount;
        std::string peer = j->kind == SEND ? " to rank " + std::to_string(j->peer) : j->kind == RECV ? " from rank " + std::to_string(j->peer) : "";
        std::fprintf(stderr,
                     "zili: rank %d: %s of %zu %s%s on communicator '%s' (rank %d of %d) did not complete within %.0f s %s: "
                     "another rank died or hung; aborting the job (MPI_Abort). If a step legitimately takes longer, raise the limit: ZILI_COMM_TIMEOUT_S=<seconds>.\n",
                     st->worldRank, kKindNames[j->kind], count, kDTypeNames[j->dtype], peer.c_str(), c->name.c_str(), c->rank, c->size,
                     double(limit) / 1000.0, at.c_str());
        std::fflush(stderr);
        MPI_Abort(MPI_COMM_WORLD, 1);
      }
    }
  }
}

// ---- JavaScript side ----

struct Args {
  napi_env env;
  napi_value argv[8];
  size_t argc = 8;
  State* st = nullptr;
};

Args args(napi_env env, napi_callback_info info) {
  Args a;
  a.env = env;
  napi_get_cb_info(env, info, &a.argc, a.argv, nullptr, nullptr);
  void* data = nullptr;
  napi_get_instance_data(env, &data);
  a.st = static_cast<State*>(data);
  return a;
}

napi_value throwErr(napi_env env, const std::string& msg) {
  napi_throw_error(env, nullptr, msg.c_str());
  return nullptr;
}

int32_t getInt(Args& a, size_t i) {
  int32_t v = 0;
  napi_get_value_int32(a.env, a.argv[i], &v);
  return v;
}

bool getTyped(Args& a, size_t i, char** data, size_t* bytes, napi_ref* ref) {
  napi_typedarray_type t;
  size_t len;
  void* p;
  napi_value ab;
  size_t off;
  if (napi_get_typedarray_info(a.env, a.argv[i], &t, &len, &p, &ab, &off) != napi_ok) return false;
  size_t es = (t == napi_float32_array || t == napi_int32_array || t == napi_uint32_array) ? 4 : t == napi_uint16_array || t == napi_int16_array ? 2 : 1;
  *data = static_cast<char*>(p);
  *bytes = len * es;
  napi_create_reference(a.env, a.argv[i], 1, ref);
  return true;
}

Comm* getComm(Args& a, size_t i) {
  void* p = nullptr;
  napi_get_value_external(a.env, a.argv[i], &p);
  return static_cast<Comm*>(p);
}

Comm* newComm(State* st, MPI_Comm mc, const std::string& name) {
  auto* c = new Comm();
  c->st = st;
  c->comm = mc;
  c->name = name;
  MPI_Comm_rank(mc, &c->rank);
  MPI_Comm_size(mc, &c->size);
  c->worker = std::thread(workerLoop, c);
  {
    std::lock_guard<std::mutex> g(st->wdMu);
    st->comms.push_back(c);
  }
  return c;
}

napi_value commObject(napi_env env, Comm* c) {
  napi_value o, h, r, s;
  napi_create_object(env, &o);
  napi_create_external(env, c, nullptr, nullptr, &h);
  napi_create_int32(env, c->rank, &r);
  napi_create_int32(env, c->size, &s);
  napi_set_named_property(env, o, "handle", h);
  napi_set_named_property(env, o, "rank", r);
  napi_set_named_property(env, o, "size", s);
  return o;
}

void onComplete(napi_env env, napi_value, void*, void* data) {
  auto* j = static_cast<Job*>(data);
  State* st = j->comm->st;
  if (env != nullptr) {
    napi_value result;
    if (!j->error.empty()) {
      napi_value msg;
      napi_create_string_utf8(env, j->error.c_str(), j->error.size(), &msg);
      napi_create_error(env, nullptr, msg, &result);
      napi_reject_deferred(env, j->deferred, result);
    } else {
      if (j->kind == SPLIT) {
        if (j->newComm == MPI_COMM_NULL) napi_get_null(env, &result);
        else result = commObject(env, newComm(st, j->newComm, j->newName));
      } else {
        napi_get_undefined(env, &result);
      }
      napi_resolve_deferred(env, j->deferred, result);
    }
    if (j->refIn) napi_delete_reference(env, j->refIn);
    if (j->refOut) napi_delete_reference(env, j->refOut);
    if (--st->pending == 0) napi_unref_threadsafe_function(env, st->tsfn);
  }
  delete j;
}

napi_value enqueue(Args& a, Job* j) {
  State* st = a.st;
  napi_value promise;
  napi_create_promise(a.env, &j->deferred, &promise);
  if (st->pending++ == 0) napi_ref_threadsafe_function(a.env, st->tsfn);
  Comm* c = j->comm;
  if (j->kind == SEND || j->kind == RECV) {
    std::lock_guard<std::mutex> g(c->pmu);
    if (!c->p2p.joinable()) c->p2p = std::thread(p2pLoop, c);
    // MPI_Isend/MPI_Irecv right here, on the calling thread (MPI_THREAD_MULTIPLE): handed to the p2p
    // thread instead, a send waited for that thread to get the core from the compute that follows it
    postP2P(j);
    c->pq.push_back(j);
    c->pcv.notify_one();
  } else {
    std::lock_guard<std::mutex> g(c->mu);
    j->seq = ++c->issuedSeq;
    c->q.push_back(j);
    c->cv.notify_one();
  }
  return promise;
}

// init(chunkBytes, timeoutMs) → { handle, rank, size } of MPI_COMM_WORLD
napi_value Init(napi_env env, napi_callback_info info) {
  Args a = args(env, info);
  if (a.st) return throwErr(env, "zili_mpi: init() called twice");
  // The addon is dlopen'ed RTLD_LOCAL by Node; Open MPI's plugins need libmpi's symbols global.
  dlopen("libmpi.so.40", RTLD_NOW | RTLD_GLOBAL | RTLD_NOLOAD);
  auto* st = new State();
  double chunk = 0, timeout = 0;
  napi_get_value_double(env, a.argv[0], &chunk);
  napi_get_value_double(env, a.argv[1], &timeout);
  st->chunkBytes = size_t(chunk);
  st->timeoutMs = int64_t(timeout);
  int provided = 0;
  if (MPI_Init_thread(nullptr, nullptr, MPI_THREAD_MULTIPLE, &provided) != MPI_SUCCESS) return throwErr(env, "zili_mpi: MPI_Init_thread failed");
  if (provided < MPI_THREAD_MULTIPLE) {
    MPI_Finalize();
    return throwErr(env, "zili_mpi: this Open MPI does not provide MPI_THREAD_MULTIPLE (provided level " + std::to_string(provided) + "); rebuild Open MPI with thread support");
  }
  MPI_Comm_rank(MPI_COMM_WORLD, &st->worldRank);
  MPI_Comm_size(MPI_COMM_WORLD, &st->worldSize);
  MPI_Op_create(bf16Sum, 1, &st->bfOps[SUM]);
  MPI_Op_create(bf16Max, 1, &st->bfOps[MAX]);
  MPI_Op_create(bf16Min, 1, &st->bfOps[MIN]);
  napi_value name;
  napi_create_string_utf8(env, "zili_mpi completion", NAPI_AUTO_LENGTH, &name);
  napi_create_threadsafe_function(env, nullptr, nullptr, name, 0, 1, nullptr, nullptr, nullptr, onComplete, &st->tsfn);
  napi_unref_threadsafe_function(env, st->tsfn);
  napi_set_instance_data(env, st, nullptr, nullptr);
  st->watchdog = std::thread(watchdogLoop, st);
  MPI_Comm dup;
  MPI_Comm_dup(MPI_COMM_WORLD, &dup);
  return commObject(env, newComm(st, dup, "world"));
}

Job* makeJob(Args& a, Kind k) {
  auto* j = new Job();
  j->kind = k;
  j->comm = getComm(a, 0);
  return j;
}

// allReduce(comm, dtype, op, buf) / broadcast(comm, dtype, root, buf) / send|recv(comm, dtype, peer, tag, buf)
napi_value InPlace(napi_env env, napi_callback_info info, Kind k) {
  Args a = args(env, info);
  if (!a.st || a.st->finalized) return throwErr(env, "zili_mpi: communication used before init or after finalize");
  Job* j = makeJob(a, k);
  j->dtype = getInt(a, 1);
  size_t bufArg = 3;
  if (k == ALLREDUCE) j->op = getInt(a, 2);
  else j->peer = getInt(a, 2);
  if (k == SEND || k == RECV) {
    j->tag = getInt(a, 3);
    bufArg = 4;
  }
  size_t bytes;
  if (!getTyped(a, bufArg, &j->out, &bytes, &j->refOut)) {
    delete j;
    return throwErr(env, "zili_mpi: buffer must be a typed array");
  }
  j->outCount = bytes / eltSize(j->dtype);
  return enqueue(a, j);
}
napi_value AllReduce(napi_env env, napi_callback_info info) { return InPlace(env, info, ALLREDUCE); }
napi_value Broadcast(napi_env env, napi_callback_info info) { return InPlace(env, info, BCAST); }
napi_value Send(napi_env env, napi_callback_info info) { return InPlace(env, info, SEND); }
napi_value Recv(napi_env env, napi_callback_info info) { return InPlace(env, info, RECV); }

// The job of reduceScatter/allGather(comm, dtype, op, in, out), or null (after deleting it) when a buffer is not a typed array.
Job* twoBufJob(Args& a, Kind k) {
  Job* j = makeJob(a, k);
  j->dtype = getInt(a, 1);
  j->op = getInt(a, 2);
  size_t ib, ob;
  if (!getTyped(a, 3, &j->in, &ib, &j->refIn) || !getTyped(a, 4, &j->out, &ob, &j->refOut)) {
    if (j->refIn) napi_delete_reference(a.env, j->refIn);
    delete j;
    return nullptr;
  }
  j->inCount = ib / eltSize(j->dtype);
  j->outCount = ob / eltSize(j->dtype);
  return j;
}

// reduceScatter(comm, dtype, op, in, out) / allGather(comm, dtype, 0, in, out)
napi_value TwoBuf(napi_env env, napi_callback_info info, Kind k) {
  Args a = args(env, info);
  if (!a.st || a.st->finalized) return throwErr(env, "zili_mpi: communication used before init or after finalize");
  Job* j = twoBufJob(a, k);
  return j ? enqueue(a, j) : throwErr(env, "zili_mpi: buffers must be typed arrays");
}
napi_value ReduceScatter(napi_env env, napi_callback_info info) { return TwoBuf(env, info, REDUCE_SCATTER); }

// reduceScatterSync / allGatherSync(comm, dtype, op, in, out): the same collectives, blocking the
// JavaScript thread until the communicator's worker has run them (for callers inside synchronous
// code, e.g. autograd's grad-ready hook). Queued behind the calls already handed to that worker.
napi_value TwoBufSync(napi_env env, napi_callback_info info, Kind k) {
  Args a = args(env, info);
  if (!a.st || a.st->finalized) return throwErr(env, "zili_mpi: communication used before init or after finalize");
  Job* j = twoBufJob(a, k);
  if (!j) return throwErr(env, "zili_mpi: buffers must be typed arrays");
  SyncWait w;
  j->sync = &w;
  Comm* c = j->comm;
  {
    std::lock_guard<std::mutex> g(c->mu);
    j->seq = ++c->issuedSeq;
    c->q.push_back(j);
    c->cv.notify_one();
  }
  {
    std::unique_lock<std::mutex> g(w.mu);
    w.cv.wait(g, [&] { return w.done; });
  }
  std::string err = j->error;
  napi_delete_reference(env, j->refIn);
  napi_delete_reference(env, j->refOut);
  delete j;
  return err.empty() ? nullptr : throwErr(env, err);
}
napi_value ReduceScatterSync(napi_env env, napi_callback_info info) { return TwoBufSync(env, info, REDUCE_SCATTER); }
napi_value AllGatherSync(napi_env env, napi_callback_info info) { return TwoBufSync(env, info, ALLGATHER); }
napi_value AllGather(napi_env env, napi_callback_info info) { return TwoBuf(env, info, ALLGATHER); }

// allToAllV(comm, dtype, in, sendCounts: Int32Array, out, recvCounts: Int32Array)
napi_value AllToAllV(napi_env env, napi_callback_info info) {
  Args a = args(env, info);
  if (!a.st || a.st->finalized) return throwErr(env, "zili_mpi: communication used before init or after finalize");
  Job* j = makeJob(a, ALLTOALLV);
  j->dtype = getInt(a, 1);
  size_t ib, ob;
  if (!getTyped(a, 2, &j->in, &ib, &j->refIn) || !getTyped(a, 4, &j->out, &ob, &j->refOut)) {
    delete j;
    return throwErr(env, "zili_mpi: buffers must be typed arrays");
  }
  for (size_t idx : {size_t(3), size_t(5)}) {
    napi_typedarray_type t;
    size_t len;
    void* p;
    napi_value ab;
    size_t off;
    napi_get_typedarray_info(env, a.argv[idx], &t, &len, &p, &ab, &off);
    auto* v = static_cast<int32_t*>(p);
    (idx == 3 ? j->sendCounts : j->recvCounts).assign(v, v + len);
  }
  return enqueue(a, j);
}

napi_value Barrier(napi_env env, napi_callback_info info) {
  Args a = args(env, info);
  if (!a.st || a.st->finalized) return throwErr(env, "zili_mpi: communication used before init or after finalize");
  return enqueue(a, makeJob(a, BARRIER));
}

// split(comm, color, key, name)
napi_value Split(napi_env env, napi_callback_info info) {
  Args a = args(env, info);
  if (!a.st || a.st->finalized) return throwErr(env, "zili_mpi: communication used before init or after finalize");
  Job* j = makeJob(a, SPLIT);
  j->color = getInt(a, 1);
  j->key = getInt(a, 2);
  char buf[256];
  size_t n = 0;
  napi_get_value_string_utf8(env, a.argv[3], buf, sizeof buf, &n);
  j->newName.assign(buf, n);
  return enqueue(a, j);
}

napi_value uint64Value(napi_env env, uint64_t v) {
  napi_value r;
  napi_create_double(env, double(v), &r);
  return r;
}

// lastSeq(comm): the sequence number of the last collective issued on comm (0: none yet)
// hurry(comm[, peer, tag]): JavaScript is about to wait for comm's pending receive from peer with tag
// (without peer and tag: for every send and receive of comm pending now); the p2p thread polls without
// backoff until those complete. A call already complete (its Promise not yet resolved: JavaScript was
// computing) is not waited for: nothing is hurried.
napi_value Hurry(napi_env env, napi_callback_info info) {
  Args a = args(env, info);
  Comm* c = getComm(a, 0);
  bool named = a.argc >= 3;
  int peer = named ? getInt(a, 1) : 0, tag = named ? getInt(a, 2) : 0;
  bool any = false;
  {
    std::lock_guard<std::mutex> g(c->inflightMu);
    for (Job* j : c->inflight) {
      if (j->kind != SEND && j->kind != RECV) continue;
      if (named && (j->kind != RECV || j->peer != peer || j->tag != tag)) continue;
      j->urgent = true;
      any = true;
    }
  }
  if (!any) return nullptr;
  std::lock_guard<std::mutex> g(c->pmu);
  c->hurry = true;
  c->pcv.notify_one();
  return nullptr;
}

// urgent(comm): how many of comm's pending sends and receives JavaScript waits for (hurry), for tests
napi_value Urgent(napi_env env, napi_callback_info info) {
  Args a = args(env, info);
  Comm* c = getComm(a, 0);
  int n = 0;
  {
    std::lock_guard<std::mutex> g(c->inflightMu);
    for (Job* j : c->inflight) n += j->urgent.load() ? 1 : 0;
  }
  return uint64Value(env, uint64_t(n));
}

napi_value LastSeq(napi_env env, napi_callback_info info) {
  Args a = args(env, info);
  Comm* c = getComm(a, 0);
  std::lock_guard<std::mutex> g(c->mu);
  return uint64Value(env, c->issuedSeq);
}

// doneSeq(comm): every collective of comm up to this sequence number has completed (buffers released by MPI)
napi_value DoneSeq(napi_env env, napi_callback_info info) {
  Args a = args(env, info);
  return uint64Value(env, getComm(a, 0)->doneSeq.load());
}

// waitSeq(comm, seq): blocks the JavaScript thread until collective `seq` of comm has completed (the
// watchdog still aborts the job if it never does). Its Promise still resolves later, on the event loop.
napi_value WaitSeq(napi_env env, napi_callback_info info) {
  Args a = args(env, info);
  Comm* c = getComm(a, 0);
  double s = 0;
  napi_get_value_double(env, a.argv[1], &s);
  uint64_t seq = uint64_t(s);
  {
    std::lock_guard<std::mutex> g(c->mu);
    if (seq > c->issuedSeq) return throwErr(env, "zili_mpi: waitSeq(" + std::to_string(seq) + ") on communicator '" + c->name + "' of which only " + std::to_string(c->issuedSeq) + " collectives were issued");
  }
  std::unique_lock<std::mutex> g(c->doneMu);
  c->doneCv.wait(g, [&] { return c->doneSeq.load() >= seq; });
  return nullptr;
}

napi_value SetStep(napi_env env, napi_callback_info info) {
  Args a = args(env, info);
  double s = 0;
  napi_get_value_double(env, a.argv[0], &s);
  if (a.st) a.st->step = int64_t(s);
  return nullptr;
}

napi_value SetTimeout(napi_env env, napi_callback_info info) {
  Args a = args(env, info);
  double s = 0;
  napi_get_value_double(env, a.argv[0], &s);
  if (a.st) a.st->timeoutMs = int64_t(s);
  return nullptr;
}

napi_value Pending(napi_env env, napi_callback_info info) {
  Args a = args(env, info);
  napi_value r;
  napi_create_int32(env, a.st ? a.st->pending : 0, &r);
  return r;
}

// abort(message, exitCode): prints and ends every rank of the job.
napi_value Abort(napi_env env, napi_callback_info info) {
  Args a = args(env, info);
  std::string msg(4096, '\0');
  size_t n = 0;
  napi_get_value_string_utf8(env, a.argv[0], msg.data(), msg.size(), &n);
  msg.resize(n);
  int code = getInt(a, 1);
  std::fprintf(stderr, "%s\n", msg.c_str());
  std::fflush(stderr);
  MPI_Abort(MPI_COMM_WORLD, code == 0 ? 1 : code);
  return nullptr;
}

// finalize(): joins the threads (their queues must be empty: JS awaits pending calls first), then MPI_Finalize.
napi_value Finalize(napi_env env, napi_callback_info info) {
  Args a = args(env, info);
  State* st = a.st;
  if (!st || st->finalized) return nullptr;
  st->finalized = true;
  // Drain every communicator first (the watchdog still guards calls that never complete), then stop the watchdog.
  for (Comm* c : st->comms) {
    {
      std::lock_guard<std::mutex> g(c->mu);
      c->stop = true;
      c->cv.notify_all();
    }
    {
      std::lock_guard<std::mutex> g(c->pmu);
      c->pstop = true;
      c->pcv.notify_all();
    }
    c->worker.join();
    if (c->p2p.joinable()) c->p2p.join();
  }
  {
    std::lock_guard<std::mutex> g(st->wdMu);
    st->stopping = true;
    st->wdCv.notify_all();
  }
  st->watchdog.join();
  for (Comm* c : st->comms) MPI_Comm_free(&c->comm);
  for (MPI_Op& op : st->bfOps) MPI_Op_free(&op);
  napi_release_threadsafe_function(st->tsfn, napi_tsfn_release);
  MPI_Finalize();
  return nullptr;
}

napi_value ModuleInit(napi_env env, napi_value exports) {
  struct {
    const char* name;
    napi_callback cb;
  } fns[] = {{"init", Init},       {"allReduce", AllReduce}, {"reduceScatter", ReduceScatter}, {"allGather", AllGather},
             {"broadcast", Broadcast}, {"send", Send},      {"recv", Recv},                   {"allToAllV", AllToAllV},
             {"barrier", Barrier}, {"split", Split},         {"setStep", SetStep},             {"setTimeout", SetTimeout},
             {"pending", Pending}, {"abort", Abort},         {"finalize", Finalize},
             {"reduceScatterSync", ReduceScatterSync}, {"allGatherSync", AllGatherSync},
             {"lastSeq", LastSeq},   {"hurry", Hurry}, {"urgent", Urgent},   {"doneSeq", DoneSeq},     {"waitSeq", WaitSeq}};
  for (auto& f : fns) {
    napi_value fn;
    napi_create_function(env, f.name, NAPI_AUTO_LENGTH, f.cb, nullptr, &fn);
    napi_set_named_property(env, exports, f.name, fn);
  }
  return exports;
}

}  // namespace

NAPI_MODULE(zili_mpi, ModuleInit)
