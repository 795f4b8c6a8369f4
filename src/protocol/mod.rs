//! Wire format only: the client request parser (with its limits) and reply encoding.

pub mod errors;
pub mod parser;
pub mod reply;
pub mod reply_scan;

pub use parser::{ParseError, ParserLimits, RequestParser};
pub use reply::{Protocol, Reply};
