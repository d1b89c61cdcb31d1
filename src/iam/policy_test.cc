#include "iam/policy.h"

#include <gtest/gtest.h>

#include <random>

namespace snapvol::iam {
namespace {

constexpr char kAccount[] = "111122223333";
constexpr char kOther[] = "444455556666";

Policy MustParse(std::string_view json, std::string name = "test") {
  auto p = Policy::Parse(json, std::move(name));
  EXPECT_TRUE(p) << p.error().ToString();
  return p ? *p : *Policy::Parse(kAdministratorPolicyJson);
}

std::string SnapArn(std::string_view account, std::string_view id = "snap-0123456789abcdef0") {
  return Ec2Arn("us-east-1", account, "snapshot", id);
}

RequestContext Request(std::string action, std::vector<std::string> resources = {},
                       std::map<std::string, std::vector<std::string>> conditions = {}) {
  conditions.emplace("aws:PrincipalAccount", std::vector<std::string>{kAccount});
  return {std::move(action), std::move(resources), std::move(conditions)};
}

Decision::Kind Kind(const std::vector<Policy>& policies, const RequestContext& r) {
  return Decide(policies, r).kind;
}

// ---------------------------------------------------------------------------------------------
// Matching

TEST(PolicyMatch, WildcardTable) {
  struct Row {
    const char* pattern;
    const char* text;
    bool ignore_case;
    bool match;
  } rows[] = {
      {"*", "", false, true},
      {"*", "anything", false, true},
      {"", "", false, true},
      {"", "a", false, false},
      {"ec2:Describe*", "ec2:DescribeSnapshots", true, true},
      {"ec2:Describe*", "ec2:describesnapshots", true, true},
      {"ec2:Describe*", "ec2:describesnapshots", false, false},
      {"ec2:Describe*", "ec2:CreateSnapshot", true, false},
      {"ec2:*Snapshot", "ec2:CreateSnapshot", true, true},
      {"ec2:*Snapshot", "ec2:CreateSnapshots", true, false},
      {"ec2:*Snapshot*", "ec2:CreateSnapshots", true, true},
      {"ec2:?reateSnapshot", "ec2:CreateSnapshot", true, true},
      {"ec2:?reateSnapshot", "ec2:reateSnapshot", true, false},
      {"a?c",
       "a\xC3\xA9"
       "c",
       false, true},  // '?' is one character, not one byte
      {"a*b*c", "aXXbYYbZZc", false, true},
      {"a*b*c", "aXXbYYbZZ", false, false},
      {"**a", "bba", false, true},
      {"*a*a*a*a*a*b", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", false, false},
  };
  for (const Row& r : rows) {
    EXPECT_EQ(WildcardMatch(r.pattern, r.text, r.ignore_case), r.match)
        << r.pattern << " vs " << r.text;
  }
}

TEST(PolicyMatch, ArnTable) {
  std::string snap = SnapArn(kAccount);
  EXPECT_TRUE(ArnMatch("*", snap));
  EXPECT_TRUE(ArnMatch("*", "*"));
  EXPECT_TRUE(ArnMatch("arn:aws:ec2:*:111122223333:snapshot/*", snap));
  EXPECT_TRUE(ArnMatch("arn:aws:ec2:us-east-1:111122223333:snapshot/snap-0123456789abcdef0", snap));
  EXPECT_TRUE(ArnMatch("arn:aws:ec2:*:*:*", snap));
  EXPECT_TRUE(ArnMatch("arn:*:ec2:*:111122223333:*", snap));
  EXPECT_FALSE(ArnMatch("arn:aws:ec2:*:444455556666:snapshot/*", snap));
  EXPECT_FALSE(ArnMatch("arn:aws:ec2:*:111122223333:volume/*", snap));
  EXPECT_FALSE(ArnMatch("arn:aws:ec2:*:111122223333:Snapshot/*", snap));  // case-sensitive
  // A '*' inside one segment never swallows the ':' into the next one.
  EXPECT_FALSE(ArnMatch("arn:aws:ec2:*:snapshot/*", snap));
  EXPECT_FALSE(ArnMatch("arn:aws:ec2:*", snap));
  EXPECT_FALSE(ArnMatch("arn:aws:ec2:*:*:*", "*"));
  // The resource part may contain ':' and '/', and '*' there spans them.
  EXPECT_TRUE(ArnMatch("arn:aws:s3:::bucket/*", "arn:aws:s3:::bucket/a/b:c"));
}

// ---------------------------------------------------------------------------------------------
// Evaluation

TEST(PolicyDecide, AdministratorAllowsEverything) {
  std::vector<Policy> admin = {AdministratorPolicy()};
  for (const char* action : {"ec2:CreateVolume", "ec2:CreateReplaceRootVolumeTask",
                             "ebs:GetSnapshotBlock", "dlm:CreateLifecyclePolicy"}) {
    Decision d = Decide(admin, Request(action, {SnapArn(kOther)}));
    EXPECT_EQ(d.kind, Decision::kAllow) << action;
    ASSERT_TRUE(d.statement);
    EXPECT_EQ(d.statement->policy_name, "administrator");
    EXPECT_EQ(d.statement->sid, "AdministratorAll");
  }
}

TEST(PolicyDecide, NoPoliciesIsImplicitDeny) {
  Decision d = Decide({}, Request("ec2:DescribeSnapshots"));
  EXPECT_EQ(d.kind, Decision::kImplicitDeny);
  EXPECT_FALSE(d.statement);
  EXPECT_EQ(d.resource, "*");
}

TEST(PolicyDecide, MemberAllowsOwnSnapshotWork) {
  std::vector<Policy> member = {MemberPolicy()};
  std::string vol = Ec2Arn("us-east-1", kAccount, "volume", "vol-0123456789abcdef0");
  EXPECT_EQ(Kind(member, Request("ec2:DescribeSnapshots")), Decision::kAllow);
  EXPECT_EQ(Kind(member, Request("ec2:describevolumes")), Decision::kAllow);
  EXPECT_EQ(Kind(member, Request("ec2:CreateSnapshot", {vol, SnapArn(kAccount)})),
            Decision::kAllow);
  for (const char* action : {"ec2:CreateSnapshots", "ec2:CreateTags", "ec2:DeleteTags",
                             "ec2:DeleteSnapshot", "ec2:CopySnapshot"}) {
    EXPECT_EQ(Kind(member, Request(action, {SnapArn(kAccount)})), Decision::kAllow) << action;
  }
  Decision d = Decide(member, Request("ec2:DeleteSnapshot", {SnapArn(kAccount)}));
  ASSERT_TRUE(d.statement);
  EXPECT_EQ(d.statement->sid, "ManageOwnSnapshots");
  EXPECT_EQ(d.statement->statement_index, 1u);
  EXPECT_EQ(d.ToString(), "Allow by member[1] (ManageOwnSnapshots)");
}

TEST(PolicyDecide, MemberManagesOnlyItsOwnLifecyclePolicies) {
  std::vector<Policy> member = {MemberPolicy()};
  std::string own = "arn:aws:dlm:us-east-1:" + std::string(kAccount) + ":policy/policy-0123456789abcdef0";
  std::string other = "arn:aws:dlm:us-east-1:999999999999:policy/policy-0123456789abcdef0";
  for (const char* action : {"dlm:CreateLifecyclePolicy", "dlm:UpdateLifecyclePolicy", "dlm:GetLifecyclePolicy"}) {
    EXPECT_EQ(Kind(member, Request(action, {own})), Decision::kAllow) << action;
    EXPECT_EQ(Kind(member, Request(action, {other})), Decision::kImplicitDeny) << action;
  }
}

TEST(PolicyDecide, MemberCannotTouchAnotherAccountsResources) {
  std::vector<Policy> member = {MemberPolicy()};
  Decision d = Decide(member, Request("ec2:DeleteSnapshot", {SnapArn(kOther)}));
  EXPECT_EQ(d.kind, Decision::kImplicitDeny);
  EXPECT_EQ(d.resource, SnapArn(kOther));
  // Every resource must be allowed: one foreign ARN among own ones denies the request.
  d = Decide(member, Request("ec2:CreateTags", {SnapArn(kAccount), SnapArn(kOther, "snap-2")}));
  EXPECT_EQ(d.kind, Decision::kImplicitDeny);
  EXPECT_EQ(d.resource, SnapArn(kOther, "snap-2"));
  // Without the principal's account the variable cannot resolve and nothing is allowed.
  RequestContext no_account{"ec2:DeleteSnapshot", {SnapArn(kAccount)}, {}};
  EXPECT_EQ(Kind(member, no_account), Decision::kImplicitDeny);
}

TEST(PolicyDecide, MemberWritesOwnSnapshotsBlockByBlock) {
  std::vector<Policy> member = {MemberPolicy()};
  for (const char* action : {"ebs:StartSnapshot", "ebs:PutSnapshotBlock", "ebs:CompleteSnapshot"}) {
    SCOPED_TRACE(action);
    EXPECT_EQ(Kind(member, Request(action, {SnapArn(kAccount)})), Decision::kAllow);
    EXPECT_EQ(Kind(member, Request(action, {SnapArn(kOther)})), Decision::kImplicitDeny);
  }
}

TEST(PolicyDecide, MemberRestoreActionsAreExplicitlyDeniedAdminAllowed) {
  std::vector<Policy> member = {MemberPolicy()};
  std::vector<Policy> admin = {AdministratorPolicy()};
  std::vector<Policy> both = {MemberPolicy(), AdministratorPolicy()};
  for (const char* action :
       {"ec2:CreateVolume", "ec2:ReplaceRootVolume", "ec2:CreateReplaceRootVolumeTask",
        "ebs:GetSnapshotBlock", "ebs:ListSnapshotBlocks", "ebs:ListChangedBlocks",
        "EC2:createvolume"}) {
    SCOPED_TRACE(action);
    RequestContext r =
        Request(action, {SnapArn(kAccount)}, {{"ec2:SnapshotId", {"snap-0123456789abcdef0"}}});
    Decision d = Decide(member, r);
    EXPECT_EQ(d.kind, Decision::kExplicitDeny);
    ASSERT_TRUE(d.statement);
    EXPECT_EQ(d.statement->sid, std::string_view(action).find("reateVolume") != std::string_view::npos ||
                                        std::string_view(action).find("reatevolume") != std::string_view::npos
                                    ? "DenyRestoreIntoVolumes"
                                    : "DenyRestore");
    EXPECT_EQ(Kind(admin, r), Decision::kAllow);
    // A member who is also given the administrator policy is still denied: deny wins.
    EXPECT_EQ(Kind(both, r), Decision::kExplicitDeny);
  }
  // An empty volume of its own is not a restore: allowed.
  std::string vol = Ec2Arn("us-east-1", kAccount, "volume", "*");
  EXPECT_EQ(Kind(member, Request("ec2:CreateVolume", {vol})), Decision::kAllow);
  EXPECT_EQ(Kind(member, Request("ec2:CreateVolume", {vol, SnapArn(kAccount)})), Decision::kExplicitDeny);
  // Sharing its own snapshot with another team is a member's act; another team's is not.
  EXPECT_EQ(Kind(member, Request("ec2:ModifySnapshotAttribute", {SnapArn(kAccount)})), Decision::kAllow);
  EXPECT_EQ(Kind(member, Request("ec2:ModifySnapshotAttribute", {SnapArn("210987654321")})),
            Decision::kImplicitDeny);
  // An action the member policy neither allows nor denies is an implicit deny.
  EXPECT_EQ(Kind(member, Request("ec2:RunInstances")), Decision::kImplicitDeny);
}

TEST(PolicyDecide, DenyBeatsAllowWhateverTheOrder) {
  Policy allow = MustParse(R"({"Version":"2012-10-17","Statement":[
      {"Effect":"Allow","Action":"ec2:*","Resource":"*"}]})");
  Policy deny = MustParse(R"({"Version":"2012-10-17","Statement":[
      {"Sid":"NoDelete","Effect":"Deny","Action":"ec2:Delete*","Resource":"*"}]})",
                          "guard");
  for (const auto& policies :
       {std::vector<Policy>{allow, deny}, std::vector<Policy>{deny, allow}}) {
    Decision d = Decide(policies, Request("ec2:DeleteSnapshot", {SnapArn(kAccount)}));
    EXPECT_EQ(d.kind, Decision::kExplicitDeny);
    EXPECT_EQ(d.statement->sid, "NoDelete");
    EXPECT_EQ(d.ToString(), "ExplicitDeny by guard[0] (NoDelete) on " + SnapArn(kAccount));
    EXPECT_EQ(Kind(policies, Request("ec2:CreateSnapshot", {SnapArn(kAccount)})), Decision::kAllow);
  }
}

