#!/usr/bin/env python3
"""Feeds the golden EC2 responses in this directory to botocore's EC2 response parser (the one
the AWS CLI and boto3 use, with the EC2 2016-11-15 service model botocore ships) and checks
that each parses to the dict a client expects. Works offline.

Usage: botocore_parse.py TESTDATA_DIR. Exit 0 = pass, 1 = mismatch, 77 = botocore missing.
"""
import datetime
import os
import sys

try:
    import botocore.loaders
    import botocore.model
    import botocore.parsers
except ImportError:
    print("botocore is not installed; skipping")
    sys.exit(77)

UTC = datetime.timezone.utc


def ts(*args):
    return datetime.datetime(*args, tzinfo=UTC)


MAR1 = ts(2026, 3, 1, 2, 0, 0, 123000)
NOV26 = ts(2026, 11, 26, 2, 0, 0)
JAN15 = ts(2026, 1, 15, 9, 30, 0)
FEB1 = ts(2026, 2, 1, 0, 0, 5)

CASES = [
    ("describe_snapshots.xml", "DescribeSnapshots", "59dbff89-35bd-4eac-99ed-be587EXAMPLE", {
        "Snapshots": [
            {
                "SnapshotId": "snap-0123456789abcdef0",
                "VolumeId": "vol-0123456789abcdef0",
                "State": "completed",
                "StartTime": MAR1,
                "Progress": "100%",
                "OwnerId": "123456789012",
                "OwnerAlias": "team-a",
                "VolumeSize": 8,
                "Description": "Nightly <root> & \"home\" it's",
                "Encrypted": True,
                "KmsKeyId": "arn:snapvol:kms::123456789012:key/k1",
                "DataEncryptionKeyId": "dek-0001",
                "StorageTier": "standard",
                "Tags": [{"Key": "Name", "Value": "web-1 root"},
                         {"Key": "Owner", "Value": "team-a"}],
            },
            {
                "SnapshotId": "snap-0123456789abcdef1",
                "VolumeId": "vol-0123456789abcdef0",
                "State": "error",
                "StateMessage": "source volume unreadable",
                "StartTime": NOV26,
                "Progress": "42%",
                "OwnerId": "123456789012",
                "VolumeSize": 16,
                "Description": "",
                "Encrypted": False,
                "Tags": [],
            },
        ],
        "NextToken": "AXRva2Vu",
    }),
    ("create_snapshot.xml", "CreateSnapshot", "req-create", {
        "SnapshotId": "snap-0123456789abcdef2",
        "VolumeId": "vol-0123456789abcdef0",
        "State": "pending",
        "StartTime": NOV26,
        "Progress": "0%",
        "OwnerId": "123456789012",
        "VolumeSize": 8,
        "Description": "by hand",
        "Encrypted": False,
        "Tags": [{"Key": "Name", "Value": "before upgrade"}],
    }),
    ("create_snapshots.xml", "CreateSnapshots", "req-multi", {
        "Snapshots": [
            {
                "SnapshotId": "snap-0123456789abcdef3",
                "VolumeId": "vol-0123456789abcdef0",
                "State": "pending",
                "StartTime": NOV26,
                "Progress": "0%",
                "OwnerId": "123456789012",
                "VolumeSize": 8,
                "Description": "instance i-1",
                "Encrypted": False,
                "Tags": [{"Key": "Owner", "Value": "team-a"}],
            },
            {
                "SnapshotId": "snap-0123456789abcdef4",
                "VolumeId": "vol-0123456789abcdef1",
                "State": "pending",
                "StartTime": NOV26,
                "Progress": "0%",
                "OwnerId": "123456789012",
                "VolumeSize": 100,
                "Description": "instance i-1",
                "Encrypted": True,
                "Tags": [],
            },
        ],
    }),
    ("delete_snapshot.xml", "DeleteSnapshot", "req-del", {}),
    ("copy_snapshot.xml", "CopySnapshot", "req-copy", {"SnapshotId": "snap-0123456789abcdef6", "Tags": []}),
    ("describe_tags.xml", "DescribeTags", "req-tags", {
        "Tags": [
            {"ResourceId": "snap-0123456789abcdef0", "ResourceType": "snapshot",
             "Key": "Name", "Value": "web-1 root"},
            {"ResourceId": "vol-0123456789abcdef0", "ResourceType": "volume",
             "Key": "Owner", "Value": ""},
        ],
        "NextToken": "next",
    }),
    ("describe_volumes.xml", "DescribeVolumes", "req-vols", {
        "Volumes": [
            {
                "VolumeId": "vol-0123456789abcdef0",
                "Size": 8,
                "SnapshotId": "snap-0123456789abcdef0",
                "AvailabilityZone": "local-1a",
                "State": "in-use",
                "CreateTime": JAN15,
                "Attachments": [{
                    "VolumeId": "vol-0123456789abcdef0",
                    "InstanceId": "i-0123456789abcdef0",
                    "Device": "/dev/xvda",
                    "State": "attached",
                    "AttachTime": FEB1,
                    "DeleteOnTermination": True,
                }],
                "VolumeType": "standard",
                "Encrypted": False,
                "MultiAttachEnabled": False,
                "Tags": [{"Key": "Name", "Value": "root"}],
            },
            {
                "VolumeId": "vol-0123456789abcdef1",
                "Size": 100,
                "SnapshotId": "",
                "AvailabilityZone": "local-1a",
                "State": "available",
                "CreateTime": JAN15,
                "Attachments": [],
                "VolumeType": "standard",
                "Encrypted": True,
                "KmsKeyId": "k1",
                "MultiAttachEnabled": False,
                "Tags": [],
            },
        ],
    }),
    ("create_volume.xml", "CreateVolume", "req-cv", {
        "VolumeId": "vol-0123456789abcdef5",
        "Size": 8,
        "SnapshotId": "snap-0123456789abcdef0",
        "AvailabilityZone": "local-1a",
        "State": "creating",
        "CreateTime": NOV26,
        "VolumeType": "standard",
        "Encrypted": False,
        "MultiAttachEnabled": False,
        "Tags": [],
    }),
    ("describe_instances.xml", "DescribeInstances", "req-inst", {
        "Reservations": [{
            "ReservationId": "r-0123456789abcdef0",
            "OwnerId": "123456789012",
            "Groups": [],
            "Instances": [{
                "InstanceId": "i-0123456789abcdef0",
                "State": {"Code": 16, "Name": "running"},
                "InstanceType": "bare-metal",
                "Placement": {"AvailabilityZone": "local-1a", "Tenancy": "default"},
                "RootDeviceName": "/dev/xvda",
                "RootDeviceType": "ebs",
                "BlockDeviceMappings": [{
                    "DeviceName": "/dev/xvda",
                    "Ebs": {
                        "VolumeId": "vol-0123456789abcdef0",
                        "Status": "attached",
                        "AttachTime": FEB1,
                        "DeleteOnTermination": True,
                    },
                }],
                "Tags": [{"Key": "Name", "Value": "web-1"}],
            }],
        }],
    }),
]


