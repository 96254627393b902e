"""Multi-Region keys as AWS has them: ReplicateKey into other Regions of the same server, ciphertexts
of any related key decrypted by any other, UpdatePrimaryRegion and back, replicas of keys with
imported material, the deletion order (PendingReplicaDeletion), shared rotation, the transient states
(Creating, Updating) with AWS's key-state rules and messages, two processes on one database, restarts,
the CloudTrail records (ReplicateKey and the replica's CreateKey, both UpdatePrimaryRegion records,
SynchronizeMultiRegionKey), authorization, and the AWS CLI.

The shared server ends transient states after its default second (tests wait for them to end); the
tests of the states themselves run a server whose states last an hour unless its clock is moved on.
"""

from __future__ import annotations

import base64
import json
import os
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from openkms.crypto import symmetric
from tests.conftest import REGION, Server
from tests.e2e.importing import import_material, params, wrap
from tests.e2e.storage_scan import stored_bytes
from tests.e2e.util import audit_list, aws_error, members, retry

EAST, WEST, EU = REGION, "us-west-2", "eu-west-1"
DAY = 86400
DEFAULT_POLICY_STATEMENT = {
    "Sid": "Enable IAM User Permissions",
    "Effect": "Allow",
    "Action": "kms:*",
    "Resource": "*",
}


# --- helpers -----------------------------------------------------------------------------------------


def regional(server: Server, *regions: str) -> list[Any]:
    return [server.client(region=region) for region in regions]


def state(kms: Any, key_id: str) -> str:
    value: str = kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"]
    return value


def wait_state(kms: Any, key_id: str, wanted: str, timeout: float = 15.0) -> None:
    deadline = time.time() + timeout
    while (now := retry(lambda: state(kms, key_id), within=3.0)) != wanted:
        assert time.time() < deadline, (key_id, now, wanted)
        time.sleep(0.1)


def wait_gone(kms: Any, key_id: str, timeout: float = 15.0) -> None:
    deadline = time.time() + timeout
    while True:
        try:
            kms.describe_key(KeyId=key_id)
        except ClientError as exc:
            assert exc.response["Error"]["Code"] == "NotFoundException"
            return
        assert time.time() < deadline, key_id
        time.sleep(0.2)


def config(kms: Any, key_id: str) -> dict[str, Any]:
    value: dict[str, Any] = kms.describe_key(KeyId=key_id)["KeyMetadata"]["MultiRegionConfiguration"]
    return value


def arn(server: Server, region: str, key_id: str) -> str:
    return f"arn:aws:kms:{region}:{server.account_id}:key/{key_id}"


def ref(server: Server, region: str, key_id: str) -> dict[str, str]:
    return {"Arn": arn(server, region, key_id), "Region": region}


def new_primary(kms: Any, **extra: Any) -> str:
    key_id: str = kms.create_key(MultiRegion=True, **extra)["KeyMetadata"]["KeyId"]
    return key_id


def replicate(
    primary: Any, key_id: str, replica: Any, region: str, settled: str = "Enabled", **extra: Any
) -> Any:
    """ReplicateKey, then wait until the replica has left Creating."""
    out = primary.replicate_key(KeyId=key_id, ReplicaRegion=region, **extra)
    wait_state(replica, key_id, settled)
    return out


def err(fn: Callable[..., Any], **kwargs: Any) -> tuple[str, str]:
    e = aws_error(fn, **kwargs)
    return e.code, e.message


def events(server: Server, key_id: str, name: str) -> list[dict[str, Any]]:
    """The key id's records of one event name, newest first (in every Region)."""
    return audit_list(server, "--key-id", key_id, "--event-name", name)


# --- two Regions, one set of keys ------------------------------------------------------------------


def test_replicate_into_two_regions_and_decrypt_each_others_ciphertexts(server: Server) -> None:
    east, west, eu = regional(server, EAST, WEST, EU)
    primary_md = east.create_key(MultiRegion=True, Description="primary")["KeyMetadata"]
    key_id = primary_md["KeyId"]
    assert key_id.startswith("mrk-") and len(key_id) == 36
    with pytest.raises(ClientError) as exc:  # a primary is invisible in other Regions until replicated
        west.describe_key(KeyId=key_id)
    assert exc.value.response["Error"]["Message"] == f"Key '{arn(server, WEST, key_id)}' does not exist"

    out = east.replicate_key(KeyId=key_id, ReplicaRegion=WEST)
    assert members(out) == {"ReplicaKeyMetadata", "ReplicaPolicy"}  # no tags asked for, none listed
    md = out["ReplicaKeyMetadata"]
    assert (md["KeyId"], md["Arn"], md["KeyState"], md["Enabled"]) == (
        key_id,
        arn(server, WEST, key_id),
        "Creating",
        False,
    )
    assert md["Description"] == ""  # not the primary's
    assert "CurrentKeyMaterialId" not in md  # not while Creating
    assert md["MultiRegionConfiguration"] == {
        "MultiRegionKeyType": "REPLICA",
        "PrimaryKey": ref(server, EAST, key_id),
        "ReplicaKeys": [ref(server, WEST, key_id)],
    }
    assert json.loads(out["ReplicaPolicy"]) == {
        "Version": "2012-10-17",
        "Id": "key-default-1",
        "Statement": [
            {**DEFAULT_POLICY_STATEMENT, "Principal": {"AWS": f"arn:aws:iam::{server.account_id}:root"}}
        ],
    }
    wait_state(west, key_id, "Enabled")
    replicate(east, key_id, eu, EU)

    replicas = [ref(server, EU, key_id), ref(server, WEST, key_id)]
    for kms, region in ((east, EAST), (west, WEST), (eu, EU)):
        described = kms.describe_key(KeyId=key_id)["KeyMetadata"]
        assert described["Arn"] == arn(server, region, key_id)
        assert described["CurrentKeyMaterialId"] == primary_md["CurrentKeyMaterialId"]
        assert described["MultiRegionConfiguration"] == {
            "MultiRegionKeyType": "PRIMARY" if region == EAST else "REPLICA",
            "PrimaryKey": ref(server, EAST, key_id),
            "ReplicaKeys": replicas,
        }

    # Ciphertexts of any key of the set decrypt with any other, both ways, by key id or ARN.
    clients = {EAST: east, WEST: west, EU: eu}
    for made_in, maker in clients.items():
        context = {"made-in": made_in}
        blob = maker.encrypt(KeyId=key_id, Plaintext=made_in.encode(), EncryptionContext=context)[
            "CiphertextBlob"
        ]
        for region, kms in clients.items():
            opened = kms.decrypt(CiphertextBlob=blob, EncryptionContext=context)
            assert (opened["Plaintext"], opened["KeyId"]) == (made_in.encode(), arn(server, region, key_id))
            named = kms.decrypt(
                CiphertextBlob=blob, EncryptionContext=context, KeyId=arn(server, region, key_id)
            )
            assert named["Plaintext"] == made_in.encode()
    # GenerateDataKey in one Region, the data key opened in another; ReEncrypt across Regions.
    data_key = west.generate_data_key(KeyId=key_id, KeySpec="AES_256")
    assert east.decrypt(CiphertextBlob=data_key["CiphertextBlob"])["Plaintext"] == data_key["Plaintext"]
    without = eu.generate_data_key_without_plaintext(KeyId=key_id, NumberOfBytes=24)
    assert len(west.decrypt(CiphertextBlob=without["CiphertextBlob"])["Plaintext"]) == 24
    moved = east.re_encrypt(
        CiphertextBlob=data_key["CiphertextBlob"],
        DestinationKeyId=key_id,
        DestinationEncryptionContext={"to": "eu"},
    )
    assert moved["SourceKeyId"] == moved["KeyId"] == arn(server, EAST, key_id)
    opened = eu.decrypt(CiphertextBlob=moved["CiphertextBlob"], EncryptionContext={"to": "eu"})
    assert opened["Plaintext"] == data_key["Plaintext"]
    # In a Region without a key of the set, the key the ciphertext names does not exist.
    blob = east.encrypt(KeyId=key_id, Plaintext=b"x")["CiphertextBlob"]
    assert symmetric.parse_header(blob).key_id == key_id
    assert (
        aws_error(server.client(region="ap-south-1").decrypt, CiphertextBlob=blob).code
        == "AccessDeniedException"
    )


