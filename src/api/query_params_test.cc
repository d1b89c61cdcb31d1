#include "api/query_params.h"

#include <gtest/gtest.h>

#include <cctype>
#include <random>

#include "api/utf8.h"

namespace snapvol::api {
namespace {

QueryParams Parse(std::string_view body) {
  auto p = QueryParams::ParseFormBody(body);
  EXPECT_TRUE(p) << (p ? "" : p.error().code + ": " + p.error().message);
  return p ? std::move(*p) : QueryParams();
}

std::string ErrorCodeOf(std::string_view body, const QueryLimits& limits = {}) {
  auto p = QueryParams::ParseFormBody(body, limits);
  return p ? "ok" : p.error().code;
}

TEST(QueryParams, DecodesPlusAndEscapes) {
  QueryParams p = Parse("Action=DescribeSnapshots&A=a+b&B=a%2Bb&C=%41%62%e2%82%ac&D=%20");
  EXPECT_EQ(*p.Find("Action"), "DescribeSnapshots");
  EXPECT_EQ(*p.Find("A"), "a b");
  EXPECT_EQ(*p.Find("B"), "a+b");
  EXPECT_EQ(*p.Find("C"), "Ab\xE2\x82\xAC");  // hex digits in either case
  EXPECT_EQ(*p.Find("D"), " ");
}

TEST(QueryParams, QueryStringCanKeepPlusLiteral) {
  auto p = QueryParams::ParseQueryString("A=a+b", {}, /*plus_as_space=*/false);
  ASSERT_TRUE(p);
  EXPECT_EQ(*p->Find("A"), "a+b");
  auto q = QueryParams::ParseQueryString("A=a+b");
  ASSERT_TRUE(q);
  EXPECT_EQ(*q->Find("A"), "a b");
}

TEST(QueryParams, KeepsOrderAndEmptyValues) {
  QueryParams p = Parse("Z=1&A=&B&&C=x=y&");
  ASSERT_EQ(p.size(), 4u);
  EXPECT_EQ(p.entries()[0].first, "Z");
  EXPECT_EQ(p.entries()[1], (std::pair<std::string, std::string>("A", "")));
  EXPECT_EQ(p.entries()[2], (std::pair<std::string, std::string>("B", "")));
  EXPECT_EQ(p.entries()[3], (std::pair<std::string, std::string>("C", "x=y")));
  EXPECT_TRUE(Parse("").empty());
  EXPECT_TRUE(Parse("&&").empty());
}

TEST(QueryParams, BadEscapesAreMalformed) {
  EXPECT_EQ(ErrorCodeOf("A=%zz"), "MalformedQueryString");
  EXPECT_EQ(ErrorCodeOf("A=%4"), "MalformedQueryString");    // truncated
  EXPECT_EQ(ErrorCodeOf("A=abc%"), "MalformedQueryString");  // truncated at end
  EXPECT_EQ(ErrorCodeOf("A=%4g"), "MalformedQueryString");
  EXPECT_EQ(ErrorCodeOf("%zz=1"), "MalformedQueryString");
  EXPECT_EQ(ErrorCodeOf("=1"), "MalformedQueryString");  // empty name
  auto p = QueryParams::ParseFormBody("Description=%zz");
  ASSERT_FALSE(p);
  EXPECT_EQ(p.error().http_status, 400);
  EXPECT_NE(p.error().message.find("Description"), std::string::npos);
}

TEST(QueryParams, RejectsInvalidUtf8) {
  EXPECT_EQ(ErrorCodeOf("A=%C3%A9"), "ok");                           // é
  EXPECT_EQ(ErrorCodeOf("A=%F0%9F%98%80"), "ok");                     // U+1F600
  EXPECT_EQ(ErrorCodeOf("A=%C0%AF"), "InvalidParameterValue");        // overlong '/'
  EXPECT_EQ(ErrorCodeOf("A=%E0%80%AF"), "InvalidParameterValue");     // overlong, 3 bytes
  EXPECT_EQ(ErrorCodeOf("A=%F0%80%80%AF"), "InvalidParameterValue");  // overlong, 4 bytes
  EXPECT_EQ(ErrorCodeOf("A=%ED%A0%80"), "InvalidParameterValue");     // surrogate U+D800
  EXPECT_EQ(ErrorCodeOf("A=%F4%90%80%80"), "InvalidParameterValue");  // > U+10FFFF
  EXPECT_EQ(ErrorCodeOf("A=%80"), "InvalidParameterValue");           // stray continuation
  EXPECT_EQ(ErrorCodeOf("A=%C3"), "InvalidParameterValue");           // truncated sequence
  EXPECT_EQ(ErrorCodeOf("A=%E2%82"), "InvalidParameterValue");        // truncated sequence
  EXPECT_EQ(ErrorCodeOf("A=%FF"), "InvalidParameterValue");
  EXPECT_EQ(ErrorCodeOf("A=\xC3"), "InvalidParameterValue");  // raw, not escaped
  EXPECT_EQ(ErrorCodeOf("%C3=1"), "MalformedQueryString");    // in a name
}

TEST(QueryParams, Utf8Boundaries) {
  EXPECT_TRUE(IsValidUtf8("\x7F"));
  EXPECT_TRUE(IsValidUtf8("\xC2\x80"));
  EXPECT_TRUE(IsValidUtf8("\xEF\xBF\xBF"));
  EXPECT_TRUE(IsValidUtf8("\xF4\x8F\xBF\xBF"));  // U+10FFFF
  EXPECT_TRUE(IsValidUtf8("\xED\x9F\xBF"));      // U+D7FF
  EXPECT_FALSE(IsValidUtf8("\xC1\xBF"));
  EXPECT_FALSE(IsValidUtf8("\xED\xBF\xBF"));  // U+DFFF
  EXPECT_FALSE(IsValidUtf8("\xF8\x88\x80\x80\x80"));
}

TEST(QueryParams, DuplicatesAreRejected) {
  auto p = QueryParams::ParseFormBody("SnapshotId.1=a&SnapshotId.1=b");
  ASSERT_FALSE(p);
  EXPECT_EQ(p.error().code, "InvalidParameter");
  EXPECT_NE(p.error().message.find("SnapshotId.1"), std::string::npos);
  // Also when the same name arrives encoded differently.
  EXPECT_EQ(ErrorCodeOf("A=1&%41=2"), "InvalidParameter");
  QueryParams a = Parse("Action=X");
  QueryParams b = Parse("Action=Y&Version=2016-11-15");
  EXPECT_FALSE(a.Merge(b));
  QueryParams c = Parse("Version=2016-11-15");
  EXPECT_TRUE(a.Merge(c));
  EXPECT_EQ(a.size(), 2u);
}

TEST(QueryParams, Limits) {
  QueryLimits limits;
  limits.max_input_bytes = 20;
  limits.max_params = 2;
  limits.max_value_bytes = 4;
  limits.max_name_bytes = 5;
  EXPECT_EQ(ErrorCodeOf("A=1&B=2", limits), "ok");
  EXPECT_EQ(ErrorCodeOf("A=1&B=2&C=3", limits), "RequestEntityTooLarge");
  EXPECT_EQ(ErrorCodeOf(std::string(21, 'a'), limits), "RequestEntityTooLarge");
  EXPECT_EQ(ErrorCodeOf("A=1234", limits), "ok");
  EXPECT_EQ(ErrorCodeOf("A=12345", limits), "InvalidParameterValue");
  EXPECT_EQ(ErrorCodeOf("A=%31%32%33%34", limits), "ok");  // limit counts decoded bytes
  EXPECT_EQ(ErrorCodeOf("ABCDEF=1", limits), "MalformedQueryString");

  auto big = QueryParams::ParseFormBody(std::string((1 << 20) + 1, 'a'));
  ASSERT_FALSE(big);
  EXPECT_EQ(big.error().http_status, 413);
  std::string many;
  for (int i = 1; i <= 10'001; ++i) many += "P." + std::to_string(i) + "=&";
  EXPECT_EQ(ErrorCodeOf(many), "RequestEntityTooLarge");
  many.resize(many.rfind("P.10001"));
  EXPECT_EQ(ErrorCodeOf(many), "ok");
}

TEST(QueryParams, TypedGetters) {
  QueryParams p = Parse("S=x&T=true&F=false&Bad=True&N=42&Neg=-3&Big=99999999999999999999&E=");
  EXPECT_EQ(*p.GetString("S"), "x");
  auto missing = p.GetString("VolumeId");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, "MissingParameter");
  EXPECT_EQ(missing.error().message, "The request must contain the parameter VolumeId");
  EXPECT_EQ(*p.GetString("E"), "");
  EXPECT_FALSE(p.GetOptionalString("Nope"));

  EXPECT_TRUE(*p.GetBool("T"));
  EXPECT_FALSE(*p.GetBool("F"));
  EXPECT_EQ(p.GetBool("Bad").error().code, "InvalidParameterValue");
  EXPECT_EQ(p.GetBool("E").error().code, "InvalidParameterValue");
  EXPECT_EQ(p.GetBool("DryRun").error().code, "MissingParameter");
  EXPECT_FALSE(p.GetOptionalBool("DryRun")->has_value());

  EXPECT_EQ(*p.GetInt("N", 5, 1000), 42);
  EXPECT_EQ(*p.GetInt("Neg", -5, 5), -3);
  auto low = p.GetInt("Neg", 5, 1000);
  ASSERT_FALSE(low);
  EXPECT_EQ(low.error().code, "InvalidParameterValue");
  EXPECT_EQ(low.error().message,
            "Value (-3) for parameter Neg is invalid. Expecting a value between 5 and 1000.");
  EXPECT_EQ(p.GetInt("Big", 0, 1000).error().code, "InvalidParameterValue");
  EXPECT_EQ(p.GetInt("S", 0, 1000).error().code, "InvalidParameterValue");
  EXPECT_EQ(p.GetInt("E", 0, 1000).error().code, "InvalidParameterValue");
  EXPECT_EQ(p.GetInt("MaxResults", 5, 1000).error().code, "MissingParameter");
  EXPECT_FALSE(p.GetOptionalInt("MaxResults", 5, 1000)->has_value());
  QueryParams q = Parse("MaxResults=+5&M2=5%20&M3=1000");
  EXPECT_FALSE(q.GetInt("MaxResults", 5, 1000));
  EXPECT_FALSE(q.GetInt("M2", 5, 1000));
  EXPECT_EQ(*q.GetInt("M3", 5, 1000), 1000);
}

TEST(QueryParams, ListsInIndexOrderWithGaps) {
  QueryParams p = Parse(
      "SnapshotId.10=j&SnapshotId.2=b&SnapshotId.1=a&SnapshotId.7=g&Other=1"
      "&SnapshotIdX.1=no");
  auto list = p.GetList("SnapshotId");
  ASSERT_TRUE(list);
  EXPECT_EQ(*list, (std::vector<std::string>{"a", "b", "g", "j"}));
  EXPECT_TRUE(p.GetList("Owner")->empty());
}

TEST(QueryParams, ListBadIndexes) {
  for (const char* body :
       {"SnapshotId.x=a", "SnapshotId.0=a", "SnapshotId.01=a", "SnapshotId.=a", "SnapshotId.-1=a",
        "SnapshotId.1.Foo=a", "SnapshotId.1234567890=a", "SnapshotId.1e3=a"}) {
    QueryParams p = Parse(body);
    auto list = p.GetList("SnapshotId");
    ASSERT_FALSE(list) << body;
    EXPECT_EQ(list.error().code, "InvalidParameter") << body;
  }
}

TEST(QueryParams, Filters) {
  QueryParams p = Parse(
      "Filter.2.Name=status&Filter.2.Value.1=completed&"
      "Filter.1.Name=tag%3AName&Filter.1.Value.3=c&Filter.1.Value.1=a+b&Filter.1.Value.2=x*");
  auto filters = p.GetFilters();
  ASSERT_TRUE(filters);
  ASSERT_EQ(filters->size(), 2u);
  EXPECT_EQ((*filters)[0], (QueryFilter{"tag:Name", {"a b", "x*", "c"}}));
  EXPECT_EQ((*filters)[1], (QueryFilter{"status", {"completed"}}));

  auto no_name = Parse("Filter.1.Value.1=x").GetFilters();
  ASSERT_FALSE(no_name);
  EXPECT_EQ(no_name.error().code, "MissingParameter");
  EXPECT_EQ(no_name.error().message, "The request must contain the parameter Filter.1.Name");

  auto unknown = Parse("Filter.1.Name=a&Filter.1.Vale.1=x").GetFilters();
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.error().code, "UnknownParameter");
  EXPECT_NE(unknown.error().message.find("Filter.1.Vale.1"), std::string::npos);

