// The S3 store without an S3 server: parsing of its settings, credentials and responses, and
// its retries, error mapping, paging and signing inputs against a scripted HTTP server on
// loopback. The same store against real Ceph RGW is s3_live_test (tests/s3).
#include <gtest/gtest.h>
#include <httplib.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <thread>
#include <unistd.h>

#include "core/hash.h"
#include "store/s3_store.h"
#include "store/s3_xml.h"

namespace snapvol {
namespace {

TEST(S3Config, ParsesStoreUrls) {
  S3Config c;
  ASSERT_TRUE(ParseS3Url("s3://my-bucket", &c));
  EXPECT_EQ(c.bucket, "my-bucket");
  EXPECT_EQ(c.prefix, "");
  ASSERT_TRUE(ParseS3Url("s3://my.bucket-1/team/a/", &c));
  EXPECT_EQ(c.bucket, "my.bucket-1");
  EXPECT_EQ(c.prefix, "team/a");
  for (const char* bad : {"my-bucket", "s3://", "s3://ab", "s3://Upper", "s3://-dash", "s3://a..b",
                          "s3://ok-bucket/../x", "s3://ok-bucket/A", "s3://ok-bucket/a//b",
                          "http://ok-bucket"}) {
    auto st = ParseS3Url(bad, &c);
    ASSERT_FALSE(st) << bad;
    EXPECT_EQ(st.error().code(), ErrorCode::kInvalidArgument) << bad;
  }
}

TEST(S3Config, EndpointsNeedHttpsUnlessLoopback) {
  EXPECT_EQ(*NormaliseS3Endpoint("https://s3.example.com/", false), "https://s3.example.com");
  EXPECT_EQ(*NormaliseS3Endpoint("http://127.0.0.1:7480", false), "http://127.0.0.1:7480");
  EXPECT_TRUE(NormaliseS3Endpoint("http://localhost:9000", false));
  EXPECT_TRUE(NormaliseS3Endpoint("http://[::1]:9000", false));
  EXPECT_FALSE(NormaliseS3Endpoint("http://10.0.0.5:7480", false));
  EXPECT_FALSE(NormaliseS3Endpoint("http://128.0.0.1", false));
  EXPECT_TRUE(NormaliseS3Endpoint("http://10.0.0.5:7480", true));
  EXPECT_FALSE(NormaliseS3Endpoint("https://host/path", false));
  EXPECT_FALSE(NormaliseS3Endpoint("https://user@host", false));
  EXPECT_FALSE(NormaliseS3Endpoint("https://host:port", false));
  EXPECT_FALSE(NormaliseS3Endpoint("ftp://host", false));
  EXPECT_EQ(AwsS3Endpoint("eu-west-1"), "https://s3.eu-west-1.amazonaws.com");
}

TEST(S3Config, SharedCredentialsFileAndResolutionOrder) {
  std::string path = testing::TempDir() + "/s3-credentials-test";
  std::ofstream(path) << "# comment\n[default]\naws_access_key_id = DEF\naws_secret_access_key = defsecret\n"
                         "\n[team]\r\n aws_access_key_id=TEAM \r\naws_secret_access_key= teamsecret\n"
                         "aws_session_token = tok\n[empty]\n";
  auto team = ReadSharedCredentials(path, "team");
  ASSERT_TRUE(team) << team.error().ToString();
  EXPECT_EQ(team->access_key_id, "TEAM");
  EXPECT_EQ(team->secret_access_key, "teamsecret");
  EXPECT_EQ(team->session_token, "tok");
  EXPECT_EQ(ReadSharedCredentials(path, "empty").error().code(), ErrorCode::kNotFound);

  ::unsetenv("AWS_ACCESS_KEY_ID");
  ::unsetenv("AWS_SECRET_ACCESS_KEY");
  ::unsetenv("AWS_PROFILE");
  ::setenv("AWS_SHARED_CREDENTIALS_FILE", path.c_str(), 1);
  EXPECT_EQ(ResolveS3Credentials({}, "")->access_key_id, "DEF");
  EXPECT_EQ(ResolveS3Credentials({}, "team")->access_key_id, "TEAM");
  S3Credentials recorded{"REC", "recsecret", "", "store.json"};
  EXPECT_EQ(ResolveS3Credentials(recorded, "team")->access_key_id, "REC");
  ::setenv("AWS_PROFILE", "team", 1);
  EXPECT_EQ(ResolveS3Credentials({}, "")->access_key_id, "TEAM");
  ::setenv("AWS_ACCESS_KEY_ID", "ENV", 1);
  ::setenv("AWS_SECRET_ACCESS_KEY", "envsecret", 1);
  auto env = ResolveS3Credentials(recorded, "team");
  EXPECT_EQ(env->access_key_id, "ENV");
  EXPECT_EQ(env->source, "environment");
  ::unsetenv("AWS_ACCESS_KEY_ID");
  ::unsetenv("AWS_SECRET_ACCESS_KEY");
  ::setenv("AWS_PROFILE", "nobody", 1);
  auto none = ResolveS3Credentials({}, "");
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().code(), ErrorCode::kUnauthorized);
  EXPECT_NE(none.error().message().find("nobody"), std::string::npos);
  ::unsetenv("AWS_PROFILE");
  ::unsetenv("AWS_SHARED_CREDENTIALS_FILE");
  std::filesystem::remove(path);
}

TEST(S3Xml, ListPagesErrorsAndTimes) {
  auto page = ParseS3ListPage(
      R"(<?xml version="1.0"?><ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">)"
      R"(<IsTruncated>true</IsTruncated><NextContinuationToken>t/1+=</NextContinuationToken>)"
      R"(<Contents><Key>p/a&amp;b</Key><LastModified>2026-11-26T13:23:40.347Z</LastModified><Size>6</Size></Contents>)"
      R"(<Contents><Key>p/c</Key><LastModified>2026-11-26T13:23:40Z</LastModified><Size>0</Size></Contents>)"
      R"(</ListBucketResult>)");
  ASSERT_TRUE(page) << page.error().ToString();
  ASSERT_EQ(page->entries.size(), 2u);
  EXPECT_EQ(page->entries[0].key, "p/a&b");
  EXPECT_EQ(page->entries[0].size, 6u);
  EXPECT_EQ(page->entries[0].mtime_ms, 1795699420347);
  EXPECT_EQ(page->entries[1].mtime_ms, 1795699420999);  // no fraction: the end of the second
  EXPECT_TRUE(page->truncated);
  EXPECT_EQ(page->next_token, "t/1+=");

