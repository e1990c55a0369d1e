//! The domain crate of the referral engine, in layers a newcomer can see from the folders:
//!
//! - [`domain`]: pure referral logic: entities and their validation, the reward-rules engine,
//!   and the use cases (sign-up, invoice, withdraw, complete, invite) over the store ports. No
//!   AWS, axum or reqwest in it (a test checks).
//! - [`store`]: the ports the domain reaches persistence through, and their DynamoDB adapter
//!   (`store::dynamo`, the only place that knows key formats).
//! - [`delivery`]: what leaves the engine: the billing-credit message, its signature and the
//!   verdicts of billing's answers, the SQS producer and the reconciler.
//! - [`outbound`]: the rules outbound URLs set by tenants obey (https, public addresses).
//! - [`http`]: authentication, extractors, error mapping, router finish and the Lambda entry.
//!
//! Handlers in `functions/*` stay thin: authenticate, parse, call one use case here.

pub mod backoff;
pub mod clock;
pub mod config;
pub mod delivery;
pub mod domain;
pub mod error;
pub mod http;
pub mod id;
pub mod json;
pub mod outbound;
pub mod page;
pub mod store;
pub mod telemetry;

pub use error::{Error, Result};
