//! What leaves the engine: billing credits (the message, its signature, what billing's answers
//! mean), the SQS producer, and the reconciler that re-sends what was not delivered.

pub mod billing;
pub mod http_client;
pub mod queue;
pub mod reconcile;