def test_asymmetric_and_hmac_keys_share_their_material(server: Server) -> None:
    east, west = regional(server, EAST, WEST)
    signing = new_primary(east, KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")
    rsa = new_primary(east, KeySpec="RSA_2048", KeyUsage="ENCRYPT_DECRYPT")
    hmac = new_primary(east, KeySpec="HMAC_256", KeyUsage="GENERATE_VERIFY_MAC")
    for key_id in (signing, rsa, hmac):
        md = replicate(east, key_id, west, WEST)["ReplicaKeyMetadata"]
        assert "CurrentKeyMaterialId" not in md  # symmetric keys only
        assert "CurrentKeyMaterialId" not in west.describe_key(KeyId=key_id)["KeyMetadata"]
    for key_id in (signing, rsa):
        assert (
            east.get_public_key(KeyId=key_id)["PublicKey"] == west.get_public_key(KeyId=key_id)["PublicKey"]
        )
    signature = east.sign(KeyId=signing, Message=b"m", SigningAlgorithm="ECDSA_SHA_256")["Signature"]
    assert west.verify(KeyId=signing, Message=b"m", Signature=signature, SigningAlgorithm="ECDSA_SHA_256")[
        "SignatureValid"
    ]
    blob = west.encrypt(KeyId=rsa, Plaintext=b"rsa", EncryptionAlgorithm="RSAES_OAEP_SHA_256")[
        "CiphertextBlob"
    ]
    assert (
        east.decrypt(KeyId=rsa, CiphertextBlob=blob, EncryptionAlgorithm="RSAES_OAEP_SHA_256")["Plaintext"]
        == b"rsa"
    )
    mac = west.generate_mac(KeyId=hmac, Message=b"m", MacAlgorithm="HMAC_SHA_256")["Mac"]
    assert east.verify_mac(KeyId=hmac, Message=b"m", Mac=mac, MacAlgorithm="HMAC_SHA_256")["MacValid"]


# --- what each key of a set has of its own ---------------------------------------------------------


def test_each_key_has_its_own_policy_description_tags_aliases_grants_and_state(server: Server) -> None:
    east, west, eu = regional(server, EAST, WEST, EU)
    key_id = new_primary(east, Description="primary", Tags=[{"TagKey": "t", "TagValue": "primary"}])
    admin = server.client("iam").get_user()["User"]["Arn"]
    own_policy = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "replica admin",
                    "Effect": "Allow",
                    "Principal": {"AWS": admin},
                    "Action": "kms:*",
                    "Resource": "*",
                }
            ],
        }
    )
    out = replicate(
        east,
        key_id,
        west,
        WEST,
        Policy=own_policy,
        Description="replica",
        Tags=[{"TagKey": "t", "TagValue": "replica"}],
    )
    assert out["ReplicaPolicy"] == own_policy
    assert out["ReplicaTags"] == [{"TagKey": "t", "TagValue": "replica"}]
    assert out["ReplicaKeyMetadata"]["Description"] == "replica"
    replicate(east, key_id, eu, EU)
    assert west.get_key_policy(KeyId=key_id)["Policy"] == own_policy
    assert json.loads(east.get_key_policy(KeyId=key_id)["Policy"])["Id"] == "key-default-1"
    assert [t["TagValue"] for t in east.list_resource_tags(KeyId=key_id)["Tags"]] == ["primary"]
    assert [t["TagValue"] for t in west.list_resource_tags(KeyId=key_id)["Tags"]] == ["replica"]
    assert eu.list_resource_tags(KeyId=key_id)["Tags"] == []
    assert [
        k["KeyMetadata"]["Description"]
        for k in (east.describe_key(KeyId=key_id), eu.describe_key(KeyId=key_id))
    ] == ["primary", ""]
    # Usage is each key's own.
    east.encrypt(KeyId=key_id, Plaintext=b"used in the primary's Region")
    deadline = time.time() + 5  # the record of a read-only call is written within 50 ms
    while "KeyLastUsage" not in east.get_key_last_usage(KeyId=key_id):
        assert time.time() < deadline
        time.sleep(0.05)
    assert "KeyLastUsage" not in eu.get_key_last_usage(KeyId=key_id)
    # Aliases, descriptions and grants of one key only.
    alias = "alias/mrk-" + uuid.uuid4().hex[:8]
    west.create_alias(AliasName=alias, TargetKeyId=key_id)
    assert west.describe_key(KeyId=alias)["KeyMetadata"]["Arn"] == arn(server, WEST, key_id)
    assert aws_error(east.describe_key, KeyId=alias).code == "NotFoundException"
    west.update_key_description(KeyId=key_id, Description="renamed")
    assert east.describe_key(KeyId=key_id)["KeyMetadata"]["Description"] == "primary"
    grant = west.create_grant(KeyId=key_id, GranteePrincipal=admin, Operations=["Decrypt"])["GrantId"]
    assert [g["GrantId"] for g in west.list_grants(KeyId=key_id)["Grants"]] == [grant]
    assert east.list_grants(KeyId=key_id)["Grants"] == []
    # Enabling, disabling and deleting one key leaves the others as they are.
    west.disable_key(KeyId=key_id)
    assert (state(east, key_id), state(eu, key_id)) == ("Enabled", "Enabled")
    assert err(west.encrypt, KeyId=key_id, Plaintext=b"x") == (
        "DisabledException",
        f"{arn(server, WEST, key_id)} is disabled.",
    )
    blob = east.encrypt(KeyId=key_id, Plaintext=b"still")["CiphertextBlob"]
    assert eu.decrypt(CiphertextBlob=blob)["Plaintext"] == b"still"
    west.enable_key(KeyId=key_id)
    scheduled = eu.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
    assert scheduled["KeyState"] == "PendingDeletion" and "DeletionDate" in scheduled
    assert state(east, key_id) == "Enabled"
    assert ref(server, EU, key_id) in config(east, key_id)["ReplicaKeys"]  # listed until deleted
    # A Region holds one key of a set, whatever its state; a replica stays in its primary's partition.
    for region in (EAST, WEST, EU):
        e = aws_error(east.replicate_key, KeyId=key_id, ReplicaRegion=region)
        assert (e.code, e.message) == (
            "AlreadyExistsException",
            f"{arn(server, region, key_id)} already exists: the multi-Region key {key_id} has a related key "
            f"in {region}.",
        )
    assert err(east.replicate_key, KeyId=key_id, ReplicaRegion="cn-north-1") == (
        "UnsupportedOperationException",
        f"The replica Region cn-north-1 is not in the partition of {arn(server, EAST, key_id)}.",
    )
    eu.cancel_key_deletion(KeyId=key_id)
    assert state(eu, key_id) == "Disabled"
    # Keys are per Region: the ARN of a replica names its Region.
    assert err(east.describe_key, KeyId=arn(server, WEST, key_id)) == (
        "NotFoundException",
        f"Invalid arn {WEST}",
    )
    assert err(east.update_primary_region, KeyId=key_id, PrimaryRegion="ap-south-1") == (
        "NotFoundException",
        f"Key '{arn(server, 'ap-south-1', key_id)}' does not exist",
    )


