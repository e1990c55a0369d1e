"""The usual alternative, for `make bench`: the same three routes as a Python 3 Lambda handler
with boto3 (low-level clients, built once at init), run by awslambdaric (AWS's runtime interface
client) under the same Runtime API, against the same emulator and table.

It does the same DynamoDB and SQS work as the Rust functions, with the same keys and conditions:
  get_program     GetItem
  create_program  TransactWriteItems (program + unique-name guard)
  sign_up         GetItem (code), Query (programs), GetItem (referee's promoter guard),
                  TransactWriteItems (relation, code counters, two rewards), SendMessageBatch
It is written the way such a handler usually is (sequential calls, PyJWT, json), not tuned.
"""

import base64
import json
import os
import re
import time
from datetime import datetime, timezone
from decimal import Decimal

import boto3
import jwt
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

TABLE = os.environ["TABLE_NAME"]
SECRET = os.environ["JWT_SECRET"]

dynamodb = boto3.client("dynamodb")
_serializer = TypeSerializer()
_deserializer = TypeDeserializer()
_KEYS = {"PK", "SK", "GSI1PK", "GSI1SK", "GSI2PK", "GSI2SK", "entity_type", "version"}
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


class HttpError(Exception):
    def __init__(self, status, code, message):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _json_default(value):
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    raise TypeError(type(value))


def _response(status, body):
    return {
        "statusCode": status,
        "headers": {"content-type": "application/json"},
        "body": json.dumps(body, default=_json_default),
    }


def _handler(route):
    def wrapped(event, context):
        try:
            status, body = route(event)
            return _response(status, body)
        except HttpError as error:
            return _response(error.status, {"error": {"code": error.code, "message": error.message}})

    return wrapped


def _caller(event, *roles):
    header = (event.get("headers") or {}).get("authorization", "")
    if not header.startswith("Bearer "):
        raise HttpError(401, "unauthorized", "a bearer token is required")
    try:
        claims = jwt.decode(header[7:], SECRET, algorithms=["HS256"], options={"require": ["exp"]})
    except jwt.PyJWTError as error:
        raise HttpError(401, "unauthorized", str(error))
    if claims.get("role") not in roles:
        raise HttpError(403, "forbidden", "this route is not for this role")
    return claims["tenant"], claims["sub"]


def _body(event):
    raw = event.get("body") or ""
    if event.get("isBase64Encoded"):
        raw = base64.b64decode(raw).decode()
    try:
        body = json.loads(raw)
    except ValueError:
        raise HttpError(400, "validation_error", "the body is not JSON")
    if not isinstance(body, dict):
        raise HttpError(400, "validation_error", "the body must be an object")
    return body


def _item(attributes):
    return {k: _serializer.serialize(v) for k, v in attributes.items()}


def _plain(item):
    return {k: _deserializer.deserialize(v) for k, v in item.items() if k not in _KEYS}


def _now():
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _new_id():
    value = (int(time.time() * 1000) << 80) | int.from_bytes(os.urandom(10), "big")
    return "".join(_CROCKFORD[(value >> shift) & 31] for shift in range(125, -1, -5))


def _tenant(tenant):
    return f"TENANT#{tenant}"


def _user(tenant, user):
    return f"{_tenant(tenant)}#USER#{user}"


def _get_program(event):
    tenant, _ = _caller(event, "admin")
    program_id = event["rawPath"].rsplit("/", 1)[-1]
    found = dynamodb.get_item(
        TableName=TABLE, Key={"PK": {"S": _tenant(tenant)}, "SK": {"S": f"PROGRAM#{program_id}"}}
    )
    if "Item" not in found:
        raise HttpError(404, "program_not_found", f"no program {program_id}")
    return 200, _plain(found["Item"])


_TRIGGERS = {"signup", "verified", "paid_threshold", "each_invoice"}


def _validate_program(body):
    name = body.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > 100:
        raise HttpError(400, "validation_error", "name: 1 to 100 characters")
    currency = body.get("currency", "USD")
    if not isinstance(currency, str) or not re.fullmatch(r"[A-Z]{3}", currency):
        raise HttpError(400, "validation_error", "currency: an ISO 4217 code")
    rewards = body.get("rewards", [])
    if not isinstance(rewards, list):
        raise HttpError(400, "validation_error", "rewards: a list")
    for index, rule in enumerate(rewards):
        if rule.get("recipient") not in ("referrer", "referee") or rule.get("trigger") not in _TRIGGERS:
            raise HttpError(400, "validation_error", f"rewards[{index}]: recipient and trigger")
        if rule.get("kind") not in ("cash", "points") or not isinstance(rule.get("amount", 0), int):
            raise HttpError(400, "validation_error", f"rewards[{index}]: kind and amount")
    return name.strip(), currency, rewards


def _create_program(event):
    tenant, _ = _caller(event, "admin")
    name, currency, rewards = _validate_program(_body(event))
    now = _now()
    program = {
        "id": _new_id(),
        "tenant": tenant,
        "name": name,
        "status": "active",
        "currency": currency,
        "rewards": rewards,
        "min_referrals": 0,
        "verification_required": False,
        "country_overrides": {},
        "created_at": now,
        "updated_at": now,
    }
    normalized = " ".join(name.split()).lower()
    try:
        dynamodb.transact_write_items(
            TransactItems=[
                {
                    "Put": {
                        "TableName": TABLE,
                        "Item": _item(
                            {"PK": _tenant(tenant), "SK": f"PROGRAM#{program['id']}",
                             "entity_type": "program", "version": 1, **program}
                        ),
                        "ConditionExpression": "attribute_not_exists(PK)",
                    }
                },
                {
                    "Put": {
                        "TableName": TABLE,
                        "Item": _item(
                            {"PK": f"{_tenant(tenant)}#PROGRAM_NAME#{normalized}", "SK": "UNIQUE",
                             "program_id": program["id"]}
                        ),
                        "ConditionExpression": "attribute_not_exists(PK)",
                    }
                },
            ]
        )
    except dynamodb.exceptions.TransactionCanceledException:
        raise HttpError(409, "program_name_taken", f"a program is already named {name}")
    return 201, program


