//! What leaves the engine: the outbox dispatcher (the table's stream to the queues), billing
//! credits (the message, its signature, what billing's answers mean), Standard Webhooks
//! signatures, the SQS producers, and the reconciler that re-sends what was not delivered.

pub mod billing;
pub mod http_client;
pub mod outbox;
pub mod queue;
pub mod reconcile;
pub mod signing;
pub mod sqs;