TEST(PolicyDecide, NotActionAndNotResource) {
  Policy p = MustParse(R"({"Version":"2012-10-17","Statement":[
      {"Effect":"Allow","NotAction":["ec2:Delete*","ebs:*"],"Resource":"*"},
      {"Effect":"Deny","Action":"ec2:CreateTags",
       "NotResource":"arn:aws:ec2:*:111122223333:snapshot/*"}]})");
  std::vector<Policy> ps = {p};
  EXPECT_EQ(Kind(ps, Request("ec2:CreateSnapshot", {SnapArn(kAccount)})), Decision::kAllow);
  EXPECT_EQ(Kind(ps, Request("ec2:DeleteSnapshot", {SnapArn(kAccount)})), Decision::kImplicitDeny);
  EXPECT_EQ(Kind(ps, Request("ebs:GetSnapshotBlock", {SnapArn(kAccount)})),
            Decision::kImplicitDeny);
  EXPECT_EQ(Kind(ps, Request("ec2:CreateTags", {SnapArn(kAccount)})), Decision::kAllow);
  std::string vol = Ec2Arn("us-east-1", kAccount, "volume", "vol-1");
  EXPECT_EQ(Kind(ps, Request("ec2:CreateTags", {vol})), Decision::kExplicitDeny);
}