def test_replicate_key_and_update_primary_region_follow_the_state_of_the_primary(server: Server) -> None:
    east, west = regional(server, EAST, WEST)

    def replicate_error(key_id: str) -> tuple[str, str]:
        return err(east.replicate_key, KeyId=key_id, ReplicaRegion=EU)

    def update_error(key_id: str) -> tuple[str, str]:
        return err(east.update_primary_region, KeyId=key_id, PrimaryRegion=WEST)

    disabled = new_primary(east)
    east.disable_key(KeyId=disabled)
    pending_deletion = new_primary(east)
    east.schedule_key_deletion(KeyId=pending_deletion, PendingWindowInDays=7)
    pending_import = new_primary(east, Origin="EXTERNAL")
    replica_deletion = new_primary(east)
    replicate(east, replica_deletion, west, WEST)
    assert east.schedule_key_deletion(KeyId=replica_deletion)["KeyState"] == "PendingReplicaDeletion"
    single = east.create_key()["KeyMetadata"]["KeyId"]
    cases = {
        disabled: ("DisabledException", "{arn} is disabled."),
        pending_deletion: ("KMSInvalidStateException", "{arn} is pending deletion."),
        pending_import: ("KMSInvalidStateException", "{arn} is pending import."),
        replica_deletion: ("KMSInvalidStateException", "{arn} is pending replica deletion."),
        single: ("UnsupportedOperationException", "{arn} is not a multi-region primary key."),
    }
    for key_id, (code, message) in cases.items():
        expected = (code, message.format(arn=arn(server, EAST, key_id)))
        assert replicate_error(key_id) == expected, key_id
        assert update_error(key_id) == expected, key_id
    # On a replica, Enabled or not: only a primary key is replicated, or gives its place away.
    assert err(west.replicate_key, KeyId=replica_deletion, ReplicaRegion=EU) == (
        "UnsupportedOperationException",
        f"{arn(server, WEST, replica_deletion)} is not a multi-region primary key.",
    )
    assert err(west.update_primary_region, KeyId=replica_deletion, PrimaryRegion=EAST) == (
        "UnsupportedOperationException",
        f"{arn(server, WEST, replica_deletion)} is not a multi-region primary key.",
    )
    # UpdatePrimaryRegion also needs the replica usable.
    key_id = new_primary(east)
    replicate(east, key_id, west, WEST)
    west.disable_key(KeyId=key_id)
    assert update_error(key_id) == ("DisabledException", f"{arn(server, WEST, key_id)} is disabled.")
    assert config(east, key_id)["PrimaryKey"] == ref(server, EAST, key_id)
    # The Region of the primary key itself: nothing to change.
    east.update_primary_region(KeyId=key_id, PrimaryRegion=EAST)
    assert state(east, key_id) == "Enabled"


# --- UpdatePrimaryRegion --------------------------------------------------------------------------------


def test_update_primary_region_and_back(server: Server) -> None:
    east, west, eu = regional(server, EAST, WEST, EU)
    key_id = new_primary(east)
    replicate(east, key_id, west, WEST)
    replicate(east, key_id, eu, EU)
    before = east.encrypt(KeyId=key_id, Plaintext=b"before")["CiphertextBlob"]

    assert members(east.update_primary_region(KeyId=key_id, PrimaryRegion=WEST)) == set()
    for kms in (east, west):
        wait_state(kms, key_id, "Enabled")
    for kms in (east, west, eu):
        assert config(kms, key_id)["PrimaryKey"] == ref(server, WEST, key_id)
    assert config(east, key_id)["MultiRegionKeyType"] == "REPLICA"
    assert config(west, key_id) == {
        "MultiRegionKeyType": "PRIMARY",
        "PrimaryKey": ref(server, WEST, key_id),
        "ReplicaKeys": [ref(server, EU, key_id), ref(server, EAST, key_id)],  # by Region
    }
    # The former primary is a replica now; the new primary replicates and rotates.
    assert err(east.replicate_key, KeyId=key_id, ReplicaRegion="ap-south-1") == (
        "UnsupportedOperationException",
        f"{arn(server, EAST, key_id)} is not a multi-region primary key.",
    )
    west.rotate_key_on_demand(KeyId=key_id)
    after = west.encrypt(KeyId=key_id, Plaintext=b"after")["CiphertextBlob"]
    for kms in (east, west, eu):
        assert kms.decrypt(CiphertextBlob=before)["Plaintext"] == b"before"
        assert kms.decrypt(CiphertextBlob=after)["Plaintext"] == b"after"
    # ...and back, from the new primary's Region.
    west.update_primary_region(KeyId=arn(server, WEST, key_id), PrimaryRegion=EAST)
    for kms in (east, west):
        wait_state(kms, key_id, "Enabled")
    assert config(eu, key_id)["PrimaryKey"] == ref(server, EAST, key_id)
    assert config(west, key_id)["MultiRegionKeyType"] == "REPLICA"


