// IAM-style identity policies: parsing of IAM JSON policy documents and the allow/deny decision
// for one request.
//
// Semantics follow AWS IAM for identity-based policies:
//  - Action names match case-insensitively, with '*' and '?' wildcards ("ec2:Describe*").
//  - Resources are ARNs matched case-sensitively; "*" matches anything. An ARN pattern is
//    matched segment by segment (partition, service, region, account), wildcards inside a
//    segment never cross a ':'; the last segment (the resource part) is matched whole.
//  - Condition keys match case-insensitively (including the tag-key part of
//    aws:ResourceTag/<key>); values are compared per operator. Values listed for one key are
//    ORed; keys inside one operator and operators inside one Condition are ANDed.
//  - Policy variables ${key} (and ${*}, ${?}, ${$}) are substituted in Resource/NotResource and
//    in condition values when Version is "2012-10-17". A variable whose key is missing from the
//    request (or has several values) never matches: in a Resource it makes the statement not
//    apply, in a condition value it makes that condition false. ${key, 'default'} is not
//    supported.
//  - Decide(): an explicit Deny anywhere wins; otherwise every resource of the request must be
//    allowed by some statement; otherwise the request is implicitly denied.
//
// Supported condition operators: StringEquals, StringNotEquals, StringEqualsIgnoreCase,
// StringNotEqualsIgnoreCase, StringLike, StringNotLike, ArnEquals, ArnLike, ArnNotEquals,
// ArnNotLike, Bool, Null; each except Null also with an "IfExists" suffix and a
// "ForAnyValue:" / "ForAllValues:" prefix. Other IAM operators (Numeric*, Date*, IpAddress,
// BinaryEquals) are refused at parse time as kInvalidArgument rather than silently ignored.
//
// Thread-safety: Policy is an immutable value after Parse and safe to share between threads;
// Decide is a pure function.
#pragma once

#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace snapvol::iam {

// IAM's quota for a managed policy: 6,144 characters, white space not counted.
inline constexpr size_t kMaxPolicyChars = 6144;
// IAM's limit on the raw document, white space included (CreatePolicy's PolicyDocument).
inline constexpr size_t kMaxPolicyDocumentBytes = 131072;

enum class Effect { kAllow, kDeny };

enum class ConditionOperator {
  kStringEquals,
  kStringNotEquals,
  kStringEqualsIgnoreCase,
  kStringNotEqualsIgnoreCase,
  kStringLike,
  kStringNotLike,
  kArnEquals,
  kArnLike,
  kArnNotEquals,
  kArnNotLike,
  kBool,
  kNull,
};

enum class SetQualifier { kNone, kForAnyValue, kForAllValues };

// One key test inside a Condition block, e.g. StringEquals {"aws:ResourceTag/Owner": "team-a"}.
struct ConditionClause {
  std::string operator_name;  // as written, e.g. "ForAnyValue:StringLikeIfExists"
  ConditionOperator op = ConditionOperator::kStringEquals;
  bool if_exists = false;
  SetQualifier qualifier = SetQualifier::kNone;
  std::string key;  // lower-cased
  std::vector<std::string> values;
};

struct Statement {
  std::string sid;  // may be empty
  Effect effect = Effect::kAllow;
  bool not_action = false;             // the list is NotAction
  std::vector<std::string> actions;    // "ec2:CreateSnapshot", "ec2:Describe*", "*"
  bool not_resource = false;           // the list is NotResource
  std::vector<std::string> resources;  // ARN patterns or "*"
  std::vector<ConditionClause> conditions;
};

class Policy {
 public:
  // Parses and validates an IAM JSON policy document. name identifies it in decisions and
  // errors. On failure returns kInvalidArgument whose message names the problem (and the
  // statement index / Sid where there is one). Never throws.
  static Result<Policy> Parse(std::string_view json, std::string name = "");

  const std::string& name() const { return name_; }
  const std::string& version() const { return version_; }  // "2012-10-17" or "2008-10-17"
  bool variables_enabled() const { return version_ == "2012-10-17"; }
  const std::vector<Statement>& statements() const { return statements_; }

