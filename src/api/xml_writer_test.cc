#include "api/xml_writer.h"

#include <gtest/gtest.h>

namespace snapvol::api {
namespace {

const std::string kFffd = "\xEF\xBF\xBD";

TEST(XmlWriter, EscapesEverySpecialCharacter) {
  EXPECT_EQ(XmlWriter::Escape("a&b<c>d\"e'f"), "a&amp;b&lt;c&gt;d&quot;e&apos;f");
  EXPECT_EQ(XmlWriter::Escape("&amp;"), "&amp;amp;");  // no double-unescaping tricks
  EXPECT_EQ(XmlWriter::Escape("]]>"), "]]&gt;");
  EXPECT_EQ(XmlWriter::Escape("plain text 123"), "plain text 123");
  EXPECT_EQ(XmlWriter::Escape(""), "");
}

TEST(XmlWriter, ControlCharacters) {
  // TAB and LF are legal and kept; CR is kept as a reference so parsers do not fold it.
  EXPECT_EQ(XmlWriter::Escape("a\tb\nc\rd"), "a\tb\nc&#xD;d");
  // Characters XML 1.0 forbids become U+FFFD.
  EXPECT_EQ(XmlWriter::Escape(std::string("a\0b", 3)), "a" + kFffd + "b");
  EXPECT_EQ(XmlWriter::Escape("\x01\x08\x0B\x0C\x1F"), kFffd + kFffd + kFffd + kFffd + kFffd);
  EXPECT_EQ(XmlWriter::Escape("\xEF\xBF\xBE"), kFffd);  // U+FFFE
  EXPECT_EQ(XmlWriter::Escape("\xEF\xBF\xBF"), kFffd);  // U+FFFF
  // DEL and C1 controls are legal XML 1.0 characters.
  EXPECT_EQ(XmlWriter::Escape("\x7F\xC2\x85"), "\x7F\xC2\x85");
}

TEST(XmlWriter, KeepsUtf8AndReplacesMalformedBytes) {
  EXPECT_EQ(XmlWriter::Escape("caf\xC3\xA9 \xF0\x9F\x98\x80"), "caf\xC3\xA9 \xF0\x9F\x98\x80");
  EXPECT_EQ(XmlWriter::Escape("a\xC3(b"), "a" + kFffd + "(b");
  EXPECT_EQ(XmlWriter::Escape("\xED\xA0\x80"), kFffd + kFffd + kFffd);  // a surrogate
}

TEST(XmlWriter, NestingAndScalars) {
  XmlWriter w(/*with_declaration=*/false);
  w.Open("a");
  w.Text("s", "x<y");
  w.Bool("t", true);
  w.Bool("f", false);
  w.Int("n", -42);
  w.Int("big", 9'000'000'000);
  w.Timestamp("ts", 1772330400123);
  w.Open("set");
  EXPECT_EQ(w.depth(), 2u);
  std::string out = std::move(w).Finish();  // closes what is still open
  EXPECT_EQ(out,
            "<a><s>x&lt;y</s><t>true</t><f>false</f><n>-42</n><big>9000000000</big>"
            "<ts>2026-03-01T02:00:00.123Z</ts><set></set></a>");
}

TEST(XmlWriter, Ec2ResponseEnvelope) {
  XmlWriter w = BeginEc2Response("DeleteSnapshot", "req-1");
  w.Bool("return", true);
  EXPECT_EQ(std::move(w).Finish(),
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
            "<DeleteSnapshotResponse xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\">"
            "<requestId>req-1</requestId><return>true</return></DeleteSnapshotResponse>");
}

TEST(XmlWriter, ErrorDocument) {
  XmlResponse r =
      RenderErrorResponse(MissingParameter("VolumeId"), "8f7e6d5c-0000-4000-8000-000000000001");
  EXPECT_EQ(r.http_status, 400);
  EXPECT_EQ(r.body,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
            "<Response><Errors><Error><Code>MissingParameter</Code>"
            "<Message>The request must contain the parameter VolumeId</Message></Error>"
            "</Errors><RequestID>8f7e6d5c-0000-4000-8000-000000000001</RequestID></Response>");

  XmlResponse esc = RenderErrorResponse(InvalidParameterValue("Description", "<&>", "Bad."), "r");
  EXPECT_NE(esc.body.find("<Message>Value (&lt;&amp;&gt;) for parameter Description is invalid. "
                          "Bad.</Message>"),
            std::string::npos);
}

TEST(ApiError, HttpStatuses) {
  EXPECT_EQ(HttpStatusForCode("MissingParameter"), 400);
  EXPECT_EQ(HttpStatusForCode("InvalidParameterValue"), 400);
  EXPECT_EQ(HttpStatusForCode("InvalidSnapshot.NotFound"), 400);
  EXPECT_EQ(HttpStatusForCode("InvalidPaginationToken"), 400);
  EXPECT_EQ(HttpStatusForCode("AuthFailure"), 401);
  EXPECT_EQ(HttpStatusForCode("UnauthorizedOperation"), 403);
  EXPECT_EQ(HttpStatusForCode("DryRunOperation"), 412);
  EXPECT_EQ(HttpStatusForCode("RequestEntityTooLarge"), 413);
  EXPECT_EQ(HttpStatusForCode("InternalError"), 500);
  EXPECT_EQ(HttpStatusForCode("InsufficientCapacity"), 500);
  EXPECT_EQ(HttpStatusForCode("Unavailable"), 503);
  EXPECT_EQ(HttpStatusForCode("RequestLimitExceeded"), 503);
  EXPECT_EQ(RenderErrorResponse(MakeApiError("AuthFailure", "x"), "r").http_status, 401);
  EXPECT_EQ(RenderErrorResponse(MakeApiError("Unavailable", "x"), "r").http_status, 503);
}

TEST(ApiError, FromCoreError) {
  EXPECT_EQ(FromError(Error(ErrorCode::kInvalidArgument, "bad size")),
            (ApiError{"InvalidParameterValue", "bad size", 400}));
  EXPECT_EQ(FromError(Error(ErrorCode::kUnauthorized, "x")).http_status, 403);
  EXPECT_EQ(FromError(Error(ErrorCode::kConflict, "busy")).code, "IncorrectState");
  EXPECT_EQ(FromError(Error(ErrorCode::kIoError, "EAGAIN", true)).http_status, 503);
  ApiError internal = FromError(Error(ErrorCode::kIoError, "/secret/path: EIO"));
  EXPECT_EQ(internal.code, "InternalError");
  EXPECT_EQ(internal.http_status, 500);
  EXPECT_EQ(internal.message.find("/secret"), std::string::npos);  // never leaks paths
  EXPECT_EQ(FromError(Error(ErrorCode::kCorruption, "x")).code, "InternalError");
  // A quota refusal is a client error: the action's own limit code, or a generic one.
  ApiError quota = FromErrorWithLimit(Error(ErrorCode::kQuotaExceeded, "too many"), ec2::kSnapshotLimitExceeded);
  EXPECT_EQ(quota, (ApiError{"SnapshotLimitExceeded", "too many", 400}));
  EXPECT_EQ(FromError(Error(ErrorCode::kQuotaExceeded, "too many")).code, "ResourceLimitExceeded");
  EXPECT_EQ(FromError(Error(ErrorCode::kQuotaExceeded, "too many")).http_status, 400);
  EXPECT_EQ(FromErrorWithLimit(Error(ErrorCode::kConflict, "busy"), ec2::kVolumeLimitExceeded).code, "IncorrectState");
}

TEST(ApiError, LongValuesAreShortenedInMessages) {
  ApiError e = InvalidParameterValue("Description", std::string(500, 'x'), "");
  EXPECT_LT(e.message.size(), 150u);
  // Cut on a UTF-8 boundary: 63 ASCII bytes then a 2-byte character straddling byte 64.
  std::string v = std::string(63, 'a') + "\xC3\xA9" + std::string(10, 'b');
  std::string q = QuoteForMessage(v);
  EXPECT_EQ(q, std::string(63, 'a') + "...");
}

}  // namespace
}  // namespace snapvol::api