  EXPECT_FALSE(ParseS3ListPage("<ListBucketResult><Contents>"));  // malformed
  EXPECT_FALSE(ParseS3ListPage("<Error><Code>x</Code></Error>"));  // not a listing
  EXPECT_FALSE(ParseS3ListPage("<ListBucketResult><IsTruncated>true</IsTruncated></ListBucketResult>"));
  EXPECT_FALSE(ParseS3ListPage("<ListBucketResult><Contents><Key>k</Key><Size>-1</Size></Contents></ListBucketResult>"));

  auto err = ParseS3Error("<?xml version=\"1.0\"?><Error><Code>NoSuchKey</Code><Message>gone</Message></Error>");
  EXPECT_EQ(err.code, "NoSuchKey");
  EXPECT_EQ(err.message, "gone");
  EXPECT_EQ(ParseS3Error("not xml").code, "");

  EXPECT_EQ(*ParseHttpDateMillis("Thu, 26 Nov 2026 13:23:40 GMT"), 1795699420000);
  EXPECT_FALSE(ParseHttpDateMillis("yesterday"));
  EXPECT_FALSE(ParseIso8601Millis("2026-11-26 13:23:40"));
}

// A scripted S3 server on a loopback port: each test installs handlers and counts requests.
class FakeS3Test : public testing::Test {
 protected:
  void SetUp() override {
    port_ = server_.bind_to_any_port("127.0.0.1");
    ASSERT_GT(port_, 0);
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    // Bound already: connections made before listen_after_bind runs wait in the backlog.
    config_.endpoint = "http://127.0.0.1:" + std::to_string(port_);
    config_.bucket = "bkt";
    config_.prefix = "pre";
    config_.credentials = {"AKIDTEST", "supersecretvalue", "", "test"};
    config_.retry_window_ms = 5000;
  }
  void TearDown() override {
    server_.stop();
    thread_.join();
  }
  std::unique_ptr<S3Store> Open() {
    auto s = S3Store::Open(config_);
    EXPECT_TRUE(s) << s.error().ToString();
    return std::move(*s);
  }
  static void Xml(httplib::Response& res, int status, const std::string& body) {
    res.status = status;
    res.set_content(body, "application/xml");
  }

