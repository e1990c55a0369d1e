"""The boto3 floor of `make bench`: build a DynamoDB client, do one GetItem (TABLE_NAME,
FLOOR_PK/FLOOR_SK), exit 0 if the item is there."""

import os
import sys

import boto3

item = boto3.client("dynamodb").get_item(
    TableName=os.environ["TABLE_NAME"],
    Key={"PK": {"S": os.environ["FLOOR_PK"]}, "SK": {"S": os.environ["FLOOR_SK"]}},
)
sys.exit(0 if "Item" in item else 1)