# --- imported key material -----------------------------------------------------------------------------


def test_replicas_of_imported_material_need_the_same_material(server: Server) -> None:
    east, west = regional(server, EAST, WEST)
    key_id = new_primary(east, Origin="EXTERNAL")
    material = os.urandom(32)
    first = import_material(east, key_id, material)["KeyMaterialId"]
    out = east.replicate_key(KeyId=key_id, ReplicaRegion=WEST)
    assert (out["ReplicaKeyMetadata"]["Origin"], out["ReplicaKeyMetadata"]["KeyState"]) == (
        "EXTERNAL",
        "Creating",
    )
    wait_state(west, key_id, "PendingImport")
    replica_arn = arn(server, WEST, key_id)
    md = west.describe_key(KeyId=key_id)["KeyMetadata"]
    assert "ExpirationModel" not in md and md["CurrentKeyMaterialId"] == first
    assert err(west.encrypt, KeyId=key_id, Plaintext=b"x") == (
        "KMSInvalidStateException",
        f"{replica_arn} is pending import.",
    )
    # Other material is refused; the primary's is accepted, with an expiry of the replica's own.
    with pytest.raises(ClientError) as exc:
        import_material(west, key_id, os.urandom(32))
    assert exc.value.response["Error"] == {
        "Code": "IncorrectKeyMaterialException",
        "Message": f"The key material is not the key material associated with {replica_arn}.",
    }
    assert state(west, key_id) == "PendingImport"
    valid_to = int(time.time()) + 30 * DAY
    imported = import_material(
        west, key_id, material, ExpirationModel="KEY_MATERIAL_EXPIRES", ValidTo=valid_to
    )
    assert imported["KeyMaterialId"] == first
    replica_md = west.describe_key(KeyId=key_id)["KeyMetadata"]
    assert (replica_md["KeyState"], replica_md["ExpirationModel"]) == ("Enabled", "KEY_MATERIAL_EXPIRES")
    assert east.describe_key(KeyId=key_id)["KeyMetadata"]["ExpirationModel"] == "KEY_MATERIAL_DOES_NOT_EXPIRE"
    old = east.encrypt(KeyId=key_id, Plaintext=b"east")["CiphertextBlob"]
    assert west.decrypt(CiphertextBlob=old)["Plaintext"] == b"east"
    assert (
        east.decrypt(CiphertextBlob=west.encrypt(KeyId=key_id, Plaintext=b"west")["CiphertextBlob"])[
            "Plaintext"
        ]
        == b"west"
    )

    # New material goes into the primary first, then into every replica; the primary then rotates all.
    second_material = os.urandom(32)
    with pytest.raises(ClientError) as exc:
        import_material(west, key_id, second_material, ImportType="NEW_KEY_MATERIAL")
    assert exc.value.response["Error"]["Message"] == f"{replica_arn} is not a multi-region primary key."
    second = import_material(east, key_id, second_material, ImportType="NEW_KEY_MATERIAL")["KeyMaterialId"]

    def material_states(kms: Any) -> dict[str, tuple[str, str]]:
        rotations = kms.list_key_rotations(KeyId=key_id, IncludeKeyMaterial="ALL_KEY_MATERIAL")["Rotations"]
        return {r["KeyMaterialId"]: (r["KeyMaterialState"], r["ImportState"]) for r in rotations}

    assert material_states(east)[second] == ("PENDING_MULTI_REGION_IMPORT_AND_ROTATION", "IMPORTED")
    assert material_states(west)[second] == ("PENDING_ROTATION", "PENDING_IMPORT")
    assert err(east.rotate_key_on_demand, KeyId=key_id) == (
        "KMSInvalidStateException",
        f"No available key material pending rotation for the key: {arn(server, EAST, key_id)}.",
    )
    with pytest.raises(ClientError) as exc:
        import_material(west, key_id, os.urandom(32))
    assert exc.value.response["Error"]["Code"] == "IncorrectKeyMaterialException"
    import_material(west, key_id, second_material, ImportType="EXISTING_KEY_MATERIAL")
    assert material_states(east)[second] == ("PENDING_ROTATION", "IMPORTED")
    assert material_states(west)[second] == ("PENDING_ROTATION", "IMPORTED")
    assert err(west.rotate_key_on_demand, KeyId=key_id) == (
        "UnsupportedOperationException",
        f"{replica_arn} is not a multi-region primary key.",
    )
    east.rotate_key_on_demand(KeyId=key_id)
    for kms in (east, west):
        assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["CurrentKeyMaterialId"] == second
        assert material_states(kms) == {first: ("NON_CURRENT", "IMPORTED"), second: ("CURRENT", "IMPORTED")}
    new = west.encrypt(KeyId=key_id, Plaintext=b"rotated")["CiphertextBlob"]
    assert symmetric.parse_header(new).material_id == second
    assert east.decrypt(CiphertextBlob=new)["Plaintext"] == b"rotated"
    assert west.decrypt(CiphertextBlob=old)["Plaintext"] == b"east"
    # Neither material is stored in plaintext, in any Region's rows.
    stored = stored_bytes(server)
    assert material not in stored and second_material not in stored


# --- rotation ------------------------------------------------------------------------------------------


