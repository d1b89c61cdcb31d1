// The built-in IAM policies, "administrator" and "member" (what each allows and denies is
// described in policy.h), their documents and their parsed forms.
#include "iam/policy.h"

namespace snapvol::iam {

const char kAdministratorPolicyJson[] = R"({
  "Version": "2012-10-17",
  "Statement": [
    {"Sid": "AdministratorAll", "Effect": "Allow", "Action": "*", "Resource": "*"}
  ]
})";

const char kMemberPolicyJson[] = R"({
  "Version": "2012-10-17",
  "Statement": [
    {
      "Sid": "DescribeEverythingVisible",
      "Effect": "Allow",
      "Action": "ec2:Describe*",
      "Resource": "*"
    },
    {
      "Sid": "ManageOwnSnapshots",
      "Effect": "Allow",
      "Action": [
        "ec2:CreateSnapshot",
        "ec2:CreateSnapshots",
        "ec2:CreateTags",
        "ec2:DeleteTags",
        "ec2:DeleteSnapshot",
        "ec2:CopySnapshot",
        "ec2:LockSnapshot",
        "ec2:UnlockSnapshot",
        "ec2:ModifySnapshotAttribute",
        "ec2:ResetSnapshotAttribute",
        "ec2:CreateRestoreRequest",
        "ec2:ListSnapshotsInRecycleBin",
        "ec2:RestoreSnapshotFromRecycleBin",
        "ec2:CreateVolume",
        "ec2:AttachVolume",
        "ec2:DetachVolume",
        "ec2:DeleteVolume"
      ],
      "Resource": "arn:aws:ec2:*:${aws:PrincipalAccount}:*"
    },
    {
      "Sid": "WriteOwnSnapshotsBlockByBlock",
      "Effect": "Allow",
      "Action": ["ebs:StartSnapshot", "ebs:PutSnapshotBlock", "ebs:CompleteSnapshot"],
      "Resource": "arn:aws:ec2:*:${aws:PrincipalAccount}:snapshot/*"
    },
    {
      "Sid": "ManageOwnLifecyclePolicies",
      "Effect": "Allow",
      "Action": "dlm:*",
      "Resource": "arn:aws:dlm:*:${aws:PrincipalAccount}:policy/*"
    },
    {
      "Sid": "ReadOwnRecycleBinRules",
      "Effect": "Allow",
      "Action": ["rbin:GetRule", "rbin:ListRules", "rbin:ListTagsForResource"],
      "Resource": "arn:aws:rbin:*:${aws:PrincipalAccount}:rule/*"
    },
    {
      "Sid": "DenyRestoreIntoVolumes",
      "Effect": "Deny",
      "Action": "ec2:CreateVolume",
      "Resource": "arn:aws:ec2:*:*:snapshot/*"
    },
    {
      "Sid": "DenyRestore",
      "Effect": "Deny",
      "Action": [
        "ec2:ReplaceRootVolume",
        "ec2:CreateReplaceRootVolumeTask",
        "ec2:RestoreVolumeFromSnapshot",
        "ebs:GetSnapshotBlock",
        "ebs:ListSnapshotBlocks",
        "ebs:ListChangedBlocks"
      ],
      "Resource": "*"
    }
  ]
})";

std::string_view AdministratorPolicyJson() { return kAdministratorPolicyJson; }
std::string_view MemberPolicyJson() { return kMemberPolicyJson; }

const Policy& AdministratorPolicy() {
  static const Policy* policy =
      new Policy(*Policy::Parse(kAdministratorPolicyJson, "administrator"));
  return *policy;
}

const Policy& MemberPolicy() {
  static const Policy* policy = new Policy(*Policy::Parse(kMemberPolicyJson, "member"));
  return *policy;
}

}  // namespace snapvol::iam
