// Notifications: signatures (vectors computed independently with Python's hmac), the payload,
// backoff bounds, retries over a fake poster, the queue bound, the spool, email formatting and
// a real sendmail stand-in, the settings checks and the store space monitor.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/file_util.h"
#include "notify/email.h"
#include "notify/notifier.h"
#include "notify/notify_config.h"
#include "notify/store_space.h"
#include "notify/webhook.h"

namespace snapvol::notify {
namespace {

namespace fs = std::filesystem;

// Answers from a script; records every request.
class FakePoster : public HttpPoster {
 public:
  struct Request {
    std::string url, body;
    std::map<std::string, std::string> headers;
  };
  explicit FakePoster(std::vector<HttpAnswer> script, HttpAnswer then = {200, ""})
      : script_(std::move(script)), then_(then) {}
  HttpAnswer Post(const std::string& url, const std::vector<std::pair<std::string, std::string>>& headers,
                  const std::string& body, const std::atomic<bool>*) override {
    Request r{url, body, {}};
    for (const auto& [k, v] : headers) r.headers[k] = v;
    requests.push_back(std::move(r));
    if (next_ < script_.size()) return script_[next_++];
    return then_;
  }
  std::vector<Request> requests;

 private:
  std::vector<HttpAnswer> script_;
  size_t next_ = 0;
  HttpAnswer then_;
};

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/notify_test.XXXXXX";
    path_ = mkdtemp(tmpl);
  }
  ~TempDir() { fs::remove_all(path_); }
  std::string path(const std::string& name = "") const { return name.empty() ? path_ : path_ + "/" + name; }

 private:
  std::string path_;
};

void WriteFile(const std::string& path, const std::string& text, mode_t mode) {
  { std::ofstream(path) << text; }
  ASSERT_EQ(chmod(path.c_str(), mode), 0);
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  return {std::istreambuf_iterator<char>(in), {}};
}

Envelope SampleEnvelope() {
  OperatorEvent ev;
  ev.kind = kEventLifecycleRunFailed;
  ev.severity = "error";
  ev.summary = "lifecycle run failed";
  ev.time_ms = 1'764'800'000'123;
  ev.details = {{"policy_id", "policy-0123456789abcdef0"}, {"failed", "2"}};
  return {ev, "evt-0123456789abcdef0", "host-1"};
}

TEST(WebhookSign, MatchesIndependentlyComputedVectors) {
  // python3: hmac.new(key, b"<ts>." + body, hashlib.sha256).hexdigest()
  EXPECT_EQ(Sign("s3cr3t", 1700000000, R"({"event":"test"})"),
            "sha256=74da46b67cda2b649575b5213478e869b3628c3dc0142f1b9825394c7fc9fa4c");
  EXPECT_EQ(Sign("another key", 1764800000, R"({"x":[1,2]})"),
            "sha256=6eb555e37ad790807a846adb15c7929694c02212804cbc4d52a5685036dd98d6");
  EXPECT_NE(Sign("s3cr3t", 1700000001, R"({"event":"test"})"), Sign("s3cr3t", 1700000000, R"({"event":"test"})"));
}

TEST(WebhookPayload, HasTheDocumentedShapeInOrder) {
  std::string body = PayloadJson(SampleEnvelope());
  EXPECT_EQ(body,
            R"({"event":"lifecycle-run-failed","severity":"error","summary":"lifecycle run failed",)"
            R"("time":"2025-12-03T22:13:20.123Z","details":{"policy_id":"policy-0123456789abcdef0","failed":"2"},)"
            R"("host":"host-1","id":"evt-0123456789abcdef0"})");
  Envelope bad = SampleEnvelope();
  bad.event.summary = "bad \xff byte";
  EXPECT_TRUE(nlohmann::json::accept(PayloadJson(bad)));  // replaced, still JSON
}

TEST(WebhookBackoff, DoublesFromTheInitialDelayUpToTheCapWithJitterInHalfToWhole) {
  RetryPolicy p{.max_attempts = 10, .initial_delay_ms = 1000, .max_delay_ms = 8000};
  EXPECT_EQ(BackoffDelayMs(p, 1, 0.0), 500);
  EXPECT_EQ(BackoffDelayMs(p, 1, 1.0), 1000);
  EXPECT_EQ(BackoffDelayMs(p, 2, 1.0), 2000);
  EXPECT_EQ(BackoffDelayMs(p, 3, 0.0), 2000);
  EXPECT_EQ(BackoffDelayMs(p, 4, 1.0), 8000);
  EXPECT_EQ(BackoffDelayMs(p, 30, 1.0), 8000);  // no overflow, capped
  EXPECT_EQ(BackoffDelayMs(p, 30, 0.0), 4000);
  for (int a = 1; a < 40; ++a)
    for (double u : {0.0, 0.25, 0.5, 0.999}) {
      int64_t d = BackoffDelayMs(p, a, u);
      EXPECT_GE(d, 500);
      EXPECT_LE(d, 8000);
    }
}

