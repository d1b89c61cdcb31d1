// SigV4 verification: round trips with snapvol's own signer, and every way a request is refused
// (damage, wrong keys, clock skew, scope, headers, presigned URLs); dates and headers.
#include "iam/sigv4.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>

#include "iam/sigv4_test_util.h"

namespace snapvol::iam {
namespace {

using sigv4_testing::kEmptyHash;
using sigv4_testing::kSuiteTime;
using sigv4_testing::LookupFor;

// ---------------------------------------------------------------------------------------------
// Round trips through our own signer, and what must be refused.

class SigV4VerifyTest : public ::testing::Test {
 protected:
  static constexpr int64_t kNow = 1764115200000;  // 2025-11-26T00:00:00Z
  SigV4VerifyTest()
      : clock_(kNow),
        verifier_(
            {.region = "us-east-1", .service = "ec2"},
            [this](std::string_view akid) -> Result<SecretInfo> {
              ++lookups_;
              if (akid == "AKIDDISABLED") return MakeError(ErrorCode::kUnauthorized, "off");
              if (akid == "AKIDBROKEN")
                return MakeError(ErrorCode::kIoError, "catalog is busy", true);
              if (akid != "AKIDTEAM") return NotFound("unknown");
              return SecretInfo{"team-secret", "111122223333", "alice"};
            },
            &clock_) {}

  HttpRequest NewPost() {
    HttpRequest r;
    r.method = "POST";
    r.path = "/";
    r.headers.emplace("Host", "snapvol.example:8443");
    r.headers.emplace("Content-Type", "application/x-www-form-urlencoded; charset=utf-8");
    r.headers.emplace("X-Team", "storage   team");
    r.body =
        "Action=DescribeSnapshots&Version=2016-11-15&Filter.1.Name=tag%3AOwner"
        "&Filter.1.Value.1=alice";
    return r;
  }

  HttpRequest Signed(HttpRequest r, std::string akid = "AKIDTEAM",
                     std::string secret = "team-secret", SigningOptions opts = {}) {
    if (opts.time_ms == 0) opts.time_ms = kNow;
    EXPECT_TRUE(SignRequest(&r, {akid, secret}, opts));
    return r;
  }

  AuthResult<VerifiedIdentity> Verify(const HttpRequest& r) { return verifier_.Verify(r.View()); }

  static std::string& HeaderValue(HttpRequest& r, std::string_view name) {
    return r.headers.find(name)->second;
  }