def _sign_up(event):
    tenant, _ = _caller(event, "service")
    body = _body(event)
    code, referred = body.get("code"), body.get("referred_user_id")
    if not isinstance(code, str) or not isinstance(referred, str) or not referred:
        raise HttpError(400, "validation_error", "code and referred_user_id are required")
    found = dynamodb.get_item(TableName=TABLE, Key={"PK": {"S": f"CODE#{code.upper()}"}, "SK": {"S": "CODE"}})
    if "Item" not in found or found["Item"]["tenant"]["S"] != tenant:
        raise HttpError(404, "code_not_found", f"no code {code}")
    referrer = _plain(found["Item"])
    code = code.upper()
    programs = dynamodb.query(
        TableName=TABLE,
        KeyConditionExpression="PK = :pk AND begins_with(SK, :prefix)",
        ExpressionAttributeValues={":pk": {"S": _tenant(tenant)}, ":prefix": {"S": "PROGRAM#"}},
    )
    active = [_plain(item) for item in programs["Items"] if item["status"]["S"] == "active"]
    if len(active) != 1:
        raise HttpError(409, "program_ambiguous", "the tenant needs one active program")
    program = active[0]
    guard = dynamodb.get_item(
        TableName=TABLE, Key={"PK": {"S": _user(tenant, referred)}, "SK": {"S": "PROMOTER"}}
    )
    if referrer["user_id"] == referred:
        raise HttpError(409, "self_referral", "a user cannot refer themselves")
    now = _now()
    relation_id = _new_id()
    relation = {
        "id": relation_id, "tenant": tenant, "program_id": program["id"], "code": code,
        "referrer_user_id": referrer["user_id"], "referred_user_id": referred,
        "referred_promoter_code": guard.get("Item", {}).get("code", {}).get("S"),
        "invitation_method": "code", "status": "signup", "paid_total": 0, "referrer_earned": 0,
        "created_at": now, "updated_at": now,
    }
    rewards = []
    for rule in program["rewards"]:
        if rule["trigger"] != "signup":
            continue
        recipient = referrer["user_id"] if rule["recipient"] == "referrer" else referred
        reward_id = f"{relation_id}.{rule['recipient']}.signup"
        rewards.append({
            "id": reward_id, "tenant": tenant, "referral_id": relation_id, "program_id": program["id"],
            "user_id": recipient, "recipient": rule["recipient"], "kind": rule["kind"],
            "amount": int(rule["amount"]), "currency": program["currency"], "reason": "signup",
            "delivery": rule.get("delivery", "billing_credit"), "status": "pending", "created": now,
        })
    earned = {r["recipient"]: r["amount"] for r in rewards}
    actions = [
        {"Put": {"TableName": TABLE, "ConditionExpression": "attribute_not_exists(PK)", "Item": _item({
            "PK": f"{_tenant(tenant)}#REFERRED#{referred}", "SK": f"PROGRAM#{program['id']}",
            "GSI1PK": f"{_user(tenant, referrer['user_id'])}#REFERRALS", "GSI1SK": now,
            "GSI2PK": f"{_tenant(tenant)}#REFERRAL#{relation_id}", "GSI2SK": "REFERRAL",
            "entity_type": "referral", "version": 1, **relation})}},
        {"Update": {
            "TableName": TABLE, "Key": {"PK": {"S": f"CODE#{code}"}, "SK": {"S": "CODE"}},
            "UpdateExpression": "SET updated = :now ADD total_referrals :one, "
                                "total_referrer_earned :referrer, total_referee_earned :referee",
            "ConditionExpression": "is_active = :true AND tenant = :tenant",
            "ExpressionAttributeValues": _item({
                ":now": now, ":one": 1, ":referrer": earned.get("referrer", 0),
                ":referee": earned.get("referee", 0), ":true": True, ":tenant": tenant}),
        }},
    ]
    for reward in rewards:
        actions.append({"Put": {"TableName": TABLE, "ConditionExpression": "attribute_not_exists(PK)", "Item": _item({
            "PK": _user(tenant, reward["user_id"]), "SK": f"REWARD#{reward['id']}",
            "GSI1PK": f"{_user(tenant, reward['user_id'])}#LEDGER", "GSI1SK": f"{now}#{reward['id']}",
            "GSI2PK": "REWARD#PENDING", "GSI2SK": f"{now}#{reward['id']}",
            "entity_type": "reward", **reward})}})
    try:
        dynamodb.transact_write_items(TransactItems=actions)
    except dynamodb.exceptions.TransactionCanceledException:
        raise HttpError(409, "already_referred", f"{referred} was already referred")
    # The credits leave through the table's stream (the outbox), as in the Rust function.
    return 201, {"referral": relation, "rewards": rewards}


get_program = _handler(_get_program)
create_program = _handler(_create_program)
sign_up = _handler(_sign_up)