 private:
  std::string name_;
  std::string version_;
  std::vector<Statement> statements_;
};

// What a request asks to do, in IAM terms.
struct RequestContext {
  std::string action;  // "ec2:CreateSnapshot"
  // ARNs the request touches. Empty means the action has no resource (like Describe*); it is
  // then evaluated against the resource "*", which only a Resource of "*" (or a pattern that
  // matches the string "*") covers, as in IAM.
  std::vector<std::string> resources;
  // Condition keys and their values, e.g. {"aws:PrincipalAccount", {"123456789012"}},
  // {"aws:ResourceTag/Owner", {"team-a"}}. Keys are matched case-insensitively.
  std::map<std::string, std::vector<std::string>> condition_values;
};

struct StatementRef {
  size_t policy_index = 0;
  std::string policy_name;
  size_t statement_index = 0;
  std::string sid;
};

struct Decision {
  enum Kind { kAllow, kExplicitDeny, kImplicitDeny };
  Kind kind = kImplicitDeny;
  // The deciding statement: the Deny that matched, or the first Allow that covered the first
  // resource. Empty for an implicit deny.
  std::optional<StatementRef> statement;
  // For an implicit deny: the resource that no statement allowed. For an explicit deny: the
  // resource the Deny matched.
  std::string resource;

  bool allowed() const { return kind == kAllow; }
  // One line for the audit log, e.g. "explicit deny by member[2] (DenyRestore) on *".
  std::string ToString() const;
};

const char* DecisionKindName(Decision::Kind kind);  // "Allow", "ExplicitDeny", "ImplicitDeny"

// Evaluates policies (all attached to the caller) for one request.
Decision Decide(const std::vector<Policy>& policies, const RequestContext& request);

// Glob match with '*' (any run, also empty) and '?' (one byte). Linear-time on typical input,
// never exponential.
bool WildcardMatch(std::string_view pattern, std::string_view text, bool ignore_case);
// IAM ARN matching as described at the top of this file.
bool ArnMatch(std::string_view pattern, std::string_view arn);

// The ARN snapvol gives an EC2 resource: "arn:aws:ec2:<region>:<account>:<type>/<id>", e.g.
// Ec2Arn("us-east-1", "123456789012", "snapshot", "snap-0123...").
std::string Ec2Arn(std::string_view region, std::string_view account_id, std::string_view type,
                   std::string_view id);

// Built-in policies, as JSON documents.
//  - administrator: Allow * on *.
//  - member: Allow ec2:Describe* (on *), and CreateSnapshot(s), CreateTags, DeleteTags,
//    DeleteSnapshot, CopySnapshot, ListSnapshotsInRecycleBin, RestoreSnapshotFromRecycleBin on
//    the caller's own account's ARNs ("arn:aws:ec2:*:${aws:PrincipalAccount}:*"); the EBS direct
//    APIs' writes (ebs:StartSnapshot, PutSnapshotBlock, CompleteSnapshot) on its own
//    snapshots; the read-only
//    Recycle Bin actions (rbin:GetRule, ListRules, ListTagsForResource) on its own account's
//    rules, so a member cannot weaken a rule; explicitly Deny every action that restores
//    data: ec2:CreateVolume (all of it: snapvol members never create volumes through the API,
//    and a deny that depended on a SnapshotId key being set would fail open if a handler
//    forgot it), ec2:ReplaceRootVolume, ec2:CreateReplaceRootVolumeTask, ebs:GetSnapshotBlock,
//    ebs:ListSnapshotBlocks, ebs:ListChangedBlocks.
extern const char kAdministratorPolicyJson[];
extern const char kMemberPolicyJson[];
// The parsed built-ins, named "administrator" and "member". Parsed once; never fail.
const Policy& AdministratorPolicy();
const Policy& MemberPolicy();
// Their documents, as `snapvol policy show` prints them.
std::string_view AdministratorPolicyJson();
std::string_view MemberPolicyJson();

}  // namespace snapvol::iam
