//! Referral codes in the single table: one item per code, keyed by the code alone, so public
//! look-ups and clicks need nothing but the code.

use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use time::OffsetDateTime;

use super::promoters::PROMOTER_ENTITY;
use std::collections::BTreeMap;

use super::{
    DynamoStore, Item, conditional, decode_cursor, entity_item, from_item, index_start, key_item,
    number, string,
};
use crate::clock;
use crate::domain::code::ReferralCode;
use crate::domain::promoter::PromoterStatus;
use crate::error::{Error, Result};
use crate::page::{Page, PageRequest};
use crate::store::dynamo::keys;
use crate::store::{CodeItem, CodeStore};

pub(super) const CODE_ENTITY: &str = "referral_code";

fn code_item(code: &ReferralCode) -> Result<Item> {
    entity_item(
        code,
        &keys::code(&code.code),
        CODE_ENTITY,
        Some((
            keys::user_codes(&code.tenant, &code.user_id),
            keys::extra_code_gsi1sk(&code.code),
        )),
    )
}

/// Reads a code's item as the promoter it holds or as an extra code.
fn parse(item: Item) -> Result<CodeItem> {
    match item
        .get(keys::ENTITY_TYPE)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
    {
        Some(PROMOTER_ENTITY) => from_item(item).map(CodeItem::Promoter),
        Some(CODE_ENTITY) => from_item(item).map(CodeItem::Extra),
        other => Err(Error::internal(format!(
            "expected a code item, found {other:?}"
        ))),
    }
}

impl CodeStore for DynamoStore {
    async fn get_code(&self, code: &str) -> Result<Option<CodeItem>> {
        self.get(&keys::code(code)).await?.map(parse).transpose()
    }

    async fn insert_code(&self, code: &ReferralCode) -> Result<bool> {
        let result = self
            .client()
            .put_item()
            .table_name(self.table())
            .set_item(Some(code_item(code)?))
            .condition_expression("attribute_not_exists(PK)")
            .send()
            .await;
        Ok(conditional("PutItem", result)?.is_some())
    }

    async fn set_code_active(
        &self,
        tenant: &str,
        code: &str,
        active: bool,
        now: OffsetDateTime,
    ) -> Result<Option<CodeItem>> {
        let result = self
            .client()
            .update_item()
            .table_name(self.table())
            .set_key(Some(key_item(&keys::code(code))))
            .update_expression("SET is_active = :active, updated = :now")
            .condition_expression("attribute_exists(PK) AND tenant = :tenant")
            .expression_attribute_values(":active", AttributeValue::Bool(active))
            .expression_attribute_values(":now", string(clock::format(now)))
            .expression_attribute_values(":tenant", string(tenant))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match conditional("UpdateItem", result)? {
            Some(output) => output.attributes.map(parse).transpose(),
            None => Ok(None),
        }
    }

    async fn count_click(
        &self,
        code: &str,
        now: time::OffsetDateTime,
    ) -> Result<crate::store::Clicked> {
        let result = self
            .client()
            .update_item()
            .table_name(self.table())
            .set_key(Some(key_item(&keys::code(code))))
            .update_expression("ADD link_clicks :one SET last_click_at = :now")
            .condition_expression(
                "attribute_exists(PK) AND is_active = :true AND (attribute_not_exists(#status) OR #status <> :suspended)",
            )
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":one", number(1))
            .expression_attribute_values(":now", string(crate::clock::format(now)))
            .expression_attribute_values(":true", AttributeValue::Bool(true))
            .expression_attribute_values(":suspended", string(PromoterStatus::Suspended.as_str()))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllNew)
            .send()
            .await;
        let text = |item: Option<&super::Item>, name: &str| {
            item.and_then(|item| item.get(name))
                .and_then(|value| value.as_s().ok())
                .cloned()
        };
        match conditional("UpdateItem", result)? {
            Some(output) => {
                let item = output.attributes.as_ref();
                Ok(crate::store::Clicked {
                    counted: true,
                    tenant: text(item, "tenant"),
                })
            }
            None => Ok(crate::store::Clicked {
                tenant: text(self.get(&keys::code(code)).await?.as_ref(), "tenant"),
                ..Default::default()
            }),
        }
    }

    async fn code_with_counts(
        &self,
        code: &str,
    ) -> Result<Option<(CodeItem, BTreeMap<String, u64>)>> {
        let mut item = None;
        let mut counts = BTreeMap::new();
        for found in self
            .query_prefix(&keys::code_partition(code), "", None)
            .await?
        {
            let sk = found
                .get(keys::SK)
                .and_then(|v| v.as_s().ok())
                .cloned()
                .unwrap_or_default();
            if sk == keys::CODE_ITEM_SK {
                item = Some(parse(found)?);
            } else if let Some(program) = sk.strip_prefix("PROGRAM#") {
                let count = found
                    .get("referrals")
                    .and_then(|v| v.as_n().ok())
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0);
                counts.insert(program.to_owned(), count);
            }
        }
        Ok(item.map(|item| (item, counts)))
    }

    async fn extra_codes(
        &self,
        tenant: &str,
        user: &str,
        page: &PageRequest,
    ) -> Result<Page<ReferralCode>> {
        let partition = keys::user_codes(tenant, user);
        let start = match &page.cursor {
            Some(cursor) => {
                let code = decode_cursor(cursor, "")?;
                Some(index_start(
                    &keys::code(&code),
                    (keys::GSI1PK, &partition),
                    (keys::GSI1SK, &keys::extra_code_gsi1sk(&code)),
                ))
            }
            None => None,
        };
        self.query_page(
            Some((keys::GSI1, keys::GSI1PK, keys::GSI1SK)),
            &partition,
            Some(keys::EXTRA_CODE_GSI1_PREFIX),
            false,
            page,
            start,
            |code: &ReferralCode| code.code.clone(),
        )
        .await
    }
}
