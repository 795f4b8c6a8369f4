//! Redis's error texts, word for word: clients parse them by their first word, and our
//! differential tests compare them byte for byte with a real redis-server.

pub const WRONGTYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";
pub const NOT_INTEGER: &str = "ERR value is not an integer or out of range";
pub const NOT_FLOAT: &str = "ERR value is not a valid float";
pub const SYNTAX: &str = "ERR syntax error";
pub const OVERFLOW: &str = "ERR increment or decrement would overflow";
pub const NO_SUCH_KEY: &str = "ERR no such key";
pub const NOAUTH: &str = "NOAUTH Authentication required.";
pub const WRONGPASS: &str = "WRONGPASS invalid username-password pair or user is disabled.";
pub const DB_INDEX: &str = "ERR DB index is out of range";
pub const STRING_TOO_LONG: &str = "ERR string exceeds maximum allowed size (proto-max-bulk-len)";

/// `ERR wrong number of arguments for 'get' command`
pub fn wrong_arity(name: &str) -> String {
    format!("ERR wrong number of arguments for '{name}' command")
}

/// `ERR invalid expire time in 'set' command`
pub fn invalid_expire(name: &str) -> String {
    format!("ERR invalid expire time in '{name}' command")
}

/// `ERR unknown command 'foo', with args beginning with: 'a' 'b' ` — Redis quotes at most
/// 128 bytes of the name and of each argument and stops once the list exceeds 128 bytes.
pub fn unknown_command(argv: &[bytes::Bytes]) -> String {
    let name = argv
        .first()
        .map(|a| lossy_prefix(a, 128))
        .unwrap_or_default();
    let mut args = String::new();
    for a in argv.iter().skip(1) {
        if args.len() >= 128 {
            break;
        }
        let remaining = 128 - args.len();
        args.push('\'');
        args.push_str(&lossy_prefix(a, remaining));
        args.push_str("' ");
    }
    sanitize(format!(
        "ERR unknown command '{name}', with args beginning with: {args}"
    ))
}

/// `ERR unknown subcommand 'foo'. Try CLIENT HELP.`
pub fn unknown_subcommand(sub: &[u8], container: &str) -> String {
    sanitize(format!(
        "ERR unknown subcommand '{}'. Try {} HELP.",
        lossy_prefix(sub, 128),
        container.to_ascii_uppercase()
    ))
}

fn lossy_prefix(b: &[u8], max: usize) -> String {
    String::from_utf8_lossy(&b[..b.len().min(max)]).into_owned()
}

/// An error line must not contain CR or LF (Redis replaces them with spaces).
pub fn sanitize(mut s: String) -> String {
    if s.contains(['\r', '\n']) {
        s = s.replace(['\r', '\n'], " ");
    }
    s
}

/// A command in the table that the embedded engine does not implement yet.
pub fn not_implemented(name: &str) -> String {
    format!("ERR respgate's embedded engine does not implement '{name}' yet")
}