def test_rotating_the_primary_rotates_every_replica(server: Server) -> None:
    east, west, eu = regional(server, EAST, WEST, EU)
    key_id = new_primary(east)
    replicate(east, key_id, west, WEST)
    replicate(east, key_id, eu, EU)
    old = east.encrypt(KeyId=key_id, Plaintext=b"old")["CiphertextBlob"]
    synced = len(events(server, key_id, "SynchronizeMultiRegionKey"))

    east.rotate_key_on_demand(KeyId=key_id)
    rotations = east.list_key_rotations(KeyId=key_id)["Rotations"]
    assert [r["RotationType"] for r in rotations] == ["ON_DEMAND"]
    for kms in (west, eu):
        assert kms.list_key_rotations(KeyId=key_id)["Rotations"] == rotations
        assert (
            kms.describe_key(KeyId=key_id)["KeyMetadata"]["CurrentKeyMaterialId"]
            == rotations[0]["KeyMaterialId"]
        )
    made = {
        name: kms.encrypt(KeyId=key_id, Plaintext=name.encode())["CiphertextBlob"]
        for name, kms in (("east", east), ("west", west))
    }
    for blob in made.values():
        assert symmetric.parse_header(blob).material_id == rotations[0]["KeyMaterialId"]
    for kms in (east, west, eu):
        assert kms.decrypt(CiphertextBlob=old)["Plaintext"] == b"old"
        for name, blob in made.items():
            assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == name.encode()
    assert len(events(server, key_id, "SynchronizeMultiRegionKey")) == synced + 1

    # Rotation is set on the primary only, and shared.
    replica_arn = arn(server, WEST, key_id)
    for call in (west.rotate_key_on_demand, west.enable_key_rotation, west.disable_key_rotation):
        assert err(call, KeyId=key_id) == (
            "UnsupportedOperationException",
            f"{replica_arn} is not a multi-region primary key.",
        )
    east.enable_key_rotation(KeyId=key_id, RotationPeriodInDays=100)
    status = east.get_key_rotation_status(KeyId=key_id)
    assert (status["KeyRotationEnabled"], status["RotationPeriodInDays"]) == (True, 100)
    for kms, region in ((west, WEST), (eu, EU)):
        replica_status = kms.get_key_rotation_status(KeyId=key_id)
        assert replica_status == {
            **status,
            "KeyId": arn(server, region, key_id),
            "ResponseMetadata": replica_status["ResponseMetadata"],
        }
    east.disable_key_rotation(KeyId=key_id)
    assert west.get_key_rotation_status(KeyId=key_id)["KeyRotationEnabled"] is False
    assert len(events(server, key_id, "SynchronizeMultiRegionKey")) == synced + 3


# --- CloudTrail ----------------------------------------------------------------------------------------


def test_cloudtrail_records(server: Server) -> None:
    east, west = regional(server, EAST, WEST)
    key_id = new_primary(east)
    primary_arn, replica_arn = arn(server, EAST, key_id), arn(server, WEST, key_id)
    east.replicate_key(
        KeyId=key_id, ReplicaRegion=WEST, Description="dr", Tags=[{"TagKey": "a", "TagValue": "b"}]
    )
    [replicated] = events(server, key_id, "ReplicateKey")
    assert replicated["awsRegion"] == EAST
    assert replicated["requestParameters"] == {
        "keyId": key_id,
        "replicaRegion": WEST,
        "description": "dr",
        "tags": [{"tagKey": "a", "tagValue": "b"}],
    }
    response = replicated["responseElements"]
    assert (response["replicaKeyMetadata"]["arn"], response["replicaKeyMetadata"]["keyState"]) == (
        replica_arn,
        "Creating",
    )
    assert json.loads(response["replicaPolicy"])["Id"] == "key-default-1"
    assert response["replicaTags"] == [{"tagKey": "a", "tagValue": "b"}]
    assert [r["ARN"] for r in replicated["resources"]] == [primary_arn]
    assert (replicated["readOnly"], replicated["eventType"]) == (False, "AwsApiCall")
    # The replica's CreateKey, in its Region, as the caller invoked through KMS.
    [created] = [r for r in events(server, key_id, "CreateKey") if r["awsRegion"] == WEST]
    assert created["requestID"] == replicated["requestID"]
    assert created["userIdentity"] == {**replicated["userIdentity"], "invokedBy": "kms.amazonaws.com"}
    assert created["requestParameters"]["multiRegion"] is True
    assert created["requestParameters"]["description"] == "dr"
    assert created["responseElements"]["keyMetadata"]["arn"] == replica_arn
    assert [r["ARN"] for r in created["resources"]] == [replica_arn]
    # The synchronization that ends Creating, in the primary's Region, by AWS itself.
    wait_state(west, key_id, "Enabled")
    [synced] = events(server, key_id, "SynchronizeMultiRegionKey")
    assert synced["userIdentity"] == {"accountId": server.account_id, "invokedBy": "AWS Internal"}
    assert (synced["awsRegion"], synced["sourceIPAddress"], synced["eventType"]) == (
        EAST,
        "AWS Internal",
        "AwsApiCall",
    )
    assert (synced["requestParameters"], synced["responseElements"]) == (None, {"keyId": primary_arn})
    assert [r["ARN"] for r in synced["resources"]] == [primary_arn]

    # UpdatePrimaryRegion: one record in each Region.
    east.update_primary_region(KeyId=key_id, PrimaryRegion=WEST)
    records = {r["awsRegion"]: r for r in events(server, key_id, "UpdatePrimaryRegion")}
    assert set(records) == {EAST, WEST}
    old, new = records[EAST], records[WEST]
    # (As for every call without a response since December 2022, the key's ARN in responseElements.)
    assert old["requestParameters"] == {"keyId": key_id, "primaryRegion": WEST}
    assert old["responseElements"] == {"keyId": primary_arn}
    assert [r["ARN"] for r in old["resources"]] == [primary_arn]
    assert new["requestParameters"] == {"keyId": replica_arn, "primaryRegion": WEST}
    assert new["responseElements"] == {"keyId": replica_arn} and "resources" not in new
    assert new["userIdentity"]["invokedBy"] == "kms.amazonaws.com"
    assert new["requestID"] == old["requestID"]
    wait_state(east, key_id, "Enabled")
    wait_state(west, key_id, "Enabled")
    latest = events(server, key_id, "SynchronizeMultiRegionKey")[0]  # newest first: the new primary's
    assert (latest["awsRegion"], latest["responseElements"]) == (WEST, {"keyId": replica_arn})


# --- authorization ---------------------------------------------------------------------------------------