TEST(PolicyDecide, TagConditions) {
  Policy p = MustParse(R"({"Version":"2012-10-17","Statement":[
      {"Effect":"Allow","Action":"ec2:DeleteSnapshot","Resource":"*",
       "Condition":{"StringEquals":{"aws:ResourceTag/Owner":["alice","bob"]}}},
      {"Effect":"Allow","Action":"ec2:CreateSnapshot","Resource":"*",
       "Condition":{"StringLike":{"aws:RequestTag/Name":"nightly-*"},
                    "StringNotEquals":{"aws:RequestTag/Owner":"root"}}}]})");
  std::vector<Policy> ps = {p};
  auto del = [&](std::map<std::string, std::vector<std::string>> c) {
    return Kind(ps, Request("ec2:DeleteSnapshot", {SnapArn(kAccount)}, std::move(c)));
  };
  EXPECT_EQ(del({{"aws:ResourceTag/Owner", {"alice"}}}), Decision::kAllow);
  EXPECT_EQ(del({{"aws:ResourceTag/Owner", {"bob"}}}), Decision::kAllow);
  EXPECT_EQ(del({{"aws:ResourceTag/Owner", {"Alice"}}}), Decision::kImplicitDeny);  // values
  EXPECT_EQ(del({{"aws:ResourceTag/Owner", {"carol"}}}), Decision::kImplicitDeny);
  EXPECT_EQ(del({}), Decision::kImplicitDeny);                               // missing
  EXPECT_EQ(del({{"AWS:resourcetag/OWNER", {"alice"}}}), Decision::kAllow);  // keys

  auto create = [&](std::map<std::string, std::vector<std::string>> c) {
    return Kind(ps, Request("ec2:CreateSnapshot", {SnapArn(kAccount)}, std::move(c)));
  };
  EXPECT_EQ(create({{"aws:RequestTag/Name", {"nightly-db"}}}), Decision::kAllow);
  EXPECT_EQ(create({{"aws:RequestTag/Name", {"nightly-db"}}, {"aws:RequestTag/Owner", {"root"}}}),
            Decision::kImplicitDeny);
  EXPECT_EQ(create({{"aws:RequestTag/Name", {"manual"}}}), Decision::kImplicitDeny);
  EXPECT_EQ(create({}), Decision::kImplicitDeny);
}