  auto bad_value_index = Parse("Filter.1.Name=a&Filter.1.Value.x=1").GetFilters();
  ASSERT_FALSE(bad_value_index);
  EXPECT_EQ(bad_value_index.error().code, "InvalidParameter");
  EXPECT_NE(bad_value_index.error().message.find("Filter.1.Value.x"), std::string::npos);

  EXPECT_EQ(Parse("Filter.x.Name=a").GetFilters().error().code, "InvalidParameter");
  EXPECT_EQ(Parse("Filter.1=a").GetFilters().error().code, "InvalidParameter");
  EXPECT_EQ(Parse("Filter.1.=a").GetFilters().error().code, "InvalidParameter");
}

TEST(QueryParams, TagSpecificationsAndTags) {
  QueryParams p = Parse(
      "TagSpecification.1.ResourceType=snapshot&TagSpecification.1.Tag.2.Key=Owner&"
      "TagSpecification.1.Tag.2.Value=team-a&TagSpecification.1.Tag.1.Key=Name&"
      "TagSpecification.1.Tag.1.Value=nightly&Tag.1.Key=k&ResourceId.1=snap-1");
  auto specs = p.GetTagSpecifications();
  ASSERT_TRUE(specs);
  ASSERT_EQ(specs->size(), 1u);
  EXPECT_EQ((*specs)[0].resource_type, "snapshot");
  EXPECT_EQ((*specs)[0].tags, (std::vector<Ec2Tag>{{"Name", "nightly"}, {"Owner", "team-a"}}));
  auto tags = p.GetTags();
  ASSERT_TRUE(tags);
  EXPECT_EQ(*tags, (std::vector<Ec2Tag>{{"k", ""}}));  // value optional (DeleteTags)

  auto no_type = Parse("TagSpecification.1.Tag.1.Key=a").GetTagSpecifications();
  ASSERT_FALSE(no_type);
  EXPECT_EQ(no_type.error().message,
            "The request must contain the parameter TagSpecification.1.ResourceType");
  auto no_key = Parse("TagSpecification.3.ResourceType=snapshot&TagSpecification.3.Tag.4.Value=v")
                    .GetTagSpecifications();
  ASSERT_FALSE(no_key);
  EXPECT_EQ(no_key.error().message,
            "The request must contain the parameter TagSpecification.3.Tag.4.Key");
}

TEST(QueryParams, InstanceSpecification) {
  QueryParams p = Parse(
      "InstanceSpecification.InstanceId=i-0123&InstanceSpecification.ExcludeBootVolume=true&"
      "InstanceSpecification.ExcludeDataVolumeId.2=vol-b&"
      "InstanceSpecification.ExcludeDataVolumeId.1=vol-a");
  auto spec = p.GetInstanceSpecification();
  ASSERT_TRUE(spec);
  EXPECT_EQ(*spec, (QueryInstanceSpecification{"i-0123", true, {"vol-a", "vol-b"}}));

  auto missing = Parse("Description=x").GetInstanceSpecification();
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().message,
            "The request must contain the parameter InstanceSpecification.InstanceId");
  auto bad_bool = Parse(
                      "InstanceSpecification.InstanceId=i-1&"
                      "InstanceSpecification.ExcludeBootVolume=yes")
                      .GetInstanceSpecification();
  ASSERT_FALSE(bad_bool);
  EXPECT_EQ(bad_bool.error().code, "InvalidParameterValue");
  EXPECT_NE(bad_bool.error().message.find("InstanceSpecification.ExcludeBootVolume"),
            std::string::npos);
}

