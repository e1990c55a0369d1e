//! Integration tests: the routers over the real AWS SDK against the emulator that `make test`
//! starts. One test binary (one link) with a module per area.

mod auth;
mod billing;
mod codes;
mod emulator;
mod events;
mod faults;
mod fraud;
mod inputs;
mod invitations;
mod lifecycle;
mod money;
mod portal;
mod programs;
mod promoters;
mod referrals;
mod soak;
mod support;
mod template;
mod tenants;
mod webhooks;