TEST(PolicyDecide, NegatedOperatorsOnMissingKeysAndIfExists) {
  Policy p = MustParse(R"({"Version":"2012-10-17","Statement":[
      {"Sid":"A","Effect":"Allow","Action":"ec2:CreateTags","Resource":"*",
       "Condition":{"StringEqualsIfExists":{"ec2:ResourceTag/Owner":"alice"}}},
      {"Sid":"D","Effect":"Deny","Action":"ec2:DeleteTags","Resource":"*",
       "Condition":{"StringNotLike":{"ec2:ResourceTag/Owner":"team-*"}}}]})");
  std::vector<Policy> ps = {p};
  auto tags = [&](std::string action, std::map<std::string, std::vector<std::string>> c) {
    return Kind(ps, Request(std::move(action), {SnapArn(kAccount)}, std::move(c)));
  };
  EXPECT_EQ(tags("ec2:CreateTags", {}), Decision::kAllow);  // IfExists: absent key passes
  EXPECT_EQ(tags("ec2:CreateTags", {{"ec2:ResourceTag/Owner", {"alice"}}}), Decision::kAllow);
  EXPECT_EQ(tags("ec2:CreateTags", {{"ec2:ResourceTag/Owner", {"bob"}}}), Decision::kImplicitDeny);
  // StringNotLike on an absent key is true, so the Deny applies.
  EXPECT_EQ(tags("ec2:DeleteTags", {}), Decision::kExplicitDeny);
  EXPECT_EQ(tags("ec2:DeleteTags", {{"ec2:ResourceTag/Owner", {"bob"}}}), Decision::kExplicitDeny);
  EXPECT_EQ(tags("ec2:DeleteTags", {{"ec2:ResourceTag/Owner", {"team-a"}}}),
            Decision::kImplicitDeny);
}