  httplib::Server server_;
  std::thread thread_;
  int port_ = 0;
  S3Config config_;
  std::atomic<int> requests_{0};
};

TEST_F(FakeS3Test, RetriesTransientFailuresThenSucceeds) {
  server_.Get("/bkt/pre/chunks/x", [&](const httplib::Request&, httplib::Response& res) {
    int n = ++requests_;
    if (n == 1) return Xml(res, 503, "<Error><Code>SlowDown</Code></Error>");
    if (n == 2) return Xml(res, 429, "");
    if (n == 3) return Xml(res, 400, "<Error><Code>RequestTimeout</Code></Error>");
    res.set_content("payload", "application/octet-stream");
  });
  auto got = Open()->Get("chunks/x");
  ASSERT_TRUE(got) << got.error().ToString();
  EXPECT_EQ(std::string(got->begin(), got->end()), "payload");
  EXPECT_EQ(requests_, 4);
}

TEST_F(FakeS3Test, GivesUpAfterTheRetryWindowWithARetryableError) {
  server_.Put(R"(/bkt/pre/.*)", [&](const httplib::Request&, httplib::Response& res) {
    ++requests_;
    Xml(res, 500, "<Error><Code>InternalError</Code></Error>");
  });
  config_.retry_window_ms = 400;
  std::vector<uint8_t> data{1, 2, 3};
  auto st = Open()->Put("chunks/y", data);
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code(), ErrorCode::kIoError);
  EXPECT_TRUE(st.error().retryable());
  EXPECT_NE(st.error().message().find("InternalError"), std::string::npos) << st.error().message();
  // Whichever failure ran out the window, the message names the S3 endpoint that failed.
  EXPECT_NE(st.error().message().find("the S3 endpoint " + config_.endpoint + " failed: HTTP 500"),
            std::string::npos)
      << st.error().message();
  EXPECT_GE(requests_, 2);

  config_.retry_window_ms = 0;
  requests_ = 0;
  EXPECT_FALSE(Open()->Put("chunks/y", data));
  EXPECT_EQ(requests_, 1);  // a zero window: one attempt, no retry
}