TEST(QueryParams, RejectUnknown) {
  static constexpr std::string_view kKnown[] = {"Action", "Version", "SnapshotId.", "DryRun"};
  EXPECT_TRUE(Parse("Action=a&Version=v&SnapshotId.1=s&DryRun=false").RejectUnknown(kKnown));
  auto bad = Parse("Action=a&SnapshotIds.1=s").RejectUnknown(kKnown);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, "UnknownParameter");
  EXPECT_EQ(bad.error().message, "The parameter SnapshotIds.1 is not recognized");
  EXPECT_FALSE(Parse("SnapshotId=s").RejectUnknown(kKnown));  // a list needs its index
}

std::string PercentEncode(std::string_view s) {
  static const char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out += {'%', kHex[c >> 4], kHex[c & 15]};
    }
  }
  return out;
}

TEST(QueryParams, RandomRoundTripAndGarbage) {
  std::mt19937 rng(12345);
  const std::vector<std::string> atoms = {"a",
                                          "Z",
                                          "0",
                                          ".",
                                          " ",
                                          "+",
                                          "%",
                                          "&",
                                          "=",
                                          "\xC3\xA9",
                                          "\xF0\x9F\x98\x80",
                                          "<",
                                          "\n",
                                          std::string(1, '\0')};
  for (int iter = 0; iter < 2000; ++iter) {
    // Valid pairs survive encoding and parsing unchanged, in order.
    std::vector<std::pair<std::string, std::string>> pairs;
    std::string body;
    const int n = static_cast<int>(rng() % 6);
    for (int i = 0; i < n; ++i) {
      std::string name = "P" + std::to_string(i), value;
      for (int k = static_cast<int>(rng() % 8); k > 0; --k) value += atoms[rng() % atoms.size()];
      if (!body.empty()) body += '&';
      body += PercentEncode(name) + "=" + PercentEncode(value);
      pairs.emplace_back(std::move(name), std::move(value));
    }
    auto p = QueryParams::ParseFormBody(body);
    ASSERT_TRUE(p) << body;
    EXPECT_EQ(p->entries(), pairs) << body;

    // Arbitrary bytes never crash the parser; errors always carry a 4xx status.
    std::string junk;
    for (int k = static_cast<int>(rng() % 40); k > 0; --k) {
      junk += rng() % 3 ? atoms[rng() % atoms.size()] : std::string(1, static_cast<char>(rng()));
    }
    auto j = QueryParams::ParseFormBody(junk);
    if (!j) {
      EXPECT_GE(j.error().http_status, 400);
      EXPECT_LT(j.error().http_status, 500);
    }
  }
}

}  // namespace
}  // namespace snapvol::api