TEST(PolicyDecide, NullBoolAndSetQualifiers) {
  Policy p = MustParse(R"({"Version":"2012-10-17","Statement":[
      {"Effect":"Deny","Action":"ec2:CreateVolume","Resource":"*",
       "Condition":{"Null":{"ec2:SnapshotId":"false"}}},
      {"Effect":"Allow","Action":"ec2:CreateVolume","Resource":"*"},
      {"Effect":"Allow","Action":"ec2:CreateTags","Resource":"*",
       "Condition":{"ForAllValues:StringEquals":{"aws:TagKeys":["Name","Owner"]},
                    "Bool":{"aws:SecureTransport":true}}},
      {"Effect":"Allow","Action":"ec2:DeleteTags","Resource":"*",
       "Condition":{"ForAnyValue:StringLike":{"aws:TagKeys":"tmp-*"}}}]})");
  std::vector<Policy> ps = {p};
  auto k = [&](std::string action, std::map<std::string, std::vector<std::string>> c) {
    return Kind(ps, Request(std::move(action), {}, std::move(c)));
  };
  EXPECT_EQ(k("ec2:CreateVolume", {}), Decision::kAllow);
  EXPECT_EQ(k("ec2:CreateVolume", {{"ec2:SnapshotId", {"snap-1"}}}), Decision::kExplicitDeny);
  std::map<std::string, std::vector<std::string>> secure = {{"aws:SecureTransport", {"true"}}};
  auto with = [&](std::vector<std::string> keys) {
    auto c = secure;
    c["aws:TagKeys"] = std::move(keys);
    return c;
  };
  EXPECT_EQ(k("ec2:CreateTags", with({"Name"})), Decision::kAllow);
  EXPECT_EQ(k("ec2:CreateTags", with({"Name", "Owner"})), Decision::kAllow);
  EXPECT_EQ(k("ec2:CreateTags", with({"Name", "Secret"})), Decision::kImplicitDeny);
  EXPECT_EQ(k("ec2:CreateTags", {{"aws:TagKeys", {"Name"}}, {"aws:SecureTransport", {"false"}}}),
            Decision::kImplicitDeny);
  EXPECT_EQ(k("ec2:DeleteTags", {{"aws:TagKeys", {"Name", "tmp-1"}}}), Decision::kAllow);
  EXPECT_EQ(k("ec2:DeleteTags", {{"aws:TagKeys", {"Name"}}}), Decision::kImplicitDeny);
  EXPECT_EQ(k("ec2:DeleteTags", {}), Decision::kImplicitDeny);
}