def test_permissions_of_both_regions(server: Server) -> None:
    east, west = regional(server, EAST, WEST)
    iam = server.client("iam")
    name = "mrk-" + uuid.uuid4().hex[:8]
    user_arn = iam.create_user(UserName=name)["User"]["Arn"]
    access = iam.create_access_key(UserName=name)["AccessKey"]
    user = server.client(access_key=access["AccessKeyId"], secret_key=access["SecretAccessKey"])

    def allow(*statements: dict[str, Any]) -> None:
        document = {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Resource": "*", **s} for s in statements],
        }
        iam.put_user_policy(UserName=name, PolicyName="p", PolicyDocument=json.dumps(document))

    key_id = new_primary(east)
    primary_arn = arn(server, EAST, key_id)
    # kms:ReplicateKey on the primary, limited to one replica Region with kms:ReplicaRegion...
    allow(
        {"Action": "kms:ReplicateKey", "Condition": {"StringEquals": {"kms:ReplicaRegion": WEST}}},
        {"Action": ["kms:DescribeKey", "kms:UpdatePrimaryRegion"]},
    )
    assert err(retry_denied(user.replicate_key), KeyId=key_id, ReplicaRegion=EU) == (
        "AccessDeniedException",
        f"User: {user_arn} is not authorized to perform: kms:ReplicateKey on resource: {primary_arn} "
        "because no identity-based policy allows the kms:ReplicateKey action",
    )
    # ...and kms:CreateKey in the replica's Region.
    assert err(user.replicate_key, KeyId=key_id, ReplicaRegion=WEST) == (
        "AccessDeniedException",
        f"User: {user_arn} is not authorized to perform: kms:CreateKey on resource: * "
        "because no identity-based policy allows the kms:CreateKey action",
    )
    allow(
        {"Action": "kms:ReplicateKey", "Condition": {"StringEquals": {"kms:ReplicaRegion": WEST}}},
        {"Action": ["kms:DescribeKey", "kms:UpdatePrimaryRegion"]},
        {"Action": "kms:CreateKey", "Condition": {"StringEquals": {"aws:RequestedRegion": WEST}}},
    )
    admin = iam.get_user()["User"]["Arn"]
    replica_policy = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Principal": {"AWS": admin}, "Action": "kms:*", "Resource": "*"}
            ],
        }
    )
    retry(
        lambda: user.replicate_key(
            KeyId=key_id, ReplicaRegion=WEST, Policy=replica_policy, BypassPolicyLockoutSafetyCheck=True
        ),
        within=3.0,
    )
    wait_state(west, key_id, "Enabled")
    # UpdatePrimaryRegion needs kms:UpdatePrimaryRegion on both keys: the replica's policy names only
    # the administrator.
    assert err(user.update_primary_region, KeyId=key_id, PrimaryRegion=WEST) == (
        "AccessDeniedException",
        f"User: {user_arn} is not authorized to perform: kms:UpdatePrimaryRegion on resource: "
        f"{arn(server, WEST, key_id)} because no resource-based policy allows the "
        "kms:UpdatePrimaryRegion action",
    )
    assert config(east, key_id)["MultiRegionKeyType"] == "PRIMARY"