  FakeClock clock_;
  int lookups_ = 0;
  SigV4Verifier verifier_;
};

#define EXPECT_AUTH_CODE(result, expected_code)                        \
  do {                                                                 \
    auto _r = (result);                                                \
    ASSERT_FALSE(_r) << "unexpectedly verified";                       \
    EXPECT_EQ(_r.error().code, expected_code)                          \
        << AuthCodeName(_r.error().code) << ": " << _r.error().detail; \
  } while (0)

TEST_F(SigV4VerifyTest, OwnSignerRoundTrip) {
  HttpRequest r = Signed(NewPost());
  EXPECT_NE(
      HeaderValue(r, "authorization").find("SignedHeaders=content-type;host;x-amz-date;x-team"),
      std::string::npos);
  auto id = Verify(r);
  ASSERT_TRUE(id) << id.error().detail;
  EXPECT_EQ(id->access_key_id, "AKIDTEAM");
  EXPECT_EQ(id->account_id, "111122223333");
  EXPECT_EQ(id->user, "alice");
  EXPECT_FALSE(id->presigned);
}

TEST_F(SigV4VerifyTest, UnsignedHeadersMayChange) {
  HttpRequest r = Signed(NewPost());
  r.headers.emplace("User-Agent", "aws-cli/2");
  r.headers.emplace("Content-Length", "999");
  EXPECT_TRUE(Verify(r));
}

TEST_F(SigV4VerifyTest, OneFlippedByteAnywhereFails) {
  const HttpRequest good = Signed(NewPost());
  for (size_t i = 0; i < good.body.size(); ++i) {
    HttpRequest r = good;
    r.body[i] ^= 1;
    EXPECT_AUTH_CODE(Verify(r), AuthCode::kAuthFailure);
  }
  for (const char* name : {"x-team", "content-type", "host"}) {
    for (size_t i = 0; i < good.headers.find(name)->second.size(); ++i) {
      HttpRequest r = good;
      HeaderValue(r, name)[i] ^= 1;
      SCOPED_TRACE(std::string(name) + " byte " + std::to_string(i));
      EXPECT_AUTH_CODE(Verify(r), AuthCode::kAuthFailure);
    }
  }
  std::string auth = good.headers.find("authorization")->second;
  size_t sig_at = auth.find("Signature=") + 10;
  for (size_t i = sig_at; i < auth.size(); ++i) {
    HttpRequest r = good;
    HeaderValue(r, "authorization")[i] ^= 1;
    EXPECT_AUTH_CODE(Verify(r), AuthCode::kAuthFailure);
  }
  {
    HttpRequest r = good;
    r.method = "PUT";
    EXPECT_AUTH_CODE(Verify(r), AuthCode::kAuthFailure);
  }
  {
    HttpRequest r = good;
    r.path = "/x";
    EXPECT_AUTH_CODE(Verify(r), AuthCode::kAuthFailure);
  }
  // A flipped date digit moves the time or breaks the scope: refused either way.
  std::string date = good.headers.find("x-amz-date")->second;
  for (size_t i = 0; i < date.size(); ++i) {
    HttpRequest r = good;
    HeaderValue(r, "x-amz-date")[i] ^= 1;
    EXPECT_FALSE(Verify(r));
  }
}

TEST_F(SigV4VerifyTest, OneFlippedByteInTheQueryFails) {
  HttpRequest req = NewPost();
  req.method = "GET";
  req.body.clear();
  req.query = "Action=DescribeSnapshots&Version=2016-11-15&Owner.1=self&Filter.1.Value.1=a%20b";
  const HttpRequest good = Signed(req);
  ASSERT_TRUE(Verify(good));
  for (size_t i = 0; i < good.query.size(); ++i) {
    HttpRequest r = good;
    r.query[i] ^= 1;
    SCOPED_TRACE("query byte " + std::to_string(i) + ": " + r.query);
    EXPECT_AUTH_CODE(Verify(r), AuthCode::kAuthFailure);
  }
}

TEST_F(SigV4VerifyTest, WrongSecretUnknownAndDisabledKeys) {
  EXPECT_AUTH_CODE(Verify(Signed(NewPost(), "AKIDTEAM", "not-the-secret")), AuthCode::kAuthFailure);
  EXPECT_AUTH_CODE(Verify(Signed(NewPost(), "AKIDNOBODY")), AuthCode::kAuthFailure);
  EXPECT_AUTH_CODE(Verify(Signed(NewPost(), "AKIDDISABLED")), AuthCode::kAuthFailure);
  // The client sees one message for all three: it learns nothing about which keys exist.
  auto unknown = Verify(Signed(NewPost(), "AKIDNOBODY"));
  auto disabled = Verify(Signed(NewPost(), "AKIDDISABLED"));
  EXPECT_EQ(unknown.error().message, disabled.error().message);
  auto broken = Verify(Signed(NewPost(), "AKIDBROKEN"));
  ASSERT_FALSE(broken);
  EXPECT_EQ(broken.error().code, AuthCode::kInternalError);
  EXPECT_TRUE(broken.error().retryable);
  EXPECT_EQ(broken.error().ToError().code(), ErrorCode::kIoError);
  EXPECT_EQ(unknown.error().ToError().code(), ErrorCode::kUnauthorized);
  EXPECT_EQ(unknown.error().ToError().message().rfind("AuthFailure: ", 0), 0u);
}

TEST_F(SigV4VerifyTest, ClockSkew) {
  HttpRequest r = Signed(NewPost());
  clock_.Set(kNow + 14 * 60 * 1000);
  EXPECT_TRUE(Verify(r));
  clock_.Set(kNow - 14 * 60 * 1000);
  EXPECT_TRUE(Verify(r));
  clock_.Set(kNow + 16 * 60 * 1000);
  EXPECT_AUTH_CODE(Verify(r), AuthCode::kRequestExpired);
  clock_.Set(kNow - 16 * 60 * 1000);
  EXPECT_AUTH_CODE(Verify(r), AuthCode::kRequestExpired);
  // Time is checked before the key store is asked.
  EXPECT_EQ(lookups_, 2);
}

std::string AuthHeader(std::string_view credential, std::string_view signed_headers,
                       std::string_view signature = std::string_view(kEmptyHash)) {
  return "AWS4-HMAC-SHA256 Credential=" + std::string(credential) +
         ", SignedHeaders=" + std::string(signed_headers) + ", Signature=" + std::string(signature);
}

TEST_F(SigV4VerifyTest, CredentialScopeMustMatch) {
  HttpRequest r = Signed(NewPost());
  std::string date = sigv4::FormatAmzDate(kNow).substr(0, 8);
  std::string sh = "content-type;host;x-amz-date;x-team";
  auto with_credential = [&](const std::string& cred) {
    HttpRequest x = r;
    HeaderValue(x, "authorization") = AuthHeader(cred, sh);
    return Verify(x);
  };
  auto scope_date = with_credential("AKIDTEAM/20251127/us-east-1/ec2/aws4_request");
  EXPECT_AUTH_CODE(scope_date, AuthCode::kAuthFailure);
  EXPECT_NE(scope_date.error().message.find("Credential scope"), std::string::npos);
  EXPECT_AUTH_CODE(with_credential("AKIDTEAM/" + date + "/eu-west-1/ec2/aws4_request"),
                   AuthCode::kAuthFailure);
  EXPECT_AUTH_CODE(with_credential("AKIDTEAM/" + date + "/us-east-1/dlm/aws4_request"),
                   AuthCode::kAuthFailure);
  EXPECT_AUTH_CODE(with_credential("AKIDTEAM/" + date + "/us-east-1/ec2/aws5_request"),
                   AuthCode::kIncompleteSignature);
  EXPECT_AUTH_CODE(with_credential("AKIDTEAM/" + date + "/us-east-1/ec2"),
                   AuthCode::kIncompleteSignature);
  EXPECT_AUTH_CODE(with_credential("AKIDTEAM//us-east-1/ec2/aws4_request"),
                   AuthCode::kIncompleteSignature);

  // The same request is fine for a verifier configured for its scope: the service is a
  // parameter ("dlm" later).
  SigV4Verifier dlm({.region = "us-east-1", .service = "dlm"},
                    LookupFor({{"AKIDTEAM", {"team-secret", "111122223333", "alice"}}}), &clock_);
  EXPECT_TRUE(dlm.Verify(Signed(NewPost(), "AKIDTEAM", "team-secret", {.service = "dlm"}).View()));
  EXPECT_AUTH_CODE(dlm.Verify(r.View()), AuthCode::kAuthFailure);
}

TEST_F(SigV4VerifyTest, HostMustBeSignedAndPresent) {
  HttpRequest r = Signed(NewPost());
  std::string cred =
      "AKIDTEAM/" + sigv4::FormatAmzDate(kNow).substr(0, 8) + "/us-east-1/ec2/aws4_request";
  HttpRequest no_host = r;
  HeaderValue(no_host, "authorization") = AuthHeader(cred, "content-type;x-amz-date;x-team");
  EXPECT_AUTH_CODE(Verify(no_host), AuthCode::kAuthFailure);

  HttpRequest host_missing = r;
  host_missing.headers.erase("host");
  EXPECT_AUTH_CODE(Verify(host_missing), AuthCode::kAuthFailure);

  HttpRequest unsorted = r;
  HeaderValue(unsorted, "authorization") = AuthHeader(cred, "host;content-type;x-amz-date");
  EXPECT_AUTH_CODE(Verify(unsorted), AuthCode::kIncompleteSignature);
  HttpRequest upper = r;
  HeaderValue(upper, "authorization") = AuthHeader(cred, "Host;x-amz-date");
  EXPECT_AUTH_CODE(Verify(upper), AuthCode::kIncompleteSignature);

  HttpRequest date_unsigned = r;
  HeaderValue(date_unsigned, "authorization") = AuthHeader(cred, "content-type;host;x-team");
  EXPECT_AUTH_CODE(Verify(date_unsigned), AuthCode::kAuthFailure);

  HttpRequest to_sign;
  to_sign.method = "GET";
  EXPECT_FALSE(SignRequest(&to_sign, {"AKIDTEAM", "team-secret"}, {.time_ms = kNow}));
}

TEST_F(SigV4VerifyTest, MalformedAuthorizationHeaders) {
  HttpRequest r = Signed(NewPost());
  std::string cred =
      "AKIDTEAM/" + sigv4::FormatAmzDate(kNow).substr(0, 8) + "/us-east-1/ec2/aws4_request";
  auto with = [&](std::string value) {
    HttpRequest x = r;
    HeaderValue(x, "authorization") = std::move(value);
    return Verify(x);
  };
  EXPECT_AUTH_CODE(with("AWS4-HMAC-SHA512 Credential=" + cred), AuthCode::kIncompleteSignature);
  EXPECT_AUTH_CODE(with("AWS4-HMAC-SHA256"), AuthCode::kIncompleteSignature);
  EXPECT_AUTH_CODE(with("AWS4-HMAC-SHA256 Credential=" + cred + ", SignedHeaders=host;x-amz-date"),
                   AuthCode::kIncompleteSignature);
  EXPECT_AUTH_CODE(with(AuthHeader(cred, "host;x-amz-date") + ", Signature=00"),
                   AuthCode::kIncompleteSignature);
  EXPECT_AUTH_CODE(with(AuthHeader(cred, "host;x-amz-date") + ", Extra=1"),
                   AuthCode::kIncompleteSignature);
  // Oversize: a 5 KB header is refused before any parsing or lookup.
  int before = lookups_;
  EXPECT_AUTH_CODE(with(AuthHeader(cred, "host;x-amz-date") + std::string(5000, ' ')),
                   AuthCode::kIncompleteSignature);
  EXPECT_AUTH_CODE(with(AuthHeader(cred, "host;x-amz-date;" + std::string(5000, 'x'))),
                   AuthCode::kIncompleteSignature);
  EXPECT_EQ(lookups_, before);

  HttpRequest twice = r;
  twice.headers.emplace("Authorization", HeaderValue(twice, "authorization"));
  EXPECT_AUTH_CODE(Verify(twice), AuthCode::kIncompleteSignature);

  HttpRequest unsigned_request = NewPost();
  EXPECT_AUTH_CODE(Verify(unsigned_request), AuthCode::kMissingAuthenticationToken);

  HttpRequest no_date = r;
  no_date.headers.erase("x-amz-date");
  EXPECT_AUTH_CODE(Verify(no_date), AuthCode::kIncompleteSignature);
  HttpRequest bad_date = r;
  HeaderValue(bad_date, "x-amz-date") = "20251126T000000";
  EXPECT_AUTH_CODE(Verify(bad_date), AuthCode::kIncompleteSignature);
  HttpRequest feb30 = r;
  HeaderValue(feb30, "x-amz-date") = "20250230T000000Z";
  EXPECT_AUTH_CODE(Verify(feb30), AuthCode::kIncompleteSignature);
}

TEST_F(SigV4VerifyTest, PayloadHashHeader) {
  HttpRequest r = Signed(NewPost(), "AKIDTEAM", "team-secret", {.add_content_sha256 = true});
  ASSERT_TRUE(Verify(r));
  HttpRequest tampered = r;
  tampered.body += "&Owner.1=self";
  EXPECT_AUTH_CODE(Verify(tampered), AuthCode::kAuthFailure);
  HttpRequest garbage = r;
  HeaderValue(garbage, "x-amz-content-sha256") = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD";
  EXPECT_AUTH_CODE(Verify(garbage), AuthCode::kAuthFailure);

  // UNSIGNED-PAYLOAD: refused by default (the EC2 body is the request), accepted when enabled,
  // and then the body is not covered.
  HttpRequest unsigned_body =
      Signed(NewPost(), "AKIDTEAM", "team-secret", {.unsigned_payload = true});
  EXPECT_AUTH_CODE(Verify(unsigned_body), AuthCode::kAuthFailure);
  SigV4Verifier lenient({.region = "us-east-1", .service = "ec2", .allow_unsigned_payload = true},
                        LookupFor({{"AKIDTEAM", {"team-secret", "111122223333", "alice"}}}),
                        &clock_);
  EXPECT_TRUE(lenient.Verify(unsigned_body.View()));
  unsigned_body.body = "Action=DeleteSnapshot";
  EXPECT_TRUE(lenient.Verify(unsigned_body.View()));
}

TEST_F(SigV4VerifyTest, DuplicateQueryKeys) {
  HttpRequest req = NewPost();
  req.method = "GET";
  req.body.clear();
  req.query = "Action=DescribeSnapshots&SnapshotId=snap-b&SnapshotId=snap-a";
  HttpRequest r = Signed(req);
  ASSERT_TRUE(Verify(r));
  // Repeated names sort by value, so their order on the wire does not matter ...
  HttpRequest reordered = r;
  reordered.query = "SnapshotId=snap-a&Action=DescribeSnapshots&SnapshotId=snap-b";
  EXPECT_TRUE(Verify(reordered));
  // ... but each value does, and so does the number of repeats.
  HttpRequest changed = r;
  changed.query = "Action=DescribeSnapshots&SnapshotId=snap-b&SnapshotId=snap-c";
  EXPECT_AUTH_CODE(Verify(changed), AuthCode::kAuthFailure);
  HttpRequest extra = r;
  extra.query += "&SnapshotId=snap-a";
  EXPECT_AUTH_CODE(Verify(extra), AuthCode::kAuthFailure);
}

TEST_F(SigV4VerifyTest, PercentEncodingEdgeCases) {
  EXPECT_EQ(*sigv4::CanonicalQueryString("a=b+c"), "a=b%2Bc");  // '+' is not a space
  EXPECT_EQ(*sigv4::CanonicalQueryString("a=b%20c"), "a=b%20c");
  EXPECT_EQ(*sigv4::CanonicalQueryString("a=b:c/d"), "a=b%3Ac%2Fd");
  EXPECT_EQ(*sigv4::CanonicalQueryString("a=b=c"), "a=b%3Dc");
  EXPECT_EQ(*sigv4::CanonicalQueryString("flag&a="), "a=&flag=");
  EXPECT_EQ(*sigv4::CanonicalQueryString("a=%7e%2d"), "a=~-");  // over-encoded unreserved
  EXPECT_EQ(*sigv4::CanonicalQueryString("b=2&a=1&a=0"), "a=0&a=1&b=2");
  // Sorting is by encoded bytes: upper case before lower case, '%' before letters.
  EXPECT_EQ(*sigv4::CanonicalQueryString("b=1&B=2&%C3%A9=3&_=4"), "%C3%A9=3&B=2&_=4&b=1");
  EXPECT_FALSE(sigv4::CanonicalQueryString("a=%zz"));
  EXPECT_FALSE(sigv4::CanonicalQueryString("a=%4"));
  EXPECT_FALSE(sigv4::CanonicalQueryString("a=%"));
  EXPECT_EQ(sigv4::UriEncode("a b/\xC3\xA9~", false), "a%20b%2F%C3%A9~");
  EXPECT_EQ(sigv4::UriEncode("a b/", true), "a%20b/");
  EXPECT_EQ(*sigv4::CanonicalUri("/a%2Fb", false), "/a%252Fb");
  EXPECT_EQ(*sigv4::CanonicalUri("/a%2Fb", true), "/a%2Fb");
  EXPECT_EQ(*sigv4::CanonicalUri("/test$file.text", true), "/test%24file.text");
  EXPECT_FALSE(sigv4::CanonicalUri("/bad%G0", true));

  // A request whose query has a bad escape is refused as a failed signature.
  HttpRequest r = Signed(NewPost());
  r.query = "a=%zz";
  EXPECT_AUTH_CODE(Verify(r), AuthCode::kAuthFailure);
  // Our signer and verifier agree on escaped UTF-8 and spaces ...
  HttpRequest q = NewPost();
  q.method = "GET";
  q.body.clear();
  q.query = "Description=caf%C3%A9%20cr%C3%A8me%2Bbr%C3%BBl%C3%A9e&Filter.1.Name=tag%3AOwner";
  EXPECT_TRUE(Verify(Signed(q)));
  // ... but a raw '+' is refused even when correctly signed: the handler's form decoder would
  // read a space where the signature covered a plus.
  q.query = "Description=a+b";
  EXPECT_AUTH_CODE(Verify(Signed(q)), AuthCode::kAuthFailure);
}

TEST_F(SigV4VerifyTest, PresignedUrls) {
  HttpRequest req;
  req.method = "GET";
  req.path = "/";
  req.query = "Action=DescribeSnapshots&Version=2016-11-15";
  req.headers.emplace("Host", "snapvol.example:8443");
  HttpRequest r = req;
  ASSERT_TRUE(PresignRequest(&r, {"AKIDTEAM", "team-secret"}, {.time_ms = kNow}, 3600));
  auto id = Verify(r);
  ASSERT_TRUE(id) << id.error().detail;
  EXPECT_TRUE(id->presigned);

  clock_.Set(kNow + 3600 * 1000);
  EXPECT_TRUE(Verify(r));
  clock_.Set(kNow + 3601 * 1000);
  EXPECT_AUTH_CODE(Verify(r), AuthCode::kRequestExpired);
  clock_.Set(kNow - 16 * 60 * 1000);
  EXPECT_AUTH_CODE(Verify(r), AuthCode::kRequestExpired);
  clock_.Set(kNow);

  for (size_t i = 0; i < r.query.size(); ++i) {
    HttpRequest x = r;
    x.query[i] ^= 1;
    EXPECT_FALSE(Verify(x)) << x.query;
  }
  HttpRequest twice = r;
  twice.query += "&X-Amz-Signature=" + std::string(64, '0');
  EXPECT_AUTH_CODE(Verify(twice), AuthCode::kIncompleteSignature);
  HttpRequest date_twice = r;
  date_twice.query += "&X-Amz-Date=20251126T000000Z";
  EXPECT_AUTH_CODE(Verify(date_twice), AuthCode::kIncompleteSignature);
  HttpRequest too_long = r;
  too_long.query.replace(too_long.query.find("X-Amz-Expires=3600"), 18, "X-Amz-Expires=604801");
  EXPECT_AUTH_CODE(Verify(too_long), AuthCode::kIncompleteSignature);
  HttpRequest also_header = r;
  also_header.headers.emplace("Authorization", "AWS4-HMAC-SHA256 Credential=x");
  EXPECT_AUTH_CODE(Verify(also_header), AuthCode::kIncompleteSignature);
  HttpRequest missing = req;
  missing.query += "&X-Amz-Signature=" + std::string(64, '0');
  EXPECT_AUTH_CODE(Verify(missing), AuthCode::kIncompleteSignature);

  HttpRequest week = req;
  EXPECT_TRUE(PresignRequest(&week, {"AKIDTEAM", "team-secret"}, {.time_ms = kNow},
                             kMaxPresignExpiresSeconds));
  HttpRequest over = req;
  EXPECT_FALSE(PresignRequest(&over, {"AKIDTEAM", "team-secret"}, {.time_ms = kNow},
                              kMaxPresignExpiresSeconds + 1));
}

// Random damage to every part the verifier parses: never a crash (run it under ASan/UBSan),
// never a success.
// The forms the verifier treats as equal: the same canonical query string (empty pieces,
// escapes of either case), and an Authorization header differing only in white space around its
// parts.
std::string CanonicalQueryOrEmpty(const std::string& q) {
  auto c = sigv4::CanonicalQueryString(q);
  return c ? *c : "<bad>";
}
std::string WithoutWhitespace(std::string s) {
  std::erase_if(s, [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; });
  return s;
}

TEST_F(SigV4VerifyTest, RandomDamageIsRefusedWithoutCrashing) {
  HttpRequest base = NewPost();
  base.query = "Action=DescribeSnapshots&Filter.1.Value.1=caf%C3%A9";
  const HttpRequest good = Signed(base);
  HttpRequest presigned = base;
  ASSERT_TRUE(PresignRequest(&presigned, {"AKIDTEAM", "team-secret"}, {.time_ms = kNow}, 60));
  ASSERT_TRUE(Verify(good));
  ASSERT_TRUE(Verify(presigned));
  std::mt19937 rng(20261126);
  for (int round = 0; round < 3000; ++round) {
    HttpRequest r = round % 2 ? good : presigned;
    const HttpRequest& original = round % 2 ? good : presigned;
    std::string* target = round % 3 == 0                     ? &r.query
                          : r.headers.count("authorization") ? &HeaderValue(r, "authorization")
                                                             : &r.query;
    if (target->empty()) continue;
    int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits; ++e) {
      size_t at = rng() % target->size();
      switch (rng() % 3) {
        case 0:
          (*target)[at] = static_cast<char>(rng() % 256);
          break;
        case 1:
          target->resize(at);
          break;
        default:
          target->insert(at, 1, "%=&,;/ "[rng() % 7]);
          break;
      }
      if (target->empty()) break;
    }
    auto result = Verify(r);
    if (result) {
      // Only harmless respellings may pass.
      EXPECT_EQ(CanonicalQueryOrEmpty(r.query), CanonicalQueryOrEmpty(original.query)) << *target;
      auto auth = [](const HttpRequest& x) {
        auto it = x.headers.find("authorization");
        return it == x.headers.end() ? std::string() : WithoutWhitespace(it->second);
      };
      EXPECT_EQ(auth(r), auth(original)) << *target;
    }
  }
}

TEST(SigV4Dates, ParseAndFormat) {
  EXPECT_EQ(sigv4::FormatAmzDate(0), "19700101T000000Z");
  EXPECT_EQ(sigv4::ParseAmzDate("19700101T000000Z"), 0);
  EXPECT_EQ(sigv4::ParseAmzDate("20150830T123600Z"), kSuiteTime);
  EXPECT_EQ(sigv4::ParseAmzDate("20240229T235959Z"), 1709251199000);
  EXPECT_FALSE(sigv4::ParseAmzDate("20230229T000000Z"));
  EXPECT_FALSE(sigv4::ParseAmzDate("20150830T126000Z"));
  EXPECT_FALSE(sigv4::ParseAmzDate("2015-08-30T12:36:00Z"));
  EXPECT_EQ(sigv4::ParseHttpDate("Sun, 30 Aug 2015 12:36:00 GMT"), kSuiteTime);
  EXPECT_FALSE(sigv4::ParseHttpDate("Sun, 30 Foo 2015 12:36:00 GMT"));
  EXPECT_FALSE(sigv4::ParseHttpDate("Sunday, 30-Aug-15 12:36:00 GMT"));
}

TEST(SigV4Headers, CaseInsensitiveMultimapKeepsArrivalOrder) {
  HeaderMap h;
  h.emplace("X-A", "1");
  h.emplace("x-a", "2");
  h.emplace("HOST", "h");
  EXPECT_EQ(h.count("x-A"), 2u);
  EXPECT_EQ(h.find("host")->second, "h");
  EXPECT_EQ(*sigv4::CanonicalHeaders(h, {"host", "x-a"}), "host:h\nx-a:1,2\n");
  EXPECT_EQ(sigv4::CanonicalHeaders(h, {"x-b"}).error().code(), ErrorCode::kNotFound);
}

}  // namespace
}  // namespace snapvol::iam