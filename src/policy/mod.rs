//! Tenant policy, pure: functions from (tenant, command) to a rewritten command or an error
//! reply, and from (tenant, reply) to the reply the tenant sees. No sockets, no engine: the
//! session applies them around each command (see `server::tenancy`).
//!
//! * [`tenant`]: the configured tenants and which one AUTH credentials name.
//! * [`acl`]: may this tenant run this command (allow/deny, read-only, default deny list).
//! * [`namespace`]: keys, channels and patterns of a command moved into the tenant's prefix.
//! * [`replies`]: the prefix removed from replies and pub/sub messages (values or raw RESP).
//! * [`ttl`]: TTL rules — which rule a key falls under, what a write does to its TTL, and
//!   whether it is refused, given a default, clamped or recorded.

pub mod acl;
pub mod namespace;
pub mod replies;
pub mod tenant;
pub mod ttl;

pub use namespace::{Namespace, Plan, Shape, Wide};
pub use tenant::{Tenant, Tenants};