TEST_F(FakeS3Test, MapsErrorsToCodesWithoutTheSecret) {
  std::map<std::string, std::pair<int, std::string>> replies = {
      {"/bkt/pre/a", {404, "<Error><Code>NoSuchKey</Code></Error>"}},
      {"/bkt/pre/b", {404, "<Error><Code>NoSuchBucket</Code></Error>"}},
      {"/bkt/pre/c", {403, "<Error><Code>SignatureDoesNotMatch</Code></Error>"}},
      {"/bkt/pre/d", {403, "<Error><Code>QuotaExceeded</Code></Error>"}},
      {"/bkt/pre/e", {403, "<Error><Code>RequestTimeTooSkewed</Code></Error>"}},
      {"/bkt/pre/f", {409, "<Error><Code>OperationAborted</Code></Error>"}},
      {"/bkt/pre/g", {400, "<Error><Code>InvalidArgument</Code></Error>"}},
      {"/bkt/pre/h", {301, "<Error><Code>PermanentRedirect</Code></Error>"}},
  };
  server_.Get(R"(/bkt/pre/.*)", [&](const httplib::Request& req, httplib::Response& res) {
    auto& [status, body] = replies.at(req.path);
    Xml(res, status, body);
  });
  auto store = Open();
  auto code = [&](const std::string& key) {
    auto r = store->Get(key);
    EXPECT_FALSE(r) << key;
    EXPECT_EQ(r.error().message().find("supersecretvalue"), std::string::npos) << r.error().message();
    return r.error();
  };
  EXPECT_EQ(code("a").code(), ErrorCode::kNotFound);
  Error nobucket = code("b");
  EXPECT_EQ(nobucket.code(), ErrorCode::kNotFound);
  EXPECT_NE(nobucket.message().find("bucket 'bkt' does not exist"), std::string::npos);
  Error sig = code("c");
  EXPECT_EQ(sig.code(), ErrorCode::kUnauthorized);
  EXPECT_NE(sig.message().find("AKIDTEST"), std::string::npos);
  EXPECT_EQ(code("d").code(), ErrorCode::kNoSpace);
  EXPECT_NE(code("e").message().find("clock"), std::string::npos);
  EXPECT_EQ(code("f").code(), ErrorCode::kConflict);
  EXPECT_EQ(code("g").code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(code("h").message().find("--s3-region"), std::string::npos);
}

TEST_F(FakeS3Test, SignsWithThePayloadHashAndPagesListings) {
  std::string seen_auth, seen_hash, seen_copy, seen_directive;
  server_.Put(R"(/bkt/pre/.*)", [&](const httplib::Request& req, httplib::Response& res) {
    seen_auth = req.get_header_value("Authorization");
    seen_hash = req.get_header_value("x-amz-content-sha256");
    seen_copy = req.get_header_value("x-amz-copy-source");
    seen_directive = req.get_header_value("x-amz-metadata-directive");
    res.status = 200;
  });
  std::vector<std::string> queries;
  server_.Get("/bkt", [&](const httplib::Request& req, httplib::Response& res) {
    std::string token = req.get_param_value("continuation-token");
    queries.push_back(token + "|" + req.get_param_value("prefix"));
    if (token.empty())
      return Xml(res, 200, "<ListBucketResult><IsTruncated>true</IsTruncated><NextContinuationToken>a/b+c="
                           "</NextContinuationToken><Contents><Key>pre/chunks/1</Key><Size>1</Size>"
                           "<LastModified>2026-01-01T00:00:00.000Z</LastModified></Contents></ListBucketResult>");
    Xml(res, 200, "<ListBucketResult><IsTruncated>false</IsTruncated><Contents><Key>pre/chunks/2</Key>"
                  "<Size>2</Size><LastModified>2026-01-01T00:00:01.000Z</LastModified></Contents>"
                  "<Contents><Key>pre/chunks/NOT-OURS</Key><Size>2</Size>"
                  "<LastModified>2026-01-01T00:00:01.000Z</LastModified></Contents></ListBucketResult>");
  });
  auto store = Open();
  std::string body = "some chunk bytes";
  ASSERT_TRUE(store->Put("chunks/z", AsBytes(body)));
  EXPECT_EQ(seen_hash, ToHex(Sha256(AsBytes(body))));
  EXPECT_EQ(seen_auth.rfind("AWS4-HMAC-SHA256 Credential=AKIDTEST/", 0), 0u) << seen_auth;
  EXPECT_NE(seen_auth.find("x-amz-content-sha256"), std::string::npos) << "payload hash not signed";
  EXPECT_EQ(seen_auth.find("supersecretvalue"), std::string::npos);

  ASSERT_TRUE(store->Touch("chunks/z"));
  EXPECT_EQ(seen_copy, "/bkt/pre/chunks/z");
  EXPECT_EQ(seen_directive, "REPLACE");

  auto listed = store->List("chunks/");
  ASSERT_TRUE(listed) << listed.error().ToString();
  ASSERT_EQ(listed->size(), 2u);  // the key that is not a valid object key is not ours
  EXPECT_EQ((*listed)[0].key, "chunks/1");
  EXPECT_EQ((*listed)[1].key, "chunks/2");
  EXPECT_EQ((*listed)[1].mtime_ms, 1767225601000);
  ASSERT_EQ(queries.size(), 2u);
  EXPECT_EQ(queries[0], "|pre/chunks/");
  EXPECT_EQ(queries[1], "a/b+c=|pre/chunks/");  // the token went back intact (encoded on the wire)
}

TEST_F(FakeS3Test, TouchFailingLateInsideA200IsAnError) {
  server_.Put(R"(/bkt/pre/.*)", [&](const httplib::Request&, httplib::Response& res) {
    Xml(res, 200, "<Error><Code>InternalError</Code><Message>copy failed</Message></Error>");
  });
  config_.retry_window_ms = 0;
  auto st = Open()->Touch("chunks/q");
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code(), ErrorCode::kIoError);
}