TEST(PolicyDecide, PolicyVariables) {
  Policy p = MustParse(R"({"Version":"2012-10-17","Statement":[
      {"Effect":"Allow","Action":"ec2:DeleteSnapshot",
       "Resource":"arn:aws:ec2:*:${aws:PrincipalAccount}:snapshot/*",
       "Condition":{"StringEquals":{"aws:ResourceTag/Owner":"${aws:username}"}}},
      {"Effect":"Allow","Action":"ec2:CreateTags",
       "Resource":"arn:aws:ec2:*:${aws:PrincipalAccount}:snapshot/${*}"}]})");
  std::vector<Policy> ps = {p};
  auto c = [](std::string owner) {
    return std::map<std::string, std::vector<std::string>>{
        {"aws:username", {"alice"}}, {"aws:ResourceTag/Owner", {std::move(owner)}}};
  };
  EXPECT_EQ(Kind(ps, Request("ec2:DeleteSnapshot", {SnapArn(kAccount)}, c("alice"))),
            Decision::kAllow);
  EXPECT_EQ(Kind(ps, Request("ec2:DeleteSnapshot", {SnapArn(kAccount)}, c("bob"))),
            Decision::kImplicitDeny);
  EXPECT_EQ(Kind(ps, Request("ec2:DeleteSnapshot", {SnapArn(kOther)}, c("alice"))),
            Decision::kImplicitDeny);
  // ${*} is a literal asterisk, not a wildcard.
  EXPECT_EQ(Kind(ps, Request("ec2:CreateTags", {SnapArn(kAccount, "*")})), Decision::kAllow);
  EXPECT_EQ(Kind(ps, Request("ec2:CreateTags", {SnapArn(kAccount, "snap-1")})),
            Decision::kImplicitDeny);
  // A value with wildcard characters substituted into a pattern matches only literally.
  RequestContext sneaky = Request("ec2:DeleteSnapshot", {SnapArn(kOther)}, c("alice"));
  sneaky.condition_values["aws:PrincipalAccount"] = {"*"};
  EXPECT_EQ(Kind(ps, sneaky), Decision::kImplicitDeny);

  // Version 2008-10-17 (also the default) has no variables: the text is literal.
  Policy old = MustParse(R"({"Statement":[{"Effect":"Allow","Action":"ec2:DeleteSnapshot",
      "Resource":"arn:aws:ec2:*:${aws:PrincipalAccount}:snapshot/*"}]})");
  EXPECT_EQ(old.version(), "2008-10-17");
  EXPECT_EQ(Kind({old}, Request("ec2:DeleteSnapshot", {SnapArn(kAccount)})),
            Decision::kImplicitDeny);
}

// ---------------------------------------------------------------------------------------------
// Parsing

TEST(PolicyParse, BuiltinsParse) {
  EXPECT_EQ(MemberPolicy().name(), "member");
  EXPECT_EQ(MemberPolicy().statements().size(), 7u);  // with ReadOwnRecycleBinRules, WriteOwnSnapshotsBlockByBlock
  EXPECT_TRUE(MemberPolicy().variables_enabled());
  EXPECT_EQ(AdministratorPolicy().statements().size(), 1u);
}

