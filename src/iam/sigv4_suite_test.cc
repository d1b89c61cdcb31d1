// SigV4 against AWS's published test suite (canonical forms, string to sign, signatures) and
// against signatures real clients (botocore) made.
#include "iam/sigv4.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "iam/sigv4_test_util.h"

namespace snapvol::iam {
namespace {

using sigv4_testing::kEmptyHash;
using sigv4_testing::kSuiteTime;
using sigv4_testing::LookupFor;

// The credentials of AWS's published SigV4 test suite.
constexpr char kSuiteKey[] = "AKIDEXAMPLE";
constexpr char kSuiteSecret[] = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

HeaderMap Headers(std::initializer_list<std::pair<std::string, std::string>> list) {
  HeaderMap h;
  for (const auto& [k, v] : list) h.emplace(k, v);
  return h;
}

std::vector<std::string> SortedLowerNames(const HeaderMap& h) {
  std::vector<std::string> names;
  for (const auto& [k, v] : h) {
    std::string lower;
    for (char c : k) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (names.empty() || names.back() != lower) names.push_back(lower);
  }
  std::sort(names.begin(), names.end());
  names.erase(std::unique(names.begin(), names.end()), names.end());
  return names;
}

std::string JoinNames(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ";") + n;
  return out;
}

SecretLookup SuiteLookup() {
  return LookupFor({{kSuiteKey, {kSuiteSecret, "123456789012", "suite"}}});
}


// ---------------------------------------------------------------------------------------------
// AWS's published test suite (aws-sig-v4-test-suite, 2015 edition): region us-east-1, service
// "service", 20150830T123600Z. The expected signatures are AWS's, not computed here.

struct SuiteCase {
  const char* name;
  const char* method;
  const char* path;   // raw
  const char* query;  // raw
  std::vector<std::pair<std::string, std::string>> extra_headers;
  const char* body;
  const char* signature;
};

const std::vector<SuiteCase>& SuiteCases() {
  static const std::vector<SuiteCase> cases = {
      {"get-vanilla",
       "GET",
       "/",
       "",
       {},
       "",
       "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"},
      {"post-vanilla",
       "POST",
       "/",
       "",
       {},
       "",
       "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"},
      {"get-vanilla-query-order-key-case",
       "GET",
       "/",
       "Param2=value2&Param1=value1",
       {},
       "",
       "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"},
      {"get-vanilla-query-order-value",
       "GET",
       "/",
       "Param1=value2&Param1=value1",
       {},
       "",
       "5772eed61e12b33fae39ee5e7012498b51d56abc0abb7c60486157bd471c4694"},
      {"get-vanilla-empty-query-key",
       "GET",
       "/",
       "Param1=value1",
       {},
       "",
       "a67d582fa61cc504c4bae71f336f98b97f1ea3c7a6bfe1b6e45aec72011b9aeb"},
      {"post-vanilla-empty-query-value",
       "POST",
       "/",
       "Param1=value1",
       {},
       "",
       "28038455d6de14eafc1f9222cf5aa6f1a96197d7deb8263271d420d138af7f11"},
      {"get-vanilla-utf8-query",
       "GET",
       "/",
       "\xE1\x88\xB4=bar",
       {},
       "",
       "2cdec8eed098649ff3a119c94853b13c643bcf08f8b0a1d91e12c9027818dd04"},
      {"get-vanilla-query-unreserved",
       "GET",
       "/",
       "-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz="
       "-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
       {},
       "",
       "9c3e54bfcdf0b19771a7f523ee5669cdf59bc7cc0884027167c21bb143a40197"},
      {"get-unreserved",
       "GET",
       "/-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
       "",
       {},
       "",
       "07ef7494c76fa4850883e2b006601f940f8a34d404d0cfa977f52a65bbf5f24f"},
      {"get-utf8",
       "GET",
       "/\xE1\x88\xB4",
       "",
       {},
       "",
       "8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85"},
      {"normalize-path/get-space",
       "GET",
       "/example space/",
       "",
       {},
       "",
       "652487583200325589f1fba4c7e578f72c47cb61beeca81406b39ddec1366741"},
      {"normalize-path/get-slash",
       "GET",
       "//",
       "",
       {},
       "",
       "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"},
      {"normalize-path/get-slash-dot-slash",
       "GET",
       "/./",
       "",
       {},
       "",
       "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"},
      {"normalize-path/get-relative",
       "GET",
       "/example/..",
       "",
       {},
       "",
       "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"},
      {"normalize-path/get-relative-relative",
       "GET",
       "/example1/example2/../..",
       "",
       {},
       "",
       "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"},
      {"normalize-path/get-slashes",
       "GET",
       "//example//",
       "",
       {},
       "",
       "9a624bd73a37c9a373b5312afbebe7a714a789de108f0bdfe846570885f57e84"},
      {"normalize-path/get-slash-pointless-dot",
       "GET",
       "/./example",
       "",
       {},
       "",
       "ef75d96142cf21edca26f06005da7988e4f8dc83a165a80865db7089db637ec5"},
      {"post-header-key-sort",
       "POST",
       "/",
       "",
       {{"My-Header1", "value1"}},
       "",
       "c5410059b04c1ee005303aed430f6e6645f61f4dc9e1461ec8f8916fdf18852c"},
      {"post-header-value-case",
       "POST",
       "/",
       "",
       {{"My-Header1", "VALUE1"}},
       "",
       "cdbc9802e29d2942e5e10b5bccfdd67c5f22c7c4e8ae67b53629efa58b974b7d"},
      {"get-header-value-trim",
       "GET",
       "/",
       "",
       {{"My-Header1", " value1"}, {"My-Header2", " \"a   b   c\""}},
       "",
       "acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736"},
      {"get-header-key-duplicate",
       "GET",
       "/",
       "",
       {{"My-Header1", "value2"}, {"My-Header1", "value2"}, {"My-Header1", "value1"}},
       "",
       "c9d5ea9f3f72853aea855b47ea873832890dbdd183b4468f858259531a5138ea"},
      {"get-header-value-order",
       "GET",
       "/",
       "",
       {{"My-Header1", "value4"},
        {"My-Header1", "value1"},
        {"My-Header1", "value3"},
        {"My-Header1", "value2"}},
       "",
       "08c7e5a9acfcfeb3ab6b2185e75ce8b1deb5e634ec47601a50643f830c755c01"},
      {"get-vanilla-with-session-token",
       "GET",
       "/",
       "",
       {{"X-Amz-Security-Token",
         "6e86291e8372ff2a2260956d9b8aae1d763fbf315fa00fa31553b73ebf194267"}},
       "",
       "07ec1639c89043aa0e3e2de82b96708f198cceab042d4a97044c66dd9f74e7f8"},
      {"post-x-www-form-urlencoded",
       "POST",
       "/",
       "",
       {{"Content-Type", "application/x-www-form-urlencoded"}},
       "Param1=value1",
       "ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a"},
      {"post-x-www-form-urlencoded-parameters",
       "POST",
       "/",
       "",
       {{"Content-Type", "application/x-www-form-urlencoded; charset=utf8"}},
       "Param1=value1",
       "1a72ec8f64bd914b0e42e42607c7fbce7fb2c7465f63e3092b3b0d39fa77a6fe"},
  };
  return cases;
}

HeaderMap SuiteHeaders(const SuiteCase& c) {
  HeaderMap h = Headers({{"Host", "example.amazonaws.com"}, {"X-Amz-Date", "20150830T123600Z"}});
  for (const auto& [k, v] : c.extra_headers) h.emplace(k, v);
  return h;
}

TEST(SigV4Suite, GetVanillaCanonicalRequestStringToSignAndSignature) {
  EXPECT_EQ(sigv4::FormatAmzDate(kSuiteTime), "20150830T123600Z");
  HeaderMap h = Headers({{"Host", "example.amazonaws.com"}, {"X-Amz-Date", "20150830T123600Z"}});
  std::vector<std::string> signed_headers = {"host", "x-amz-date"};
  auto creq = sigv4::CanonicalRequest({.method = "GET",
                                       .raw_path = "/",
                                       .raw_query = "",
                                       .headers = h,
                                       .signed_headers = signed_headers,
                                       .payload_hash = kEmptyHash});
  ASSERT_TRUE(creq) << creq.error().ToString();
  EXPECT_EQ(*creq,
            "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\n"
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  std::string scope = sigv4::CredentialScope("20150830", "us-east-1", "service");
  EXPECT_EQ(scope, "20150830/us-east-1/service/aws4_request");
  std::string sts = sigv4::StringToSign("20150830T123600Z", scope, *creq);
  EXPECT_EQ(sts,
            "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n"
            "bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63");
  EXPECT_EQ(
      sigv4::Signature(sigv4::SigningKey(kSuiteSecret, "20150830", "us-east-1", "service"), sts),
      "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31");
}

TEST(SigV4Suite, PublishedCanonicalForms) {
  EXPECT_EQ(*sigv4::CanonicalQueryString("Param2=value2&Param1=value1"),
            "Param1=value1&Param2=value2");
  EXPECT_EQ(*sigv4::CanonicalQueryString("Param1=value2&Param1=value1"),
            "Param1=value1&Param1=value2");
  EXPECT_EQ(*sigv4::CanonicalQueryString("\xE1\x88\xB4=bar"), "%E1%88%B4=bar");
  EXPECT_EQ(*sigv4::CanonicalUri("/\xE1\x88\xB4", false), "/%E1%88%B4");
  EXPECT_EQ(*sigv4::CanonicalUri("/example space/", false), "/example%20space/");
  EXPECT_EQ(*sigv4::CanonicalUri("//example//", false), "/example/");
  EXPECT_EQ(*sigv4::CanonicalUri("/example1/example2/../..", false), "/");
  EXPECT_EQ(sigv4::CanonicalHeaderValue("  \"a   b   c\"  "), "\"a b c\"");
  HeaderMap h = Headers({{"My-Header1", "value4"}, {"my-header1", "value1"}});
  EXPECT_EQ(*sigv4::CanonicalHeaders(h, {"my-header1"}), "my-header1:value4,value1\n");
}

// Each published case: our canonicalisation reproduces AWS's signature, and the verifier accepts
// the request carrying AWS's signature.
TEST(SigV4Suite, EveryPublishedCaseSignsAndVerifies) {
  FakeClock clock(kSuiteTime);
  SigV4Verifier verifier({.region = "us-east-1", .service = "service"}, SuiteLookup(), &clock);
  for (const SuiteCase& c : SuiteCases()) {
    SCOPED_TRACE(c.name);
    HeaderMap h = SuiteHeaders(c);
    std::vector<std::string> names = SortedLowerNames(h);
    std::string payload = ToHex(Sha256(AsBytes(c.body)));
    auto creq = sigv4::CanonicalRequest({.method = c.method,
                                         .raw_path = c.path,
                                         .raw_query = c.query,
                                         .headers = h,
                                         .signed_headers = names,
                                         .payload_hash = payload});
    ASSERT_TRUE(creq) << creq.error().ToString();
    std::string sig = sigv4::Signature(
        sigv4::SigningKey(kSuiteSecret, "20150830", "us-east-1", "service"),
        sigv4::StringToSign("20150830T123600Z", "20150830/us-east-1/service/aws4_request", *creq));
    EXPECT_EQ(sig, c.signature) << *creq;

    h.emplace("Authorization",
              "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
              "SignedHeaders=" +
                  JoinNames(names) + ", Signature=" + c.signature);
    HttpRequestView view{c.method, c.path, c.query, h, c.body};
    auto id = verifier.Verify(view);
    ASSERT_TRUE(id) << id.error().detail;
    EXPECT_EQ(id->access_key_id, kSuiteKey);
    EXPECT_EQ(id->account_id, "123456789012");
    EXPECT_EQ(id->request_time_ms, kSuiteTime);
  }
}

// The query arrives with lower-case hex escapes: decoding and re-encoding still gives AWS's
// canonical form, so AWS's signature for get-vanilla-utf8-query verifies.
TEST(SigV4Suite, LowerCaseEscapesInTheQueryAreNormalised) {
  FakeClock clock(kSuiteTime);
  SigV4Verifier verifier({.region = "us-east-1", .service = "service"}, SuiteLookup(), &clock);
  HeaderMap h =
      Headers({{"Host", "example.amazonaws.com"},
               {"X-Amz-Date", "20150830T123600Z"},
               {"Authorization",
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/"
                "aws4_request, SignedHeaders=host;x-amz-date, "
                "Signature=2cdec8eed098649ff3a119c94853b13c643bcf08f8b0a1d91e12c9027818dd04"}});
  EXPECT_TRUE(verifier.Verify({"GET", "/", "%e1%88%b4=bar", h, ""}));
  EXPECT_TRUE(verifier.Verify({"GET", "/", "%E1%88%B4=bar", h, ""}));
}

// botocore's copy of the older suite (2011): signed with the Date header, service "host", and
// a raw path that is already percent-encoded, which non-S3 services encode a second time.
TEST(SigV4Suite, DateHeaderAndDoubleEncodedPath) {
  auto t = sigv4::ParseHttpDate("Fri, 09 Sep 2011 23:36:00 GMT");
  ASSERT_TRUE(t);
  EXPECT_EQ(sigv4::FormatAmzDate(*t), "20110909T233600Z");
  FakeClock clock(*t);
  SigV4Verifier verifier({.region = "us-east-1", .service = "host"}, SuiteLookup(), &clock);
  struct Case {
    const char* path;
    const char* canonical_uri;
    const char* signature;
  } cases[] = {
      {"/%E1%88%B4", "/%25E1%2588%25B4",
       "57b1eb3df3b16a8479c0097b66c0b261cfd65b829419a3f2c3d05319722490b8"},
      {"/%20/foo", "/%2520/foo",
       "2be9e587d1ee1f0fd02128724b86b4358ba3630d39f493b6e06610a19a50779e"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.path);
    EXPECT_EQ(*sigv4::CanonicalUri(c.path, false), c.canonical_uri);
    // The suite's Date line says "Mon" for a Friday; the weekday is not checked.
    HeaderMap h = Headers(
        {{"Date", "Mon, 09 Sep 2011 23:36:00 GMT"},
         {"Host", "host.foo.com"},
         {"Authorization", std::string("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20110909/"
                                       "us-east-1/host/aws4_request, SignedHeaders=date;host, "
                                       "Signature=") +
                               c.signature}});
    auto id = verifier.Verify({"GET", c.path, "", h, ""});
    EXPECT_TRUE(id) << (id ? "" : id.error().detail);
  }
}

// AWS's S3 documentation example (GET Object with a Range header): S3 path rules and an
// explicit X-Amz-Content-Sha256.
TEST(SigV4Suite, S3GetObjectExample) {
  FakeClock clock(*sigv4::ParseAmzDate("20130524T000000Z"));
  SigV4Verifier verifier(
      {.region = "us-east-1", .service = "s3", .s3_mode = true},
      LookupFor({{"AKIAIOSFODNN7EXAMPLE", {"wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "1", "u"}}}),
      &clock);
  HeaderMap h = Headers(
      {{"Host", "examplebucket.s3.amazonaws.com"},
       {"Range", "bytes=0-9"},
       {"x-amz-content-sha256", kEmptyHash},
       {"x-amz-date", "20130524T000000Z"},
       {"Authorization",
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,"
        "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,"
        "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"}});
  auto id = verifier.Verify({"GET", "/test.txt", "", h, ""});
  EXPECT_TRUE(id) << (id ? "" : id.error().detail);
}

// ---------------------------------------------------------------------------------------------
// Requests signed by real botocore (testdata/botocore_requests.json, made by
// testdata/make_botocore_requests.py).

TEST(SigV4Botocore, RealClientSignaturesVerify) {
  std::ifstream in(std::string(SNAPVOL_IAM_TESTDATA) + "/botocore_requests.json");
  ASSERT_TRUE(in) << "missing test data";
  std::stringstream ss;
  ss << in.rdbuf();
  nlohmann::json doc = nlohmann::json::parse(ss.str());
  ASSERT_GE(doc["cases"].size(), 5u);
  for (const auto& c : doc["cases"]) {
    std::string name = c["name"].get<std::string>();
    SCOPED_TRACE(name);
    HeaderMap h;
    for (const auto& kv : c["headers"])
      h.emplace(kv[0].get<std::string>(), kv[1].get<std::string>());
    std::string method = c["method"].get<std::string>(), path = c["path"].get<std::string>(),
                query = c["query"].get<std::string>(), body = c["body"].get<std::string>();
    FakeClock clock(c["time_ms"].get<int64_t>());
    VerifierOptions opts{.region = c["region"].get<std::string>(),
                         .service = c["service"].get<std::string>()};
    SigV4Verifier verifier(
        opts,
        LookupFor({{c["access_key"].get<std::string>(),
                    {c["secret_key"].get<std::string>(), "123456789012", "botocore"}}}),
        &clock);
    auto id = verifier.Verify({method, path, query, h, body});
    ASSERT_TRUE(id) << id.error().detail;
    EXPECT_EQ(id->presigned, c["presigned"].get<bool>());

    // Ten minutes later still fine for the header form; one flipped body byte never is.
    if (!body.empty()) {
      std::string bad = body;
      bad[bad.size() / 2] ^= 1;
      auto r = verifier.Verify({method, path, query, h, bad});
      ASSERT_FALSE(r);
      EXPECT_EQ(r.error().code, AuthCode::kAuthFailure);
    }
    if (!query.empty()) {
      std::string bad = query;
      bad[bad.size() / 3] ^= 1;
      auto r = verifier.Verify({method, path, bad, h, body});
      ASSERT_FALSE(r);
    }
  }
}

}  // namespace
}  // namespace snapvol::iam