// DeleteMany keeps max_parallel_uploads DELETEs in flight: the server holds each request until
// four are open at once (a barrier), and none passes a fifth. Sequential deletes never reach
// the barrier: the first waits out its timeout and the test fails.
TEST_F(FakeS3Test, DeleteManySendsUpToMaxParallelUploadsAtOnce) {
  constexpr int kWidth = 4;
  std::mutex mu;
  std::condition_variable cv;
  int in_flight = 0, most = 0;
  bool barrier_passed = false, gave_up = false;
  server_.Delete(R"(/bkt/pre/chunks/.*)", [&](const httplib::Request&, httplib::Response& res) {
    std::unique_lock lock(mu);
    most = std::max(most, ++in_flight);
    if (in_flight == kWidth) barrier_passed = true;
    cv.notify_all();
    if (!cv.wait_for(lock, std::chrono::seconds(10), [&] { return barrier_passed || gave_up; })) gave_up = true;
    --in_flight;
    res.status = 204;
  });
  config_.max_parallel_uploads = kWidth;
  std::vector<std::string> keys;
  for (int i = 0; i < 3 * kWidth; ++i) keys.push_back("chunks/" + std::to_string(100 + i));
  auto st = Open()->DeleteMany(keys);
  ASSERT_TRUE(st) << st.error().ToString();
  std::lock_guard lock(mu);
  EXPECT_TRUE(barrier_passed) << "never " << kWidth << " DELETEs at once (most: " << most << ")";
  EXPECT_EQ(most, kWidth) << "more DELETEs in flight than max_parallel_uploads";
}

// HTTPS: the server's certificate is checked against the system CAs or the configured CA
// file; an untrusted one is a clear, non-retryable error.
TEST(S3Tls, CertificateIsCheckedAndACaFileIsHonoured) {
  std::string dir = testing::TempDir() + "/s3-tls-" + std::to_string(::getpid());
  std::string cmd = "mkdir -p " + dir + " && openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=localhost"
                    " -addext subjectAltName=IP:127.0.0.1 -keyout " + dir + "/key.pem -out " + dir +
                    "/cert.pem >/dev/null 2>&1";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << "openssl could not make a test certificate";
  httplib::SSLServer server((dir + "/cert.pem").c_str(), (dir + "/key.pem").c_str());
  ASSERT_TRUE(server.is_valid());
  server.Get("/bkt/k", [](const httplib::Request&, httplib::Response& res) { res.set_content("tls ok", "text/plain"); });
  int port = server.bind_to_any_port("127.0.0.1");
  std::thread t([&] { server.listen_after_bind(); });
  S3Config c;
  c.endpoint = "https://127.0.0.1:" + std::to_string(port);
  c.bucket = "bkt";
  c.credentials = {"A", "B", "", ""};
  c.retry_window_ms = 0;
  auto untrusted = (*S3Store::Open(c))->Get("k");
  c.ca_file = dir + "/cert.pem";
  auto trusted = (*S3Store::Open(c))->Get("k");
  server.stop();
  t.join();
  std::filesystem::remove_all(dir);
  ASSERT_FALSE(untrusted);
  EXPECT_EQ(untrusted.error().code(), ErrorCode::kIoError);
  EXPECT_FALSE(untrusted.error().retryable());
  EXPECT_NE(untrusted.error().message().find("certificate is not trusted"), std::string::npos)
      << untrusted.error().message();
  ASSERT_TRUE(trusted) << trusted.error().ToString();
  EXPECT_EQ(std::string(trusted->begin(), trusted->end()), "tls ok");
}

TEST(S3Client, PathAndVirtualHostedUrls) {
  S3Config c;
  c.endpoint = "https://s3.example.com:8443";
  c.bucket = "bkt";
  c.credentials = {"A", "B", "", ""};
  auto path = S3Client::Create(c);
  ASSERT_TRUE(path);
  EXPECT_EQ((*path)->UrlFor("pre/k"), "https://s3.example.com:8443/bkt/pre/k");
  EXPECT_EQ((*path)->UrlFor(""), "https://s3.example.com:8443/bkt");
  c.url_style = S3UrlStyle::kVirtualHosted;
  auto vhost = S3Client::Create(c);
  EXPECT_EQ((*vhost)->UrlFor("pre/k"), "https://bkt.s3.example.com:8443/pre/k");
  EXPECT_EQ((*vhost)->UrlFor(""), "https://bkt.s3.example.com:8443/");
  c.endpoint = "http://s3.example.com";
  EXPECT_FALSE(S3Client::Create(c));  // plain HTTP to a remote host
  c.endpoint = "https://s3.example.com";
  c.credentials = {};
  EXPECT_EQ(S3Client::Create(c).error().code(), ErrorCode::kUnauthorized);
}

}  // namespace
}  // namespace snapvol