TEST(PolicyParse, StatementAsObjectAndStringLists) {
  Policy p = MustParse(R"({"Version":"2012-10-17","Id":"x","Statement":
      {"Sid":"One","Effect":"Deny","Action":["ec2:A","ec2:B"],"Resource":["*"]}})");
  ASSERT_EQ(p.statements().size(), 1u);
  const Statement& s = p.statements()[0];
  EXPECT_EQ(s.sid, "One");
  EXPECT_EQ(s.effect, Effect::kDeny);
  EXPECT_EQ(s.actions.size(), 2u);
  Policy q = MustParse(R"({"Version":"2012-10-17","Statement":[{"Effect":"Allow",
      "Action":"*","Resource":"*","Condition":{"StringEquals":{"aws:RequestTag/N":[1, true]}}}]})");
  EXPECT_EQ(q.statements()[0].conditions[0].values, (std::vector<std::string>{"1", "true"}));
  EXPECT_EQ(q.statements()[0].conditions[0].key, "aws:requesttag/n");
}

TEST(PolicyParse, MalformedDocumentsNameTheProblem) {
  struct Row {
    const char* json;
    const char* expect_in_message;
  } rows[] = {
      {"", "not valid JSON"},
      {"{", "not valid JSON"},
      {"[]", "must be a JSON object"},
      {R"({"Version":"2012-10-17"})", "Statement is missing"},
      {R"({"Version":"2020-01-01","Statement":[]})", "Version"},
      {R"({"Version":"2012-10-17","Statement":[]})", "non-empty array"},
      {R"({"Version":"2012-10-17","Statement":"x"})", "object or a non-empty array"},
      {R"({"Version":"2012-10-17","Extra":1,"Statement":{}})", "unknown top-level element 'Extra'"},
      {R"({"Version":"2012-10-17","Statement":[{"Effect":"Permit","Action":"*","Resource":"*"}]})",
       "Effect must be \"Allow\" or \"Deny\""},
      {R"({"Version":"2012-10-17","Statement":[{"Effect":"allow","Action":"*","Resource":"*"}]})",
       "Effect must be"},
      {R"({"Version":"2012-10-17","Statement":[{"Action":"*","Resource":"*"}]})",
       "Effect is missing"},
      {R"({"Version":"2012-10-17","Statement":[{"Effect":"Allow","Resource":"*"}]})",
       "Action or NotAction is missing"},
      {R"({"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*"}]})",
       "Resource or NotResource is missing"},
      {R"({"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","NotAction":"*","Resource":"*"}]})",
       "not both"},
      {R"({"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":5,"Resource":"*"}]})",
       "string or an array of strings"},
      {R"({"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["ec2:A",5],"Resource":"*"}]})",
       "only strings"},
      {R"({"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":[],"Resource":"*"}]})",
       "must not be empty"},
      {R"({"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"CreateSnapshot","Resource":"*"}]})",
       "'<service>:<action>'"},
      {R"({"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ec2*:x","Resource":"*"}]})",
       "bad service prefix"},
      {R"({"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"snap-1"}]})",
       "must be '*' or an ARN"},
      {R"({"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*","Principal":"*"}]})",
       "Principal is not allowed"},
      {R"({"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*","Sid":3}]})",
       "Sid must be a string"},
      {R"({"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*","Foo":3}]})",
       "unknown element 'Foo'"},
      {R"({"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*",
         "Condition":{"StringEqualz":{"a:b":"c"}}}]})",
       "condition operator 'StringEqualz'"},
      {R"({"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*",
         "Condition":{"NumericLessThan":{"a:b":"1"}}}]})",
       "not supported"},
      {R"({"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*",
         "Condition":{"NullIfExists":{"a:b":"true"}}}]})",
       "Null takes no"},
      {R"({"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*",
         "Condition":{"Null":{"a:b":"yes"}}}]})",
       "only true or false"},
      {R"({"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*",
         "Condition":{"StringEquals":{"a:b":{"x":1}}}}]})",
       "strings, numbers or booleans"},
      {R"({"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*",
         "Condition":{"StringEquals":{}}}]})",
       "non-empty object"},
      {R"({"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*",
         "Condition":["StringEquals"]}]})",
       "Condition must be an object"},
      {R"({"Version":"2012-10-17","Statement":[{"Effect":"Allow","Effect":"Deny","Action":"*","Resource":"*"}]})",
       "repeats the key \"Effect\""},
  };
  for (const Row& r : rows) {
    auto p = Policy::Parse(r.json, "custom");
    ASSERT_FALSE(p) << r.json;
    EXPECT_EQ(p.error().code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(p.error().message().find(r.expect_in_message), std::string::npos)
        << "message: " << p.error().message() << "\nexpected to contain: " << r.expect_in_message;
    EXPECT_NE(p.error().message().find("policy custom"), std::string::npos);
  }
}