def prune(value, shape):
    """Drops expected members the installed botocore's model does not know yet (an older
    Debian botocore may predate e.g. DataEncryptionKeyId); its parser ignores those elements."""
    if shape is None:
        return {}
    if shape.type_name == "structure" and isinstance(value, dict):
        return {k: prune(v, shape.members[k]) for k, v in value.items() if k in shape.members}
    if shape.type_name == "list" and isinstance(value, list):
        return [prune(v, shape.member) for v in value]
    return value


def main():
    testdata = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__))
    loader = botocore.loaders.Loader()
    model = botocore.model.ServiceModel(
        loader.load_service_model("ec2", "service-2", api_version="2016-11-15"), "ec2")
    failures = 0

    def check(name, got, want):
        nonlocal failures
        if got != want:
            failures += 1
            print(f"FAIL {name}:\n  got  {got!r}\n  want {want!r}")
        else:
            print(f"ok   {name}")

    for filename, operation, request_id, want in CASES:
        with open(os.path.join(testdata, filename), "rb") as f:
            body = f.read()
        parser = botocore.parsers.create_parser("ec2")
        shape = model.operation_model(operation).output_shape
        parsed = parser.parse({"body": body, "status_code": 200, "headers": {}}, shape)
        meta = parsed.pop("ResponseMetadata", {})
        check(filename, parsed, prune(want, shape))
        check(filename + " requestId", meta.get("RequestId"), request_id)

    with open(os.path.join(testdata, "error.xml"), "rb") as f:
        body = f.read()
    parser = botocore.parsers.create_parser("ec2")
    shape = model.operation_model("DescribeSnapshots").output_shape
    parsed = parser.parse({"body": body, "status_code": 400, "headers": {}}, shape)
    check("error.xml", parsed.get("Error"), {
        "Code": "InvalidSnapshot.NotFound",
        "Message": "The snapshot 'snap-0123456789abcdef9' does not exist.",
    })
    check("error.xml requestId", parsed.get("ResponseMetadata", {}).get("RequestId"), "req-err")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
