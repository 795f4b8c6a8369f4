//! Where commands are executed. Today only the embedded engine exists; the forwarding issue
//! adds remote standalone/sentinel/cluster backends behind the same boundary.

pub mod embedded;
pub mod remote;