TEST(PolicyParse, ErrorsNameTheStatement) {
  auto p = Policy::Parse(R"({"Version":"2012-10-17","Statement":[
      {"Effect":"Allow","Action":"*","Resource":"*"},
      {"Sid":"Broken","Effect":"Maybe","Action":"*","Resource":"*"}]})");
  ASSERT_FALSE(p);
  EXPECT_NE(p.error().message().find("Statement[1] (Broken)"), std::string::npos)
      << p.error().message();
}

TEST(PolicyParse, SizeLimitCountsCharactersWithoutWhiteSpace) {
  auto doc = [](size_t n_actions, size_t indent) {
    std::string s =
        R"({"Version":"2012-10-17","Statement":[{"Effect":"Allow","Resource":"*","Action":[)";
    for (size_t i = 0; i < n_actions; ++i) {
      if (i) s += ",";
      s += std::string(indent, ' ') + "\"ec2:Action" + std::to_string(100000 + i) + "\"";
    }
    return s + "]}]}";
  };
  // 19 characters per action: 280 actions ≈ 5.4k characters, 340 ≈ 6.5k.
  EXPECT_TRUE(Policy::Parse(doc(280, 0)));
  EXPECT_TRUE(Policy::Parse(doc(280, 200)));  // white space is free ...
  auto big = Policy::Parse(doc(340, 0));
  ASSERT_FALSE(big);
  EXPECT_NE(big.error().message().find("6144"), std::string::npos);
  // ... up to IAM's raw document limit.
  auto huge = Policy::Parse(doc(10, 20000));
  ASSERT_FALSE(huge);
  EXPECT_NE(huge.error().message().find("bytes"), std::string::npos);
}

TEST(PolicyParse, InvalidUtf8AndDeepNestingAreRefusedWithoutThrowing) {
  EXPECT_FALSE(Policy::Parse("{\"Version\":\"2012-10-17\",\"Statement\":{\"Sid\":\"\xff\"}}"));
  std::string deep(3000, '[');
  EXPECT_FALSE(Policy::Parse(deep));
}

TEST(PolicyParse, RandomDamageNeverThrowsOrCrashes) {
  std::string doc = kMemberPolicyJson;
  std::mt19937 rng(42);
  int parsed = 0;
  for (int round = 0; round < 3000; ++round) {
    std::string d = doc;
    int edits = 1 + static_cast<int>(rng() % 3);
    for (int e = 0; e < edits && !d.empty(); ++e) {
      size_t at = rng() % d.size();
      switch (rng() % 3) {
        case 0:
          d[at] = "{}[]\":,*?$ a\\"[rng() % 13];
          break;
        case 1:
          d.erase(at, 1 + rng() % 8);
          break;
        default:
          d.insert(at, 1, static_cast<char>(rng() % 128));
          break;
      }
    }
    auto p = Policy::Parse(d);
    if (p) {
      ++parsed;
      Decide({*p}, Request("ec2:CreateVolume", {SnapArn(kAccount)}));
    } else {
      EXPECT_EQ(p.error().code(), ErrorCode::kInvalidArgument);
    }
  }
  EXPECT_GT(parsed, 0);  // some damage (inside strings) still parses and is evaluated
}

}  // namespace
}  // namespace snapvol::iam
