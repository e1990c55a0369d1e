//! Programs in the single table: one item per program plus its name guard.

use aws_sdk_dynamodb::types::{ReturnValue, TransactWriteItem};
use std::collections::HashMap;
use time::OffsetDateTime;

use super::{
    DynamoStore, Item, Outcome, conditional, decode_cursor, entity_item, from_item, guard_item,
    key_item, number, string,
};
use crate::domain::program::{Program, ProgramStatus};
use crate::error::{Error, Result};
use crate::page::{Page, PageRequest};
use crate::store::dynamo::keys;
use crate::store::{ProgramStore, Replaced};

const PROGRAM_ENTITY: &str = "program";
const PROGRAM_NAME_ENTITY: &str = "program_name";

fn program_item(program: &Program) -> Result<Item> {
    entity_item(
        program,
        &keys::program(&program.tenant, &program.id),
        PROGRAM_ENTITY,
        None,
    )
}

fn name_taken(name: &str) -> Error {
    Error::Conflict(format!("a program named '{name}' already exists"))
}

impl ProgramStore for DynamoStore {
    async fn insert_program(&self, program: &Program) -> Result<()> {
        let guard = guard_item(
            &keys::program_name(&program.tenant, &program.name),
            PROGRAM_NAME_ENTITY,
            &program.id,
        );
        let actions = vec![self.put_new(program_item(program)?)?, self.put_new(guard)?];
        match self.transact(actions).await? {
            Outcome::Written => Ok(()),
            Outcome::ConditionsFailed(failed) if failed.get(1) == Some(&true) => {
                Err(name_taken(&program.name))
            }
            Outcome::ConditionsFailed(_) => Err(Error::internal(format!(
                "program id {} is taken",
                program.id
            ))),
        }
    }

    async fn get_program(&self, tenant: &str, id: &str) -> Result<Option<Program>> {
        self.get(&keys::program(tenant, id))
            .await?
            .map(from_item)
            .transpose()
    }

    async fn list_programs(&self, tenant: &str, page: &PageRequest) -> Result<Page<Program>> {
        let partition = keys::tenant(tenant);
        let start = match &page.cursor {
            Some(cursor) => Some(HashMap::from([
                (keys::PK.to_owned(), string(&partition)),
                (
                    keys::SK.to_owned(),
                    string(decode_cursor(cursor, keys::program_prefix())?),
                ),
            ])),
            None => None,
        };
        self.query_page(
            None,
            &partition,
            Some(keys::program_prefix()),
            true,
            page,
            start,
            |program: &Program| keys::program(&program.tenant, &program.id).sk,
        )
        .await
    }

    async fn replace_program(&self, current: &Program, next: &Program) -> Result<Replaced> {
        let old_guard = keys::program_name(&current.tenant, &current.name);
        let new_guard = keys::program_name(&next.tenant, &next.name);
        let put = self.put_versioned(program_item(next)?, current.version)?;
        if old_guard == new_guard {
            let written = self.put(put).await?;
            return Ok(if written {
                Replaced::Done
            } else {
                Replaced::Stale
            });
        }
        let actions = vec![
            TransactWriteItem::builder().put(put).build(),
            self.delete_guard(&old_guard, &current.id)?,
            self.put_new(guard_item(&new_guard, PROGRAM_NAME_ENTITY, &next.id))?,
        ];
        match self.transact(actions).await? {
            Outcome::Written => Ok(Replaced::Done),
            Outcome::ConditionsFailed(failed) if failed.first() == Some(&true) => {
                Ok(Replaced::Stale)
            }
            Outcome::ConditionsFailed(failed) if failed.get(2) == Some(&true) => {
                Err(name_taken(&next.name))
            }
            Outcome::ConditionsFailed(_) => Err(Error::internal(format!(
                "program {} name guard does not belong to it",
                current.id
            ))),
        }
    }

    async fn archive_program(
        &self,
        tenant: &str,
        id: &str,
        now: OffsetDateTime,
    ) -> Result<Option<Program>> {
        let result = self
            .client
            .update_item()
            .table_name(self.table.as_ref())
            .set_key(Some(key_item(&keys::program(tenant, id))))
            .condition_expression("attribute_exists(#pk) AND #status <> :archived")
            .update_expression("SET #status = :archived, #updated = :now ADD #version :one")
            .expression_attribute_names("#pk", keys::PK)
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#updated", "updated")
            .expression_attribute_names("#version", "version")
            .expression_attribute_values(":archived", string(ProgramStatus::Archived.as_str()))
            .expression_attribute_values(":now", string(crate::clock::format(now)))
            .expression_attribute_values(":one", number(1))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match conditional("UpdateItem", result)? {
            Some(output) => output.attributes.map(from_item).transpose(),
            // Absent (404) or archived already (answered as it is).
            None => self.get_program(tenant, id).await,
        }
    }
}
