//! The domain crate of the referral engine: entities and their validation, the error catalogue,
//! configuration, authentication, key design and the DynamoDB store every endpoint-group Lambda
//! shares. Handlers in `functions/*` stay thin: authenticate, parse, call one operation here.

pub mod auth;
pub mod billing;
pub mod clock;
pub mod code;
pub mod config;
pub mod error;
pub mod http;
pub mod id;
pub mod invitation;
pub mod keys;
pub mod ledger;
pub mod page;
pub mod program;
pub mod promoter;
pub mod queue;
pub mod referral;
pub mod rules;
pub mod store;
pub mod telemetry;

pub use error::{Error, Result};