struct Recorder {
  std::vector<int64_t> sleeps;
  int64_t now = 1'700'000'000;
  std::function<int64_t()> clock() {
    return [this] { return now; };
  }
  std::function<bool(int64_t)> sleeper(bool keep_going = true) {
    return [this, keep_going](int64_t ms) {
      sleeps.push_back(ms);
      now += ms / 1000 + 1;  // each attempt at a later second: signed anew
      return keep_going;
    };
  }
};

TEST(WebhookDeliver, RetriesNetworkErrors5xxAnd429ThenSucceedsSigningEachAttempt) {
  FakePoster poster({{0, "Connection refused"}, {500, ""}, {429, ""}});
  Recorder rec;
  WebhookTarget t{"https://hooks.example/x", "k", {.max_attempts = 5, .initial_delay_ms = 100, .max_delay_ms = 1000}};
  Envelope e = SampleEnvelope();
  auto r = DeliverWebhook(t, e, &poster, rec.clock(), rec.sleeper(), [] { return 0.5; });
  EXPECT_TRUE(r.delivered);
  EXPECT_EQ(r.attempts, 4);
  EXPECT_EQ(r.last_status, 200);
  ASSERT_EQ(poster.requests.size(), 4u);
  EXPECT_EQ(rec.sleeps, (std::vector<int64_t>{75, 150, 300}));
  std::set<std::string> timestamps;
  for (const auto& q : poster.requests) {
    EXPECT_EQ(q.url, t.url);
    EXPECT_EQ(q.body, PayloadJson(e));  // the same body every time
    EXPECT_EQ(q.headers.at("Content-Type"), "application/json");
    EXPECT_EQ(q.headers.at(kEventHeader), "lifecycle-run-failed");
    EXPECT_EQ(q.headers.at(kDeliveryHeader), e.id);
    const std::string ts = q.headers.at(kTimestampHeader);
    timestamps.insert(ts);
    EXPECT_EQ(q.headers.at(kSignatureHeader), Sign("k", std::stoll(ts), q.body));
  }
  EXPECT_EQ(timestamps.size(), 4u);
}

TEST(WebhookDeliver, StopsAtMaxAttemptsAndDoesNotRetryOther4xx) {
  {
    FakePoster poster({}, {503, ""});
    Recorder rec;
    WebhookTarget t{"http://h/", "k", {.max_attempts = 3, .initial_delay_ms = 10, .max_delay_ms = 10}};
    auto r = DeliverWebhook(t, SampleEnvelope(), &poster, rec.clock(), rec.sleeper(), [] { return 1.0; });
    EXPECT_FALSE(r.delivered);
    EXPECT_EQ(r.attempts, 3);
    EXPECT_EQ(poster.requests.size(), 3u);
    EXPECT_EQ(rec.sleeps.size(), 2u);
    EXPECT_EQ(r.last_error, "HTTP 503");
  }
  for (int status : {400, 401, 404, 301}) {
    FakePoster poster({}, {status, ""});
    Recorder rec;
    WebhookTarget t{"http://h/", "k", {.max_attempts = 5}};
    auto r = DeliverWebhook(t, SampleEnvelope(), &poster, rec.clock(), rec.sleeper(), [] { return 1.0; });
    EXPECT_FALSE(r.delivered);
    EXPECT_EQ(r.attempts, 1) << status;
    EXPECT_TRUE(rec.sleeps.empty());
  }
  {  // the wait is cut short (stopping): no further attempt
    FakePoster poster({}, {500, ""});
    Recorder rec;
    WebhookTarget t{"http://h/", "k", {.max_attempts = 5}};
    auto r = DeliverWebhook(t, SampleEnvelope(), &poster, rec.clock(), rec.sleeper(false), [] { return 1.0; });
    EXPECT_FALSE(r.delivered);
    EXPECT_EQ(r.attempts, 1);
    EXPECT_NE(r.last_error.find("stopping"), std::string::npos);
  }
}

struct Logged {
  std::vector<nlohmann::json> lines;
  std::mutex mu;
  std::function<void(const nlohmann::json&)> fn() {
    return [this](const nlohmann::json& j) {
      std::lock_guard lock(mu);
      lines.push_back(j);
    };
  }
  int Count(const std::string& event) {
    std::lock_guard lock(mu);
    return static_cast<int>(std::count_if(lines.begin(), lines.end(), [&](const auto& j) { return j["event"] == event; }));
  }
};