def retry_denied(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` called until a new identity policy is in force (it fails until then with another error)."""

    def call(**kwargs: Any) -> Any:
        deadline = time.time() + 3
        while True:
            try:
                return fn(**kwargs)
            except ClientError as exc:
                message = exc.response["Error"].get("Message", "")
                if "kms:ReplicateKey" in message or time.time() > deadline:
                    raise
                time.sleep(0.05)

    return call


# --- two processes ---------------------------------------------------------------------------------


def test_two_processes_on_one_database(server: Server, twin: Server) -> None:
    a_east, a_west = regional(server, EAST, WEST)
    b_east, b_west = regional(twin, EAST, WEST)
    key_id = new_primary(a_east)
    a_east.replicate_key(KeyId=key_id, ReplicaRegion=WEST)
    wait_state(b_west, key_id, "Enabled")
    blob = retry(lambda: b_west.encrypt(KeyId=key_id, Plaintext=b"twin")["CiphertextBlob"])
    assert a_east.decrypt(CiphertextBlob=blob)["Plaintext"] == b"twin"
    time.sleep(2.5)  # both processes run the synchronization job: the set is synchronized once
    assert len(events(server, key_id, "SynchronizeMultiRegionKey")) == 1

    b_east.update_primary_region(KeyId=key_id, PrimaryRegion=WEST)
    deadline = time.time() + 5
    while config(a_west, key_id)["MultiRegionKeyType"] != "PRIMARY":
        assert time.time() < deadline
        time.sleep(0.05)
    wait_state(a_west, key_id, "Enabled")
    wait_state(b_east, key_id, "Enabled")
    assert len(events(server, key_id, "SynchronizeMultiRegionKey")) == 2
    a_west.rotate_key_on_demand(KeyId=key_id)
    rotated = a_west.encrypt(KeyId=key_id, Plaintext=b"rotated")["CiphertextBlob"]
    assert b_east.decrypt(CiphertextBlob=rotated)["Plaintext"] == b"rotated"
    retry(lambda: b_east.list_key_rotations(KeyId=key_id)["Rotations"][0])
    b_west.update_primary_region(KeyId=key_id, PrimaryRegion=EAST)
    wait_state(a_east, key_id, "Enabled")
    assert retry(lambda: config(b_west, key_id))["PrimaryKey"] == ref(server, EAST, key_id)


# --- the AWS CLI ---------------------------------------------------------------------------------------


def test_aws_cli(server: Server, tmp_path: Path) -> None:
    def aws(*args: str) -> dict[str, Any]:
        out = server.aws("kms", *args)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout) if out.stdout.strip() else {}

    key_id = aws("create-key", "--multi-region", "--description", "cli")["KeyMetadata"]["KeyId"]
    replica = aws(
        "replicate-key", "--key-id", key_id, "--replica-region", WEST, "--description", "cli replica"
    )
    assert replica["ReplicaKeyMetadata"]["Arn"] == arn(server, WEST, key_id)
    assert replica["ReplicaKeyMetadata"]["MultiRegionConfiguration"]["MultiRegionKeyType"] == "REPLICA"
    deadline = time.time() + 15
    while aws("describe-key", "--key-id", key_id, "--region", WEST)["KeyMetadata"]["KeyState"] != "Enabled":
        assert time.time() < deadline
        time.sleep(0.2)
    secret = tmp_path / "secret.txt"
    secret.write_bytes(b"from the CLI")
    blob = aws("encrypt", "--key-id", key_id, "--plaintext", f"fileb://{secret}")["CiphertextBlob"]
    sealed = tmp_path / "sealed.bin"
    sealed.write_bytes(base64.b64decode(blob))
    opened = aws("decrypt", "--ciphertext-blob", f"fileb://{sealed}", "--region", WEST)
    assert base64.b64decode(opened["Plaintext"]) == b"from the CLI"
    assert aws("update-primary-region", "--key-id", key_id, "--primary-region", WEST) == {}
    described = aws("describe-key", "--key-id", key_id, "--region", WEST)["KeyMetadata"]
    assert described["MultiRegionConfiguration"]["MultiRegionKeyType"] == "PRIMARY"


# --- the transient states, on a server where they last until its clock moves on -------------------------


@pytest.fixture
def slow_server(own_server: Server, tmp_path: Path) -> tuple[Server, Path]:
    """Creating and Updating last an hour here (--multi-region-delay 3600) unless the clock moves on;
    the server answers for four Regions only."""
    clock = tmp_path / "clock-offset"
    clock.write_text("0")
    own_server.env["OPENKMS_CLOCK_OFFSET_FILE"] = str(clock)
    own_server.extra_args = ["--multi-region-delay", "3600"]
    for region in (EAST, WEST, EU, "ap-southeast-2"):
        own_server.extra_args += ["--region", region]
    own_server.restart()
    return own_server, clock


def test_creating_and_updating_as_the_key_state_table_has_them(slow_server: tuple[Server, Path]) -> None:
    server, clock = slow_server
    east, west = regional(server, EAST, WEST)
    key_id = new_primary(east)
    blob = east.encrypt(KeyId=key_id, Plaintext=b"made before")["CiphertextBlob"]
    external = new_primary(east, Origin="EXTERNAL")
    material = os.urandom(32)
    import_material(east, external, material)
    assert err(east.replicate_key, KeyId=key_id, ReplicaRegion="ap-south-1") == (
        "UnsupportedOperationException",
        f"This service does not serve the Region ap-south-1: {arn(server, EAST, key_id)} cannot be "
        "replicated there.",
    )
    east.replicate_key(KeyId=key_id, ReplicaRegion=WEST)
    east.replicate_key(KeyId=external, ReplicaRegion=WEST)
    creating = f"{arn(server, WEST, key_id)} is creating."
    external_creating = f"{arn(server, WEST, external)} is creating."
    token = params(east, external)  # the primary's import parameters (refused for the state first)
    refused: dict[str, tuple[Callable[..., Any], dict[str, Any], str]] = {
        "Encrypt": (west.encrypt, {"KeyId": key_id, "Plaintext": b"x"}, creating),
        "Decrypt": (west.decrypt, {"CiphertextBlob": blob}, creating),
        "ReEncrypt": (west.re_encrypt, {"CiphertextBlob": blob, "DestinationKeyId": key_id}, creating),
        "GenerateDataKey": (west.generate_data_key, {"KeyId": key_id, "KeySpec": "AES_256"}, creating),
        "CreateGrant": (
            west.create_grant,
            {
                "KeyId": key_id,
                "GranteePrincipal": f"arn:aws:iam::{server.account_id}:root",
                "Operations": ["Decrypt"],
            },
            creating,
        ),
        "EnableKey": (west.enable_key, {"KeyId": key_id}, creating),
        "DisableKey": (west.disable_key, {"KeyId": key_id}, creating),
        "EnableKeyRotation": (west.enable_key_rotation, {"KeyId": key_id}, creating),
        "DisableKeyRotation": (west.disable_key_rotation, {"KeyId": key_id}, creating),
        "RotateKeyOnDemand": (west.rotate_key_on_demand, {"KeyId": key_id}, creating),
        "GetParametersForImport": (
            west.get_parameters_for_import,
            {"KeyId": external, "WrappingAlgorithm": "RSAES_OAEP_SHA_256", "WrappingKeySpec": "RSA_2048"},
            external_creating,
        ),
        "ImportKeyMaterial": (
            west.import_key_material,
            {
                "KeyId": external,
                "ImportToken": token["ImportToken"],
                "EncryptedKeyMaterial": wrap("RSAES_OAEP_SHA_256", token["PublicKey"], material),
                "ExpirationModel": "KEY_MATERIAL_DOES_NOT_EXPIRE",
            },
            external_creating,
        ),
        "DeleteImportedKeyMaterial": (
            west.delete_imported_key_material,
            {"KeyId": external},
            external_creating,
        ),
    }
    for operation, (call, kwargs, message) in refused.items():
        assert err(call, **kwargs) == ("KMSInvalidStateException", message), operation
    assert err(west.cancel_key_deletion, KeyId=key_id) == (
        "KMSInvalidStateException",
        f"{arn(server, WEST, key_id)} is not pending deletion (or pending replica deletion).",
    )
    assert err(west.replicate_key, KeyId=key_id, ReplicaRegion=EU) == (
        "UnsupportedOperationException",
        f"{arn(server, WEST, key_id)} is not a multi-region primary key.",
    )
    # A key being created can be managed.
    md = west.describe_key(KeyId=key_id)["KeyMetadata"]
    assert (md["KeyState"], md["Enabled"], "CurrentKeyMaterialId" in md) == ("Creating", False, False)
    west.tag_resource(KeyId=key_id, Tags=[{"TagKey": "k", "TagValue": "v"}])
    west.untag_resource(KeyId=key_id, TagKeys=["k"])
    west.update_key_description(KeyId=key_id, Description="being created")
    west.create_alias(AliasName="alias/creating-" + uuid.uuid4().hex[:8], TargetKeyId=key_id)
    west.put_key_policy(
        KeyId=key_id, PolicyName="default", Policy=west.get_key_policy(KeyId=key_id)["Policy"]
    )
    assert west.get_key_rotation_status(KeyId=key_id)["KeyRotationEnabled"] is False
    assert west.list_key_rotations(KeyId=key_id)["Rotations"] == []

    # A restart keeps the state; the delay over, the replicas are Enabled and PendingImport.
    server.restart()
    east, west = regional(server, EAST, WEST)
    assert state(west, key_id) == "Creating"
    clock.write_text(str(3700))
    wait_state(west, key_id, "Enabled")
    wait_state(west, external, "PendingImport")
    assert west.decrypt(CiphertextBlob=blob)["Plaintext"] == b"made before"
    assert [e["awsRegion"] for e in events(server, key_id, "SynchronizeMultiRegionKey")] == [EAST]
    import_material(west, external, material)
    spare = params(west, external)  # import parameters taken before the update, used during it

    # Updating: both keys of the update, usable but not managed.
    for key in (key_id, external):
        east.update_primary_region(KeyId=key, PrimaryRegion=WEST)
    for kms, region in ((east, EAST), (west, WEST)):
        updating = f"{arn(server, region, key_id)} is updating."
        md = kms.describe_key(KeyId=key_id)["KeyMetadata"]
        assert (md["KeyState"], md["Enabled"]) == ("Updating", False)
        assert md["MultiRegionConfiguration"]["PrimaryKey"] == ref(server, WEST, key_id)
        made = kms.encrypt(KeyId=key_id, Plaintext=region.encode())["CiphertextBlob"]
        assert kms.decrypt(CiphertextBlob=made)["Plaintext"] == region.encode()
        assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"made before"
        kms.generate_data_key(KeyId=key_id, KeySpec="AES_256")
        kms.create_grant(
            KeyId=key_id, GranteePrincipal=f"arn:aws:iam::{server.account_id}:root", Operations=["Decrypt"]
        )
        for call in (kms.enable_key, kms.disable_key):
            assert err(call, KeyId=key_id) == ("KMSInvalidStateException", updating)
        assert err(kms.schedule_key_deletion, KeyId=key_id) == ("KMSInvalidStateException", updating)
        external_updating = f"{arn(server, region, external)} is updating."
        assert err(
            kms.get_parameters_for_import,
            KeyId=external,
            WrappingAlgorithm="RSAES_OAEP_SHA_256",
            WrappingKeySpec="RSA_2048",
        ) == ("KMSInvalidStateException", external_updating)
        assert err(kms.delete_imported_key_material, KeyId=external) == (
            "KMSInvalidStateException",
            external_updating,
        )
    assert err(west.replicate_key, KeyId=key_id, ReplicaRegion=EU) == (
        "KMSInvalidStateException",
        f"{arn(server, WEST, key_id)} is updating.",
    )
    assert err(east.replicate_key, KeyId=key_id, ReplicaRegion=EU) == (
        "UnsupportedOperationException",
        f"{arn(server, EAST, key_id)} is not a multi-region primary key.",
    )
    west.enable_key_rotation(KeyId=key_id)  # allowed while Updating, on the new primary
    west.import_key_material(
        KeyId=external,
        ImportToken=spare["ImportToken"],
        EncryptedKeyMaterial=wrap("RSAES_OAEP_SHA_256", spare["PublicKey"], material),
        ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE",
    )
    assert east.get_key_rotation_status(KeyId=key_id)["KeyRotationEnabled"] is True
    clock.write_text(str(3700 + 3700))
    for kms in (east, west):
        wait_state(kms, key_id, "Enabled")
        wait_state(kms, external, "Enabled")
    regions = [e["awsRegion"] for e in events(server, key_id, "SynchronizeMultiRegionKey")]
    assert regions[0] == WEST and len(regions) == 3  # creation, rotation setting, update


# --- deletion order and automatic rotation, on a server whose clock the test moves ----------------------


@pytest.fixture
def timed_server(own_server: Server, tmp_path: Path) -> tuple[Server, Path]:
    clock = tmp_path / "clock-offset"
    clock.write_text("0")
    own_server.env["OPENKMS_CLOCK_OFFSET_FILE"] = str(clock)
    own_server.restart()
    return own_server, clock


def test_deletion_order_and_automatic_rotation(timed_server: tuple[Server, Path]) -> None:
    server, clock = timed_server
    east, west, eu = regional(server, EAST, WEST, EU)
    key_id = new_primary(east)
    replicate(east, key_id, west, WEST)
    replicate(east, key_id, eu, EU)
    rotating = new_primary(east)
    replicate(east, rotating, west, WEST)
    east.enable_key_rotation(KeyId=rotating, RotationPeriodInDays=90)
    assert (
        west.get_key_rotation_status(KeyId=rotating)["NextRotationDate"]
        == east.get_key_rotation_status(KeyId=rotating)["NextRotationDate"]
    )
    blob = east.encrypt(KeyId=key_id, Plaintext=b"kept by the replicas")["CiphertextBlob"]

    # A primary with replicas waits for them: PendingReplicaDeletion, no deletion date yet.
    scheduled = east.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
    assert members(scheduled) == {"KeyId", "KeyState", "PendingWindowInDays"}
    assert (scheduled["KeyState"], scheduled["PendingWindowInDays"]) == ("PendingReplicaDeletion", 7)
    md = east.describe_key(KeyId=key_id)["KeyMetadata"]
    assert (md["KeyState"], md["Enabled"], md["PendingDeletionWindowInDays"]) == (
        "PendingReplicaDeletion",
        False,
        7,
    )
    assert "DeletionDate" not in md
    primary_arn = arn(server, EAST, key_id)
    assert err(east.encrypt, KeyId=key_id, Plaintext=b"x") == (
        "KMSInvalidStateException",
        f"{primary_arn} is pending replica deletion.",
    )
    assert err(east.schedule_key_deletion, KeyId=key_id) == (
        "KMSInvalidStateException",
        f"{primary_arn} is pending replica deletion.",
    )
    assert west.decrypt(CiphertextBlob=blob)["Plaintext"] == b"kept by the replicas"  # replicas unaffected
    # Cancelling a PendingReplicaDeletion leaves the key Disabled, as any cancellation.
    other = new_primary(east)
    replicate(east, other, eu, EU)
    east.schedule_key_deletion(KeyId=other)
    east.cancel_key_deletion(KeyId=other)
    md = east.describe_key(KeyId=other)["KeyMetadata"]
    assert md["KeyState"] == "Disabled" and "PendingDeletionWindowInDays" not in md

    west.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
    eu.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=10)
    server.restart()
    east, west, eu = regional(server, EAST, WEST, EU)
    clock.write_text(str(8 * DAY))
    wait_gone(west, key_id)
    assert state(east, key_id) == "PendingReplicaDeletion"
    assert config(east, key_id)["ReplicaKeys"] == [ref(server, EU, key_id)]
    clock.write_text(str(11 * DAY))
    wait_gone(eu, key_id)
    wait_state(east, key_id, "PendingDeletion")
    md = east.describe_key(KeyId=key_id)["KeyMetadata"]
    started = time.time() + 11 * DAY
    assert abs(md["DeletionDate"].timestamp() - (started + 7 * DAY)) < 120  # the window starts now
    assert "PendingDeletionWindowInDays" not in md and config(east, key_id)["ReplicaKeys"] == []
    assert sorted(e["awsRegion"] for e in events(server, key_id, "DeleteKey")) == [EU, WEST]
    clock.write_text(str(19 * DAY))
    wait_gone(east, key_id)

    # The primary rotated automatically, and the replica with it.
    clock.write_text(str(120 * DAY))
    deadline = time.time() + 15
    while not (rotations := east.list_key_rotations(KeyId=rotating)["Rotations"]):
        assert time.time() < deadline
        time.sleep(0.2)
    assert [r["RotationType"] for r in rotations] == ["AUTOMATIC"]
    assert west.list_key_rotations(KeyId=rotating)["Rotations"] == rotations
    assert len(events(server, rotating, "RotateKey")) == 1  # the primary's only
    fresh = east.encrypt(KeyId=rotating, Plaintext=b"new material")["CiphertextBlob"]
    assert west.decrypt(CiphertextBlob=fresh)["Plaintext"] == b"new material"
    status = (east.get_key_rotation_status(KeyId=rotating), west.get_key_rotation_status(KeyId=rotating))
    assert status[0]["NextRotationDate"] == status[1]["NextRotationDate"]
