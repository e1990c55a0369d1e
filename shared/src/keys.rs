//! Every key format of the single table, in one place: no other module formats a `PK`, `SK`,
//! `GSI1PK` or `GSI1SK` string.
//!
//! | item                | PK                                   | SK                  |
//! |---------------------|--------------------------------------|---------------------|
//! | program             | `TENANT#{tenant}`                    | `PROGRAM#{id}`      |
//! | program-name guard  | `TENANT#{tenant}#PROGRAM_NAME#{name}`| `UNIQUE`            |
//!
//! The tenant comes first in every tenant-owned key, so one tenant can never address another's
//! items. Guard items enforce uniqueness: they are written with `attribute_not_exists(PK)` in the
//! same transaction as the entity they protect.

pub const PK: &str = "PK";
pub const SK: &str = "SK";
pub const GSI1PK: &str = "GSI1PK";
pub const GSI1SK: &str = "GSI1SK";
pub const GSI1: &str = "GSI1";
/// Epoch-seconds attribute DynamoDB's TTL deletes items by (idempotency records and the like).
pub const TTL: &str = "expires_at_epoch";
/// Every item names its entity, for humans reading the table and for streams.
pub const ENTITY_TYPE: &str = "entity_type";

const GUARD_SK: &str = "UNIQUE";
const PROGRAM_PREFIX: &str = "PROGRAM#";

/// The primary key of one item.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Key {
    pub pk: String,
    pub sk: String,
}

/// The partition holding a tenant's programs.
pub fn tenant(tenant: &str) -> String {
    format!("TENANT#{tenant}")
}

pub fn program(tenant_id: &str, program_id: &str) -> Key {
    Key {
        pk: tenant(tenant_id),
        sk: format!("{PROGRAM_PREFIX}{program_id}"),
    }
}

/// Sort-key prefix of a tenant's programs (for `begins_with`).
pub fn program_prefix() -> &'static str {
    PROGRAM_PREFIX
}

/// Guard that keeps program names unique in a tenant, whatever their letter case or surrounding
/// white space.
pub fn program_name(tenant_id: &str, name: &str) -> Key {
    Key {
        pk: format!(
            "{}#PROGRAM_NAME#{}",
            tenant(tenant_id),
            normalized_name(name)
        ),
        sk: GUARD_SK.to_owned(),
    }
}

/// Names compare case-insensitively and without surrounding or repeated white space.
pub fn normalized_name(name: &str) -> String {
    name.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn program_keys_are_tenant_scoped() {
        let key = program("acme", "01J0000000000000000000000A");
        assert_eq!(key.pk, "TENANT#acme");
        assert_eq!(key.sk, "PROGRAM#01J0000000000000000000000A");
        assert!(key.sk.starts_with(program_prefix()));
        assert_ne!(program("other", "x").pk, program("acme", "x").pk);
    }

    #[test]
    fn name_guards_ignore_case_and_spacing() {
        assert_eq!(
            program_name("acme", "  Spring   Launch "),
            program_name("acme", "spring launch")
        );
        assert_ne!(
            program_name("acme", "Spring"),
            program_name("globex", "Spring")
        );
        assert!(
            !program_name("acme", "x")
                .pk
                .starts_with(&program("acme", "x").sk)
        );
    }
}