OperatorEvent Event(const std::string& kind, const std::string& summary) {
  return {kind, "error", summary, 1'764'800'000'000, {{"n", summary}}};
}

NotifierOptions WebhookOnly(Logged* log, size_t limit = 1000) {
  NotifierOptions o;
  o.webhook = WebhookTarget{"http://h/", "k", {.max_attempts = 2, .initial_delay_ms = 1, .max_delay_ms = 1}};
  o.queue_limit = limit;
  o.host = "host-1";
  o.log = log->fn();
  return o;
}

TEST(Notifier, QueueIsBoundedAndOverflowIsDroppedAndLogged) {
  Logged log;
  auto poster = std::make_unique<FakePoster>(std::vector<HttpAnswer>{});
  FakePoster* p = poster.get();
  Notifier n(WebhookOnly(&log, 3), std::move(poster));
  for (int i = 0; i < 5; ++i) n.Raise(Event(kEventSnapshotFailed, "e" + std::to_string(i)));
  EXPECT_EQ(n.queued(), 3u);
  EXPECT_EQ(n.dropped(), 2u);
  EXPECT_EQ(log.Count("notify_dropped"), 2);
  EXPECT_EQ(log.Count("operator_event"), 5);  // every event is logged, sent or not
  n.DeliverQueued();
  ASSERT_EQ(p->requests.size(), 3u);
  for (int i = 0; i < 3; ++i)  // the first three, in order
    EXPECT_EQ(nlohmann::json::parse(p->requests[i].body)["summary"], "e" + std::to_string(i));
  EXPECT_EQ(log.Count("notify_delivered"), 3);
}

TEST(Notifier, SendsOnlyTheChosenKindsAndLogsWhatItGaveUpOn) {
  Logged log;
  auto o = WebhookOnly(&log);
  o.kinds = {kEventGcFailed};
  auto poster = std::make_unique<FakePoster>(std::vector<HttpAnswer>{}, HttpAnswer{500, ""});
  FakePoster* p = poster.get();
  Notifier n(std::move(o), std::move(poster));
  n.Raise(Event(kEventSnapshotFailed, "not wanted"));
  n.Raise(Event(kEventGcFailed, "wanted"));
  EXPECT_EQ(n.queued(), 1u);
  n.DeliverQueued();
  EXPECT_EQ(p->requests.size(), 2u);  // max_attempts 2
  EXPECT_EQ(log.Count("notify_failed"), 1);
  EXPECT_EQ(n.queued(), 0u);  // given up, not queued again
}

TEST(Notifier, UndeliveredEventsWaitInASpoolAcrossAStop) {
  TempDir dir;
  Logged log;
  std::string ids[2];
  {
    auto o = WebhookOnly(&log);
    o.spool_path = dir.path("spool");
    Notifier n(std::move(o), std::make_unique<FakePoster>(std::vector<HttpAnswer>{}));
    n.Raise(Event(kEventVerifyDamage, "first"));
    n.Raise(Event(kEventStoreFilling, "second"));
    n.Stop();  // never started: both are spooled
  }
  struct stat st {};
  ASSERT_EQ(stat(dir.path("spool").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto o = WebhookOnly(&log);
  o.spool_path = dir.path("spool");
  auto poster = std::make_unique<FakePoster>(std::vector<HttpAnswer>{});
  FakePoster* p = poster.get();
  Notifier n(std::move(o), std::move(poster));
  n.LoadSpool();
  EXPECT_FALSE(PathExists(dir.path("spool")));
  EXPECT_EQ(n.queued(), 2u);
  n.DeliverQueued();
  ASSERT_EQ(p->requests.size(), 2u);
  auto first = nlohmann::json::parse(p->requests[0].body);
  EXPECT_EQ(first["event"], "verify-damage");
  EXPECT_EQ(first["summary"], "first");
  EXPECT_EQ(first["details"]["n"], "first");
  EXPECT_EQ(first["time"], "2025-12-03T22:13:20.000Z");
  EXPECT_EQ(nlohmann::json::parse(p->requests[1].body)["event"], "store-filling");
  n.Stop();
  EXPECT_FALSE(PathExists(dir.path("spool")));  // nothing left to spool
}

TEST(Notifier, WithoutChannelsEventsAreOnlyLogged) {
  Logged log;
  NotifierOptions o;
  o.log = log.fn();
  Notifier n(std::move(o), std::make_unique<FakePoster>(std::vector<HttpAnswer>{}));
  EXPECT_FALSE(n.configured());
  n.Raise(Event(kEventGcFailed, "x"));
  EXPECT_EQ(n.queued(), 0u);
  EXPECT_EQ(log.Count("operator_event"), 1);
}

TEST(Notifier, TestSendTriesEachChannelOnceAndReportsTheResult) {
  Logged log;
  auto poster = std::make_unique<FakePoster>(std::vector<HttpAnswer>{}, HttpAnswer{502, ""});
  FakePoster* p = poster.get();
  Notifier n(WebhookOnly(&log), std::move(poster));
  auto r = n.SendTest("admin");
  EXPECT_EQ(p->requests.size(), 1u);
  EXPECT_EQ(r["webhook"]["delivered"], false);
  EXPECT_EQ(r["webhook"]["status"], 502);
  EXPECT_EQ(nlohmann::json::parse(p->requests[0].body)["event"], "test");
}

TEST(Email, AddressesArePlain) {
  EXPECT_TRUE(IsPlainAddress("ops@example.com"));
  EXPECT_TRUE(IsPlainAddress("first.last+tag@mail.example-1.org"));
  EXPECT_TRUE(IsPlainAddress("root@localhost"));
  for (const char* bad : {"", "ops", "@example.com", "ops@", "a@b@c", "ops @example.com", "Ops <ops@example.com>",
                          "ops@example.com, x@y", "ops@exa_mple.com", "ops@.example", "ops@example..com",
                          "ops@example.com\r\nBcc: x@y"})
    EXPECT_FALSE(IsPlainAddress(bad)) << bad;
}

TEST(Email, MessageHeadersCannotBeInjectedAndNonAsciiSubjectsAreEncoded) {
  EmailTarget t{{"a@example.com", "b@example.com"}, "snapvold@host-1", "/bin/true", 1000};
  Envelope e = SampleEnvelope();
  e.event.summary = "run failed\r\nBcc: evil@example.com";
  std::string m = FormatEmail(t, e);
  size_t end = m.find("\r\n\r\n");
  ASSERT_NE(end, std::string::npos);
  std::string headers = m.substr(0, end + 2);
  EXPECT_NE(headers.find("From: snapvold@host-1\r\n"), std::string::npos);
  EXPECT_NE(headers.find("To: a@example.com, b@example.com\r\n"), std::string::npos);
  EXPECT_NE(headers.find("Subject: [snapvol] error lifecycle-run-failed: run failed  Bcc: evil@example.com\r\n"),
            std::string::npos);
  EXPECT_EQ(headers.find("\r\nBcc:"), std::string::npos);
  EXPECT_NE(headers.find("Message-ID: <evt-0123456789abcdef0@host-1>\r\n"), std::string::npos);
  EXPECT_NE(m.find("policy_id: policy-0123456789abcdef0\r\n"), std::string::npos);
  e.event.summary = "Speicher fast voll: 95 % überschritten";
  m = FormatEmail(t, e);
  EXPECT_NE(m.find("Subject: =?UTF-8?B?"), std::string::npos);
  EXPECT_EQ(m.substr(0, m.find("\r\n\r\n")).find("über"), std::string::npos);
}

TEST(Email, SendMailPipesTheMessageToTheCommandAndReportsItsFailure) {
  TempDir dir;
  const std::string rec = dir.path("rec.sh");
  WriteFile(rec, "#!/bin/sh\necho \"$@\" > " + dir.path("args") + "\ncat > " + dir.path("msg") + "\n", 0700);
  EmailTarget t{{"a@example.com"}, "f@example.com", rec, 10'000};
  ASSERT_TRUE(SendMail(t, "Subject: x\r\n\r\nbody\r\n"));
  EXPECT_EQ(ReadFile(dir.path("args")), "-t -oi\n");
  EXPECT_EQ(ReadFile(dir.path("msg")), "Subject: x\r\n\r\nbody\r\n");

  const std::string fail = dir.path("fail.sh");
  WriteFile(fail, "#!/bin/sh\necho 'queue directory not writable' >&2\nexit 75\n", 0700);  // reads nothing
  t.sendmail = fail;
  auto st = SendMail(t, std::string(1 << 20, 'x'));  // more than a pipe holds: SIGPIPE must not kill us
  ASSERT_FALSE(st);
  EXPECT_NE(st.error().message().find("exited 75: queue directory not writable"), std::string::npos)
      << st.error().message();
  t.sendmail = dir.path("missing");
  EXPECT_FALSE(SendMail(t, "x"));
}

TEST(NotifySettings, RefusesBadValuesByName) {
  TempDir dir;
  WriteFile(dir.path("secret"), "hunter2\n", 0600);
  WriteFile(dir.path("open"), "hunter2\n", 0644);
  WriteFile(dir.path("empty"), "\n", 0600);
  auto make = [&](NotifySettings s) { return MakeNotifierOptions(s, "host-1", ""); };
  auto msg = [&](NotifySettings s) {
    auto r = make(std::move(s));
    return r ? std::string("accepted") : r.error().message();
  };
  NotifySettings ok{.webhook_url = "https://hooks.example:8443/snapvol?x=1", .webhook_secret_file = dir.path("secret")};
  auto o = make(ok);
  ASSERT_TRUE(o) << o.error().message();
  EXPECT_EQ(o->webhook->secret, "hunter2");
  EXPECT_TRUE(o->kinds.empty());
  for (const char* url : {"ftp://h/x", "file:///etc/passwd", "hooks.example/x", "https://", "http://u:p@h/x",
                          "http://h/x y", "gopher://h"}) {
    auto s = ok;
    s.webhook_url = url;
    EXPECT_NE(msg(s).find("--notify-webhook-url"), std::string::npos) << url << ": " << msg(s);
  }
  auto s = ok;
  s.webhook_secret_file = dir.path("open");
  EXPECT_NE(msg(s).find("mode 0644"), std::string::npos) << msg(s);
  s.webhook_secret_file = dir.path("empty");
  EXPECT_NE(msg(s).find("empty"), std::string::npos);
  s.webhook_secret_file = dir.path("missing");
  EXPECT_NE(msg(s).find("--notify-webhook-secret-file"), std::string::npos);
  s.webhook_secret_file = "";
  EXPECT_NE(msg(s).find("needs --notify-webhook-secret-file"), std::string::npos);
  s = ok;
  s.events = {"snapshot-failed", "gc-faild"};
  EXPECT_NE(msg(s).find("unknown event kind 'gc-faild'"), std::string::npos);
  s.events = {"snapshot-failed", "gc-failed"};
  EXPECT_EQ(make(s)->kinds.size(), 2u);
  s.events = {"all"};
  EXPECT_TRUE(make(s)->kinds.empty());
  NotifySettings mail{.email_to = {"ops@example.com"}, .sendmail = "/bin/true"};
  auto m = make(mail);
  ASSERT_TRUE(m) << m.error().message();
  EXPECT_EQ(m->email->from, "snapvold@host-1");
  mail.email_to = {"ops@example.com", "not an address"};
  EXPECT_NE(msg(mail).find("--notify-email-to 'not an address'"), std::string::npos);
  mail.email_to = {"ops@example.com"};
  mail.sendmail = dir.path("missing");
  EXPECT_NE(msg(mail).find("--notify-sendmail"), std::string::npos);
  mail.sendmail = "sendmail";
  EXPECT_NE(msg(mail).find("absolute"), std::string::npos);
  EXPECT_NE(msg({.email_from = "a@b"}).find("needs --notify-email-to"), std::string::npos);
}

class CollectingSink : public EventSink {
 public:
  void Raise(OperatorEvent e) override { events.push_back(std::move(e)); }
  std::vector<OperatorEvent> events;
};

TEST(StoreSpaceMonitor, RaisesOnceWhenCrossingTheThresholdAndAgainOnlyAfterDroppingBelow) {
  double pct = 50;
  auto measure = [&](const std::string&) -> Result<SpaceUsage> {
    return SpaceUsage{1000, static_cast<uint64_t>(pct * 10), static_cast<uint64_t>(1000 - pct * 10), pct};
  };
  CollectingSink sink;
  FakeClock clock(1'000);
  StoreSpaceMonitor m("/data/store", 90, &sink, &clock, measure);
  for (double p : {50.0, 89.9, 90.0, 95.0, 99.0, 80.0, 91.0}) {
    pct = p;
    ASSERT_TRUE(m.Check());
  }
  ASSERT_EQ(sink.events.size(), 2u);
  EXPECT_EQ(sink.events[0].kind, kEventStoreFilling);
  EXPECT_EQ(sink.events[0].summary, "the snapshot store's file system is 90.0% full (threshold 90%)");
  EXPECT_EQ(sink.events[0].details[0], (std::pair<std::string, std::string>{"path", "/data/store"}));
  EXPECT_EQ(sink.events[1].details[1].second, "91.0");
  auto real = MeasureSpace("/");
  ASSERT_TRUE(real);
  EXPECT_GT(real->total_bytes, 0u);
  EXPECT_FALSE(MeasureSpace("/no/such/dir"));
}

}  // namespace
}  // namespace snapvol::notify
